"""explain(): every method on the tiny model; the streamed GAE / gradient rollout equal the paper's matrix
recursion; integrated gradients' completeness; per-tubelet sums land on the right token; targets and errors.
(Parity with torch autograd on HF: test_relevance_parity.py.)"""

import numpy as np
import pytest
from conftest import random_clip, random_model, tiny_config

import minivivit
from minivivit.explain import METHODS, explain, gae_from_maps, grad_rollout_from_maps, per_tubelet
from minivivit.explain.relevance import logit_objective
from minivivit.grad import backward
from minivivit.tokens import TokenMap
from minivivit.weights import init_params


def dense_maps(model, x, target):
    obj, _ = logit_objective(target, model.config)
    g = backward(model, x, objective=obj, attention_grads="all")
    attn = model(x, output_attentions="full").attentions
    return list(attn), [g.attentions[i] for i in range(len(attn))]


@pytest.mark.parametrize("overrides", [{}, {"num_attention_heads": 1, "num_hidden_layers": 3},
                                       {"tubelet_size": [3, 16, 16], "num_frames": 7}])
def test_streamed_cls_row_equals_the_matrix_recursion(overrides):
    model = random_model(seed=2, **overrides)
    x = random_clip(model.config, batch=2, seed=1)
    attn, grads = dense_maps(model, x, 2)
    e = explain(model, x, "gae", target=2)
    np.testing.assert_allclose(e.relevance, gae_from_maps(attn, grads)[:, 1:], rtol=1e-5, atol=1e-7)
    for fusion in ("mean", "max", 0):
        r = explain(model, x, "grad-rollout", target=2, head_fusion=fusion)
        ref = grad_rollout_from_maps(attn, grads, head_fusion=fusion)[:, 1:]
        np.testing.assert_allclose(r.relevance, ref, rtol=1e-5, atol=1e-7)


def test_every_method_returns_one_value_per_tubelet_and_the_predicted_target():
    model = random_model(seed=3)
    x = random_clip(model.config, batch=2, seed=4)
    pred = np.argmax(model(x).logits, axis=-1)
    for method in METHODS:
        e = explain(model, x, method, steps=4)
        assert e.relevance.shape == (2, model.config.num_patches) and np.isfinite(e.relevance).all(), method
        assert list(e.target) == list(pred), method
        assert e.grid(1).shape == model.config.grid


def test_integrated_gradients_is_complete():
    """sum_pixels IG = y(x) - y(baseline) (Sundararajan et al.'s completeness axiom), up to the midpoint rule."""
    model = random_model(seed=5)
    x = random_clip(model.config, seed=6)
    logits_x, logits_0 = model(x).logits[0], model(np.zeros_like(x)).logits[0]
    e = explain(model, x, "ig", target=1, steps=64)
    gap = logits_x[1] - logits_0[1]
    assert abs(e.relevance.sum() - gap) <= 0.02 * abs(gap) + 1e-4, (e.relevance.sum(), gap)


def test_input_x_gradient_is_x_times_the_logit_gradient():
    """A clip that is zero but for one pixel: the only non-zero tubelet is that pixel's, and its value is
    x * dy/dx with dy/dx from central finite differences of the forward pass."""
    model = random_model(seed=7)
    k, eps = (0, 2, 1, 20, 5), 1e-2  # frame 2, channel 1, row 20, column 5: tubelet (t=1, y=1, x=0)
    pixel = np.zeros((1, 4, 3, 32, 32), np.float32)
    pixel[k] = 1.0
    x = 1.7 * pixel
    fd = (model(x + eps * pixel).logits[0, 3] - model(x - eps * pixel).logits[0, 3]) / (2 * eps)
    token = TokenMap.for_config(model.config).token_at(2, 20, 5)
    e = explain(model, x, "inputxgrad", target=3)
    assert list(np.flatnonzero(e.relevance[0])) == [token - 1]
    np.testing.assert_allclose(e.relevance[0, token - 1], 1.7 * fd, rtol=2e-2)


def test_per_tubelet_sums_each_box():
    config = tiny_config(tubelet_size=[3, 16, 16], num_frames=7)
    tokens = TokenMap.for_config(config)
    a = np.random.default_rng(0).standard_normal((2, 7, 3, 32, 32))
    got = per_tubelet(a, config.tubelet_size)
    for k in range(1, tokens.num_tokens):
        f, r, c = tokens.box(k)
        box = a[:, f.start:f.stop, :, r.start:r.stop, c.start:c.stop]  # [B, tt, C, ph, pw]
        np.testing.assert_allclose(got[:, k - 1], box.sum(axis=(1, 2, 3, 4)))


def test_targets_by_name_and_index_agree_and_bad_ones_say_what_exists():
    model = random_model(seed=9, id2label={i: n for i, n in enumerate("abcde")})
    x = random_clip(model.config, seed=1)
    by_name, by_index = explain(model, x, "gae", target="c"), explain(model, x, "gae", target=2)
    np.testing.assert_array_equal(by_name.relevance, by_index.relevance)
    other = explain(model, x, "gae", target="d")
    assert not np.allclose(other.relevance, by_name.relevance, rtol=1e-2)
    with pytest.raises(ValueError, match="labels are: a, b, c, d, e"):
        explain(model, x, "gae", target="zebra")
    with pytest.raises(ValueError, match="has 5 classes"):
        explain(model, x, "gae", target=5)
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain(model, x, "gradcam")


@pytest.mark.parametrize("method", METHODS)
def test_factorised_models_are_refused_with_the_reason(method):
    config = tiny_config(attention_type="factorized_encoder", temporal_num_layers=1)
    model = minivivit.Model(init_params(config, 0), config)
    with pytest.raises(ValueError, match="needs Model 1"):
        explain(model, random_clip(config), method)


def test_one_target_per_clip_equals_each_clip_alone():
    model = random_model(seed=10)
    x = random_clip(model.config, batch=2, seed=2)
    both = explain(model, x, "gae", target=[1, "4"])
    assert list(both.target) == [1, 4]
    for i, t in enumerate((1, 4)):
        np.testing.assert_allclose(both.relevance[i], explain(model, x[i:i + 1], "gae", target=t).relevance[0],
                                   rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        explain(model, x, "gae", target=[0, 1, 2])
