"""Synthetic labelled clips: a small bright object moving over a static, darker textured background.

The label is the direction of motion: "left", "right", "up" or "down". No single frame can tell
the classes apart: the object lives on a torus (leaving one edge it re-enters at the opposite
edge) and starts at a uniformly random position, so its position in any one frame is uniform
whatever the class. Only two or more frames reveal the direction, so a model must look across
time, and it must look at the object, which covers a few percent of the frame: a good test of
"where does the model look".

Each clip is a pure function of (seed, index): `make_clip(seed, i)` gives the same pixels on every
machine (NumPy's PCG64 generator; only `random`, `integers` and `normal` are used).

Shapes: T frames, H = W = size pixels.

    frames  uint8 [T, H, W, 3]   what a video decoder returns (minivivit.read_video's layout)
    masks   bool  [T, H, W]      exactly the object's pixels in each frame
    boxes   int   [T, 4]         (top, left, bottom, right) of the object's square, bottom/right exclusive;
                                 when the object wraps over an edge, bottom/right exceed H/W and the
                                 rest of the object is at the opposite edge (masks are always exact)
    centers float [T, 2]         (y, x) of the object's centre, in [0, H) x [0, W)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = ("left", "right", "up", "down")
DIRECTIONS = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}  # (dy, dx)
SHAPES = ("square", "disc")

# The task's knobs, in one place (weights/README.md quotes them).
SPEED_RANGE = (1.5, 3.0)  # pixels per frame, uniform
RADIUS_RANGE = (3, 4)  # object half-size in pixels, integer, inclusive: squares of 7 or 9 pixels
BACKGROUND_RANGE = (20.0, 130.0)  # background intensities (uint8 scale), every channel
OBJECT_RANGE = (150.0, 255.0)  # object intensities: brighter than the background in every channel
TEXTURE_CELLS = 6  # the smooth part of the texture is bilinear noise on a 6x6 grid
NOISE_STD = 3.0  # per-frame sensor noise, uint8 scale


@dataclass(frozen=True)
class Clip:
    """One generated clip and its ground truth."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    label: int  # index into LABELS
    masks: np.ndarray  # bool [T, H, W]
    boxes: np.ndarray  # int [T, 4] (top, left, bottom, right), see the module docstring
    centers: np.ndarray  # float [T, 2] (y, x)
    shape: str  # "square" or "disc"
    speed: float  # pixels per frame

    @property
    def label_name(self) -> str:
        return LABELS[self.label]


def make_clip(seed: int, index: int = 0, *, num_frames: int = 16, size: int = 64,
              label: int | str | None = None) -> Clip:
    """Clip number `index` of the stream `seed`: uint8 frames [T, H, W, 3] plus label, masks, boxes.

    label: force a class (an index or a name from LABELS); None draws it uniformly.
    """
    _check_args(seed, index, num_frames, size)
    rng = np.random.default_rng([int(seed), int(index)])  # one independent stream per (seed, index)
    drawn = int(rng.integers(len(LABELS)))  # always drawn, so forcing the label changes nothing else
    label = drawn if label is None else _label_index(label)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = int(rng.integers(RADIUS_RANGE[0], RADIUS_RANGE[1] + 1))
    speed = float(SPEED_RANGE[0] + (SPEED_RANGE[1] - SPEED_RANGE[0]) * rng.random())
    start = rng.random(2) * size  # (y, x) of the centre in frame 0
    colour = _bright_colour(rng)  # [3]
    background = _texture(rng, size)  # [H, W, 3] float

    dy, dx = DIRECTIONS[LABELS[label]]
    steps = np.arange(num_frames, dtype=np.float64)[:, None] * speed  # [T, 1]
    centers = np.mod(start[None, :] + steps * np.array([dy, dx]), size)  # [T, 2] on the torus
    masks = _object_masks(centers, radius, shape, size)  # [T, H, W]

    video = rng.normal(0.0, NOISE_STD, size=(num_frames, size, size, 3))  # sensor noise, new in every frame
    video += background  # [T, H, W, 3] + [H, W, 3]
    t, y, x = np.nonzero(masks)  # object pixels, [n] each
    video[t, y, x] += colour - background[y, x]  # paint the object (its noise stays)
    frames = np.rint(np.clip(video, 0, 255)).astype(np.uint8)  # [T, H, W, 3]

    corner = np.rint(centers).astype(np.int64) - radius  # [T, 2] (top, left)
    boxes = np.concatenate([corner % size, corner % size + 2 * radius + 1], axis=1)  # [T, 4]
    return Clip(frames, label, masks, boxes, centers, shape, speed)


