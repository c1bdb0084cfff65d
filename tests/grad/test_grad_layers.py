"""Each backward twin alone against torch autograd, on random shapes and extreme values.

Measure: np.testing.assert_allclose with rtol / atol per dtype (float32: 1e-5 / 1e-6 after scaling by
max(1, max|ref|); float64: 1e-12 / 1e-12), i.e. |ours - torch| <= atol + rtol |torch| element-wise.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="gradient parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from transformers.activations import ACT2FN  # noqa: E402

from minivivit import layers  # noqa: E402
from minivivit.grad import (  # noqa: E402
    DERIVATIVES,
    activation_backward,
    attention_backward,
    cross_entropy,
    embed_backward,
    layer_norm_backward,
    linear_backward,
    resize_grid_backward,
    softmax_backward,
    tubelet_embed_backward,
)
from minivivit.position import resize_grid  # noqa: E402

TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-12)}
TDT = {np.float32: torch.float32, np.float64: torch.float64}


def close(ours, ref, dtype, what=""):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    rtol, atol = TOL[dtype]
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol * scale, err_msg=what)


def tensor(a, grad=True):
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(grad)


EXTREMES = np.array([-300, -100, -88.5, -20, -10, -6, -3, -1.5, -1, -1e-3, 0, 1e-3, 1, 1.5, 3, 6, 10, 20, 88.5, 100, 300])


def torch_activation(name):
    if name == "selu":  # in layers.ACTIVATIONS (HF's docs list it) but not in transformers' ACT2FN
        return torch.nn.functional.selu
    return ACT2FN[name]


def test_every_activation_has_a_derivative():
    assert set(DERIVATIVES) == set(layers.ACTIVATIONS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activation_backward_matches_torch(name, dtype):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    x = np.concatenate([rng.standard_normal(500) * 4, EXTREMES]).astype(dtype)  # kinks and +-300 included
    dy = rng.standard_normal(x.shape).astype(dtype)
    xt = tensor(x)
    torch_activation(name)(xt).backward(torch.from_numpy(dy))
    ref = xt.grad.numpy()
    ours = activation_backward(dy, x, name)
    assert ours.dtype == dtype and np.isfinite(ours).all(), f"{name}: non-finite derivative"
    if name == "sqrtsoftplus":  # torch autograd gives 0 * inf = NaN where softplus underflows; we give the limit 0
        nan = np.isnan(ref)
        assert (x[nan] < -80).all() and (ours[nan] == 0).all()
        ref = np.where(nan, 0.0, ref)
    close(ours, ref, dtype, name)


def test_activation_backward_unknown_name():
    with pytest.raises(ValueError, match="unknown hidden_act 'gelu_fancy'"):
        activation_backward(np.ones(3), np.ones(3), "gelu_fancy")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(1, 9), st.integers(1, 9), st.booleans(),
       st.sampled_from([np.float32, np.float64]))
def test_linear_backward_matches_torch(lead, n_in, n_out, bias, dtype):
    rng = np.random.default_rng(len(lead) * 100 + n_in * 10 + n_out)
    x = rng.standard_normal((*lead, n_in)).astype(dtype)
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dy = rng.standard_normal((*lead, n_out)).astype(dtype)
    xt, wt, bt = tensor(x), tensor(w), tensor(b)
    (xt @ wt + (bt if bias else 0)).backward(torch.from_numpy(dy))
    dx, dw, db = linear_backward(dy, x, w, bias=bias)
    close(dx, xt.grad, dtype), close(dw, wt.grad, dtype)
    if bias:
        close(db, bt.grad, dtype)
    else:
        assert db is None


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(8, 40), st.sampled_from([1e-6, 1e-5, 1e-3]),
       st.sampled_from([1.0, 1e-3, 1e3]), st.sampled_from([np.float32, np.float64]))
def test_layer_norm_backward_matches_torch(B, N, D, eps, scale, dtype):
    rng = np.random.default_rng(B * 1000 + N * 100 + D)
    x = (rng.standard_normal((B, N, D)) * scale + 5 * scale).astype(dtype)  # tiny, huge, offset rows
    g = (1 + rng.standard_normal(D) * 0.3).astype(dtype)
    b = rng.standard_normal(D).astype(dtype)
    dy = rng.standard_normal((B, N, D)).astype(dtype)
    xt, gt, bt = tensor(x), tensor(g), tensor(b)
    torch.nn.functional.layer_norm(xt, (D,), gt, bt, eps).backward(torch.from_numpy(dy))
    dx, dg, db = layer_norm_backward(dy, x, g, eps)
    rtol = 2e-4 if dtype == np.float32 and scale != 1.0 else None  # float32 rows 1e3 wide: both sides round
    if rtol:
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=rtol * max(1, np.abs(xt.grad.numpy()).max()))
    else:
        close(dx, xt.grad, dtype, "dx")
    close(dg, gt.grad, dtype, "dg"), close(db, bt.grad, dtype, "db")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_backward_matches_torch_on_extreme_rows(dtype):
    rng = np.random.default_rng(0)
    s = rng.standard_normal((6, 7)).astype(dtype)
    s[0, :3] = -np.inf  # masked logits: probability 0, gradient 0
    s[1] = [1e4, -1e4, 1e4, 0, 3, -np.inf, 88]  # huge logits (two tied maxima)
    s[2] *= 1e-6  # nearly uniform
    s[3, 2] = 1e30  # one dominant logit: a one-hot row
    dp = rng.standard_normal(s.shape).astype(dtype)
    st_ = tensor(s)
    torch.softmax(st_, -1).backward(torch.from_numpy(dp))
    ours = softmax_backward(dp, layers.softmax(s))
    assert np.isfinite(ours).all()
    close(ours, st_.grad, dtype)
    assert (ours[0, :3] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_matches_torch(smoothing, soft, dtype):
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((5, 7)) * 3).astype(dtype)
    logits[0, 2] = 1e4  # extreme logits: log-softmax must not overflow
    logits[1, 0] = -1e4
    labels = rng.dirichlet(np.ones(7), 5).astype(dtype) if soft else np.array([2, 0, 6, 3, 3])
    lt = tensor(logits)
    ref = torch.nn.functional.cross_entropy(lt, torch.from_numpy(labels), label_smoothing=smoothing)
    ref.backward()
    loss, dlogits = cross_entropy(logits, labels, smoothing)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert abs(loss - ref.item()) <= tol * max(1, abs(ref.item()))
    close(dlogits, lt.grad, dtype)


def test_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match="class indices in 0..2"):
        cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        cross_entropy(np.zeros((2, 3)), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5)


def torch_attention(q, k, v, nh, head_mask=None, mult=None):
    B, N, D = q.shape
    split = lambda a: a.reshape(B, N, nh, D // nh).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(q), split(k), split(v)
    p = torch.softmax(qh @ kh.transpose(-1, -2) * (D // nh) ** -0.5, -1)
    if head_mask is not None:
        p = p * head_mask[None, :, None, None]
    if mult is not None:
        p = p * mult
    p.retain_grad()
    return (p @ vh).transpose(1, 2).reshape(B, N, D), p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,N,nh,d,masked,dropped", [(1, 5, 1, 4, False, False), (2, 9, 3, 4, True, False),
                                                     (2, 7, 5, 3, True, True), (3, 17, 2, 8, False, True)])
def test_attention_backward_matches_torch(B, N, nh, d, masked, dropped, dtype):
    rng = np.random.default_rng(B * 100 + N)
    q, k, v, dctx = (rng.standard_normal((B, N, nh * d)).astype(dtype) * s for s in (2, 2, 1, 1))
    hm = np.array([0.0, 1.0, 0.5, 2.0, 1.0][:nh], dtype) if masked else None
    mult = ((rng.random((B, nh, N, N)) > 0.3) / 0.7).astype(dtype) if dropped else None
    qt, kt, vt = tensor(q), tensor(k), tensor(v)
    out, p = torch_attention(qt, kt, vt, nh, None if hm is None else torch.from_numpy(hm),
                             None if mult is None else torch.from_numpy(mult))
    out.backward(torch.from_numpy(dctx))
    seen = {}
    dq, dk, dv = attention_backward(dctx, q, k, v, nh, hm, None if mult is None else (lambda h: mult[:, h]),
                                    on_probs=lambda h, a, da: seen.__setitem__(h, (a, da)))
    close(dq, qt.grad, dtype, "dq"), close(dk, kt.grad, dtype, "dk"), close(dv, vt.grad, dtype, "dv")
    assert sorted(seen) == list(range(nh))
    close(np.stack([seen[h][0] for h in range(nh)], 1), p, dtype, "A (probabilities that multiply V)")
    close(np.stack([seen[h][1] for h in range(nh)], 1), p.grad, dtype, "dL/dA")


def test_attention_backward_with_extreme_scores():
    """Huge q/k (scores ~1e4: one-hot softmax rows) keep gradients finite and equal to torch's."""
    rng = np.random.default_rng(3)
    q, k, v, dctx = (rng.standard_normal((2, 6, 8)).astype(np.float64) * s for s in (100, 100, 1, 1))
    qt, kt, vt = tensor(q), tensor(k), tensor(v)
    torch_attention(qt, kt, vt, 2)[0].backward(torch.from_numpy(dctx))
    dq, dk, dv = attention_backward(dctx, q, k, v, 2)
    close(dq, qt.grad, np.float64), close(dk, kt.grad, np.float64), close(dv, vt.grad, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip,tubelet", [((2, 4, 3, 32, 32), (2, 16, 16)), ((1, 5, 3, 13, 11), (2, 4, 3)),
                                          ((2, 3, 1, 8, 8), (3, 2, 4))])
