"""Where a video transformer looks: attention capture, rollout, per-head metrics and figures.

    from minivivit import explain
    cap = explain.capture(model, x, output_attentions="cls")   # memory-checked capture (capturing.py)
    v, tokens, out = explain.cls_rollout(model, x)            # CLS rollout, one full map at a time
    heat = tokens.to_grid(v[0])                               # [t, h, w] (minivivit.tokens.TokenMap)
    explain.mean_attention_distance(full_maps, tokens)        # per-head metrics (metrics.py)
    from minivivit.explain import viz                         # figures and GIFs (matplotlib)
    explain.explore(model, clip)                              # interactive explorer: a notebook widget (explore/)

Maths only here (NumPy); viz.py draws what these functions compute.
"""

from ..tokens import TokenMap, tubelet_grid
from .capturing import (
    DEFAULT_MAX_BYTES,
    AttentionBudgetError,
    Captured,
    capture,
    check_budget,
    cls_rollout,
    estimate_bytes,
    format_bytes,
    recompute_attention,
)
from .explore import explore  # noqa: E402 (last: the explorer is built on the functions above)
from .metrics import (
    cls_maps,
    distance_by_layer,
    distance_matrices,
    entropy,
    head_entropy,
    mean_attention_distance,
    normalize,
    slice_profile,
    space_time_decomposition,
    tubelet_coverage,
    uniform_distance,
)
from .rollout import discard_lowest, fuse_heads, rollout, rollout_cls, rollout_matrix, rownorm

__all__ = [
    "DEFAULT_MAX_BYTES", "AttentionBudgetError", "Captured", "TokenMap", "capture", "check_budget", "cls_maps",
    "explore",
    "cls_rollout", "discard_lowest", "distance_by_layer", "distance_matrices", "entropy", "estimate_bytes",
    "format_bytes", "fuse_heads", "head_entropy", "mean_attention_distance", "normalize", "recompute_attention",
    "rollout", "rollout_cls", "rollout_matrix", "rownorm", "slice_profile", "space_time_decomposition",
    "tubelet_coverage", "tubelet_grid", "uniform_distance",
]
