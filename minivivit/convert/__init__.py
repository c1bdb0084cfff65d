"""Converters from other checkpoint formats to minivivit's .safetensors file."""

from __future__ import annotations

from pathlib import Path

from ..fileio import check_output
from ..weights import check_suffix, save
from .hf import checkpoint_files, read_hf_checkpoint


def convert(src, out, config=None, force: bool = False) -> Path:
    """HF directory / weights file (+ config.json) -> one minivivit .safetensors at `out`.

    HF's preprocessor_config.json, when it sits beside the weights, travels into the file's metadata so
    that `minivivit classify` preprocesses exactly as the checkpoint expects (it is validated here).
    Refuses, before reading anything: an `out` that does not end in .safetensors, an existing `out` unless force,
    a directory, an unwritable folder, and an `out` that is one of the files being converted. Writes atomically,
    so a failure leaves no partial file.
    """
    out = check_output(check_suffix(out), force)
    if out.exists():
        for f in checkpoint_files(src, config):
            if f.exists() and f.samefile(out):
                raise ValueError(f"{out} is {f.name} of the checkpoint being converted; write the converted file "
                                 f"somewhere else (overwriting the source would destroy it)")
    params, cfg = read_hf_checkpoint(src, config_path=config)
    folder = Path(src) if Path(src).is_dir() else Path(src).parent
    pp = folder / "preprocessor_config.json"
    preprocessor_config = None
    if pp.is_file():
        from ..video.preprocess import load_processor_config

        preprocessor_config = load_processor_config(pp)  # validated: refuse now what classify would refuse later
    return save(out, params, cfg, overwrite=force, preprocessor_config=preprocessor_config)
