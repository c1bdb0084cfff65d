"""The "numba" backend: the five ops of minivivit/kernels/__init__.py, fast on a multi-core CPU.

Each op is the NumPy twin in minivivit/layers.py with the same signature, re-planned for speed:

    op              BLAS (NumPy `@`, OpenBLAS threads)      numba kernel (NUMBA_NUM_THREADS threads)
    tubelet_embed   patches [B*P, K] @ w [K, D]             patchify_ before, add_bias_residual_ after
    linear          x [M, in] @ w [in, out]                 add_bias_residual_ (bias and residual in one pass)
    linear_act      x [M, in] @ w [in, F]                   bias_act_ (bias + GELU/... in place)
    layer_norm      -                                       layer_norm_
    attention       Q_blk K^T and P V per query block       softmax_rows_ (numba_attention.py)

where M = B*N rows: every product is one large GEMM, never a loop of small ones. The kernels are
float32 (what checkpoints run in); any other dtype, e.g. float64 for rounding-free teaching runs,
is passed to the NumPy reference unchanged, so results never depend on a silent cast.

Threads: numba uses NUMBA_NUM_THREADS (default: all cores), OpenBLAS uses OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS; nothing here overrides them. One default is chosen here: unless NUMBA_THREADING_LAYER
is set, numba's threading layer is "workqueue" instead of OpenMP. A forward alternates hundreds of
short numba regions with BLAS calls, and OpenMP's idle workers keep spinning on the cores that
OpenBLAS's threads need next: on a busy 2-core machine that made a forward 2x slower. workqueue does
not allow two Python threads to launch kernels at once (numba aborts), so every op below holds a lock.

Kernels are compiled on first use and cached on disk (cache=True, in __pycache__ or NUMBA_CACHE_DIR),
so only the very first run in an environment pays the JIT (~5 s on 2 cores; `minivivit bench` reports it).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np

from .. import layers
from . import numba_attention
from .numba_elementwise import FUSED_ACTIVATIONS, add_bias_residual_, bias_act_, layer_norm_, patchify_

f32 = np.float32

if "NUMBA_THREADING_LAYER" not in os.environ:  # takes effect if no parallel numba code has run yet
    numba.config.THREADING_LAYER = "workqueue"
KERNEL_LOCK = threading.Lock()  # one op at a time per process (workqueue is not thread-safe)


def _float32(*arrays) -> bool:
    """True when every given array (None ignored) is float32, i.e. the numba kernels apply."""
    return all(a is None or a.dtype == np.float32 for a in arrays)


def _rows(x):
    """[..., n] -> [M, n], a C-contiguous view when x is contiguous (a copy otherwise)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _matmul(x, w):
    """x [..., in] @ w [in, out] -> [..., out] as one GEMM over all M rows (BLAS)."""
    y = _rows(x) @ w  # [M, in] @ [in, out] -> [M, out]
    return y.reshape(*x.shape[:-1], w.shape[-1])


def tubelet_embed(pixel_values, w, b, tubelet):
    """[B, T, C, H, W] -> [B, P, D]; layers.tubelet_embed (= HF's Conv3d with stride = kernel)."""
    if not _float32(pixel_values, w, b):
        return layers.tubelet_embed(pixel_values, w, b, tubelet)
    B, T, C, H, W = pixel_values.shape
    tt, ph, pw = tubelet
    P = (T // tt) * (H // ph) * (W // pw)
    patches = np.empty((B * P, tt * ph * pw * C), np.float32)  # [B*P, K], contiguous GEMM operand
    with KERNEL_LOCK:
        patchify_(patches, np.ascontiguousarray(pixel_values), tt, ph, pw)
        y = patches @ w  # [B*P, K] @ [K, D] -> [B*P, D]
        add_bias_residual_(y, b, None)
    return y.reshape(B, P, w.shape[1])  # [B, P, D]


def linear(x, w, b=None, residual=None):
    """x @ w + b (+ residual); layers.linear. Bias and residual are added in one pass over the output."""
    if not _float32(x, w, b, residual) or (residual is not None and residual.shape != (*x.shape[:-1], w.shape[1])):
        return layers.linear(x, w, b, residual)
    y = _matmul(x, w)  # [..., in] -> [..., out]
    if b is not None or residual is not None:
        with KERNEL_LOCK:
            add_bias_residual_(y.reshape(-1, y.shape[-1]), b, None if residual is None else _rows(residual))
    return y


def linear_act(x, w, b, name):
    """act(x @ w + b); layers.linear_act. GELU variants, quick_gelu, silu and relu are fused with the
    bias add in one parallel pass; other activations run layers.activation after the bias add."""
    if name not in layers.ACTIVATIONS:
        return layers.linear_act(x, w, b, name)  # raises the reference's clear error
    if not _float32(x, w, b):
        return layers.linear_act(x, w, b, name)
    y = _matmul(x, w)  # [..., in] -> [..., F]
    with KERNEL_LOCK:
        if name in FUSED_ACTIVATIONS:
            bias_act_(y.reshape(-1, y.shape[-1]), b, FUSED_ACTIVATIONS[name])
            return y
        add_bias_residual_(y.reshape(-1, y.shape[-1]), b, None)
    return layers.activation(y, name)


def layer_norm(x, g, b, eps):
    """LayerNorm over the last axis; layers.layer_norm."""
    if not _float32(x, g, b):
        return layers.layer_norm(x, g, b, eps)
    out = np.empty(x.shape, np.float32)
    with KERNEL_LOCK:
        layer_norm_(out.reshape(-1, x.shape[-1]), _rows(x), g, b, f32(eps))
    return out


def attention(q, k, v, num_heads, head_mask=None, probs=None):
    """Multi-head attention; layers.attention. Blocked over queries (numba_attention.py): the N x N
    matrix exists only when probs="full" asks for it; probs="cls" returns the CLS rows [B, nh, N]."""
    if probs not in (None, "full", "cls"):
        raise ValueError(f"probs must be None, 'full' or 'cls'; got {probs!r}")
    if not _float32(q, k, v):
        return layers.attention(q, k, v, num_heads, head_mask, probs)
    with KERNEL_LOCK:
        return numba_attention.attention(q, k, v, num_heads, head_mask, probs)
