"""Files: write safely (never overwrite what a user owns by accident, never leave half a file), and read
safetensors files with errors that name the file (the one place that opens them)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path

JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null"}
WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}  # writes that ran out of room
MAX_JSON_BYTES = 256 * 2**20  # a config or index file is kilobytes; refuse to parse anything above 256 MiB


def check_output(path, overwrite: bool = False) -> Path:
    """Everything that would make writing `path` fail or harm a user file, checked before any work is done.

    Refuses: a directory (even with overwrite), an existing file unless overwrite, a path under a file, a folder we
    cannot write into. Folders that do not exist yet are fine (atomic_output creates them)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; the output must be a file path (e.g. {path / 'out'}), "
                                f"and --force (overwrite=True) never replaces a directory")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --force (overwrite=True) to replace it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folder that exists, where the missing ones will be created
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: no permission to create files in {parent} (a read-only "
                              f"folder?); choose another output path")
    return path


def partial_pattern(path: Path) -> re.Pattern:
    """The names of atomic_output's temporary files for `path`: NAME.<pid>.<8 random>.partial, and the hidden
    .NAME.<8 random>.partial that minivivit 0.1 used (no pid)."""
    name = re.escape(path.name)
    return re.compile(rf"^(?:{name}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}|\.{name}\.[a-z0-9_]{{8}})\.partial$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_partials(path) -> list[Path]:
    """Delete the temporary files that an interrupted write to `path` left (their writer process is gone); files
    of a live writer, and anything not named like ours, are left alone. Returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern, removed = partial_pattern(path), []
    for p in path.parent.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file() and not (m.group("pid") and _alive(int(m.group("pid")))):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_output(path, overwrite: bool = False):
    """Yield a temporary path next to `path`; on success rename it onto `path`, on error delete it.

    Refuses (check_output) before any work is done: an existing file unless overwrite, a directory, a folder that
    cannot be written. The temporary file is visible, NAME.<pid>.<random>.partial; if the process is killed it stays
    behind, and the next write to the same path removes it (clean_stale_partials)."""
    path = check_output(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_partials(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
    except PermissionError as e:
        raise PermissionError(f"cannot write {path}: {e.strerror} ({e.filename}); choose another output path") from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in WRITE_ERRNOS:  # the disk (or quota, or the file size limit) ran out while writing
            raise OSError(e.errno, f"could not write {path}: {e.strerror} (is the disk full?); nothing was left "
                                   f"behind") from None
        raise
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


SAFETENSORS_FLOATS = ("F16", "BF16", "F32", "F64")  # what minivivit reads as weights (BF16 upcast to float32)


def read_safetensors(path, progress: bool = False) -> tuple[dict, dict]:
    """(tensors {name: array}, metadata) of a safetensors file; a progress bar when asked for and the file
    is big enough to wait for (> 50 MB).

    The tensors are read-only, zero-copy views of the memory-mapped file (map_tensors): loading takes no
    second copy of the weights, and the pages are shared with the page cache (and with other processes that
    map the same file). Writing into one raises "assignment destination is read-only"; copy it first.
    bfloat16 tensors (what save_pretrained writes for bf16 models; NumPy has no bfloat16) are upcast to float32,
    exactly, with a warning that says so; float8 and other dtypes NumPy cannot hold are refused by name."""
    with open_safetensors(path) as f:  # safetensors validates the header: offsets, overlaps, sizes, file length
        keys = list(f.keys())
        dtypes = {k: f.get_slice(k).get_dtype() for k in keys}
        metadata = dict(f.metadata() or {})
    odd = {k: d for k, d in dtypes.items() if d != "BF16" and d not in _NUMPY_SAFETENSORS}
    if odd:
        k, d = next(iter(odd.items()))
        raise ValueError(f"{path}: tensor {k!r} has dtype {d}" + (" (float8)" if d.startswith("F8") else "")
                         + f", which minivivit does not read ({len(odd)} such tensor(s)); it reads "
                         f"{', '.join(SAFETENSORS_FLOATS)}. Save the checkpoint in float32 first (with torch: "
                         f"model.float().save_pretrained(dir)).")
    views = map_tensors(path)
    if progress and Path(path).stat().st_size > 50e6:
        from .progress import tqdm  # no TqdmWarning in a notebook without ipywidgets

        keys = tqdm(keys, desc=f"reading {Path(path).name}", unit="tensor")
    tensors = {k: (_bfloat16_to_float32(views[k]) if dtypes[k] == "BF16" else views[k]) for k in keys}
    bf16 = [k for k, d in dtypes.items() if d == "BF16"]
    if bf16:
        import warnings

        warnings.warn(f"{path}: {len(bf16)} bfloat16 tensor(s) upcast to float32 (exact: every bfloat16 value is a "
                      f"float32 value)", stacklevel=2)
    return tensors, metadata


# safetensors dtype name -> NumPy dtype (little-endian, as the format stores them); BF16 as its raw 16 bits
_SAFETENSORS_NUMPY = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
                      "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}


def map_tensors(path) -> dict:
    """{name: read-only array viewing the memory-mapped file} for every tensor of a safetensors file whose
    header safe_open has accepted (open_safetensors). The ranges are checked again here (inside the data,
    size = shape x item size), so a file changed in between gives a clear error, not a wrong view.

    The map lives as long as any of the arrays (each holds a reference to it). A view whose offset is not a
    multiple of its item size (possible in files from other writers) is copied, so kernels see aligned data.
    Do not truncate or rewrite the file in place while a model uses it (minivivit's own writes replace files
    atomically, which leaves the mapped old file intact)."""
    import mmap

    import numpy as np

    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or n > size - 8:
            raise ValueError(f"{path} is not a readable safetensors file (its header claims {n} bytes; the file "
                             f"has {size}); is it truncated or of another format?")
        header = parse_json(f.read(n).decode("utf-8", errors="replace"), path, "a safetensors header")
        data_size = size - 8 - n
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > 0 else None
    views = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_SAFETENSORS_NUMPY[entry["dtype"]])
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {entry!r}") from None
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= data_size) or end - begin != count * dtype.itemsize:
            raise ValueError(f"{path}: tensor {name!r} claims bytes [{begin}, {end}) of {data_size} for shape "
                             f"{shape} ({entry['dtype']}, {count * dtype.itemsize} bytes); the file is truncated or "
                             f"its header lies")
        offset = 8 + n + begin
        if count == 0:
            array = np.empty(shape, dtype)
            array.flags.writeable = False
        else:
            array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
            if offset % dtype.itemsize:  # misaligned for its dtype: one aligned (read-only) copy
                array = array.copy()
                array.flags.writeable = False
        views[name] = array
    return views


def _bfloat16_to_float32(raw):
    """BF16 bits (uint16 array) -> float32 (the 16 bits are the top half of a float32); a new array."""
    import numpy as np

    return (raw.astype(np.uint32) << 16).view(np.float32)


_NUMPY_SAFETENSORS = ("BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64")


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


# ---------------------------------------------------------------------------------------------
# .npy: the header is checked against the file and the memory limit before the array is read
# ---------------------------------------------------------------------------------------------


def read_npy(path):
    """np.load for an .npy file, without pickles, refusing a header that claims more data than the file holds or
    more memory than the limit (minivivit.memory) before anything is allocated."""
    import numpy as np

    from .memory import guard

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f, max_header_size=10000)
            data_start = f.tell()
    except (ValueError, OSError, SyntaxError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npy file ({e})") from None
    if dtype.hasobject:
        raise ValueError(f"{path} holds Python objects (a pickle, dtype {dtype}); minivivit reads only plain arrays")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    held = path.stat().st_size - data_start
    if nbytes > held:
        raise ValueError(f"{path}: its header claims an array of shape {shape} ({dtype}, {nbytes} bytes) but the "
                         f"file holds {held} bytes of data; it is truncated or its header lies")
    guard(nbytes, f"reading {path} (shape {shape}, {dtype})", ["a shorter clip: save fewer frames"])
    return np.load(path, allow_pickle=False)
