"""Which implementation runs each heavy piece of the backward: the NumPy twins, or the numba kernels.

    ops = backward_ops("numba")      # or "numpy" (also "cuda": its backward is the NumPy one)
    ops.layer_norm_backward(dy, x, g, eps); ops.activation_backward(dy, x, name)
    ops.attention_backward(dcontext, q, k, v, num_heads, head_mask, dropout, on_probs, context=...)

The NumPy functions (grad/layers.py, grad/activations.py, grad/attention.py) are the specification;
the numba ones (minivivit/kernels/numba/backward_elementwise.py, attention_backward.py) are tested
against them (tests/kernels/test_numba_backward.py) and against torch (tests/grad/test_grad_parity.py).
A numba function falls back to its NumPy twin whenever its kernel does not apply: an array that is
not float32, an activation without a fused kernel, and, for attention, attention dropout or a
requested dL/dA (on_probs: the NumPy twin builds each head's [B, N, N] maps, the kernel never does).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .activations import activation_backward
from .attention import attention_backward
from .layers import layer_norm_backward


def _numpy_attention_backward(dcontext, q, k, v, num_heads, head_mask=None, dropout=None, on_probs=None,
                              context=None):
    return attention_backward(dcontext, q, k, v, num_heads, head_mask, dropout, on_probs)


NUMPY = SimpleNamespace(layer_norm_backward=layer_norm_backward, activation_backward=activation_backward,
                        attention_backward=_numpy_attention_backward)


def backward_ops(backend: str) -> SimpleNamespace:
    """The backward's heavy functions for `backend` ("numba": the kernels, with NumPy fallbacks; else NumPy)."""
    return _numba_ops() if backend == "numba" else NUMPY


def _f32(*arrays) -> bool:
    return all(a is None or (isinstance(a, np.ndarray) and a.dtype == np.float32) for a in arrays)


def _numba_ops() -> SimpleNamespace:
    from ..kernels.numba import KERNEL_LOCK
    from ..kernels.numba import attention_backward as kattn
    from ..kernels.numba import backward_elementwise as kel
    from ..kernels.numba.elementwise import fused_code

    def layer_norm_backward_fast(dy, x, g, eps):
        if not _f32(dy, x, g):
            return layer_norm_backward(dy, x, g, eps)
        with KERNEL_LOCK:
            return kel.layer_norm_backward(dy, x, g, eps)

    def activation_backward_fast(dy, x, name):
        code = fused_code(name)  # raises a clear error for an unknown name
        if code is None or not _f32(dy, x):
            return activation_backward(dy, x, name)
        with KERNEL_LOCK:
            return kel.activation_backward(dy, x, code)

    def attention_backward_fast(dcontext, q, k, v, num_heads, head_mask=None, dropout=None, on_probs=None,
                                context=None):
        if dropout is not None or on_probs is not None or context is None or not _f32(dcontext, q, k, v, context):
            return attention_backward(dcontext, q, k, v, num_heads, head_mask, dropout, on_probs)
        with KERNEL_LOCK:
            return kattn.attention_backward(dcontext, q, k, v, context, num_heads, head_mask)

    return SimpleNamespace(layer_norm_backward=layer_norm_backward_fast, activation_backward=activation_backward_fast,
                           attention_backward=attention_backward_fast)
