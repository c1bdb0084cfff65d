"""The numba backend through the whole model: equal to the numpy backend (outputs, attention maps,
head masks, captured layers, resized clips), and never allocating an N x N array unless asked.

Parity with HF transformers for backend="numba" is in tests/parity/test_parity_hf.py (its matrix and the full
ViViT-B test run every backend). These tests need no torch: random weights are made here.
"""

import tracemalloc

import conftest
import numpy as np
import pytest

from minivivit.kernels.numba import blocked_attention as numba_attention

# numba vs numpy backend, float32: |numba - numpy| <= atol + rtol |numpy|
TOL_HIDDEN = (2e-5, 2e-5)  # hidden states / logits, O(1) after 2 blocks
TOL_PROBS = (1e-6, 1e-4)  # attention probabilities (rtol: tiny probabilities carry their logits' rounding)


def random_model(seed=0, dtype=np.float32, **overrides):
    """The tiny model on a larger clip: N = 4*16*16 + 1 = 1025 tokens, more than one QUERY_BLOCK."""
    return conftest.random_model(seed, dtype, **{"image_size": 64, "tubelet_size": (1, 4, 4), **overrides})


def clip(config, batch=2, seed=1, frames=None, size=None):
    return conftest.random_clip(config, batch, seed, frames, size)


def _close(ours, ref, tol, what):
    atol, rtol = tol
    err = np.abs(ours.astype(np.float64) - ref) - (atol + rtol * np.abs(ref.astype(np.float64)))
    assert err.max() <= 0, f"{what}: numba differs from numpy by more than {atol} + {rtol}|numpy|"


def test_config_spans_more_than_one_query_block():
    assert random_model().config.num_patches + 1 > numba_attention.QUERY_BLOCK


@pytest.mark.parametrize("kind", ["full", "cls"])
def test_numba_equals_numpy_backend_with_attention(kind):
    model = random_model()
    x = clip(model.config)
    ref = model(x, backend="numpy", output_attentions=kind, output_hidden_states=True)
    ours = model(x, backend="numba", output_attentions=kind, output_hidden_states=True)
    _close(ours.logits, ref.logits, TOL_HIDDEN, "logits")
    _close(ours.last_hidden_state, ref.last_hidden_state, TOL_HIDDEN, "last_hidden_state")
    for i, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states)):
        _close(a, b, TOL_HIDDEN, f"hidden_states[{i}]")
    N, nh = model.config.num_patches + 1, model.config.num_attention_heads
    for i, (a, b) in enumerate(zip(ours.attentions, ref.attentions)):
        assert a.shape == b.shape == ((2, nh, N, N) if kind == "full" else (2, nh, N))
        _close(a, b, TOL_PROBS, f"attentions[{i}] ({kind})")


def test_numba_cls_rows_are_the_first_rows_of_the_full_maps():
    model = random_model(seed=2)
    x = clip(model.config, seed=3)
    full = model(x, backend="numba", output_attentions=True).attentions
    cls = model(x, backend="numba", output_attentions="cls").attentions
    for f, c in zip(full, cls):
        np.testing.assert_array_equal(f[:, :, 0, :], c)


def test_numba_head_mask_equals_numpy():
    """head_mask multiplies each head's probabilities (HF v4 semantics), zeros included."""
    model = random_model(seed=4)
    x = clip(model.config, seed=5)
    mask = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 1.0]], np.float32)  # [L, nh]
    ref = model(x, backend="numpy", head_mask=mask, output_attentions=True)
    ours = model(x, backend="numba", head_mask=mask, output_attentions=True)
    _close(ours.logits, ref.logits, TOL_HIDDEN, "logits with head_mask")
    for a, b in zip(ours.attentions, ref.attentions):
        _close(a, b, TOL_PROBS, "masked attentions")
    assert not ours.attentions[0][:, 1].any() and not ours.attentions[1][:, 0].any()
    unmasked = model(x, backend="numba").logits
    assert np.abs(unmasked - ours.logits).max() > 1e-3  # the mask changes the answer


def test_numba_selected_layers_dtype_and_resized_clip():
    model = random_model(seed=6)
    x = clip(model.config, frames=6, size=(24, 40), seed=7)  # another grid: position embeddings resized
    ref = model(x, backend="numpy", interpolate_pos_encoding=True, output_attentions="cls",
                attention_layers=[-1], attention_dtype=np.float16)
    ours = model(x, backend="numba", interpolate_pos_encoding=True, output_attentions="cls",
                 attention_layers=[-1], attention_dtype=np.float16)
    assert ours.attentions[0] is None and ours.attentions[1].dtype == np.float16
    _close(ours.logits, ref.logits, TOL_HIDDEN, "logits, resized clip")
    np.testing.assert_allclose(ours.attentions[1].astype(np.float32), ref.attentions[1].astype(np.float32),
                               atol=1e-3, rtol=1e-3)  # float16 rounding


def test_numba_float64_model_is_the_numpy_reference():
    model = random_model(seed=8, dtype=np.float64)
    x = clip(model.config, seed=9)
    np.testing.assert_array_equal(model(x, backend="numba").logits, model(x, backend="numpy").logits)


