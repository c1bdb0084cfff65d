"""Multi-head attention on the GPU without ever materialising the N x N score matrix.

NumPy twin: layers.attention. This is flash attention (Dao et al. 2022, Algorithm 1) in its plainest
form: one thread owns one query row; the block walks over the keys in tiles of BLOCK_K rows that it
copies to shared memory, and keeps an *online softmax* for each row:

    m  = the largest score seen so far        l = sum of exp(score - m) so far
    acc = sum of exp(score - m) * v so far    (a d-vector)

When a new tile raises the maximum from m to m', the old sums were taken relative to m, so they are
multiplied by exp(m - m') before the tile's terms are added. At the end context = acc / l, which is
exactly softmax(q k^T / sqrt(d)) v. Memory per row: d + 2 numbers, whatever N is (ViViT-B: N = 3137).

Probabilities are only written when asked for: a second pass recomputes each score and writes
exp(score - m) / l, for every row ("full", [B, nh, N, N]) or only for query 0 ("cls", [B, nh, N]).

q, k, v, context are [B, N, D] with head h in columns [h*d, (h+1)*d), so no split_heads copy is needed.
"""

from __future__ import annotations

import math

from numba import cuda, float32

from .gemm import ceil_div

BLOCK_Q = 32  # query rows per block, one thread each
BLOCK_K = 32  # key/value rows per shared-memory tile
MAX_HEAD_DIM = 128  # local and shared arrays need a compile-time size; ViViT-B has d = 64
# shared memory per block: 2 tiles * BLOCK_K * MAX_HEAD_DIM * 4 bytes = 32 KB (the static limit is 48 KB)


@cuda.jit(device=True, inline="always")
def load_tile(tile, src, b, k0, col0, N, d):
    """tile[r, c] = src[b, k0 + r, col0 + c] for r < BLOCK_K, c < d (zeros past row N).
    The block shares the copy: thread t copies values t, t + blockDim.x, t + 2*blockDim.x, ..."""
    for idx in range(cuda.threadIdx.x, BLOCK_K * d, cuda.blockDim.x):
        r, c = idx // d, idx % d
        tile[r, c] = src[b, k0 + r, col0 + c] if k0 + r < N else float32(0.0)


@cuda.jit(device=True, inline="always")
def score(q_row, k_tile, j, d, scale):
    """(q . k_j) / sqrt(d) for key j of the tile."""
    s = float32(0.0)
    for c in range(d):
        s += q_row[c] * k_tile[j, c]
    return s * scale


@cuda.jit
def attention_kernel(context, probs, q, k, v, head_mask, scale, first_row_only):
    """context [B, N, D] = softmax(q k^T * scale) v per head, times head_mask[h].

    Block (bx, b*nh + h) handles query rows bx*BLOCK_Q .. +BLOCK_Q of batch b, head h.
    probs: None (no probabilities), [B, nh, N, N] (every row) or, with first_row_only, [B, nh, 1, N].
    """
    k_tile = cuda.shared.array((BLOCK_K, MAX_HEAD_DIM), float32)
    v_tile = cuda.shared.array((BLOCK_K, MAX_HEAD_DIM), float32)
    q_row = cuda.local.array(MAX_HEAD_DIM, float32)  # this thread's query, in registers/local memory
    acc = cuda.local.array(MAX_HEAD_DIM, float32)
    scores = cuda.local.array(BLOCK_K, float32)
    N, D = q.shape[1], q.shape[2]
    nh = head_mask.shape[0]
    d = D // nh
    b, h = cuda.blockIdx.y // nh, cuda.blockIdx.y % nh
    col0 = h * d  # this head's first column
    i = cuda.blockIdx.x * BLOCK_Q + cuda.threadIdx.x  # this thread's query row
    # Bounds guard: rows past N cannot return early, because every thread must reach each syncthreads()
    # (they help copy the tiles); they compute and store nothing.
    valid = i < N

    for c in range(d):
        q_row[c] = q[b, i, col0 + c] if valid else float32(0.0)
        acc[c] = float32(0.0)
    m = float32(-math.inf)  # running max of this row's scores
    l = float32(0.0)  # running sum of exp(score - m)

    # Pass 1: online softmax over key tiles.
    for k0 in range(0, N, BLOCK_K):
        load_tile(k_tile, k, b, k0, col0, N, d)
        load_tile(v_tile, v, b, k0, col0, N, d)
        cuda.syncthreads()  # tiles complete
        if valid:
            n_keys = min(BLOCK_K, N - k0)  # the last tile may be ragged
            m_new = m
            for j in range(n_keys):
                scores[j] = score(q_row, k_tile, j, d, scale)
                m_new = max(m_new, scores[j])
            correction = math.exp(m - m_new)  # = 0 on the first tile, where m = -inf
            l *= correction
            for c in range(d):
                acc[c] *= correction
            for j in range(n_keys):
                p = math.exp(scores[j] - m_new)
                l += p
                for c in range(d):
                    acc[c] += p * v_tile[j, c]
            m = m_new
        cuda.syncthreads()  # everyone done with the tiles before they are overwritten
    if valid:
        for c in range(d):
            context[b, i, col0 + c] = acc[c] / l * head_mask[h]

    # Pass 2 (only when asked): now that m and l are final, write exp(score - m) / l.
    # The condition is the same for the whole block, as it must be: the loop contains syncthreads().
    if probs is not None and (not first_row_only or cuda.blockIdx.x == 0):
        out_row = 0 if first_row_only else i
        for k0 in range(0, N, BLOCK_K):
            load_tile(k_tile, k, b, k0, col0, N, d)
            cuda.syncthreads()
            if valid and (not first_row_only or i == 0):
                for j in range(min(BLOCK_K, N - k0)):
                    p = math.exp(score(q_row, k_tile, j, d, scale) - m) / l
                    probs[b, h, out_row, k0 + j] = p * head_mask[h]
            cuda.syncthreads()

def attention(context, probs, q, k, v, head_mask, output_attentions=None):
    """Launch attention_kernel. q, k, v, context: [B, N, D]; head_mask: [nh] (ones for none).

    output_attentions None (probs is None), "full" (probs [B, nh, N, N]) or "cls" (probs [B, nh, 1, N]:
    only query row 0 is written). Returns (context, probs).
    """
    first_row_only = output_attentions == "cls"
    B, N, D = q.shape
    nh = head_mask.shape[0]
    d = D // nh
    if d * nh != D or k.shape != q.shape or v.shape != q.shape or context.shape != q.shape:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape}, context {context.shape} "
                         f"with {nh} heads do not fit")
    if d > MAX_HEAD_DIM:
        raise ValueError(f"attention: head size {d} > MAX_HEAD_DIM = {MAX_HEAD_DIM}; raise it in "
                         f"kernels/cuda/flash_attention.py "
                         f"(2 * BLOCK_K * MAX_HEAD_DIM * 4 bytes of shared memory must stay under 48 KB)")
    if probs is not None and probs.shape != (B, nh, 1 if first_row_only else N, N):
        raise ValueError(f"attention: probs has shape {probs.shape}, expected {(B, nh, 1 if first_row_only else N, N)}")
    grid = (ceil_div(N, BLOCK_Q), B * nh)  # (query blocks, batch x heads)
    attention_kernel[grid, BLOCK_Q](context, probs, q, k, v, head_mask, float32(d**-0.5), first_row_only)
    return context, probs
