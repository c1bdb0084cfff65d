"""The "numba" backend: the ops of minivivit/kernels/__init__.py, fast on a multi-core CPU.

Each op is the NumPy twin in minivivit/layers.py with the same signature, re-planned for speed:

    op              BLAS (NumPy `@`, OpenBLAS threads)      numba kernel (NUMBA_NUM_THREADS threads)
    tubelet_embed   patches [B*P, K] @ w [K, D]             patchify_ before, add_bias_ after
    prepend_cls     -                                       - (one NumPy copy)
    add             -                                       add_ (residuals; positions over the batch)
    linear          x [M, in] @ w [in, out]                 add_bias_
    activation      -                                       bias_act_ with a zero bias
    linear_act      x [M, in] @ w [in, F]                   bias_act_ (bias + GELU/... in place)
    layer_norm      -                                       layer_norm_
    attention       one parallel region per layer over (clip, head, query block), SciPy's single-threaded
                    sgemm inside, softmax fused between (fused_attention.py); when maps are asked for
                    (full or CLS rows: the same rows, bit for bit) or without SciPy's BLAS: Q_blk K^T and
                    P V per query block (NumPy BLAS) + softmax_rows_ (blocked_attention.py)

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

from ... import layers
from ...tokens import clip_thw, tubelet_grid
from . import blas, blocked_attention, fused_attention
from .elementwise import add_, add_bias_, bias_act_, fused_code, layer_norm_, patchify_

f32 = np.float32

if "NUMBA_THREADING_LAYER" not in os.environ:  # takes effect if no parallel numba code has run yet
    numba.config.THREADING_LAYER = "workqueue"
ATTENTION_ENV = "MINIVIVIT_NUMBA_ATTENTION"  # =blocked: the blocked kernel always (to compare the two)
KERNEL_LOCK = threading.Lock()  # one op at a time per process (workqueue is not thread-safe)
prepend_cls = layers.prepend_cls
to_numpy = layers.to_numpy


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
    B = pixel_values.shape[0]
    grid = tubelet_grid(clip_thw(pixel_values.shape), tubelet)  # (t, h, w)
    P = grid[0] * grid[1] * grid[2]
    patches = np.empty((B * P, w.shape[0]), np.float32)  # [B*P, K], contiguous GEMM operand
    with KERNEL_LOCK:
        patchify_(patches, np.ascontiguousarray(pixel_values), tuple(tubelet), grid)
        y = patches @ w  # [B*P, K] @ [K, D] -> [B*P, D]
        add_bias_(y, b)
    return y.reshape(B, P, w.shape[1])  # [B, P, D]


def add(a, b):
    """a + b with b's rows repeated over a's leading axes; layers.add."""
    if not _float32(a, b) or b.ndim > a.ndim or b.shape != a.shape[a.ndim - b.ndim:]:
        return layers.add(a, b)  # another dtype, or a broadcast that is not "b repeated over leading axes"
    out = np.empty(a.shape, np.float32)
    with KERNEL_LOCK:
        add_(out.reshape(-1, a.shape[-1]), _rows(a), _rows(b))
    return out


def linear(x, w, b=None):
    """x @ w + b; layers.linear. The bias is added in one parallel pass over the output."""
    if not _float32(x, w, b):
        return layers.linear(x, w, b)
    y = _matmul(x, w)  # [..., in] -> [..., out]
    if b is not None:
        with KERNEL_LOCK:
            add_bias_(y.reshape(-1, y.shape[-1]), b)
    return y


def activation(x, name):
    """act(x); layers.activation. Fused kernels where there is one, else the reference."""
    code = fused_code(name)  # raises the reference's clear error for an unknown name
    if code is None or not _float32(x):
        return layers.activation(x, name)
    y = np.array(x, dtype=np.float32, order="C")  # a fresh copy, activated in place
    with KERNEL_LOCK:
        bias_act_(y.reshape(-1, y.shape[-1]), np.zeros(y.shape[-1], np.float32), code)
    return y


def linear_act(x, w, b, name):
    """act(x @ w + b); layers.linear_act. GELU variants, quick_gelu, silu and relu are fused with the
    bias add in one parallel pass; other activations run layers.activation after the bias add."""
    code = fused_code(name)  # raises the reference's clear error for an unknown name
    if not _float32(x, w, b):
        return layers.linear_act(x, w, b, name)
    y = _matmul(x, w)  # [..., in] -> [..., F]
    with KERNEL_LOCK:
        if code is not None:
            bias_act_(y.reshape(-1, y.shape[-1]), b, code)
            return y
        add_bias_(y.reshape(-1, y.shape[-1]), b)
    return layers.activation(y, name)


def layer_norm(x, g, b, eps):
    """LayerNorm over the last axis; layers.layer_norm."""
    if not _float32(x, g, b):
        return layers.layer_norm(x, g, b, eps)
    out = np.empty(x.shape, np.float32)
    with KERNEL_LOCK:
        layer_norm_(out.reshape(-1, x.shape[-1]), _rows(x), g, b, f32(eps))
    return out


def attention(q, k, v, num_heads, head_mask=None, output_attentions=None):
    """Multi-head attention; layers.attention. Fused (fused_attention.py) or blocked over queries
    (blocked_attention.py): the N x N matrix exists only when output_attentions="full" asks for it; "cls" returns
    the CLS rows [B, nh, N]."""
    if output_attentions not in (None, "full", "cls"):
        raise ValueError(f"output_attentions must be None, 'full' or 'cls'; got {output_attentions!r}")
    if not _float32(q, k, v):
        return layers.attention(q, k, v, num_heads, head_mask, output_attentions)
    with KERNEL_LOCK:
        if output_attentions is None and blas.available() and os.environ.get(ATTENTION_ENV) != "blocked":
            return fused_attention.attention(q, k, v, num_heads, head_mask, output_attentions)
        return blocked_attention.attention(q, k, v, num_heads, head_mask, output_attentions)
