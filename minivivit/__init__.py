"""minivivit: ViViT (Arnab et al., 2021) in NumPy and Numba, numerically equal to HF transformers.

    import minivivit
    model = minivivit.load()                      # the bundled demo model (weights/)
    out = model(pixel_values)                     # float32 [B, T, C, H, W], HF's layout
    out.logits, out.last_hidden_state, out.attentions

The core imports only numpy; numba, PyAV, matplotlib and torch are imported when a feature needs them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import convert as _convert_pkg  # noqa: F401 (import the subpackage first, so `def convert` below keeps the name)
from .config import ViViTConfig
from .flops import flops
from .inflate import inflate
from .model import Model, ViViTOutput
from .multiview import classify
from .preprocess import preprocess, preprocess_for
from .video import read_video, video_info

__version__ = "0.1.0"
__all__ = ["ViViTConfig", "Model", "ViViTOutput", "load", "convert", "inflate", "flops", "DEFAULT_WEIGHTS",
           "read_video", "video_info", "preprocess", "preprocess_for", "classify"]

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "vivit-demo.safetensors"


def load(path=None, dtype=np.float32) -> Model:
    """Load a model: a minivivit .safetensors file, or an HF model directory (converted in memory).

    With no path, the bundled demo model (or $MINIVIVIT_WEIGHTS if set).
    """
    from .convert.hf import read_hf_checkpoint
    from .weights import FORMAT_KEY, load_file

    if path is None:
        path = os.environ.get("MINIVIVIT_WEIGHTS") or DEFAULT_WEIGHTS
        if not Path(path).exists():
            raise FileNotFoundError(
                f"the bundled demo weights are missing ({path}). Pass a path: minivivit.load('model.safetensors'), "
                f"or an HF model directory."
            )
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_dir():
        params, config = read_hf_checkpoint(path, dtype=dtype)
        return Model(params, config)
    if path.suffix == ".safetensors" and _is_minivivit_file(path, FORMAT_KEY):
        params, config = load_file(path, dtype=dtype)
        return Model(params, config)
    params, config = read_hf_checkpoint(path, dtype=dtype)  # an HF weights file with config.json beside it
    return Model(params, config)


def _is_minivivit_file(path, key) -> bool:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return key in (f.metadata() or {})
    except SafetensorError as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e}); is it truncated?") from e


def convert(src, out, config=None, force: bool = False, **scenic_options):
    """Convert an HF or Scenic checkpoint to a minivivit file; see minivivit.convert.convert."""
    from .convert import convert as _convert

    return _convert(src, out, config=config, force=force, **scenic_options)
