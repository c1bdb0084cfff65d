"""What lives on the GPU: parameters uploaded once and cached, activations allocated per call.

Parameters are copied to the device the first time an array is used and then reused: the cache is
keyed by id(array) and holds a weak reference, so the entry disappears when the NumPy array is freed
(and a new array that happens to get the same id is never mistaken for it). Consequence: editing a
parameter *in place* (`w[:] = 0`) is not seen by the GPU copy; make a new array
(`model.to(...)`, `params[...] = w * 0`) or call forget_device_copies().
"""

from __future__ import annotations

import weakref

import numpy as np
from numba import cuda

_DEVICE_COPIES: dict[int, tuple[weakref.ref, object]] = {}  # id(host array) -> (weak ref to it, device copy)


def check_float32(name: str, a) -> None:
    if getattr(a, "dtype", None) != np.float32:
        raise TypeError(f"the cuda backend computes in float32; {name} has dtype {getattr(a, 'dtype', type(a))}. "
                        f"Use model.to(np.float32) / .astype(np.float32), or backend='numpy' for float64.")


def device_copy(a: np.ndarray, name: str = "parameter"):
    """The device copy of parameter array `a` (float32), uploaded the first time it is asked for."""
    key = id(a)
    hit = _DEVICE_COPIES.get(key)
    if hit is not None and hit[0]() is a:
        return hit[1]
    check_float32(name, a)
    dev = cuda.to_device(np.ascontiguousarray(a))
    _DEVICE_COPIES[key] = (weakref.ref(a, lambda _ref, key=key: _DEVICE_COPIES.pop(key, None)), dev)
    return dev


def forget_device_copies() -> None:
    """Drop every cached parameter copy (the GPU memory is freed when nothing else refers to it)."""
    _DEVICE_COPIES.clear()


def upload(name: str, a) -> object:
    """An activation or input: copied to the device on every call (never cached)."""
    check_float32(name, a)
    return cuda.to_device(np.ascontiguousarray(a))


def empty(*shape):
    """An uninitialised float32 device array (every kernel writes all of its output)."""
    return cuda.device_array(shape, dtype=np.float32)
