"""Parallel numba kernels for the element-wise work around the GEMMs (float32, in place where possible).

Each kernel is the fused form of a few lines of minivivit/layers.py (named in its docstring); the
matrix products themselves stay in BLAS (NumPy's `@`), see minivivit/kernels/numba/__init__.py.
Convention (llm.c's): the array written comes first, with a trailing underscore in the name when it
is updated in place. Rows are split over NUMBA_NUM_THREADS threads with `prange`.

Letters as in minivivit/layers.py; M = number of rows (B*N tokens, or B*P tubelets).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ... import layers
from .scalar import (
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

# Activations with a fused numba kernel, keyed by their NumPy twin in layers.py (every hidden_act name
# that means that formula gets it; the rest run layers.activation after the bias add). Each code selects
# one branch of bias_act_; each formula is in scalar.py beside its twin's name.
GELU, GELU_FAST, GELU_TANH, QUICK_GELU, SILU, RELU = range(6)
FUSED = {layers.gelu: GELU, layers.gelu_fast: GELU_FAST, layers.gelu_tanh: GELU_TANH, layers.quick_gelu: QUICK_GELU,
         layers.silu: SILU, layers.relu: RELU}


def fused_code(name: str) -> int | None:
    """The bias_act_ code of hidden_act `name`, or None when it has no fused kernel (clear error if unknown)."""
    return FUSED.get(layers.activation_function(name))


@njit(parallel=True, cache=True, error_model="numpy")
def patchify_(out, pixel_values, tubelet, grid):
    """out [B*P, K] <- the tubelets of pixel_values [B, T, C, H, W]: layers.patchify, written straight into a
    contiguous GEMM operand (no transposed temporaries). Row b*P + j is tubelet j of clip b, values
    ordered (frame, row, col, channel), HF's Conv3d flatten order (minivivit/tokens.py).
    tubelet = (tt, ph, pw); grid = (t, h, w) from tokens.tubelet_grid."""
    B, T, C, H, W = pixel_values.shape
    tt, ph, pw = tubelet
    t, h, w = grid
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
def add_bias_(y, bias):
    """y [M, n] += bias [n]: the tail of layers.linear, in one parallel pass over y."""
    M, n = y.shape
    for i in prange(M):
        for j in range(n):
            y[i, j] += bias[j]


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def add_(out, a, b):
    """out [M, n] <- a [M, n] + b [R, n], row i of out taking row i % R of b: layers.add, for residuals
    (R = M) and for position embeddings added to every clip of a batch (a = [B*N, D], b = [N, D])."""
    M, n = a.shape
    R = b.shape[0]
    for i in prange(M):
        r = i % R
        for j in range(n):
            out[i, j] = a[i, j] + b[r, j]


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
