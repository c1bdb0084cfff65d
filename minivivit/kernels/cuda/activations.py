"""Activations as CUDA device functions, applied in the epilogue of the GEMM (gemm.py).

A kernel cannot take a Python function as an argument, so each activation has an integer code and
`activate(x, code)` switches on it. Every formula in layers.ACTIVATIONS (HF's hidden_act spellings) has
a code; the formulas are the same as layers.py's, which is their NumPy twin and their test.

Everything is float32, like the NumPy twin: Numba turns `float32 * 0.5` into float64 (a Python float
is a double), which would be slow on most GPUs, so every constant is written float32(...). The PTX test
checks that no double-precision instruction is left.

Device functions are inline="always": Numba pastes them into the kernel, which is also what lets
numba.cuda.compile_ptx build the kernels on a machine without a GPU.
"""

from __future__ import annotations

import math

from numba import cuda, float32

from ... import layers

# One code per formula, keyed by the formula's NumPy twin in layers.py: every hidden_act name that means
# that formula (layers.ACTIVATIONS, the one table of names) gets its code.
IDENTITY, GELU, GELU_10, GELU_FAST, GELU_TANH, QUICK_GELU, SILU, RELU, RELU2, RELU6 = range(10)
LEAKY_RELU, SELU, SIGMOID, TANH, MISH, HARDSWISH, LAPLACE, SQRTSOFTPLUS = range(10, 18)
CODES = {
    layers.identity: IDENTITY, layers.gelu: GELU, layers.gelu_10: GELU_10, layers.gelu_fast: GELU_FAST,
    layers.gelu_tanh: GELU_TANH, layers.quick_gelu: QUICK_GELU, layers.silu: SILU, layers.relu: RELU,
    layers.relu2: RELU2, layers.relu6: RELU6, layers.leaky_relu: LEAKY_RELU, layers.selu: SELU,
    layers.sigmoid: SIGMOID, layers.tanh: TANH, layers.mish: MISH, layers.hardswish: HARDSWISH,
    layers.laplace: LAPLACE, layers.sqrtsoftplus: SQRTSOFTPLUS,
}


def act_code(name: str) -> int:
    """The integer code of hidden_act `name` (clear error for an unknown name, from layers)."""
    return CODES[layers.activation_function(name)]


@cuda.jit(device=True, inline="always")
def sigmoid(x):
    """1 / (1 + e^-x) without overflow in either direction (as layers.sigmoid)."""
    e = math.exp(-abs(x))
    return float32(1.0) / (float32(1.0) + e) if x >= 0 else e / (float32(1.0) + e)


@cuda.jit(device=True, inline="always")
def softplus(x):
    """log(1 + e^x) without overflow (as layers.softplus)."""
    return max(x, float32(0.0)) + math.log1p(math.exp(-abs(x)))


@cuda.jit(device=True, inline="always")
def gelu(x):
    """Exact GELU 0.5 x (1 + erf(x/sqrt 2)) = 0.5 x erfc(-x/sqrt 2): erfc does not cancel for x < 0."""
    return float32(0.5) * x * math.erfc(-x * float32(0.7071067811865476))


@cuda.jit(device=True, inline="always")
def activate(x, code):
    """act(x) for the activation numbered `code` (see CODES); x and the result are float32."""
    zero, one, half = float32(0.0), float32(1.0), float32(0.5)
    if code == IDENTITY:
        return x
    if code == GELU:
        return gelu(x)
    if code == GELU_10:
        return min(max(gelu(x), float32(-10.0)), float32(10.0))
    if code == GELU_FAST:  # ViViT's default
        return half * x * (one + math.tanh(x * float32(0.7978845608) * (one + float32(0.044715) * x * x)))
    if code == GELU_TANH:  # the constant is sqrt(2 / pi)
        return half * x * (one + math.tanh(float32(0.7978845608028654) * (x + float32(0.044715) * x * x * x)))
    if code == QUICK_GELU:
        return x * sigmoid(float32(1.702) * x)
    if code == SILU:
        return x * sigmoid(x)
    if code == RELU:
        return max(x, zero)
    if code == RELU2:
        return max(x, zero) * max(x, zero)
    if code == RELU6:
        return min(max(x, zero), float32(6.0))
    if code == LEAKY_RELU:
        return x if x >= 0 else float32(0.01) * x
    if code == SELU:  # torch's constants
        return float32(1.0507009873554805) * (x if x > 0 else float32(1.6732632423543772) * math.expm1(x))
    if code == SIGMOID:
        return sigmoid(x)
    if code == TANH:
        return math.tanh(x)
    if code == MISH:
        return x * math.tanh(softplus(x))
    if code == HARDSWISH:
        return x * min(max(x + float32(3.0), zero), float32(6.0)) / float32(6.0)
    if code == LAPLACE:  # 0.5 (1 + erf((x - mu) / (sigma sqrt 2))), mu = 0.707107, sigma = 0.282095
        return half * (one + math.erf((x - float32(0.707107)) / float32(0.39894257487763823)))
    if code == SQRTSOFTPLUS:
        return math.sqrt(softplus(x))
    return float32(math.nan)  # unknown code: act_code() refuses unknown names before a launch
