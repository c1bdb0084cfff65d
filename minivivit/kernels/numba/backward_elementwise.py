"""Fused numba kernels for the element-wise parts of the backward (float32, rows in parallel).

NumPy twins (the specification): minivivit/grad/activations.py (activation_backward, DERIVATIVES) and
minivivit/grad/layers.py (layer_norm_backward). Each NumPy twin makes several passes over [M, F] arrays
(a temporary per operation); each kernel here makes one pass per row, with the row in L1.
Letters as in minivivit/layers.py; M = number of rows (B*N tokens).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import FASTMATH, GELU, GELU_FAST, GELU_TANH, QUICK_GELU, RELU, SILU
from .scalar import E0, E1, E2, E3, E4, E5, E6, E7, E8, E9, INV_SQRT2, SQRT_2_OVER_PI, exp_f32, sigmoid_f32

f32 = np.float32
INV_SQRT_2PI = f32(0.3989422804014327)
GELU_FAST_K = f32(0.7978845608)
A = f32(0.044715)


@njit(cache=True, error_model="numpy")
def d_gelu_f32(x):
    """GELU'(x) = Phi(x) + x phi(x); grad.activations.d_gelu (Phi from the same erfc fit as scalar.gelu_f32)."""
    z = abs(x * INV_SQRT2)
    t = f32(1.0) / (f32(1.0) + f32(0.5) * z)
    poly = E0 + t * (E1 + t * (E2 + t * (E3 + t * (E4 + t * (E5 + t * (E6 + t * (E7 + t * (E8 + t * E9))))))))
    c = f32(0.5) * t * exp_f32(-z * z + poly)  # Phi(-|x|) = 0.5 erfc(|x| / sqrt 2)
    phi = (f32(1.0) - c) if x >= 0 else c
    return phi + x * exp_f32(f32(-0.5) * x * x) * INV_SQRT_2PI


@njit(cache=True, error_model="numpy")
def d_tanh_gelu_f32(x, k):
    """grad.activations._d_tanh_gelu: s + 2 x s sigmoid(-z) k (1 + 3 a x^2), s = sigmoid(z), z = 2u."""
    z = f32(2.0) * k * x * (f32(1.0) + A * x * x)
    s, s_neg = sigmoid_f32(z), sigmoid_f32(-z)
    return s + f32(2.0) * x * s * s_neg * k * (f32(1.0) + f32(3.0) * A * x * x)


@njit(cache=True, error_model="numpy")
def d_quick_gelu_f32(x):
    """grad.activations.d_quick_gelu: s + z s sigmoid(-z), z = 1.702 x."""
    z = f32(1.702) * x
    s = sigmoid_f32(z)
    return s + z * s * sigmoid_f32(-z)


@njit(cache=True, error_model="numpy")
def d_silu_f32(x):
    """grad.activations.d_silu: s + x s sigmoid(-x)."""
    s = sigmoid_f32(x)
    return s + x * s * sigmoid_f32(-x)


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def act_backward_(d, x, act):
    """d [M, F] <- d * f'(x) in place, x [M, F] the activation's input; grad.activations.activation_backward.
    act: one of elementwise.GELU .. RELU (the codes of the forward's bias_act_)."""
    M, F = d.shape
    for i in prange(M):
        r, xi = d[i], x[i]  # [F] views
        if act == GELU:
            for j in range(F):
                r[j] *= d_gelu_f32(xi[j])
        elif act == GELU_FAST:
            for j in range(F):
                r[j] *= d_tanh_gelu_f32(xi[j], GELU_FAST_K)
        elif act == GELU_TANH:
            for j in range(F):
                r[j] *= d_tanh_gelu_f32(xi[j], SQRT_2_OVER_PI)
        elif act == QUICK_GELU:
            for j in range(F):
                r[j] *= d_quick_gelu_f32(xi[j])
        elif act == SILU:
            for j in range(F):
                r[j] *= d_silu_f32(xi[j])
        elif act == RELU:
            for j in range(F):
                r[j] *= f32(1.0) if xi[j] > f32(0.0) else f32(0.0)  # d_relu: 0 at x = 0


# No "contract" for LayerNorm: an FMA would fuse dy*g - mean(dn) in one loop but not the product in the
# other, and the product's rounding error, times rstd = 1/sqrt(eps) on a constant row, is no longer 0.
NO_FMA = FASTMATH - {"contract"}


@njit(parallel=True, cache=True, fastmath=NO_FMA, error_model="numpy")
def layer_norm_backward_(dx, dg_parts, db_parts, dy, x, g, eps):
    """LayerNorm backward of rows x [M, D] given dy [M, D]; grad.layers.layer_norm_backward.

    dx [M, D] <- rstd (dn - mean(dn) - xhat mean(dn xhat)), dn = dy g, mean and rstd recomputed per row.
    dg_parts, db_parts [C, D] <- the sums of dy xhat and of dy over chunk c of the rows (C chunks run in
    parallel; the caller sums them over C: dL/dg, dL/db).
    """
    M, D = x.shape
    C = dg_parts.shape[0]
    inv_d = f32(1.0) / f32(D)
    for c in prange(C):
        dgc, dbc = dg_parts[c], db_parts[c]  # [D] views
        for j in range(D):
            dgc[j] = f32(0.0)
            dbc[j] = f32(0.0)
        for i in range(c * M // C, (c + 1) * M // C):
            xi, dyi, dxi = x[i], dy[i], dx[i]  # [D] views
            total = f32(0.0)
            for j in range(D):
                total += xi[j]
            mean = total * inv_d
            sq = f32(0.0)
            for j in range(D):
                sq += (xi[j] - mean) * (xi[j] - mean)
            rstd = f32(1.0) / np.sqrt(sq * inv_d + eps)
            s1 = f32(0.0)  # sum of dn
            s2 = f32(0.0)  # sum of dn * xhat
            for j in range(D):
                xh = (xi[j] - mean) * rstd
                dn = dyi[j] * g[j]
                s1 += dn
                s2 += dn * xh
                dgc[j] += dyi[j] * xh
                dbc[j] += dyi[j]
            s1 *= inv_d
            s2 *= inv_d
            for j in range(D):
                xh = (xi[j] - mean) * rstd
                dxi[j] = rstd * (dyi[j] * g[j] - s1 - xh * s2)


def layer_norm_backward(dy, x, g, eps, chunks: int = 64):
    """(dx [..., D], dg [D], db [D]) like grad.layers.layer_norm_backward, for float32 dy, x, g."""
    D = x.shape[-1]
    x2, dy2 = np.ascontiguousarray(x).reshape(-1, D), np.ascontiguousarray(dy).reshape(-1, D)  # [M, D]
    C = max(1, min(chunks, x2.shape[0]))
    dx = np.empty_like(x2)  # [M, D]
    dg_parts, db_parts = np.empty((C, D), np.float32), np.empty((C, D), np.float32)  # [C, D]
    layer_norm_backward_(dx, dg_parts, db_parts, dy2, x2, np.ascontiguousarray(g), f32(eps))
    return dx.reshape(x.shape), dg_parts.sum(axis=0), db_parts.sum(axis=0)


def activation_backward(dy, x, code):
    """dy * f'(x) as a new array (dy untouched), for a fused activation code; [...] -> [...]."""
    d = np.array(dy, dtype=np.float32, order="C")  # a fresh copy, multiplied in place
    act_backward_(d.reshape(-1, d.shape[-1]), np.ascontiguousarray(x).reshape(-1, x.shape[-1]), code)
    return d
