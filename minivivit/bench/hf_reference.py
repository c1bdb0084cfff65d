"""Random-weight HF transformers ViViT models: the reference side of parity tests and benchmarks.

torch and transformers (the dev extra) are imported here only, inside the functions.
Every parameter is randomised the way weights.init_params draws minivivit's random weights, including
cls_token and position_embeddings (HF initialises those to zero, which would hide bugs in the CLS and
position code) and LayerNorm gains/biases.
"""

from __future__ import annotations


def randomise_(model, seed: int = 0, scale: float | None = None):
    """Fill every parameter of a torch model with N(0, scale^2) noise (LayerNorm gains 1 + noise); eval mode.

    The default scale 1/sqrt(hidden_size) keeps activations O(1) through the depth, like a trained
    model; much larger weights make a 12-layer net chaotic, amplifying float32 rounding itself."""
    import torch

    g = torch.Generator().manual_seed(seed)
    scale = scale or model.config.hidden_size ** -0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1.0 + noise if ("layernorm" in name and name.endswith("weight")) else noise)
    return model.eval()


def random_hf_model(config: dict, kind: str = "classifier", seed: int = 0, add_pooling_layer: bool = True):
    """A random-weight HF model from a config dict (HF VivitConfig names): kind 'classifier'
    (VivitForVideoClassification) or 'base' (VivitModel, with or without the pooler)."""
    try:
        import torch
        from transformers import VivitConfig, VivitForVideoClassification, VivitModel
    except ImportError as e:
        raise RuntimeError("this needs torch and transformers, the reference stack of the dev extra: "
                           "python -m pip install -e '.[dev]'") from e
    torch.manual_seed(seed)
    cfg = VivitConfig(**config)
    if kind == "classifier":
        model = VivitForVideoClassification(cfg)
    else:
        model = VivitModel(cfg, add_pooling_layer=add_pooling_layer)
    return randomise_(model, seed)
