"""Live parity with HF transformers (v5): logits, pooler, every hidden state, every attention map.

Measure: max |ours - HF| / max(1, max |HF|) <= 1e-5 on small configs, <= 1e-4 at full ViViT-B size.
"""

import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import hf_forward, random_clip, random_hf_model, rel_err, to_minivivit

TOL_SMALL, TOL_FULL = 1e-5, 1e-4

# (name, overrides): each activation, qkv_bias off, odd eps, odd tubelets, odd head counts
CONFIGS = [
    ("gelu_fast-default", {}),
    ("gelu", {"hidden_act": "gelu"}),
    ("gelu_new", {"hidden_act": "gelu_new"}),
    ("gelu_pytorch_tanh", {"hidden_act": "gelu_pytorch_tanh"}),
    ("quick_gelu", {"hidden_act": "quick_gelu"}),
    ("silu", {"hidden_act": "silu"}),
    ("relu", {"hidden_act": "relu"}),
    ("gelu_accurate", {"hidden_act": "gelu_accurate"}),
    ("mish", {"hidden_act": "mish"}),
    ("no-qkv-bias", {"qkv_bias": False}),
    ("eps-1e-3", {"layer_norm_eps": 1e-3}),
    ("tubelet-3x16x16", {"tubelet_size": [3, 16, 16], "num_frames": 6}),
    ("tubelet-1x4x4", {"tubelet_size": [1, 4, 4], "num_frames": 3, "image_size": 12}),
    ("5-heads", {"num_attention_heads": 5, "hidden_size": 40}),
    ("1-head-3-layers", {"num_attention_heads": 1, "num_hidden_layers": 3}),
    ("non-square", {"image_size": [32, 48], "tubelet_size": [2, 8, 16]}),
]


def _compare_all(ours, ref, tol, kind):
    errs = {}
    if kind == "classifier":
        errs["logits"] = rel_err(ours.logits, ref.logits)
    else:
        errs["last_hidden_state"] = rel_err(ours.last_hidden_state, ref.last_hidden_state)
        if ref.pooler_output is not None:
            errs["pooler_output"] = rel_err(ours.pooler_output, ref.pooler_output)
        else:
            assert ours.pooler_output is None
    assert len(ours.hidden_states) == len(ref.hidden_states)
    for i, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states)):
        errs[f"hidden_states[{i}]"] = rel_err(a, b)
    assert len(ours.attentions) == len(ref.attentions)
    for i, (a, b) in enumerate(zip(ours.attentions, ref.attentions)):
        errs[f"attentions[{i}]"] = rel_err(a, b)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"parity failures (tol {tol}): {bad}"
    return errs


BACKENDS = ["numpy", "numba"]  # the cuda backend has its own parity tests (tests/kernels/test_cuda_backend.py)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["classifier", "base"])
@pytest.mark.parametrize("name,overrides", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_parity_matrix(name, overrides, kind, backend):
    hf = random_hf_model(kind, seed=zlib.crc32(name.encode()) % 1000, **overrides)  # (hash() varies per process)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=1)
    ref = hf_forward(hf, x, output_hidden_states=True, output_attentions=True)
    ours = model(x, backend=backend, output_hidden_states=True, output_attentions=True)
    _compare_all(ours, ref, TOL_SMALL, kind)


def test_base_model_without_pooler():
    hf = random_hf_model("base", seed=3, add_pooling_layer=False)
    model = to_minivivit(hf)
    assert "pooler" not in model.params and not model.has_head
    x = random_clip(model.config, seed=2)
    ours = model(x, output_hidden_states=True, output_attentions=True)
    _compare_all(ours, hf_forward(hf, x, output_hidden_states=True, output_attentions=True), TOL_SMALL, "base")


def test_parity_detects_a_planted_bug():
    """The parity measure must be able to fail: swap two heads' query weights and expect a failure."""
    hf = random_hf_model("classifier", seed=5)
    model = to_minivivit(hf)
    w = model.params["blocks"][1]["attn"]["q"]["w"]
    d = model.config.head_dim
    w[:, :d], w[:, d:2 * d] = w[:, d:2 * d].copy(), w[:, :d].copy()
    x = random_clip(model.config, seed=1)
    ref = hf_forward(hf, x, output_hidden_states=True, output_attentions=True)
    with pytest.raises(AssertionError, match="attentions\\[1\\]"):
        _compare_all(model(x, output_hidden_states=True, output_attentions=True), ref, TOL_SMALL, "classifier")


def test_cls_row_attention_equals_full_row():
    hf = random_hf_model("classifier", seed=7)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=3)
    full = model(x, output_attentions=True).attentions
    cls = model(x, output_attentions="cls").attentions
    for f, c in zip(full, cls):
        np.testing.assert_array_equal(f[:, :, 0, :], c)
    sel = model(x, output_attentions="cls", attention_layers=[-1], attention_dtype=np.float16).attentions
    assert sel[0] is None and sel[1].dtype == np.float16


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["classifier", "base"])
def test_parity_full_vivit_b(kind):
    """The real ViViT-B shape: 12 layers, D=768, 32x224x224 clip, 3137 tokens, random weights."""
    from minivivit.bench.harness import vivit_b  # ViViTConfig's defaults are ViViT-B

    hf = random_hf_model(kind, seed=11, **vivit_b())
    model = to_minivivit(hf)
    x = random_clip(model.config, seed=4)
    ref = hf_forward(hf, x, output_hidden_states=True)
    errs = {}
    for backend in BACKENDS:  # one HF forward (the slow part), compared with every backend
        ours = model(x, backend=backend, output_hidden_states=True)
        errs.update({f"{backend}: {k}": v for k, v in _full_vivit_b_errors(ours, ref, kind).items()})
    bad = {k: v for k, v in errs.items() if not v <= TOL_FULL}
    assert not bad, f"ViViT-B parity failures (tol {TOL_FULL}): {bad}"


def _full_vivit_b_errors(ours, ref, kind):
    errs = {"logits" if kind == "classifier" else "last_hidden_state":
            rel_err(ours.logits, ref.logits) if kind == "classifier" else rel_err(ours.last_hidden_state, ref.last_hidden_state)}
    if kind == "base":
        errs["pooler_output"] = rel_err(ours.pooler_output, ref.pooler_output)
    for i, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states)):
        errs[f"hidden_states[{i}]"] = rel_err(a, b)
    return errs
