"""Frames -> pixel_values: HF `VivitImageProcessor`'s pipeline, step by step, in NumPy + Pillow.

    uint8 frames [T, H, W, 3]  (or a batch [B, T, H, W, 3], or a list of clips)
      -> resize      (Pillow, per frame; size = {"shortest_edge": s} or {"height": h, "width": w})
      -> crop        (centre; zero padding where the frame is smaller than the crop)
      -> rescale     x * rescale_factor, minus 1 when offset=True
      -> normalise   (x - image_mean) / image_std
      -> float32 pixel_values [B, T, C, H, W]   (HF's layout: the model's input)

Same parameter names and defaults as HF, and the same arithmetic (float64 rescale cast to float32,
float32 normalise), so the output equals `VivitImageProcessor()(list(frames))` to float32 rounding.

Pixel range, with the numbers. HF's defaults rescale AND normalise:
    rescale (offset):  p / 127.5 - 1          0 -> -1,   127.5 -> 0,   255 -> 1
    normalise:         (x - 0.5) / 0.5         -1 -> -3,   0 -> -1,     1 -> 1
so pixels land in [-3, 1] (a mid-grey 128 becomes -0.992). The original ViViT (Scenic/DMVR,
`zero_centering`) feeds p / 127.5 - 1, i.e. [-1, 1] (mid-grey 128 -> 0.004). HF's default is kept
so that parity with HF holds; `preset="scenic"` (= do_normalize=False) gives [-1, 1].
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..memory import guard
from .options import (  # noqa: F401 (the options live in options.py; these names stay importable from here)
    HF_DEFAULTS,
    MAX_SIDE,
    OPTION_RULES,
    PRESETS,
    RESAMPLE,
    _config_dict,
    check_processor_config,
    load_processor_config,
    processor_config_for_weights,
    processor_options,
)

# ---------------------------------------------------------------------------------------------
# The four steps (each on one clip, frames [T, H, W, 3])
# ---------------------------------------------------------------------------------------------


def output_size(height: int, width: int, size: dict) -> tuple[int, int]:
    """(height, width) after resizing, as HF's get_resize_output_image_size (default_to_square=False)."""
    if "shortest_edge" in size:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    return size["height"], size["width"]


def resize(frames: np.ndarray, size: dict, resample: int = 2) -> np.ndarray:
    """[T, H, W, 3] -> [T, H', W', 3] with Pillow, frame by frame (uint8 stays uint8, as in HF).

    Float frames with fractional values are resized per channel in Pillow's 32-bit float mode "F"
    (HF refuses fractional values above 1 and truncates [0, 1] floats to 256 levels); integer-valued floats are
    resized as uint8, exactly as HF does.
    """
    from PIL import Image

    T, H, W, C = frames.shape
    h, w = output_size(H, W, size)
    if frames.dtype != np.uint8 and np.array_equal(frames, np.round(frames)) and frames.min() >= 0 and frames.max() <= 255:
        frames = frames.astype(np.uint8)  # HF: integer-valued floats go through PIL as uint8
    out = np.empty((T, h, w, C), dtype=frames.dtype if frames.dtype == np.uint8 else np.float32)  # [T, h, w, C]
    for t in range(T):
        if frames.dtype == np.uint8:
            out[t] = np.asarray(Image.fromarray(frames[t]).resize((w, h), resample=resample))  # [h, w, 3]
        else:
            for c in range(C):
                channel = Image.fromarray(frames[t, :, :, c].astype(np.float32), mode="F")
                out[t, :, :, c] = np.asarray(channel.resize((w, h), resample=resample))  # [h, w]
    return out


def _crop_axis(n: int, c: int, start: int | None):
    """One axis of HF's center_crop: (source slice, destination offset) for a crop of c out of n."""
    if n >= c:
        s = (n - c) // 2 if start is None else start
        if not 0 <= s <= n - c:
            raise ValueError(f"crop start {s} does not fit a crop of {c} in {n} pixels")
        return slice(s, s + c), 0
    return slice(0, n), math.ceil((c - n) / 2)  # frame smaller than the crop: centred in zeros


