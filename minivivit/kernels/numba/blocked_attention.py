"""Blocked ("flash"-style) multi-head attention on the CPU: BLAS for the products, numba for softmax.

NumPy twin: minivivit/layers.py `attention` (scores -> softmax -> probabilities @ V). Here the
queries are taken QUERY_BLOCK rows at a time, per clip and head:

    S = Q_blk K^T                 [r, d] @ [d, N] -> [r, N]   BLAS, into one reused buffer
    S <- softmax(S / sqrt d) * m  fused max / exp / sum / scale in numba, in place, rows in parallel
    context[blk] = S V            [r, N] @ [N, d] -> [r, d]   BLAS, written into the output

so memory holds r x N scores, never N x N, unless the caller asked for the full probabilities (output_attentions="full")
(then each block is computed straight into its rows of the [B, nh, N, N] result). m is the
head_mask entry of the head: it multiplies the probabilities, as in layers.attention.
Unlike FlashAttention proper there is no running max over key blocks: a whole row of keys
(N = 3137 floats = 12 KB for ViViT-B) fits in L1, so one block of queries sees every key.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import FASTMATH
from .scalar import exp2_f32, fmax_f32

f32 = np.float32
LOG2E = f32(1.4426950408889634)
# Most query rows per block: <= 1024 x 3137 floats = 12.8 MB of scores for ViViT-B (L3-resident; N x N is
# 39 MB per head). Larger blocks mean fewer BLAS calls and parallel regions, each of which waits for both cores:
# on a busy 2-core machine a forward took 3.4x longer with 256-row blocks than with 1024 (same work).
QUERY_BLOCK = 1024


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def softmax_rows_(s, scale, gain):
    """s [r, N] <- softmax(s * scale) * gain, row by row, in place; layers.softmax (+ head mask).

    Max-subtracted like the twin, so huge logits do not overflow, and a row of equal logits gives
    1/N everywhere. In base 2: e**((s - max) scale) = 2**((s - max) c) with c = scale log2(e).
    (Not s c - max c: fused into an FMA, that leaves max c's rounding error, ~1e23 for logits ~1e30.)
    One pass for the max, one for exp and the sum, one for the scale; the row
    (12 KB for ViViT-B) stays in L1 between them.
    """
    r, N = s.shape
    c = scale * LOG2E
    for i in prange(r):
        row = s[i]  # [N] view
        m = row[0]
        for j in range(1, N):
            m = fmax_f32(m, row[j])  # row max (vectorised; ignores NaN, which exp2 then propagates)
        total = f32(0.0)
        for j in range(N):
            e = exp2_f32((row[j] - m) * c)
            row[j] = e
            total += e
        factor = gain / total
        for j in range(N):
            row[j] *= factor


def attention(q, k, v, num_heads, head_mask=None, output_attentions=None, block=QUERY_BLOCK):
    """Multi-head attention, q, k, v [B, N, D] float32 -> (context [B, N, D], None | [B, nh, N, N] | [B, nh, N]).

    Same arguments and results as layers.attention; `block` is the number of query rows per step.
    """
    B, N, D = q.shape
    d = D // num_heads
    scale = f32(d**-0.5)
    context = np.empty((B, N, D), np.float32)
    full = np.empty((B, num_heads, N, N), np.float32) if output_attentions == "full" else None
    cls = np.empty((B, num_heads, N), np.float32) if output_attentions == "cls" else None
    rows = -(-N // -(-N // block))  # at most `block` rows, blocks of equal size: N = 3137 -> 4 x 785
    scores = np.empty((rows, N), np.float32) if full is None else None  # [r, N], reused by every block
    for b in range(B):
        for h in range(num_heads):
            cols = slice(h * d, (h + 1) * d)
            # this head's slices, copied contiguous once (0.8 MB each for ViViT-B): BLAS runs ~5% faster
            qh = np.ascontiguousarray(q[b, :, cols])  # [N, d]
            kh_t = np.ascontiguousarray(k[b, :, cols].T)  # [d, N]
            vh = np.ascontiguousarray(v[b, :, cols])  # [N, d]
            ctx = np.empty((rows, d), np.float32)  # [r, d]
            gain = f32(1.0) if head_mask is None else f32(head_mask[h])
            for i0 in range(0, N, rows):
                i1 = min(i0 + rows, N)
                s = full[b, h, i0:i1] if full is not None else scores[: i1 - i0]  # [r, N]
                np.matmul(qh[i0:i1], kh_t, out=s)  # [r, d] @ [d, N] -> [r, N]
                softmax_rows_(s, scale, gain)  # -> probabilities, in place
                if cls is not None and i0 == 0:
                    cls[b, h] = s[0]  # the CLS query's row
                np.matmul(s, vh, out=ctx[: i1 - i0])  # [r, N] @ [N, d] -> [r, d]
                context[b, i0:i1, cols] = ctx[: i1 - i0]
    return context, (full if full is not None else cls)
