"""A folder-per-class video dataset (HF's video-classification guide and torchvision's layout) as a fit() clip source.

    DATA_DIR/
      archery/  a.mp4  b.mp4 ...
      bowling/  c.mp4 ...

Class names are the sub-folder names, sorted; label i = the i-th name. Every clip is decoded, sampled and
preprocessed exactly as `minivivit classify` does for one view (minivivit.video: uniform sampling of the
model's number of frames over the whole video, HF's VivitImageProcessor arithmetic with the model's
options), once, before training; the pixel values stay in memory.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..memory import guard
from ..progress import tqdm

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".gif", ".webp", ".apng")


class UnreadableClipWarning(UserWarning):
    """A clip of the dataset could not be decoded and was left out (finetune --strict makes it an error)."""


@dataclass(frozen=True)
class FolderDataset:
    """The files of a folder-per-class dataset: classes (sorted folder names) and (path, label) pairs."""

    root: Path
    classes: list  # class names = folder names, sorted
    files: list  # [(Path, label index)], sorted by class, then name

    def counts(self) -> dict:
        return {c: sum(1 for _, y in self.files if y == i) for i, c in enumerate(self.classes)}


def scan_folder(root) -> FolderDataset:
    """List DATA_DIR/<class>/<video>; clear errors for a missing folder, no classes, an empty class, one class."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such dataset folder: {root} (expected DATA_DIR/<class name>/<video files>)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not folders:
        hint = f" ({len(loose)} videos lie directly in it: move them into one folder per class)" if loose else ""
        raise ValueError(f"{root} has no class folders{hint}; expected DATA_DIR/<class name>/<video files>, "
                         f"e.g. {root}/archery/clip1.mp4")
    files, empty = [], []
    for label, folder in enumerate(folders):
        videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            empty.append(folder.name)
        files += [(p, label) for p in videos]
    if not files:
        raise ValueError(f"no videos in {root}: its class folders {[f.name for f in folders]} hold no files ending "
                         f"in {', '.join(VIDEO_SUFFIXES)}")
    if empty:
        raise ValueError(f"class folder(s) {empty} in {root} hold no videos ({', '.join(VIDEO_SUFFIXES)}); add clips "
                         f"or remove the folder")
    if len(folders) < 2:
        raise ValueError(f"{root} has one class only ({folders[0].name!r}); a classifier needs at least 2 class "
                         f"folders")
    return FolderDataset(root, [f.name for f in folders], files)


def split(files, val_fraction: float, seed: int = 0):
    """Seeded, stratified split -> (train, val) lists of (path, label): round(val_fraction * n) clips of each class
    go to validation (at most n - 1, so every class keeps a training clip)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
    train, val = [], []
    for label in sorted({y for _, y in files}):
        mine = [f for f in files if f[1] == label]
        order = np.random.default_rng([seed, label]).permutation(len(mine))
        n_val = min(len(mine) - 1, round(val_fraction * len(mine)))
        val += [mine[i] for i in order[:n_val]]
        train += [mine[i] for i in order[n_val:]]
    return train, val


def load_clips(files, model_config, processor_config=None, preset=None, strict: bool = False, progress: bool = True):
    """Decode + sample + preprocess every file as `minivivit classify` does (one view) ->
    (pixel_values [n, T, C, H, W] float32, labels [n], kept files). An unreadable file is left out with an
    UnreadableClipWarning naming it (strict=True: a ValueError instead)."""
    from ..video.classify import view_pixel_values
    from ..video.decode import read_video
    from ..video.preprocess import model_options

    k, (h, w) = model_config.num_frames, model_config.image_hw
    guard(len(files) * k * 3 * h * w * 4, f"the pixel values of {len(files)} clips", ["fewer or shorter clips"])
    xs, ys, kept = [], [], []
    for path, label in tqdm(files, desc="decoding", unit="clip", disable=not progress, leave=False):
        try:
            frames, _ = read_video(path, num_frames=k, sampling="uniform")  # [k, H, W, 3], classify's sampling
            options = model_options(model_config, frames, processor_config, preset)
            pixel_values, _ = view_pixel_values(frames, options, 1)  # [1, k, C, h, w]
        except Exception as e:
            if strict:
                raise ValueError(f"cannot read {path}: {e} (without --strict it would be skipped)") from e
            warnings.warn(f"skipping {path}: cannot read it ({e})", UnreadableClipWarning, stacklevel=2)
            continue
        xs.append(pixel_values[0])
        ys.append(label)
        kept.append((path, label))
    x = np.stack(xs) if xs else np.zeros((0, k, 3, h, w), np.float32)  # [n, k, C, h, w]
    return x, np.array(ys, dtype=np.int64), kept
