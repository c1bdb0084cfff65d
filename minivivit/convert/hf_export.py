"""minivivit params -> an HF transformers model directory (config.json + model.safetensors, v4 names).

The inverse of convert/hf.py, from its one name table (BLOCK_NAMES / TOP_NAMES, v4 spellings: the
layout of the checkpoints on the hub, which transformers 4.x and 5.x both load):

    classifier (VivitForVideoClassification): vivit.embeddings..., vivit.encoder.layer.N..., vivit.layernorm,
                                              classifier
    base model (VivitModel):                   embeddings..., encoder.layer.N..., layernorm, pooler.dense
A base model without a pooler loads with VivitModel.from_pretrained(dir, add_pooling_layer=False).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..fileio import atomic_output
from ..weights import check_params, flatten_params
from .hf import BLOCK_NAMES, TOP_NAMES

_V4_BLOCK = {}  # minivivit module ("attn.q") -> v4 HF module ("attention.attention.query")
for _hf, _ours in BLOCK_NAMES.items():  # the table lists the v4 spelling first
    _V4_BLOCK.setdefault(_ours, _hf)
_TOP = {ours: hf for hf, ours in TOP_NAMES.items()}


def our_key_to_hf(key: str, head: bool) -> str:
    """'blocks.3.attn.q.w' -> 'vivit.encoder.layer.3.attention.attention.query.weight' (classifier) or
    'encoder.layer.3.attention.attention.query.weight' (base model)."""
    if key in _TOP:
        hf = _TOP[key]
    else:
        _, i, *module, leaf = key.split(".")
        hf = f"encoder.layer.{i}.{_V4_BLOCK['.'.join(module)]}.{'weight' if leaf in ('w', 'g') else 'bias'}"
    if head and not hf.startswith("classifier."):
        hf = "vivit." + hf
    return hf


def to_hf(our_key: str, array: np.ndarray, config) -> np.ndarray:
    """Re-lay one minivivit tensor in HF's orientation (the inverse of convert.hf.to_ours)."""
    if our_key == "embed.proj.w":  # [tt*ph*pw*C, D] (patchify order) -> Conv3d weight [D, C, tt, ph, pw]
        tt, ph, pw = config.tubelet_size
        return array.reshape(tt, ph, pw, config.num_channels, -1).transpose(4, 3, 0, 1, 2)
    if our_key == "embed.cls":  # [D] -> [1, 1, D]
        return array.reshape(1, 1, -1)
    if our_key == "embed.pos":  # [N, D] -> [1, N, D]
        return array[None]
    if our_key.endswith(".w") and array.ndim == 2:  # [in, out] -> nn.Linear weight [out, in]
        return array.T
    return array


def params_to_hf_state(params: dict, config) -> dict[str, np.ndarray]:
    """The HF state dict (v4 names, HF orientation, contiguous) of minivivit params."""
    flat = flatten_params(params)
    check_params(flat, config, source="params to export")
    head = "head.w" in flat
    return {our_key_to_hf(k, head): np.ascontiguousarray(to_hf(k, v, config)) for k, v in flat.items()}


def export_hf(model, out_dir, force: bool = False) -> Path:
    """Write out_dir/config.json + out_dir/model.safetensors for transformers' from_pretrained.

    Each file is written atomically; an existing config.json or model.safetensors is never replaced
    unless force=True (checked before anything is written)."""
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory; choose a directory for the HF model")
    targets = [out_dir / "model.safetensors", out_dir / "config.json"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force (force=True) to replace")
    state = params_to_hf_state(model.params, model.config)
    cfg = model.config.to_hf_dict()
    cfg["architectures"] = ["VivitForVideoClassification" if model.has_head else "VivitModel"]
    cfg["dtype"] = str(np.dtype(model.dtype))
    with atomic_output(targets[0], overwrite=force) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_output(targets[1], overwrite=force) as tmp:
        tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir
