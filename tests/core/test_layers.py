"""The NumPy reference layers against torch's own implementations, including extreme inputs."""

import numpy as np
import pytest

from minivivit import layers

torch = pytest.importorskip("torch", reason="compares with torch (dev extra)")
transformers_act = pytest.importorskip("transformers.activations")

# float32 tolerance: atol + rtol * |ref|
ATOL, RTOL = 1e-6, 2e-6


def _x(dtype=np.float32):
    rng = np.random.default_rng(0)
    body = rng.standard_normal(4000) * 4
    extremes = np.array([-400, -300, -50, -10, -5, -1e-3, 0, 1e-3, 5, 10, 50, 300, 400])
    return np.concatenate([body, extremes]).astype(dtype)


@pytest.mark.parametrize("name", sorted(n for n in layers.ACTIVATIONS if n != "selu"))
def test_activation_matches_hf_act2fn(name):
    x = _x()
    ref = transformers_act.ACT2FN[name](torch.from_numpy(x)).numpy()
    ours = layers.activation(x, name)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=ATOL, rtol=RTOL)
    assert np.isfinite(ours).all()


def test_selu_matches_torch():
    x = _x()
    np.testing.assert_allclose(layers.activation(x, "selu"), torch.nn.functional.selu(torch.from_numpy(x)).numpy(),
                               atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", ["gelu", "gelu_fast", "gelu_new", "quick_gelu", "silu"])
def test_activation_float64(name):
    x = _x(np.float64)
    ref = transformers_act.ACT2FN[name](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layers.activation(x, name), ref, atol=1e-13, rtol=1e-12)


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'gelu_bogus'"):
        layers.activation(np.zeros(3, np.float32), "gelu_bogus")


def test_layer_norm_matches_torch():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 7, 33)) * 10 + 5).astype(np.float32)
    g, b = rng.standard_normal(33).astype(np.float32), rng.standard_normal(33).astype(np.float32)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (33,), torch.from_numpy(g), torch.from_numpy(b), 1e-6)
    np.testing.assert_allclose(layers.layer_norm(x, g, b, 1e-6), ref.numpy(), atol=1e-5, rtol=1e-5)


def test_softmax_extreme_rows():
    rows = np.array([[1e4, 0, -1e4, 3], [5, 5, 5, 5], [-1e30, -1e30, 0, -1e30], [-np.inf, 0, 1, -np.inf]], np.float32)
    p = layers.softmax(rows)
    ref = torch.softmax(torch.from_numpy(rows), -1).numpy()
    np.testing.assert_allclose(p, ref, atol=1e-7)
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)


def test_tubelet_embed_is_a_strided_conv3d():
    rng = np.random.default_rng(2)
    B, T, C, H, W, D, tub = 2, 5, 3, 12, 10, 7, (2, 4, 5)  # T=5: the last frame is dropped, as Conv3d drops it
    x = rng.standard_normal((B, T, C, H, W)).astype(np.float32)
    weight = rng.standard_normal((D, C, *tub)).astype(np.float32)
    bias = rng.standard_normal(D).astype(np.float32)
    conv = torch.nn.functional.conv3d(torch.from_numpy(x).transpose(1, 2), torch.from_numpy(weight),
                                      torch.from_numpy(bias), stride=tub)  # [B, D, t, h, w]
    ref = conv.flatten(2).transpose(1, 2).numpy()  # HF's flatten order: [B, t*h*w, D]
    w = weight.transpose(2, 3, 4, 1, 0).reshape(-1, D)  # what the converter does
    np.testing.assert_allclose(layers.tubelet_embed(x, w, bias, tub), ref, atol=1e-5, rtol=1e-5)


def test_attention_matches_torch_sdpa_and_head_mask_scales_heads():
    rng = np.random.default_rng(3)
    B, N, nh, d = 2, 9, 3, 8
    q, k, v = (rng.standard_normal((B, N, nh * d)).astype(np.float32) for _ in range(3))
    ctx, p = layers.attention(q, k, v, nh, output_attentions="full")
    split = lambda a: torch.from_numpy(a).view(B, N, nh, d).transpose(1, 2)
    ref = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
    np.testing.assert_allclose(ctx, ref.transpose(1, 2).reshape(B, N, nh * d).numpy(), atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
    mask = np.array([1.0, 0.0, 0.5], np.float32)
    ctx_m, p_m = layers.attention(q, k, v, nh, head_mask=mask, output_attentions="cls")
    np.testing.assert_allclose(p_m, p[:, :, 0, :] * mask[None, :, None], rtol=1e-6)
    per_head = ctx.reshape(B, N, nh, d) * mask[None, None, :, None]
    np.testing.assert_allclose(ctx_m, per_head.reshape(B, N, nh * d), atol=1e-6)
