"""Every linear layer on the GPU: out = act(x @ w + bias), one tiled GEMM kernel.

Q, K, V, the attention output projection, fc1 (+ GELU), fc2, the pooler (+ tanh) and the classifier all
run through `gemm`. Fusing the bias and the activation into the GEMM's last step (its "epilogue") means
the [M, N] result is written once, not read back twice more. NumPy twins: layers.linear and
layers.linear_act.

Shapes: x [M, K] (M = B*N tokens), w [K, N] (stored [in, out] as in layers.py), out [M, N].
"""

from __future__ import annotations

from numba import cuda, float32

from .activations import act_code, activate

TILE = 16  # a block computes one TILE x TILE tile of out with TILE x TILE threads


@cuda.jit
def gemm_kernel(out, x, w, bias, act, M, N, K):
    """out[M, N] = act(x[M, K] @ w[K, N] + bias[N]); bias may be None.

    Thread (ty, tx) of block (by, bx) owns out[by*TILE + ty, bx*TILE + tx]. The K axis is walked in
    TILE-wide steps: the block copies one TILE x TILE tile of x and one of w into shared memory (one
    value per thread), waits for everyone, then each thread does TILE multiply-adds from the fast
    shared copies. Each value of x and w is read from global memory once per block instead of once
    per thread.
    """
    x_tile = cuda.shared.array((TILE, TILE), float32)
    w_tile = cuda.shared.array((TILE, TILE), float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty  # row of out (a token)
    col = cuda.blockIdx.x * TILE + tx  # column of out (an output feature)
    # Bounds guard: threads past M or N cannot return early, because every thread of the block must
    # reach both syncthreads(); they load zeros instead and skip the final store.
    inside = row < M and col < N
    acc = float32(0.0)
    for k0 in range(0, K, TILE):
        x_tile[ty, tx] = x[row, k0 + tx] if row < M and k0 + tx < K else float32(0.0)
        w_tile[ty, tx] = w[k0 + ty, col] if k0 + ty < K and col < N else float32(0.0)
        cuda.syncthreads()  # both tiles complete
        for kk in range(TILE):
            acc += x_tile[ty, kk] * w_tile[kk, tx]
        cuda.syncthreads()  # everyone done reading before the next tiles overwrite them
    if inside:
        if bias is not None:
            acc += bias[col]
        out[row, col] = activate(acc, act)


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


def gemm(out, x, w, bias=None, act: str = "linear"):
    """Launch gemm_kernel: out [M, N] = act(x [M, K] @ w [K, N] + bias). Returns out.

    All arrays are device (or, in the simulator, fake-device) float32 arrays.
    """
    M, K = x.shape
    N = w.shape[1]
    if w.shape[0] != K or out.shape != (M, N):
        raise ValueError(f"gemm: x {x.shape} @ w {w.shape} does not fit out {out.shape}")
    code = act_code(act)
    grid = (ceil_div(N, TILE), ceil_div(M, TILE))  # (blocks along columns, blocks along rows)
    block = (TILE, TILE)  # threadIdx.x walks columns (coalesced reads of w and writes of out)
    gemm_kernel[grid, block](out, x, w, bias, code, M, N, K)
    return out
