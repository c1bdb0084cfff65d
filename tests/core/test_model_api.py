"""The public model API: interpolate_pos_encoding, head_mask vs HF, float64, and input errors."""

import numpy as np
import pytest

import minivivit

torch = pytest.importorskip("torch", reason="compares with HF transformers (dev extra)")
transformers = pytest.importorskip("transformers")

from reference import hf_forward, random_clip, random_hf_model, rel_err, to_minivivit


@pytest.fixture(scope="module")
def pair():
    hf = random_hf_model("classifier", seed=21)
    return hf, to_minivivit(hf)


# ---- head_mask: transformers 5 dropped the argument, so we add it back to HF's own eager attention ----

def _head_mask_eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """HF v5's eager_attention_forward plus v4's `attention_probs * head_mask`."""
    w = torch.softmax(torch.matmul(query, key.transpose(2, 3)) * scaling, dim=-1)
    w = w * module.head_mask_for_test[None, :, None, None]
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


@pytest.mark.parametrize("shape", ["per-head", "per-layer"])
def test_head_mask_matches_hf(pair, shape):
    hf, model = pair
    transformers.AttentionInterface.register("head_mask_eager", _head_mask_eager)
    L, nh = model.config.num_hidden_layers, model.config.num_attention_heads
    mask = np.array([1.0, 0.0, 0.5], np.float32) if shape == "per-head" else \
        np.random.default_rng(0).uniform(0, 1, (L, nh)).astype(np.float32)
    per_layer = np.broadcast_to(mask, (L, nh))
    try:
        hf.set_attn_implementation("head_mask_eager")
        for i, layer in enumerate(hf.vivit.layers):
            layer.attention.head_mask_for_test = torch.from_numpy(per_layer[i].copy())
        x = random_clip(model.config, batch=2, seed=5)
        ref = hf_forward(hf, x, output_attentions=True, output_hidden_states=True)
    finally:
        hf.set_attn_implementation("eager")
    ours = model(x, head_mask=mask, output_attentions=True, output_hidden_states=True)
    assert rel_err(ours.logits, ref.logits) <= 1e-5
    for a, b in zip(ours.attentions, ref.attentions):
        assert rel_err(a, b) <= 1e-5
    unmasked = model(x).logits
    assert np.abs(unmasked - ours.logits).max() > 1e-3  # the mask really changed something


def test_head_mask_shape_error(pair):
    _, model = pair
    with pytest.raises(ValueError, match=r"head_mask must have shape \(3,\) or \(2, 3\)"):
        model(random_clip(model.config), head_mask=np.ones(4))


# ---- interpolate_pos_encoding ----

def test_interpolate_is_identity_at_the_trained_size(pair):
    _, model = pair
    x = random_clip(model.config, seed=6)
    np.testing.assert_array_equal(model(x).logits, model(x, interpolate_pos_encoding=True).logits)


