"""What a variant's config implies, from the config alone: its parameter tree (weights.expected_shapes calls
expected_shapes for every config that is not HF's Model 1), its trace names, the shapes of its attention maps
(what a capture costs before it runs), and the head_mask it takes. Letters as in factorized/__init__.py."""

from __future__ import annotations

import numpy as np

from ..blocks import BLOCK_NAMES
from ..config import ViViTConfig

TIME, SPACE = "time", "space"


def num_attention_layers(config: ViViTConfig) -> int:
    """Entries of ViViTOutput.attentions (and rows of head_mask): L, or L + temporal_num_layers for Model 2."""
    L = config.num_hidden_layers
    return L + config.temporal_num_layers if config.attention_type == "factorized_encoder" else L


def attention_shapes(config: ViViTConfig, batch: int, output_attentions: str = "full", grid=None) -> list:
    """The shape of every entry of ViViTOutput.attentions (a dict of two shapes for Models 3 and 4), from the
    config alone: what a capture costs before running it (bytes = sum of the sizes x itemsize). Every config,
    HF's Model 1 included. output_attentions: "full" or "cls"; grid: the clip's tubelet grid (t, h, w) when it
    is not config.grid (interpolate_pos_encoding)."""
    mode = output_attentions
    if mode not in ("full", "cls"):
        raise ValueError(f"output_attentions must be 'full' or 'cls'; got {mode!r}")
    if mode == "cls" and config.classifier != "token":
        raise ValueError("output_attentions='cls' needs a CLS token, and this model has classifier='gap'; use "
                         "output_attentions='full'")
    B, nh, L = batch, config.num_attention_heads, config.num_hidden_layers
    t, h, w = config.grid if grid is None else grid
    S, token = h * w, int(config.classifier == "token")
    cls = mode == "cls"
    if config.attention_type == "spacetime":
        N = t * S + token
        return [(B, nh, N) if cls else (B, nh, N, N)] * L
    if config.attention_type == "factorized_encoder":
        n_s, n_t = S + token, t + token
        spatial = (B, t, nh, n_s) if cls else (B, t, nh, n_s, n_s)
        return [spatial] * L + [(B, nh, n_t) if cls else (B, nh, n_t, n_t)] * config.temporal_num_layers
    heads = nh if config.attention_type == "factorized_self_attention_block" else nh // 2
    return [{TIME: (B, S, heads, t, t), SPACE: (B, t, heads, S, S)}] * L


def check_head_mask(head_mask, config: ViViTConfig, n_layers: int, dtype):
    """Accept [nh] (every layer) or [layers, nh]; return [layers, nh] or None."""
    if head_mask is None:
        return None
    m = np.asarray(head_mask, dtype=dtype)
    nh = config.num_attention_heads
    if m.shape == (nh,):
        m = np.broadcast_to(m, (n_layers, nh))
    if m.shape != (n_layers, nh):
        what = " (spatial then temporal layers)" if config.attention_type == "factorized_encoder" else ""
        raise ValueError(f"head_mask must have shape ({nh},) or ({n_layers}, {nh}) (layers{what}, heads); "
                         f"got {m.shape}")
    return m




def _attention_shapes(config: ViViTConfig, prefix: str) -> dict[str, tuple]:
    D = config.hidden_size
    shapes = {}
    for name in ("q", "k", "v", "o"):
        shapes[f"{prefix}.{name}.w"] = (D, D)
        if name == "o" or config.qkv_bias:
            shapes[f"{prefix}.{name}.b"] = (D,)
    return shapes


