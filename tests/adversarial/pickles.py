"""Pickle bytes written opcode by opcode (no torch, no Python object is ever pickled for real), and
PyTorch-style zip checkpoints built from them: honest state dicts, lying ones and hostile ones.

    P = Pickle(); P.global_("collections", "OrderedDict"); P.empty_tuple(); P.reduce(); P.stop(); P.bytes()

A hostile payload is any pickle that would create `marker` when loaded by a plain pickle.load; the
suite checks afterwards that the marker does not exist (PWNED otherwise).
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

PROTO, STOP, MARK, TUPLE, EMPTY_TUPLE, TUPLE1, TUPLE2 = b"\x80", b".", b"(", b"t", b")", b"\x85", b"\x86"
REDUCE, BUILD, INST, OBJ, EXT1, NEWOBJ = b"R", b"b", b"i", b"o", b"\x82", b"\x81"
EMPTY_DICT, SETITEMS, SETITEM, BINPERSID, NEWFALSE, NEWTRUE = b"}", b"u", b"s", b"Q", b"\x89", b"\x88"
STACK_GLOBAL, MEMOIZE, FRAME, POP, EMPTY_LIST, APPEND = b"\x93", b"\x94", b"\x95", b"0", b"]", b"a"

TORCH_STORAGE = {np.float32: "FloatStorage", np.float16: "HalfStorage", np.float64: "DoubleStorage",
                 np.int64: "LongStorage", np.int32: "IntStorage", np.uint8: "ByteStorage", np.bool_: "BoolStorage"}


class Pickle:
    """Append opcodes; bytes() returns the pickle."""

    def __init__(self, protocol: int = 2):
        self.out = io.BytesIO()
        if protocol >= 2:
            self.out.write(PROTO + bytes([protocol]))

    def op(self, code: bytes):
        self.out.write(code)
        return self

    def str_(self, s: str):
        data = s.encode()
        return self.op(b"X" + struct.pack("<I", len(data)) + data)  # BINUNICODE

    def int_(self, v: int):
        if 0 <= v < 256:
            return self.op(b"K" + bytes([v]))  # BININT1
        if -(2**31) <= v < 2**31:
            return self.op(b"J" + struct.pack("<i", v))  # BININT
        data = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
        return self.op(b"\x8a" + bytes([len(data)]) + data)  # LONG1

    def global_(self, module: str, name: str):
        return self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")  # GLOBAL

    def stack_global(self, module: str, name: str):
        return self.str_(module).str_(name).op(STACK_GLOBAL)

    def tuple_(self, *items):
        self.op(MARK)
        for item in items:
            self.value(item)
        return self.op(TUPLE)

    def value(self, item):
        if callable(item):  # a function that emits its own opcodes
            item(self)
        elif isinstance(item, bool):
            self.op(NEWTRUE if item else NEWFALSE)
        elif isinstance(item, int):
            self.int_(item)
        elif isinstance(item, str):
            self.str_(item)
        elif isinstance(item, tuple):
            self.tuple_(*item)
        elif item is None:
            self.op(b"N")
        else:
            raise TypeError(item)
        return self

    def call(self, module: str, name: str, *args):
        """module.name(*args) via GLOBAL + TUPLE + REDUCE."""
        return self.global_(module, name).tuple_(*args).op(REDUCE)

    def stop(self):
        return self.op(STOP)

    def bytes(self) -> bytes:
        return self.out.getvalue()


# ---------------------------------------------------------------------------------------------
# State dicts in torch's format
# ---------------------------------------------------------------------------------------------


def state_dict_pickle(entries) -> bytes:
    """entries: [(name, storage_class, storage_key, numel, offset, size, stride)] -> torch's data.pkl."""
    p = Pickle(2)
    p.call("collections", "OrderedDict")
    p.op(MARK)
    for name, storage_class, key, numel, offset, size, stride in entries:
        p.str_(name)
        p.global_("torch._utils", "_rebuild_tensor_v2")
        p.op(MARK)
        p.tuple_("storage", lambda q, c=storage_class: q.global_("torch", c), key, "cpu", numel)
        p.op(BINPERSID)
        p.int_(offset).tuple_(*size).tuple_(*stride).op(NEWFALSE)
        p.call("collections", "OrderedDict")
        p.op(TUPLE).op(REDUCE)
    p.op(SETITEMS)
    return p.stop().bytes()


def contiguous_strides(shape):
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def write_torch_zip(path, state: dict, *, pickle_bytes: bytes | None = None, extra_members: dict | None = None,
                    compression=zipfile.ZIP_STORED, prefix: str = "archive", storage_class=None,
                    member_compression: dict | None = None):
    """A pytorch_model.bin (torch's zip layout) holding `state` {name: array}, or any data.pkl given."""
    entries, blobs = [], {}
    for i, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array)
        cls = storage_class or TORCH_STORAGE[array.dtype.type]
        entries.append((name, cls, str(i), array.size, 0, array.shape, contiguous_strides(array.shape)))
        blobs[str(i)] = array.astype(array.dtype.newbyteorder("<")).tobytes()
    data_pkl = pickle_bytes if pickle_bytes is not None else state_dict_pickle(entries)
    members = {f"{prefix}/data.pkl": data_pkl, f"{prefix}/byteorder": b"little", f"{prefix}/version": b"3\n"}
    members.update({f"{prefix}/data/{k}": v for k, v in blobs.items()})
    members.update(extra_members or {})
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data, compress_type=(member_compression or {}).get(name, compression))
    return path


