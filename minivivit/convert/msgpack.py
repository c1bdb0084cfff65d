"""A small MessagePack reader for Flax checkpoints: no code runs, no dependency, arrays are views of the file.

Flax (`flax.serialization.to_bytes`, used by `flax.training.checkpoints` and so by every Scenic checkpoint)
writes the state dict as one MessagePack map (spec: https://github.com/msgpack/msgpack/blob/master/spec.md)
whose leaves use three extension types:

    ext 1  ndarray    payload = msgpack [shape, dtype name, raw C-order bytes]   (flax: _ndarray_to_bytes)
    ext 2  complex    payload = msgpack [real, imag]
    ext 3  np scalar  payload as ext 1, of a 0-d array

and arrays larger than flax's MAX_CHUNK_SIZE (2**30 bytes) become maps
{"__msgpack_chunked_array__": True, "shape": {"0": d0, ...}, "chunks": {"0": flat part, ...}}, joined here.

Why hand-written rather than the `msgpack` package: the format needs ~20 type codes, reading only them means
nothing but these plain values can come out of a file (any other extension type is an error), and arrays are
np.frombuffer views of a memory map, so the optimizer state a checkpoint also holds is never copied into memory.
"bfloat16" arrays (flax writes JAX's dtype name) are widened to float32 exactly (the bf16 bits are the top
half of a float32). Byte order is little-endian, as flax writes on x86 and TPU hosts.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

MAX_DEPTH = 64  # nesting limit: a checkpoint is a tree a few levels deep; deeper means a damaged file
EXT_NDARRAY, EXT_COMPLEX, EXT_NPSCALAR = 1, 2, 3
CHUNKED = "__msgpack_chunked_array__"


class MsgpackError(ValueError):
    """The bytes are not the MessagePack that flax writes."""


def unpack(data, source: str = "msgpack data"):
    """Decode one MessagePack value from bytes / memoryview (the whole buffer must be that one value)."""
    view = memoryview(data)
    value, end = _Reader(view, source).value(0, 0)
    if end != len(view):
        raise MsgpackError(f"{source}: {len(view) - end} bytes left after the first MessagePack value; "
                           f"is this a Flax checkpoint (one msgpack map)?")
    return value


def read_file(path):
    """A Flax msgpack checkpoint file -> nested dict of numpy arrays (views of a read-only memory map)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    if path.stat().st_size == 0:
        raise MsgpackError(f"{path} is empty")
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # stays open while arrays view it
    return unpack(mm, source=str(path))


def looks_like_msgpack_map(path) -> bool:
    """True if the file starts like a MessagePack map (what every Flax checkpoint is): sniffing for convert."""
    with open(path, "rb") as f:
        first = f.read(1)
    return bool(first) and (0x80 <= first[0] <= 0x8F or first[0] in (0xDE, 0xDF))


