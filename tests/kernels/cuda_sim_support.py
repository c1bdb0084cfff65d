"""Test support for numba's CUDA simulator: make `cuda.shared.array` thread-safe.

The simulator (numba-cuda 0.30) runs the threads of a block as Python threads. It hands out shared arrays
by looking the calling kernel line up in a dict and creating the array when it is missing, without a lock.
If the GIL passes to another thread of the block between that lookup and the store, the two threads get
*different* "shared" arrays, and the kernel silently computes garbage. It was seen once in about 20 runs
of cuda_sim_kernels.py on a loaded machine; cuda_sim_kernels.py has a test that forces it.
This wraps the lookup in a lock. Nothing here touches a real GPU or the product code.
"""

import os
import sys
import threading

import numpy as np


def make_shared_arrays_thread_safe() -> None:
    """Replace FakeCUDAShared.array with a locked version (idempotent; a no-op without the simulator)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        return
    from numba.cuda.simulator import kernelapi

    shared = kernelapi.FakeCUDAShared
    if getattr(shared, "locked_by_minivivit_tests", False):
        return
    original, lock = shared.array, threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory (one buffer) / unsupported: as before
            return original(self, shape, dtype, alignment)
        caller = sys._getframe(1)  # the kernel line that asks, as the simulator keys its arrays
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            if key not in self._allocations:
                np_dtype = kernelapi.numpy_support.as_dtype(dtype) if isinstance(dtype, kernelapi.types.Type) else dtype
                self._allocations[key] = np.empty(shape, np_dtype)
            return self._allocations[key]

    shared.array = array
    shared.locked_by_minivivit_tests = True
