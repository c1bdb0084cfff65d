"""Files: write safely (never overwrite what a user owns by accident, never leave half a file), and read
safetensors files with errors that name the file (the one place that opens them)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path, overwrite: bool = False):
    """Yield a temporary path next to `path`; on success rename it onto `path`, on error delete it.

    Refuses (FileExistsError) when `path` exists and overwrite is False, before any work is done.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --force (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def open_safetensors(path):
    """safetensors' safe_open(path) for NumPy, with a clear ValueError naming the file when it is unreadable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with safe_open(str(path), framework="np") as f:
            yield f
    except SafetensorError as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e}); is it truncated or of another "
                         f"format?") from e


def safetensors_metadata(path) -> dict:
    """The string metadata stored in a safetensors file's header ({} if none)."""
    with open_safetensors(path) as f:
        return dict(f.metadata() or {})


def read_safetensors(path, progress: bool = False) -> tuple[dict, dict]:
    """(tensors {name: array}, metadata) of a safetensors file; a progress bar when asked for and the file
    is big enough to wait for (> 50 MB)."""
    with open_safetensors(path) as f:
        keys = list(f.keys())
        if progress and Path(path).stat().st_size > 50e6:
            from .progress import tqdm  # no TqdmWarning in a notebook without ipywidgets

            keys = tqdm(keys, desc=f"reading {Path(path).name}", unit="tensor")
        return {k: f.get_tensor(k) for k in keys}, dict(f.metadata() or {})
