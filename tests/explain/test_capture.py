"""explain/capturing.py: the memory estimate and refusal, what is kept, and the memory-light CLS rollout."""

import numpy as np
import pytest

import minivivit
from minivivit import explain

torch = pytest.importorskip("torch", reason="builds random HF models (dev extra)")
from reference import hf_forward, random_clip, random_hf_model, to_minivivit


@pytest.fixture(scope="module")
def tiny():
    hf = random_hf_model("classifier", seed=11, num_hidden_layers=3, tubelet_size=[2, 8, 8])  # grid (2, 4, 4)
    return hf, to_minivivit(hf)


def test_estimate_vivit_b_sizes():
    cfg = minivivit.ViViTConfig()  # ViViT-B: 12 layers, 12 heads, N = 3137
    shape = (1, 32, 3, 224, 224)
    assert explain.estimate_bytes(cfg, shape, None, "full") == 12 * 12 * 3137 * 3137 * 4 == 5_668_282_944
    assert explain.estimate_bytes(cfg, shape, None, "cls") == 12 * 12 * 3137 * 4
    assert explain.estimate_bytes(cfg, shape, [-1, 11], "full", np.float16) == 12 * 3137 * 3137 * 2
    assert explain.format_bytes(5_668_282_944) == "5.67 GB"


def test_refuses_before_the_forward_pass_with_size_and_alternatives():
    stub = {"embed": {"proj": {"w": np.zeros((1, 1), np.float32)}}}  # only the dtype: a forward pass would crash
    model = minivivit.Model(params=stub, config=minivivit.ViViTConfig())
    x = np.zeros((1, 32, 3, 224, 224), np.float32)
    with pytest.raises(explain.AttentionBudgetError) as e:
        explain.capture(model, x, mode="full")
    msg = str(e.value)
    for part in ("5.67 GB", "limit of 2.15 GB", "output_attentions='cls'", "1.81 MB", "layers=[-1]", "472.36 MB",
                 "np.float16", "2.83 GB", "cls_rollout", "force=True"):
        assert part in msg, f"{part!r} missing from: {msg}"
    assert isinstance(e.value, MemoryError) and isinstance(e.value, ValueError)


def test_capture_keeps_what_was_asked_and_the_estimate_is_exact(tiny):
    model = tiny[1]
    x = random_clip(model.config, batch=2, seed=3)
    full = explain.capture(model, x, mode="full", max_bytes=None)
    cls = explain.capture(model, x, layers=[0, -1], mode="cls", dtype=np.float16)
    assert cls.attentions[1] is None and cls.attentions[0].dtype == np.float16
    assert cls.nbytes == sum(a.nbytes for a in cls.attentions if a is not None)
    assert full.nbytes == sum(a.nbytes for a in full.attentions)
    for i in (0, 2):
        assert np.allclose(cls.attentions[i], full.attentions[i][:, :, 0, :], atol=1e-3)  # float16 rounding
    assert full.tokens == explain.TokenMap((2, 4, 4), (2, 8, 8))
    with pytest.raises(explain.AttentionBudgetError, match="force=True"):
        explain.capture(model, x, mode="full", max_bytes=1000)
    forced = explain.capture(model, x, mode="full", max_bytes=1000, force=True)
    assert np.array_equal(forced.attentions[1], full.attentions[1])


def test_recomputed_maps_equal_hf_and_cls_rollout_equals_full_rollout(tiny):
    hf, model = tiny
    x = random_clip(model.config, batch=2, seed=4)
    ref = hf_forward(hf, x, output_attentions=True, output_hidden_states=True)
    out = model(x, output_hidden_states=True)
    for i in range(3):
        mine = explain.recompute_attention(model, out.hidden_states[i], i)
        assert np.abs(mine - ref.attentions[i].numpy()).max() < 1e-5
    full = explain.capture(model, x, mode="full").attentions
    for kw in ({}, {"head_fusion": "max", "alpha": 0.8, "discard_ratio": 0.5, "start_layer": 1}):
        v, _, _ = explain.cls_rollout(model, x, **kw)
        assert np.allclose(v, explain.rollout(full, **kw)[:, 0, :], atol=1e-6)
    v, _, _ = explain.cls_rollout(model, x, end_layer=1)  # rollout through layers 0..1 only
    assert np.allclose(v, explain.rollout(full[:2])[:, 0, :], atol=1e-6)
