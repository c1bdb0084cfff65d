"""minivivit's weight format and the nested params structure.

params (the argument names of model.py's functions; w is stored [in, out]):

    embed:  proj {w [K, D], b [D]}, cls [D], pos [N, D]      K = tt*ph*pw*C, order (frame, row, col, channel)
    blocks: list of L dicts
        ln1 {g, b} [D]
        attn  q {w [D, D], b [D] (only with qkv_bias)}, k {...}, v {...}, o {w [D, D], b [D]}
        ln2 {g, b} [D]
        mlp   fc1 {w [D, F], b [F]}, fc2 {w [F, D], b [D]}
    norm:   {g, b} [D]
    pooler: {w [D, D'], b [D']}        only for a base model with a pooling layer (VivitModel)
    head:   {w [D, num_labels], b}     only for a classifier (VivitForVideoClassification)

That is HF's Model 1. The paper's Models 2-4, classifier='gap' and representation_size have the trees
documented in minivivit/factorized/ (expected_shapes there).

The file is one .safetensors with flat keys (`blocks.3.attn.q.w`) and the config JSON (labels
included) in its metadata under "minivivit_config". Loading is strict: every expected key present,
every shape checked, unknown keys reported by name.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from .config import ViViTConfig
from .fileio import atomic_output, parse_json, read_safetensors, safetensors_metadata
from .memory import guard

FORMAT_KEY = "minivivit_config"
SUFFIX = ".safetensors"  # the only suffix minivivit.load recognises as its own format
NONFINITE_ENV = "MINIVIVIT_ALLOW_NONFINITE_WEIGHTS"  # =1: load NaN / inf weights with a warning (for debugging)


def flatten_params(params, prefix="") -> dict[str, np.ndarray]:
    """{'blocks': [{'ln1': {'g': a}}]} -> {'blocks.0.ln1.g': a}."""
    items = params.items() if isinstance(params, dict) else enumerate(params)
    flat = {}
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list)):
            flat.update(flatten_params(v, key + "."))
        else:
            flat[key] = v
    return flat


def unflatten_params(flat: dict[str, np.ndarray]) -> dict:
    """Inverse of flatten_params; numeric path parts become list indices."""
    root: dict = {}
    for key, value in flat.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(node):
        if not isinstance(node, dict):
            return node
        node = {k: listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[str(i)] for i in range(len(node))]
        return node

    return listify(root)


def map_params(fn, params):
    """Apply fn to every array, keeping the nesting."""
    if isinstance(params, dict):
        return {k: map_params(fn, v) for k, v in params.items()}
    if isinstance(params, list):
        return [map_params(fn, v) for v in params]
    return fn(params)


def writable_(params, names=None, prefix: str = "") -> int:
    """Replace every read-only array of the nested params (e.g. the memory-mapped views that load_file gives)
    by a writable copy, in place in its dict / list, so code that updates weights in place (AdamW) can; the
    Model holding this structure sees the copies. names: only these flat names ('blocks.2.mlp.fc1.w', ...),
    so frozen weights stay mapped. Returns how many arrays were copied."""
    copied = 0
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for k, v in list(items):
        name = f"{prefix}{k}"
        if isinstance(v, (dict, list)):
            copied += writable_(v, names, f"{name}.")
        elif isinstance(v, np.ndarray) and not v.flags.writeable and (names is None or name in names):
            params[k] = v.copy()
            copied += 1
    return copied


def expected_shapes(config: ViViTConfig, head: bool, pooler: bool) -> dict[str, tuple]:
    """Every flat key a model with this config must have, with its shape."""
    if not config.is_hf_model:  # Models 2-4, classifier='gap', representation_size: minivivit/factorized/
        from .factorized import expected_shapes as variant_shapes

        return variant_shapes(config, head=head)  # (no HF pooler: a "pooler" key is reported as unknown)
    D, F = config.hidden_size, config.intermediate_size
    tt, ph, pw = config.tubelet_size
    shapes = {
        "embed.proj.w": (tt * ph * pw * config.num_channels, D),
        "embed.proj.b": (D,),
        "embed.cls": (D,),
        "embed.pos": (config.num_patches + 1, D),
        "norm.g": (D,),
        "norm.b": (D,),
    }
    for i in range(config.num_hidden_layers):
        p = f"blocks.{i}."
        for name in ("ln1", "ln2"):
            shapes[p + name + ".g"] = shapes[p + name + ".b"] = (D,)
        for name in ("q", "k", "v", "o"):
            shapes[p + f"attn.{name}.w"] = (D, D)
            if name == "o" or config.qkv_bias:
                shapes[p + f"attn.{name}.b"] = (D,)
        shapes.update({p + "mlp.fc1.w": (D, F), p + "mlp.fc1.b": (F,), p + "mlp.fc2.w": (F, D), p + "mlp.fc2.b": (D,)})
    if pooler:
        shapes.update({"pooler.w": (D, config.pooler_output_size), "pooler.b": (config.pooler_output_size,)})
    if head:
        shapes.update({"head.w": (D, config.num_labels), "head.b": (config.num_labels,)})
    return shapes


def check_params(flat: dict[str, np.ndarray], config: ViViTConfig, source: str = "weights") -> None:
    """Strict check of flat params against the config; one error listing every problem."""
    head, pooler = "head.w" in flat, "pooler.w" in flat
    expected = expected_shapes(config, head=head, pooler=pooler)
    problems = []
    for key, shape in expected.items():
        if key not in flat:
            problems.append(f"missing key {key!r} (expected shape {shape})")
        elif tuple(flat[key].shape) != shape:
            problems.append(f"key {key!r} has shape {tuple(flat[key].shape)}, expected {shape}")
    for key in flat:
        if key not in expected:
            problems.append(f"unknown key {key!r} with shape {tuple(flat[key].shape)}")
    if problems:
        raise ValueError(f"{source} do not fit the config ({len(problems)} problem(s)):\n  " + "\n  ".join(problems))


def check_tensors(flat: dict[str, np.ndarray], source: str = "weights") -> None:
    """The values rule of every loader (and of save): weights are floating point and finite.

    Integer / bool tensors are refused (a quantized checkpoint or a buffer, not ViViT weights; casting them would
    change their meaning silently). NaN / inf are refused with the tensor's name, unless
    $MINIVIVIT_ALLOW_NONFINITE_WEIGHTS=1, which loads them with a warning (to debug a broken checkpoint)."""
    not_float = [(k, a.dtype) for k, a in flat.items() if not np.issubdtype(np.asarray(a).dtype, np.floating)]
    if not_float:
        shown = ", ".join(f"{k!r} ({d})" for k, d in not_float[:4]) + (" ..." if len(not_float) > 4 else "")
        raise ValueError(f"{source}: {len(not_float)} tensor(s) are not floating point: {shown}. ViViT's weights are "
                         f"float16 / bfloat16 / float32 / float64; an integer or bool tensor is a quantized "
                         f"checkpoint or a buffer, and minivivit does not guess how to cast it.")
    bad = []
    for k, a in flat.items():
        finite = np.isfinite(a)
        if not finite.all():
            nan = int(np.isnan(a).sum())
            bad.append(f"{k!r} ({nan} NaN, {int((~finite).sum()) - nan} inf of {a.size})")
    if bad:
        message = (f"{source}: {len(bad)} tensor(s) hold NaN or inf: {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}"
                   f". The model would output NaN.")
        if os.environ.get(NONFINITE_ENV) == "1":
            warnings.warn(message + f" Loaded anyway because {NONFINITE_ENV}=1.", stacklevel=3)
        else:
            raise ValueError(message + f" To load it anyway (to debug the checkpoint), set {NONFINITE_ENV}=1.")


def check_suffix(path) -> Path:
    """minivivit files end in .safetensors (that is how minivivit.load recognises them); refuse anything else."""
    path = Path(path)
    if not path.name:
        raise ValueError(f"the output path {str(path)!r} names no file; give a file name ending in {SUFFIX}")
    if path.suffix != SUFFIX:
        raise ValueError(f"{path.name}: a minivivit weights file must end in {SUFFIX} (minivivit.load reads only "
                         f"that name as its own format); use e.g. {path.with_suffix(SUFFIX).name}")
    return path


def save(path, params: dict, config: ViViTConfig, overwrite: bool = False,
         preprocessor_config: dict | None = None) -> Path:
    """Write params + config (and HF's preprocessor_config.json, if given) to a minivivit .safetensors file,
    atomically. Refuses another suffix, an existing file unless overwrite, and weights it would refuse to load."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    check_suffix(path)
    flat = {k: np.ascontiguousarray(v) for k, v in flatten_params(params).items()}
    check_params(flat, config, source="params to save")
    check_tensors(flat, source="params to save")
    with atomic_output(path, overwrite=overwrite) as tmp:
        metadata = {FORMAT_KEY: config.to_json_string(), "format": "np"}
        if preprocessor_config is not None:
            metadata["preprocessor_config"] = json.dumps(preprocessor_config, sort_keys=True)
        try:
            save_file(flat, str(tmp), metadata=metadata)
        except SafetensorError as e:  # an I/O error inside safetensors (disk full, file too large)
            raise OSError(f"could not write {path}: {e} (is the disk full?); nothing was left behind") from None
    return Path(path)


def load_file(path, dtype=np.float32) -> tuple[dict, ViViTConfig]:
    """Read a minivivit .safetensors file -> (nested params, config). Strict; raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    if FORMAT_KEY not in safetensors_metadata(path):
        raise ValueError(
            f"{path} is a safetensors file but not a minivivit one (no {FORMAT_KEY!r} metadata). "
            f"If it is an HF checkpoint, convert it: minivivit convert DIR_OR_FILE out.safetensors"
        )
    flat, meta = read_safetensors(path)
    try:
        config = ViViTConfig.from_hf_dict(parse_json(meta[FORMAT_KEY], f"the {FORMAT_KEY} metadata", "a ViViT config"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    check_params(flat, config, source=str(path))
    check_tensors(flat, source=str(path))
    flat = {k: v.astype(dtype, copy=False) for k, v in flat.items()}
    return unflatten_params(flat), config


def init_params(config: ViViTConfig, seed: int = 0, head: bool = True, pooler: bool = False, scale: float | None = None,
                dtype=np.float32) -> dict:
    """Random params for `config`, every array drawn (none left at zero, as HF's init would leave biases, CLS
    and positions, which hides bugs): N(0, scale^2) with scale = 1/sqrt(hidden_size) by default, LayerNorm
    gains 1 + N(0, scale^2). That keeps activations O(1) through the depth, like a trained model.

    The random model of tests, notebooks and benchmarks: Model(init_params(config, seed), config).
    """
    rng = np.random.default_rng(seed)
    scale = config.hidden_size ** -0.5 if scale is None else scale
    shapes = expected_shapes(config, head=head, pooler=pooler)
    n = sum(int(np.prod(s)) for s in shapes.values())
    largest = max(int(np.prod(s)) for s in shapes.values())  # its float64 draw is the biggest temporary
    guard(n * np.dtype(dtype).itemsize + 8 * largest, f"random weights for this config ({n / 1e6:.1f}M parameters, "
          f"{np.dtype(dtype).name})", ["a smaller config (hidden_size, intermediate_size, num_hidden_layers)"])
    flat = {}
    for key, shape in shapes.items():
        noise = rng.standard_normal(shape) * scale
        flat[key] = (1.0 + noise if key.endswith(".g") else noise).astype(dtype)
    return unflatten_params(flat)