def _block_shapes(config: ViViTConfig, prefix: str) -> dict[str, tuple]:
    """One block's keys under prefix ('blocks.3', 'temporal.blocks.0'): Model 1's block, or Model 3's."""
    D, F = config.hidden_size, config.intermediate_size
    if config.attention_type == "factorized_self_attention_block":
        norms = [f"{prefix}.time.ln", f"{prefix}.space.ln", f"{prefix}.ln2"]
        shapes = {**_attention_shapes(config, f"{prefix}.time.attn"), **_attention_shapes(config, f"{prefix}.space.attn")}
    else:
        norms = [f"{prefix}.ln1", f"{prefix}.ln2"]
        shapes = _attention_shapes(config, f"{prefix}.attn")
    for n in norms:
        shapes[f"{n}.g"] = shapes[f"{n}.b"] = (D,)
    shapes.update({f"{prefix}.mlp.fc1.w": (D, F), f"{prefix}.mlp.fc1.b": (F,),
                   f"{prefix}.mlp.fc2.w": (F, D), f"{prefix}.mlp.fc2.b": (D,)})
    return shapes


def expected_shapes(config: ViViTConfig, head: bool = True) -> dict[str, tuple]:
    """Every flat key (weights.flatten_params spelling) a model of this config has, with its shape."""
    D = config.hidden_size
    tt, ph, pw = config.tubelet_size
    token = config.classifier == "token"
    shapes = {"embed.proj.w": (tt * ph * pw * config.num_channels, D), "embed.proj.b": (D,)}
    if config.attention_type == "factorized_encoder":
        t, h, w = config.grid
        for enc, n, L in (("spatial", h * w, config.num_hidden_layers), ("temporal", t, config.temporal_num_layers)):
            if token:
                shapes[f"{enc}.cls"] = (D,)
            shapes[f"{enc}.pos"] = (n + token, D)
            for i in range(L):
                shapes.update(_block_shapes(config, f"{enc}.blocks.{i}"))
            shapes[f"{enc}.norm.g"] = shapes[f"{enc}.norm.b"] = (D,)
    else:
        if token:
            shapes["embed.cls"] = (D,)
        shapes["embed.pos"] = (config.num_patches + token, D)
        for i in range(config.num_hidden_layers):
            shapes.update(_block_shapes(config, f"blocks.{i}"))
        shapes["norm.g"] = shapes["norm.b"] = (D,)
    width = D
    if config.representation_size is not None:
        width = config.representation_size
        shapes.update({"pre_logits.w": (D, width), "pre_logits.b": (width,)})
    if head:
        shapes.update({"head.w": (width, config.num_labels), "head.b": (config.num_labels,)})
    return shapes


def trace_names(config: ViViTConfig, head: bool = True) -> list[str]:
    """Every name `tap` sees for this config, in forward order (the module docstring gives the shapes)."""
    token = config.classifier == "token"
    block1 = list(BLOCK_NAMES[:BLOCK_NAMES.index("resid1") + 1])  # Model 1's attention half: ln1 ... resid1
    mlp = list(BLOCK_NAMES[BLOCK_NAMES.index("resid1") + 1:])  # its MLP half: ln2, fc1, act, fc2, out
    if config.attention_type == "factorized_self_attention_block":
        attn = [f"{axis}.{n}" for axis in config.attention_order.split("_")
                for n in ("ln", "q", "k", "v", "scores", "probs", "context", "attn_out", "out")]
        block = attn + mlp
    elif config.attention_type == "factorized_dot_product_attention":
        block = ["ln1", "q", "k", "v", "time.scores", "time.probs", "time.context", "space.scores", "space.probs",
                 "space.context", "context", "attn_out", "resid1"] + mlp
    else:
        block = block1 + mlp
    names = ["embed.patches"]
    if config.attention_type == "factorized_encoder":
        for enc, L in (("spatial", config.num_hidden_layers), ("temporal", config.temporal_num_layers)):
            names += [f"{enc}.tokens"] * token + [f"{enc}.embed"]
            names += [f"{enc}.blocks.{i}.{n}" for i in range(L) for n in block]
            names += [f"{enc}.norm"] + ["spatial.pool"] * (enc == "spatial")
    else:
        names += ["embed.tokens"] * token + ["embed.out"]
        names += [f"blocks.{i}.{n}" for i in range(config.num_hidden_layers) for n in block]
        names += ["final_norm"]
    names += ["pool"] + ["pre_logits"] * (config.representation_size is not None) + ["logits"] * head
    return names
