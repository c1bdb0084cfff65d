"""Step-by-step debugging of a port: named traces, comparison with HF transformers, interventions.

    from minivivit import debug
    ours = debug.trace(model, x)                       # {name: array}, in forward order (trace.py)
    ref = debug.hf_trace(hf_model, x)                  # the same names from HF transformers (hf.py, dev extra)
    report = debug.compare(ours, ref)                  # table: shape, max |a-b|, allclose per name (compare.py)
    report.first_divergence                            # e.g. "blocks.3.fc1", or None
    debug.run(model, x, replace={"blocks.3.out": np.zeros_like})       # interventions: any name, array or fn
    debug.precision_drift(model, x)                    # float32 vs float64, layer by layer

The names and their shapes are listed once, in minivivit/model.py (debug.trace_names(L) gives them).
"""

from ..model import trace_names
from .compare import DEFAULT_TOLERANCES, Report, Row, compare, default_tolerance
from .hf import hf_trace
from .trace import RecordingTap, head_mask, precision_drift, reorder_frames, run, select_names, trace

__all__ = [
    "DEFAULT_TOLERANCES", "RecordingTap", "Report", "Row", "compare", "default_tolerance", "head_mask", "hf_trace",
    "precision_drift", "reorder_frames", "run", "select_names", "trace", "trace_names",
]
