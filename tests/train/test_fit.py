"""minivivit.train.fit: learning, resume = an uninterrupted run, parameter groups, accumulation, checkpoints."""

import numpy as np
import pytest
from conftest import random_model

import minivivit
from minivivit.train import ArrayClips, FitOptions, fit, load_checkpoint
from minivivit.weights import flatten_params, map_params


def separable(config, n, seed):
    """Noise clips whose class c (0..3) shifts every pixel of colour channel c % 2 by +1 (c < 2) or -1:
    every tubelet carries the class, so a tiny model learns it in a few steps."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, config.num_frames, 3, *config.image_hw)).astype(np.float32)
    y = rng.integers(0, 4, n)
    for i, c in enumerate(y):
        x[i, :, c % 2] += 1.0 if c < 2 else -1.0  # channel 0 or 1, brighter or darker
    return ArrayClips(x, y)


def copy_model(m):
    return minivivit.Model(map_params(np.copy, m.params), m.config)


def assert_same_params(a, b):
    fa, fb = flatten_params(a.params), flatten_params(b.params)
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def test_fit_learns_and_reports_every_epoch(capsys):
    model = random_model(1, num_labels=4)
    train, val = separable(model.config, 96, 0), separable(model.config, 32, 1)
    lines = []
    res = fit(model, train, val, FitOptions(epochs=4, batch_size=16, lr=3e-3, warmup_steps=2), log=lines.append)
    h = res.history
    assert [r["epoch"] for r in h] == list(range(4)) and res.step == 24 and not res.stopped_early
    assert h[-1]["val_accuracy"] == 1.0 and h[-1]["val_loss"] < 0.5 * h[0]["val_loss"], h
    assert len(lines) == 4 and "val acc" in lines[-1]
    err = capsys.readouterr().err  # the progress bar
    assert "loss=" in err and "acc=" in err and "clips_s=" in err


DROPOUT = {"num_labels": 4, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


@pytest.mark.parametrize("stop", [3, 4])  # mid-epoch and at an epoch's end (4 steps per epoch)
def test_resume_equals_an_uninterrupted_run(tmp_path, stop):
    """k steps, a checkpoint, a fresh process-like restart, k more = 2k uninterrupted steps, bit for bit
    (dropout on, accumulation, warm-up + cosine, clipping)."""
    base = random_model(2, **DROPOUT)
    train, val = separable(base.config, 26, 2), separable(base.config, 6, 3)  # 26 clips: a short last step
    opts = FitOptions(epochs=2, batch_size=2, accumulation=2, lr=2e-3, warmup_steps=2, max_grad_norm=0.5, seed=7,
                      progress=False)
    whole = copy_model(base)
    full = fit(whole, train, val, opts, log=None)
    assert full.step == 14  # ceil(26 / 4) = 7 steps per epoch

    part = copy_model(base)
    ck = tmp_path / "run.ckpt.safetensors"
    first = fit(part, train, val, FitOptions(**{**opts.__dict__, "stop_at_step": stop}), checkpoint=ck, log=None)
    assert first.stopped_early and first.step == stop and load_checkpoint(ck)["step"] == stop
    restarted = copy_model(base)  # a new session: the model it started from, then the checkpoint
    second = fit(restarted, train, val, opts, checkpoint=ck, resume=True, log=None)
    assert second.step == 14 and not second.stopped_early
    assert_same_params(restarted, whole)
    drop = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "clips_per_second")} for r in h]
    assert drop(second.history) == drop(full.history)


def test_accumulation_equals_the_bigger_batch():
    base = random_model(3, num_labels=4)
    train = separable(base.config, 16, 4)
    a, b = copy_model(base), copy_model(base)
    common = {"epochs": 1, "lr": 1e-3, "seed": 1, "progress": False}
    fit(a, train, None, FitOptions(batch_size=8, accumulation=1, **common), log=None)
    fit(b, train, None, FitOptions(batch_size=2, accumulation=4, **common), log=None)
    f0, fa, fb = (np.concatenate([v.ravel() for v in flatten_params(m.params).values()]) for m in (base, a, b))
    # Adam's first steps are ~lr * sign(g): a gradient component near 0 whose sign rounding flips moves by ~lr,
    # so compare the whole update, not each element: rounding gives a tiny fraction of it, a wrong sum most of it.
    off = float(np.abs(fa - fb).mean() / np.abs(fa - f0).mean())
    assert np.abs(fa - f0).mean() > 1e-4 and off < 1e-2, off
    print(f"accumulation 4 x 2 vs 1 x 8: mean |difference| / mean |update| = {off:.1e}")


@pytest.mark.parametrize("group, trained_prefixes", [
    ({"head_only": True}, ("head.",)),
    ({"last_k_blocks": 1}, ("blocks.1.", "norm.", "head.")),
])
def test_parameter_groups_freeze_the_rest(tmp_path, group, trained_prefixes):
    base = random_model(4, num_labels=4)
    model = copy_model(base)
    ck = tmp_path / "c.safetensors"
    fit(model, separable(base.config, 8, 5), None, FitOptions(epochs=2, batch_size=4, lr=1e-2, progress=False, **group),
        checkpoint=ck, log=None)
    before, after = flatten_params(base.params), flatten_params(model.params)
    for k in before:
        changed = not np.array_equal(before[k], after[k])
        assert changed == k.startswith(trained_prefixes), k
    state = load_checkpoint(ck)["optimizer"].state_dict()
    assert set(state["m"]) == {k for k in before if k.startswith(trained_prefixes)}  # no AdamW state when frozen


def test_checkpoint_rules(tmp_path):
    model = random_model(5, num_labels=4)
    train = separable(model.config, 8, 6)
    ck = tmp_path / "c.safetensors"
    opts = FitOptions(epochs=1, batch_size=4, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(model, train, None, opts, checkpoint=ck, resume=True, log=None)
    fit(model, train, None, opts, checkpoint=ck, log=None)
    with pytest.raises(FileExistsError, match="resume=True"):
        fit(model, train, None, opts, checkpoint=ck, log=None)
    with pytest.raises(ValueError, match="other options.*lr"):
        fit(model, train, None, FitOptions(epochs=1, batch_size=4, lr=0.5, progress=False), checkpoint=ck,
            resume=True, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # atomic: no temporary left
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        FitOptions(batch_size=0)
    with pytest.raises(ValueError, match="not both"):
        FitOptions(head_only=True, last_k_blocks=1)
    with pytest.raises(ValueError, match="has 2 blocks"):
        fit(model, train, None, FitOptions(last_k_blocks=3, progress=False), log=None)


class Interrupting(ArrayClips):
    def __init__(self, src, after):
        super().__init__(src.x, src.y)
        self.calls, self.after = 0, after

    def batch(self, indices):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return super().batch(indices)


def test_ctrl_c_keeps_the_steps_taken(tmp_path):
    base = random_model(6, num_labels=4)
    src = separable(base.config, 16, 7)
    opts = FitOptions(epochs=1, batch_size=4, progress=False)
    whole = copy_model(base)
    fit(whole, src, None, opts, log=None)
    ck, part = tmp_path / "c.safetensors", copy_model(base)
    with pytest.raises(KeyboardInterrupt):
        fit(part, Interrupting(src, after=2), None, opts, checkpoint=ck, log=None)
    assert load_checkpoint(ck)["step"] == 2
    resumed = copy_model(base)
    fit(resumed, src, None, opts, checkpoint=ck, resume=True, log=None)
    assert_same_params(resumed, whole)