def crop(frames: np.ndarray, crop_size: dict, top: int | None = None, left: int | None = None) -> np.ndarray:
    """[T, H, W, C] -> [T, h, w, C]. top/left None: HF's centre crop, top = (H - h) // 2; an axis where the
    frame is smaller than the crop is zero-padded with the frame at offset ceil((h - H) / 2), as HF does."""
    T, H, W, C = frames.shape
    h, w = crop_size["height"], crop_size["width"]
    rows, dy = _crop_axis(H, h, top)
    cols, dx = _crop_axis(W, w, left)
    if dy == 0 and dx == 0 and H >= h and W >= w:
        return frames[:, rows, cols]  # [T, h, w, C]
    out = np.zeros((T, h, w, C), dtype=frames.dtype)  # [T, h, w, C]
    src = frames[:, rows, cols]  # [T, min(H, h), min(W, w), C]
    out[:, dy:dy + src.shape[1], dx:dx + src.shape[2]] = src
    return out


def rescale_normalize(frames: np.ndarray, do_rescale=True, rescale_factor=1 / 127.5, offset=True,
                      do_normalize=True, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5)) -> np.ndarray:
    """[T, H, W, C] -> float32 [T, H, W, C]: x * rescale_factor (- 1 with offset), then (x - mean) / std.

    HF's arithmetic: the rescale is computed in float64 and cast to float32; offset and normalise run in float32.
    """
    x = frames
    if do_rescale:
        x = (x.astype(np.float64) * rescale_factor).astype(np.float32)  # [T, H, W, C]
        if offset:
            x = x - 1
    if do_normalize:
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        C = x.shape[-1]
        mean = np.array([image_mean] * C if np.isscalar(image_mean) else image_mean, dtype=x.dtype)  # [C]
        std = np.array([image_std] * C if np.isscalar(image_std) else image_std, dtype=x.dtype)  # [C]
        if mean.shape != (C,) or std.shape != (C,):
            raise ValueError(f"image_mean and image_std need one value per channel ({C}); got {mean.tolist()}, "
                             f"{std.tolist()}")
        x = (x - mean) / std  # [T, H, W, C]
    return x.astype(np.float32, copy=False)


def estimate_bytes(clips, opts: dict) -> int:
    """Bytes preprocess allocates for these clips with these options (resize output, crop, the float64 rescale
    and the float32 steps, the final stack), from shapes only."""
    total = 0
    for c in clips:
        T, H, W, _ = c.shape
        h, w = output_size(H, W, opts["size"]) if opts["do_resize"] else (H, W)
        total += T * h * w * 3 * (1 if c.dtype == np.uint8 else 4)  # the resized clip
        if opts["do_center_crop"]:
            h, w = opts["crop_size"]["height"], opts["crop_size"]["width"]
        total += T * h * w * 3 * (1 + 8 + 4 + 4 + 4 + 4)  # crop, float64 rescale, float32 x3, stacked output
    return total


# ---------------------------------------------------------------------------------------------
# Input checks and the whole pipeline
# ---------------------------------------------------------------------------------------------


def as_clips(frames) -> list[np.ndarray]:
    """Accept [T, H, W, 3], [B, T, H, W, 3], a list of frames or a list of clips; return a list of [T, H, W, 3]."""
    if hasattr(frames, "detach"):
        raise TypeError("frames is a torch tensor; pass frames.numpy() (uint8 [T, H, W, 3])")
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("frames is an empty list; expected a clip [T, H, W, 3] or a list of clips")
        items = [np.asarray(f) for f in frames]
        if all(a.ndim == 3 for a in items):  # a list of frames [H, W, 3] (HF's style: list(video))
            items = [_stack_frames(items)]
        clips = items
    elif isinstance(frames, np.ndarray):
        if frames.ndim == 5 and len(frames) == 0:
            raise ValueError(f"frames is an empty batch of shape {frames.shape}; expected at least one clip "
                             f"[T, H, W, 3]")
        clips = [frames] if frames.ndim == 4 else list(frames) if frames.ndim == 5 else [frames]
    else:
        raise TypeError(f"frames must be a NumPy array (uint8 [T, H, W, 3]) or a list of them; got {type(frames)}")
    for i, clip in enumerate(clips):
        _check_clip(clip, f"clip {i}" if len(clips) > 1 else "frames")
    return clips


