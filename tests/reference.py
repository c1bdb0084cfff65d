"""The reference side of parity tests: random-weight HF ViViT models and their minivivit twins.

Only tests that need the reference stack import this module (torch, transformers). The randomisation
is minivivit.bench.hf_reference's (every parameter drawn, CLS and positions included).
"""

from __future__ import annotations

import numpy as np
import torch
from conftest import TINY, random_clip, rel_err  # noqa: F401 (re-exported for the parity tests)
from transformers import VivitConfig

import minivivit
from minivivit.bench import hf_reference
from minivivit.convert.hf import hf_state_to_params

randomise_ = hf_reference.randomise_


# The configs every explanation-parity test covers (overrides of the tiny config): heads, depth, a tubelet that
# leaves a frame over
EXPLAIN_CONFIGS = [
    ("default", {}),
    ("1-head-3-layers", {"num_attention_heads": 1, "num_hidden_layers": 3}),
    ("5-heads", {"num_attention_heads": 5, "hidden_size": 40}),
    ("tubelet-3x16x16-7-frames", {"tubelet_size": [3, 16, 16], "num_frames": 7}),  # one frame left over
]


def hf_config(**overrides) -> VivitConfig:
    kw = {**TINY, **overrides}
    kw.setdefault("attn_implementation", "eager")
    return VivitConfig(**kw)


def random_hf_model(kind: str = "classifier", seed: int = 0, add_pooling_layer: bool = True, **overrides):
    """A random-weight HF model of the tiny config (with overrides): 'classifier' or 'base'."""
    cfg = {**TINY, **overrides}
    cfg.setdefault("attn_implementation", "eager")
    return hf_reference.random_hf_model(cfg, kind, seed, add_pooling_layer)


def to_minivivit(hf_model, dtype=np.float32) -> minivivit.Model:
    """Convert in memory, from the v5 state-dict names."""
    state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    config = minivivit.ViViTConfig.from_hf_dict(hf_model.config.to_dict())
    return minivivit.Model(hf_state_to_params(state, config, dtype=dtype), config)


def hf_forward(hf_model, pixel_values: np.ndarray, **kwargs):
    with torch.no_grad():
        return hf_model(torch.from_numpy(pixel_values), **kwargs)
