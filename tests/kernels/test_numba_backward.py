"""The numba backward kernels against their NumPy twins in minivivit/grad/: random shapes (hypothesis)
and extreme values. The twins are the specification; the reference values come from them (in float64
where stated), never from the numba code. Errors are measured as max |numba - twin| / max(1, max |twin|),
the parity suite's measure, unless stated otherwise.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minivivit import layers
from minivivit.grad.activations import activation_backward
from minivivit.grad.attention import attention_backward
from minivivit.grad.fast import backward_ops
from minivivit.grad.layers import layer_norm_backward
from minivivit.kernels.numba import attention_backward as kattn
from minivivit.kernels.numba import backward_elementwise as kel
from minivivit.kernels.numba.elementwise import fused_code

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUSED_NAMES = sorted(n for n in layers.ACTIVATIONS if fused_code(n) is not None)
fast = backward_ops("numba")


def rel(ours, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(ours, np.float64) - ref).max() / max(1.0, np.abs(ref).max()))


# ---- activation derivatives ------------------------------------------------------------------


@pytest.mark.parametrize("name", FUSED_NAMES)
@SETTINGS
@given(M=st.integers(1, 40), F=st.integers(1, 70), seed=st.integers(0, 2**31 - 1), spread=st.sampled_from([1, 5, 30]))
def test_activation_backward_equals_twin(name, M, F, seed, spread):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((M, F)) * spread).astype(np.float32)
    dy = rng.standard_normal((M, F)).astype(np.float32)
    ref = activation_backward(dy.astype(np.float64), x.astype(np.float64), name)  # float64 twin
    ours = kel.activation_backward(dy, x, fused_code(name))
    assert ours.dtype == np.float32 and ours.shape == x.shape
    assert rel(ours, ref) <= 2e-6, name


@pytest.mark.parametrize("name", FUSED_NAMES)
def test_activation_backward_extreme_values(name):
    """+-300 and beyond (GELU's tails), 0 (relu's kink), tiny values, +-inf: finite where the twin is finite,
    equal to the float32 twin to 2e-6 (relative to max(1, |twin|)) elementwise."""
    x = np.array([-1e4, -300, -88, -20, -5.5, -1, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 1, 3, 5.5, 20, 88, 300, 1e4],
                 np.float32)[None]  # [1, 18]
    dy = np.ones_like(x) * np.float32(3.0)
    ref = activation_backward(dy, x, name)
    ours = kel.activation_backward(dy, x, fused_code(name))
    assert np.array_equal(np.isfinite(ours), np.isfinite(ref)), (name, ours, ref)
    err = np.abs(ours.astype(np.float64) - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 2e-6, (name, x[err > 2e-6], ours[err > 2e-6], ref[err > 2e-6])


def test_activation_backward_leaves_dy_alone_and_falls_back():
    x = np.linspace(-4, 4, 30, dtype=np.float32).reshape(3, 10)
    dy = np.ones_like(x)
    fast.activation_backward(dy, x, "gelu_fast")
    assert np.all(dy == 1.0)  # a new array; dy untouched
    # no fused kernel (mish) and float64: exactly the NumPy twin
    assert np.array_equal(fast.activation_backward(dy, x, "mish"), activation_backward(dy, x, "mish"))
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    assert np.array_equal(fast.activation_backward(dy64, x64, "gelu"), activation_backward(dy64, x64, "gelu"))
    with pytest.raises(ValueError, match="unknown activation"):
        fast.activation_backward(dy, x, "gelu_typo")


# ---- LayerNorm backward ------------------------------------------------------------------------


@SETTINGS
@given(M=st.integers(1, 300), D=st.integers(1, 100), chunks=st.sampled_from([1, 3, 64]), seed=st.integers(0, 2**31 - 1),
       offset=st.sampled_from([0.0, 50.0]), eps=st.sampled_from([1e-12, 1e-6, 1e-3]))
def test_layer_norm_backward_equals_twin(M, D, chunks, seed, offset, eps):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((M, D)) * rng.uniform(0.1, 10) + offset).astype(np.float32)
    dy = rng.standard_normal((M, D)).astype(np.float32)
    g = rng.standard_normal(D).astype(np.float32)
    ref = layer_norm_backward(dy.astype(np.float64), x.astype(np.float64), g.astype(np.float64), eps)  # float64 twin
    ref32 = layer_norm_backward(dy, x, g, eps)  # the float32 twin: the kernel must not be worse than it
    ours = kel.layer_norm_backward(dy, x, g, eps, chunks=chunks)
    for o, r, r32, what in zip(ours, ref, ref32, ("dx", "dg", "db")):
        assert o.dtype == np.float32 and o.shape == r.shape
        assert rel(o, r) <= max(1e-5, 4 * rel(r32, r)), what


def test_layer_norm_backward_extreme_rows():
    """A constant row (variance 0: rstd = 1/sqrt(eps)), a huge offset, huge and tiny dy, 3-d input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 16)).astype(np.float32)
    x[0, 0] = 7.0  # constant row
    x[0, 1] = 1e4 + x[0, 1]  # large offset
    x[1, 2] *= 1e-4
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dy[1, 3] *= 1e6
    dy[1, 4] *= 1e-6
    g = rng.standard_normal(16).astype(np.float32)
    for eps in (1e-12, 1e-5):
        ref = layer_norm_backward(dy.astype(np.float64), x.astype(np.float64), g.astype(np.float64), eps)
        ref32 = layer_norm_backward(dy, x, g, eps)
        ours = fast.layer_norm_backward(dy, x, g, eps)
        assert ours[0].shape == x.shape and np.all(np.isfinite(ours[0]))
        for o, r, r32 in zip(ours, ref, ref32):
            assert rel(o, r) <= max(1e-5, 4 * rel(r32, r))