def _stack_frames(items):
    shapes = {a.shape for a in items}
    if len(shapes) > 1:
        raise ValueError(f"the frames of one clip differ in shape: {sorted(shapes)}")
    return np.stack(items)  # [T, H, W, C]


def _check_clip(clip: np.ndarray, name: str):
    if clip.ndim != 4:
        hint = " A single frame [H, W, 3] is a one-frame clip: pass frame[None]." if clip.ndim == 3 else ""
        raise ValueError(f"{name}: expected frames [T, H, W, 3] (or a batch [B, T, H, W, 3]); got shape "
                         f"{clip.shape}.{hint}")
    T, H, W, C = clip.shape
    if C != 3:
        hint = (" It looks channels-first [T, 3, H, W]: use frames.transpose(0, 2, 3, 1)." if H == 3 else
                " Grayscale: np.repeat(frames, 3, axis=-1). RGBA: frames[..., :3]." if C in (1, 4) else "")
        raise ValueError(f"{name}: expected 3 RGB channels last, [T, H, W, 3]; got shape {clip.shape}.{hint}")
    if T == 0 or H == 0 or W == 0:
        raise ValueError(f"{name}: empty clip of shape {clip.shape}; expected at least one frame of at least 1x1")
    if clip.dtype == np.uint8:
        return
    if not np.issubdtype(clip.dtype, np.floating):
        raise TypeError(
            f"{name}: expected uint8 frames (0..255) or float frames; got dtype {clip.dtype}. If the values are "
            f"0..255 use frames.astype(np.uint8); for 16-bit frames use (frames // 257).astype(np.uint8).")
    bad = ~np.isfinite(clip)
    if bad.any():
        t = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name}: contains NaN or infinity ({int(bad.sum())} values, first in frame {t}); "
                         f"fix or drop those frames before preprocessing")


def preprocess(frames, *, preset: str | None = None, processor_config=None, **kwargs) -> np.ndarray:
    """uint8 (or float 0..255) frames -> float32 pixel_values [B, T, C, H, W], exactly as VivitImageProcessor.

    frames: a clip [T, H, W, 3], a batch [B, T, H, W, 3], a list of frames, or a list of clips (same T).
    kwargs: VivitImageProcessor's options with its names and defaults: do_resize, size, resample,
    do_center_crop, crop_size, do_rescale, rescale_factor, offset, do_normalize, image_mean, image_std.
    preset: "hf" (the defaults, pixels in [-3, 1]) or "scenic" (the original ViViT's [-1, 1]).
    processor_config: an HF preprocessor_config.json (dict, file, or model directory) to start from.
    """
    opts = processor_options(processor_config, preset, **kwargs)
    clips = as_clips(frames)
    check_memory(clips, opts)  # the whole batch; resize_clip checks each clip again (classify calls it alone)
    if opts["do_rescale"] and any(c.dtype != np.uint8 and c.size and c.min() >= 0 and c.max() <= 1 for c in clips):
        warnings.warn("float frames look already scaled to [0, 1] but do_rescale=True divides by 127.5 again; "
                      "pass frames * 255, or do_rescale=False", stacklevel=2)
    out = [_process_clip(clip, opts) for clip in clips]  # B x [T, C, H, W]
    shapes = {o.shape for o in out}
    if len(shapes) > 1:
        raise ValueError(f"the clips come out with different shapes {sorted(shapes)} (frames x channels x H x W); "
                         f"give them the same length and use do_center_crop=True or size={{'height', 'width'}}")
    return np.stack(out)  # [B, T, C, H, W]


def _process_clip(clip: np.ndarray, opts: dict) -> np.ndarray:
    """One clip [T, H, W, 3] -> float32 [T, C, H', W'] through the four steps."""
    return finish_clip(resize_clip(clip, opts), opts)


