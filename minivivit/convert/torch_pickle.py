"""Read a PyTorch `pytorch_model.bin` state dict WITHOUT torch and without executing code.

A .bin file is a zip archive: `<name>/data.pkl` (a pickle describing the tensors) and
`<name>/data/<key>` (the raw bytes of each storage). Pickles can name any Python callable, which is
how a malicious checkpoint runs code on load. This unpickler admits only the handful of names a
state dict needs; every other name is refused before anything is called:

    collections.OrderedDict                      the dict itself
    torch._utils._rebuild_tensor_v2              (storage, offset, size, stride, ...) -> tensor
    torch._utils._rebuild_parameter              a Parameter wrapping such a tensor
    torch.<Dtype>Storage                         the storage classes (float, half, bfloat16, int, ...)

Tensors come back as NumPy arrays (bfloat16 is widened to float32, which is exact).
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

STORAGE_DTYPES = {  # torch storage class name -> numpy dtype of its bytes
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 after reading
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle names something outside the allow-list; nothing from it was executed.

    Also a ValueError, so callers (and the CLI) that report bad input files catch it."""


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    """(storage, offset, size, stride) -> an owned NumPy copy of that view, checked to lie inside the storage."""
    if not (isinstance(storage, tuple) and len(storage) == 2 and isinstance(storage[0], np.ndarray)):
        raise ValueError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    array, is_bf16 = storage
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(type(v) is int and v >= 0 for v in (storage_offset, *size, *stride)):
        # torch only writes non-negative ints here; anything else would make as_strided read outside the buffer
        raise ValueError(f"invalid tensor view: offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    itemsize = array.itemsize
    needed = storage_offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
    if needed > array.size:
        raise ValueError(f"tensor of size {size} needs {needed} elements but its storage has {array.size}")
    view = np.lib.stride_tricks.as_strided(
        array[storage_offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    out = np.array(view).astype(array.dtype.newbyteorder("="), copy=False)  # an owned, contiguous, native copy
    if is_bf16:
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str = "little"):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self.byteorder = {"little": "<", "big": ">"}[byteorder]

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: a PyTorch state dict needs only tensors, and this pickle "
                f"asks for something else (it may try to run code). Nothing was executed. If you trust the file, "
                f"re-save it as safetensors with torch, then convert that."
            )
        return ALLOWED[(module, name)]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"unexpected persistent id {pid!r} in a PyTorch state dict")
        storage_type, key = pid[1], pid[2]
        raw = self.archive.read(f"{self.prefix}data/{key}")
        dtype = np.dtype(STORAGE_DTYPES[storage_type.name]).newbyteorder(self.byteorder)
        return np.frombuffer(raw, dtype=dtype), storage_type.name == "BFloat16Storage"


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
    """Read pytorch_model.bin -> {name: array}, refusing anything but tensors."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a PyTorch zip checkpoint (torch >= 1.6 format). It may be truncated, or saved in the "
            f"legacy format; re-save it with a recent torch, or convert it to safetensors."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pkl) != 1:
                raise ValueError(f"{path}: expected one data.pkl in the archive, found {len(pkl)}")
            prefix = pkl[0][: -len("data.pkl")]
            byteorder = "little"  # recent torch writes <prefix>byteorder; files without it are little-endian
            if f"{prefix}byteorder" in archive.namelist():
                byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"unknown byteorder {byteorder!r}; expected 'little' or 'big'")
            with archive.open(pkl[0]) as f:
                state = _AllowListUnpickler(f, archive, prefix, byteorder).load()
    except UnsafePickleError:
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, pickle.UnpicklingError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is damaged or truncated ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return dict(state)
