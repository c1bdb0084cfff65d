"""Tubelet embedding on the GPU: the patch gather fused with the projection.

NumPy twin: layers.tubelet_embed (= layers.patchify(...) @ w + b).
The GPU version never builds the [B, P, K] patch matrix: the GEMM reads each tubelet value straight
out of the clip when it loads its tile of "x".

Shapes use layers.py's letters; on the device, tokens are 2-D [B*P, D] / [B*N, D] (row = b*P + j).
"""

from __future__ import annotations

from numba import cuda, float32

from ...tokens import clip_thw, tubelet_grid
from .gemm import TILE, ceil_div


@cuda.jit(device=True, inline="always")
def tubelet_value(pix, row, col, P, gh, gw, tt, ph, pw):
    """Element [row, col] of layers.patchify(pix): row = b*P + j (token j of clip b), col = position
    inside the tubelet in (frame, row, col, channel) order. Same index maths as patchify's reshape
    (HF's order, minivivit/tokens.py); tests/kernels check it against patchify."""
    C = pix.shape[2]
    b, j = row // P, row % P
    ti, yi, xi = j // (gh * gw), (j % (gh * gw)) // gw, j % gw  # HF's Conv3d flatten order
    f, rest = col // (ph * pw * C), col % (ph * pw * C)  # frame inside the tubelet
    r, rest = rest // (pw * C), rest % (pw * C)  # pixel row inside the tubelet
    s, c = rest // C, rest % C  # pixel column, channel
    return pix[b, ti * tt + f, c, yi * ph + r, xi * pw + s]


@cuda.jit
def tubelet_embed_kernel(out, pix, w, bias, P, gh, gw, tt, ph, pw):
    """out[B*P, D] = patchify(pix) @ w[K, D] + bias[D], gathering the patch values on the fly.

    The tiling is gemm.gemm_kernel's (read that one first); only the load of the x tile differs:
    x[row, k] is fetched from the clip by tubelet_value instead of from a patch matrix.
    """
    x_tile = cuda.shared.array((TILE, TILE), float32)
    w_tile = cuda.shared.array((TILE, TILE), float32)
    M, K, D = out.shape[0], w.shape[0], w.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty  # token (b*P + j)
    col = cuda.blockIdx.x * TILE + tx  # output feature
    # Bounds guard: no early return (every thread must reach the syncthreads); outside threads load zeros.
    inside = row < M and col < D
    acc = float32(0.0)
    for k0 in range(0, K, TILE):
        if row < M and k0 + tx < K:
            x_tile[ty, tx] = tubelet_value(pix, row, k0 + tx, P, gh, gw, tt, ph, pw)
        else:
            x_tile[ty, tx] = float32(0.0)
        w_tile[ty, tx] = w[k0 + ty, col] if k0 + ty < K and col < D else float32(0.0)
        cuda.syncthreads()
        for kk in range(TILE):
            acc += x_tile[ty, kk] * w_tile[kk, tx]
        cuda.syncthreads()
    if inside:
        out[row, col] = acc + bias[col]


def tubelet_embed(out, pix, w, bias, tubelet):
    """Launch tubelet_embed_kernel: pix [B, T, C, H, W] -> out [B*P, D]. Returns out.

    Frames and pixels that do not fill a whole tubelet are skipped, as HF's strided Conv3d does.
    """
    B, T, C, H, W = pix.shape
    tt, ph, pw = tubelet
    gt, gh, gw = tubelet_grid(clip_thw(pix.shape), tubelet)  # tubelet grid (t, h, w)
    P, K, D = gt * gh * gw, tt * ph * pw * C, w.shape[1]
    if w.shape[0] != K or out.shape != (B * P, D):
        raise ValueError(f"tubelet_embed: clip {pix.shape} with tubelet {tubelet} gives K={K}, P={P}; "
                         f"got w {w.shape} and out {out.shape}")
    grid = (ceil_div(D, TILE), ceil_div(B * P, TILE))
    tubelet_embed_kernel[grid, (TILE, TILE)](out, pix, w, bias, P, gh, gw, tt, ph, pw)
    return out
