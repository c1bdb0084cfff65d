"""backend="cuda": the ops of minivivit/kernels/__init__.py on an NVIDIA GPU with numba.cuda.

Ops take NumPy arrays or device arrays and return device arrays, so model.py's forward pass keeps
its activations on the GPU from op to op: only the clip goes up (and any array a tap shows or replaces),
and only what the caller asked for comes down through `to_numpy`. Parameters are uploaded once and
cached (memory.device_copy).

Kernels, each beside its NumPy twin in layers.py: embed (tubelet gather fused with the projection),
elementwise (CLS, adds, activations), gemm (+ activations: bias and activation fused into the GEMM), layernorm,
attention (flash attention: tiled, online softmax, never an N x N matrix unless probabilities are
asked for). Everything is float32. On the device, tokens live as [B*N, D] rows (reshaped views of
[B, N, D]), because the GEMM and LayerNorm kernels work on rows.

Without a GPU, numba's CUDA simulator runs the same kernels as Python threads (slowly; for tests):
set NUMBA_ENABLE_CUDASIM=1 in the environment *before* Python starts.
"""

from __future__ import annotations

import os

import numpy as np

from ...tokens import clip_thw, tubelet_grid

try:
    from numba import cuda
except ImportError as e:  # numba-cuda (the `cuda` extra) is not installed: check_available() explains
    cuda, _IMPORT_ERROR = None, e
else:
    _IMPORT_ERROR = None
    from . import elementwise as cuda_elementwise
    from . import embed as cuda_embed
    from . import flash_attention as cuda_attention
    from . import gemm as cuda_gemm
    from . import layernorm as cuda_layernorm
    from .memory import device_copy, empty, upload


def check_available() -> None:
    """Raise RuntimeError saying what to do when there is neither a usable GPU nor the simulator."""
    if cuda is None:
        raise RuntimeError(
            f"backend='cuda' needs numba-cuda, which is not importable here ({_IMPORT_ERROR}). Install it with "
            "python -m pip install 'minivivit[cuda]' (or 'numba-cuda[cu13]'), or use backend='numba' / 'numpy'."
        )
    if cuda.is_available():  # a GPU with a driver, or the simulator
        return
    late = ""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        late = (" NUMBA_ENABLE_CUDASIM=1 is set, but only after numba.cuda had been imported in this process, "
                "so it has no effect: set it before Python starts.")
    raise RuntimeError(
        "backend='cuda' found no CUDA GPU (numba.cuda.is_available() is False: no NVIDIA GPU, or no driver)."
        + late + " Either run on a machine with an NVIDIA GPU and its driver (check with `nvidia-smi`), or use "
        "numba's CUDA simulator, which runs the same kernels slowly on the CPU (meant for tests, tiny inputs): "
        "`NUMBA_ENABLE_CUDASIM=1 python ...`. Otherwise choose backend='numba' (CPU, fast) or 'numpy'."
    )


def is_device_array(x) -> bool:
    """True for numba.cuda device arrays (and the simulator's stand-ins for them)."""
    return not isinstance(x, np.ndarray) and hasattr(x, "copy_to_host")


def _on_device(name: str, x):
    """x as a device array: device arrays pass through, NumPy arrays are uploaded."""
    return x if is_device_array(x) else upload(name, np.asarray(x))


def _rows(x):
    """[..., n] -> [M, n] view (the GEMM, LayerNorm and element-wise kernels work on 2-D rows)."""
    shape = tuple(x.shape)  # a plain tuple (the simulator's shapes do not take negative indices)
    return x if len(shape) == 2 else x.reshape(-1, shape[-1])


def to_numpy(x) -> np.ndarray:
    """A device array copied back to the host (NumPy arrays are returned as they are)."""
    return x.copy_to_host() if is_device_array(x) else np.asarray(x)


def tubelet_embed(pixel_values, w, b, tubelet):
    """[B, T, C, H, W] -> [B, P, D] (twin: layers.tubelet_embed)."""
    B = pixel_values.shape[0]
    t, h, w_ = tubelet_grid(clip_thw(pixel_values.shape), tubelet)
    out = empty(B * t * h * w_, w.shape[1])  # [B*P, D]
    cuda_embed.tubelet_embed(out, _on_device("pixel_values", pixel_values), device_copy(w), device_copy(b), tubelet)
    return out.reshape(B, t * h * w_, w.shape[1])  # [B, P, D]


def prepend_cls(patches, cls):
    """[B, P, D] -> [B, N, D], CLS first (twin: layers.prepend_cls)."""
    B, P, D = patches.shape
    out = empty(B * (P + 1), D)  # [B*N, D]
    cuda_elementwise.prepend_cls(out, _rows(_on_device("patches", patches)), device_copy(cls))
    return out.reshape(B, P + 1, D)


def add(a, b):
    """a + b with b's rows repeated over a's leading axes (twin: layers.add)."""
    a = _on_device("a", a)
    b = b if is_device_array(b) else device_copy(np.asarray(b), "b")  # a host b is a parameter (positions)
    out = empty(*tuple(a.shape))
    cuda_elementwise.add(_rows(out), _rows(a), _rows(b))
    return out


def linear(x, w, b=None):
    """x @ w + b: [..., in] -> [..., out] (twin: layers.linear)."""
    x = _on_device("x", x)
    out = empty(*tuple(x.shape)[:-1], w.shape[1])  # [..., out]
    cuda_gemm.gemm(_rows(out), _rows(x), device_copy(w), None if b is None else device_copy(b))
    return out


def activation(x, name):
    """act(x) element-wise (twin: layers.activation)."""
    x = _on_device("x", x)
    out = empty(*tuple(x.shape))
    cuda_elementwise.activation(_rows(out), _rows(x), name)
    return out


def linear_act(x, w, b, name):
    """act(x @ w + b) with the activation fused into the GEMM (twin: layers.linear_act)."""
    x = _on_device("x", x)
    out = empty(*tuple(x.shape)[:-1], w.shape[1])  # [..., out]
    cuda_gemm.gemm(_rows(out), _rows(x), device_copy(w), device_copy(b), act=name)
    return out


def layer_norm(x, g, b, eps):
    """LayerNorm over the last axis (twin: layers.layer_norm)."""
    x = _on_device("x", x)
    out = empty(*tuple(x.shape))
    cuda_layernorm.layer_norm(_rows(out), _rows(x), device_copy(g), device_copy(b), eps)
    return out


def attention(q, k, v, num_heads, head_mask=None, output_attentions=None):
    """(context [B, N, D], None | [B, nh, N, N] | [B, nh, N]) on the device (twin: layers.attention)."""
    if output_attentions not in (None, "full", "cls"):
        raise ValueError(f"output_attentions must be None, 'full' or 'cls'; got {output_attentions!r}")
    q, k, v = _on_device("q", q), _on_device("k", k), _on_device("v", v)
    B, N, D = q.shape
    mask = np.ones(num_heads, np.float32) if head_mask is None else np.asarray(head_mask, np.float32)  # [nh]
    context = empty(B, N, D)
    probs = None if output_attentions is None else empty(B, num_heads, 1 if output_attentions == "cls" else N, N)
    cuda_attention.attention(context, probs, q, k, v, upload("head_mask", mask), output_attentions)
    if output_attentions == "cls":
        probs = probs.reshape(B, num_heads, N)  # [B, nh, 1, N] -> [B, nh, N]
    return context, probs
