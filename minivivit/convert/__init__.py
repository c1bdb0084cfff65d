"""Converters from other checkpoint formats to minivivit's .safetensors file."""

from __future__ import annotations

from pathlib import Path

from ..weights import save
from .hf import read_hf_checkpoint


def convert(src, out, config=None, force: bool = False) -> Path:
    """HF directory / weights file (+ config.json) -> one minivivit .safetensors at `out`.

    Refuses to overwrite `out` unless force; writes atomically, so a failure leaves no partial file.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    params, cfg = read_hf_checkpoint(src, config_path=config)
    return save(out, params, cfg, overwrite=force)
