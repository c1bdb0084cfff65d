"""Position embeddings for a new clip size: resize the learned (t, h, w) grid.

HF's `VivitEmbeddings.interpolate_pos_encoding` (transformers 4.48 to 5.x) reshapes the
t*h*w = 3136 patch positions of ViViT-B as a sqrt(3136) = 56 x 56 *image*, ignoring time, so it
can only ever produce 56 x 56-shaped grids and fails for any new resolution. minivivit treats the
positions as what they are, a (t, h, w) grid:

* space: each time slice is resized like HF's ViT does it, bicubic (a = -0.75) with
  align_corners=False, identical to `torch.nn.functional.interpolate(mode="bicubic")`;
* time: linear with align_corners=False, identical to torch's `mode="linear"`;
* when the grid already matches, the embeddings are returned unchanged (the identity).

Both resizes are written as small [out, in] matrices, which makes them easy to test and to read.
"""

from __future__ import annotations

import numpy as np


def _source_coords(n_in: int, n_out: int) -> np.ndarray:
    """align_corners=False: output pixel centre i maps to input coordinate (i + 0.5) * in/out - 0.5."""
    return (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5


def _cubic_weights(s: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution weights for the 4 taps around fractional offsets s: [n] -> [n, 4]."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(s + 1), near(s), near(1 - s), far(2 - s)], axis=-1)


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix M with M @ x = torch's 1-D bicubic resize (align_corners=False) of x.
    Taps beyond the border are clamped to the edge sample, as torch does."""
    src = _source_coords(n_in, n_out)
    base = np.floor(src).astype(int)
    weights = _cubic_weights(src - base)  # [n_out, 4]
    M = np.zeros((n_out, n_in))
    for tap in range(4):
        idx = np.clip(base - 1 + tap, 0, n_in - 1)
        np.add.at(M, (np.arange(n_out), idx), weights[:, tap])
    return M


def linear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix for torch's 1-D linear resize (align_corners=False)."""
    src = np.maximum(_source_coords(n_in, n_out), 0.0)  # torch clamps negative coordinates to 0
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    M = np.zeros((n_out, n_in))
    np.add.at(M, (np.arange(n_out), lo), 1 - frac)
    np.add.at(M, (np.arange(n_out), hi), frac)
    return M


def resize_grid(pos: np.ndarray, old_grid: tuple[int, int, int], new_grid: tuple[int, int, int]) -> np.ndarray:
    """Resize patch position embeddings [t*h*w, D] laid out on old_grid to new_grid -> [t'*h'*w', D].

    Computed in float64 and cast back, so float32 results match torch to rounding.
    """
    (t, h, w), (t2, h2, w2) = old_grid, new_grid
    D = pos.shape[-1]
    if (t, h, w) == (t2, h2, w2):
        return pos
    if pos.shape[0] != t * h * w:
        raise ValueError(f"{pos.shape[0]} positions do not form the grid {old_grid} ({t * h * w} positions)")
    grid = pos.astype(np.float64).reshape(t, h, w, D)  # [t, h, w, D]
    grid = np.einsum("Tt,thwd->Thwd", linear_matrix(t, t2), grid)  # time, linear:   [t', h, w, D]
    grid = np.einsum("Hh,thwd->tHwd", bicubic_matrix(h, h2), grid)  # rows, bicubic: [t', h', w, D]
    grid = np.einsum("Ww,thwd->thWd", bicubic_matrix(w, w2), grid)  # cols, bicubic: [t', h', w', D]
    return grid.reshape(t2 * h2 * w2, D).astype(pos.dtype)  # [t'*h'*w', D]

