"""Scenic (Flax) ViViT checkpoints -> minivivit params + config. The only file that knows Scenic's names.

A Scenic checkpoint is a Flax msgpack file (read by minivivit/convert/msgpack.py: no code runs, no JAX), in
one of the two layouts Scenic has used:
    {"optimizer": {"target": params, "state": ...}, ...}   the released ViViT checkpoints (flax.optim era)
    {"params": params, "opt_state": ..., ...}               the current scenic.train_lib TrainState
(a bare params tree is accepted too). Scenic's names (scenic/projects/vivit/model.py), '/'-joined:

    embedding/kernel [tt, ph, pw, C, D], /bias            -> embed.proj.w [K, D] (a reshape: same (frame, row,
                                                              col, channel) order), embed.proj.b
    cls [1, 1, D]                                         -> embed.cls            (Model 1, classifier='token')
    Transformer/posembed_input/pos_embedding [1, N, D]    -> embed.pos
    Transformer/encoderblock_i/LayerNorm_0, LayerNorm_1   -> blocks.i.ln1, blocks.i.ln2   (scale -> g, bias -> b)
        .../MultiHeadDotProductAttention_0/{query,key,value}/kernel [D, nh, d], bias [nh, d]
                                                          -> blocks.i.attn.{q,k,v}.w [D, D], .b [D]
        .../MultiHeadDotProductAttention_0/out/kernel [nh, d, D], bias [D]   -> blocks.i.attn.o
        .../MlpBlock_0/Dense_0, Dense_1                   -> blocks.i.mlp.fc1, fc2
      Model 3: LayerNorm_time, MultiHeadDotProductAttention_time -> blocks.i.time.ln, .time.attn; the same with
               _space; LayerNorm_mlp -> ln2; MlpBlock -> mlp
    Transformer/encoder_norm                              -> norm
    Model 2: cls_SpatialTransformer, SpatialTransformer/...  -> spatial.cls, spatial.pos, spatial.blocks, spatial.norm
             cls_TemporalTransformer, TemporalTransformer/... -> temporal.cls, temporal.pos, ...
    pre_logits/kernel, bias                               -> pre_logits.w, .b   (representation_size)
    output_projection/kernel, bias                        -> head.w, head.b

The tree gives the sizes, the classifier (a CLS token or not) and Model 2 / Model 3; it cannot tell Model 4 from
Model 1 with classifier='gap' (identical trees), nor Model 3's attention order, nor how P = t*h*w tubelets split
into frames and frame size (except for Model 2): those must be passed, and the error says which.
Activation: Flax's nn.gelu, the tanh approximation (hidden_act='gelu_new'); LayerNorm epsilon 1e-6.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..config import ATTENTION_TYPES, ViViTConfig
from ..weights import expected_shapes, unflatten_params
from . import msgpack

ALIASES = {"1": "spacetime", "2": "factorized_encoder", "3": "factorized_self_attention_block",
           "4": "factorized_dot_product_attention"}
ENCODERS = {"Transformer": "", "SpatialTransformer": "spatial.", "TemporalTransformer": "temporal."}
BLOCK_PARTS = {  # Scenic module inside encoderblock_i -> minivivit name inside blocks.i
    "LayerNorm_0": "ln1", "LayerNorm_1": "ln2", "MultiHeadDotProductAttention_0": "attn", "MlpBlock_0": "mlp",
    "LayerNorm_time": "time.ln", "MultiHeadDotProductAttention_time": "time.attn",
    "LayerNorm_space": "space.ln", "MultiHeadDotProductAttention_space": "space.attn",
    "LayerNorm_mlp": "ln2", "MlpBlock": "mlp",
}
LEAVES = {"scale": "g", "kernel": "w", "bias": "b", "query": "q", "key": "k", "value": "v", "out": "o",
          "Dense_0": "fc1", "Dense_1": "fc2"}
_BLOCK = re.compile(r"^encoderblock_(\d+)$")


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------


def flatten_tree(tree, prefix="") -> dict[str, np.ndarray]:
    """{'Transformer': {'encoder_norm': {'scale': a}}} -> {'Transformer/encoder_norm/scale': a}."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(flatten_tree(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def params_tree(state: dict, source: str = "checkpoint") -> tuple[dict, str]:
    """Find the params in a restored Flax state -> (params tree, layout name)."""
    if isinstance(state.get("optimizer"), dict) and isinstance(state["optimizer"].get("target"), dict):
        return state["optimizer"]["target"], "optimizer.target"
    if isinstance(state.get("params"), dict):
        return state["params"], "params"
    if "embedding" in state:  # a bare params tree
        return state, "bare params"
    raise ValueError(f"{source} holds no ViViT params: expected a Scenic checkpoint with 'optimizer' -> 'target' "
                     f"(the released ViViT checkpoints) or 'params' (a current Scenic TrainState); its top-level keys "
                     f"are {sorted(state)[:10]}")


