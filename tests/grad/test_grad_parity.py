"""Model-level gradients against torch autograd on HF's own VivitForVideoClassification / VivitModel.

Every parameter randomised (tests/reference.py), batch 2. Measure, per parameter, for dL/dx and for
dL/dA of every layer: max |ours - torch| / max(1, max |torch|) <= 1e-4 in float32.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="gradient parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import random_clip, random_hf_model, to_minivivit  # noqa: E402
from torch_reference import grad_errors, rel, set_head_mask, torch_backward  # noqa: E402

import minivivit.grad  # noqa: E402
from minivivit.grad import backward  # noqa: E402

TOL = 1e-4
# The backward's backends: "numba" runs LayerNorm/activation/attention backward on the numba kernels
# (grad/fast.py). Its attention kernel applies only when no dL/dA is asked for (it never builds the maps), so
# the numba runs compare parameters and dL/dx without attention_grads; the NumPy runs also compare dL/dA.
BACKENDS = ["numpy", "numba"]
# Every hidden_act transformers can build (selu is in minivivit but not in HF's ACT2FN: tested alone)
ACTS = ["gelu", "gelu_python", "gelu_10", "gelu_fast", "gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh",
        "gelu_accurate", "quick_gelu", "silu", "swish", "relu", "relu2", "relu6", "leaky_relu", "sigmoid", "tanh",
        "linear", "mish", "hardswish", "laplace", "sqrtsoftplus"]
STRUCTURE = [
    ("default", {}),
    ("no-qkv-bias", {"qkv_bias": False}),
    ("eps-1e-3", {"layer_norm_eps": 1e-3}),
    ("tubelet-3x16x16", {"tubelet_size": [3, 16, 16], "num_frames": 7}),  # 7 frames: one left over
    ("tubelet-1x4x4", {"tubelet_size": [1, 4, 4], "num_frames": 3, "image_size": 12}),
    ("5-heads", {"num_attention_heads": 5, "hidden_size": 40}),
    ("1-head-3-layers", {"num_attention_heads": 1, "num_hidden_layers": 3}),
    ("non-square", {"image_size": [32, 48], "tubelet_size": [2, 8, 16]}),
    ("pooler-gelu", {"pooler_act": "gelu"}),
]


def check(ours, ref_grads, ref_dx, ref_dA, tol=TOL):
    errs = grad_errors(ours.params, ref_grads)
    errs["pixel_values"] = rel(ours.pixel_values, ref_dx)
    for i, dA in enumerate(ref_dA if ours.attentions is not None else []):
        errs[f"dL/dA[{i}]"] = rel(ours.attentions[i], dA)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"gradient parity failures (tol {tol}): {bad}"
    return errs


def pooler_objective(weights):
    """A scalar of the pooler output, for torch and for minivivit: sum(w * pooler_output)."""
    return (lambda o: (o.pooler_output * torch.from_numpy(weights)).sum(),
            lambda o: (float((o.pooler_output * weights).sum()), {"pooler_output": weights}))


def run_classifier(name, seed, head_mask=None, backend="numpy", **overrides):
    hf = random_hf_model("classifier", seed=seed, **overrides)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=seed + 1)
    y = np.array([1, 4])
    if head_mask is not None:  # ours takes [nh] or [L, nh]; HF's attention function gets [L, nh]
        set_head_mask(hf, np.broadcast_to(head_mask, (model.config.num_hidden_layers, model.config.num_attention_heads)))
    loss, grads, dx, dA = torch_backward(hf, x, labels=y, label_smoothing=0.1)
    ours = backward(model, x, y, label_smoothing=0.1, input_grad=True, head_mask=head_mask, backend=backend,
                    attention_grads="all" if backend == "numpy" else None)
    assert abs(ours.loss - loss) <= 1e-5 * max(1, abs(loss))
    return check(ours, grads, dx, dA)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", ACTS)
def test_classifier_gradients_every_activation(act, backend):
    run_classifier(act, seed=abs(hash(act)) % 1000, backend=backend, hidden_act=act)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,overrides", STRUCTURE, ids=[s[0] for s in STRUCTURE])
def test_classifier_gradients_structure(name, overrides, backend):
    overrides = {k: v for k, v in overrides.items() if k != "pooler_act"}
    run_classifier(name, seed=abs(hash(name)) % 1000, backend=backend, **overrides)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,overrides", STRUCTURE, ids=[s[0] for s in STRUCTURE])
def test_base_model_pooler_objective_gradients(name, overrides, backend):
    hf = random_hf_model("base", seed=abs(hash(name)) % 1000 + 1, **overrides)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=2)
    w = np.random.default_rng(0).standard_normal((2, model.config.pooler_output_size)).astype(np.float32)
    t_obj, our_obj = pooler_objective(w)
    loss, grads, dx, dA = torch_backward(hf, x, objective=t_obj)
    ours = backward(model, x, objective=our_obj, input_grad=True, backend=backend,
                    attention_grads="all" if backend == "numpy" else None)
    assert abs(ours.loss - loss) <= 1e-5 * max(1, abs(loss))
    check(ours, grads, dx, dA)


def test_base_model_last_hidden_state_objective_without_pooler():
    hf = random_hf_model("base", seed=8, add_pooling_layer=False)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=3)
    w = np.random.default_rng(1).standard_normal((2, model.config.num_patches + 1, model.config.hidden_size))
    w = w.astype(np.float32)
    loss, grads, dx, dA = torch_backward(hf, x, objective=lambda o: (o.last_hidden_state * torch.from_numpy(w)).sum())
    ours = backward(model, x, objective=lambda o: ((o.last_hidden_state * w).sum(), {"last_hidden_state": w}),
                    input_grad=True, attention_grads="all")
    check(ours, grads, dx, dA)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", ["heads", "layers-heads"])
def test_head_mask_gradients(shape, backend):
    """head_mask as transformers 4.x applied it (probs * mask), non-binary values, a head switched off."""
    cfg = {"num_attention_heads": 3}
    hm = np.array([[1.0, 0.0, 0.5], [2.0, 1.0, 0.25]], np.float32)
    run_classifier(shape, seed=21, head_mask=hm[0] if shape == "heads" else hm, backend=backend, **cfg)


def test_attention_grads_subset_and_streaming_equal_the_full_set():
    hf = random_hf_model("classifier", seed=30)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=4)
    y = np.array([0, 2])
    _, _, _, dA = torch_backward(hf, x, labels=y)
    seen = {}
    g = backward(model, x, y, attention_grads=[-1],
                 on_attention_grad=lambda layer, h, a, da: seen.setdefault((layer, h), (a.copy(), da.copy())))
    assert sorted(g.attentions) == [1]
    assert rel(g.attentions[1], dA[1]) <= TOL
    nh = model.config.num_attention_heads
    assert sorted(seen) == [(i, h) for i in range(2) for h in range(nh)]
    for i in range(2):
        assert rel(np.stack([seen[i, h][1] for h in range(nh)], 1), dA[i]) <= TOL
    probs = model(x, output_attentions=True).attentions
    for i in range(2):  # the A handed to the callback is the forward's attention map
        np.testing.assert_allclose(np.stack([seen[i, h][0] for h in range(nh)], 1), probs[i], atol=1e-6)


def test_value_and_grad_nests_like_params():
    hf = random_hf_model("classifier", seed=31, qkv_bias=False)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=1, seed=5)
    loss, grads = minivivit.grad.value_and_grad(model, x, np.array([3]))
    from minivivit.weights import flatten_params

    a, b = flatten_params(grads), flatten_params(model.params)
    assert list(a) == list(b) and all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)
    assert isinstance(loss, float)


def test_planted_bug_transposed_weight_gradient_fails_parity(monkeypatch):
    """The check must be able to fail: transpose one square weight gradient (attention's output projection,
    [D, D], so no shape check can notice) and expect exactly that parameter to be reported."""
    import minivivit.grad.block as block

    real = block.linear_backward

    def planted(dy, x, w, bias=True):
        dx, dw, db = real(dy, x, w, bias)
        return dx, (dw.T if w is current_o[0] else dw), db

    hf = random_hf_model("classifier", seed=40)
    model = to_minivivit(hf)
    current_o = [model.params["blocks"][1]["attn"]["o"]["w"]]
    monkeypatch.setattr(block, "linear_backward", planted)
    x = random_clip(model.config, batch=2, seed=6)
    y = np.array([1, 2])
    loss, grads, dx, dA = torch_backward(hf, x, labels=y)
    ours = backward(model, x, y, input_grad=True, attention_grads="all")
    with pytest.raises(AssertionError, match=r"blocks\.1\.attn\.o\.w") as e:
        check(ours, grads, dx, dA)
    assert "blocks.0" not in str(e.value) and "pixel_values" not in str(e.value)


def test_errors_say_what_to_do():
    hf = random_hf_model("base", seed=41)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=1)
    with pytest.raises(ValueError, match="base model"):
        backward(model, x, np.array([0]))
    with pytest.raises(ValueError, match="exactly one of"):
        backward(model, x)
    with pytest.raises(ValueError, match="outputs are"):
        backward(model, x, objective=lambda o: (0.0, {"logits": np.zeros((1, 5))}))
    with pytest.raises(ValueError, match="rng="):
        backward(model, x, objective=lambda o: (0.0, {}), train=True)
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        backward(model, x, objective=lambda o: (0.0, {}), attention_grads=[7])
