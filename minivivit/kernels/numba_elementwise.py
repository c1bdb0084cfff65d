"""Parallel numba kernels for the element-wise work around the GEMMs (float32, in place where possible).

Each kernel is the fused form of a few lines of minivivit/layers.py (named in its docstring); the
matrix products themselves stay in BLAS (NumPy's `@`), see minivivit/kernels/numba_backend.py.
Convention (llm.c's): the array written comes first, with a trailing underscore in the name when it
is updated in place. Rows are split over NUMBA_NUM_THREADS threads with `prange`.

Letters as in minivivit/layers.py; M = number of rows (B*N tokens, or B*P tubelets).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_math import (
    exp2_f32,
    exp_f32,
    gelu_f32,
    gelu_fast_f32,
    gelu_tanh_f32,
    quick_gelu_f32,
    relu_f32,
    silu_f32,
)

# Reassociation lets LLVM vectorise sums; contraction allows FMA. No "nnan"/"ninf": inf and NaN
# must keep their meaning (exp(-inf) = 0, GELU(+-400) finite).
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

f32 = np.float32

# Activations with a fused numba kernel (the rest run layers.activation after the bias add).
# Each code selects one branch of bias_act_; each formula is in numba_math.py beside its twin's name.
GELU, GELU_FAST, GELU_TANH, QUICK_GELU, SILU, RELU = range(6)
FUSED_ACTIVATIONS = {
    "gelu": GELU, "gelu_python": GELU,  # layers.gelu
    "gelu_fast": GELU_FAST,  # layers.gelu_fast (ViViT's default)
    "gelu_new": GELU_TANH, "gelu_pytorch_tanh": GELU_TANH, "gelu_python_tanh": GELU_TANH,
    "gelu_accurate": GELU_TANH,  # layers.gelu_tanh
    "quick_gelu": QUICK_GELU,  # layers.quick_gelu
    "silu": SILU, "swish": SILU,  # layers.silu
    "relu": RELU,  # layers.relu
}  # fmt: skip


@njit(parallel=True, cache=True, error_model="numpy")
def patchify_(out, pixel_values, tt, ph, pw):
    """out [B*P, K] <- the tubelets of pixel_values [B, T, C, H, W]: layers.patchify, written straight into a
    contiguous GEMM operand (no transposed temporaries). Row b*P + j is tubelet j of clip b, values
    ordered (frame, row, col, channel), HF's Conv3d flatten order."""
    B, T, C, H, W = pixel_values.shape
    t, h, w = T // tt, H // ph, W // pw
    P = t * h * w
    for row in prange(B * P):
        b, j = row // P, row % P  # clip, tubelet
        ti, yi, xi = j // (h * w), (j % (h * w)) // w, j % w  # tubelet grid position
        col = 0
        for dt in range(tt):
            for py in range(ph):
                for px in range(pw):
                    for c in range(C):
                        out[row, col] = pixel_values[b, ti * tt + dt, c, yi * ph + py, xi * pw + px]
                        col += 1


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def add_bias_residual_(y, bias, residual):
    """y [M, n] += bias [n] (+ residual [M, n]): the tail of layers.linear in one pass over y.
    bias or residual may be None (numba compiles a version without that branch)."""
    M, n = y.shape
    for i in prange(M):
        if bias is not None:
            for j in range(n):
                y[i, j] += bias[j]
        if residual is not None:
            for j in range(n):
                y[i, j] += residual[i, j]


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def bias_act_(y, bias, act):
    """y [M, F] <- act(y + bias): layers.linear_act's bias add and activation, in place, one pass.
    act is one of GELU .. RELU above; the branch is taken once per row so each inner loop vectorises."""
    M, F = y.shape
    for i in prange(M):
        r = y[i]  # [F] view
        if act == GELU:
            for j in range(F):
                r[j] = gelu_f32(r[j] + bias[j])
        elif act == GELU_FAST:
            for j in range(F):
                r[j] = gelu_fast_f32(r[j] + bias[j])
        elif act == GELU_TANH:
            for j in range(F):
                r[j] = gelu_tanh_f32(r[j] + bias[j])
        elif act == QUICK_GELU:
            for j in range(F):
                r[j] = quick_gelu_f32(r[j] + bias[j])
        elif act == SILU:
            for j in range(F):
                r[j] = silu_f32(r[j] + bias[j])
        elif act == RELU:
            for j in range(F):
                r[j] = relu_f32(r[j] + bias[j])


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def layer_norm_(out, x, g, b, eps):
    """out [M, D] <- LayerNorm of each row of x [M, D]; layers.layer_norm (biased variance, as torch).
    Two passes over a row that sits in L1 (mean, then variance), then one that writes out."""
    M, D = x.shape
    for i in prange(M):
        total = f32(0.0)
        for j in range(D):
            total += x[i, j]
        mean = total / f32(D)
        sq = f32(0.0)
        for j in range(D):
            sq += (x[i, j] - mean) * (x[i, j] - mean)
        inv_std = f32(1.0) / np.sqrt(sq / f32(D) + eps)
        for j in range(D):
            out[i, j] = (x[i, j] - mean) * inv_std * g[j] + b[j]


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def exp_(out, x):
    """out <- exp_f32(x) element-wise over 1-D arrays; np.exp. Used by the tests to measure exp_f32's
    error in the same compiled setting (fastmath flags, vector loop) as the kernels that call it."""
    for i in prange(x.size):
        out[i] = exp_f32(x[i])


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def exp2_(out, x):
    """out <- exp2_f32(x) element-wise over 1-D arrays; np.exp2. For the tests, like exp_."""
    for i in prange(x.size):
        out[i] = exp2_f32(x[i])
