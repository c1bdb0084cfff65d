"""Sanity checks of the class-specific explanations on the bundled demo model and its own task (the visits task,
minivivit.data.make_visit_clip: a small bright object visits the four quadrants one after another over a textured
background; the label is the quadrant of the last visit, so the evidence is the object's pixels in the last
visit — the last time slice of tubelets — known exactly from the clip's masks).

- model randomisation (Adebayo et al., NeurIPS 2018): maps of the trained model and of the same architecture
  with random weights (weights.init_params) are unrelated: mean Spearman rank correlation below 0.5;
- planted evidence: the positive relevance concentrates on the evidence: the object's tubelets in the last time
  slice (~1.4% of the tubelets) get >= 5x their share of the tubelets, and the object's tubelets at any time
  (~6.3%) >= 3x theirs (a map unrelated to the object gets 1x);
- class sensitivity: the maps of the predicted class and of another class differ (mean rank correlation < 0.7),
  while raw attention and rollout are the same for every class by construction.
Measured with the bundled model (visits task) on these 6 clips, gae / grad-rollout / transformer attribution:
randomisation 0.02 / 0.07 / 0.02; last-visit object share 0.34 / 0.14 / 0.54 (its base 0.014); object share
0.43 / 0.29 / 0.60 (its base 0.063); class correlation 0.52 / 0.51 / 0.36.
"""

import numpy as np
import pytest

import minivivit
from minivivit.checkpoint import default_weights
from minivivit.data import make_visit_clip
from minivivit.explain import explain
from minivivit.video.preprocess import preprocess_for
from minivivit.weights import init_params

CLIPS = 6
METHODS = ("gae", "grad-rollout", "transformer-attribution")


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))  # ranks (no ties among float relevances)
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def demo():
    model = minivivit.load(default_weights())
    c = model.config
    clips = [make_visit_clip(1, i, num_frames=c.num_frames, size=c.image_hw[0]) for i in range(CLIPS)]
    return model, [(preprocess_for(c, k.frames), k) for k in clips]


def object_tubelets(config, masks):
    """bool [P]: the tubelets that contain any of the object's pixels (masks [T, H, W]), in token order."""
    (tt, ph, pw), (t, h, w) = config.tubelet_size, config.grid
    return masks[:t * tt].reshape(t, tt, h, ph, w, pw).any(axis=(1, 3, 5)).ravel()


def last_visit_tubelets(config, masks):
    """bool [P]: object_tubelets of the last time slice only (the last visit, which decides the label)."""
    last = object_tubelets(config, masks).reshape(config.grid)  # [t, h, w]
    last[:-1] = False
    return last.ravel()


@pytest.mark.parametrize("method", METHODS)
def test_model_randomisation_changes_the_maps(demo, method):
    model, clips = demo
    rand = minivivit.Model(init_params(model.config, 0), model.config)
    corr = []
    for x, _ in clips:
        e = explain(model, x, method)
        corr.append(spearman(e.relevance[0], explain(rand, x, method, target=int(e.target[0])).relevance[0]))
    assert np.mean(corr) < 0.5, f"{method}: trained vs random-weight maps correlate {np.round(corr, 2)}"


@pytest.mark.parametrize("method", METHODS)
def test_planted_evidence_gets_most_of_the_relevance(demo, method):
    model, clips = demo
    shares, base, last_shares, last_base = [], [], [], []
    for x, clip in clips:
        e = explain(model, x, method)
        assert e.target[0] == clip.label, "the demo model should get its own task right on these clips"
        obj = object_tubelets(model.config, clip.masks)  # [P], token order: time slice is the slowest axis
        last = last_visit_tubelets(model.config, clip.masks)  # [P]
        pos = np.maximum(e.relevance[0], 0)
        shares.append(pos[obj].sum() / pos.sum())
        base.append(obj.mean())
        last_shares.append(pos[last].sum() / pos.sum())
        last_base.append(last.mean())
    assert np.mean(last_shares) >= 5 * np.mean(last_base), (np.round(last_shares, 2), np.mean(last_base))
    assert np.mean(shares) >= 3 * np.mean(base), (np.round(shares, 2), np.mean(base))


def test_class_sensitivity(demo):
    model, clips = demo
    for method in METHODS:
        corr = []
        for x, _ in clips:
            e = explain(model, x, method)
            other = (int(e.target[0]) + 1) % model.config.num_labels
            corr.append(spearman(e.relevance[0], explain(model, x, method, target=other).relevance[0]))
        assert np.mean(corr) < 0.7, f"{method}: maps of two classes correlate {np.round(corr, 2)}"
    x = clips[0][0]
    for method in ("raw", "rollout"):  # class-agnostic: the target changes nothing
        np.testing.assert_array_equal(explain(model, x, method, target=0).relevance,
                                      explain(model, x, method, target=1).relevance)