def make_batch(n: int, seed: int, start: int = 0, *, num_frames: int = 16, size: int = 64):
    """Clips start .. start+n-1 of stream `seed`, stacked.

    Returns (frames uint8 [n, T, H, W, 3], labels int64 [n], masks bool [n, T, H, W]).
    Clip i is make_clip(seed, start + i), so a batch does not depend on how the stream is cut.
    """
    if int(n) < 1:
        raise ValueError(f"n must be at least 1 clip; got {n}")
    clips = [make_clip(seed, start + i, num_frames=num_frames, size=size) for i in range(int(n))]
    frames = np.stack([c.frames for c in clips])  # [n, T, H, W, 3]
    labels = np.array([c.label for c in clips], dtype=np.int64)  # [n]
    masks = np.stack([c.masks for c in clips])  # [n, T, H, W]
    return frames, labels, masks


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------


def _object_masks(centers: np.ndarray, radius: int, shape: str, size: int) -> np.ndarray:
    """[T, 2] centres -> bool [T, H, W]: pixels whose centre is inside the object, distances on the torus."""
    grid = np.arange(size, dtype=np.float64)  # pixel coordinates 0..size-1
    rounded = np.rint(centers)  # [T, 2] whole-pixel centres, so a square is exactly (2r+1)^2 pixels
    dy = _torus_offset(grid[None, :] - rounded[:, :1], size)  # [T, H]
    dx = _torus_offset(grid[None, :] - rounded[:, 1:], size)  # [T, W]
    dy, dx = dy[:, :, None], dx[:, None, :]  # [T, H, 1], [T, 1, W]
    if shape == "square":
        return (np.abs(dy) <= radius) & (np.abs(dx) <= radius)  # [T, H, W]
    return dy**2 + dx**2 <= (radius + 0.5) ** 2  # [T, H, W] disc


def _torus_offset(d: np.ndarray, size: int) -> np.ndarray:
    """Signed shortest offset on a circle of `size` pixels: values in [-size/2, size/2)."""
    return np.mod(d + size / 2, size) - size / 2


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A static background [H, W, 3] float in BACKGROUND_RANGE: smooth colour blobs plus fine grain."""
    lo, hi = BACKGROUND_RANGE
    coarse = rng.random((TEXTURE_CELLS, TEXTURE_CELLS, 3))  # [c, c, 3] in [0, 1)
    up = _bilinear_matrix(TEXTURE_CELLS, size)  # [H, c]
    rows = np.tensordot(up, coarse, axes=(1, 0))  # [H, c, 3]: resize along y
    smooth = np.tensordot(rows, up, axes=(1, 1)).transpose(0, 2, 1)  # [H, 3, W] -> [H, W, 3]: along x
    grain = rng.random((size, size, 1))  # [H, W, 1], the same in every channel: texture, not colour noise
    mix = 0.7 * smooth + 0.3 * grain  # [H, W, 3] in [0, 1)
    return lo + (hi - lo) * mix


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] linear-interpolation weights (align-corners), so that up @ v resizes v."""
    pos = np.linspace(0, n_in - 1, n_out)  # [n_out] source coordinate of each output pixel
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)  # [n_out]
    frac = pos - lo  # [n_out]
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A light colour of random hue in OBJECT_RANGE: brighter than any background pixel in every channel."""
    hue = rng.random()  # [0, 1)
    channels = np.clip(np.abs(np.mod(hue * 6 + np.array([0.0, 4.0, 2.0]), 6) - 3) - 1, 0, 1)  # HSV -> RGB at S=V=1
    lo, hi = OBJECT_RANGE
    return lo + (hi - lo) * channels  # [3]


def _label_index(label, labels=LABELS) -> int:
    """A label name or index -> its index in `labels`, with a clear error for anything else."""
    if isinstance(label, str):
        if label not in labels:
            raise ValueError(f"unknown label {label!r}; choose one of {labels}")
        return labels.index(label)
    if not 0 <= int(label) < len(labels):
        raise ValueError(f"label index {label} out of range; there are {len(labels)} classes {labels}")
    return int(label)


def _check_args(seed, index, num_frames, size):
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be non-negative integers; got seed={seed}, index={index}")
    if int(num_frames) < 2:
        raise ValueError(f"num_frames must be at least 2 (motion needs two frames); got {num_frames}")
    if int(size) < 4 * RADIUS_RANGE[1]:
        raise ValueError(f"size must be at least {4 * RADIUS_RANGE[1]} pixels for the object to move; got {size}")