def test_tubelet_embed_backward_matches_torch_conv3d(clip, tubelet, dtype):
    """HF's VivitTubeletEmbeddings is a Conv3d (stride = kernel); leftover frames/pixels get gradient 0."""
    from minivivit.convert.hf import to_ours

    rng = np.random.default_rng(sum(clip))
    B, T, C, H, W = clip
    D = 6
    x = rng.standard_normal(clip).astype(dtype)
    wt = tensor(rng.standard_normal((D, C, *tubelet)).astype(dtype))
    xt = tensor(x)
    y = torch.nn.functional.conv3d(xt.transpose(1, 2), wt, stride=tubelet).flatten(2).transpose(1, 2)  # [B, P, D]
    dy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(dy))
    w = to_ours("embed.proj.w", wt.detach().numpy())  # [K, D]
    dw, db, dx = tubelet_embed_backward(dy, x, w, tubelet, input_grad=True)
    close(dx, xt.grad, dtype, "dx")
    close(dw, to_ours("embed.proj.w", wt.grad.numpy()), dtype, "dw")
    close(db, dy.sum((0, 1)), dtype, "db")


def test_embed_backward_matches_torch():
    rng = np.random.default_rng(4)
    B, P, D = 3, 5, 4
    patches, cls, pos = tensor(rng.standard_normal((B, P, D))), tensor(rng.standard_normal(D)), tensor(rng.standard_normal((P + 1, D)))
    out = torch.cat([cls.expand(B, 1, D), patches], 1) + pos
    dout = rng.standard_normal((B, P + 1, D))
    out.backward(torch.from_numpy(dout))
    dpatches, dcls, dpos = embed_backward(dout)
    close(dpatches, patches.grad, np.float64), close(dcls, cls.grad, np.float64), close(dpos, pos.grad, np.float64)


@pytest.mark.parametrize("old,new", [((4, 3, 3), (2, 5, 4)), ((2, 4, 4), (2, 4, 4)), ((3, 2, 5), (6, 3, 2))])
def test_resize_grid_backward_is_the_adjoint(old, new):
    """<resize(a), b> = <a, resize_backward(b)> for the resize that test_position checks against torch."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((int(np.prod(old)), 3))
    b = rng.standard_normal((int(np.prod(new)), 3))
    lhs = (resize_grid(a, old, new) * b).sum()
    rhs = (a * resize_grid_backward(b, old, new)).sum()
    assert abs(lhs - rhs) <= 1e-12 * max(1, abs(lhs))
