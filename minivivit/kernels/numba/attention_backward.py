"""Blocked ("flash"-style) backward of multi-head attention on the CPU: BLAS products, numba element-wise.

NumPy twin (the specification): minivivit/grad/attention.py `attention_backward`, which recomputes one
head's whole [B, N, N] probabilities and keeps ~4 such arrays alive. Here, per clip b and head h, the
queries are taken r rows at a time (r <= QUERY_BLOCK) and nothing larger than [r, N] exists:

    S  = Q_blk K^T                   [r, d] @ [d, N] -> [r, N]   BLAS
    P  = softmax(S s)                in place (the forward's blocked_attention.softmax_rows_, gain 1)
    dV += P^T dO_blk                 [N, r] @ [r, d]             BLAS  (times m at the end)
    dA = dO_blk V^T                  [r, d] @ [d, N] -> [r, N]   BLAS
    dS = P (m dA - delta) s          in place (softmax_grad_), delta_i = rowsum(dO_i * O_i)
    dQ_blk = dS K                    [r, N] @ [N, d]             BLAS
    dK += dS^T Q_blk                 [N, r] @ [r, d]             BLAS

with s = 1 / sqrt(d), m = the head's head_mask value and O the forward's context (after the mask).
delta is the softmax backward's rowsum(dP * P), computed from O instead of from a whole row of P:
sum_j m dA_ij P_ij = sum_j dA_ij A_ij = sum_c dO_ic (A V)_ic = rowsum(dO * O)_i (FlashAttention-2's D).
A head with m = 0 has A = 0, so all its gradients are 0 (nothing computed).
Attention dropout and dL/dA (on_probs) are not handled here: grad/ falls back to the NumPy twin for them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .blocked_attention import softmax_rows_
from .elementwise import FASTMATH

f32 = np.float32
ONE = f32(1.0)  # softmax_rows_'s gain: the plain probabilities
QUERY_BLOCK = 1024  # query rows per block: two [r, N] buffers, <= 2 x 12.8 MB for ViViT-B (N = 3137)


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def softmax_grad_(p, da, delta, gain, scale):
    """p [r, N] <- p * (gain * da - delta[:, None]) * scale, in place: dS of the scaled scores
    (grad.layers.softmax_backward with dP = gain * dA and rowsum(dP * P) = delta [r])."""
    r, N = p.shape
    for i in prange(r):
        pi, dai, di = p[i], da[i], delta[i]
        for j in range(N):
            pi[j] = pi[j] * (gain * dai[j] - di) * scale


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def row_dot_(out, a, b):
    """out [n] <- rowsum(a * b) for a, b [n, d] (delta = rowsum(dO * O))."""
    n, d = a.shape
    for i in prange(n):
        total = f32(0.0)
        for j in range(d):
            total += a[i, j] * b[i, j]
        out[i] = total


def attention_backward(dcontext, q, k, v, context, num_heads, head_mask=None, block=QUERY_BLOCK):
    """(dq, dk, dv), each [B, N, D], of layers.attention given dL/dcontext; float32 arrays [B, N, D].

    context: the forward's output of attention (heads merged, head_mask applied); head_mask [nh] or None.
    Equal to grad.attention.attention_backward(dcontext, q, k, v, num_heads, head_mask) up to rounding.
    """
    B, N, D = q.shape
    d = D // num_heads
    scale = f32(d**-0.5)
    dq, dk, dv = (np.zeros((B, N, D), np.float32) for _ in range(3))
    rows = -(-N // -(-N // block))  # at most `block` rows, blocks of equal size: N = 3137 -> 4 x 785
    s_buf, da_buf = np.empty((rows, N), np.float32), np.empty((rows, N), np.float32)  # [r, N], reused
    delta = np.empty(N, np.float32)  # [N]
    for b in range(B):
        for h in range(num_heads):
            gain = f32(1.0) if head_mask is None else f32(head_mask[h])
            if gain == 0:
                continue  # a masked head: A = 0, every gradient 0 (already zeros)
            cols = slice(h * d, (h + 1) * d)
            qh, kh, vh = (np.ascontiguousarray(a[b, :, cols]) for a in (q, k, v))  # [N, d] each
            doh, oh = np.ascontiguousarray(dcontext[b, :, cols]), np.ascontiguousarray(context[b, :, cols])
            row_dot_(delta, doh, oh)  # [N]
            dkh, dvh = np.zeros((N, d), np.float32), np.zeros((N, d), np.float32)  # [N, d] accumulators
            for start in range(0, N, rows):
                stop = min(start + rows, N)
                s, da = s_buf[: stop - start], da_buf[: stop - start]  # [r, N] views
                np.matmul(qh[start:stop], kh.T, out=s)  # [r, d] @ [d, N] -> [r, N]
                softmax_rows_(s, scale, ONE)  # P (the head mask is applied to dA below)
                dvh += s.T @ doh[start:stop]  # [N, r] @ [r, d] -> [N, d]
                np.matmul(doh[start:stop], vh.T, out=da)  # dA: [r, d] @ [d, N] -> [r, N]
                softmax_grad_(s, da, delta[start:stop], gain, scale)  # dS (scaled), in place of P
                dq[b, start:stop, cols] = s @ kh  # [r, N] @ [N, d] -> [r, d]
                dkh += s.T @ qh[start:stop]  # [N, r] @ [r, d] -> [N, d]
            dk[b, :, cols] = dkh
            dv[b, :, cols] = dvh if gain == 1 else dvh * gain
    return dq, dk, dv
