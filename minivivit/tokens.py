"""Tubelets and tokens: the one place that knows the tubelet grid and HF's token order.

HF's `VivitTubeletEmbeddings` is a Conv3d with stride = kernel = tubelet (tt, ph, pw), flattened.
So a clip of T x H x W pixels becomes a grid of

    (t, h, w) = (T // tt, H // ph, W // pw)        tubelet_grid(): frames/pixels left over are dropped

tubelets, and token k >= 1 is tubelet j = k - 1 with t = j // (h*w), y = (j % (h*w)) // w, x = j % w
(time slowest, then rows, then columns); token 0 is CLS. layers.patchify produces exactly this order
(tests/core/test_tokens.py checks that it agrees with TokenMap); every other module asks this one.

    tokens = TokenMap.for_config(model.config)            # (t, h, w) grid + tubelet size
    tokens.coords(k) -> (t, y, x);  tokens.box(k) -> frames, rows, cols;  tokens.token_at(f, r, c) -> k
    heat = tokens.to_grid(v)                               # per-token values [..., N] -> [..., t, h, w]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .position import linear_matrix


class TubeletRemainderWarning(UserWarning):
    """Frames or pixels of a clip do not fill a whole tubelet and are dropped (as HF's strided Conv3d drops them)."""


_WARNED_REMAINDERS: set = set()  # (clip, tubelet) pairs already warned about: once per process each


def tubelet_grid(clip_thw, tubelet) -> tuple[int, int, int]:
    """(T, H, W) pixels of a clip and a tubelet (tt, ph, pw) -> the grid (t, h, w) = (T // tt, H // ph, W // pw).

    Frames and pixels that do not fill a whole tubelet are dropped, exactly as HF's strided Conv3d drops them;
    a TubeletRemainderWarning says how many, once per clip size and tubelet."""
    (T, H, W), (tt, ph, pw) = (int(v) for v in clip_thw), (int(v) for v in tubelet)
    grid = (T // tt, H // ph, W // pw)
    left = (T - grid[0] * tt, H - grid[1] * ph, W - grid[2] * pw)  # frames, rows, columns dropped
    if any(left) and ((T, H, W), (tt, ph, pw)) not in _WARNED_REMAINDERS:
        _WARNED_REMAINDERS.add(((T, H, W), (tt, ph, pw)))
        parts = [f"{n} {unit}{'s' if n > 1 else ''}" for n, unit in zip(left, ("frame", "pixel row", "pixel column"))
                 if n]
        verb = "is" if len(parts) == 1 and sum(left) == 1 else "are"
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        warnings.warn(f"a clip of {T} frames of {H}x{W} with tubelets {(tt, ph, pw)} (frames, rows, cols) uses "
                      f"{grid[0] * tt} frames of {grid[1] * ph}x{grid[2] * pw}: the last {listed} "
                      f"{verb} dropped, as HF's Conv3d drops them. Resample or crop the clip to a multiple of the "
                      f"tubelet to use every pixel.", TubeletRemainderWarning, stacklevel=2)
    return grid


def clip_thw(pixel_shape) -> tuple[int, int, int]:
    """(T, H, W) of a pixel_values shape [B, T, C, H, W] (or of a (T, H, W) triple)."""
    return (pixel_shape[1], pixel_shape[3], pixel_shape[4]) if len(pixel_shape) == 5 else tuple(pixel_shape)




@dataclass(frozen=True)
class TokenMap:
    """Token k >= 1 is tubelet j = k-1 with t = j // (h*w), y = (j % (h*w)) // w, x = j % w; it covers
    frames [t*tt, (t+1)*tt), rows [y*ph, (y+1)*ph), cols [x*pw, (x+1)*pw). Token 0 is CLS (no place).

    ViViT-B: grid (16, 14, 14), 3136 tubelets. Reading them as a sqrt(3136) = 56 x 56 image (what
    image-ViT tools do) mixes 16 frames into one picture; every function here goes through this map.
    """

    grid: tuple[int, int, int]  # (t, h, w) tubelets along time, rows, columns
    tubelet: tuple[int, int, int]  # (tt, ph, pw) frames, rows, columns of one tubelet

    @classmethod
    def for_config(cls, config, clip_shape=None) -> TokenMap:
        """The map of a model's clip, or of another clip size (T, H, W) or pixel_values shape [B, T, C, H, W]."""
        if clip_shape is None:
            return cls(tuple(config.grid), tuple(config.tubelet_size))
        return cls(tubelet_grid(clip_thw(clip_shape), config.tubelet_size), tuple(config.tubelet_size))

    @property
    def num_patches(self) -> int:
        """P = t*h*w tubelet tokens."""
        return int(np.prod(self.grid))

    @property
    def num_tokens(self) -> int:
        """N = P + 1 (CLS first)."""
        return self.num_patches + 1

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(T, H, W) the tubelets cover; pixels beyond it (a remainder) are dropped by the Conv3d."""
        return tuple(g * s for g, s in zip(self.grid, self.tubelet))

    # ---- the two directions of the one formula ----------------------------------------------
    def coords(self, token):
        """token k (int or array, 1 <= k < N) -> (t, y, x) grid coordinates."""
        k = np.asarray(token)
        if np.any(k < 1) or np.any(k >= self.num_tokens):
            raise ValueError(f"patch tokens are 1..{self.num_tokens - 1} (token 0 is CLS, which has no place "
                             f"in the clip); got {token}")
        _, h, w = self.grid
        j = k - 1  # tubelet index
        return j // (h * w), (j % (h * w)) // w, j % w

    def token(self, t, y, x):
        """(t, y, x) grid coordinates -> token k (1 + t*h*w + y*w + x)."""
        _, h, w = self.grid
        return 1 + np.asarray(t) * (h * w) + np.asarray(y) * w + np.asarray(x)

    def cell_at(self, frame, row, col):
        """Pixel (frame, row, col) of the clip -> (t, y, x) of the tubelet that contains it."""
        f, r, c = (np.asarray(a) for a in (frame, row, col))
        T, H, W = self.clip_shape
        if np.any((f < 0) | (f >= T) | (r < 0) | (r >= H) | (c < 0) | (c >= W)):
            raise ValueError(f"pixel (frame, row, col) = ({frame}, {row}, {col}) is outside the {T}x{H}x{W} "
                             f"frames x rows x cols that the tubelets {self.tubelet} cover")
        tt, ph, pw = self.tubelet
        return f // tt, r // ph, c // pw

    def token_at(self, frame, row, col):
        """Pixel (frame, row, col) -> token k whose tubelet contains it."""
        return self.token(*self.cell_at(frame, row, col))

    def box(self, token) -> tuple[range, range, range]:
        """Token k -> (frames, rows, cols) ranges of the pixels its tubelet covers."""
        t, y, x = (int(a) for a in self.coords(int(token)))
        tt, ph, pw = self.tubelet
        return range(t * tt, (t + 1) * tt), range(y * ph, (y + 1) * ph), range(x * pw, (x + 1) * pw)

    # ---- whole arrays ------------------------------------------------------------------------
    def to_grid(self, values):
        """Per-token values [..., N] (CLS first, dropped) or [..., P] -> [..., t, h, w]."""
        values = np.asarray(values)
        n = values.shape[-1]
        if n not in (self.num_tokens, self.num_patches):
            raise ValueError(f"expected {self.num_tokens} token values (CLS first) or {self.num_patches} patch "
                             f"values for the grid {self.grid}; got {n}. Is the map from another clip size?")
        patches = values[..., n - self.num_patches:]  # [..., P]
        t, y, x = self.coords(np.arange(1, self.num_tokens))  # [P] each
        out = np.empty(values.shape[:-1] + self.grid, dtype=values.dtype)  # [..., t, h, w]
        out[..., t, y, x] = patches
        return out

    def to_pixels(self, grid_values, mode: str = "nearest", size=None):
        """[..., t, h, w] -> [..., T, H, W]: each pixel takes the value of its tubelet.

        mode "nearest" keeps tubelets as sharp boxes (honest); "smooth" interpolates linearly in space
        between tubelet centres (time stays per tubelet). size (T, H, W) >= clip_shape pads the
        remainder the Conv3d dropped with NaN (drawn transparent).
        """
        g = np.asarray(grid_values, dtype=np.float64)
        if g.shape[-3:] != self.grid:
            raise ValueError(f"expected values on the tubelet grid {self.grid} as [..., t, h, w]; got {g.shape}")
        T, H, W = size or self.clip_shape
        if T < self.clip_shape[0] or H < self.clip_shape[1] or W < self.clip_shape[2]:
            raise ValueError(f"size {(T, H, W)} is smaller than the {self.clip_shape} pixels the tubelets cover")
        Tc, Hc, Wc = self.clip_shape
        ti = self.cell_at(np.arange(Tc), 0, 0)[0]  # [T'] time slice of each frame
        yi = self.cell_at(0, np.arange(Hc), 0)[1]  # [H'] tubelet row of each pixel row
        xi = self.cell_at(0, 0, np.arange(Wc))[2]  # [W'] tubelet col of each pixel col
        out = np.full(g.shape[:-3] + (T, H, W), np.nan)  # [..., T, H, W]
        g = g[..., ti, :, :]  # [..., T', h, w]
        if mode == "nearest":
            out[..., :Tc, :Hc, :Wc] = g[..., yi, :][..., xi]  # [..., T', H', W']
        elif mode == "smooth":
            ry = linear_matrix(self.grid[1], Hc)  # [H', h] linear between cell centres (Hc = h * ph)
            rx = linear_matrix(self.grid[2], Wc)  # [W', w]
            out[..., :Tc, :Hc, :Wc] = np.einsum("rh,...hw,cw->...rc", ry, g, rx)  # [..., T', H', W']
        else:
            raise ValueError(f"mode must be 'nearest' or 'smooth'; got {mode!r}")
        return out
