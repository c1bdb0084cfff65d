"""Backends: the same five ops, three implementations.

Every backend module provides exactly these functions with these signatures (shapes in
minivivit/layers.py's letters):

    tubelet_embed(pixel_values [B,T,C,H,W], w [K,D], b [D], tubelet) -> [B, P, D]
    linear(x [...,in], w [in,out], b [out] | None, residual [...,out] | None) -> [..., out]
    linear_act(x [...,in], w [in,out], b [out], name) -> act(x @ w + b)
    layer_norm(x [...,D], g [D], b [D], eps) -> [..., D]
    attention(q, k, v [B,N,D], num_heads, head_mask [nh] | None, probs None|"full"|"cls")
        -> (context [B,N,D], None | [B,nh,N,N] | [B,nh,N])

"numpy" is minivivit/layers.py itself, the readable reference. "numba" (CPU JIT) and "cuda"
(numba.cuda) are imported only when asked for, so `import minivivit` never pays for them.
"""

from __future__ import annotations

import importlib

BACKENDS = {
    "numpy": "minivivit.layers",
    "numba": "minivivit.kernels.numba_backend",
    "cuda": "minivivit.kernels.cuda_backend",
}
OPS = ("tubelet_embed", "linear", "linear_act", "layer_norm", "attention")


def get_backend(name: str):
    """Return the module implementing the ops for backend `name`."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("minivivit"):
            raise NotImplementedError(f"backend {name!r} is not available in this version of minivivit") from e
        raise
    if hasattr(module, "check_available"):
        module.check_available()  # e.g. cuda: raises a clear error without a GPU or the simulator
    return module
