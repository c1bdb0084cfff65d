"""Class-specific explanations from attention and its gradient: GAE and gradient-weighted rollout.

Letters as in minivivit/layers.py (B clips, N = 1 + P tokens, nh heads, L layers); A_l is layer l's
attention probabilities [B, nh, N, N] (the ones that multiply V) and dA_l = dy/dA_l their gradient,
y = sum_b logits[b, target_b] (the target class's logit, before the softmax, as in Chefer et al.).

GAE (Chefer, Gur & Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers", ICCV 2021, eq. 5-6):

    Abar_l = mean_h (dA_l * A_l)^+          [B, N, N]   ^+: negative entries set to 0
    R <- R + Abar_l R,  l = 0 .. L-1, from R = I   ->   R = (I + Abar_{L-1}) ... (I + Abar_0)
    explanation = R[0, 1:]                  [B, P]      CLS row over the patch tokens

Only the CLS row is wanted, so it runs as a vector from the last layer down, in the order the
backward produces the gradients: r = e_0;  r <- r (I + Abar_l) = r + mean_h r (dA_l,h * A_l,h)^+.
The update is linear in the heads, so each head's [B, N, N] pair is folded in as it streams out of
the backward (grad.backward's on_attention_grad) and no layer's maps are kept at all.

Gradient-weighted rollout (J. Gildenblat's vit-explain "grad rollout", 2020, on Abnar & Zuidema's
rollout): F_l = (fuse_h dA_l * A_l)^+ (fuse = mean by default: the mean is taken before the clamp),
then the rollout of rollout.py with F_l in place of the fused attention:
Ahat_l = rownorm(alpha rownorm(F_l) + (1 - alpha) I), v = e_0^T Ahat_{L-1} ... Ahat_0. One fused
[B, N, N] map is alive at a time (rownorm is not linear in the heads).
"""

from __future__ import annotations

import numpy as np

from ..grad import backward
from .rollout import check_options, fuse_heads, rollout_matrix


def resolve_target(config, target, batch: int, logits=None) -> np.ndarray:
    """target -> class indices [B]. target: None (the predicted class: needs logits [B, C]), a label index,
    a label name (config.id2label), or one of those per clip."""
    if target is None:
        if logits is None:
            raise ValueError("target=None means the predicted class, but there are no logits to read it from")
        return np.argmax(np.asarray(logits), axis=-1).astype(np.int64)
    items = list(target) if isinstance(target, (list, tuple, np.ndarray)) else [target] * batch
    if len(items) != batch:
        raise ValueError(f"target has {len(items)} entries for a batch of {batch} clips; give one per clip or one for all")
    return np.array([target_index(config, t) for t in items], dtype=np.int64)


