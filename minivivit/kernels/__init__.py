"""Backends: one op contract, three implementations.

model.py's forward pass is written only in these ops, so every backend runs the same forward. Every
backend module provides exactly these functions with these signatures (shapes in minivivit/layers.py's
letters). Ops accept NumPy arrays or the backend's own arrays and return the backend's own (NumPy for
numpy and numba; device arrays for cuda, so activations stay on the GPU between ops); `to_numpy` brings
one back.

    tubelet_embed(pixel_values [B,T,C,H,W], w [K,D], b [D], tubelet) -> [B, P, D]
    prepend_cls(patches [B,P,D], cls [D]) -> [B, N, D]
    add(a [..., D], b [..., D]) -> a + b        (b broadcast over a's leading axes: [N, D] positions)
    linear(x [..., in], w [in, out], b [out] | None) -> [..., out]
    activation(x, name) -> act(x)                (name: a hidden_act, see layers.ACTIVATIONS)
    linear_act(x, w, b, name) -> act(x @ w + b)
    layer_norm(x [..., D], g [D], b [D], eps) -> [..., D]
    attention(q, k, v [B,N,D], num_heads, head_mask [nh] | None, output_attentions None | "full" | "cls")
        -> (context [B, N, D], None | [B, nh, N, N] | [B, nh, N])
    to_numpy(x) -> np.ndarray

"numpy" is minivivit/layers.py itself, the readable reference. "numba" (CPU JIT, kernels/numba/) and
"cuda" (numba.cuda, kernels/cuda/) are imported only when asked for, so `import minivivit` never pays
for them.
"""

from __future__ import annotations

import importlib

BACKENDS = {
    "numpy": "minivivit.layers",
    "numba": "minivivit.kernels.numba",
    "cuda": "minivivit.kernels.cuda",
}
OPS = ("tubelet_embed", "prepend_cls", "add", "linear", "activation", "linear_act", "layer_norm", "attention",
       "to_numpy")


def get_backend(name: str):
    """Return the module implementing the ops for backend `name`."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    module = importlib.import_module(BACKENDS[name])
    if hasattr(module, "check_available"):
        module.check_available()  # e.g. cuda: raises a clear error without a GPU or the simulator
    return module