def read_params(path) -> tuple[dict[str, np.ndarray], str]:
    """A Scenic checkpoint file -> (flat Scenic params {'Transformer/...': array}, layout name)."""
    state = msgpack.read_file(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is a msgpack file but not a Flax checkpoint (its top level is a "
                         f"{type(state).__name__}, not a map)")
    tree, layout = params_tree(state, source=str(path))
    return flatten_tree(tree), layout


# ---------------------------------------------------------------------------------------------
# What the tree says about the model
# ---------------------------------------------------------------------------------------------


def _shape(flat, key, source):
    if key not in flat:
        raise ValueError(f"{source}: missing {key!r}, which every Scenic ViViT has; is this a ViViT checkpoint?")
    return tuple(np.shape(flat[key]))


def _num_blocks(flat, encoder):
    idx = {int(m.group(1)) for k in flat if k.startswith(encoder + "/")
           for m in [_BLOCK.match(k.split("/")[1])] if m}
    return max(idx) + 1 if idx else 0


def infer_config(flat: dict, variant=None, attention_order=None, num_frames=None, image_size=None,
                 source: str = "checkpoint", **overrides) -> ViViTConfig:
    """The ViViTConfig of a flat Scenic params tree. variant: an attention_type (or 1-4) where the tree cannot
    tell; attention_order: Model 3's; num_frames / image_size: the clip, where the positions cannot tell.
    overrides: any other ViViTConfig field (e.g. id2label)."""
    kind = ALIASES.get(str(variant), variant)
    if kind is not None and kind not in ATTENTION_TYPES:
        raise ValueError(f"variant must be one of {sorted(ATTENTION_TYPES)} or 1-4; got {variant!r}")
    model2 = "SpatialTransformer/encoder_norm/scale" in flat
    enc = "SpatialTransformer" if model2 else "Transformer"
    first = f"{enc}/encoderblock_0"
    model3 = f"{first}/LayerNorm_time/scale" in flat
    token = ("cls_SpatialTransformer" if model2 else "cls") in flat
    found = "factorized_encoder" if model2 else "factorized_self_attention_block" if model3 else None
    if found is None and token:
        found = "spacetime"  # Model 4 has no CLS token
    if found is None:  # Model 1 with classifier='gap' or Model 4: the same tree
        if kind is None:
            raise ValueError(f"{source}: this tree fits both Model 1 with classifier='gap' (attention_type="
                             f"'spacetime') and Model 4 (attention_type='factorized_dot_product_attention'), whose "
                             f"parameters are identical; pass variant='spacetime' or variant="
                             f"'factorized_dot_product_attention' (CLI: --variant), as the Scenic config's "
                             f"model.attention_config.type says")
        if kind not in ("spacetime", "factorized_dot_product_attention"):
            raise ValueError(f"{source}: variant={kind!r} does not fit this tree (no CLS token, no Model 2 or 3 "
                             f"modules): it is Model 1 with classifier='gap' or Model 4")
        found = kind
    elif kind is not None and kind != found:
        raise ValueError(f"{source}: the tree is {ATTENTION_TYPES[found]} (attention_type={found!r}), not "
                         f"variant={kind!r}")
    if found == "factorized_self_attention_block":
        if attention_order is None:
            raise ValueError(f"{source}: a Model 3 checkpoint does not record which attention comes first; pass "
                             f"attention_order='time_space' or 'space_time' (CLI: --attention-order), as the "
                             f"Scenic config's model.attention_config.attention_order says")
    elif attention_order is not None and attention_order != "time_space":
        raise ValueError(f"{source}: attention_order only applies to Model 3; this checkpoint is {ATTENTION_TYPES[found]}")

    tt, ph, pw, C, D = _shape(flat, "embedding/kernel", source)
    attn = f"{first}/MultiHeadDotProductAttention_{'time' if model3 else '0'}"
    _, nh, _ = _shape(flat, f"{attn}/query/kernel", source)
    mlp = f"{first}/{'MlpBlock' if model3 else 'MlpBlock_0'}/Dense_0/kernel"
    F = _shape(flat, mlp, source)[1]
    kwargs = dict(tubelet_size=(tt, ph, pw), num_channels=C, hidden_size=D, num_attention_heads=nh,
                  intermediate_size=F, num_hidden_layers=_num_blocks(flat, enc), hidden_act="gelu_new",
                  layer_norm_eps=1e-6, qkv_bias=True, attention_type=found, classifier="token" if token else "gap",
                  attention_order=attention_order or "time_space")
    if "output_projection/bias" in flat:
        kwargs["num_labels"] = _shape(flat, "output_projection/bias", source)[0]
    if "pre_logits/kernel" in flat:
        kwargs["representation_size"] = _shape(flat, "pre_logits/kernel", source)[1]
    if model2:
        kwargs["temporal_num_layers"] = _num_blocks(flat, "TemporalTransformer")
        tattn = "TemporalTransformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel"
        tmlp = "TemporalTransformer/encoderblock_0/MlpBlock_0/Dense_0/kernel"
        if _shape(flat, tattn, source)[1] != nh or _shape(flat, tmlp, source)[1] != F:
            raise ValueError(f"{source}: the temporal encoder has other heads / MLP width than the spatial one "
                             f"({_shape(flat, tattn, source)[1]} / {_shape(flat, tmlp, source)[1]} vs {nh} / {F}); "
                             f"minivivit's Model 2 shares them (as every released ViViT config does)")
        S = _shape(flat, "SpatialTransformer/posembed_input/pos_embedding", source)[1] - token
        t = _shape(flat, "TemporalTransformer/posembed_input/pos_embedding", source)[1] - token
        P = None
    else:
        P = _shape(flat, "Transformer/posembed_input/pos_embedding", source)[1] - token
        S = t = None
    kwargs.update(_clip_size(P, S, t, (tt, ph, pw), num_frames, image_size, source))
    kwargs.update(overrides)
    return ViViTConfig(**kwargs)


def _clip_size(P, S, t, tubelet, num_frames, image_size, source) -> dict:
    """num_frames and image_size from the position embeddings' token count, and what the caller says."""
    tt, ph, pw = tubelet
    hw = None if image_size is None else ((image_size, image_size) if np.isscalar(image_size) else tuple(image_size))
    if hw is not None:
        S_given = (hw[0] // ph) * (hw[1] // pw)
        if S is not None and S_given != S:
            raise ValueError(f"{source}: image_size={image_size} gives {S_given} tubelets per frame, but the spatial "
                             f"position embeddings have {S}")
        S = S_given
    if num_frames is not None:
        if t is not None and num_frames // tt != t:
            raise ValueError(f"{source}: num_frames={num_frames} gives {num_frames // tt} time slices, but the "
                             f"temporal position embeddings have {t}")
        t = num_frames // tt
    if P is not None:  # Models 1, 3, 4: P = t * S
        if S is None and t is None:
            raise ValueError(f"{source}: the position embeddings hold P = t*h*w = {P} tubelets, which does not say "
                             f"how many frames and what frame size; pass num_frames=... (--num-frames) or "
                             f"image_size=... (--image-size), e.g. num_frames=32 for the released 32x224x224 models")
        if S is None:
            S = P // t if t and P % t == 0 else None
        elif t is None:
            t = P // S if S and P % S == 0 else None
        if S is None or t is None or t * S != P:
            raise ValueError(f"{source}: {P} tubelets do not split into the given clip (num_frames={num_frames}, "
                             f"image_size={image_size}, tubelet (frames, rows, cols) = {tubelet})")
    if hw is None:
        side = int(round(S ** 0.5))
        if side * side != S:
            raise ValueError(f"{source}: {S} tubelets per frame is not a square grid; pass image_size=(height, width) (--image-size HxW)")
        hw = (side * ph, side * pw)
    return {"num_frames": t * tt, "image_size": hw[0] if hw[0] == hw[1] else hw}


# ---------------------------------------------------------------------------------------------
# Names and layouts
# ---------------------------------------------------------------------------------------------


def scenic_key_to_ours(key: str) -> str | None:
    """'Transformer/encoderblock_3/MultiHeadDotProductAttention_0/query/kernel' -> 'blocks.3.attn.q.w'."""
    parts = key.split("/")
    top = {"embedding": "embed.proj", "pre_logits": "pre_logits", "output_projection": "head"}
    if parts[0] in top and len(parts) == 2 and parts[1] in ("kernel", "bias"):
        return f"{top[parts[0]]}.{LEAVES[parts[1]]}"
    if key in ("cls", "cls_SpatialTransformer", "cls_TemporalTransformer"):
        return {"cls": "embed.cls", "cls_SpatialTransformer": "spatial.cls", "cls_TemporalTransformer": "temporal.cls"}[key]
    if parts[0] not in ENCODERS or len(parts) < 3:
        return None
    enc = ENCODERS[parts[0]]
    if parts[1:] == ["posembed_input", "pos_embedding"]:
        return f"{enc}pos" if enc else "embed.pos"
    if parts[1] == "encoder_norm" and len(parts) == 3 and parts[2] in ("scale", "bias"):
        return f"{enc}norm.{LEAVES[parts[2]]}"
    m = _BLOCK.match(parts[1])
    if not m or len(parts) < 4 or parts[2] not in BLOCK_PARTS or not all(p in LEAVES for p in parts[3:]):
        return None
    return f"{enc}blocks.{m.group(1)}.{BLOCK_PARTS[parts[2]]}." + ".".join(LEAVES[p] for p in parts[3:])


def to_ours(key: str, a: np.ndarray) -> np.ndarray:
    """Re-lay one Scenic array as minivivit stores it."""
    if key == "embed.proj.w":  # Conv kernel [tt, ph, pw, C, D] -> [tt*ph*pw*C, D]: already patchify's order
        return a.reshape(-1, a.shape[-1])
    if key.endswith(("cls", "pos")) and a.ndim == 3:  # [1, 1, D] -> [D]; [1, N, D] -> [N, D]
        return a.reshape(a.shape[1:]) if key.endswith("pos") else a.reshape(a.shape[-1])
    if re.search(r"attn\.[qkv]\.w$", key) and a.ndim == 3:  # [D, nh, d] -> [D, D] (head-major columns)
        return a.reshape(a.shape[0], -1)
    if re.search(r"attn\.[qkv]\.b$", key) and a.ndim == 2:  # [nh, d] -> [D]
        return a.reshape(-1)
    if key.endswith("attn.o.w") and a.ndim == 3:  # [nh, d, D] -> [D, D]
        return a.reshape(-1, a.shape[-1])
    return a


def scenic_to_params(flat: dict, config: ViViTConfig, dtype=np.float32, source: str = "checkpoint") -> dict:
    """Flat Scenic params -> minivivit's nested params; strict, one error listing every problem."""
    ours, origin, problems = {}, {}, []
    for key, a in flat.items():
        k = scenic_key_to_ours(key)
        if k is None:
            problems.append(f"unknown Scenic key {key!r} with shape {tuple(np.shape(a))}")
            continue
        ours[k], origin[k] = to_ours(k, np.asarray(a)), key
    expected = expected_shapes(config, head="head.w" in ours, pooler=False)
    for k, shape in expected.items():
        if k not in ours:
            problems.append(f"missing a Scenic key for {k!r} (shape {shape})")
        elif tuple(ours[k].shape) != shape:
            problems.append(f"{origin[k]!r} has shape {tuple(np.shape(flat[origin[k]]))}, which gives {k!r} "
                            f"{tuple(ours[k].shape)}; expected {shape}")
    for k in ours:
        if k not in expected:
            problems.append(f"Scenic key {origin[k]!r} does not belong to {ATTENTION_TYPES[config.attention_type]} "
                            f"with classifier={config.classifier!r}")
    if problems:
        raise ValueError(f"{source} does not fit the config ({len(problems)} problem(s)):\n  " + "\n  ".join(problems))
    return unflatten_params({k: np.ascontiguousarray(v, dtype=dtype) for k, v in ours.items()})


def read_scenic_checkpoint(path, variant=None, attention_order=None, num_frames=None, image_size=None,
                           dtype=np.float32, **overrides) -> tuple[dict, ViViTConfig]:
    """A Scenic ViViT checkpoint file -> (minivivit params, config). See infer_config for the arguments."""
    path = Path(path)
    flat, _layout = read_params(path)
    config = infer_config(flat, variant=variant, attention_order=attention_order, num_frames=num_frames,
                          image_size=image_size, source=str(path), **overrides)
    return scenic_to_params(flat, config, dtype=dtype, source=str(path)), config