def check_memory(clips, opts: dict) -> None:
    """Refuse (minivivit.memory) preprocessing whose arrays would exceed the memory limit, before allocating them."""
    T, H, W, _ = clips[0].shape
    guard(estimate_bytes(clips, opts), f"preprocessing {len(clips)} clip(s) of {T} frames of {H}x{W} with "
          f"size={opts['size']}, crop_size={opts['crop_size']}",
          ["a smaller size / crop_size (the model's frame size, e.g. preprocess_for(model.config, frames))"])


def resize_clip(clip: np.ndarray, opts: dict) -> np.ndarray:
    """Step 1 with the resolved options: [T, H, W, 3] -> [T, H', W', 3] (unchanged when do_resize is off).
    Checks the memory of the clip's whole pipeline first (check_memory)."""
    check_memory([clip], opts)
    return resize(clip, opts["size"], opts["resample"]) if opts["do_resize"] else clip


def finish_clip(clip: np.ndarray, opts: dict, top: int | None = None, left: int | None = None) -> np.ndarray:
    """Steps 2-4 on a resized clip [T, H', W', 3] -> float32 [T, C, h, w]: crop (HF's centre, or at top / left;
    see crop), rescale, normalise, channels first. multi-view classification takes several crops of one resize."""
    x = crop(clip, opts["crop_size"], top, left) if opts["do_center_crop"] else clip  # [T, h, w, 3]
    x = rescale_normalize(x, opts["do_rescale"], opts["rescale_factor"], opts["offset"], opts["do_normalize"],
                          opts["image_mean"], opts["image_std"])  # [T, h, w, 3] float32
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [T, 3, h, w]


# ---------------------------------------------------------------------------------------------
# Defaults that fit a model: its frame size and clip length
# ---------------------------------------------------------------------------------------------


def covering_shortest_edge(height: int, width: int, crop_hw: tuple[int, int]) -> int:
    """The smallest shortest_edge s whose resize of a height x width frame covers crop_hw in both axes."""
    h, w = crop_hw
    s = max(1, min(h, w))
    while True:
        new_h, new_w = output_size(height, width, {"shortest_edge": s})
        if new_h >= h and new_w >= w:
            return s
        s += 1


def model_options(model_config, frames=None, processor_config=None, preset=None, **overrides) -> dict:
    """Preprocessing options for a model: resize the shortest edge to the model's frame size and crop to
    config.image_size (a 64x64 model gets size={"shortest_edge": 64}, crop_size=64x64; HF's 256/224 are for
    224 models). processor_config / preset / overrides then apply on top, as in processor_options."""
    h, w = model_config.image_hw
    if h == w or frames is None:
        edge = max(h, w)
    else:
        clip = as_clips(frames)[0]
        edge = covering_shortest_edge(clip.shape[1], clip.shape[2], (h, w))
    base = {"size": {"shortest_edge": edge}, "crop_size": {"height": h, "width": w}}
    processor_config = _config_dict(processor_config)
    merged = {**base, **(processor_config or {})}
    return processor_options(merged, preset, **overrides)


def preprocess_for(model_config, frames, processor_config=None, preset: str | None = None, **overrides) -> np.ndarray:
    """Frames -> pixel_values [B, num_frames, C, h, w] that fit `model_config` (a ViViTConfig).

    Takes config.num_frames frames uniformly (minivivit.video.sampling.uniform_indices) when the clip has another
    length, then preprocesses with model_options(...). Raises if an override makes the frames the wrong size.
    """
    from .sampling import uniform_indices

    clips = as_clips(frames)
    k = model_config.num_frames
    clips = [c if c.shape[0] == k else c[uniform_indices(c.shape[0], k)] for c in clips]  # B x [k, H, W, 3]
    opts = model_options(model_config, clips, processor_config, preset, **overrides)
    pixel_values = preprocess(clips, **opts)  # [B, k, C, h', w']
    if pixel_values.shape[-2:] != tuple(model_config.image_hw):
        raise ValueError(f"preprocessing gives frames of {pixel_values.shape[-2]}x{pixel_values.shape[-1]} but the "
                         f"model takes {model_config.image_hw[0]}x{model_config.image_hw[1]}; set crop_size to the "
                         f"model's image size (and do_center_crop=True)")
    return pixel_values
