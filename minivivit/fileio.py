"""Files: write safely (never overwrite what a user owns by accident, never leave half a file), and read
safetensors files with errors that name the file (the one place that opens them)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null"}
MAX_JSON_BYTES = 256 * 2**20  # a config or index file is kilobytes; refuse to parse anything above 256 MiB


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
            from tqdm.auto import tqdm

            keys = tqdm(keys, desc=f"reading {Path(path).name}", unit="tensor")
        return {k: f.get_tensor(k) for k in keys}, dict(f.metadata() or {})


# ---------------------------------------------------------------------------------------------
# JSON (config.json, preprocessor_config.json, shard indexes, metadata): errors that name the file
# ---------------------------------------------------------------------------------------------


def parse_json(text: str, source, what: str = "JSON", expect: type | None = dict):
    """json.loads(text) with errors that name `source` and say where the JSON breaks; `expect` its top-level type."""
    if not text.strip():
        raise ValueError(f"{source} is empty; expected {what}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}; expected "
                         f"{what}") from None
    except RecursionError:
        raise ValueError(f"{source}: the JSON is nested too deeply to be {what}") from None
    if expect is not None and not isinstance(value, expect):
        raise ValueError(f"{source} must hold {JSON_NAMES.get(expect, expect.__name__)} ({what}); it holds "
                         f"{JSON_NAMES.get(type(value), type(value).__name__)}")
    return value


def read_json_file(path, what: str = "JSON", expect: type | None = dict):
    """Read and parse a JSON file (UTF-8); every error names the file (and the line and column of broken JSON)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path} (expected {what})")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected {what}")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size / 2**20:.0f} MiB, far too large for {what}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); expected {what}") from None
    return parse_json(text, path, what, expect)
