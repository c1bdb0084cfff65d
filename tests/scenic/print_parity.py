"""Print the measured error of every stored Scenic case, backend and dtype (what test_scenic_parity checks).

usage: PYTHONPATH=. python tests/scenic/print_parity.py
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenic_helpers import CASES, reference, rel_err  # noqa: E402
from test_scenic_parity import run  # noqa: E402

print(f"{'case':22s} {'numpy f64':>10s} {'numba f64':>10s} {'numpy f32':>10s} {'numba f32':>10s}   (max|ours-Scenic|/max|Scenic|, logits)")
for case in CASES:
    ref = reference(case)
    errs = [rel_err(run(case, dt, be).logits, ref["logits64" if dt == np.float64 else "logits32"])
            for dt in (np.float64, np.float32) for be in ("numpy", "numba")]
    print(f"{case:22s} " + " ".join(f"{e:10.1e}" for e in errs))