def test_runs_at_16_frames_and_320px_from_a_32x224_checkpoint():
    """A ViViT-B-shaped grid (32 frames, 224 px, 16x16 tubelets) with a thin, 1-layer model to stay fast."""
    hf = random_hf_model("classifier", seed=8, image_size=224, num_frames=32, tubelet_size=[2, 16, 16],
                         hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    model = to_minivivit(hf)
    for frames, size, grid in [(16, 224, (8, 14, 14)), (32, 320, (16, 20, 20))]:
        x = random_clip(model.config, frames=frames, size=(size, size), seed=frames)
        with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
            model(x)
        out = model(x, interpolate_pos_encoding=True, output_attentions="cls")
        assert out.last_hidden_state.shape == (1, 1 + int(np.prod(grid)), 24)
        assert np.isfinite(out.logits).all()


def test_hf_interpolation_is_broken_for_new_sizes():
    """Documents why ours exists: HF treats the patch positions as a square image, ignoring time."""
    hf = random_hf_model("classifier", seed=9, image_size=32, num_frames=4, tubelet_size=[2, 16, 16])
    x = random_clip(to_minivivit(hf).config, size=(48, 48), seed=1)
    with pytest.raises(RuntimeError):  # 2x2x2=8 positions viewed as a sqrt(8)=2-sided square -> size mismatch
        hf_forward(hf, x, interpolate_pos_encoding=True)


# ---- float64 mode ----

def test_float64_mode_is_closer_to_a_float64_reference(pair):
    """HF's eager attention runs softmax in float32 even for a float64 model, so the float64 reference
    uses the head-mask attention above with an all-ones mask (softmax in the input dtype)."""
    hf, model = pair
    x = random_clip(model.config, seed=7)
    transformers.AttentionInterface.register("head_mask_eager", _head_mask_eager)
    try:
        hf.double().set_attn_implementation("head_mask_eager")
        for layer in hf.vivit.layers:
            layer.attention.head_mask_for_test = torch.ones(model.config.num_attention_heads, dtype=torch.float64)
        ref64 = hf_forward(hf, x.astype(np.float64)).logits
    finally:
        hf.float().set_attn_implementation("eager")
    out64 = model.to(np.float64)(x.astype(np.float64)).logits
    assert out64.dtype == np.float64
    assert rel_err(out64, ref64) <= 1e-12
    assert rel_err(model(x).logits, ref64) > rel_err(out64, ref64)


# ---- input errors ----

@pytest.mark.parametrize("make,exc,match", [
    (lambda c: np.zeros((4, 3, 32, 32), np.float32), ValueError, r"\[B, T, C, H, W\].*pixel_values\[None\]"),
    (lambda c: np.zeros((1, 4, 3, 32, 32), np.uint8), TypeError, "minivivit.preprocess"),
    (lambda c: np.zeros((1, 4, 32, 32, 3), np.float32), ValueError, "transpose"),
    (lambda c: np.zeros((1, 6, 3, 32, 32), np.float32), ValueError, "interpolate_pos_encoding=True"),
    (lambda c: np.full((1, 4, 3, 32, 32), np.nan, np.float32), ValueError, "NaN"),
    (lambda c: np.zeros((0, 4, 3, 32, 32), np.float32), ValueError, "batch size 0"),
])
def test_bad_pixel_values_give_clear_errors(pair, make, exc, match):
    _, model = pair
    with pytest.raises(exc, match=match):
        model(make(model.config))


def test_bad_backend_and_output_attentions(pair):
    _, model = pair
    x = random_clip(model.config)
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        model(x, backend="torch")
    with pytest.raises(ValueError, match="output_attentions must be"):
        model(x, output_attentions="rows")
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        model(x, output_attentions=True, attention_layers=[5])


def test_save_load_round_trip(pair, tmp_path):
    _, model = pair
    path = tmp_path / "m.safetensors"
    model.save(path)
    back = minivivit.load(path)
    assert back.config == model.config and back.labels == model.labels
    x = random_clip(model.config)
    np.testing.assert_array_equal(back(x).logits, model(x).logits)
    with pytest.raises(FileExistsError, match="already exists"):
        model.save(path)


# ---- the one forward pass and its tap ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_tap_sees_every_trace_name_in_order_on_every_backend(backend):
    """A plain function tap wants every name: it must see exactly Model.trace_names(), as NumPy arrays."""
    from conftest import random_clip as clip_of
    from conftest import random_model as tiny_model

    from minivivit.model import vivit_forward

    for head, pooler in ((True, False), (False, True)):
        model = tiny_model(seed=3, head=head, pooler=pooler)
        seen = []
        out = vivit_forward(model.params, model.config, clip_of(model.config, batch=2), backend=backend,
                            tap=lambda name, a: seen.append((name, type(a))) or a)
        assert [n for n, _ in seen] == model.trace_names()
        assert all(t is np.ndarray for _, t in seen)
        assert (out.logits is not None) == head and (out.pooler_output is not None) == pooler


def test_the_attention_steps_run_only_for_layers_whose_maps_a_tap_wants(monkeypatch):
    """Without a tap wanting scores/probs, attention runs in the backend's op: the reference's explicit
    steps (which build N x N scores) are never called."""
    from conftest import random_clip as clip_of
    from conftest import random_model as tiny_model

    from minivivit import debug, layers

    model = tiny_model(seed=4)
    x = clip_of(model.config)
    calls = []
    real = layers.attention_scores
    monkeypatch.setattr(layers, "attention_scores", lambda q, k: calls.append(q.shape) or real(q, k))
    debug.trace(model, x, include=["logits", "blocks.1.fc1"], backend="numba")
    assert calls == []  # numba's blocked attention did the work
    t = debug.trace(model, x, include=["blocks.1.probs"], backend="numba")
    assert len(calls) == 1 and calls[0][1] == model.config.num_attention_heads  # [B, nh, N, d]: layer 1 only
    np.testing.assert_allclose(t["blocks.1.probs"].sum(-1), 1.0, rtol=1e-5)


def test_no_tap_calls_nothing():
    from conftest import random_clip as clip_of
    from conftest import random_model as tiny_model

    from minivivit.model import NO_TAP, vivit_forward

    model = tiny_model()
    a = vivit_forward(model.params, model.config, clip_of(model.config), tap=NO_TAP)
    b = model(clip_of(model.config))
    np.testing.assert_array_equal(a.logits, b.logits)
