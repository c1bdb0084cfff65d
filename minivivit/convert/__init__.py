"""Converters from other checkpoint formats to minivivit's .safetensors file."""

from __future__ import annotations

import json
from pathlib import Path

from ..weights import save
from .hf import read_hf_checkpoint


def convert(src, out, config=None, force: bool = False) -> Path:
    """HF directory / weights file (+ config.json) -> one minivivit .safetensors at `out`.

    HF's preprocessor_config.json, when it sits beside the weights, travels into the file's metadata so
    that `minivivit classify` preprocesses exactly as the checkpoint expects. Refuses to overwrite `out` unless force; writes atomically, so a failure leaves no partial file.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    params, cfg = read_hf_checkpoint(src, config_path=config)
    folder = Path(src) if Path(src).is_dir() else Path(src).parent
    pp = folder / "preprocessor_config.json"
    try:
        preprocessor_config = json.loads(pp.read_text()) if pp.is_file() else None
    except json.JSONDecodeError as e:
        raise ValueError(f"{pp} is not valid JSON ({e}); fix or remove it") from e
    return save(out, params, cfg, overwrite=force, preprocessor_config=preprocessor_config)
