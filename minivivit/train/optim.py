"""AdamW and gradient clipping, with exactly torch.optim.AdamW's and torch.nn.utils.clip_grad_norm_'s arithmetic.

Parameters and gradients are the nested params structure (minivivit/weights.py); parameters are
updated in place, so a Model's params (and anything holding them) see the new values. Loaded weights are
read-only views of the mapped file (fileio.map_tensors): AdamW first replaces them by writable copies in
the same structure (weights.writable_), so the file itself is never written.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..weights import flatten_params, map_params, unflatten_params, writable_


def global_norm(grads) -> float:
    """sqrt(sum of every gradient element squared): the L2 norm of all gradients as one vector."""
    return math.sqrt(sum(float(np.dot(g.ravel().astype(np.float64), g.ravel().astype(np.float64)))
                         for g in flatten_params(grads).values()))


def clip_grad_norm_(grads, max_norm: float) -> float:
    """Scale every gradient in place by min(1, max_norm / (total_norm + 1e-6)); return total_norm (before).

    torch.nn.utils.clip_grad_norm_'s definition (norm_type 2): the 1e-6 keeps the division finite, and
    the factor is applied even when it is 1, as torch does."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0; got {max_norm}")
    total = global_norm(grads)
    coef = min(1.0, max_norm / (total + 1e-6))
    for g in flatten_params(grads).values():
        g *= g.dtype.type(coef)
    return total


class AdamW:
    """AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW computes it (amsgrad=False, maximize=False).

    For each parameter p with gradient g, at step t = 1, 2, ...:
        p <- p * (1 - lr * weight_decay)                       decoupled weight decay
        m <- m + (1 - beta1) (g - m)                           (torch's lerp: = beta1 m + (1 - beta1) g)
        v <- beta2 v + (1 - beta2) g^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    eps is added after the bias correction of sqrt(v), as in torch. decay(name) -> bool chooses which
    parameters (flat names like 'blocks.0.attn.q.w') get weight decay; None decays all, as torch does for
    the parameters it is given.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 decay: Callable[[str], bool] | None = None):
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1); got {betas}")
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be >= 0; got {lr}, {eps}, {weight_decay}")
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), tuple(map(float, betas)), float(eps), float(weight_decay)
        self.decay = decay
        self.t = 0  # steps taken
        writable_(params)  # mapped (read-only) weights -> copies, in the caller's structure
        self.m = map_params(np.zeros_like, params)  # first moments, nested like params
        self.v = map_params(np.zeros_like, params)  # second moments

    def step(self, params, grads, lr: float | None = None) -> None:
        """One update of params (in place) from grads; lr overrides the base lr (e.g. from a schedule)."""
        lr = self.lr if lr is None else float(lr)
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2_sqrt = 1.0 - b1**self.t, math.sqrt(1.0 - b2**self.t)
        step_size = lr / bc1
        writable_(params)  # (a no-op unless params holds read-only arrays)
        P, G, M, V = (flatten_params(a) for a in (params, grads, self.m, self.v))
        missing = sorted(set(P) ^ set(G))
        if missing:
            raise ValueError(f"grads do not match params: {missing[:5]} (expected the nesting of model.params)")
        for name, p in P.items():
            g, m, v = G[name], M[name], V[name]
            if self.weight_decay and (self.decay is None or self.decay(name)):
                p *= p.dtype.type(1.0 - lr * self.weight_decay)
            m += p.dtype.type(1.0 - b1) * (g - m)
            v *= p.dtype.type(b2)
            v += p.dtype.type(1.0 - b2) * g * g
            denom = np.sqrt(v) / p.dtype.type(bc2_sqrt) + p.dtype.type(self.eps)
            p -= p.dtype.type(step_size) * (m / denom)

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{'t', 'lr', 'betas', 'eps', 'weight_decay', 'm': flat, 'v': flat} (flat = {name: array})."""
        return {"t": self.t, "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "m": flatten_params(self.m), "v": flatten_params(self.v)}

    def load_state_dict(self, state: dict) -> None:
        for key in ("m", "v"):
            have, want = set(state[key]), set(flatten_params(getattr(self, key)))
            if have != want:
                raise ValueError(f"optimiser state {key!r} does not fit these params: "
                                 f"{sorted(have ^ want)[:5]} differ")
        self.t, self.lr, self.eps, self.weight_decay = int(state["t"]), state["lr"], state["eps"], state["weight_decay"]
        self.betas = tuple(state["betas"])
        # the moments keep the nesting of the params given (nested, or flat for a parameter group)
        self.m = _like(self.m, {k: np.array(v) for k, v in state["m"].items()})
        self.v = _like(self.v, {k: np.array(v) for k, v in state["v"].items()})


def _like(tree, flat: dict, prefix: str = ""):
    """flat {name: array} put into the nesting of `tree` (whose flat names are the same)."""
    if isinstance(tree, dict):
        return {k: _like(v, flat, f"{prefix}{k}.") for k, v in tree.items()}
    if isinstance(tree, list):
        return [_like(v, flat, f"{prefix}{i}.") for i, v in enumerate(tree)]
    value = flat[prefix[:-1]]
    if value.shape != tree.shape:
        raise ValueError(f"optimiser state {prefix[:-1]!r} has shape {value.shape}; the parameter has {tree.shape}")
    return value


def no_decay_for_norms_and_biases(name: str) -> bool:
    """A common `decay` choice (HF Trainer's): no weight decay on biases, LayerNorm gains, CLS and positions."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "w"
