"""One optimiser step with gradient accumulation, and evaluation: the pieces a training loop is made of.

Train / eval mode: train_step runs the forward in training mode (dropout at HF's sites, masks drawn
from `rng`); evaluate runs it in eval mode (no dropout), as model(x) always does. train_step(train=False)
takes a step without dropout.
"""

from __future__ import annotations

import numpy as np

from ..grad import backward
from ..model import Model
from ..weights import flatten_params, map_params, writable_
from .optim import AdamW, clip_grad_norm_, global_norm


def accumulate(acc, grads, weight: float = 1.0):
    """acc + weight * grads (nested like params); acc None starts a new sum. Returns the sum (acc is updated)."""
    if acc is None:
        return map_params(lambda g: g * g.dtype.type(weight), grads)
    flat_acc, flat_g = _leaves(acc), _leaves(grads)
    for a, g in zip(flat_acc, flat_g):
        a += g * g.dtype.type(weight)
    return acc


def select(params, names) -> dict:
    """{flat name: array} for the given names: the arrays themselves, so updating them updates params.
    Read-only ones (the mapped views of a loaded file) are first replaced in params by writable copies;
    otherwise an optimiser would update copies the model never sees."""
    names = set(names)
    flat = flatten_params(params)
    unknown = sorted(names - set(flat))
    if unknown:
        raise ValueError(f"no such parameters: {unknown[:5]} (names look like {list(flat)[:3]})")
    if writable_(params, names):
        flat = flatten_params(params)
    return {k: flat[k] for k in flat if k in names}


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in _leaves(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in _leaves(v)]
    return [tree]


def train_step(model: Model, optimizer: AdamW, micro_batches, *, lr: float | None = None,
               rng: np.random.Generator | None = None, train: bool = True, max_grad_norm: float | None = None,
               label_smoothing: float = 0.0, backend: str = "numpy", trainable=None) -> dict:
    """One update from micro-batches [(pixel_values [b, T, C, H, W], labels [b]), ...] (gradient accumulation).

    The gradient is that of the mean loss over all clips of all micro-batches (each micro-batch's mean
    gradient weighted by its size), so 2 micro-batches of 4 give the gradient of one batch of 8.
    Then clipping by global norm (if max_grad_norm) and one AdamW step at lr.
    trainable: None (every parameter) or a collection of flat names ('head.w', 'blocks.2.mlp.fc1.b', ...):
    only those are clipped and updated, and the optimiser must hold exactly them (AdamW(select(params, names))).
    Returns {'loss', 'accuracy', 'grad_norm' (before clipping), 'lr', 'clips'}.
    """
    acc, n, loss_sum, correct = None, 0, 0.0, 0
    for x, y in micro_batches:
        y = np.asarray(y)
        g = backward(model, x, y, train=train, rng=rng if train else None, label_smoothing=label_smoothing,
                     backend=backend)
        b = len(y)
        acc = accumulate(acc, g.params, b)
        loss_sum += g.loss * b
        correct += int((g.output.logits.argmax(-1) == (y if y.ndim == 1 else y.argmax(-1))).sum())
        n += b
    if acc is None:
        raise ValueError("train_step got no micro-batches; pass [(pixel_values, labels), ...]")
    grads = map_params(lambda a: a / a.dtype.type(n), acc)
    params = model.params
    if trainable is not None:  # frozen parameters: no clipping share, no update, no optimiser state
        params, grads = select(model.params, trainable), select(grads, trainable)
    norm = clip_grad_norm_(grads, max_grad_norm) if max_grad_norm else global_norm(grads)
    optimizer.step(params, grads, lr)
    return {"loss": loss_sum / n, "accuracy": correct / n, "grad_norm": norm,
            "lr": optimizer.lr if lr is None else lr, "clips": n}


def evaluate(model: Model, batches, backend: str = "numpy") -> dict:
    """Eval mode (no dropout) over [(pixel_values, labels), ...] -> {'loss', 'accuracy', 'clips'}."""
    from ..grad import cross_entropy

    n, loss_sum, correct = 0, 0.0, 0
    for x, y in batches:
        y = np.asarray(y)
        logits = model(x, backend=backend).logits
        loss_sum += cross_entropy(logits, y)[0] * len(y)
        correct += int((logits.argmax(-1) == y).sum())
        n += len(y)
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "clips": n}
