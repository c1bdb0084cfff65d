"""Fused multi-head attention on the CPU: one parallel numba region per layer, single-threaded SGEMMs inside.

NumPy twin: minivivit/layers.py `attention` (scores -> softmax -> probabilities @ V). The work of a layer is cut
into tasks (clip b, head h, block of ROWS queries), dealt round-robin to the threads; each thread keeps one
[ROWS, N] tile of scores (ViViT-B: 256 x 3137 floats = 3.2 MB, in its share of L3) and for each task

    S  = Q_blk K_h^T              [r, d] x [d, N] -> [r, N]   sgemm, read straight from q, k (row stride D)
    S <- 2**((S - max) c)          row max, then exp and the row sum in one pass (c = log2(e) / sqrt d)
    context[blk, head h] = S V_h   [r, N] x [N, d] -> [r, d]  sgemm, written straight into context's columns
    context rows *= gain / sum     the normalisation, on r x d outputs instead of r x N probabilities

so no head is copied, there is one parallel region instead of ~100 BLAS calls and ~50 numba regions, and the
N x N matrix never exists. gain is the head_mask entry of the head (it multiplies the probabilities, as in
layers.attention). For output_attentions="cls" the first query's normalised row is kept too (the backend uses
blocked_attention.py for "cls" and "full", so that CLS rows equal the full maps' first rows bit for bit).

The GEMMs are SciPy's cython_blas sgemm (blas.py), column-major: the row-major [r, N] tile with stride N is the
column-major [N, r] matrix, so S = Q K^T is computed as S^T = K Q^T ('T', 'N') and S V as (S V)^T = V^T S^T.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import blas
from .elementwise import FASTMATH
from .scalar import exp2_f32, fmax_f32

f32 = np.float32
LOG2E = f32(1.4426950408889634)
# Query rows per task: fewer rows mean more, smaller GEMMs (K and V re-packed per task), more rows a tile that
# leaves the cache. One thread, one ViViT-B layer (CPU ms): 32 rows 604, 64 513, 128 425, 256 403, 512 393.
ROWS = 256  # 256 x 3137 floats = 3.2 MB per thread for ViViT-B; 13 blocks x 12 heads = 156 tasks
_T, _N = 84, 78  # 'T', 'N' (Fortran's transpose flags, as bytes)


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def attention_(context, cls, q, k, v, num_heads, scale, gains, rows, threads, sgemm):
    """context [B, N, D] <- softmax(Q K^T * scale) * gains[h] @ V per head; cls [B, nh, N] (or [0, 0, 0]) <- the
    first query's probabilities. q, k, v [B, N, D] C-contiguous float32; threads = numba.get_num_threads();
    sgemm = blas.sgemm_address()."""
    B, N, D = q.shape
    d = D // num_heads
    blocks = (N + rows - 1) // rows
    tasks = B * num_heads * blocks
    threads = min(threads, tasks)
    c = scale * LOG2E
    keep_cls = cls.shape[0] > 0
    for t in prange(threads):
        s = np.empty((rows, N), np.float32)  # this thread's tile of scores, then of exponentials
        inv = np.empty(rows, np.float32)  # gain / row sum
        ints = np.empty(6, np.int32)  # Fortran by-reference sizes: m, n, k, lda, ldb, ldc
        flags = np.empty(2, np.uint8)  # transa, transb
        flags[0], flags[1] = _T, _N
        coef = np.empty(2, np.float32)  # alpha, beta
        coef[0], coef[1] = 1.0, 0.0
        for task in range(t, tasks, threads):  # consecutive tasks share a head: its K, V stay in cache
            b, h, i0 = task // (num_heads * blocks), (task // blocks) % num_heads, (task % blocks) * rows
            r = min(rows, N - i0)
            qp, kp, vp = q[b, i0:, h * d:].ctypes.data, k[b, :, h * d:].ctypes.data, v[b, :, h * d:].ctypes.data
            out = context[b, i0:i0 + r, h * d:(h + 1) * d]  # [r, d] view, row stride D
            # S^T [N, r] (ld N) = (K_h^T [d, N], ld D)^T x Q_blk^T [d, r] (ld D)
            ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = N, r, d, D, D, N
            blas.sgemm_call(sgemm, flags.ctypes.data, flags[1:].ctypes.data, ints.ctypes.data, ints[1:].ctypes.data,
                            ints[2:].ctypes.data, coef.ctypes.data, kp, ints[3:].ctypes.data, qp, ints[4:].ctypes.data,
                            coef[1:].ctypes.data, s.ctypes.data, ints[5:].ctypes.data)
            g = gains[h]
            for i in range(r):
                row = s[i]  # [N] scores of query i0 + i
                m = row[0]
                for j in range(1, N):
                    m = fmax_f32(m, row[j])  # row max (vectorised; ignores NaN, which exp2 then propagates)
                total = f32(0.0)
                for j in range(N):
                    e = exp2_f32((row[j] - m) * c)
                    row[j] = e
                    total += e
                inv[i] = g / total
            if keep_cls and i0 == 0:
                for j in range(N):
                    cls[b, h, j] = s[0, j] * inv[0]
            # (S V_h)^T [d, r] (ld D) = V_h^T [d, N] (ld D) x S^T [N, r] (ld N)
            ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = d, r, N, D, N, D
            blas.sgemm_call(sgemm, flags[1:].ctypes.data, flags[1:].ctypes.data, ints.ctypes.data,
                            ints[1:].ctypes.data, ints[2:].ctypes.data, coef.ctypes.data, vp, ints[3:].ctypes.data,
                            s.ctypes.data, ints[4:].ctypes.data, coef[1:].ctypes.data, out.ctypes.data,
                            ints[5:].ctypes.data)
            for i in range(r):
                for j in range(d):
                    out[i, j] *= inv[i]


def attention(q, k, v, num_heads, head_mask=None, output_attentions=None, rows=ROWS):
    """Multi-head attention, q, k, v [B, N, D] float32 -> (context [B, N, D], None | [B, nh, N]); the twin of
    layers.attention for output_attentions None or "cls" (blas.available() must be True)."""
    q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
    B, N, D = q.shape
    d = D // num_heads
    context = np.empty((B, N, D), np.float32)
    cls = np.empty((B, num_heads, N) if output_attentions == "cls" else (0, 0, 0), np.float32)
    gains = np.ones(num_heads, np.float32) if head_mask is None else np.asarray(head_mask, np.float32).reshape(-1)
    sgemm = blas.sgemm_address()  # (raises a clear error when SciPy's BLAS is not usable)
    with blas.single_threaded():
        attention_(context, cls, q, k, v, num_heads, f32(d**-0.5), gains, min(rows, N), numba.get_num_threads(), sgemm)
    return context, (cls if output_attentions == "cls" else None)
