"""Loading a model from any file minivivit reads, and the bundled default weights.

    model = minivivit.load()                        # the bundled demo model (or $MINIVIVIT_WEIGHTS)
    model = minivivit.load("vivit-b.safetensors")   # a minivivit file (weights.py's format)
    model = minivivit.load("vivit-b-16x2-kinetics400/")   # an HF model directory, converted in memory

What a path is, is decided here (sniffing): a directory is an HF checkpoint; a .safetensors file with
minivivit's metadata is ours; anything else is an HF weights file with config.json beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .model import Model

# The demo model ships inside the package (a link to weights/vivit-demo.safetensors in the repository,
# copied into wheels), so every install finds it; weights/README.md says how it was made.
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "assets" / "vivit-demo.safetensors"
WEIGHTS_ENV = "MINIVIVIT_WEIGHTS"


def default_weights() -> Path:
    """The weights used when none are given: $MINIVIVIT_WEIGHTS if set, else the bundled demo model."""
    path = Path(os.environ.get(WEIGHTS_ENV) or BUNDLED_WEIGHTS)
    if not path.exists():
        where = f"${WEIGHTS_ENV} points to {path}, which" if os.environ.get(WEIGHTS_ENV) else \
            f"the bundled demo weights {path}"
        raise FileNotFoundError(f"{where} does not exist. Pass weights explicitly: a minivivit .safetensors file or "
                                f"an HF model directory (`minivivit convert` makes the former from the latter).")
    return path


def is_minivivit_file(path) -> bool:
    """True for a .safetensors file carrying minivivit's config metadata."""
    from .fileio import safetensors_metadata
    from .weights import FORMAT_KEY

    return Path(path).suffix == ".safetensors" and FORMAT_KEY in safetensors_metadata(path)


def load(path=None, dtype=np.float32) -> Model:
    """Load a model: a minivivit .safetensors file, or an HF model directory / weights file (converted in memory).

    With no path, default_weights(): $MINIVIVIT_WEIGHTS if set, else the bundled demo model.
    """
    from .convert.hf import read_hf_checkpoint
    from .weights import load_file

    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"load(dtype={np.dtype(dtype).name}): weights are loaded as floats (np.float16, np.float32 "
                        f"or np.float64)")
    path = default_weights() if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_file() and is_minivivit_file(path):
        params, config = load_file(path, dtype=dtype)
    else:  # an HF directory, or an HF weights file with config.json beside it
        params, config = read_hf_checkpoint(path, dtype=dtype)
    return Model(params, config)
