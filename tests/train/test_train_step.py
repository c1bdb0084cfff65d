"""Gradient accumulation, train / eval mode, checkpoints and resume."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="accumulation parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import random_clip, random_hf_model, to_minivivit  # noqa: E402

import minivivit  # noqa: E402
from minivivit.convert.hf import hf_state_to_params  # noqa: E402
from minivivit.grad import backward  # noqa: E402
from minivivit.train import AdamW, accumulate, evaluate, load_checkpoint, save_checkpoint, train_step  # noqa: E402
from minivivit.weights import flatten_params, map_params  # noqa: E402


def test_accumulated_micro_batches_equal_torch_full_batch():
    """Micro-batches of 1 and 2 clips, weighted by size, = torch's gradient of the mean loss over 3 clips."""
    hf = random_hf_model("classifier", seed=60)
    model = to_minivivit(hf)
    x, y = random_clip(model.config, batch=3, seed=8), np.array([0, 4, 2])
    loss = torch.nn.functional.cross_entropy(hf(torch.from_numpy(x)).logits, torch.from_numpy(y))
    loss.backward()
    ref = hf_state_to_params({k: p.grad.numpy() for k, p in hf.named_parameters()}, model.config)
    acc = accumulate(None, backward(model, x[:1], y[:1]).params, 1)
    acc = accumulate(acc, backward(model, x[1:], y[1:]).params, 2)
    ours = map_params(lambda a: a / 3, acc)
    a, b = flatten_params(ours), flatten_params(ref)
    errs = {k: float(np.abs(a[k] - b[k]).max() / max(1, np.abs(b[k]).max())) for k in b}
    assert max(errs.values()) <= 1e-4, {k: v for k, v in errs.items() if v > 1e-4}


def small_task(seed=0, **overrides):
    hf = random_hf_model("classifier", seed=seed, **overrides)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=4, seed=seed + 1)
    return model, x, np.array([0, 1, 2, 3])


def test_train_steps_fit_a_batch_and_eval_mode_has_no_dropout():
    model, x, y = small_task(61, hidden_dropout_prob=0.1)
    before = evaluate(model, [(x, y)])
    opt = AdamW(model.params, lr=3e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    stats = [train_step(model, opt, [(x[:2], y[:2]), (x[2:], y[2:])], rng=rng, max_grad_norm=1.0) for _ in range(25)]
    after = evaluate(model, [(x, y)])
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] == 1.0, (before, after)
    assert all(s["clips"] == 4 for s in stats) and stats[0]["grad_norm"] > 0
    # eval mode is deterministic; a train-mode step sees dropout, so its loss differs from eval's
    assert evaluate(model, [(x, y)]) == after
    p0 = map_params(np.copy, model.params)
    tr = train_step(model, AdamW(model.params, lr=0.0, weight_decay=0.0), [(x, y)], rng=rng)
    assert abs(tr["loss"] - after["loss"]) > 1e-4
    no = train_step(model, AdamW(model.params, lr=0.0, weight_decay=0.0), [(x, y)], train=False)
    assert no["loss"] == pytest.approx(after["loss"], rel=1e-5)
    for a, b in zip(flatten_params(p0).values(), flatten_params(model.params).values()):
        np.testing.assert_array_equal(a, b)  # lr 0, no decay: nothing moved


def run(model, opt, x, y, rng, steps):
    for _ in range(steps):
        train_step(model, opt, [(x, y)], rng=rng, lr=1e-3, max_grad_norm=0.5)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    model_a, x, y = small_task(62, attention_probs_dropout_prob=0.2, hidden_dropout_prob=0.1)
    model_b = minivivit.Model(map_params(np.copy, model_a.params), model_a.config)
    opt_a, opt_b = AdamW(model_a.params, weight_decay=0.05), AdamW(model_b.params, weight_decay=0.05)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    run(model_a, opt_a, x, y, rng_a, 4)
    run(model_b, opt_b, x, y, rng_b, 2)
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model_b, opt_b, step=2, rng=rng_b, extra={"epoch": 0})
    del model_b, opt_b, rng_b
    ck = load_checkpoint(path)
    assert ck["step"] == 2 and ck["extra"] == {"epoch": 0} and ck["optimizer"].t == 2
    run(ck["model"], ck["optimizer"], x, y, ck["rng"], 2)
    for k, v in flatten_params(model_a.params).items():
        np.testing.assert_array_equal(flatten_params(ck["model"].params)[k], v, err_msg=k)
    for k, v in flatten_params(opt_a.v).items():
        np.testing.assert_array_equal(flatten_params(ck["optimizer"].v)[k], v, err_msg=k)


def test_checkpoint_is_atomic_and_refuses_to_overwrite(tmp_path):
    model, x, y = small_task(63)
    opt = AdamW(model.params)
    path = save_checkpoint(tmp_path / "c.safetensors", model, opt, step=0)
    with pytest.raises(FileExistsError, match="--force"):
        save_checkpoint(path, model, opt, step=1)
    save_checkpoint(path, model, opt, step=1, overwrite=True)
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temporary files left
    model.save(tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match="not a minivivit training checkpoint"):
        load_checkpoint(tmp_path / "weights.safetensors")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")
