"""Classify a video, with the paper's multi-view evaluation (HF has no equivalent).

views = (num_clips, num_crops), e.g. 4x3 as in ViViT's Kinetics results:
  - time: num_clips clips of config.num_frames frames at `stride`, evenly spaced over the video
    (Scenic's evaluation sampling, minivivit.video.sampling.scenic_indices);
  - space: each clip is resized once (shortest edge), then num_crops crops of the model's frame size are taken
    along the longer free axis: left / centre / right for landscape, top / middle / bottom for portrait
    (3 crops, as SlowFast and Scenic do; the centre one is HF's centre crop);
  - the model runs on every (clip, crop) view and the logits are averaged; softmax comes last.

One view (1x1, the default) is exactly `preprocess_for` + one forward pass, with `uniform` sampling over
the whole video unless another strategy is asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import layers
from ..memory import guard
from .preprocess import as_clips, finish_clip, model_options, resize_clip
from .sampling import sample_indices

CROP_NAMES = {("x", 3): ["left", "centre", "right"], ("y", 3): ["top", "middle", "bottom"],
              ("x", 2): ["left", "right"], ("y", 2): ["top", "bottom"]}


@dataclass
class Prediction:
    """What classify returns. Arrays use L = num_labels, C = num_clips, K = num_crops, k = frames per clip."""

    labels: list[str]  # top-k label names, best first
    class_ids: np.ndarray  # [top_k] label indices
    probabilities: np.ndarray  # [top_k] softmax of the averaged logits
    logits: np.ndarray  # [L] logits averaged over the views
    view_logits: np.ndarray  # [C, K, L] logits of every view
    indices: np.ndarray  # [C, k] frame numbers each clip used
    crops: list[str]  # K crop names, e.g. ["left", "centre", "right"]
    sampling: str  # "uniform", "hf" or "scenic"
    meta: object = None  # minivivit.video.VideoMeta when a file was read
    options: dict = field(default_factory=dict)  # the preprocessing options used (preprocess.processor_options)
    timing: dict = field(default_factory=dict)  # seconds: decode, preprocess, model, total


def parse_views(text) -> tuple[int, int]:
    """'4x3' -> (4, 3) (clips x crops); also accepts a (clips, crops) pair."""
    try:
        parts = text.lower().split("x") if isinstance(text, str) else list(text)
        if not isinstance(text, str) and not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                 for v in parts):
            raise TypeError
        clips, crops = (int(v) for v in parts)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"views must look like '4x3' (temporal clips x spatial crops); got {text!r}") from None
    if clips < 1 or crops < 1:
        raise ValueError(f"views must be at least 1x1; got {clips}x{crops}")
    return clips, crops


def crop_positions(frame_hw, crop_hw, num_crops: int) -> list[tuple[str, int | None, int | None]]:
    """[(name, top, left)] for num_crops crops of crop_hw from a resized frame of frame_hw.

    The crops slide along the axis with more room (rows when H - h > W - w, i.e. portrait; else columns),
    start_i = room * i // (num_crops - 1); the other axis is HF's centre. None means HF's centre rule
    (which also zero-pads a frame smaller than the crop)."""
    (H, W), (h, w) = frame_hw, crop_hw
    if num_crops == 1:
        return [("centre", None, None)]
    axis, room = ("y", H - h) if H - h > W - w else ("x", W - w)
    names = CROP_NAMES.get((axis, num_crops)) or [f"{'row' if axis == 'y' else 'column'} {i + 1}/{num_crops}"
                                                  for i in range(num_crops)]
    starts = [room * i // (num_crops - 1) if room >= 0 else None for i in range(num_crops)]
    return [(n, s, None) if axis == "y" else (n, None, s) for n, s in zip(names, starts)]


def view_pixel_values(clip: np.ndarray, options: dict, num_crops: int):
    """One clip [k, H, W, 3] -> (pixel_values [K, k, C, h, w], crop names): resize once, crop K times."""
    x = resize_clip(clip, options)  # [k, H', W', 3]
    if not options["do_center_crop"]:
        if num_crops > 1:
            raise ValueError(f"{num_crops} spatial crops need do_center_crop=True (crops of crop_size)")
        positions = [("full frame", None, None)]
    else:
        hw = (options["crop_size"]["height"], options["crop_size"]["width"])
        positions = crop_positions(x.shape[1:3], hw, num_crops)
    views = [finish_clip(x, options, top, left) for _, top, left in positions]  # K x [k, 3, h, w]
    return np.stack(views), [p[0] for p in positions]  # [K, k, 3, h, w]


def choose_sampling(num_clips: int, sampling: str | None = None) -> str:
    """The temporal strategy for num_clips clips: uniform by default for one clip, scenic for several."""
    sampling = sampling or ("uniform" if num_clips == 1 else "scenic")
    if num_clips > 1 and sampling != "scenic":
        raise ValueError(f"{num_clips} temporal clips use Scenic's evenly spaced clips; sampling={sampling!r} "
                         f"takes one clip. Use sampling='scenic' (the default for several clips) or 1 clip.")
    return sampling


def classify(model, video, *, views=(1, 1), backend: str = "numpy", sampling: str | None = None, stride: int = 1,
             frame_sample_rate: int = 1, seed: int | None = 0, processor_config=None, preset: str | None = None,
             top_k: int = 5, progress: bool = False) -> Prediction:
    """Classify a video file (path) or uint8 frames [T, H, W, 3] with a minivivit Model.

    views: (num_clips, num_crops) or "4x3". sampling: "uniform" (default for 1 clip), "hf" (1 clip, uses
    frame_sample_rate and seed) or "scenic" (default for several clips, uses stride).
    processor_config / preset: preprocessing on top of the model's defaults (see preprocess.model_options).
    progress: a tqdm bar over the views.
    """
    from ..progress import tqdm  # no TqdmWarning in a notebook without ipywidgets

    if not model.has_head:
        raise ValueError("this model has no classification head (an HF VivitModel); classify needs "
                         "VivitForVideoClassification weights")
    num_clips, num_crops = parse_views(views)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1 (larger than the number of labels gives every label); got {top_k!r}")
    k = model.config.num_frames
    t0 = time.perf_counter()
    sampling = choose_sampling(num_clips, sampling)
    how = {"stride": stride, "frame_sample_rate": frame_sample_rate, "num_clips": num_clips, "seed": seed}
    meta = None
    if isinstance(video, np.ndarray):
        (frames,) = as_clips(video)  # [T, H, W, 3]
        guard(num_clips * k * frames[0].nbytes, f"{num_clips} clip(s) x {k} frames of {frames.shape[1]}x"
              f"{frames.shape[2]}", ["fewer temporal clips (views)"])
        indices = sample_indices(sampling, len(frames), k, **how).reshape(num_clips, k)  # [C, k]
        clips = frames[indices]  # [C, k, H, W, 3]
    else:
        from .decode import read_video

        clips, meta = read_video(video, num_frames=k, sampling=sampling, **how)  # [k, ...] or [C, k, H, W, 3]
        clips = clips.reshape(num_clips, k, *clips.shape[-3:])  # [C, k, H, W, 3]
        indices = meta.indices.reshape(num_clips, k)  # [C, k]
    t_decode = time.perf_counter() - t0

    options = model_options(model.config, clips[0], processor_config, preset)
    crop_hw = (options["crop_size"]["height"], options["crop_size"]["width"])
    if options["do_center_crop"] and crop_hw != tuple(model.config.image_hw):
        raise ValueError(f"the preprocessing crops {crop_hw[0]}x{crop_hw[1]} but the model takes "
                         f"{model.config.image_hw[0]}x{model.config.image_hw[1]} frames; the preprocessor config does "
                         f"not belong to this model (drop it to use the model's defaults)")
    view_logits, crop_names, t_pre, t_model = [], None, 0.0, 0.0
    with tqdm(total=num_clips * num_crops, desc="views", unit="view", disable=not progress, leave=False) as bar:
        for clip in clips:
            t1 = time.perf_counter()
            pixel_values, crop_names = view_pixel_values(clip, options, num_crops)  # [K, k, 3, h, w]
            t_pre += time.perf_counter() - t1
            row = []
            for v in pixel_values:
                t2 = time.perf_counter()
                row.append(model(v[None], backend=backend).logits[0])  # [L]
                t_model += time.perf_counter() - t2
                bar.update(1)
            view_logits.append(row)
    view_logits = np.asarray(view_logits, dtype=np.float32)  # [C, K, L]
    logits = view_logits.mean(axis=(0, 1))  # [L]
    probs = layers.softmax(logits.astype(np.float64))  # [L]
    top = np.argsort(-probs, kind="stable")[:max(1, min(top_k, len(probs)))]  # [top_k]
    labels = model.labels
    timing = {"decode": t_decode, "preprocess": t_pre, "model": t_model, "total": time.perf_counter() - t0}
    return Prediction([labels[i] for i in top], top, probs[top], logits, view_logits, indices, crop_names,
                      sampling, meta, options, timing)
