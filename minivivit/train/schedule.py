"""Learning-rate schedule: linear warm-up, then cosine decay to 0 (transformers.get_cosine_schedule_with_warmup)."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, num_cycles: float = 0.5) -> float:
    """The multiplier of the base learning rate for update number `step` (0-based).

        step < warmup:  step / warmup                                  (0 at the first update, as HF's)
        after:          max(0, 0.5 (1 + cos(2 pi num_cycles progress))), progress = (step - warmup) / (total - warmup)

    lr = base_lr * warmup_cosine(step, total, warmup): identical to torch's LambdaLR with HF's lambda.
    """
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
