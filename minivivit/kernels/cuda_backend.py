"""backend="cuda": the five ops of minivivit/kernels/__init__.py on an NVIDIA GPU with numba.cuda.

Two ways in:

* the five ops, with layers.py's signatures (NumPy in, NumPy out). Each op uploads its activations,
  runs its kernel and downloads the result; parameters are uploaded once and cached
  (cuda_memory.device_copy). This is what model.vivit_forward calls op by op.
* forward(params, config, pixel_values, ...): the whole forward pass on the device (cuda_forward.py).
  Only the clip goes up and only the requested outputs come down.

Kernels, each beside its NumPy twin in layers.py: cuda_embed (tubelet gather fused with the projection),
cuda_gemm (+ cuda_activations: bias, GELU and residual fused into the GEMM), cuda_layernorm,
cuda_attention (flash attention: tiled, online softmax, never an N x N matrix unless probabilities are
asked for). Everything is float32.

Without a GPU, numba's CUDA simulator runs the same kernels as Python threads (slowly; for tests):
set NUMBA_ENABLE_CUDASIM=1 in the environment *before* Python starts.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from numba import cuda
except ImportError as e:  # numba-cuda (the `cuda` extra) is not installed: check_available() explains
    cuda, _IMPORT_ERROR = None, e
else:
    _IMPORT_ERROR = None
    from . import cuda_attention, cuda_embed, cuda_gemm, cuda_layernorm
    from .cuda_forward import forward  # noqa: F401  (the whole pass on the device)
    from .cuda_memory import device_copy, empty, upload


def check_available() -> None:
    """Raise RuntimeError saying what to do when there is neither a usable GPU nor the simulator."""
    if cuda is None:
        raise RuntimeError(
            f"backend='cuda' needs numba-cuda, which is not importable here ({_IMPORT_ERROR}). Install it with "
            "python -m pip install 'minivivit[cuda]' (or 'numba-cuda[cu13]'), or use backend='numba' / 'numpy'."
        )
    if cuda.is_available():  # a GPU with a driver, or the simulator
        return
    late = ""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        late = (" NUMBA_ENABLE_CUDASIM=1 is set, but only after numba.cuda had been imported in this process, "
                "so it has no effect: set it before Python starts.")
    raise RuntimeError(
        "backend='cuda' found no CUDA GPU (numba.cuda.is_available() is False: no NVIDIA GPU, or no driver)."
        + late + " Either run on a machine with an NVIDIA GPU and its driver (check with `nvidia-smi`), or use "
        "numba's CUDA simulator, which runs the same kernels slowly on the CPU (meant for tests, tiny inputs): "
        "`NUMBA_ENABLE_CUDASIM=1 python ...`. Otherwise choose backend='numba' (CPU, fast) or 'numpy'."
    )


def _rows(x):
    """[..., n] -> ([M, n], original shape): the GEMM and LayerNorm kernels work on 2-D rows."""
    return x.reshape(-1, x.shape[-1]), x.shape


def tubelet_embed(pixel_values, w, b, tubelet):
    """[B, T, C, H, W] -> [B, P, D] (twin: layers.tubelet_embed)."""
    B, T, _, H, W = pixel_values.shape  # [B, T, C, H, W]
    tt, ph, pw = tubelet
    P = (T // tt) * (H // ph) * (W // pw)
    out = empty(B * P, w.shape[1])  # [B*P, D]
    cuda_embed.tubelet_embed(out, upload("pixel_values", pixel_values), device_copy(w), device_copy(b), tubelet)
    return out.copy_to_host().reshape(B, P, w.shape[1])  # [B*P, D] -> [B, P, D]


def linear(x, w, b=None, residual=None):
    """x @ w + b (+ residual): [..., in] -> [..., out] (twin: layers.linear)."""
    x2, shape = _rows(x)  # [M, in]
    out = empty(x2.shape[0], w.shape[1])  # [M, out]
    r = None if residual is None else upload("residual", residual.reshape(-1, w.shape[1]))  # [M, out]
    cuda_gemm.gemm(out, upload("x", x2), device_copy(w), None if b is None else device_copy(b), r)
    return out.copy_to_host().reshape(*shape[:-1], w.shape[1])


def linear_act(x, w, b, name):
    """act(x @ w + b) with the activation fused into the GEMM (twin: layers.linear_act)."""
    x2, shape = _rows(x)  # [M, in]
    out = empty(x2.shape[0], w.shape[1])  # [M, out]
    cuda_gemm.gemm(out, upload("x", x2), device_copy(w), device_copy(b), act=name)
    return out.copy_to_host().reshape(*shape[:-1], w.shape[1])


def layer_norm(x, g, b, eps):
    """LayerNorm over the last axis (twin: layers.layer_norm)."""
    x2, shape = _rows(x)  # [M, D]
    out = empty(*x2.shape)
    cuda_layernorm.layer_norm(out, upload("x", x2), device_copy(g), device_copy(b), eps)
    return out.copy_to_host().reshape(shape)


def attention(q, k, v, num_heads, head_mask=None, probs=None):
    """(context [B, N, D], None | [B, nh, N, N] | [B, nh, N]) (twin: layers.attention)."""
    if probs not in (None, "full", "cls"):
        raise ValueError(f"probs must be None, 'full' or 'cls'; got {probs!r}")
    B, N, D = q.shape
    mask = np.ones(num_heads, np.float32) if head_mask is None else np.asarray(head_mask, np.float32)  # [nh]
    context = empty(B, N, D)
    p = None if probs is None else empty(B, num_heads, 1 if probs == "cls" else N, N)
    cuda_attention.attention(context, p, upload("q", q), upload("k", k), upload("v", v), upload("head_mask", mask),
                             cls_only=probs == "cls")
    if p is None:
        return context.copy_to_host(), None
    p = p.copy_to_host()  # [B, nh, N, N] or [B, nh, 1, N]
    return context.copy_to_host(), p.reshape(B, num_heads, N) if probs == "cls" else p  # cls: [B, nh, 1, N] -> [B, nh, N]
