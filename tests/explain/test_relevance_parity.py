"""GAE and gradient-weighted rollout against an independent implementation with torch autograd on HF's own
VivitForVideoClassification (random weights, eager attention): the paper's matrix recursion on the attention
weights HF returns and their .grad, against minivivit's streamed CLS-row vector. Measure:
max |ours - torch| / max |torch| <= 1e-4 in float32 (relative to the map's own scale, stricter than
the issue's max(1, max |torch|): relevance values are ~0.1)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="explanation parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import EXPLAIN_CONFIGS, random_clip, random_hf_model, to_minivivit
from torch_relevance import torch_gae, torch_grad_rollout, torch_maps

from minivivit.explain import explain

pytestmark = pytest.mark.torch
TOL = 1e-4
CONFIGS = EXPLAIN_CONFIGS + [
    ("tubelet-1x8x16-non-square", {"image_size": [32, 48], "tubelet_size": [1, 8, 16], "num_frames": 3}),
]


def rel(ours, ref):
    ref = ref.detach().numpy()
    assert ours.shape == ref.shape, f"{ours.shape} vs {ref.shape}"
    return float(np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name,overrides", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_gae_and_grad_rollout_equal_torch_autograd_on_hf(name, overrides):
    hf = random_hf_model("classifier", seed=11, **overrides)
    model = to_minivivit(hf)
    x = random_clip(model.config, batch=2, seed=5)
    maps = {}
    for target in (None, 0, 3):
        attn, grads, t = torch_maps(hf, x, target)
        for method, ref_fn in (("gae", torch_gae), ("grad-rollout", torch_grad_rollout)):
            ref = ref_fn(attn, grads)  # [B, P]
            ours = explain(model, x, method=method, target=target)
            assert list(ours.target) == t.tolist()
            err = rel(ours.relevance, ref)
            assert err <= TOL, f"{name} {method} target={target}: rel err {err:.2e} > {TOL}"
            maps[method, target] = ref.numpy()
    for method in ("gae", "grad-rollout"):  # two classes, two explanations (the reference's, which ours equal)
        a, b = maps[method, 0], maps[method, 3]
        diff = np.abs(a - b).max() / np.abs(a).max()
        assert diff > 1e-2, f"{name} {method}: the maps of targets 0 and 3 differ by only {diff:.1e} (relative)"
