"""Scalar float32 maths for the numba kernels: a vectorisable exp, and the activations built on it.

Why: numba here has no SVML (Intel's vector maths library), so `np.exp` inside a numba loop is a
scalar libm call and the loop cannot use AVX. `exp_f32` below is written with only +, *, floor,
conversions, a bit cast and selects, which LLVM turns into 8-wide AVX2 code. Every function is a
scalar `@njit` meant to be called inside a loop of a parallel kernel
(minivivit/kernels/numba/elementwise.py, blocked_attention.py); LLVM inlines it there.

Two compile details decide whether those loops vectorise (see also FASTMATH in elementwise.py):
- error_model="numpy": with numba's default ("python") every division checks for zero to raise
  ZeroDivisionError, and that branch stops vectorisation (GELU was 5x slower). With it, x / 0 = inf.
- numba compiles a callee with its caller's fastmath flags, so these functions must stay accurate
  under reassociation and contraction: no two-constant tricks that the compiler may fold.

Each activation names its NumPy twin in minivivit/layers.py (the specification). Constants are
np.float32 so that numba keeps the arithmetic in float32 (a Python float would promote to float64
and halve the vector width).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

f32 = np.float32


@intrinsic
def float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32: NumPy's `np.int32(bits).view(np.float32)`,
    C's memcpy. Used to build 2**n directly from its exponent field, (n + 127) << 23."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low32 = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low32, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def fmax_f32(typingctx, a, b):
    """max(a, b) ignoring NaN, as np.fmax, through LLVM's maxnum: unlike `max` or `a if a > b else b`,
    LLVM vectorises a reduction loop over it (a row max measured 0.15 instead of 0.42 ns per float)."""
    if a != types.float32 or b != types.float32:
        return None

    def codegen(context, builder, signature, args):
        fl = ir.FloatType()
        maxnum = builder.module.declare_intrinsic("llvm.maxnum", [fl], ir.FunctionType(fl, [fl, fl]))
        return builder.call(maxnum, args)

    return types.float32(types.float32, types.float32), codegen


# exp(x) = 2**n * exp(r), n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2].
# r is computed in float64 (one multiply-subtract, ~1e-14 absolute error): the classic float32 way
# (Cody & Waite's two-constant split of ln2) is silently undone when numba compiles this function
# inside a kernel with fastmath flags (LLVM re-fuses the two constants), costing ~4 ulp.
LOG2E = f32(1.44269504088896341)
LN2_F64 = np.float64(0.6931471805599453)
# Minimax polynomial for (exp(r) - 1 - r) / r**2 on [-ln2/2, ln2/2] (Cephes expf.c, S. Moshier).
P0, P1, P2 = f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3)
P3, P4, P5 = f32(4.1665795894e-2), f32(1.6666665459e-1), f32(5.0000001201e-1)
EXP_HI = f32(88.3762)  # ~127.5 ln2: above this the result is inf (true exp(88.3762) = 2.4e38; FLT_MAX = 3.4e38)
EXP_LO = f32(-87.33654)  # ln(FLT_MIN): below this the result is 0 (true value < 1.2e-38)


@njit(cache=True, error_model="numpy")
def exp_f32(x):
    """e**x for float32 x, within 2 ulp of the correctly rounded value for x in [EXP_LO, EXP_HI].

    NumPy twin: np.exp. Differences: 0 below EXP_LO instead of tiny subnormals; inf above EXP_HI,
    a little before float32 overflows. inf -> inf, -inf -> 0, NaN -> NaN as np.exp. Only +, *,
    floor, conversions, a bit cast and selects, so a loop over it vectorises.
    Tested in tests/kernels/test_numba_kernels.py.
    """
    xc = min(max(x, EXP_LO), EXP_HI)  # clamp so that 2**n below is a normal float32
    n = np.floor(xc * LOG2E + f32(0.5))  # nearest integer to x / ln2, in [-126, 127]
    r = np.float32(np.float64(xc) - np.float64(n) * LN2_F64)  # x - n ln2, |r| <= ln2/2
    p = (((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5) * r * r + r + f32(1.0)  # exp(r)
    y = p * float32_from_bits((np.int32(n) + 127) << 23)  # exp(r) * 2**n, 2**n built from its exponent bits
    y = y if x >= EXP_LO else f32(0.0)  # also -inf -> 0
    y = y if x <= EXP_HI else f32(np.inf)
    return x if np.isnan(x) else y  # NaN in, NaN out


# 2**y = 2**n * 2**f, n = round(y), f = y - n in [-1/2, 1/2] (exact). 2**f = e**(f ln2) by its Taylor
# series to degree 7 (remainder < 1e-9 on the interval, far below float32's 6e-8).
T1, T2, T3, T4 = f32(0.6931471805599453), f32(0.2402265069591007), f32(0.05550410866482158), f32(0.009618129107628477)
T5, T6, T7 = f32(0.0013333558146428443), f32(0.00015403530393381606), f32(1.525273380405984e-05)


@njit(cache=True, error_model="numpy")
def exp2_f32(y):
    """2**y for float32 y, within 1 ulp of the correctly rounded value for y in [-126, 127]; np.exp2.

    Cheaper than exp_f32 (no range reduction by ln2: f = y - round(y) is exact), so softmax works in
    base 2: e**((s - max) / sqrt d) = 2**(s log2(e) / sqrt d - max log2(e) / sqrt d). Outside the range
    the result is 0 (y < -126) or inf (y > 127); NaN stays NaN. Tested in tests/kernels/test_numba_kernels.py.
    """
    yc = min(max(y, f32(-126.0)), f32(127.0))  # clamp so that 2**n is a normal float32
    n = np.floor(yc + f32(0.5))  # nearest integer, in [-126, 127]
    f = yc - n  # in [-1/2, 1/2], exact
    p = f32(1.0) + f * (T1 + f * (T2 + f * (T3 + f * (T4 + f * (T5 + f * (T6 + f * T7))))))  # 2**f
    r = p * float32_from_bits((np.int32(n) + 127) << 23)  # 2**f * 2**n
    r = r if y >= f32(-126.0) else f32(0.0)  # also -inf -> 0
    r = r if y <= f32(127.0) else f32(np.inf)
    return y if np.isnan(y) else r


@njit(cache=True, error_model="numpy")
def sigmoid_f32(x):
    """1 / (1 + e**-x); layers.sigmoid. e**-x overflowing to inf gives exactly 0, as it should."""
    return f32(1.0) / (f32(1.0) + exp_f32(-x))


# ---------------------------------------------------------------------------------------------
# Activations (twins in minivivit/layers.py). The tanh forms use 0.5 (1 + tanh(u)) = sigmoid(2u),
# which is the same function without tanh's cancellation for negative u.
# ---------------------------------------------------------------------------------------------

SQRT_2_OVER_PI = f32(0.7978845608028654)
INV_SQRT2 = f32(0.7071067811865476)
# Numerical Recipes' erfc fit (the float32 branch of layers.erfc_abs), relative error < 1.2e-7.
E0, E1, E2, E3, E4 = f32(-1.26551223), f32(1.00002368), f32(0.37409196), f32(0.09678418), f32(-0.18628806)
E5, E6, E7, E8, E9 = f32(0.27886807), f32(-1.13520398), f32(1.48851587), f32(-0.82215223), f32(0.17087277)


@njit(cache=True, error_model="numpy")
def gelu_f32(x):
    """Exact GELU 0.5 x (1 + erf(x / sqrt 2)); layers.gelu (same erfc fit, same cancellation-free branches)."""
    z = abs(x * INV_SQRT2)
    t = f32(1.0) / (f32(1.0) + f32(0.5) * z)
    poly = E0 + t * (E1 + t * (E2 + t * (E3 + t * (E4 + t * (E5 + t * (E6 + t * (E7 + t * (E8 + t * E9))))))))
    c = t * exp_f32(-z * z + poly)  # erfc(|x| / sqrt 2)
    return f32(0.5) * x * ((f32(2.0) - c) if x >= 0 else c)


@njit(cache=True, error_model="numpy")
def gelu_fast_f32(x):
    """ViViT's default; layers.gelu_fast: 0.5 x (1 + tanh(0.7978845608 x (1 + 0.044715 x^2)))."""
    u = x * f32(0.7978845608) * (f32(1.0) + f32(0.044715) * x * x)
    return x * sigmoid_f32(f32(2.0) * u)


@njit(cache=True, error_model="numpy")
def gelu_tanh_f32(x):
    """HF 'gelu_new' / 'gelu_pytorch_tanh'; layers.gelu_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    u = SQRT_2_OVER_PI * (x + f32(0.044715) * x * x * x)
    return x * sigmoid_f32(f32(2.0) * u)


@njit(cache=True, error_model="numpy")
def quick_gelu_f32(x):
    """x sigmoid(1.702 x); layers.quick_gelu."""
    return x * sigmoid_f32(f32(1.702) * x)


@njit(cache=True, error_model="numpy")
def silu_f32(x):
    """x sigmoid(x); layers.silu."""
    return x * sigmoid_f32(x)


@njit(cache=True, error_model="numpy")
def relu_f32(x):
    """max(x, 0); layers.relu."""
    return x if x > f32(0.0) else f32(0.0)
