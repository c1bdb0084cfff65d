"""HF transformers ViViT checkpoints -> minivivit params. The only file that knows HF's names.

Accepts both layouts HF has used:
  v4 names (on the hub, and what transformers 5 still writes to disk):
      vivit.encoder.layer.N.attention.attention.query.weight, ...attention.output.dense, intermediate.dense, ...
  v5 names (transformers 5 in memory, `model.state_dict()`):
      vivit.layers.N.attention.q_proj.weight, ...o_proj, mlp.fc1, mlp.fc2
with or without the `vivit.` prefix, with or without pooler and classifier.
Files: model.safetensors, sharded *.safetensors.index.json, pytorch_model.bin (read without torch,
through an allow-list unpickler), sharded pytorch_model.bin.index.json.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import fileio
from ..config import ViViTConfig
from ..weights import check_tensors, expected_shapes, unflatten_params

# HF name (after the optional "vivit." prefix; N = block index) -> minivivit flat name.
# Each is "linear" (weight [out, in] -> w [in, out]), "vector", or one of the embedding transforms.
BLOCK_NAMES = {
    # v4 layout                                   v5 layout                      minivivit
    "attention.attention.query": "attn.q",        "attention.q_proj": "attn.q",
    "attention.attention.key": "attn.k",          "attention.k_proj": "attn.k",
    "attention.attention.value": "attn.v",        "attention.v_proj": "attn.v",
    "attention.output.dense": "attn.o",           "attention.o_proj": "attn.o",
    "intermediate.dense": "mlp.fc1",              "mlp.fc1": "mlp.fc1",
    "output.dense": "mlp.fc2",                    "mlp.fc2": "mlp.fc2",
    "layernorm_before": "ln1",                    # same in v4 and v5
    "layernorm_after": "ln2",
}  # fmt: skip
TOP_NAMES = {
    "embeddings.cls_token": "embed.cls",
    "embeddings.position_embeddings": "embed.pos",
    "embeddings.patch_embeddings.projection.weight": "embed.proj.w",
    "embeddings.patch_embeddings.projection.bias": "embed.proj.b",
    "layernorm.weight": "norm.g",
    "layernorm.bias": "norm.b",
    "pooler.dense.weight": "pooler.w",
    "pooler.dense.bias": "pooler.b",
    "classifier.weight": "head.w",
    "classifier.bias": "head.b",
}
_BLOCK = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)$")


def hf_key_to_ours(key: str) -> str | None:
    """'vivit.encoder.layer.3.attention.attention.query.weight' -> 'blocks.3.attn.q.w' (None if unknown)."""
    k = key.removeprefix("vivit.")
    if k in TOP_NAMES:
        return TOP_NAMES[k]
    m = _BLOCK.match(k)
    if m and m.group(2) in BLOCK_NAMES:
        ours = BLOCK_NAMES[m.group(2)]
        leaf = {"weight": "g", "bias": "b"} if ours.startswith("ln") else {"weight": "w", "bias": "b"}
        return f"blocks.{m.group(1)}.{ours}.{leaf[m.group(3)]}"
    return None


def to_ours(our_key: str, array: np.ndarray) -> np.ndarray:
    """Re-lay one HF tensor in minivivit's orientation."""
    if our_key == "embed.proj.w":  # Conv3d weight [D, C, tt, ph, pw] -> [tt*ph*pw*C, D] (patchify order)
        D = array.shape[0]
        return array.transpose(2, 3, 4, 1, 0).reshape(-1, D) if array.ndim == 5 else array
    if our_key == "embed.cls" and array.ndim == 3 and array.shape[:2] == (1, 1):  # [1, 1, D] -> [D]
        return array.reshape(array.shape[2])
    if our_key == "embed.pos" and array.ndim == 3 and array.shape[0] == 1:  # [1, N, D] -> [N, D]
        return array.reshape(array.shape[1:])
    if our_key.endswith(".w") and array.ndim == 2:  # nn.Linear weight [out, in] -> [in, out]
        return array.T
    return array


def hf_shape(our_key: str, our_shape: tuple, config: ViViTConfig) -> tuple:
    """The shape HF stores for a minivivit tensor of our_shape (for error messages)."""
    if our_key == "embed.proj.w":
        return (config.hidden_size, config.num_channels, *config.tubelet_size)
    if our_key in ("embed.cls", "embed.pos"):
        return (1, *((1,) if our_key == "embed.cls" else ()), *our_shape)
    if our_key.endswith(".w") and len(our_shape) == 2:
        return tuple(reversed(our_shape))
    return our_shape


def hf_state_to_params(state: dict[str, np.ndarray], config: ViViTConfig, dtype=np.float32, source="checkpoint") -> dict:
    """Map an HF state dict to minivivit's nested params; strict, one error listing every problem."""
    check_tensors(state, source)  # floating point and finite, named by their HF names
    flat, origin, problems = {}, {}, []
    for key, array in state.items():
        ours = hf_key_to_ours(key)
        if ours is None:
            problems.append(f"unknown key {key!r} with shape {tuple(array.shape)}")
            continue
        if ours in flat:
            problems.append(f"{key!r} and {origin[ours]!r} both map to {ours!r}; is the checkpoint a mix of layouts?")
            continue
        flat[ours], origin[ours] = to_ours(ours, np.asarray(array)), key
    expected = expected_shapes(config, head="head.w" in flat, pooler="pooler.w" in flat)
    for ours, shape in expected.items():
        if ours not in flat:
            problems.append(f"missing key for {ours!r}: HF name like 'vivit.{_example_hf_name(ours)}', "
                            f"expected shape {hf_shape(ours, shape, config)}")
        elif tuple(flat[ours].shape) != shape:
            got = tuple(np.asarray(state[origin[ours]]).shape)
            problems.append(f"key {origin[ours]!r} has shape {got}, expected {hf_shape(ours, shape, config)} "
                            f"(from config.json)")
    for ours in flat:
        if ours not in expected:
            problems.append(f"unexpected key {origin[ours]!r} with shape {tuple(state[origin[ours]].shape)} "
                            f"(the config says qkv_bias={config.qkv_bias}, {config.num_hidden_layers} layers)")
    if problems:
        raise ValueError(f"{source} does not match its config ({len(problems)} problem(s)):\n  " + "\n  ".join(problems))
    return unflatten_params({k: np.ascontiguousarray(v, dtype=dtype) for k, v in flat.items()})


