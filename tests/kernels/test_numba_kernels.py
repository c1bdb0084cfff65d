"""Every numba kernel against its NumPy twin in minivivit/layers.py: random shapes (hypothesis) and
extreme values. Tolerances are |numba - numpy| <= atol + rtol * |numpy|, stated per kernel below.

float32 everywhere (the kernels' dtype). Reference values come from layers.py or np.exp in float64,
never from the numba code itself.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit, prange

from minivivit import layers
from minivivit.kernels import get_backend
from minivivit.kernels.numba import blocked_attention as numba_attention
from minivivit.kernels.numba import scalar as numba_math
from minivivit.kernels.numba.elementwise import FASTMATH, bias_act_, fused_code, patchify_
from minivivit.tokens import tubelet_grid

nb = get_backend("numba")
FUSED_NAMES = sorted(n for n in layers.ACTIVATIONS if fused_code(n) is not None)  # names with a fused kernel


# Probes: exp_f32 / exp2_f32 element-wise over 1-D arrays, compiled in the same setting (fastmath flags,
# parallel vector loop) as the kernels that call them, so the measured error is the kernels' error.
@njit(parallel=True, fastmath=FASTMATH, error_model="numpy")
def exp_(out, x):
    for i in prange(x.size):
        out[i] = numba_math.exp_f32(x[i])


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy")
def exp2_(out, x):
    for i in prange(x.size):
        out[i] = numba_math.exp2_f32(x[i])

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# atol, rtol per kernel (float32)
TOL_EXP_ULP = 2.0  # exp_f32, exp2_f32: ulps of the correctly rounded float32 result
TOL_ACT = (2e-6, 2e-6)  # activations: same formulas, exp within 2 ulp (layers.activation itself has ~1e-6)
TOL_LINEAR = (1e-5, 1e-5)  # x @ w (+b, +r): one GEMM over M rows vs NumPy's batched matmul (measured <= 1.5e-6)
TOL_LAYER_NORM = (2e-6, 2e-5)  # times cond = max|x| / std(x): the mean's rounding (~eps |x|) is amplified by 1/std
TOL_PROBS = (1e-6, 2e-5)  # softmax probabilities; logits O(10), their rounding moves p by ~|logit| eps
TOL_CONTEXT_REL_V = 2e-6  # context atol, as a fraction of max |v| (context rows are convex mixes of v rows)


def _close(ours, ref, tol, what):
    atol, rtol = tol
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    excess = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else None
    assert excess.size == 0 or excess.max() <= 0, (
        f"{what}: |ours - ref| exceeds {atol} + {rtol}|ref| at {worst}: ours {ours[worst]}, ref {ref[worst]}")


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# exp_f32
# ---------------------------------------------------------------------------------------------


def _ulps(ours, x):
    ref = np.exp(x.astype(np.float64))  # the exact value, to ~1e-16
    return np.abs(ours.astype(np.float64) - ref) / np.spacing(ref.astype(np.float32)).astype(np.float64)


def test_exp_f32_within_2_ulp_over_its_whole_range():
    lo, hi = numba_math.EXP_LO, numba_math.EXP_HI
    x = np.concatenate([np.linspace(lo, hi, 1_000_001, dtype=np.float32),
                        _rng(0).uniform(-1, 1, 200_000).astype(np.float32),  # where softmax spends its time
                        np.float32([0, -0.0, 1e-30, -1e-30, 1, -1])])
    out = np.empty_like(x)
    exp_(out, x)
    ulps = _ulps(out, x)
    assert ulps.max() <= TOL_EXP_ULP, f"exp_f32 is {ulps.max():.2f} ulp off at x = {x[np.argmax(ulps)]}"


def test_exp_f32_special_values():
    x = np.float32([np.inf, -np.inf, np.nan, -1000, 1000, 0, numba_math.EXP_HI * 1.001, numba_math.EXP_LO * 1.001])
    out = np.empty_like(x)
    exp_(out, x)
    np.testing.assert_array_equal(out, np.float32([np.inf, 0, np.nan, 0, np.inf, 1, np.inf, 0]))


def test_exp2_f32_within_2_ulp_over_its_whole_range():
    x = np.concatenate([np.linspace(-126, 127, 1_000_001, dtype=np.float32),
                        _rng(1).uniform(-30, 0, 200_000).astype(np.float32),  # softmax's (s - max) log2(e) / sqrt d
                        np.float32([0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1, -1])])
    out = np.empty_like(x)
    exp2_(out, x)
    ref = np.exp2(x.astype(np.float64))
    ulps = np.abs(out.astype(np.float64) - ref) / np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert ulps.max() <= TOL_EXP_ULP, f"exp2_f32 is {ulps.max():.2f} ulp off at x = {x[np.argmax(ulps)]}"


def test_exp2_f32_special_values():
    x = np.float32([np.inf, -np.inf, np.nan, -1000, 1000, 0, 127.5, -126.5])
    out = np.empty_like(x)
    exp2_(out, x)
    np.testing.assert_array_equal(out, np.float32([np.inf, 0, np.nan, 0, np.inf, 1, np.inf, 0]))


# ---------------------------------------------------------------------------------------------
# Activations fused with the bias add
# ---------------------------------------------------------------------------------------------

EXTREMES = np.float32([-400, -300, -88, -50, -20, -10, -5, -1, -1e-3, 0, 1e-3, 1, 5, 10, 20, 50, 88, 300, 400])


@pytest.mark.parametrize("name", FUSED_NAMES)
def test_bias_act_extreme_values(name):
    body = _rng(1).standard_normal(3000).astype(np.float32) * 4
    y = np.concatenate([body, EXTREMES]).reshape(1, -1)  # [1, F]
    bias = np.zeros(y.shape[1], np.float32)
    ref = layers.activation(y.copy(), name)
    bias_act_(y, bias, fused_code(name))
    assert np.isfinite(y).all()
    _close(y, ref, TOL_ACT, name)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 40), f=st.integers(1, 300),
       name=st.sampled_from(FUSED_NAMES))
def test_bias_act_random_shapes(seed, m, f, name):
    rng = _rng(seed)
    y = (rng.standard_normal((m, f)) * 3).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    ref = layers.activation(y + bias, name)
    bias_act_(y, bias, fused_code(name))
    _close(y, ref, TOL_ACT, name)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), n=st.integers(1, 50), d_in=st.integers(1, 70),
       d_out=st.integers(1, 90), name=st.sampled_from(sorted(layers.ACTIVATIONS)))
def test_linear_act_matches_reference(seed, batch, n, d_in, d_out, name):
    """Every activation name: fused ones run bias_act_, the others fall back to layers.activation."""
    rng = _rng(seed)
    x = rng.standard_normal((batch, n, d_in)).astype(np.float32)
    w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
    b = rng.standard_normal(d_out).astype(np.float32)
    ours = nb.linear_act(x, w, b, name)
    assert ours.dtype == np.float32
    _close(ours, layers.linear_act(x, w, b, name), TOL_LINEAR, name)


def test_linear_act_unknown_name_is_the_reference_error():
    with pytest.raises(ValueError, match="unknown activation 'gelu_bogus'"):
        nb.linear_act(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32), np.zeros(4, np.float32), "gelu_bogus")


# ---------------------------------------------------------------------------------------------
# linear, layer_norm, tubelet_embed
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), n=st.integers(1, 60), d_in=st.integers(1, 80),
       d_out=st.integers(1, 80), bias=st.booleans())
def test_linear_matches_reference(seed, batch, n, d_in, d_out, bias):
    rng = _rng(seed)
    x = rng.standard_normal((batch, n, d_in)).astype(np.float32)
    w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
    b = rng.standard_normal(d_out).astype(np.float32) if bias else None
    _close(nb.linear(x, w, b), layers.linear(x, w, b), TOL_LINEAR, "linear")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), n=st.integers(1, 60), d=st.integers(1, 80),
       broadcast=st.booleans())
def test_add_matches_reference(seed, batch, n, d, broadcast):
    """Residuals ([B, N, D] + [B, N, D]) and positions over the batch ([B, N, D] + [N, D]): exact sums."""
    rng = _rng(seed)
    a = rng.standard_normal((batch, n, d)).astype(np.float32)
    b = rng.standard_normal((n, d) if broadcast else (batch, n, d)).astype(np.float32)
    np.testing.assert_array_equal(nb.add(a, b), layers.add(a, b))


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activation_alone_matches_reference(name):
    """The unfused activation op (used when a trace asks for fc1 and act): fused kernel or the reference."""
    x = np.concatenate([_rng(3).standard_normal(500).astype(np.float32) * 4, EXTREMES]).reshape(3, -1)
    before = x.copy()
    ours = nb.activation(x, name)
    np.testing.assert_array_equal(x, before)  # the input is not changed in place
    assert ours.dtype == np.float32
    _close(ours, layers.activation(x, name), TOL_ACT, name)


def test_linear_on_a_strided_cls_slice():
    """The model calls linear(x[:, 0], ...) for the head: a non-contiguous [B, D] view."""
    rng = _rng(2)
    x = rng.standard_normal((3, 7, 16)).astype(np.float32)
    w, b = rng.standard_normal((16, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    _close(nb.linear(x[:, 0], w, b), layers.linear(x[:, 0], w, b), TOL_LINEAR, "linear on x[:, 0]")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), n=st.integers(1, 40), d=st.integers(1, 800),
       shift=st.sampled_from([0.0, 5.0, -100.0]), scale=st.sampled_from([1e-2, 1.0, 30.0]),
       eps=st.sampled_from([1e-6, 1e-12, 1e-3]))
def test_layer_norm_matches_reference(seed, batch, n, d, shift, scale, eps):
    rng = _rng(seed)
    x = (rng.standard_normal((batch, n, d)) * scale + shift).astype(np.float32)
    g = (1 + rng.standard_normal(d)).astype(np.float32)
    b = rng.standard_normal(d).astype(np.float32)
    x64 = x.astype(np.float64)
    std = x64.std(axis=-1, keepdims=True)  # [batch, n, 1]; 0 when d = 1 (then both give b exactly)
    cond = np.abs(x64).max(axis=-1, keepdims=True) / np.where(std > 0, std, np.inf)  # up to 1e4 here
    atol = TOL_LAYER_NORM[0] * np.maximum(cond, 1) * np.abs(g).max()  # [batch, n, 1]
    _close(nb.layer_norm(x, g, b, eps), layers.layer_norm(x, g, b, eps), (atol, TOL_LAYER_NORM[1]), "layer_norm")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), tubelet=st.tuples(*[st.integers(1, 4)] * 3),
       grid=st.tuples(*[st.integers(1, 4)] * 3), extra=st.tuples(*[st.integers(0, 2)] * 3), d=st.integers(1, 40))
def test_tubelet_embed_matches_reference(seed, batch, tubelet, grid, extra, d):
    """Odd tubelets, clips that do not divide evenly (the remainder is dropped, as Conv3d does), batch > 1."""
    rng = _rng(seed)
    T, H, W = (g * t + e for g, t, e in zip(grid, tubelet, extra))
    pixels = rng.standard_normal((batch, T, 3, H, W)).astype(np.float32)
    K = tubelet[0] * tubelet[1] * tubelet[2] * 3
    w, b = rng.standard_normal((K, d)).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    ref_patches = layers.patchify(pixels, tubelet)  # [B, P, K]
    patches = np.empty((ref_patches.shape[0] * ref_patches.shape[1], K), np.float32)
    patchify_(patches, pixels, tuple(tubelet), tubelet_grid((T, H, W), tubelet))
    np.testing.assert_array_equal(patches, ref_patches.reshape(-1, K))  # a pure copy: exact
    _close(nb.tubelet_embed(pixels, w, b, tubelet), layers.tubelet_embed(pixels, w, b, tubelet), TOL_LINEAR,
           "tubelet_embed")


# ---------------------------------------------------------------------------------------------
# Attention: blocked softmax and products
# ---------------------------------------------------------------------------------------------


def _attention_case(rng, batch, n, heads, d, scale):
    q, k, v = ((rng.standard_normal((batch, n, heads * d)) * scale).astype(np.float32) for _ in range(3))
    return q, k, v


def _check_attention(q, k, v, heads, head_mask, probs, block):
    c_ref, p_ref = layers.attention(q, k, v, heads, head_mask, probs)
    c, p = numba_attention.attention(q, k, v, heads, head_mask, probs, block=block)
    atol = TOL_CONTEXT_REL_V * max(1.0, float(np.abs(v).max()))
    _close(c, c_ref, (atol, 1e-5), f"attention context (probs={probs})")
    if probs is None:
        assert p is None
    else:
        _close(p, p_ref, TOL_PROBS, f"attention probabilities ({probs})")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), n=st.integers(1, 150), heads=st.integers(1, 4),
       d=st.integers(8, 128), block=st.integers(1, 64), probs=st.sampled_from([None, "full", "cls"]),
       masked=st.booleans(), scale=st.sampled_from([0.3, 1.0, 2.0]))
def test_attention_matches_reference(seed, batch, n, heads, d, block, probs, masked, scale):
    """Odd N, N below and above the block size, one head, head_dim 8..128, batch > 1, head masks with zeros."""
    rng = _rng(seed)
    q, k, v = _attention_case(rng, batch, n, heads, d, scale)
    head_mask = None
    if masked:
        head_mask = rng.choice([0.0, 0.5, 1.0, 2.0], size=heads).astype(np.float32)
    _check_attention(q, k, v, heads, head_mask, probs, block)


@pytest.mark.parametrize("block", [1, 7, 256])
def test_attention_blocks_that_do_not_divide_n(block):
    rng = _rng(3)
    q, k, v = _attention_case(rng, 2, 61, 3, 16, 1.0)
    for probs in (None, "full", "cls"):
        _check_attention(q, k, v, 3, None, probs, block)


def test_softmax_rows_extreme_logits():
    """Huge logits (no overflow), equal logits (uniform), -inf entries (weight 0), one dominant logit."""
    rows = np.array([
        [1e30, 0, -1e30, 3, 1e30 - 1e24],
        [5, 5, 5, 5, 5],
        [-3e38, -3e38, -3e38, -3e38, -3e38],
        [-np.inf, 0, 1, -np.inf, 2],
        [1e4, 0, -1e4, 3, 2],
        [88, -88, 87, 0, 1],
    ], np.float32)
    for scale in (np.float32(1.0), np.float32(0.125)):
        ref = layers.softmax(rows * scale)
        ours = rows.copy()
        numba_attention.softmax_rows_(ours, scale, np.float32(1.0))
        assert np.isfinite(ours).all()
        _close(ours, ref, TOL_PROBS, f"softmax_rows_ (scale {scale})")
        np.testing.assert_allclose(ours.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ours[1], np.full(5, 0.2, np.float32))


def test_softmax_rows_gain_multiplies_probabilities():
    rows = _rng(4).standard_normal((3, 9)).astype(np.float32)
    for gain in (0.0, 0.5, 3.0):
        ours = rows.copy()
        numba_attention.softmax_rows_(ours, np.float32(1.0), np.float32(gain))
        _close(ours, layers.softmax(rows) * np.float32(gain), TOL_PROBS, f"softmax_rows_ gain {gain}")


def test_attention_with_huge_logits_matches_reference():
    """q, k scaled so that logits reach ~1e4: one key takes all the weight, nothing overflows."""
    rng = _rng(5)
    q, k, v = _attention_case(rng, 2, 37, 2, 8, 1.0)
    q, k = q * 40, k * 40
    c, p = numba_attention.attention(q, k, v, 2, None, "full", block=8)
    c_ref, p_ref = layers.attention(q, k, v, 2, None, "full")
    assert np.isfinite(c).all() and np.isfinite(p).all()
    _close(p, p_ref, (1e-5, 1e-3), "probabilities, logits ~1e4")  # logit rounding ~1e4 * eps moves p by ~1e-3 rel
    _close(c, c_ref, (1e-4 * np.abs(v).max(), 1e-4), "context, logits ~1e4")


# ---------------------------------------------------------------------------------------------
# Dtypes other than float32 go to the reference unchanged
# ---------------------------------------------------------------------------------------------


def test_float64_inputs_use_the_numpy_reference_exactly():
    rng = _rng(6)
    x = rng.standard_normal((2, 5, 8))
    w, b = rng.standard_normal((8, 8)), rng.standard_normal(8)
    np.testing.assert_array_equal(nb.linear(x, w, b), layers.linear(x, w, b))
    np.testing.assert_array_equal(nb.linear_act(x, w, b, "gelu_fast"), layers.linear_act(x, w, b, "gelu_fast"))
    np.testing.assert_array_equal(nb.layer_norm(x, b, b, 1e-6), layers.layer_norm(x, b, b, 1e-6))
    c, p = nb.attention(x, x, x, 2, None, "full")
    c_ref, p_ref = layers.attention(x, x, x, 2, None, "full")
    np.testing.assert_array_equal(c, c_ref)
    np.testing.assert_array_equal(p, p_ref)
