"""Every CUDA kernel compiles to PTX for compute capability 8.0 (A100) and 9.0 (H100), without a GPU.

The simulator runs kernels as Python, so it cannot catch what only the compiler sees: a type that does
not unify, an unsupported feature, a float64 that slipped into float32 maths. numba-cuda[cu13] ships
NVVM, so numba.cuda.compile_ptx works on a machine with no GPU and no driver.

Not collected by the main pytest run: tests/kernels/test_cuda_backend.py runs this file in its own process with
NUMBA_ENABLE_CUDASIM unset (the simulator replaces numba.cuda and has no compiler). By hand:

    env -u NUMBA_ENABLE_CUDASIM python -m pytest -q tests/kernels/cuda_ptx_checks.py

Argument types are taken with numba.typeof from example arguments shaped like the launchers' (Python
ints become int64, np.float32 scalars float32, None stays None), so they are the types a launch uses.
"""

import os
import re

import numba
import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.fail("cuda_ptx_checks.py must run without NUMBA_ENABLE_CUDASIM (the simulator cannot compile)",
                pytrace=False)

from numba import cuda
from numba.cuda.dispatcher import CUDADispatcher

from minivivit.kernels.cuda import activations as cuda_activations
from minivivit.kernels.cuda import elementwise as cuda_elementwise
from minivivit.kernels.cuda import embed as cuda_embed
from minivivit.kernels.cuda import flash_attention as cuda_attention
from minivivit.kernels.cuda import gemm as cuda_gemm
from minivivit.kernels.cuda import layernorm as cuda_layernorm

MODULES = (cuda_activations, cuda_attention, cuda_elementwise, cuda_embed, cuda_gemm, cuda_layernorm)


def z(*shape):
    return np.zeros(shape, np.float32)


B, N, D, F, P, nh = 2, 5, 8, 12, 4, 2
GELU_FAST = cuda_activations.act_code("gelu_fast")
# name -> (kernel, example arguments as the launcher passes them); each is one compiled specialisation
CASES = {
    "gemm fc1 (bias + GELU)": (cuda_gemm.gemm_kernel, (z(B * N, F), z(B * N, D), z(D, F), z(F), GELU_FAST,
                                                       B * N, F, D)),
    "gemm q/k/v without bias": (cuda_gemm.gemm_kernel, (z(B * N, D), z(B * N, D), z(D, D), None, 0, B * N, D, D)),
    "gemm head/pooler on CLS rows": (cuda_gemm.gemm_kernel, (z(B, 3), z(B, N, D)[:, 0], z(D, 3), z(3), 0, B, 3, D)),
    "tubelet_embed": (cuda_embed.tubelet_embed_kernel, (z(B * P, D), z(B, 4, 3, 16, 16), z(2 * 8 * 8 * 3, D), z(D),
                                                         P, 2, 2, 2, 8, 8)),
    "prepend_cls": (cuda_elementwise.prepend_cls_kernel, (z(B * N, D), z(B * P, D), z(D), N)),
    "add (positions over the batch)": (cuda_elementwise.add_kernel, (z(B * N, D), z(B * N, D), z(N, D))),
    "activation": (cuda_elementwise.activation_kernel, (z(B * N, F), z(B * N, F), GELU_FAST)),
    "layer_norm": (cuda_layernorm.layer_norm_kernel, (z(B * N, D), z(B * N, D), z(D), z(D), np.float32(1e-6),
                                                      B * N, D)),
    "attention": (cuda_attention.attention_kernel, (z(B, N, D), None, z(B, N, D), z(B, N, D), z(B, N, D), z(nh),
                                                    np.float32(0.5), False)),
    "attention + probabilities": (cuda_attention.attention_kernel, (z(B, N, D), z(B, nh, N, N), z(B, N, D),
                                                                    z(B, N, D), z(B, N, D), z(nh), np.float32(0.5),
                                                                    True)),
}
SHARED_LIMIT = 48 * 1024  # bytes of static shared memory a block may declare


def kernels_and_device_functions():
    """Every @cuda.jit object defined in the kernels/cuda modules, split into kernels and device functions."""
    found = {m.__name__ + "." + name: obj for m in MODULES for name, obj in vars(m).items()
             if isinstance(obj, CUDADispatcher) and obj.py_func.__module__ == m.__name__}
    kernels = {name for name, obj in found.items() if not obj.targetoptions["device"]}
    return kernels, {name: obj for name, obj in found.items() if obj.targetoptions["device"]}


def test_every_kernel_has_a_case():
    kernels, _ = kernels_and_device_functions()
    covered = {k.py_func.__module__ + "." + k.__name__ for k, _ in CASES.values()}
    assert kernels == covered, f"kernels without a PTX case: {sorted(kernels - covered)}"


def test_device_functions_are_inlined():
    """A device function compiled on its own asks the driver for the GPU's compute capability, which fails
    without a GPU; inline="always" compiles it as part of the kernel instead."""
    _, device_functions = kernels_and_device_functions()
    assert device_functions, "expected device functions in the kernels/cuda modules"
    not_inlined = [name for name, f in device_functions.items() if f.targetoptions["inline"] != "always"]
    assert not not_inlined, f"device functions without inline='always': {not_inlined}"


@pytest.mark.parametrize("cc", [(8, 0), (9, 0)], ids=["sm_80", "sm_90"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_compiles_to_ptx(case, cc):
    kernel, example = CASES[case]
    signature = tuple(numba.typeof(a) for a in example)
    ptx, return_type = cuda.compile_ptx(kernel.py_func, signature, cc=cc)
    assert return_type == numba.types.void
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx  # a launchable kernel
    doubles = sorted(set(re.findall(r"[\w.]*\.f64\b", ptx)))  # e.g. add.rn.f64, cvt.f64.f32, .reg .f64
    assert not doubles, f"{case}: float64 instructions {doubles[:5]} (a Python float mixed into float32 maths?)"
    shared = sum(int(n) for n in re.findall(r"\.shared\s.*?\[(\d+)\]", ptx))
    assert shared <= SHARED_LIMIT, f"{case}: {shared} bytes of static shared memory > {SHARED_LIMIT}"
