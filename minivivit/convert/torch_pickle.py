"""Read a PyTorch `pytorch_model.bin` state dict WITHOUT torch and without executing code.

A .bin file is a zip archive: `<name>/data.pkl` (a pickle describing the tensors) and
`<name>/data/<key>` (the raw bytes of each storage). Pickles can name any Python callable, which is
how a malicious checkpoint runs code on load. This unpickler admits only the handful of names a
state dict needs; every other name is refused before anything is called:

    collections.OrderedDict                      the dict itself
    torch._utils._rebuild_tensor_v2              (storage, offset, size, stride, ...) -> tensor
    torch._utils._rebuild_parameter              a Parameter wrapping such a tensor
    torch.<Dtype>Storage                         the storage classes (float, half, bfloat16, int, ...)

    torch._utils._rebuild_tensor_v3, torch.storage.UntypedStorage, torch.<dtype>
                                                 what torch 2 writes for dtypes without a typed storage
                                                 (float8 and friends: refused by name, as unsupported)

Tensors come back as NumPy arrays (bfloat16 is widened to float32, which is exact).

Before anything is read, the archive itself is checked: encrypted members and compression methods
other than stored / deflate are refused with the file and member named, and the sizes the members
declare go through the memory limit (minivivit.memory), so a zip bomb is refused before it inflates.
Every read is bounded by the size its member declares; every tensor view by its storage.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..memory import MemoryBudgetError, format_bytes, guard

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


TORCH_DTYPES = {"float32": np.float32, "float": np.float32, "float16": np.float16, "half": np.float16,
                "float64": np.float64, "double": np.float64, "bfloat16": np.uint16}  # _rebuild_tensor_v3's dtypes
UNSUPPORTED_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                      "float4_e2m1fn_x2", "complex32", "complex64", "complex128", "cfloat", "cdouble", "chalf",
                      "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "uint16", "uint32", "uint64", "int8",
                      "int16", "int32", "int64", "uint8", "bool", "long", "int", "short", "bits8", "bits16")
UNSUPPORTED_NAMES = {  # torch names of tensors minivivit does not read: refused by name, not as hostile
    ("torch._utils", "_rebuild_qtensor"): "quantized tensors",
    ("torch._utils", "_rebuild_sparse_tensor"): "sparse tensors",
    ("torch._utils", "_rebuild_sparse_csr"): "sparse tensors",
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): "meta tensors (no data)",
    ("torch._utils", "_rebuild_wrapper_subclass"): "tensor subclasses",
    ("torch._tensor", "_rebuild_from_type_v2"): "tensor subclasses",
}
MEMBER_CHUNK = 16 * 2**20  # zip members are read in 16 MiB pieces, never more than they declare


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle names something outside the allow-list; nothing from it was executed.

    Also a ValueError, so callers (and the CLI) that report bad input files catch it."""


class BadArchiveError(ValueError):
    """The zip archive is not what torch.save writes (encrypted, compressed otherwise, no / several data.pkl)."""