class _Reader:
    def __init__(self, view: memoryview, source: str, bin_as_view: bool = False):
        self.view, self.source = view, source
        self.bin_as_view = bin_as_view  # inside an ndarray extension: keep the data a view of the file

    def _take(self, pos: int, n: int) -> tuple[memoryview, int]:
        if n < 0 or pos + n > len(self.view):
            raise MsgpackError(f"{self.source}: truncated at byte {pos} (needs {n} more bytes, the data has "
                               f"{len(self.view) - pos}); is the download complete?")
        return self.view[pos:pos + n], pos + n

    def _uint(self, pos: int, n: int) -> tuple[int, int]:
        b, pos = self._take(pos, n)
        return int.from_bytes(b, "big"), pos

    def value(self, pos: int, depth: int):
        """Decode the value starting at pos -> (value, position after it)."""
        if depth > MAX_DEPTH:
            raise MsgpackError(f"{self.source}: nesting deeper than {MAX_DEPTH} levels at byte {pos}")
        b, pos = self._take(pos, 1)
        c = b[0]
        if c <= 0x7F:  # positive fixint
            return c, pos
        if c >= 0xE0:  # negative fixint
            return c - 0x100, pos
        if 0x80 <= c <= 0x8F:
            return self._map(pos, c & 0x0F, depth)
        if 0x90 <= c <= 0x9F:
            return self._array(pos, c & 0x0F, depth)
        if 0xA0 <= c <= 0xBF:
            return self._str(pos, c & 0x1F)
        if c == 0xC0:
            return None, pos
        if c in (0xC2, 0xC3):
            return c == 0xC3, pos
        if c in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
            n, pos = self._uint(pos, 1 << (c - 0xC4))
            raw, pos = self._take(pos, n)
            return (raw if self.bin_as_view else bytes(raw)), pos
        if c in (0xC7, 0xC8, 0xC9):  # ext 8/16/32
            n, pos = self._uint(pos, 1 << (c - 0xC7))
            return self._ext(pos, n, depth)
        if c in (0xCA, 0xCB):  # float 32/64
            n = 4 if c == 0xCA else 8
            raw, pos = self._take(pos, n)
            return struct.unpack(">f" if n == 4 else ">d", raw)[0], pos
        if 0xCC <= c <= 0xCF:  # uint 8/16/32/64
            return self._uint(pos, 1 << (c - 0xCC))
        if 0xD0 <= c <= 0xD3:  # int 8/16/32/64
            raw, pos = self._take(pos, 1 << (c - 0xD0))
            return int.from_bytes(raw, "big", signed=True), pos
        if 0xD4 <= c <= 0xD8:  # fixext 1/2/4/8/16
            return self._ext(pos, 1 << (c - 0xD4), depth)
        if c in (0xD9, 0xDA, 0xDB):  # str 8/16/32
            n, pos = self._uint(pos, 1 << (c - 0xD9))
            return self._str(pos, n)
        if c in (0xDC, 0xDD):  # array 16/32
            n, pos = self._uint(pos, 2 if c == 0xDC else 4)
            return self._array(pos, n, depth)
        if c in (0xDE, 0xDF):  # map 16/32
            n, pos = self._uint(pos, 2 if c == 0xDE else 4)
            return self._map(pos, n, depth)
        raise MsgpackError(f"{self.source}: byte 0x{c:02x} at {pos - 1} is not a MessagePack type code")

    def _str(self, pos, n):
        raw, pos = self._take(pos, n)
        try:
            return str(raw, "utf-8"), pos
        except UnicodeDecodeError as e:
            raise MsgpackError(f"{self.source}: a string at byte {pos - n} is not UTF-8 ({e})") from e

    def _array(self, pos, n, depth):
        items = []
        for _ in range(n):
            v, pos = self.value(pos, depth + 1)
            items.append(v)
        return items, pos

    def _map(self, pos, n, depth):
        d = {}
        for _ in range(n):
            k, pos = self.value(pos, depth + 1)
            if not isinstance(k, (str, int, bytes, bool)) and k is not None:
                raise MsgpackError(f"{self.source}: a map key at byte {pos} is a {type(k).__name__}")
            d[k], pos = self.value(pos, depth + 1)
        if d.get(CHUNKED) is True:
            return _unchunk(d, self.source), pos
        return d, pos

    def _ext(self, pos, n, depth):
        code_b, pos = self._take(pos, 1)
        code = int.from_bytes(code_b, "big", signed=True)
        payload, end = self._take(pos, n)
        inner = _Reader(payload, self.source, bin_as_view=True)
        if code in (EXT_NDARRAY, EXT_NPSCALAR):
            fields, used = inner.value(0, depth + 1)
            if used != n or not (isinstance(fields, list) and len(fields) == 3):
                raise MsgpackError(f"{self.source}: flax ndarray extension at byte {pos} is not [shape, dtype, data]")
            a = _ndarray(*fields, source=self.source)
            return (a[()] if code == EXT_NPSCALAR else a), end
        if code == EXT_COMPLEX:
            parts, _ = inner.value(0, depth + 1)
            return complex(parts[0], parts[1]), end
        raise MsgpackError(f"{self.source}: MessagePack extension type {code} at byte {pos} is not one flax writes "
                           f"(1 ndarray, 2 complex, 3 numpy scalar); refusing to guess what it holds")


def _dtype(name) -> tuple[np.dtype, bool]:
    """flax's dtype name -> (numpy little-endian dtype to read the bytes as, is bfloat16)."""
    if isinstance(name, memoryview):
        name = bytes(name)
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if name == "bfloat16":
        return np.dtype("<u2"), True
    try:
        dt = np.dtype(name)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf" or name != dt.name:
        raise MsgpackError(f"array dtype {name!r} is not a plain numeric dtype (float16/32/64, int, uint, bool)")
    return dt.newbyteorder("<"), False


def _ndarray(shape, dtype_name, data, *, source):
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise MsgpackError(f"{source}: array shape {shape!r} is not a list of sizes")
    try:
        dt, bf16 = _dtype(dtype_name)
    except MsgpackError as e:
        raise MsgpackError(f"{source}: {e}") from None
    count = int(np.prod(shape, dtype=np.int64))
    if not isinstance(data, memoryview) or len(data) != count * dt.itemsize:
        got = len(data) if isinstance(data, memoryview) else type(data).__name__
        raise MsgpackError(f"{source}: array of shape {tuple(shape)} and dtype {dtype_name} needs "
                           f"{count * dt.itemsize} bytes of data, the file has {got}")
    a = np.frombuffer(data, dtype=dt, count=count).reshape(shape)
    if bf16:  # bfloat16 = the high 16 bits of a float32
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a


def _unchunk(d, source):
    """flax's chunked form of a big array -> the array."""
    try:
        shape = [d["shape"][str(i)] for i in range(len(d["shape"]))]
        chunks = [d["chunks"][str(i)] for i in range(len(d["chunks"]))]
        flat = np.concatenate([np.asarray(c).reshape(-1) for c in chunks])
        return flat.reshape(shape)
    except (KeyError, TypeError, ValueError) as e:
        raise MsgpackError(f"{source}: a chunked array ({CHUNKED}) is malformed ({type(e).__name__}: {e})") from e