# ---- attention backward ------------------------------------------------------------------------


def _attention_case(rng, B, N, nh, d, scale=1.0, masked=False):
    q, k, v, dc = (rng.standard_normal((B, N, nh * d)).astype(np.float32) for _ in range(4))
    q *= np.float32(scale)
    hm = None
    if masked:
        hm = rng.choice(np.array([0.0, 0.5, 1.0, 2.0], np.float32), nh)
    context, _ = layers.attention(q, k, v, nh, hm)  # [B, N, D], the forward's output
    return q, k, v, dc, context.astype(np.float32), hm


@SETTINGS
@given(B=st.integers(1, 2), N=st.integers(1, 60), nh=st.integers(1, 4), d=st.integers(1, 20), block=st.integers(1, 70),
       masked=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_attention_backward_equals_twin(B, N, nh, d, block, masked, seed):
    rng = np.random.default_rng(seed)
    q, k, v, dc, context, hm = _attention_case(rng, B, N, nh, d, masked=masked)
    f64 = [a.astype(np.float64) for a in (dc, q, k, v)]
    ref = attention_backward(*f64, nh, None if hm is None else hm.astype(np.float64))  # float64 twin
    ours = kattn.attention_backward(dc, q, k, v, context, nh, hm, block=block)
    for o, r, what in zip(ours, ref, ("dq", "dk", "dv")):
        assert o.dtype == np.float32 and o.shape == r.shape
        assert rel(o, r) <= 1e-5, what


@pytest.mark.parametrize("case", ["saturated", "equal-logits", "one-token", "masked-head"])
def test_attention_backward_extreme(case):
    """Huge logits (softmax one-hot: q scaled by 1e3), all logits equal (q = 0: P = 1/N), N = 1, a head
    with mask 0 (every gradient exactly 0). Against the float64 twin, within 1e-5 or 4x the float32 twin's
    own error (with q ~ 1e3, dK = dS^T Q s carries float32's rounding of dS times |Q|)."""
    rng = np.random.default_rng(1)
    N = 1 if case == "one-token" else 45
    q, k, v, dc, context, hm = _attention_case(rng, 2, N, 3, 8, scale=1e3 if case == "saturated" else 1.0)
    if case == "equal-logits":
        q[:] = 0
        context, _ = layers.attention(q, k, v, 3)
    if case == "masked-head":
        hm = np.array([1.0, 0.0, 0.7], np.float32)
        context, _ = layers.attention(q, k, v, 3, hm)
    ref = attention_backward(*(a.astype(np.float64) for a in (dc, q, k, v)), 3,
                             None if hm is None else hm.astype(np.float64))
    ref32 = attention_backward(dc, q, k, v, 3, hm)  # the float32 twin: its own rounding sets the bar
    ours = kattn.attention_backward(dc, q, k, v, context, 3, hm, block=16)
    for o, r, r32, what in zip(ours, ref, ref32, ("dq", "dk", "dv")):
        assert np.all(np.isfinite(o)), what
        assert rel(o, r) <= max(1e-5, 4 * rel(r32, r)), (case, what, rel(o, r), rel(r32, r))
    if case == "masked-head":
        assert all(np.all(o[..., 8:16] == 0) for o in ours)


def test_attention_backward_routing_falls_back_for_dA_and_float64():
    """grad/fast.py: with on_probs (dL/dA wanted) or float64 the NumPy twin runs (its results exactly)."""
    rng = np.random.default_rng(2)
    q, k, v, dc, context, hm = _attention_case(rng, 1, 12, 2, 4, masked=True)
    seen = []
    got = fast.attention_backward(dc, q, k, v, 2, hm, None, lambda h, a, da: seen.append(h), context=context)
    ref = attention_backward(dc, q, k, v, 2, hm)
    assert seen == [0, 1] and all(np.array_equal(a, b) for a, b in zip(got, ref))
    f64 = [a.astype(np.float64) for a in (dc, q, k, v, context)]
    got = fast.attention_backward(*f64[:4], 2, hm, context=f64[4])
    assert all(np.array_equal(a, b) for a, b in zip(got, attention_backward(*f64[:4], 2, hm)))
    got = fast.attention_backward(dc, q, k, v, 2, hm, context=context)  # the kernel
    assert all(rel(a, b) <= 1e-5 for a, b in zip(got, ref))
