"""Single-precision GEMM callable from inside numba kernels: SciPy's `scipy.linalg.cython_blas.sgemm`.

NumPy's `@` cannot be called inside a numba parallel region; SciPy exports the Fortran BLAS as C function
pointers (cython_blas), which numba calls directly, so one parallel kernel can run many small GEMMs, one per
thread at a time (fused_attention.py). Fortran's interface takes every argument by pointer and stores matrices
column-major: a row-major [m, n] array with row stride ld is the column-major [n, m] matrix with the same ld,
which is how the callers map their products (C = A B in rows is C^T = B^T A^T in columns).

Each thread's GEMM must run single-threaded (two threads each starting BLAS threads would fight over the two
cores), so `single_threaded()` sets SciPy's OpenBLAS (a library of its own, not NumPy's) to one thread while a
kernel runs and restores it afterwards. Where SciPy, its cython_blas or its OpenBLAS' thread control is missing
(another BLAS build), `available()` is False and the backend keeps the NumPy-BLAS attention (blocked_attention).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_STATE: dict = {}


@intrinsic
def sgemm_call(typingctx, address, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the Fortran sgemm at integer `address` with 13 integer pointers (`array.ctypes.data`): the function
    pointer is an argument, not a constant, so kernels calling it can be cached on disk (cache=True)."""
    if not all(isinstance(t, types.Integer) for t in (address, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)):
        return None

    def codegen(context, builder, signature, args):
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [ptr] * 13)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, [builder.inttoptr(x, ptr) for x in args[1:]])
        return context.get_dummy_value()

    return types.none(address, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), codegen


def _load():
    """(sgemm ctypes function, set_num_threads, get_num_threads) or raise ImportError / OSError."""
    import scipy
    from numba.extending import get_cython_function_address

    vp = ctypes.c_void_p
    sgemm = ctypes.CFUNCTYPE(None, *[vp] * 13)(get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
    libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__) + ".libs", "libscipy_openblas-*"))
    libs = [p for p in libs if "openblas64" not in os.path.basename(p)]
    if not libs:
        raise OSError("SciPy's bundled OpenBLAS (scipy.libs/libscipy_openblas-*) was not found")
    lib = ctypes.CDLL(libs[0])
    return sgemm, lib.scipy_openblas_set_num_threads, lib.scipy_openblas_get_num_threads


def available() -> bool:
    """True when sgemm and its thread control load (cached); the reason otherwise is in `why_not()`."""
    if "ok" not in _STATE:
        try:
            _STATE["sgemm"], _STATE["set"], _STATE["get"] = _load()
            _STATE["get"].restype = ctypes.c_int
            _STATE["ok"] = True
        except (ImportError, OSError, AttributeError, ValueError) as e:
            _STATE["ok"], _STATE["why"] = False, f"{type(e).__name__}: {e}"
    return _STATE["ok"]


def why_not() -> str:
    return "" if available() else _STATE["why"]


def sgemm_address() -> int:
    """The address of SciPy's sgemm (for sgemm_call inside a kernel); available() must be True."""
    if not available():
        raise RuntimeError(f"SciPy's cython_blas sgemm is not usable here: {why_not()}")
    return ctypes.cast(_STATE["sgemm"], ctypes.c_void_p).value


@contextlib.contextmanager
def single_threaded():
    """SciPy's OpenBLAS on one thread inside the block (each numba thread runs its own GEMMs), restored after."""
    available()
    before = _STATE["get"]()
    _STATE["set"](1)
    try:
        yield
    finally:
        _STATE["set"](before)
