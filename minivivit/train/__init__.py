"""Training pieces: AdamW (torch's update), clipping by global norm, warm-up + cosine schedule, gradient
accumulation, train / eval steps, atomic checkpoints and resume. The gradients come from minivivit.grad.

    from minivivit.train import AdamW, train_step, warmup_cosine, save_checkpoint, load_checkpoint
    opt = AdamW(model.params, lr=3e-4, weight_decay=0.05)
    for step in range(total):
        stats = train_step(model, opt, [(x, y)], lr=3e-4 * warmup_cosine(step, total, warmup),
                           rng=rng, max_grad_norm=1.0)

The loop: fit(model, train_clips, val_clips, FitOptions(...), checkpoint=path, resume=...). See docs/training.md.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .init import init_for_training
from .loop import ArrayClips, FitOptions, FitResult, fit, trainable_names
from .optim import AdamW, clip_grad_norm_, global_norm, no_decay_for_norms_and_biases
from .schedule import warmup_cosine
from .step import accumulate, evaluate, select, train_step

__all__ = ["AdamW", "ArrayClips", "FitOptions", "FitResult", "accumulate", "clip_grad_norm_", "evaluate", "fit",
           "global_norm", "init_for_training", "load_checkpoint", "no_decay_for_norms_and_biases", "save_checkpoint", "select",
           "train_step", "trainable_names", "warmup_cosine"]
