"""A where-and-when task (the bundled demo model's): an object visits the four quadrants, the label is where it ends.

    from minivivit.data import VISIT_LABELS, make_visit_clip
    clip = make_visit_clip(seed=0, index=3)   # uint8 frames [16, 64, 64, 3]
    clip.order        # e.g. (2, 0, 3, 1): the quadrants in the order visited
    clip.label_name   # VISIT_LABELS[clip.order[-1]], here "top-right"

The same small bright object as minivivit.data.make_clip (a square or disc, 7-9 px, brighter than the
textured background in every channel, sensor noise in every frame) spends T/4 frames in each quadrant,
one after another, in a random order, drifting inside the quadrant (0.5-1.5 px/frame, reflected at its
walls). The label is the quadrant of the last visit: top-left, top-right, bottom-left, bottom-right.

Why it needs position embeddings and frame order (and motion-of-one-tubelet does not):
- every clip shows the object in all four quadrants, for T/4 frames each; what a quadrant's visit looks
  like (start, drift, speed) is drawn independently of when the visit happens. So the clip's frames as
  an unordered set say nothing about the label: shuffle the frames and the label is independent of the
  clip (accuracy = chance, 1/4, in expectation). Reverse them and the clip ends where it began: a
  different quadrant, so a model that reads "when" is wrong on every clip.
- for the same reason a bag of tubelets without positions says nothing either: the model must know
  which tubelet is where (the quadrant) and when (the last visit), i.e. use its position embeddings.

Each clip is a pure function of (seed, index), as in synthetic.py. With T = 16 and the demo model's 4-frame
tubelets a visit is 4 frames = 1 tubelet slice, so the last visit is the last slice of the token grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthetic import NOISE_STD, RADIUS_RANGE, SHAPES, _bright_colour, _label_index, _object_masks, _texture

VISIT_LABELS = ("top-left", "top-right", "bottom-left", "bottom-right")  # quadrant q: row q // 2, column q % 2
DRIFT_RANGE = (0.5, 1.5)  # pixels per frame inside a quadrant, uniform


@dataclass(frozen=True)
class VisitClip:
    """One generated clip of the visits task and its ground truth."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    label: int  # index into VISIT_LABELS: the quadrant of the last visit
    order: tuple  # the 4 quadrants in the order visited (order[-1] == label)
    masks: np.ndarray  # bool [T, H, W], exactly the object's pixels
    centers: np.ndarray  # float [T, 2] (y, x) of the object's centre
    shape: str  # "square" or "disc"

    @property
    def label_name(self) -> str:
        return VISIT_LABELS[self.label]


def make_visit_clip(seed: int, index: int = 0, *, num_frames: int = 16, size: int = 64,
                    label: int | str | None = None) -> VisitClip:
    """Clip `index` of stream `seed`: the object visits all 4 quadrants; label = the last one.

    label: force the last quadrant (an index or a name from VISIT_LABELS); None draws the order uniformly.
    """
    _check(seed, index, num_frames, size)
    rng = np.random.default_rng([int(seed), int(index), 4])  # its own streams, apart from make_clip's
    order = [int(q) for q in rng.permutation(4)]  # always drawn, so forcing the label changes nothing else
    if label is not None:
        last = _label_index(label, VISIT_LABELS)
        order = [q for q in order if q != last] + [last]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = int(rng.integers(RADIUS_RANGE[0], RADIUS_RANGE[1] + 1))
    colour = _bright_colour(rng)  # [3]
    background = _texture(rng, size)  # [H, W, 3] float
    # one visit per quadrant, drawn in quadrant order (not visit order): a visit's look is independent of its time
    half = size // 2
    lo, hi = radius, half - 1 - radius  # the centre's range inside a quadrant, so the object never leaves it
    bounds = [round(k * num_frames / 4) for k in range(5)]  # visit k covers frames bounds[k] .. bounds[k+1]-1
    paths = {}
    for q in range(4):
        start = lo + (hi - lo) * rng.random(2)  # (y, x) inside the quadrant
        angle = 2 * np.pi * rng.random()
        speed = DRIFT_RANGE[0] + (DRIFT_RANGE[1] - DRIFT_RANGE[0]) * rng.random()
        paths[q] = (start, speed * np.array([np.sin(angle), np.cos(angle)]))
    centers = np.zeros((num_frames, 2))  # [T, 2]
    for k, q in enumerate(order):
        start, velocity = paths[q]
        t = np.arange(bounds[k + 1] - bounds[k], dtype=np.float64)[:, None]  # [n, 1] frames into the visit
        local = _reflect(start[None, :] + t * velocity[None, :], lo, hi)  # [n, 2] inside the quadrant
        centers[bounds[k]:bounds[k + 1]] = local + half * np.array([q // 2, q % 2])  # [n, 2] in the frame
    masks = _object_masks(centers, radius, shape, size)  # [T, H, W]

    video = rng.normal(0.0, NOISE_STD, size=(num_frames, size, size, 3))  # sensor noise, new in every frame
    video += background  # [T, H, W, 3] + [H, W, 3]
    t, y, x = np.nonzero(masks)
    video[t, y, x] += colour - background[y, x]  # paint the object (its noise stays)
    frames = np.rint(np.clip(video, 0, 255)).astype(np.uint8)  # [T, H, W, 3]
    return VisitClip(frames, order[-1], tuple(order), masks, centers, shape)


def make_visit_batch(n: int, seed: int, start: int = 0, *, num_frames: int = 16, size: int = 64):
    """Clips start .. start+n-1 of stream `seed`, stacked: (frames uint8 [n, T, H, W, 3], labels [n], masks
    [n, T, H, W]), as make_batch gives for the motion task."""
    if int(n) < 1:
        raise ValueError(f"n must be at least 1 clip; got {n}")
    clips = [make_visit_clip(seed, start + i, num_frames=num_frames, size=size) for i in range(int(n))]
    return (np.stack([c.frames for c in clips]), np.array([c.label for c in clips], dtype=np.int64),
            np.stack([c.masks for c in clips]))


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold coordinates into [lo, hi] as a ball bouncing between two walls would travel."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, lo)
    u = np.mod(p - lo, 2 * span)  # position along a doubled track
    return lo + np.where(u > span, 2 * span - u, u)


def _check(seed, index, num_frames, size):
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be non-negative integers; got seed={seed}, index={index}")
    if int(num_frames) < 4:
        raise ValueError(f"num_frames must be at least 4 (one or more frames per quadrant visit); got {num_frames}")
    if int(size) < 4 * (RADIUS_RANGE[1] + 1):
        raise ValueError(f"size must be at least {4 * (RADIUS_RANGE[1] + 1)} pixels (the object fits in a "
                         f"quadrant); got {size}")
