"""Where a video transformer looks: attention capture, rollout, per-head metrics and figures.

    from minivivit import explain
    cap = explain.capture(model, x, output_attentions="cls")   # memory-checked capture (capturing.py)
    v, tokens, out = explain.cls_rollout(model, x)            # CLS rollout, one full map at a time
    heat = tokens.to_grid(v[0])                               # [t, h, w] (minivivit.tokens.TokenMap)
    explain.mean_attention_distance(full_maps, tokens)        # per-head metrics (metrics.py)
    from minivivit.explain import viz                         # figures and GIFs (matplotlib)
    explain.explore(model, clip)                              # interactive explorer: a notebook widget (explore/)
    e = explain.explain(model, x, method="gae", target="top-left")  # class-specific relevance per tubelet (methods.py)

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
from .explore import explore
from .methods import CLASS_SPECIFIC, METHODS, Explanation, explain, input_x_gradient, integrated_gradients, per_tubelet
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
from .relevance import gae, gae_from_maps, grad_rollout, grad_rollout_from_maps, resolve_target
from .rollout import discard_lowest, fuse_heads, rollout, rollout_cls, rollout_matrix, rownorm

__all__ = [
    "CLASS_SPECIFIC",
    "DEFAULT_MAX_BYTES",
    "METHODS",
    "AttentionBudgetError",
    "Captured",
    "Explanation",
    "TokenMap",
    "capture",
    "check_budget",
    "cls_maps",
    "cls_rollout",
    "discard_lowest",
    "distance_by_layer",
    "distance_matrices",
    "entropy",
    "estimate_bytes",
    "explain",
    "explore",
    "format_bytes",
    "fuse_heads",
    "gae",
    "gae_from_maps",
    "grad_rollout",
    "grad_rollout_from_maps",
    "head_entropy",
    "input_x_gradient",
    "integrated_gradients",
    "mean_attention_distance",
    "normalize",
    "per_tubelet",
    "recompute_attention",
    "resolve_target",
    "rollout",
    "rollout_cls",
    "rollout_matrix",
    "rownorm",
    "slice_profile",
    "space_time_decomposition",
    "tubelet_coverage",
    "tubelet_grid",
    "uniform_distance",
]
