"""The fused attention kernel (kernels/numba/fused_attention.py: one parallel region, SciPy's sgemm inside)
against its NumPy twin layers.attention: random shapes, head masks, CLS rows, huge and equal logits, any number
of threads; the backend uses it without maps, and the blocked kernel for maps (full or CLS rows, so that the two
agree bit for bit) or without SciPy's BLAS."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minivivit import layers
from minivivit.kernels import get_backend
from minivivit.kernels.numba import blas, blocked_attention, fused_attention

pytestmark = pytest.mark.skipif(not blas.available(), reason=f"SciPy's cython_blas is not usable: {blas.why_not()}")

TOL_PROBS = (1e-6, 2e-5)  # as tests/kernels/test_numba_kernels.py
TOL_CONTEXT_REL_V = 2e-6


def _close(ours, ref, tol, what):
    atol, rtol = tol
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    excess = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
    assert excess.max() <= 0, f"{what}: max |diff| {np.abs(ours - ref).max():.2e} above tolerance"


def _case(seed, batch, n, heads, d, scale):
    rng = np.random.default_rng(seed)
    return tuple((rng.standard_normal((batch, n, heads * d)) * scale).astype(np.float32) for _ in range(3))


def _check(q, k, v, heads, head_mask, probs, rows):
    c_ref, p_ref = layers.attention(q, k, v, heads, head_mask, probs)
    c, p = fused_attention.attention(q, k, v, heads, head_mask, probs, rows=rows)
    _close(c, c_ref, (TOL_CONTEXT_REL_V * max(1.0, float(np.abs(v).max())), 1e-5), f"context (probs={probs})")
    if probs is None:
        assert p is None
    else:
        _close(p, p_ref, TOL_PROBS, "CLS probabilities")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3), n=st.integers(1, 300), heads=st.integers(1, 4),
       d=st.integers(8, 128), rows=st.integers(1, 80), probs=st.sampled_from([None, "cls"]), masked=st.booleans(),
       scale=st.sampled_from([0.3, 1.0, 2.0]))
def test_fused_attention_matches_reference(seed, batch, n, heads, d, rows, probs, masked, scale):
    """N below, equal to and above the block, odd head sizes, batch > 1, head masks with zeros and 2s."""
    q, k, v = _case(seed, batch, n, heads, d, scale)
    mask = np.random.default_rng(seed).choice([0.0, 0.5, 1.0, 2.0], size=heads).astype(np.float32) if masked else None
    _check(q, k, v, heads, mask, probs, rows)


def test_fused_attention_huge_and_equal_logits():
    q, k, v = _case(5, 2, 37, 2, 8, 1.0)
    c, p = fused_attention.attention(q * 40, k * 40, v, 2, None, "cls", rows=8)  # logits ~1e4: one key wins
    c_ref, p_ref = layers.attention(q * 40, k * 40, v, 2, None, "cls")
    assert np.isfinite(c).all() and np.isfinite(p).all()
    _close(p, p_ref, (1e-5, 1e-3), "probabilities, logits ~1e4")
    _close(c, c_ref, (1e-4 * np.abs(v).max(), 1e-4), "context, logits ~1e4")
    c, p = fused_attention.attention(np.zeros_like(q), k, v, 2, None, "cls")  # all logits 0: uniform weights
    np.testing.assert_allclose(p, 1 / 37, rtol=1e-6)
    np.testing.assert_allclose(c, np.broadcast_to(v.mean(axis=1, keepdims=True), v.shape), rtol=1e-5, atol=1e-6)


def test_a_nan_spreads_as_in_the_reference():
    q, k, v = _case(6, 1, 20, 2, 8, 1.0)
    k[0, 3, :8] = np.nan  # head 0: every query sees a NaN score
    c, _ = fused_attention.attention(q, k, v, 2)
    c_ref, _ = layers.attention(q, k, v, 2)
    np.testing.assert_array_equal(np.isnan(c), np.isnan(c_ref))
    assert np.isnan(c[0, :, :8]).all() and np.isfinite(c[0, :, 8:]).all()


@pytest.mark.parametrize("threads", [1, 2, 5, 64])
def test_any_number_of_threads_gives_the_same_result(threads):
    q, k, v = _case(7, 2, 45, 3, 16, 1.0)
    context = np.empty_like(q)
    with blas.single_threaded():
        fused_attention.attention_(context, np.empty((0, 0, 0), np.float32), q, k, v, 3, np.float32(0.25),
                                   np.ones(3, np.float32), 8, threads, blas.sgemm_address())
    _close(context, layers.attention(q, k, v, 3)[0], (TOL_CONTEXT_REL_V * np.abs(v).max(), 1e-5), f"{threads}")


def test_scipy_blas_threads_are_restored():
    before = blas._STATE["get"]()
    q, k, v = _case(8, 1, 30, 2, 8, 1.0)
    fused_attention.attention(q, k, v, 2)
    assert blas._STATE["get"]() == before


def test_backend_takes_fused_without_maps_blocked_for_maps_or_without_scipy(monkeypatch):
    nb = get_backend("numba")
    calls = []
    for mod, name in ((fused_attention, "fused"), (blocked_attention, "blocked")):
        real = mod.attention
        monkeypatch.setattr(mod, "attention", lambda *a, _r=real, _n=name, **kw: calls.append(_n) or _r(*a, **kw))
    q, k, v = _case(9, 1, 33, 3, 8, 1.0)
    for probs in (None, "cls", "full"):
        c, p = nb.attention(q, k, v, 3, None, probs)
        _close(c, layers.attention(q, k, v, 3)[0], (1e-5, 1e-5), f"backend, {probs}")
    monkeypatch.setattr(blas, "available", lambda: False)
    nb.attention(q, k, v, 3)
    assert calls == ["fused", "blocked", "blocked", "blocked"]  # CLS rows equal full maps' first rows exactly
