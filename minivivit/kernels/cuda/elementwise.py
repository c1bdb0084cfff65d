"""Element-wise kernels, one thread per value: CLS first, adds (residuals, positions), activations.

NumPy twins: layers.prepend_cls, layers.add, layers.activation. Arrays are 2-D rows [M, D] on the device
(tokens [B*N, D]); each launcher checks the shapes, then starts ceil(values / THREADS) blocks.
"""

from __future__ import annotations

from numba import cuda

from .activations import act_code, activate
from .gemm import ceil_div

THREADS = 256  # threads per block


def _launch(kernel, values: int, *args):
    """Start `kernel` with one thread per value (the kernel guards the ragged last block)."""
    kernel[ceil_div(values, THREADS), THREADS](*args)


@cuda.jit
def prepend_cls_kernel(out, patches, cls, N):
    """out[b*N + n, :] = cls if n == 0 else patches[b*P + n-1]."""
    i = cuda.grid(1)
    D = out.shape[1]
    if i >= out.shape[0] * D:  # bounds guard first
        return
    row, d = i // D, i % D
    b, n = row // N, row % N
    out[row, d] = cls[d] if n == 0 else patches[b * (N - 1) + n - 1, d]


def prepend_cls(out, patches, cls):
    """patches [B*P, D], cls [D] -> out [B*N, D] (CLS first). Returns out."""
    M, D = out.shape
    B = M - patches.shape[0]  # one CLS row per clip
    if patches.shape[1] != D or B < 1 or patches.shape[0] % B:
        raise ValueError(f"prepend_cls: patches {patches.shape} do not fit out {out.shape}")
    _launch(prepend_cls_kernel, M * D, out, patches, cls, M // B)
    return out


@cuda.jit
def add_kernel(out, a, b):
    """out[i, :] = a[i, :] + b[i % R, :] (R = rows of b): residuals, and positions over the batch."""
    i = cuda.grid(1)
    M, D = a.shape
    if i >= M * D:  # bounds guard first
        return
    row, d = i // D, i % D
    out[row, d] = a[row, d] + b[row % b.shape[0], d]


def add(out, a, b):
    """out [M, D] = a [M, D] + b [R, D] (R divides M). Returns out."""
    M, D = a.shape
    if b.shape[1] != D or M % b.shape[0] or out.shape != (M, D):
        raise ValueError(f"add: a {a.shape} + b {b.shape} do not fit out {out.shape}")
    _launch(add_kernel, M * D, out, a, b)
    return out


@cuda.jit
def activation_kernel(out, x, code):
    """out[i, j] = act(x[i, j]) for the activation numbered code."""
    i = cuda.grid(1)
    M, F = x.shape
    if i >= M * F:  # bounds guard first
        return
    out[i // F, i % F] = activate(x[i // F, i % F], code)


def activation(out, x, name: str):
    """out [M, F] = act(x [M, F]). Returns out."""
    _launch(activation_kernel, x.shape[0] * x.shape[1], out, x, act_code(name))
    return out
