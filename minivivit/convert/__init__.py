"""Converters from other checkpoint formats to minivivit's .safetensors file: HF (hf.py) and Scenic (scenic.py)."""

from __future__ import annotations

from pathlib import Path

from ..fileio import check_output
from ..weights import check_suffix, save
from .hf import checkpoint_files, read_hf_checkpoint


def convert(src, out, config=None, force: bool = False, variant=None, attention_order=None, num_frames=None,
            image_size=None) -> Path:
    """HF directory / weights file (+ config.json), or a Scenic (Flax msgpack) checkpoint -> one minivivit
    .safetensors at `out`.

    Scenic checkpoints are recognised by their content (a msgpack map); variant, attention_order, num_frames and
    image_size answer what their parameter tree cannot tell (see convert/scenic.py; the error says when one is
    needed), or `config` gives a whole config.json instead.

    HF's preprocessor_config.json, when it sits beside the weights, travels into the file's metadata so
    that `minivivit classify` preprocesses exactly as the checkpoint expects (it is validated here).
    Refuses, before reading anything: an `out` that does not end in .safetensors, an existing `out` unless force,
    a directory, an unwritable folder, and an `out` that is one of the files being converted. Writes atomically,
    so a failure leaves no partial file.
    """
    out = check_output(check_suffix(out), force)
    scenic_file = _scenic_checkpoint(Path(src))
    if scenic_file is not None:
        from ..config import ViViTConfig
        from .scenic import read_params, read_scenic_checkpoint, scenic_to_params

        if out.exists() and out.samefile(scenic_file):
            raise ValueError(f"{out} is the checkpoint being converted; write the converted file somewhere else "
                             f"(overwriting the source would destroy it)")
        if config is not None:
            cfg = ViViTConfig.from_json_file(config)
            params = scenic_to_params(read_params(scenic_file)[0], cfg, source=str(scenic_file))
        else:
            params, cfg = read_scenic_checkpoint(scenic_file, variant=variant, attention_order=attention_order,
                                                 num_frames=num_frames, image_size=image_size)
        return save(out, params, cfg, overwrite=force)
    if any(v is not None for v in (variant, attention_order, num_frames, image_size)):
        raise ValueError(f"{src} is not a Scenic (Flax msgpack) checkpoint; variant, attention_order, num_frames and "
                         f"image_size only apply to those (an HF checkpoint's config.json says all of it)")
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


def _scenic_checkpoint(src: Path) -> Path | None:
    """The Flax msgpack file to read if src is one (or a folder holding Scenic's checkpoint / checkpoint_<step>
    files and no HF weights), else None."""
    from .hf import WEIGHT_FILES
    from .msgpack import looks_like_msgpack_map

    if src.is_file():
        is_hf = src.suffix in (".safetensors", ".bin", ".pt", ".pth", ".json")
        return src if not is_hf and looks_like_msgpack_map(src) else None
    if src.is_dir() and not any((src / name).is_file() for name in WEIGHT_FILES):
        def step(p):
            tail = p.name.removeprefix("checkpoint").lstrip("_")
            return int(tail) if tail.isdigit() else -1

        found = sorted((p for p in src.glob("checkpoint*") if p.is_file() and looks_like_msgpack_map(p)), key=step)
        return found[-1] if found else None
    return None
