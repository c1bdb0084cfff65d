"""Initial weights for training from scratch, as HF transformers initialises a fresh VivitForVideoClassification.

HF's _init_weights: every Linear / Conv3d weight ~ N(0, initializer_range^2), biases 0, LayerNorm gain 1 and
bias 0; HF leaves CLS and position embeddings at 0, here they get a truncated N(0, 0.02^2) as ViT training
recipes use (it breaks the symmetry between positions sooner). weights.init_params is a different thing: the
random-everything model of the tests, whose every array is non-zero so that parity checks hide nothing.
"""

from __future__ import annotations

import numpy as np

from ..config import ViViTConfig
from ..weights import expected_shapes, unflatten_params


def init_for_training(config: ViViTConfig, seed: int = 0, head: bool = True, dtype=np.float32,
                      std: float | None = None, pos_std: float = 0.02) -> dict:
    """Params (nested like minivivit's) for `config`, initialised for training; a pure function of seed.

    std: the spread of every weight matrix (default config.initializer_range, HF's 0.02);
    pos_std: the spread of the CLS and position embeddings (truncated normal at 2 std; 0.02 as ViT).
    A small model trained from scratch on a where-and-when task (weights/train_demo.py) needs both larger:
    at 0.02 / 0.02 its loss sat at chance for hundreds of steps (the position embeddings were ~40x smaller than
    the tubelet features, so no token knew where it was); at 1/sqrt(hidden) / 3.0 it learns within ~100 steps."""
    rng = np.random.default_rng(seed)
    std = float(config.initializer_range if std is None else std)
    flat = {}
    for key, shape in expected_shapes(config, head=head, pooler=False).items():
        leaf = key.rsplit(".", 1)[-1]
        if key in ("embed.cls", "embed.pos"):
            flat[key] = np.clip(rng.standard_normal(shape), -2.0, 2.0) * pos_std  # truncated at 2 std, as trunc_normal_
        elif leaf == "w":
            flat[key] = rng.standard_normal(shape) * std  # [in, out] matrices (and the tubelet projection)
        elif leaf == "g":
            flat[key] = np.ones(shape)  # LayerNorm gains
        else:
            flat[key] = np.zeros(shape)  # biases
        flat[key] = flat[key].astype(dtype)
    return unflatten_params(flat)
