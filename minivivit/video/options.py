"""Preprocessing options (HF `VivitImageProcessor`'s eleven), resolved and validated in one place.

    HF defaults < preprocessor_config.json (a dict, a file, or a minivivit file's metadata) < preset < keyword arguments

Every option goes through its rule in OPTION_RULES (minivivit/checks.py): types, ranges and NaN are refused
with the option, the value and what is allowed; a config read from a file is validated there and its errors
name the file. The pipeline itself (resize, crop, rescale, normalise) is minivivit/video/preprocess.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import checks
from ..fileio import parse_json, read_json_file

HF_DEFAULTS = {
    "do_resize": True,
    "size": {"shortest_edge": 256},
    "resample": 2,  # PIL.Image.Resampling.BILINEAR
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 1 / 127.5,
    "offset": True,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
PRESETS = {
    "hf": {},  # HF's defaults: pixels in [-3, 1]
    "scenic": {"do_rescale": True, "rescale_factor": 1 / 127.5, "offset": True, "do_normalize": False},  # [-1, 1]
}
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


# ---------------------------------------------------------------------------------------------
# Options: HF defaults < preprocessor_config.json < preset < keyword arguments
# ---------------------------------------------------------------------------------------------


MAX_SIDE = 2**20  # pixels: a sanity bound on one resize / crop side; the memory guard judges the whole clip


def _size_dict(value, name: str) -> dict:
    """HF's get_size_dict for this processor: int -> shortest_edge (size) or square (crop_size); every side an int
    in 1..MAX_SIDE (not a bool, float or string)."""
    side = checks.integer(1, MAX_SIDE)
    if isinstance(value, dict):
        keys = set(value)
        if keys not in ({"shortest_edge"}, {"height", "width"}) or (keys == {"shortest_edge"} and name == "crop_size"):
            allowed = "{'height', 'width'}" + (" or {'shortest_edge'}" if name == "size" else "")
            raise ValueError(f"{name} must have the keys {allowed}; got {value}")
        return {k: side(f"{name}[{k!r}]", v) for k, v in value.items()}
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        v = side(name, value)
        return {"shortest_edge": v} if name == "size" else {"height": v, "width": v}
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return {"height": side(f"{name}[0]", value[0]), "width": side(f"{name}[1]", value[1])}
    raise ValueError(f"{name} must be an int, (height, width) or a dict like {HF_DEFAULTS[name]}; got {value!r} "
                     f"({type(value).__name__})")


def _resample(name, value) -> int:
    if isinstance(value, str):
        if value.lower() not in RESAMPLE:
            raise ValueError(f"resample={value!r}; choose one of {sorted(RESAMPLE)} (or PIL's int codes 0-5)")
        return RESAMPLE[value.lower()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value not in RESAMPLE.values():
        raise ValueError(f"resample={value!r} is not a Pillow filter; choose one of {RESAMPLE}")
    return int(value)


# One rule per VivitImageProcessor option (minivivit/checks.py): types, ranges, NaN; "false" is not a boolean.
OPTION_RULES = {
    "do_resize": checks.boolean(),
    "size": lambda name, v: _size_dict(v, name),
    "resample": _resample,
    "do_center_crop": checks.boolean(),
    "crop_size": lambda name, v: _size_dict(v, name),
    "do_rescale": checks.boolean(),
    "rescale_factor": checks.number(0, math.inf, lo_open=True, hi_open=True),
    "offset": checks.boolean(),
    "do_normalize": checks.boolean(),
    "image_mean": checks.finite_numbers(3, -math.inf, math.inf),
    "image_std": checks.finite_numbers(3, 0, math.inf, lo_open=True),
}


def load_processor_config(path) -> dict:
    """Read an HF preprocessor_config.json (a file, or a model directory holding one): a JSON object whose options
    are valid (processor_options); every error names the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "preprocessor_config.json"
    if not path.exists():
        raise FileNotFoundError(f"no preprocessor config at {path}")
    config = read_json_file(path, "an HF preprocessor_config.json (an object of VivitImageProcessor options)")
    check_processor_config(config, path)
    return config


def check_processor_config(config: dict, source) -> None:
    """Validate a preprocessor config's options (processor_options), naming `source` in the error."""
    try:
        processor_options(config)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: {e}") from None


def _config_dict(processor_config):
    """processor_config as a dict (or None): a dict as it is, a path read from its file (and validated there)."""
    if processor_config is None or isinstance(processor_config, dict):
        return processor_config
    if isinstance(processor_config, (str, Path)) or hasattr(processor_config, "__fspath__"):
        return load_processor_config(processor_config)
    raise TypeError(f"processor_config must be a dict of VivitImageProcessor options or the path of a "
                    f"preprocessor_config.json; got a {type(processor_config).__name__}")


def processor_config_for_weights(path) -> dict | None:
    """The preprocessing that belongs with a weights path, if any: an HF directory's preprocessor_config.json,
    the one beside an HF weights file, or a "preprocessor_config" entry in a minivivit file's metadata.
    It is validated here (processor_options), so that a bad one is reported with the file it came from."""
    path = Path(path)
    if path.is_dir():
        return load_processor_config(path) if (path / "preprocessor_config.json").exists() else None
    if path.suffix == ".safetensors" and path.is_file():
        from ..fileio import safetensors_metadata

        try:
            meta = safetensors_metadata(path)
        except (ValueError, FileNotFoundError):
            meta = {}  # not readable: loading the weights will say why
        if "preprocessor_config" in meta:
            source = f"{path} (its preprocessor_config metadata)"
            config = parse_json(meta["preprocessor_config"], source, "an HF preprocessor config")
            check_processor_config(config, source)
            return config
        if "minivivit_config" in meta:
            return None  # a minivivit file without preprocessing: the model's defaults apply
    beside = path.parent / "preprocessor_config.json"
    return load_processor_config(beside) if beside.exists() else None


def processor_options(processor_config=None, preset: str | None = None, **kwargs) -> dict:
    """The 11 VivitImageProcessor options, resolved and validated: HF defaults < processor_config < preset < kwargs.

    processor_config: a dict or a path (preprocessor_config.json or an HF model directory); keys that are
    not VivitImageProcessor options (image_processor_type, processor_class...) are ignored, and so are null values.
    Every option goes through its rule (OPTION_RULES): an error names the option, the value and what is allowed
    (and the file, when the options came from one: load_processor_config).
    """
    unknown = set(kwargs) - set(HF_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown preprocessing option(s) {sorted(unknown)}; the options are {list(HF_DEFAULTS)}")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    processor_config = _config_dict(processor_config)
    from_config = {k: v for k, v in (processor_config or {}).items() if k in HF_DEFAULTS and v is not None}
    opts = {**HF_DEFAULTS, **from_config, **(PRESETS[preset] if preset else {}),
            **{k: v for k, v in kwargs.items() if v is not None}}
    for name, rule in OPTION_RULES.items():
        opts[name] = rule(name, opts[name])  # FieldError (a ValueError) naming the option, the value, the range
    if opts["offset"] and not opts["do_rescale"]:
        raise ValueError("offset=True needs do_rescale=True (HF's rule): offset shifts the rescaled pixels by -1")
    return opts
