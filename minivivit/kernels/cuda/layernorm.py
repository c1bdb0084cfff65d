"""LayerNorm on the GPU, so that activations never leave the device between blocks.

NumPy twin: layers.layer_norm. One thread per token row, like llm.c's first layernorm kernel
(layernorm_forward_kernel1): the simplest correct form. A warp per row with shuffle reductions is the
obvious next step if profiling on a real GPU ever shows LayerNorm matters (it is ~D reads per row;
the GEMMs around it do ~D*D multiply-adds per row).
"""

from __future__ import annotations

import math

from numba import cuda, float32

from .gemm import ceil_div


@cuda.jit
def layer_norm_kernel(out, x, g, b, eps, M, D):
    """out[r] = (x[r] - mean) / sqrt(var + eps) * g + b for each row r < M of x [M, D].

    Two passes over the row (mean, then biased variance), as layers.layer_norm and torch compute it, on
    the values relative to the row's first one, y = x - x[r, 0]: the result is the same, but for a row near
    1000 the float32 sums of y lose almost nothing, where sums of x (and x - mean with mean rounded to
    1000's precision, 6e-5) would lose ~1e-4.
    Numba turns float32 (op) Python-int into float64; the float32(...) casts keep it single precision.
    """
    r = cuda.grid(1)
    if r >= M:  # bounds guard first
        return
    shift = x[r, 0]
    s = float32(0.0)
    for i in range(D):
        s += x[r, i] - shift
    mean = s / float32(D)  # mean of y = x - shift
    s = float32(0.0)
    for i in range(D):
        s += (x[r, i] - shift - mean) * (x[r, i] - shift - mean)
    std = math.sqrt(s / float32(D) + eps)
    for i in range(D):
        out[r, i] = (x[r, i] - shift - mean) / std * g[i] + b[i]


def layer_norm(out, x, g, b, eps):
    """Launch layer_norm_kernel: x [M, D] -> out [M, D]. Returns out."""
    M, D = x.shape
    if out.shape != (M, D) or g.shape != (D,) or b.shape != (D,):
        raise ValueError(f"layer_norm: x {x.shape}, g {g.shape}, b {b.shape} do not fit out {out.shape}")
    threads = min(128, ceil_div(M, 32) * 32)  # whole warps; no more threads than rows
    layer_norm_kernel[ceil_div(M, threads), threads](out, x, g, b, float32(eps), M, D)
    return out
