"""The training loop: epochs over a clip source, validation, checkpoints and an exact resume.

    from minivivit.train import ArrayClips, FitOptions, fit
    result = fit(model, ArrayClips(x_train, y_train), ArrayClips(x_val, y_val),
                 FitOptions(epochs=5, batch_size=8, lr=1e-3, warmup_steps=10), checkpoint="run.ckpt.safetensors")
    result.history[-1]   # {'epoch', 'step', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', ...}

A clip source is anything with len(source) and source.batch(indices) -> (pixel_values [b, T, C, H, W],
labels [b]) (ArrayClips for arrays in memory; minivivit.data and the finetune command make clips on demand).

Determinism, and so resume: epoch e visits the clips in the order default_rng([seed, e]).permutation(n),
a pure function of (seed, e); dropout masks come from one generator whose state the checkpoint keeps;
the learning rate is a function of the step. So a run stopped at step k (stop_at_step=k, or Ctrl-C) and
resumed from its checkpoint takes exactly the steps the uninterrupted run takes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model import Model
from ..progress import tqdm
from ..weights import flatten_params
from .checkpoint import load_checkpoint, save_checkpoint
from .optim import AdamW, no_decay_for_norms_and_biases
from .schedule import warmup_cosine
from .step import evaluate, select, train_step


@dataclass(frozen=True)
class FitOptions:
    """How fit() trains. One optimiser step sees batch_size * accumulation clips (accumulation micro-batches)."""

    epochs: int = 1  # passes over the training clips
    batch_size: int = 8  # clips per micro-batch (one forward + backward)
    accumulation: int = 1  # micro-batches per optimiser step (gradient accumulation)
    lr: float = 1e-3  # peak learning rate (after warm-up)
    warmup_steps: int = 0  # linear warm-up from 0, then cosine decay to 0 at the last step
    weight_decay: float = 0.05  # AdamW's decoupled decay, on weight matrices only (no_decay_for_norms_and_biases)
    max_grad_norm: float | None = 1.0  # clip the global gradient norm (None: no clipping)
    label_smoothing: float = 0.0  # torch's cross_entropy label_smoothing
    seed: int = 0  # the epochs' clip order and the dropout masks
    shuffle: bool = True  # a new clip order every epoch; False: clips in source order (a stream, a curriculum)
    head_only: bool = False  # train only the classifier head
    last_k_blocks: int | None = None  # train only the last k encoder blocks, the final LayerNorm and the head
    backend: str = "numpy"  # the forward's backend ("numpy" | "numba")
    checkpoint_every: int | None = None  # also checkpoint every this many steps (always at each epoch's end)
    stop_at_step: int | None = None  # stop (with a checkpoint) after this many steps: a run split in parts
    progress: bool = True  # a progress bar with loss / accuracy / clips per second

    def __post_init__(self):
        for name in ("epochs", "batch_size", "accumulation"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FitOptions.{name} must be >= 1; got {getattr(self, name)}")
        if self.head_only and self.last_k_blocks is not None:
            raise ValueError("choose one of head_only=True or last_k_blocks=K, not both")
        if self.last_k_blocks is not None and int(self.last_k_blocks) < 0:
            raise ValueError(f"last_k_blocks must be >= 0; got {self.last_k_blocks}")

    def resume_key(self) -> dict:
        """The options a resumed run must share with the run that wrote the checkpoint (they change the result)."""
        skip = {"checkpoint_every", "stop_at_step", "progress", "backend"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


@dataclass
class FitResult:
    """What fit() returns."""

    model: Model  # the trained model (the same object that was passed in, updated in place)
    history: list = field(default_factory=list)  # one dict per finished epoch
    step: int = 0  # optimiser steps taken in all (including those before a resume)
    stopped_early: bool = False  # stop_at_step ended the run before the last epoch


class ArrayClips:
    """A clip source over arrays in memory: pixel_values [n, T, C, H, W] float32, labels [n] int."""

    def __init__(self, pixel_values, labels):
        self.x, self.y = np.asarray(pixel_values), np.asarray(labels)
        if self.x.ndim != 5 or len(self.x) != len(self.y):
            raise ValueError(f"expected pixel_values [n, T, C, H, W] and labels [n]; got {self.x.shape} and "
                             f"{self.y.shape}")

    def __len__(self):
        return len(self.y)

    def batch(self, indices):
        return self.x[indices], self.y[indices]


def trainable_names(model: Model, head_only: bool = False, last_k_blocks: int | None = None) -> list[str] | None:
    """The flat names of the parameters to train (None: all of them)."""
    if not head_only and last_k_blocks is None:
        return None
    if not model.has_head:
        raise ValueError("head_only / last_k_blocks train a classifier head, and this model has none")
    names = list(flatten_params(model.params))
    L = model.config.num_hidden_layers
    if head_only:
        return [n for n in names if n.startswith("head.")]
    if int(last_k_blocks) > L:
        raise ValueError(f"last_k_blocks={last_k_blocks}, but the model has {L} blocks")
    keep = tuple(f"blocks.{i}." for i in range(L - int(last_k_blocks), L)) + ("norm.", "head.")
    return [n for n in names if n.startswith(keep)]


def fit(model: Model, train, val=None, options: FitOptions | None = None, *, checkpoint=None,
        resume: bool = False, log=print, on_step=None) -> FitResult:
    """Train `model` in place on the clip source `train`, validating on `val` after every epoch.

    checkpoint: a path; written atomically at each epoch's end (and every checkpoint_every steps, at
    stop_at_step and on Ctrl-C). An existing file is an error unless resume=True, which continues the
    run it holds (same options required; the model's params are overwritten by the checkpoint's).
    log(message) receives one line per epoch (None: silent); on_step(step, stats) is called after every
    optimiser step with train_step's stats (loss, accuracy, grad_norm, lr, clips), e.g. for a learning curve.
    """
    opts = options or FitOptions()
    n = len(train)
    if n == 0:
        raise ValueError("the training source has no clips")
    per_step = opts.batch_size * opts.accumulation
    steps_per_epoch = math.ceil(n / per_step)  # the last step of an epoch may see fewer clips
    total = opts.epochs * steps_per_epoch
    names = trainable_names(model, opts.head_only, opts.last_k_blocks)
    trained = model.params if names is None else select(model.params, names)
    optimizer = AdamW(trained, lr=opts.lr, weight_decay=opts.weight_decay, decay=no_decay_for_norms_and_biases)
    rng = np.random.default_rng([opts.seed, 1])  # dropout masks (the clip order uses [seed, epoch + 2])
    step, history, partial = 0, [], None
    if checkpoint is not None and Path(checkpoint).exists():
        if not resume:
            raise FileExistsError(f"{checkpoint} exists; resume=True (--resume) continues that run, or choose "
                                  f"another checkpoint path")
        optimizer, rng, step, history, partial = _resume(model, checkpoint, opts, names)
    elif resume:
        raise FileNotFoundError(f"resume=True, but there is no checkpoint at {checkpoint}")
    sums = {"seen": 0, "loss": 0.0, "correct": 0.0}  # the running epoch's totals (kept in checkpoints too)
    if step % steps_per_epoch and partial is not None:
        sums.update(partial)
    save = (lambda s: _save(checkpoint, model, optimizer, s, rng, opts, history, sums)) if checkpoint else (lambda s: None)

    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not opts.progress,
               mininterval=1.0)
    stop = total if opts.stop_at_step is None else min(total, int(opts.stop_at_step))
    try:
        while step < stop:
            epoch, first = divmod(step, steps_per_epoch)
            order = np.random.default_rng([opts.seed, epoch + 2]).permutation(n) if opts.shuffle else np.arange(n)
            t0 = time.perf_counter()
            if first == 0:
                sums.update(seen=0, loss=0.0, correct=0.0)
            seen0 = sums["seen"]  # clips of this epoch before a resume (not timed here)
            for s in range(first, steps_per_epoch):
                if step >= stop:
                    break
                idx = order[s * per_step:(s + 1) * per_step]
                micro = [train.batch(idx[i:i + opts.batch_size]) for i in range(0, len(idx), opts.batch_size)]
                stats = train_step(model, optimizer, micro, lr=opts.lr * warmup_cosine(step, total, opts.warmup_steps),
                                   rng=rng, max_grad_norm=opts.max_grad_norm, label_smoothing=opts.label_smoothing,
                                   backend=opts.backend, trainable=names)
                step += 1
                sums["seen"] += stats["clips"]
                sums["loss"] += stats["loss"] * stats["clips"]
                sums["correct"] += stats["accuracy"] * stats["clips"]
                bar.update(1)
                if on_step is not None:
                    on_step(step, stats)
                bar.set_postfix(epoch=epoch, loss=f"{sums['loss'] / sums['seen']:.3f}",
                                acc=f"{sums['correct'] / sums['seen']:.2f}",
                                clips_s=f"{(sums['seen'] - seen0) / (time.perf_counter() - t0):.1f}")
                if opts.checkpoint_every and step % opts.checkpoint_every == 0 and step % steps_per_epoch:
                    save(step)
            if step % steps_per_epoch == 0:  # the epoch is complete
                history.append(_epoch_record(model, val, opts, epoch, step, sums, sums["seen"] - seen0, t0))
                if log is not None:
                    log(_describe(history[-1]))
            save(step)
    except KeyboardInterrupt:
        save(step)  # the steps taken so far are not lost: fit(..., resume=True) continues from here
        raise
    finally:
        bar.close()
    return FitResult(model=model, history=history, step=step, stopped_early=step < total)


def _epoch_record(model, val, opts, epoch, step, sums, timed, t0) -> dict:
    seconds = time.perf_counter() - t0
    seen = max(sums["seen"], 1)
    record = {"epoch": epoch, "step": step, "train_loss": sums["loss"] / seen, "train_accuracy": sums["correct"] / seen,
              "seconds": seconds, "clips_per_second": timed / seconds}  # (timed: the clips since a resume)
    if val is not None and len(val):
        idx = np.arange(len(val))
        chunks = (val.batch(idx[i:i + opts.batch_size]) for i in range(0, len(val), opts.batch_size))
        v = evaluate(model, chunks, backend=opts.backend)  # eval mode: no dropout
        record.update(val_loss=v["loss"], val_accuracy=v["accuracy"])
    return record


def _describe(r: dict) -> str:
    val = f"  val loss {r['val_loss']:.4f}  val acc {r['val_accuracy']:.3f}" if "val_loss" in r else ""
    return (f"epoch {r['epoch']}  step {r['step']}  loss {r['train_loss']:.4f}  acc {r['train_accuracy']:.3f}{val}"
            f"  ({r['clips_per_second']:.1f} clips/s)")


def _save(path, model, optimizer, step, rng, opts, history, sums):
    save_checkpoint(path, model, optimizer, step, rng=rng, overwrite=True,
                    extra={"fit_options": opts.resume_key(), "history": history, "epoch_sums": dict(sums)})


def _resume(model, path, opts, names):
    ck = load_checkpoint(path, decay=no_decay_for_norms_and_biases)
    saved = ck["extra"].get("fit_options")
    if saved is None:
        raise ValueError(f"{path} was not written by fit() (no fit_options in it); it cannot be resumed here")
    want = _json_like(opts.resume_key())
    differ = {k: (saved.get(k), v) for k, v in want.items() if saved.get(k) != v}
    if differ:
        raise ValueError(f"{path} was written with other options: {differ} (checkpoint's, yours); resume with "
                         f"the same options, or start a new run with another checkpoint path")
    if ck["model"].config != model.config:
        raise ValueError(f"{path} holds a model of another config; resume with the model the run started from")
    mine, theirs = flatten_params(model.params), flatten_params(ck["model"].params)
    for k, a in mine.items():
        np.copyto(a, theirs[k])  # in place: the caller's model holds the checkpoint's params
    optimizer = ck["optimizer"]
    trained = model.params if names is None else select(model.params, names)
    optimizer_for_model = AdamW(trained, lr=opts.lr, weight_decay=opts.weight_decay,
                                decay=no_decay_for_norms_and_biases)
    optimizer_for_model.load_state_dict(optimizer.state_dict())
    extra = ck["extra"]
    return optimizer_for_model, ck["rng"], ck["step"], list(extra.get("history", [])), extra.get("epoch_sums")


def _json_like(d: dict) -> dict:
    """What a dict looks like after a JSON round trip (tuples become lists), for comparing with a checkpoint's."""
    import json

    return json.loads(json.dumps(d))
