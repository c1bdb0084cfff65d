"""Training-mode dropout, as a forward tap: the forward pass stays model.vivit_forward.

Dropout zeroes each element with probability p and scales the rest by 1 / (1 - p) (inverted dropout,
torch.nn.functional.dropout), so y = x * R with R = keep / (1 - p); the backward is dL/dx = dL/dy * R.

Sites (the names of minivivit.debug's trace) and their probabilities, where HF transformers 4.x
(the version that wrote the hub checkpoints) and Scenic apply dropout:

    embed.out           hidden_dropout_prob             VivitEmbeddings.dropout
    blocks.i.probs      attention_probs_dropout_prob    VivitSelfAttention (attention probabilities)
    blocks.i.attn_out   hidden_dropout_prob             VivitSelfOutput.dropout (after attention's dense)
    blocks.i.act        hidden_dropout_prob             VivitIntermediate.dropout (after the activation)
    blocks.i.fc2        hidden_dropout_prob             VivitOutput.dropout (after the MLP's second dense)

(transformers 5 dropped the one after the activation; the other four are in the same places.)

Masks are never stored. Each is drawn from its own generator, seeded by (the step's seed, the site
name, the head), so the backward pass, which re-runs each block, draws exactly the same mask again.
The step's seed comes from the np.random.Generator the caller passes: one draw per Dropout.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..config import ViViTConfig

HIDDEN_SITES = ("attn_out", "act", "fc2")  # per block, plus "embed.out"


class Dropout:
    """A tap applying training-mode dropout at HF's sites; pass it as vivit_forward(..., tap=Dropout(...)).

    rng: np.random.Generator; one seed is drawn from it, every mask derives from that seed.
    hidden_p / attention_p: override config.hidden_dropout_prob / attention_probs_dropout_prob.
    """

    def __init__(self, config: ViViTConfig, rng: np.random.Generator, hidden_p=None, attention_p=None):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"dropout needs an explicit np.random.Generator (np.random.default_rng(seed)); "
                            f"got {type(rng).__name__}")
        self.hidden_p = float(config.hidden_dropout_prob if hidden_p is None else hidden_p)
        self.attention_p = float(config.attention_probs_dropout_prob if attention_p is None else attention_p)
        for what, p in (("hidden_dropout_prob", self.hidden_p), ("attention_probs_dropout_prob", self.attention_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{what} must be in [0, 1]; got {p}")
        self.seed = int(rng.integers(2**63))

    @property
    def active(self) -> bool:
        """False when every probability is 0: then dropout is the identity and need not run."""
        return self.hidden_p > 0 or self.attention_p > 0

    def p(self, name: str) -> float:
        """The dropout probability at trace name `name` (0 where HF applies none)."""
        if name == "embed.out" or (name.startswith("blocks.") and name.rsplit(".", 1)[-1] in HIDDEN_SITES):
            return self.hidden_p
        if name.startswith("blocks.") and name.endswith(".probs"):
            return self.attention_p
        return 0.0

    def multiplier(self, name: str, shape, dtype, head: int = -1):
        """R = keep / (1 - p) for site `name` (and head, for attention maps), freshly drawn but always the same."""
        p = self.p(name)
        if p >= 1.0:
            return np.zeros(shape, dtype)
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), head + 1])
        keep = rng.random(shape, dtype=np.float32) >= p  # P(keep) = 1 - p
        return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype)

    def attention_multiplier(self, name: str, shape, dtype):
        """For attention_backward: a function h -> R_h [B, N, N] at site `name` (blocks.i.probs), or None
        where attention dropout is off."""
        if self.p(name) == 0.0:
            return None
        return lambda h: self.multiplier(name, shape, dtype, head=h)

    def __call__(self, name: str, x):
        p = self.p(name)
        if p == 0.0:
            return x
        if name.endswith(".probs"):  # [B, nh, N, N]: one mask per head, so the backward can redraw head by head
            out = np.empty_like(x)
            for h in range(x.shape[1]):
                out[:, h] = x[:, h] * self.multiplier(name, x[:, h].shape, x.dtype, head=h)
            return out
        return x * self.multiplier(name, x.shape, x.dtype)

    def wants(self, name: str) -> bool:
        """For the tap API: attention maps are needed only where attention dropout acts on them."""
        if name.endswith(".scores"):
            return False
        if name.endswith(".probs"):
            return self.attention_p > 0
        return True


def dropout_backward(dy, dropout: Dropout | None, name: str):
    """dL/dx = dL/dy * R for y = x * R at site `name` (the same R, redrawn); identity without dropout."""
    if dropout is None or dropout.p(name) == 0.0:
        return dy
    return dy * dropout.multiplier(name, dy.shape, dy.dtype)
