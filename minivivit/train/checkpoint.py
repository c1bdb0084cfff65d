"""Training checkpoints: params + optimiser state + step (+ the RNG), one .safetensors file, written atomically.

Layout: tensors `params.<flat name>`, `adam.m.<flat name>`, `adam.v.<flat name>`; metadata
`minivivit_checkpoint` (JSON: step, optimiser hyper-parameters, the np.random.Generator's state, extra)
and `minivivit_checkpoint_config` (the model's config JSON). It is deliberately not a minivivit weights
file (minivivit.load refuses it with a hint): save the model with model.save() for inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import ViViTConfig
from ..fileio import atomic_output
from ..model import Model
from ..weights import check_params, flatten_params, unflatten_params
from .optim import AdamW

META, CONFIG = "minivivit_checkpoint", "minivivit_checkpoint_config"


def save_checkpoint(path, model: Model, optimizer: AdamW, step: int, rng: np.random.Generator | None = None,
                    extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write everything needed to resume training (atomically; refuses to overwrite unless asked)."""
    from safetensors.numpy import save_file

    state = optimizer.state_dict()
    tensors = {f"params.{k}": np.ascontiguousarray(v) for k, v in flatten_params(model.params).items()}
    tensors.update({f"adam.m.{k}": np.ascontiguousarray(v) for k, v in state.pop("m").items()})
    tensors.update({f"adam.v.{k}": np.ascontiguousarray(v) for k, v in state.pop("v").items()})
    meta = {"step": int(step), "optimizer": {"name": "AdamW", **state},
            "rng": None if rng is None else rng.bit_generator.state, "extra": extra or {}}
    with atomic_output(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={META: json.dumps(meta), CONFIG: model.config.to_json_string()})
    return Path(path)


def load_checkpoint(path, decay=None) -> dict:
    """-> {'model': Model, 'optimizer': AdamW, 'step': int, 'rng': Generator | None, 'extra': dict}.

    decay: the optimiser's weight-decay predicate (a function is not stored in the file)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            if META not in metadata:
                raise ValueError(f"{path} is not a minivivit training checkpoint (no {META!r} metadata); "
                                 f"weights files load with minivivit.load()")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open, not a dict)
    except SafetensorError as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e}); is it truncated?") from e
    meta = json.loads(metadata[META])
    config = ViViTConfig.from_hf_dict(json.loads(metadata[CONFIG]))
    part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    flat = part("params.")
    check_params(flat, config, source=str(path))
    model = Model(unflatten_params(flat), config)
    opt_meta = meta["optimizer"]
    moments = part("adam.m.")
    trained = model.params if set(moments) == set(flat) else {k: v for k, v in flatten_params(model.params).items()
                                                              if k in moments}  # parameter groups: a frozen part
    optimizer = AdamW(trained, lr=opt_meta["lr"], betas=opt_meta["betas"], eps=opt_meta["eps"],
                      weight_decay=opt_meta["weight_decay"], decay=decay)
    optimizer.load_state_dict({**opt_meta, "m": moments, "v": part("adam.v.")})
    rng = None
    if meta["rng"] is not None:
        bit_generator = getattr(np.random, meta["rng"]["bit_generator"])()
        bit_generator.state = meta["rng"]
        rng = np.random.Generator(bit_generator)
    return {"model": model, "optimizer": optimizer, "step": int(meta["step"]), "rng": rng, "extra": meta["extra"]}
