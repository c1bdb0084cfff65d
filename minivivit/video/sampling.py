"""Frame sampling: which frames of an n-frame video go into a clip of k frames.

Every strategy is a plain function of the frame count that returns integer indices; nothing here
touches pixels, so each rule can be read (and tested) on its own. Pictures use n = 10 frames.

    uniform_indices(10, 4)                  one clip over the whole video: the centre of each of 4 segments
        frames    0 1 2 3 4 5 6 7 8 9
        segments  |--0--|--1--|--2--|--3--|    each 10/4 = 2.5 frames wide
        centres     1.25  3.75  6.25  8.75     -> floor -> [1, 3, 6, 8]

    hf_indices(10, 4, frame_sample_rate=2, seed=0)   HF's doc example: a random window of k*rate frames
        window end e ~ randint(8, 10) = 8 (seed 0), start = e - 8 = 0
        frames  0 1 2 3 4 5 6 7 | 8 9              -> linspace(0, 8, 4) clipped to <= 7 -> [0, 2, 5, 7]

    scenic_indices(10, 3, stride=2, num_clips=2)     Scenic/DMVR evaluation: evenly spaced clips at a stride
        max offset = 10 - 3*2 = 4, offsets = 0 and 4
        clip 0: 0 . 2 . 4                          -> [0, 2, 4]
        clip 1:         4 . 6 . 8                  -> [4, 6, 8]

Short videos (fewer frames than a clip spans) never raise an IndexError; each strategy has one
documented behaviour and warns (ShortVideoWarning):
  - uniform: frames repeat in place (each frame is held for several clip steps; slow motion),
    e.g. uniform_indices(2, 4) = [0, 0, 1, 1];
  - hf and scenic: the video loops, as DMVR does (index i becomes i mod n),
    e.g. scenic_indices(3, 4) = [[0, 1, 2, 0]].
"""

from __future__ import annotations

import warnings

import numpy as np

STRATEGIES = ("uniform", "hf", "scenic")
MAX_COUNT = 2**31 - 1  # frames, clips, strides: far above any video, and products stay far inside int64


class ShortVideoWarning(UserWarning):
    """The video has fewer frames than the clip needs; frames were repeated or looped (see module doc)."""


def _check_counts(num_total, **named):
    for name, value in {"number of frames in the video": num_total, **named}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {value!r}")
    if num_total < 1:
        raise ValueError(f"the video has {num_total} frames; cannot sample a clip from an empty video")
    for name, value in named.items():
        if not 1 <= value <= MAX_COUNT:
            raise ValueError(f"{name} must be >= 1 (and at most {MAX_COUNT}); got {value}")


def _check_seed(seed):
    """None (NumPy's global generator) or an int in 0..2**32 - 1 (what np.random.RandomState accepts)."""
    if seed is None:
        return
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be None or an int in 0..{2**32 - 1}; got {seed!r}")


def uniform_indices(num_total: int, num_frames: int) -> np.ndarray:
    """[num_frames] indices spread over the whole video: the centre frame of each of num_frames equal segments.

    index_i = floor((i + 1/2) * n / k), computed exactly in integers as (2i + 1) * n // (2k).
    With n < k the frames repeat in place (n=2, k=4 -> [0, 0, 1, 1]) and a ShortVideoWarning is issued.
    """
    _check_counts(num_total, num_frames=num_frames)
    i = np.arange(num_frames, dtype=np.int64)  # [k]
    indices = (2 * i + 1) * num_total // (2 * num_frames)  # [k]
    if num_total < num_frames:
        warnings.warn(f"the video has {num_total} frames but the clip needs {num_frames}; uniform sampling "
                      f"repeats frames in place: {indices.tolist()}", ShortVideoWarning, stacklevel=2)
    return indices


def hf_indices(num_total: int, clip_len: int, frame_sample_rate: int = 1, seed: int | None = 0) -> np.ndarray:
    """[clip_len] indices exactly as `sample_frame_indices` in HF's ViViT docs, with its random window.

    converted_len = clip_len * frame_sample_rate; end ~ randint(converted_len, n); start = end - converted_len;
    indices = linspace(start, end, clip_len) clipped to [start, end - 1], truncated to int.
    seed: an int gives np.random.RandomState(seed).randint, the same draw as the doc's `np.random.seed(seed)`
    followed by `np.random.randint`; None draws from NumPy's global generator (the doc's exact code).

    Short video (n <= converted_len, where HF's randint would raise): the window starts at frame 0
    (end = converted_len) and indices past the last frame loop (i mod n), with a ShortVideoWarning if
    any index had to loop.
    """
    _check_counts(num_total, clip_len=clip_len, frame_sample_rate=frame_sample_rate)
    _check_seed(seed)
    converted_len = int(clip_len * frame_sample_rate)
    if num_total > converted_len:
        rng = np.random if seed is None else np.random.RandomState(seed)
        end_idx = rng.randint(converted_len, num_total)
    else:
        end_idx = converted_len
    start_idx = end_idx - converted_len
    indices = np.linspace(start_idx, end_idx, num=clip_len)  # [clip_len] float
    indices = np.clip(indices, start_idx, end_idx - 1).astype(np.int64)  # [clip_len]
    if indices.max() >= num_total:
        looped = indices % num_total
        warnings.warn(f"the video has {num_total} frames but the HF window spans {converted_len} "
                      f"(clip_len={clip_len} x frame_sample_rate={frame_sample_rate}); it starts at frame 0 and "
                      f"loops: {looped.tolist()}", ShortVideoWarning, stacklevel=2)
        indices = looped
    return indices


def scenic_indices(num_total: int, num_frames: int, stride: int = 1, num_clips: int = 1) -> np.ndarray:
    """[num_clips, num_frames] indices: Scenic's evaluation sampling (DMVR `sample_linspace_sequence`).

    max_offset = max(0, n - num_frames * stride); clip c starts at offset_c = floor(c * max_offset / (num_clips - 1))
    (offset 0 for one clip) and takes offset_c + j * stride for j < num_frames. An index past the end loops
    (i mod n), as DMVR repeats the sequence; a ShortVideoWarning is issued when that happens.
    (DMVR computes the offsets with float32 linspace; the integer form here equals it except for float rounding.)
    """
    _check_counts(num_total, num_frames=num_frames, stride=stride, num_clips=num_clips)
    max_offset = max(0, num_total - num_frames * stride)
    c = np.arange(num_clips, dtype=np.int64)  # [C]
    offsets = c * max_offset // (num_clips - 1) if num_clips > 1 else np.zeros(1, np.int64)  # [C]
    indices = offsets[:, None] + stride * np.arange(num_frames, dtype=np.int64)[None, :]  # [C, k]
    if indices.max() >= num_total:
        warnings.warn(f"the video has {num_total} frames but a clip spans {(num_frames - 1) * stride + 1} "
                      f"(num_frames={num_frames}, stride={stride}); indices past the end loop to the start",
                      ShortVideoWarning, stacklevel=2)
        indices = indices % num_total
    return indices


def sample_indices(strategy: str, num_total: int, num_frames: int, *, frame_sample_rate: int = 1,
                   stride: int = 1, num_clips: int = 1, seed: int | None = 0) -> np.ndarray:
    """Dispatch by name. Returns [num_frames] for "uniform" and "hf", [num_clips, num_frames] for "scenic".

    Options that a strategy does not use must keep their defaults (so a typo in a call cannot pass silently).
    """
    unused = {"uniform": {"frame_sample_rate": frame_sample_rate != 1, "stride": stride != 1,
                          "num_clips": num_clips != 1},
              "hf": {"stride": stride != 1, "num_clips": num_clips != 1},
              "scenic": {"frame_sample_rate": frame_sample_rate != 1}}
    if strategy not in unused:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    bad = [name for name, changed in unused[strategy].items() if changed]
    if bad:
        raise ValueError(f"sampling={strategy!r} does not use {', '.join(bad)}; "
                         f"stride/num_clips belong to 'scenic', frame_sample_rate to 'hf'")
    if strategy == "uniform":
        return uniform_indices(num_total, num_frames)
    if strategy == "hf":
        return hf_indices(num_total, num_frames, frame_sample_rate, seed)
    return scenic_indices(num_total, num_frames, stride, num_clips)
