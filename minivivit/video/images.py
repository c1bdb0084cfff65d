"""Pillow readers: GIF / APNG / WebP / single images, and folders of frame images (used by decode.py).

Every frame becomes RGB uint8 [H, W, 3]: grayscale is repeated, palette expanded, alpha composited over
black, 16-bit scaled to 8 bits. Pillow's decompression-bomb refusal, truncated files and anything Pillow
raises on a broken file become a ValueError naming the file.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from ..memory import MemoryBudgetError, format_bytes

PILLOW_SUFFIXES = {".gif", ".png", ".apng", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
PILLOW_ERRORS = (OSError, EOFError, SyntaxError, IndexError, ValueError, struct.error)  # what a broken image raises


# ---------------------------------------------------------------------------------------------
# Pillow: GIF / APNG / WebP / single images, and folders of frames
# ---------------------------------------------------------------------------------------------


def _open_image(path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except UnidentifiedImageError as e:
        raise ValueError(f"{path} is not an image or animation Pillow can read (GIF, APNG, WebP, PNG, JPEG...); "
                         f"is it a video or a broken file?") from e
    except Image.DecompressionBombError as e:
        raise MemoryBudgetError(
            f"{path}: {e} Pillow refuses images above PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels "
            f"x 2 ({format_bytes(2 * Image.MAX_IMAGE_PIXELS * 3)} as RGB). If you trust the file, raise that limit "
            f"(PIL.Image.MAX_IMAGE_PIXELS = None) before reading it.") from None
    except PILLOW_ERRORS as e:
        raise ValueError(f"{path}: the image header could not be read ({type(e).__name__}: {e}); is it truncated or "
                         f"not an image?") from None


def _read_image_file(path) -> np.ndarray:
    with _open_image(path) as im:
        try:
            return _pil_rgb(im, path)
        except PILLOW_ERRORS as e:
            raise ValueError(f"{path}: the image could not be decoded ({e}); is it truncated?") from e


def _gif_without_trailer(path) -> bool:
    """A complete GIF ends with its trailer byte ';' (0x3B); a truncated one usually does not."""
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) != b"\x3b"


def _pil_fps(im) -> float | None:
    ms = im.info.get("duration")  # per-frame display time of the current (first) frame, in ms
    return 1000.0 / ms if ms else None


def _pillow_frames(path, wanted) -> dict[int, np.ndarray]:
    out = {}
    with _open_image(path) as im:
        try:
            for i in wanted:  # ascending: Pillow decodes forward from the previous frame
                im.seek(i)
                out[i] = _pil_rgb(im, path)
        except PILLOW_ERRORS as e:
            raise ValueError(f"{path}: frame {i} could not be decoded ({e}); the file may be truncated or corrupt") from e
    return out


def _pil_rgb(im, source=None) -> np.ndarray:
    """A Pillow image of any mode -> uint8 [H, W, 3]."""
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit gray (PNG/TIFF): scale 0..65535 -> 0..255
        a = np.asarray(im).astype(np.int64)  # [H, W]
        a = (np.clip(a, 0, 65535) * 255 + 32767) // 65535  # [H, W] rounded
        return np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)  # [H, W, 3]
    if mode == "F":  # 32-bit float gray: taken as 0..255
        a = np.clip(np.round(np.asarray(im)), 0, 255).astype(np.uint8)  # [H, W]
        return np.repeat(a[:, :, None], 3, axis=2)  # [H, W, 3]
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"))  # [H, W, 3]
    try:
        return np.asarray(im.convert("RGB"))  # [H, W, 3]
    except ValueError as e:  # (OSError, e.g. a truncated file, goes to the caller, which names the file)
        raise ValueError(f"{source or 'image'}: cannot convert Pillow mode {mode!r} to RGB ({e})") from e


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _frame_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PILLOW_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise ValueError(f"the folder {folder} holds no frame images ({', '.join(sorted(PILLOW_SUFFIXES))})")
    return files


def _check_same_size(decoded, files):
    sizes = {i: a.shape for i, a in decoded.items()}
    first = min(sizes)
    for i, shape in sizes.items():
        if shape != sizes[first]:
            raise ValueError(f"frame images differ in size: {files[first].name} is {sizes[first][:2]} but "
                             f"{files[i].name} is {shape[:2]} (height, width); resize them to one size first")