# ---------------------------------------------------------------------------------------------
# Memory: no N x N array without attention output
# ---------------------------------------------------------------------------------------------


def _traced_peak(fn) -> int:
    """Peak bytes allocated through Python/NumPy while fn runs (tracemalloc sees every NumPy array)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_forward_without_attention_output_never_allocates_n_by_n():
    """N = 3073 tokens (ViViT-B's length), D = 16, one head: one N x N float32 map (37.8 MB) would dwarf
    every other array (the clip is 2.4 MB, activations 0.2 MB); a block of scores is a third of it."""
    model = random_model(seed=10, image_size=64, num_frames=12, hidden_size=16, num_attention_heads=1,
                         intermediate_size=32, num_hidden_layers=1)
    N = model.config.num_patches + 1
    n_by_n = N * N * 4
    x = clip(model.config, batch=1, seed=11)
    model(x[:, :2], backend="numba", interpolate_pos_encoding=True)  # compile outside the measurement
    peak_numba = _traced_peak(lambda: model(x, backend="numba"))
    peak_numpy = _traced_peak(lambda: model(x, backend="numpy"))
    peak_full = _traced_peak(lambda: model(x, backend="numba", output_attentions=True))
    assert peak_numpy > n_by_n  # the measure sees N x N arrays: numpy makes [1, 1, N, N] scores
    assert peak_full >= n_by_n  # and ours when the maps are asked for
    rows = -(-N // -(-N // numba_attention.QUERY_BLOCK))  # rows per block, as numba_attention.attention
    block_bytes = rows * N * 4
    assert peak_numba < n_by_n / 2, f"numba forward peaked at {peak_numba / 1e6:.1f} MB; N x N is {n_by_n / 1e6:.1f} MB"
    assert peak_numba < 1.5 * block_bytes, f"{peak_numba / 1e6:.1f} MB; one score block is {block_bytes / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------------
# `minivivit bench` on a tiny config: every backend runs, on the same weights
# ---------------------------------------------------------------------------------------------


def test_bench_command_smoke(capsys):
    pytest.importorskip("torch", reason="the benchmark compares with HF transformers (dev extra)")
    import json

    from minivivit.cli import main

    assert main(["bench", "--layers", "1", "--frames", "4", "--image-size", "32", "--repeats", "1",
                 "--peak-seconds", "0.2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    results = report["results"]
    from minivivit.bench.harness import default_backends

    assert list(results) == default_backends().split(",")  # every contender whose libraries are installed
    assert list(results)[:4] == ["numpy", "numba", "hf-sdpa", "hf-eager"]
    assert all(r["logits_ok"] for r in results.values()), {k: r["logits_rel_err"] for k, r in results.items()}
    assert results["hf-sdpa"]["ratio_to_hf_sdpa"] == 1.0
    for name, r in results.items():
        assert r["median_s"] > 0 and r["peak_rss_mb"] > 50 and r["gflops"] > 0, name
    # every process loaded the same weights and clip: the logits agree across backends
    ref = np.array(results["hf-eager"]["logits_head"])
    for name in [n for n in results if n != "hf-eager"]:
        np.testing.assert_allclose(results[name]["logits_head"], ref, atol=1e-4, rtol=1e-4, err_msg=name)
    assert "capture_cls_all_layers_overhead" in results["numba"]
    assert "capture_cls_all_layers_s" not in results["hf-sdpa"]  # HF backends: no capture timings
    assert report["numba_jit"]["cold_first_call_s"] > 0 and report["gemm_peak"]["gflops"] > 0
    assert report["flops"]["gflop"] > 0


def test_bench_flop_count_of_vivit_b_is_903_gflop():
    from minivivit.bench.harness import forward_flops, vivit_b

    assert round(forward_flops(vivit_b())["gflop"], 1) == 903.0


def test_bench_rejects_unknown_backends():
    from minivivit.cli import main

    assert main(["bench", "--backends", "numpy,tensorflow"]) == 2


def test_threading_layer_default_and_override():
    """workqueue unless NUMBA_THREADING_LAYER says otherwise (kernels/numba/__init__.py explains why)."""
    import os
    import subprocess
    import sys

    run = ("import numpy as np, numba; from minivivit.kernels import get_backend; nb = get_backend('numba'); "
           "nb.layer_norm(np.ones((2, 3), np.float32), np.ones(3, np.float32), np.zeros(3, np.float32), 1e-6); "
           "print(numba.threading_layer())")
    configured = ("import numba; from minivivit.kernels import get_backend; get_backend('numba'); "
                  "print(numba.config.THREADING_LAYER)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    default = subprocess.run([sys.executable, "-c", run], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.split()[-1] == "workqueue"
    user = subprocess.run([sys.executable, "-c", configured], env=dict(env, NUMBA_THREADING_LAYER="omp"),
                          capture_output=True, text=True, check=True)
    assert user.stdout.split()[-1] == "omp"  # the user's choice is left alone