def _example_hf_name(ours: str) -> str:
    inverse = {v: k for k, v in TOP_NAMES.items()}
    if ours in inverse:
        return inverse[ours]
    _, i, *rest = ours.split(".")
    module, leaf = ".".join(rest[:-1]), rest[-1]
    v4 = {v: k for k, v in list(BLOCK_NAMES.items())[::-1]}  # prefer the v4 spelling
    return f"encoder.layer.{i}.{v4[module]}.{'weight' if leaf in ('w', 'g') else 'bias'}"


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------


def read_safetensors(path) -> dict[str, np.ndarray]:
    return fileio.read_safetensors(path, progress=True)[0]


def read_weights_file(path) -> dict[str, np.ndarray]:
    """One weights file -> state dict, by its extension (.safetensors, .bin/.pt/.pth, or an index .json)."""
    from .torch_pickle import load_torch_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    if path.name.endswith(".index.json"):
        return read_sharded(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix in (".bin", ".pt", ".pth"):
        return load_torch_state_dict(path)
    raise ValueError(f"{path}: unknown weights format; expected .safetensors, .bin or *.index.json")


SHARD_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def read_sharded(index_path: Path) -> dict[str, np.ndarray]:
    """A sharded checkpoint: {"weight_map": {tensor name: shard file}} -> state dict. The weight_map decides: each
    tensor is taken from the shard it names; a copy in another shard is ignored if equal and an error if not."""
    index = fileio.read_json_file(index_path, 'a shard index {"weight_map": {tensor name: shard file}}')
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise ValueError(f'{index_path} is not a shard index: "weight_map" must be a non-empty object {{tensor name: shard file}}; got '
                         f"{str(weight_map)[:80]}")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if Path(shard).name != shard or shard in (".", ".."):
            raise ValueError(f"{index_path} names the shard {shard!r}; a shard must be a file name in the index's own "
                             f"folder {index_path.parent}")
        if shard.endswith(".index.json") or Path(shard).suffix not in SHARD_SUFFIXES:
            raise ValueError(f"{index_path} names {shard!r} as a shard; shards are weights files "
                             f"({', '.join(SHARD_SUFFIXES)}), not another index")
    state, copies = {}, []
    for shard in shards:
        for name, array in read_weights_file(index_path.parent / shard).items():
            owner = weight_map.get(name)
            if owner is None:
                raise ValueError(f"{index_path.parent / shard} holds {name!r}, which the index {index_path.name} does "
                                 f"not list in its weight_map")
            if owner == shard:
                state[name] = array
            else:
                copies.append((name, shard, array))
    missing = [(n, s) for n, s in weight_map.items() if n not in state]
    if missing:
        name, shard = missing[0]
        elsewhere = [s for n, s, _ in copies if n == name]
        raise ValueError(f"{index_path} puts {name!r} in {shard}, which does not hold it"
                         + (f" (it is in {elsewhere[0]})" if elsewhere else "")
                         + f"; {len(missing)} tensor(s) missing in all")
    for name, shard, array in copies:
        if array.shape != state[name].shape or not np.array_equal(array, state[name], equal_nan=True):
            raise ValueError(f"{name!r} is in {weight_map[name]} and in {shard} with different values; the index "
                             f"{index_path.name} names {weight_map[name]}, but the conflict means the checkpoint is "
                             f"inconsistent (re-save it)")
    return state


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def find_weights(directory: Path) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory} has none of {', '.join(WEIGHT_FILES)}; is it an HF model directory?")


def checkpoint_files(src, config_path=None) -> list[Path]:
    """The files converting `src` reads (weights, shards, config.json), as far as they can be found; for refusing
    to write over them."""
    src = Path(src)
    try:
        weights = find_weights(src) if src.is_dir() else src
    except FileNotFoundError:
        return []
    files = [weights, Path(config_path) if config_path else weights.parent / "config.json"]
    if weights.name.endswith(".index.json"):
        try:
            files += [weights.parent / s for s in set(fileio.read_json_file(weights).get("weight_map", {}).values())
                      if isinstance(s, str)]
        except (ValueError, OSError, AttributeError):
            pass
    return files


def read_hf_checkpoint(src, config_path=None, dtype=np.float32) -> tuple[dict, ViViTConfig]:
    """An HF model directory (or weights file + config.json) -> (minivivit params, config)."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"no such file or directory: {src}")
    weights = find_weights(src) if src.is_dir() else src
    if config_path and not Path(config_path).is_file():
        raise FileNotFoundError(f"--config {config_path}: no such file (expected an HF config.json)")
    config_path = Path(config_path) if config_path else weights.parent / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json next to {weights}; pass --config path/to/config.json")
    config = ViViTConfig.from_json_file(config_path)
    return hf_state_to_params(read_weights_file(weights), config, dtype=dtype, source=str(weights)), config