class UnsupportedTensorError(ValueError):
    """A tensor of a kind minivivit does not read (float8, complex, quantized, sparse...); nothing was executed."""


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Dtype:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    """(storage, offset, size, stride) -> an owned NumPy copy of that view, checked to lie inside the storage."""
    if not (isinstance(storage, tuple) and len(storage) == 2 and isinstance(storage[0], np.ndarray)):
        raise ValueError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    array, is_bf16 = storage
    if is_bf16 is None:  # an UntypedStorage (bytes): only _rebuild_tensor_v3 says what its dtype is
        raise ValueError("an untyped storage was used without a dtype (_rebuild_tensor_v3 names one)")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(type(v) is int and v >= 0 for v in (storage_offset, *size, *stride)):
        # torch only writes non-negative ints here; anything else would make as_strided read outside the buffer
        raise ValueError(f"invalid tensor view: offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    itemsize = array.itemsize
    count = int(np.prod(size, dtype=object))  # elements of the tensor (Python ints: no overflow)
    guard(count * (itemsize + 4 * is_bf16), f"a tensor of shape {size} ({count} elements from a storage of "
          f"{array.size}, strides {stride})", ["nothing: a ViViT checkpoint never holds such a tensor; the file is "
                                               "damaged or made to exhaust memory"])
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


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, dtype=None,
                       *rest):
    """torch 2's form for an UntypedStorage (raw bytes) plus a dtype: float types are viewed and rebuilt as v2;
    float8, complex, integer... are refused with the dtype named."""
    if not isinstance(dtype, _Dtype):
        raise ValueError(f"_rebuild_tensor_v3 without a torch dtype (got {type(dtype).__name__})")
    if dtype.name not in TORCH_DTYPES:
        kind = "float8" if dtype.name.startswith("float8") else "this dtype"
        raise UnsupportedTensorError(
            f"a tensor of dtype torch.{dtype.name}: minivivit does not read {kind} tensors (it reads float32, "
            f"float16, bfloat16 and float64). Nothing was executed. Cast the model first: with torch, "
            f"model.float().save_pretrained(dir) (or torch.save(model.float().state_dict(), path)).")
    if not (isinstance(storage, tuple) and len(storage) == 2 and isinstance(storage[0], np.ndarray)):
        raise ValueError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    raw, _ = storage
    np_dtype = np.dtype(TORCH_DTYPES[dtype.name]).newbyteorder(raw.dtype.byteorder)
    if raw.nbytes % np_dtype.itemsize:
        raise ValueError(f"an untyped storage of {raw.nbytes} bytes is not a whole number of {dtype.name} values")
    typed = raw.view(np_dtype) if raw.size else np.zeros(0, np_dtype)
    return _rebuild_tensor_v2((typed, dtype.name == "bfloat16"), storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage"),
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
    **{("torch", name): _Dtype(name) for name in (*TORCH_DTYPES, *UNSUPPORTED_DTYPES)},
}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str = "little"):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self.byteorder = {"little": "<", "big": ">"}[byteorder]

    def find_class(self, module, name):
        if (module, name) in UNSUPPORTED_NAMES or (module == "torch" and name.endswith("Storage")
                                                   and (module, name) not in ALLOWED):
            what = UNSUPPORTED_NAMES.get((module, name), f"the storage type {name} (complex, quantized or another "
                                                         f"dtype without a NumPy equivalent)")
            raise UnsupportedTensorError(
                f"this checkpoint holds {what} ({module}.{name}), which minivivit does not read; it reads float32, "
                f"float16, bfloat16 and float64 tensors. Nothing was executed. Re-save a plain float32 state dict "
                f"with torch: torch.save(model.float().state_dict(), path) or model.save_pretrained(dir).")
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
        storage_type, key, numel = pid[1], pid[2], pid[4]
        untyped = storage_type.name == "UntypedStorage"
        dtype = np.dtype(np.uint8 if untyped else STORAGE_DTYPES[storage_type.name]).newbyteorder(self.byteorder)
        name = f"{self.prefix}data/{key}"
        if not isinstance(numel, int) or numel < 0:
            raise ValueError(f"storage {key!r} declares {numel!r} elements")
        info = self.archive.getinfo(name)  # KeyError if absent: reported as damaged
        if info.file_size != numel * dtype.itemsize:
            raise ValueError(f"storage {name} holds {info.file_size} bytes, but the pickle says {numel} elements of "
                             f"{dtype.itemsize} bytes ({numel * dtype.itemsize} bytes)")
        raw = read_member(self.archive, info)
        return np.frombuffer(raw, dtype=dtype), None if untyped else storage_type.name == "BFloat16Storage"


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, read in pieces and never beyond the size it declares (zipfile checks the CRC at the end)."""
    out = bytearray()
    with archive.open(info) as f:
        while len(out) < info.file_size:
            piece = f.read(min(MEMBER_CHUNK, info.file_size - len(out)))
            if not piece:
                break
            out += piece
    if len(out) != info.file_size:
        raise ValueError(f"member {info.filename} declares {info.file_size} bytes but holds {len(out)}")
    return bytes(out)


def check_archive(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse what a PyTorch checkpoint never is, before reading any member: encrypted members, compression other
    than stored / deflate, and members that would inflate above the memory limit (a zip bomb)."""
    infos = archive.infolist()
    for info in infos:
        if info.flag_bits & 0x1:
            raise BadArchiveError(f"{path}: the zip member {info.filename} is encrypted (password protected); a PyTorch "
                             f"checkpoint never is. Is this the right file?")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadArchiveError(f"{path}: the zip member {info.filename} uses compression method {info.compress_type}; "
                             f"torch.save stores members uncompressed (method 0), and minivivit reads only methods 0 "
                             f"and 8 (deflate). Re-save it with torch.save.")
    total = sum(info.file_size for info in infos)
    biggest = max(infos, key=lambda i: i.file_size, default=None)
    if biggest is not None:
        ratio = biggest.file_size / max(biggest.compress_size, 1)
        guard(total, f"reading its zip members (they inflate to {format_bytes(total)}; {biggest.filename} alone "
                     f"{format_bytes(biggest.file_size)} from {format_bytes(biggest.compress_size)}, "
                     f"{ratio:.0f}:1)",
              ["nothing: a ViViT-B checkpoint is 350 MB; this archive is damaged or a zip bomb"] if ratio > 50 else [])


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
            check_archive(path, archive)
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pkl) != 1:
                raise BadArchiveError(f"{path}: expected one data.pkl in the archive (torch.save's layout), found "
                                      f"{len(pkl)}")
            prefix = pkl[0][: -len("data.pkl")]
            byteorder = "little"  # recent torch writes <prefix>byteorder; files without it are little-endian
            if f"{prefix}byteorder" in archive.namelist():
                byteorder = read_member(archive, archive.getinfo(f"{prefix}byteorder"))[:16]
                byteorder = byteorder.decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"unknown byteorder {byteorder!r}; expected 'little' or 'big'")
            with archive.open(pkl[0]) as f:
                state = _AllowListUnpickler(f, archive, prefix, byteorder).load()
                rest = len(f.read(MEMBER_CHUNK))
            if rest:  # torch writes exactly one pickle; more bytes after its STOP are not part of a state dict
                raise UnsafePickleError(f"{pkl[0]} continues for {rest}{'+' if rest == MEMBER_CHUNK else ''} bytes "
                                        f"after its pickle ends (a second, hidden pickle?); refusing the file. Nothing "
                                        f"from it was executed.")
    except BadArchiveError:
        raise
    except (UnsafePickleError, UnsupportedTensorError) as e:
        raise type(e)(f"{path}: {e}") from None
    except MemoryBudgetError as e:
        raise MemoryBudgetError(f"{path}: {e}") from None
    except (zipfile.BadZipFile, EOFError, KeyError, pickle.UnpicklingError, TypeError, ValueError, OSError,
            RuntimeError, NotImplementedError, RecursionError) as e:
        raise ValueError(f"{path} is damaged or truncated ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        hint = ""
        if isinstance(state, dict):
            nested = [k for k, v in state.items() if isinstance(v, dict)]
            hint = (f"; it is a dict with keys {list(state)[:6]}" + (f": is the state dict under {nested[0]!r}? Save "
                    f"that alone (torch.save(ckpt[{nested[0]!r}], path))" if nested else ""))
        raise ValueError(f"{path} does not hold a state dict of tensors{hint}")
    return dict(state)
