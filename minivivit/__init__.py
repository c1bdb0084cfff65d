"""minivivit: ViViT (Arnab et al., 2021) in NumPy and Numba, numerically equal to HF transformers.

    import minivivit
    model = minivivit.load()                      # the bundled demo model
    out = model(pixel_values)                     # float32 [B, T, C, H, W], HF's layout
    out.logits, out.last_hidden_state, out.attentions

The core imports only numpy (and Pillow/safetensors when reading files); numba, PyAV, matplotlib and torch
are imported when a feature needs them. The package, by topic:

    config.py layers.py tokens.py position.py            the model's pieces: config, NumPy reference ops, tokens
    blocks.py model.py factorized/                        the forward passes: Model 1 (HF's) and Models 2-4
    kernels/ (numba/, cuda/)                              fast backends of the same ops
    grad/ train/                                          gradients by hand, AdamW, training steps
    weights.py checkpoint.py convert/ inflate.py          the weights format, loading, HF / Scenic conversion
    video/ (decode, sampling, preprocess, classify)       frames in
    explain/ (capturing, rollout, metrics, viz, explore)  where the model looks
    debug/ (trace, hf, compare)                           layer-by-layer comparison with HF
    data/ cli.py commands/ bench/                         synthetic clips, the command line, benchmarks
"""

from __future__ import annotations

import sys

from . import _moved, grad  # noqa: F401 (minivivit.grad.value_and_grad without another import)
from . import convert as _convert_pkg  # noqa: F401 (import the subpackage first, so `def convert` below keeps the name)
from .checkpoint import BUNDLED_WEIGHTS, default_weights, load
from .config import ViViTConfig
from .flops import flops
from .inflate import inflate
from .model import Model, ViViTOutput
from .video import preprocess as _preprocess_module
from .video import read_video, video_info
from .video.classify import classify
from .video.preprocess import preprocess, preprocess_for

__version__ = "0.1.0"
__all__ = ["ViViTConfig", "Model", "ViViTOutput", "load", "convert", "inflate", "flops", "DEFAULT_WEIGHTS",
           "default_weights",
           "read_video", "video_info", "preprocess", "preprocess_for", "classify"]

DEFAULT_WEIGHTS = BUNDLED_WEIGHTS  # the bundled demo model (minivivit/assets/, from weights/)

_moved.install()
# `minivivit.preprocess` is the function above; the old module path minivivit.preprocess still imports the module
# (now minivivit.video.preprocess) without replacing the function, because it is registered here in advance.
sys.modules.setdefault(__name__ + ".preprocess", _preprocess_module)


def convert(src, out, config=None, force: bool = False, **scenic_options):
    """Convert an HF or Scenic checkpoint to a minivivit file; see minivivit.convert.convert."""
    from .convert import convert as _convert

    return _convert(src, out, config=config, force=force, **scenic_options)
