"""Shared test helpers: random-weight HF ViViT models and their minivivit twins.

Every parameter is randomised, including cls_token and position_embeddings (HF initialises
those to zero, which would hide bugs in the CLS/position code), and LayerNorm gains/biases.
Only tests that need the reference stack import this module (torch, transformers).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import VivitConfig, VivitForVideoClassification, VivitModel

import minivivit
from minivivit.convert.hf import hf_state_to_params

TINY = dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=24, num_hidden_layers=2,
            num_attention_heads=3, intermediate_size=40, num_labels=5)


def hf_config(**overrides) -> VivitConfig:
    kw = dict(TINY)
    kw.update(overrides)
    kw.setdefault("attn_implementation", "eager")
    return VivitConfig(**kw)


def randomise_(model: torch.nn.Module, seed: int = 0, scale: float | None = None) -> torch.nn.Module:
    """Fill every parameter with N(0, scale^2) noise (LayerNorm gains around 1).

    The default scale 1/sqrt(hidden_size) keeps activations O(1) through the depth, like a trained
    model; much larger weights make a 12-layer net chaotic, amplifying float32 rounding itself."""
    g = torch.Generator().manual_seed(seed)
    scale = scale or model.config.hidden_size ** -0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1.0 + noise if ("layernorm" in name and name.endswith("weight")) else noise)
    return model.eval()


def random_hf_model(kind: str = "classifier", seed: int = 0, add_pooling_layer: bool = True, **overrides):
    """A random-weight HF model: kind 'classifier' (VivitForVideoClassification) or 'base' (VivitModel)."""
    torch.manual_seed(seed)
    cfg = hf_config(**overrides)
    model = VivitForVideoClassification(cfg) if kind == "classifier" else VivitModel(cfg, add_pooling_layer=add_pooling_layer)
    return randomise_(model, seed)


def to_minivivit(hf_model, dtype=np.float32) -> minivivit.Model:
    """Convert in memory, from the v5 state-dict names."""
    state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    config = minivivit.ViViTConfig.from_hf_dict(hf_model.config.to_dict())
    return minivivit.Model(hf_state_to_params(state, config, dtype=dtype), config)


def random_clip(config, batch=1, seed=0, frames=None, size=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size or config.image_hw
    return rng.standard_normal((batch, frames or config.num_frames, config.num_channels, h, w)).astype(np.float32)


def hf_forward(hf_model, pixel_values: np.ndarray, **kwargs):
    with torch.no_grad():
        return hf_model(torch.from_numpy(pixel_values), **kwargs)


def rel_err(ours: np.ndarray, ref) -> float:
    """max |ours - ref| / max(1, max |ref|): the issue's parity measure."""
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    assert ours.shape == ref.shape, f"shape {ours.shape} vs reference {ref.shape}"
    return float(np.abs(ours.astype(np.float64) - ref).max() / max(1.0, np.abs(ref).max()))