def torch_zip_with_pickle(path, pickle_bytes: bytes, **kwargs):
    """A zip checkpoint whose data.pkl is exactly pickle_bytes (no tensors needed)."""
    return write_torch_zip(path, {}, pickle_bytes=pickle_bytes, **kwargs)


# ---------------------------------------------------------------------------------------------
# Hostile pickles: each would create `marker` if a plain unpickler ran it
# ---------------------------------------------------------------------------------------------


def hostile_pickles(marker: str) -> dict[str, bytes]:
    """name -> pickle bytes. Every one runs code (creates marker) under pickle.loads."""
    cmd = f"touch {marker}"
    code = f"open({marker!r}, 'w').write('pwned')"
    out = {}
    out["reduce-os.system"] = Pickle(2).call("os", "system", cmd).stop().bytes()
    out["reduce-posix.system"] = Pickle(2).call("posix", "system", cmd).stop().bytes()
    out["reduce-builtins.eval"] = Pickle(2).call("builtins", "eval", code).stop().bytes()
    out["reduce-builtins.exec"] = Pickle(2).call("builtins", "exec", code).stop().bytes()
    out["reduce-subprocess.call"] = Pickle(2).call("subprocess", "call", ("touch", marker)).stop().bytes()
    p = Pickle(4).stack_global("builtins", "exec").tuple_(code).op(REDUCE).stop()
    out["stack_global-exec"] = p.bytes()
    p = Pickle(4).stack_global("os", "system").op(MEMOIZE).tuple_(cmd).op(REDUCE).stop()
    out["stack_global-memoize-os.system"] = p.bytes()
    # protocol 0/1 INST and OBJ opcodes: build an "instance" of a callable
    out["inst-os.system"] = b"(" + b"S'" + cmd.encode() + b"'\n" + b"ios\nsystem\n."
    out["obj-os.system"] = Pickle(1).op(MARK).global_("os", "system").str_(cmd).op(OBJ).stop().bytes()
    # NEWOBJ on a hostile class, and BUILD that would set attributes through __setstate__
    out["newobj-subprocess.Popen"] = (Pickle(2).global_("subprocess", "Popen").tuple_(("touch", marker))
                                      .op(NEWOBJ).stop().bytes())
    out["build-on-exec"] = (Pickle(2).call("builtins", "exec", code).op(EMPTY_DICT).op(BUILD).stop().bytes())
    # EXT1: an extension code (copyreg registry); a plain pickle would look it up and call it
    out["ext1-code-1"] = Pickle(2).op(EXT1 + b"\x01").tuple_(cmd).op(REDUCE).stop().bytes()
    # getattr chains to reach os.system from an allowed-looking module
    p = Pickle(2).global_("builtins", "getattr").op(MARK)
    p.call("builtins", "__import__", "os").str_("system").op(TUPLE).op(REDUCE).tuple_(cmd).op(REDUCE).stop()
    out["getattr-__import__-os"] = p.bytes()
    # the hostile call hidden inside an otherwise valid state dict (as the value of a key)
    p = Pickle(2).call("collections", "OrderedDict").op(MARK).str_("weight").call("os", "system", cmd)
    out["inside-ordereddict"] = p.op(SETITEMS).stop().bytes()
    # a tensor rebuild whose storage comes from a hostile persistent id
    p = Pickle(2).global_("torch._utils", "_rebuild_tensor_v2").op(MARK)
    p.call("os", "system", cmd).op(BINPERSID)
    out["persid-from-os.system"] = p.int_(0).tuple_(1).tuple_(1).op(NEWFALSE).op(TUPLE).op(REDUCE).stop().bytes()
    # nested: a pickle inside a pickle (bytes handed to pickle.loads)
    inner = Pickle(2).call("os", "system", cmd).stop().bytes()
    p = Pickle(2).global_("pickle", "loads").op(MARK).op(b"C" + bytes([len(inner)]) + inner).op(TUPLE).op(REDUCE)
    out["nested-pickle.loads"] = p.stop().bytes()
    # concatenated: a harmless empty OrderedDict, then a hostile second pickle in the same stream
    out["concatenated"] = Pickle(2).call("collections", "OrderedDict").stop().bytes() + inner
    # torch.load's own machinery names that a hostile file might use
    out["torch.load-recursive"] = Pickle(2).call("torch", "load", marker).stop().bytes()
    out["numpy-frombuffer-trick"] = Pickle(2).call("numpy.core.multiarray", "_reconstruct", "x").stop().bytes()
    out["runpy"] = Pickle(2).call("runpy", "_run_code", code, (lambda q: q.op(EMPTY_DICT))).stop().bytes()
    return out
