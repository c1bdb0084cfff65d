"""AdamW, clipping and the schedule against torch.optim.AdamW, clip_grad_norm_ and HF's cosine schedule.

Measure: after 20 steps from the same start, max |ours - torch| / max(1, max |torch|) <= 1e-6 per
parameter (float32), and the same for AdamW's moments.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="optimiser parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from minivivit.train import AdamW, clip_grad_norm_, global_norm, no_decay_for_norms_and_biases, warmup_cosine  # noqa: E402
from minivivit.weights import flatten_params  # noqa: E402

TOL = 1e-6


def rel(a, b):
    b = b.detach().numpy() if hasattr(b, "detach") else b
    return float(np.abs(a.astype(np.float64) - b).max() / max(1.0, np.abs(b).max()))


def start(seed=0):
    rng = np.random.default_rng(seed)
    return {"blocks": [{"attn": {"q": {"w": rng.standard_normal((6, 6)).astype(np.float32),
                                       "b": rng.standard_normal(6).astype(np.float32)}}}],
            "norm": {"g": (1 + 0.1 * rng.standard_normal(5)).astype(np.float32)},
            "head": {"w": (3 * rng.standard_normal((4, 3))).astype(np.float32)}}


def grad_np(p, c):
    return {k: (c[k] * np.cos(v) + 0.3 * v).astype(np.float32) for k, v in p.items()}  # of sum(c sin p) + 0.15 p^2


@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("schedule", [False, True])
@pytest.mark.parametrize("selective_decay", [False, True])
def test_adamw_20_steps_equal_torch(clip, schedule, selective_decay):
    params = start()
    flat = flatten_params(params)
    c = {k: np.random.default_rng(len(k)).standard_normal(v.shape).astype(np.float32) * 4 for k, v in flat.items()}
    lr, wd, total, warmup = 0.05, 0.1, 20, 5
    decay = no_decay_for_norms_and_biases if selective_decay else None
    tp = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in flat.items()}
    groups = [{"params": [tp[k] for k in tp if decay is None or decay(k)], "weight_decay": wd},
              {"params": [tp[k] for k in tp if decay is not None and not decay(k)], "weight_decay": 0.0}]
    topt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.8, 0.95), eps=1e-6)
    sched = transformers.get_cosine_schedule_with_warmup(topt, warmup, total) if schedule else None
    ours = AdamW(params, lr=lr, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd, decay=decay)
    clipped = 0
    for step in range(total):
        topt.zero_grad()
        loss = sum((torch.from_numpy(c[k]) * torch.sin(p)).sum() + 0.15 * (p * p).sum() for k, p in tp.items())
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(list(tp.values()), clip)
        topt.step()
        if sched:
            sched.step()
        g = grad_np(flat, c)
        if clip:
            clipped += global_norm(g) > clip
            clip_grad_norm_(g, clip)
        ours.step(params, {"blocks": [{"attn": {"q": {"w": g["blocks.0.attn.q.w"], "b": g["blocks.0.attn.q.b"]}}}],
                           "norm": {"g": g["norm.g"]}, "head": {"w": g["head.w"]}},
                  lr=lr * warmup_cosine(step, total, warmup) if schedule else None)
    assert clip is None or clipped >= 10, "clipping never acted: the test would not see it"
    errs = {k: rel(flat[k], tp[k]) for k in flat}
    state = topt.state
    errs.update({f"m.{k}": rel(flatten_params(ours.m)[k], state[tp[k]]["exp_avg"]) for k in flat})
    errs.update({f"v.{k}": rel(flatten_params(ours.v)[k], state[tp[k]]["exp_avg_sq"]) for k in flat})
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f"AdamW differs from torch: {bad}"
    moved = max(rel(flat[k], start()["head"]["w"]) for k in ["head.w"])
    assert moved > 1e-2, "the parameters barely moved: the comparison would be vacuous"


def test_adamw_detects_a_wrong_eps_placement(monkeypatch):
    """The 20-step comparison can fail: eps inside the square root (a common variant) is caught."""
    import minivivit.train.optim as optim

    real_sqrt = np.sqrt
    monkeypatch.setattr(optim.np, "sqrt", lambda v: real_sqrt(v + 1e-6))
    try:
        with pytest.raises(AssertionError, match="AdamW differs from torch"):
            test_adamw_20_steps_equal_torch(None, False, False)
    finally:
        monkeypatch.undo()


def test_clip_grad_norm_equals_torch():
    rng = np.random.default_rng(2)
    grads = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": [rng.standard_normal(7).astype(np.float32)]}
    tg = [torch.from_numpy(grads["a"].copy()), torch.from_numpy(grads["b"][0].copy())]
    ps = [torch.nn.Parameter(torch.zeros_like(t)) for t in tg]
    for p, t in zip(ps, tg):
        p.grad = t
    tnorm = torch.nn.utils.clip_grad_norm_(ps, 1.5)
    norm = clip_grad_norm_(grads, 1.5)
    assert abs(norm - tnorm.item()) <= 1e-6 * norm
    assert rel(grads["a"], ps[0].grad) <= 1e-7 and rel(grads["b"][0], ps[1].grad) <= 1e-7
    assert abs(global_norm(grads) - 1.5) < 1e-5
    small = {"a": np.full(3, 0.1, np.float32)}
    clip_grad_norm_(small, 10.0)
    assert np.allclose(small["a"], 0.1)  # below the threshold: unchanged (up to the factor 1)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(small, 0)


def test_warmup_cosine_equals_transformers_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = transformers.get_cosine_schedule_with_warmup(opt, num_warmup_steps=7, num_training_steps=50)
    for step in range(60):
        assert warmup_cosine(step, 50, 7) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-15), step
        opt.step()
        sched.step()
    assert warmup_cosine(0, 50, 7) == 0.0 and warmup_cosine(7, 50, 7) == 1.0 and warmup_cosine(50, 50, 7) == 0.0


def test_adamw_rejects_bad_settings_and_mismatched_grads():
    with pytest.raises(ValueError, match="betas"):
        AdamW(start(), betas=(1.0, 0.9))
    opt = AdamW(start())
    with pytest.raises(ValueError, match="grads do not match params"):
        opt.step(start(), {"head": {"w": np.zeros((4, 3), np.float32)}})
