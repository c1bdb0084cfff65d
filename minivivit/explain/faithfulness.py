"""Faithfulness of an explanation, measured: the perturbation test of Chefer, Gur & Wolf (CVPR 2021, sec. 5).

Tubelets are removed (their pixels set to `value`, 0 by default: the processor's normalisation mean,
which its normalisation maps to 0) in order of relevance, a fraction f of them at a time for f in
`fractions`, and the perturbed clips are run through the model:

    positive test  most relevant removed first: a faithful map makes the target logit / accuracy fall fast
                   (lower area under the curve is better)
    negative test  least relevant removed first: the model should keep its answer (higher area is better)
    random         a random order (one per clip, the same for every method): the baseline both should beat

The target is the class predicted on the clean clip; accuracy is against the clip's label. Ties in
relevance are broken in the clip's random order (never by token index, which would favour a corner).
Area under a curve: the trapezoid rule over the fractions, divided by their range's width (the plain area for
Chefer's 0, 0.1, ..., 1; the mean height for a finer grid such as 0, 0.02, ..., 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tokens import TokenMap
from .methods import explain

FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))  # 0, 0.1, ..., 1
ORDERS = ("positive", "negative", "random")


def removal_order(relevance, test: str, tiebreak) -> np.ndarray:
    """Tubelet indices [P] in the order they are removed. relevance [P]; test "positive" (decreasing relevance)
    or "negative" (increasing); tiebreak: a permutation of range(P) ranking equal values."""
    r = np.asarray(relevance, np.float64)
    key = -r if test == "positive" else r
    if test not in ("positive", "negative"):
        raise ValueError(f"test must be 'positive' or 'negative'; got {test!r}")
    rank = np.empty(len(r), np.int64)
    rank[np.asarray(tiebreak)] = np.arange(len(r))  # position of each tubelet in the tie-break order
    return np.lexsort((rank, key))  # by key, then by rank


def remove_tubelets(x, tokens: TokenMap, tubelets, value: float = 0.0) -> np.ndarray:
    """A copy of one clip x [1, T, C, H, W] with the pixels of `tubelets` (indices 0..P-1) set to value."""
    out = np.array(x, copy=True)
    tt, ph, pw = tokens.tubelet
    t, y, c = tokens.coords(np.asarray(tubelets, np.int64) + 1)  # token k = tubelet k - 1
    for ti, yi, ci in zip(np.atleast_1d(t), np.atleast_1d(y), np.atleast_1d(c)):
        out[:, ti * tt:(ti + 1) * tt, :, yi * ph:(yi + 1) * ph, ci * pw:(ci + 1) * pw] = value
    return out


def perturbation_curves(model, x, order, target: int, label: int, fractions=FRACTIONS, value: float = 0.0,
                        backend: str = "numpy"):
    """(target logit [F], correct [F] as 0/1) after removing the first round(f * P) tubelets of `order`, for
    each f in fractions; one batched forward of F clips."""
    tokens = TokenMap.for_config(model.config, np.shape(x))
    P = tokens.num_patches
    clips = [remove_tubelets(x, tokens, order[:round(f * P)], value) for f in fractions]  # F x [1, T, C, H, W]
    logits = model(np.concatenate(clips), backend=backend).logits  # [F, C]
    return logits[:, target], (np.argmax(logits, axis=-1) == label).astype(np.float64)


def auc(fractions, values) -> float:
    """Area under values(fraction) by the trapezoid rule, divided by the width of the fractions' range (so that
    fractions 0..0.2 and 0..1 both give the mean height; for 0..1 it is the plain area)."""
    f, v = np.asarray(fractions, np.float64), np.asarray(values, np.float64)
    return float(np.sum((f[1:] - f[:-1]) * (v[1:] + v[:-1]) / 2) / (f[-1] - f[0]))


def check_fractions(fractions) -> tuple:
    """At least two increasing fractions in [0, 1], as a tuple of floats; a clear error otherwise."""
    f = [float(v) for v in fractions]
    if len(f) < 2 or np.any(np.diff(f) <= 0) or f[0] < 0 or f[-1] > 1:
        raise ValueError(f"fractions must be at least two increasing numbers in [0, 1] (of the tubelets removed); "
                         f"got {f}")
    return tuple(f)


@dataclass
class Faithfulness:
    """Mean curves over clips: curves[(method, test)] = (logit [F], accuracy [F]); method "random" for the
    random order (test "random")."""

    fractions: tuple
    curves: dict = field(default_factory=dict)
    clips: int = 0

    def table(self) -> list[dict]:
        """One row per method: AUCs of the positive (lower is better) and negative (higher) tests."""
        rows = []
        for method in dict.fromkeys(m for m, _ in self.curves):
            tests = ("random",) * 2 if method == "random" else ("positive", "negative")
            (pl, pa), (nl, na) = (self.curves[method, t] for t in tests)
            rows.append({"method": method, "positive_auc_logit": auc(self.fractions, pl),
                         "positive_auc_accuracy": auc(self.fractions, pa),
                         "negative_auc_logit": auc(self.fractions, nl),
                         "negative_auc_accuracy": auc(self.fractions, na)})
        return rows


def evaluate(model, clips, methods, fractions=FRACTIONS, seed: int = 0, value: float = 0.0, backend: str = "numpy",
             progress=None, **explain_options) -> Faithfulness:
    """The perturbation test over clips: an iterable of (x [1, T, C, H, W], label or None). A label of None
    counts the clean prediction as correct. progress: a tqdm-like wrapper for the clip loop, or None.
    The random orders come from np.random.default_rng(seed): the same numbers give the same table."""
    fractions = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    sums, n = {}, 0
    for x, label in (progress(clips) if progress else clips):
        P = TokenMap.for_config(model.config, np.shape(x)).num_patches
        tiebreak = rng.permutation(P)  # this clip's random order: the baseline and every tie-break
        target = int(np.argmax(model(x, backend=backend).logits[0]))
        label = target if label is None else int(label)
        runs = {("random", "random"): tiebreak}
        for method in methods:
            rel = explain(model, x, method, target=target, backend=backend, **explain_options).relevance[0]  # [P]
            for test in ("positive", "negative"):
                runs[method, test] = removal_order(rel, test, tiebreak)
        for key, order in runs.items():
            lg, acc = perturbation_curves(model, x, order, target, label, fractions, value, backend)
            s = sums.setdefault(key, [np.zeros(len(fractions)), np.zeros(len(fractions))])
            s[0] += lg
            s[1] += acc
        n += 1
    if n == 0:
        raise ValueError("the perturbation test needs at least one clip")
    curves = {k: (s[0] / n, s[1] / n) for k, s in sums.items()}
    order = [(m, t) for m in methods for t in ("positive", "negative")] + [("random", "random")]
    return Faithfulness(fractions=tuple(fractions), curves={k: curves[k] for k in order}, clips=n)
