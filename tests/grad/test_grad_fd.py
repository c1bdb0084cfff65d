"""float64 central finite differences on tiny models: the backward is the derivative of the forward.

No torch needed. For a sample of coordinates (every parameter tensor, the pixels) the central difference
(f(p + h) - f(p - h)) / 2h with h = 1e-5 is compared with backward(); measure:
max |ours - fd| / max(1, max |fd|) over the sampled coordinates <= 1e-6. Also covers what HF cannot
check: training-mode dropout (the same masks at every evaluation: a fresh Generator with the same seed)
and interpolate_pos_encoding (HF 5's version only works for square 2-D grids).
"""

import numpy as np
import pytest

import minivivit
from minivivit.grad import Dropout, backward, cross_entropy
from minivivit.model import vivit_forward
from minivivit.weights import expected_shapes, flatten_params, unflatten_params

H, TOL = 1e-5, 1e-6


def tiny_model(head=True, pooler=False, seed=0, **overrides):
    kw = dict(image_size=8, num_frames=2, tubelet_size=(1, 4, 4), hidden_size=8, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=12, num_labels=3)
    kw.update(overrides)
    config = minivivit.ViViTConfig(**kw)
    rng = np.random.default_rng(seed)
    flat = {k: rng.standard_normal(s) * (0.5 if len(s) == 2 else 0.3) for k, s in
            expected_shapes(config, head=head, pooler=pooler).items()}
    for k in flat:
        if k.endswith(".g"):
            flat[k] = 1.0 + flat[k]
    return minivivit.Model(unflatten_params(flat), config)


def finite_difference_check(model, x, f, ours, coords_per_tensor=3, pixel_coords=20, seed=0):
    """f(params, x) -> float. Compare ours (Gradients) with central differences; return the error."""
    rng = np.random.default_rng(seed)
    flat = flatten_params(model.params)  # views into model.params: edited in place and restored
    g = flatten_params(ours.params)
    fd, an = [], []
    for name, p in flat.items():
        for idx in {tuple(int(rng.integers(n)) for n in p.shape) for _ in range(coords_per_tensor)}:
            old = p[idx]
            p[idx] = old + H
            up = f(model, x)
            p[idx] = old - H
            down = f(model, x)
            p[idx] = old
            fd.append((up - down) / (2 * H))
            an.append(g[name][idx])
    if ours.pixel_values is not None:
        for _ in range(pixel_coords):
            idx = tuple(int(rng.integers(n)) for n in x.shape)
            xp, xm = x.copy(), x.copy()
            xp[idx] += H
            xm[idx] -= H
            fd.append((f(model, xp) - f(model, xm)) / (2 * H))
            an.append(ours.pixel_values[idx])
    fd, an = np.array(fd), np.array(an)
    err = float(np.abs(an - fd).max() / max(1.0, np.abs(fd).max()))
    assert err <= TOL, f"finite differences disagree: {err:.2e} (tol {TOL}); worst at {int(np.abs(an - fd).argmax())}"
    assert np.abs(fd).max() > 1e-3, "the sampled derivatives are all ~0: the check would be vacuous"
    return err


def clip(model, batch=2, frames=None, size=None, seed=1):
    c = model.config
    h = size or c.image_hw[0]
    return np.random.default_rng(seed).standard_normal((batch, frames or c.num_frames, 3, h, h))


def ce(labels, smoothing=0.0, **forward_kwargs):
    return lambda m, x: cross_entropy(m(x, **forward_kwargs).logits, labels, smoothing)[0]


@pytest.mark.parametrize("act", ["gelu_fast", "gelu", "silu", "mish"])
def test_classifier_fd(act):
    model = tiny_model(hidden_act=act, seed=1)
    x, y = clip(model), np.array([2, 0])
    ours = backward(model, x, y, label_smoothing=0.2, input_grad=True)
    finite_difference_check(model, x, ce(y, 0.2), ours)


def test_pooler_objective_fd():
    model = tiny_model(head=False, pooler=True, seed=2, qkv_bias=False)
    x = clip(model)
    w = np.random.default_rng(3).standard_normal((2, 8))
    f = lambda m, x: float((m(x).pooler_output * w).sum())  # noqa: E731
    ours = backward(model, x, objective=lambda o: ((o.pooler_output * w).sum(), {"pooler_output": w}), input_grad=True)
    finite_difference_check(model, x, f, ours)


def test_head_mask_fd():
    model = tiny_model(seed=4)
    x, y = clip(model), np.array([1, 1])
    hm = np.array([[0.5, 0.0], [1.5, 1.0]])
    ours = backward(model, x, y, head_mask=hm, input_grad=True)
    finite_difference_check(model, x, ce(y, head_mask=hm), ours)


def test_interpolate_pos_encoding_fd():
    """A 3 x 12 x 12 clip on a model made for 2 x 8 x 8: positions resized (time linear, space bicubic)."""
    model = tiny_model(seed=5)
    x, y = clip(model, frames=3, size=12), np.array([0, 2])
    ours = backward(model, x, y, interpolate_pos_encoding=True, input_grad=True)
    finite_difference_check(model, x, ce(y, interpolate_pos_encoding=True), ours, coords_per_tensor=6)


@pytest.mark.parametrize("hidden_p,attention_p", [(0.3, 0.0), (0.0, 0.4), (0.2, 0.3)])
def test_dropout_train_mode_fd(hidden_p, attention_p):
    model = tiny_model(seed=6, hidden_dropout_prob=hidden_p, attention_probs_dropout_prob=attention_p)
    x, y = clip(model), np.array([2, 1])

    def f(m, x):  # the same masks at every call: a fresh generator with the same seed
        out = vivit_forward(m.params, m.config, x, tap=Dropout(m.config, np.random.default_rng(7)))
        return cross_entropy(out.logits, y)[0]

    ours = backward(model, x, y, train=True, rng=np.random.default_rng(7), input_grad=True)
    assert ours.loss == pytest.approx(f(model, x), rel=1e-12)
    finite_difference_check(model, x, f, ours)


def test_finite_difference_check_catches_a_transposed_gradient():
    model = tiny_model(seed=1)
    x, y = clip(model), np.array([2, 0])
    ours = backward(model, x, y, input_grad=True)
    o = ours.params["blocks"][0]["attn"]["o"]
    o["w"] = o["w"].T.copy()  # [D, D]: a transposed weight gradient has the right shape
    with pytest.raises(AssertionError, match="finite differences disagree"):
        finite_difference_check(model, x, ce(y), ours)


def test_backward_says_which_tapped_intermediate_is_missing(monkeypatch):
    """The backward depends on encoder_block tapping SAVED's names; if the forward stops doing so, it says which."""
    import minivivit.grad.block as block

    real = block.BlockRecorder.__call__
    monkeypatch.setattr(block.BlockRecorder, "__call__",
                        lambda self, name, x: x if name.endswith(".fc1") else real(self, name, x))
    model = tiny_model(seed=1)
    with pytest.raises(RuntimeError, match=r"did not tap \['fc1'\]"):
        backward(model, clip(model), np.array([0, 1]))