def target_index(config, target) -> int:
    """One label index or name -> its index, with an error that lists the labels."""
    C = config.num_labels
    names = {str(v): int(k) for k, v in config.id2label.items()}
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not -C <= int(target) < C:
            raise ValueError(f"target class {target} does not exist; the model has {C} classes (0..{C - 1})")
        return int(target) % C
    if isinstance(target, str):
        if target in names:
            return names[target]
        if target.lstrip("-").isdigit():
            return target_index(config, int(target))
        shown = ", ".join(list(names)[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"target {target!r} is not a label of this model; its labels are: {shown} "
                         f"(or an index 0..{C - 1})")
    raise TypeError(f"target must be a label index or name (or None for the predicted class); got {target!r}")


def logit_objective(target, config):
    """objective for grad.backward: y = sum_b logits[b, target_b]; target None = each clip's predicted class.
    Returns (fn, chosen) where chosen["target"] holds the indices [B] after the call."""
    chosen = {}

    def fn(out):
        logits = out.logits  # [B, C]
        t = resolve_target(config, target, logits.shape[0], logits)  # [B]
        seed = np.zeros_like(logits)
        seed[np.arange(len(t)), t] = 1.0  # dy/dlogits
        chosen["target"] = t
        return float(logits[np.arange(len(t)), t].sum()), {"logits": seed}

    return fn, chosen


def require_model_1(config, method: str) -> None:
    """Methods on the CLS row of spatio-temporal attention (or on the gradient backward) need Model 1."""
    if not config.is_hf_model:
        raise ValueError(f"the {method!r} explanation needs Model 1 (one spatio-temporal attention over all tokens "
                         f"with a CLS token, as HF's ViViT); this model is Model {config.model_number} "
                         f"({config.attention_type}, classifier={config.classifier!r}). Capture its maps with "
                         f"explain.capture(model, x, output_attentions='full') instead.")


def gae(model, pixel_values, target=None, backend: str = "numpy"):
    """GAE's CLS row (Chefer et al. ICCV 2021; the formula is in the module docstring).

    pixel_values [B, T, C, H, W]; target: see resolve_target. Returns (r [B, N] with r[:, 0] the CLS entry,
    target [B], output) where output is the forward pass's ViViTOutput (logits).
    Memory: the backward's (hidden states + one block's intermediates + one head's [B, N, N] pair) and
    two [B, N] vectors; no attention map is stored."""
    require_model_1(model.config, "gae")
    B, nh = np.shape(pixel_values)[0], model.config.num_attention_heads
    state = {"layer": None, "r": None, "delta": None}

    def fold(layer, head, a, da):  # a, da: [B, N, N], layers arrive last to first
        if state["layer"] != layer:
            _finish(state)
            if state["r"] is None:
                state["r"] = np.zeros((B, a.shape[-1]), np.float64)  # e_0: [B, N]
                state["r"][:, 0] = 1.0
            state["layer"], state["delta"] = layer, np.zeros_like(state["r"])
        cam = np.maximum(da * a, 0.0)  # (dA * A)^+ of one head: [B, N, N]
        state["delta"] += np.einsum("bi,bij->bj", state["r"], cam) / nh  # [B, N] @ [B, N, N] -> [B, N]

    objective, chosen = logit_objective(target, model.config)
    g = backward(model, pixel_values, objective=objective, on_attention_grad=fold, backend=backend)
    _finish(state)
    return state["r"].astype(model.dtype), chosen["target"], g.output


def _finish(state):
    if state["delta"] is not None:
        state["r"] = state["r"] + state["delta"]  # r (I + Abar_l)
        state["delta"] = None


def grad_rollout(model, pixel_values, target=None, head_fusion="mean", alpha: float = 0.5,
                 discard_ratio: float = 0.0, backend: str = "numpy"):
    """Gradient-weighted rollout's CLS row (module docstring): returns (v [B, N], target [B], output).

    head_fusion fuses dA * A over heads ("mean", "max", "min" or a head index) before the clamp; alpha and
    discard_ratio as in rollout.rollout_matrix. Memory: one fused [B, N, N] map at a time."""
    config = model.config
    require_model_1(config, "grad-rollout")
    check_options(head_fusion, alpha, discard_ratio, config.num_attention_heads)
    nh = config.num_attention_heads
    state = {"layer": None, "f": None, "v": None}

    def finish():
        if state["f"] is None:
            return
        f = np.maximum(state["f"], 0.0)[:, None]  # F_l = (fused dA * A)^+ as one "head": [B, 1, N, N]
        a_hat = rollout_matrix(f, "mean", alpha, discard_ratio)  # [B, N, N]
        v = state["v"]
        state["v"] = a_hat[:, 0, :].copy() if v is None else np.einsum("bi,bij->bj", v, a_hat)  # [B, N]
        state["f"] = None

    def fold(layer, head, a, da):  # a, da: [B, N, N]
        if state["layer"] != layer:
            finish()
            state["layer"] = layer
        w = da * a  # [B, N, N]
        f = state["f"]
        if head_fusion == "mean":
            state["f"] = w / nh if f is None else f + w / nh
        elif head_fusion in ("max", "min"):
            state["f"] = w if f is None else (np.maximum if head_fusion == "max" else np.minimum)(f, w)
        elif head == head_fusion % nh:
            state["f"] = w

    objective, chosen = logit_objective(target, config)
    g = backward(model, pixel_values, objective=objective, on_attention_grad=fold, backend=backend)
    finish()
    return state["v"].astype(model.dtype), chosen["target"], g.output


def gae_from_maps(attentions, grads):
    """GAE's CLS row from full maps, as the paper writes it (R <- R + Abar R from R = I, matrix products):
    attentions, grads: L arrays [B, nh, N, N] each. Returns R[:, 0, :] [B, N]. Memory: L full maps and an
    N x N product; gae() computes the same row streaming. For teaching and for tests."""
    R = None
    for a, da in zip(attentions, grads):
        abar = np.maximum(np.asarray(da, np.float64) * a, 0.0).mean(axis=1)  # [B, N, N]
        R = np.eye(abar.shape[-1]) + abar if R is None else R + abar @ R  # [B, N, N]
    return R[:, 0, :]


def grad_rollout_from_maps(attentions, grads, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0):
    """Gradient-weighted rollout's CLS row from full maps (matrix products): [B, N]. For teaching and tests."""
    R = None
    for a, da in zip(attentions, grads):
        f = np.maximum(fuse_heads(np.asarray(da, np.float64) * a, head_fusion), 0.0)[:, None]  # [B, 1, N, N]
        a_hat = rollout_matrix(f, "mean", alpha, discard_ratio)  # [B, N, N]
        R = a_hat if R is None else a_hat @ R
    return R[:, 0, :]
