"""Derivatives of every activation in layers.ACTIVATIONS: the backward twin of layers.activation.

    activation_backward(dy, x, name) = dy * f'(x)        x: the activation's INPUT (e.g. blocks.i.fc1)

Each DERIVATIVES entry is f'(x) written out by hand. Where f has a kink (relu at 0, relu6 at 0 and 6,
hardswish at +-3, ...) the value at the kink is torch's, so gradients equal torch autograd exactly there
too. Every formula is arranged so that it stays finite at x = +-300 in float32: 1 - sigmoid(z) is
written sigmoid(-z) (no cancellation), and the tanh forms multiply (1 - tanh^2) = 0 by a large
polynomial, never an infinity.
"""

from __future__ import annotations

import math

import numpy as np

from .. import layers
from ..layers import erfc_abs, sigmoid, softplus

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def d_gelu(x):
    """GELU(x) = x Phi(x)  =>  GELU'(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
    Phi from erfc as in layers.gelu (0.5 erfc(|x|/sqrt 2) for x < 0, 1 - that for x >= 0)."""
    c = 0.5 * erfc_abs(x * np.asarray(1 / math.sqrt(2.0), dtype=x.dtype))  # Phi(-|x|)
    Phi = np.where(x >= 0, 1.0 - c, c)
    return Phi + x * np.exp(-0.5 * x * x) * INV_SQRT_2PI


def _d_tanh_gelu(x, k):
    """f = 0.5 x (1 + tanh(u)), u = k (x + a x^3), a = 0.044715
    =>  f' = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 a x^2).
    With 1 + tanh u = 2 s and 1 - tanh^2 u = 4 s (1 - s), s = sigmoid(2u), nothing cancels when tanh u
    is near -1 (x < -4 in float32, where 1 + tanh u would be pure rounding)."""
    a = 0.044715
    z = 2.0 * k * x * (1.0 + a * x * x)  # 2u
    s, s_neg = sigmoid(z), sigmoid(-z)
    return s + 2.0 * x * s * s_neg * k * (1.0 + 3.0 * a * x * x)


def d_gelu_tanh(x):
    """gelu_new / gelu_pytorch_tanh / gelu_accurate: k = sqrt(2 / pi)."""
    return _d_tanh_gelu(x, SQRT_2_OVER_PI)


def d_gelu_fast(x):
    """gelu_fast (ViViT's default): the same with k rounded to 0.7978845608, as HF writes it."""
    return _d_tanh_gelu(x, 0.7978845608)


def d_gelu_10(x):
    """clip(gelu(x), -10, 10): gelu'(x) where -10 <= gelu(x) <= 10 (torch.clamp passes the boundary), else 0."""
    g = layers.gelu(x)
    return d_gelu(x) * ((g >= -10) & (g <= 10))


def d_sigmoid(x):
    """s = sigmoid(x)  =>  s' = s (1 - s) = sigmoid(x) sigmoid(-x)."""
    return sigmoid(x) * sigmoid(-x)


def d_quick_gelu(x):
    """f = x s(1.702 x)  =>  f' = s + 1.702 x s (1 - s)."""
    z = 1.702 * x
    s = sigmoid(z)
    return s + z * s * sigmoid(-z)


def d_silu(x):
    """f = x s(x)  =>  f' = s + x s (1 - s)."""
    s = sigmoid(x)
    return s + x * s * sigmoid(-x)


def d_relu(x):
    """1 for x > 0, else 0 (torch: 0 at x = 0)."""
    return (x > 0).astype(x.dtype)


def d_relu2(x):
    """relu(x)^2  =>  2 relu(x)."""
    return 2.0 * np.maximum(x, 0)


def d_relu6(x):
    """clip(x, 0, 6) (torch's hardtanh): 1 for 0 < x < 6, else 0 (0 at both kinks, as torch)."""
    return ((x > 0) & (x < 6)).astype(x.dtype)


def d_leaky_relu(x):
    """1 for x > 0, else 0.01 (torch: 0.01 at x = 0)."""
    return np.where(x > 0, 1.0, 0.01).astype(x.dtype)


def d_selu(x):
    """scale * (x if x > 0 else alpha (e^x - 1))  =>  scale for x > 0, scale alpha e^x for x <= 0 (torch)."""
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return np.where(x > 0, scale, scale * alpha * np.exp(np.minimum(x, 0)))


def d_tanh(x):
    """tanh' = 1 - tanh^2."""
    t = np.tanh(x)
    return 1.0 - t * t


def d_linear(x):
    return np.ones_like(x)


def d_mish(x):
    """f = x tanh(sp(x)), sp = softplus, sp' = sigmoid  =>  f' = tanh(sp) + x sigmoid(x) (1 - tanh^2(sp))."""
    t = np.tanh(softplus(x))
    return t + x * sigmoid(x) * (1.0 - t * t)


def d_hardswish(x):
    """x clip(x + 3, 0, 6) / 6  =>  0 for x <= -3, x/3 + 1/2 for -3 < x < 3, 1 for x >= 3 (torch's kinks)."""
    return np.where(x <= -3, 0.0, np.where(x < 3, x / 3.0 + 0.5, 1.0))


def d_laplace(x):
    """0.5 (1 + erf((x - mu) / (sigma sqrt 2))) is the normal CDF with (mu, sigma)  =>  its density
    exp(-u^2) / (sigma sqrt(2 pi)), u = (x - mu) / (sigma sqrt 2)."""
    mu, sigma = 0.707107, 0.282095
    u = (x - mu) / (sigma * math.sqrt(2.0))
    return np.exp(-u * u) / (sigma * math.sqrt(2.0 * math.pi))


def d_sqrtsoftplus(x):
    """sqrt(sp(x))  =>  sigmoid(x) / (2 sqrt(sp(x))). Where sp(x) underflows to 0 (x < about -88 in
    float32) the limit 0 is returned (torch autograd gives NaN there: 0 * inf)."""
    r = np.sqrt(softplus(x))
    return np.where(r > 0, sigmoid(x) / (2.0 * np.where(r > 0, r, 1.0)), 0.0)


DERIVATIVES = {  # hidden_act name -> f'(x); the same keys as layers.ACTIVATIONS
    "gelu": d_gelu,
    "gelu_python": d_gelu,
    "gelu_10": d_gelu_10,
    "gelu_fast": d_gelu_fast,
    "gelu_new": d_gelu_tanh,
    "gelu_pytorch_tanh": d_gelu_tanh,
    "gelu_python_tanh": d_gelu_tanh,
    "gelu_accurate": d_gelu_tanh,
    "quick_gelu": d_quick_gelu,
    "silu": d_silu,
    "swish": d_silu,
    "relu": d_relu,
    "relu2": d_relu2,
    "relu6": d_relu6,
    "leaky_relu": d_leaky_relu,
    "selu": d_selu,
    "sigmoid": d_sigmoid,
    "tanh": d_tanh,
    "linear": d_linear,
    "mish": d_mish,
    "hardswish": d_hardswish,
    "laplace": d_laplace,
    "sqrtsoftplus": d_sqrtsoftplus,
}


def activation_backward(dy, x, name):
    """dL/dx = dL/dy * f'(x) for y = layers.activation(x, name). dy, x: the same shape [...]."""
    if name not in DERIVATIVES:
        raise ValueError(f"unknown hidden_act {name!r}; minivivit knows {sorted(DERIVATIVES)}")
    return (dy * DERIVATIVES[name](x)).astype(x.dtype, copy=False)
