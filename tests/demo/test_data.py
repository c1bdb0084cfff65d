"""minivivit.data: deterministic clips whose label is in the motion, never in a single frame."""

import numpy as np
import pytest

from minivivit.data import DIRECTIONS, LABELS, make_batch, make_clip
from minivivit.data.synthetic import RADIUS_RANGE, SPEED_RANGE


def test_shapes_and_dtypes():
    c = make_clip(seed=0, index=0)
    assert c.frames.shape == (16, 64, 64, 3) and c.frames.dtype == np.uint8
    assert c.masks.shape == (16, 64, 64) and c.masks.dtype == bool
    assert c.boxes.shape == (16, 4) and c.centers.shape == (16, 2)
    assert c.label_name == LABELS[c.label]
    c = make_clip(seed=0, index=0, num_frames=6, size=32)
    assert c.frames.shape == (6, 32, 32, 3) and c.masks.shape == (6, 32, 32)


def test_same_seed_same_pixels_and_streams_are_independent():
    a, b = make_clip(7, 3), make_clip(7, 3)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks) and a.label == b.label
    assert not np.array_equal(make_clip(7, 4).frames, a.frames)
    assert not np.array_equal(make_clip(8, 3).frames, a.frames)
    # a batch is the same clips whichever way the stream is cut
    f1, l1, m1 = make_batch(6, seed=7, start=0)
    f2, l2, _ = make_batch(3, seed=7, start=3)
    assert np.array_equal(f1[3:], f2) and np.array_equal(l1[3:], l2)
    assert np.array_equal(f1[3], a.frames) and np.array_equal(m1[3], a.masks)


def test_masks_are_the_object_pixels():
    for i in range(20):
        c = make_clip(3, i)
        for t in range(c.frames.shape[0]):
            r = (c.boxes[t, 2] - c.boxes[t, 0] - 1) // 2
            assert RADIUS_RANGE[0] <= r <= RADIUS_RANGE[1]
            n = int(c.masks[t].sum())
            if c.shape == "square":
                assert n == (2 * r + 1) ** 2
                # the box, wrapped around the edges, is exactly the mask
                rows = np.arange(c.boxes[t, 0], c.boxes[t, 2]) % 64
                cols = np.arange(c.boxes[t, 1], c.boxes[t, 3]) % 64
                box = np.zeros((64, 64), bool)
                box[np.ix_(rows, cols)] = True
                assert np.array_equal(box, c.masks[t])
            else:
                assert np.pi * r**2 * 0.8 < n < np.pi * (r + 1) ** 2
        # the object is the same colour (up to sensor noise) in every frame, and bright
        obj = c.frames[c.masks].astype(float)  # [pixels, 3]
        assert np.abs(obj - np.median(obj, axis=0)).max() < 20
        assert np.median(obj, axis=0).max() > 230


def _motion_from_pixels(frames):
    """Direction of motion read from the pixels alone: moving pixels = those far from the per-pixel
    median over time (the background is static); their circular mean position per frame, then the mean step."""
    f = frames.astype(float)
    moving = np.abs(f - np.median(f, axis=0)).max(-1) > 60  # [T, H, W]
    size = frames.shape[1]
    angle = 2 * np.pi * np.arange(size) / size
    steps = []
    for t in range(frames.shape[0]):
        ys, xs = np.nonzero(moving[t])
        steps.append([np.angle(np.exp(1j * angle[ys]).mean()), np.angle(np.exp(1j * angle[xs]).mean())])
    d = np.diff(np.unwrap(np.array(steps), axis=0), axis=0).mean(0) * size / (2 * np.pi)  # [2] pixels/frame
    return d


@pytest.mark.parametrize("seed", [0, 11])
def test_label_is_the_direction_seen_in_the_pixels(seed):
    for i in range(24):
        c = make_clip(seed, i)
        dy, dx = _motion_from_pixels(c.frames)
        expected = np.array(DIRECTIONS[c.label_name])
        speed = np.hypot(dy, dx)
        assert SPEED_RANGE[0] - 0.3 < speed < SPEED_RANGE[1] + 0.3, (i, dy, dx)
        assert np.dot([dy, dx], expected) / speed > 0.95, f"clip {i}: label {c.label_name}, pixels move {dy, dx}"


def test_no_single_frame_tells_the_class():
    """On the torus the object's position in any frame is uniform whatever the class: the circular mean
    of each class's positions at the first and last frame is near zero (a start near one edge would show)."""
    frames, labels, masks = make_batch(400, seed=5)
    size = frames.shape[2]
    yy, xx = np.mgrid[:size, :size]
    for t in (0, frames.shape[1] - 1):
        for k in range(len(LABELS)):
            m = masks[labels == k, t]  # [n_k, H, W]
            for coord in (yy, xx):
                pos = (m * coord).sum((1, 2)) / m.sum((1, 2))  # [n_k] (naive mean is fine: only a bias test)
                resultant = abs(np.exp(2j * np.pi * pos / size).mean())
                assert resultant < 0.3, (LABELS[k], t, resultant)
    counts = np.bincount(labels, minlength=len(LABELS))
    assert counts.min() > 0.15 * len(labels), counts


def test_forcing_a_label_changes_only_the_direction():
    a = make_clip(2, 9)
    other = LABELS[(a.label + 1) % len(LABELS)]
    b = make_clip(2, 9, label=other)
    assert b.label_name == other
    assert np.array_equal(a.masks[0], b.masks[0])  # same start, shape, size
    assert not np.array_equal(a.masks[5], b.masks[5])  # different path
    assert make_clip(2, 9, label=LABELS.index(other)).label == b.label


@pytest.mark.parametrize("kwargs,match", [
    ({"seed": -1}, "non-negative"),
    ({"seed": 0, "label": "sideways"}, "unknown label"),
    ({"seed": 0, "label": 9}, "out of range"),
    ({"seed": 0, "num_frames": 1}, "at least 2"),
    ({"seed": 0, "size": 8}, "at least"),
])
def test_bad_arguments_say_what_to_do(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_clip(**kwargs)
    with pytest.raises(ValueError, match="at least 1"):
        make_batch(0, seed=0)
