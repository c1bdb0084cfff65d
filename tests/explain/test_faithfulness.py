"""The perturbation test: removal orders, removed pixels, areas, and a model whose evidence is known (the logit
is a sum over tubelets) where the exact relevance must beat the random and the reversed order;
`minivivit explain-eval` end to end (files, determinism, errors)."""

import csv
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import random_clip, random_model

from minivivit.cli import main
from minivivit.explain.faithfulness import (
    FRACTIONS,
    auc,
    evaluate,
    perturbation_curves,
    removal_order,
    remove_tubelets,
)
from minivivit.explain.methods import Explanation, per_tubelet
from minivivit.tokens import TokenMap


def test_removal_orders_and_ties():
    rel = np.array([0.1, 0.5, 0.5, -1.0, 0.3])
    tiebreak = np.array([4, 2, 0, 1, 3])  # 2 ranks before 1
    assert list(removal_order(rel, "positive", tiebreak)) == [2, 1, 4, 0, 3]
    assert list(removal_order(rel, "negative", tiebreak)) == [3, 0, 4, 2, 1]
    with pytest.raises(ValueError, match="positive"):
        removal_order(rel, "sideways", tiebreak)


def test_remove_tubelets_sets_exactly_their_pixels(tiny):
    x = random_clip(tiny, seed=2) + 5.0  # no pixel is 0 before
    tokens = TokenMap.for_config(tiny)
    out = remove_tubelets(x, tokens, [0, 5], value=0.0)
    zero = out == 0.0
    for k, removed in ((1, True), (6, True), (2, False)):
        f, r, c = tokens.box(k)
        assert zero[:, f.start:f.stop, :, r.start:r.stop, c.start:c.stop].all() == removed
    assert zero.sum() == 2 * 2 * 16 * 16 * 3 and (x != 0).all()


def test_auc_is_the_trapezoid_rule():
    assert auc([0, 0.5, 1], [1, 1, 0]) == pytest.approx(0.75)
    assert auc(FRACTIONS, np.ones(len(FRACTIONS))) == pytest.approx(1.0)
    assert auc([0, 0.1, 0.2], [2, 1, 0]) == pytest.approx(1.0)  # divided by the width 0.2: the mean height


def test_curves_start_at_the_clean_logit_and_end_at_the_empty_clip(model, clip):
    order = np.arange(8)
    lg, acc = perturbation_curves(model, clip, order, target=2, label=2)
    assert lg[0] == pytest.approx(model(clip).logits[0, 2], rel=1e-5)
    assert lg[-1] == pytest.approx(model(np.zeros_like(clip)).logits[0, 2], rel=1e-5)
    assert set(np.unique(acc)) <= {0.0, 1.0}


def test_the_true_relevance_wins_on_a_model_whose_evidence_is_known(monkeypatch):
    """A linear "model" whose logits are w @ (each tubelet's mean pixel), so the true contribution of tubelet j
    to the target logit is w[target, j] * mean_j, and removing it (pixels 0) removes exactly that. explain() is
    patched to return it ('exact') or its negative ('reversed'): exact must beat random on both tests, and
    random must beat reversed."""
    import minivivit.explain.faithfulness as faith

    m = random_model(seed=0)
    tokens = TokenMap.for_config(m.config)
    w = np.random.default_rng(1).standard_normal((m.config.num_labels, tokens.num_patches))  # [C, P]

    def means(x):  # [B, T, C, H, W] -> [B, P]
        return per_tubelet(x, m.config.tubelet_size) / (2 * 16 * 16 * 3)

    class Linear:
        config = m.config

        def __call__(self, x, backend="numpy"):
            return SimpleNamespace(logits=means(x) @ w.T)  # [B, C]

    def fake_explain(model, x, method, target, **kw):
        contrib = w[target] * means(x)[0]  # [P]
        return Explanation(relevance=(contrib if method == "exact" else -contrib)[None], method=method,
                           target=np.array([target]), logits=None, tokens=tokens)

    monkeypatch.setattr(faith, "explain", fake_explain)
    clips = [(random_clip(m.config, seed=s) + 1.0, None) for s in range(6)]
    table = {r["method"]: r for r in evaluate(Linear(), clips, ["exact", "reversed"], seed=0).table()}
    pos = [table[k]["positive_auc_logit"] for k in ("exact", "random", "reversed")]
    neg = [table[k]["negative_auc_logit"] for k in ("exact", "random", "reversed")]
    assert pos[0] < pos[1] < pos[2], pos
    assert neg[0] > neg[1] > neg[2], neg


def test_explain_eval_cli_writes_the_table_and_is_deterministic(tmp_path, capsys):
    m = random_model(seed=4, image_size=32, num_frames=4, num_labels=4)
    m.save(tmp_path / "m.safetensors")
    args = ["explain-eval", "--weights", str(tmp_path / "m.safetensors"), "--clips", "2", "--seed", "3",
            "--methods", "rollout,gae,ig", "--ig-steps", "2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = ((tmp_path / d / "faithfulness.csv").read_text() for d in "ab")
    assert a == b
    rows = list(csv.DictReader((tmp_path / "a" / "faithfulness.csv").read_text().splitlines()))
    assert [r["method"] for r in rows] == ["rollout", "gae", "ig", "random"]
    curves = list(csv.DictReader((tmp_path / "a" / "curves.csv").read_text().splitlines()))
    assert len(curves) == (3 * 2 + 1) * len(FRACTIONS)
    assert "| gae |" in (tmp_path / "a" / "faithfulness.md").read_text()
    assert (tmp_path / "a" / "faithfulness.png").stat().st_size > 10_000
    assert main([*args, "--out", str(tmp_path / "a")]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--fractions", "0,0.25,0.5", "--out", str(tmp_path / "c")]) == 0
    assert "fractions 0, 0.25, 0.5" in (tmp_path / "c" / "faithfulness.md").read_text()


@pytest.mark.parametrize("extra,message", [
    (["--methods", "gae,gradcam"], "unknown ['gradcam']"),
    (["--clips", "0"], "at least 1"),
    (["--fractions", "0,0.5,0.3"], "increasing"),
    (["--fractions", "0:2:0.5"], "in [0, 1]"),
    (["--fractions", "a:b"], "START:STOP:STEP"),
])
def test_explain_eval_bad_arguments(tmp_path, capsys, extra, message):
    assert main(["explain-eval", "--out", str(tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_explain_eval_reads_a_folder_of_videos_with_labels_from_folder_names(tmp_path):
    m = random_model(seed=5, image_size=32, num_frames=4, num_labels=2, id2label={0: "a", 1: "b"})
    m.save(tmp_path / "m.safetensors")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        np.save(tmp_path / "data" / name / "clip.npy", rng.integers(0, 256, (6, 40, 36, 3), dtype=np.uint8))
    assert main(["explain-eval", str(tmp_path / "data"), "--weights", str(tmp_path / "m.safetensors"),
                 "--methods", "gae", "--out", str(tmp_path / "o")]) == 0
    assert "over 2 clips" in (tmp_path / "o" / "faithfulness.md").read_text()
