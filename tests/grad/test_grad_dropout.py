"""Training-mode dropout: with the same masks, gradients equal torch autograd through HF's own modules.

HF's model runs in eval mode (its own dropout off) with the masks minivivit drew put in at HF 4.x's
sites by forward hooks (embeddings, o_proj, the activation, fc2) and by the attention function (probs).
Measure as in test_grad_parity.py: max |ours - torch| / max(1, max |torch|) <= 1e-4 (float32).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="gradient parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import random_clip, random_hf_model, to_minivivit  # noqa: E402
from torch_reference import attention_modules, grad_errors, rel, torch_backward  # noqa: E402
from transformers import AttentionInterface  # noqa: E402

from minivivit.grad import Dropout, backward  # noqa: E402
from minivivit.model import vivit_forward  # noqa: E402

TOL = 1e-4


def masked_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    w = torch.softmax(torch.matmul(query, key.transpose(2, 3)) * scaling, dim=-1)
    w = w * module.minivivit_probs_mult  # the dropout multiplier minivivit drew
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


AttentionInterface.register("eager_fixed_dropout", masked_attention)


def install_masks(hf, drop: Dropout, B, N, F, D, nh):
    """Put minivivit's dropout multipliers into HF at HF 4.x's sites; return the hook handles."""
    base = hf.vivit if hasattr(hf, "vivit") else hf
    mult = lambda name, shape: torch.from_numpy(drop.multiplier(name, shape, np.float32))  # noqa: E731
    hooks = [base.embeddings.register_forward_hook(lambda m, i, o: o * mult("embed.out", (B, N, D)))]
    hf.set_attn_implementation("eager_fixed_dropout")
    for i, (layer, attn) in enumerate(zip(base.layers, attention_modules(hf))):
        name = f"blocks.{i}"
        attn.minivivit_probs_mult = torch.from_numpy(np.stack(
            [drop.multiplier(f"{name}.probs", (B, N, N), np.float32, head=h) if drop.attention_p else np.ones((B, N, N), np.float32)
             for h in range(nh)], 1))
        for module, site, shape in ((attn.o_proj, "attn_out", (B, N, D)), (layer.mlp.activation_fn, "act", (B, N, F)),
                                    (layer.mlp.fc2, "fc2", (B, N, D))):
            m = mult(f"{name}.{site}", shape)
            hooks.append(module.register_forward_hook(lambda mod, i, o, m=m: o * m))
    return hooks


@pytest.mark.parametrize("backend", ["numpy", "numba"])  # numba: its LayerNorm/activation kernels under dropout
@pytest.mark.parametrize("hidden_p,attention_p", [(0.25, 0.0), (0.0, 0.3), (0.1, 0.2)])
def test_dropout_gradients_equal_torch_with_the_same_masks(hidden_p, attention_p, backend):
    hf = random_hf_model("classifier", seed=50, hidden_dropout_prob=hidden_p, attention_probs_dropout_prob=attention_p)
    model = to_minivivit(hf)
    c = model.config
    x, y = random_clip(c, batch=2, seed=5), np.array([0, 3])
    B, N = 2, c.num_patches + 1
    install_masks(hf, Dropout(c, np.random.default_rng(11)), B, N, c.intermediate_size, c.hidden_size,
                  c.num_attention_heads)
    loss, grads, dx, dA = torch_backward(hf, x, labels=y)
    ours = backward(model, x, y, train=True, rng=np.random.default_rng(11), input_grad=True, backend=backend,
                    attention_grads="all" if backend == "numpy" else None)
    assert abs(ours.loss - loss) <= 1e-5 * max(1, loss)
    errs = grad_errors(ours.params, grads)
    errs["pixel_values"] = rel(ours.pixel_values, dx)
    errs.update({f"dL/dA[{i}]": rel(ours.attentions[i], a) for i, a in enumerate(dA) if ours.attentions is not None})
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f"dropout gradient parity failures: {bad}"
    eval_loss = backward(model, x, y).loss
    assert abs(eval_loss - loss) > 1e-3, "the masks changed nothing: the test would not see dropout"


def test_train_mode_differs_from_eval_and_p0_equals_eval():
    hf = random_hf_model("classifier", seed=51, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    model = to_minivivit(hf)
    x, y = random_clip(model.config, batch=2, seed=6), np.array([1, 2])
    ev = backward(model, x, y)
    tr = backward(model, x, y, train=True, rng=np.random.default_rng(0))
    tr2 = backward(model, x, y, train=True, rng=np.random.default_rng(1))
    assert abs(tr.loss - ev.loss) > 1e-3 and abs(tr.loss - tr2.loss) > 1e-4  # new masks for a new seed
    np.testing.assert_array_equal(backward(model, x, y, train=True, rng=np.random.default_rng(0)).output.logits,
                                  tr.output.logits)  # same seed, same masks
    zero = to_minivivit(random_hf_model("classifier", seed=51))  # same weights, p = 0
    z = backward(zero, x, y, train=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(z.output.logits, ev.output.logits)
    for a, b in zip(__import__("minivivit").weights.flatten_params(z.params).values(),
                    __import__("minivivit").weights.flatten_params(ev.params).values()):
        np.testing.assert_array_equal(a, b)


def test_dropout_statistics_and_edges():
    from minivivit import ViViTConfig

    c = ViViTConfig(hidden_dropout_prob=0.3, attention_probs_dropout_prob=1.0)
    d = Dropout(c, np.random.default_rng(0))
    r = d.multiplier("blocks.0.fc2", (400, 500), np.float32)
    assert abs((r == 0).mean() - 0.3) < 0.01 and np.allclose(r[r > 0], 1 / 0.7)  # inverted dropout, torch's scale
    assert abs(r.mean() - 1.0) < 0.01
    assert (d.multiplier("blocks.0.probs", (2, 3, 3), np.float32, head=0) == 0).all()  # p = 1 drops everything
    assert d.p("blocks.0.ln1") == 0 and d.p("embed.out") == 0.3 and d.p("blocks.3.probs") == 1.0
    np.testing.assert_array_equal(d.multiplier("blocks.0.fc2", (4, 5), np.float32),
                                  d.multiplier("blocks.0.fc2", (4, 5), np.float32))  # redrawn identically
    assert not np.array_equal(d.multiplier("blocks.0.fc2", (40, 5), np.float32),
                              d.multiplier("blocks.1.fc2", (40, 5), np.float32))
    with pytest.raises(TypeError, match="np.random.Generator"):
        Dropout(c, 0)
    with pytest.raises(ValueError, match="hidden_dropout_prob must be in"):
        Dropout(c, np.random.default_rng(0), hidden_p=1.5)


def test_dropout_tap_drives_the_ordinary_forward():
    """The training forward is model.vivit_forward with the Dropout tap: no second forward exists."""
    hf = random_hf_model("classifier", seed=52, hidden_dropout_prob=0.5)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=1, seed=7)
    a = vivit_forward(model.params, model.config, x, tap=Dropout(model.config, np.random.default_rng(3))).logits
    assert not np.allclose(a, model(x).logits)
