"""Model-level gradients: one forward pass (model.vivit_forward), then a backward that walks the blocks
in reverse, re-running each one on its stored input to get its intermediates.

Memory plan (per-layer checkpointing): the forward keeps only what output_hidden_states returns, each
block's input [B, N, D] (13 x 9.6 MB for one ViViT-B clip). Walking back, block i is re-run with a
recording tap (grad/block.py), its intermediates (~150 MB) feed its backward and are freed before block
i - 1. Attention maps are recomputed head by head inside the attention backward, never stored.
backend="numba" (eval mode) also keeps each block's attention context from the forward (12 x 9.6 MB) so
that the re-run skips attention (grad/block.py rerun_block).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..inputs import attention_layer_set, check_head_mask
from ..kernels import get_backend
from ..model import Model, ViViTOutput, encoder_block, vivit_forward
from ..tokens import clip_thw, tubelet_grid
from .activations import activation_backward
from .block import BlockRecorder, ContextKeeper, encoder_block_backward, rerun_block
from .dropout import Dropout, dropout_backward
from .fast import backward_ops
from .layers import cls_linear_backward, cross_entropy, embed_backward, tubelet_embed_backward

SEEDS = ("logits", "pooler_output", "last_hidden_state")  # the outputs an objective may differentiate


@dataclass
class Gradients:
    """What backward() returns."""

    loss: float  # the objective's value (mean cross-entropy with labels=)
    params: dict  # dL/dparam, nested exactly like model.params
    output: ViViTOutput  # the forward pass's outputs (logits, pooler_output, last_hidden_state)
    pixel_values: np.ndarray | None  # dL/dpixel_values [B, T, C, H, W], with input_grad=True
    attentions: dict[int, np.ndarray] | None  # {layer: dL/dA [B, nh, N, N]} for the layers asked for


def value_and_grad(model: Model, pixel_values, labels=None, **kwargs) -> tuple[float, dict]:
    """`loss, grads = value_and_grad(model, x, labels)`: mean cross-entropy and dL/dparams (nested like
    model.params). Every keyword of backward() applies; backward() also returns the logits, dL/dx and dL/dA."""
    g = backward(model, pixel_values, labels, **kwargs)
    return g.loss, g.params


def backward(
    model: Model,
    pixel_values,
    labels=None,
    *,
    objective=None,
    label_smoothing: float = 0.0,
    input_grad: bool = False,
    attention_grads=None,
    on_attention_grad=None,
    head_mask=None,
    interpolate_pos_encoding: bool = False,
    train: bool = False,
    rng: np.random.Generator | None = None,
    backend: str = "numpy",
) -> Gradients:
    """Forward + backward of one batch; returns Gradients (loss, params, output, pixel_values, attentions).

    What is differentiated, exactly one of:
      labels     class indices [B] (or class probabilities [B, C]): mean softmax cross-entropy of the
                 classifier's logits (torch's, with optional label_smoothing);
      objective  fn(output: ViViTOutput) -> (value, {name: dvalue/dname}) with names among "logits",
                 "pooler_output", "last_hidden_state", each gradient of that output's shape; e.g. for a
                 base model with a pooler: lambda o: (o.pooler_output.sum(), {"pooler_output": np.ones_like(o.pooler_output)}).
    Extras: input_grad=True gives dL/dpixel_values; attention_grads = "all" or a list of layers gives
    {layer: dL/dA [B, nh, N, N]} (A = the probabilities that multiply V, after head_mask and dropout:
    HF's attn_weights); on_attention_grad(layer, head, A_h, dA_h) streams every head's [B, N, N] pair
    instead, so no layer's maps need to be alive at once (ViViT-B: 39 MB per head and clip).
    train=True applies dropout (config.hidden_dropout_prob, attention_probs_dropout_prob) with masks drawn
    from rng (an np.random.Generator, required); train=False is eval mode. backend runs the forward
    (and the per-block re-runs); with backend="numba" the backward's LayerNorm, activation and attention
    run on numba kernels (grad/fast.py: float32 only; the attention kernel never builds an N x N matrix,
    and falls back to the NumPy backward for a layer whose dL/dA is asked for, attention_grads or
    on_attention_grad, and under attention dropout). Other backends: the backward is NumPy.
    """
    if not isinstance(model, Model):
        raise TypeError(f"backward() takes a minivivit.Model (e.g. minivivit.load(path)); got {type(model).__name__}")
    if (labels is None) == (objective is None):
        raise ValueError("pass exactly one of labels= (cross-entropy on the classifier's logits) or "
                         "objective= (a function of the outputs returning (value, gradients))")
    if labels is not None and not model.has_head:
        raise ValueError("labels= needs a classifier, but this is a base model (no 'head' params); pass "
                         "objective=fn(output) -> (value, {'pooler_output' or 'last_hidden_state': gradient})")
    params, config = model.params, model.config
    if not config.is_hf_model:
        raise NotImplementedError(f"gradients are implemented for Model 1 as HF builds it (attention_type='spacetime', "
                                  f"classifier='token'); this model is Model {config.model_number} "
                                  f"({config.attention_type}, classifier={config.classifier!r})")
    dropout = _dropout(config, train, rng)
    ops = get_backend(backend)
    L = config.num_hidden_layers

    keeper = ContextKeeper() if backend == "numba" and dropout is None else None  # fast path: keep the contexts
    out = vivit_forward(params, config, pixel_values, backend=backend, output_hidden_states=True, head_mask=head_mask,
                        interpolate_pos_encoding=interpolate_pos_encoding, tap=dropout or keeper)
    hidden = list(out.hidden_states)  # L + 1 arrays [B, N, D]: block inputs, then the last block's output
    out = replace(out, hidden_states=None)
    x = np.asarray(pixel_values).astype(model.dtype, copy=False)  # as vivit_forward checked and cast it
    hm = check_head_mask(head_mask, config, model.dtype)  # [L, nh] or None

    # ---- the objective and the heads -------------------------------------------------------------
    if labels is not None:
        loss, dlogits = cross_entropy(out.logits, labels, label_smoothing)  # float, [B, C]
        seeds = {"logits": dlogits}
    else:
        loss, seeds = _run_objective(objective, out)
    grads = {}
    dlast = _heads_backward(params, config, ops, out.last_hidden_state, seeds, grads)  # [B, N, D]

    # ---- final LayerNorm and the blocks, last to first -------------------------------------------
    fast = backward_ops(backend)
    d, dg, db = fast.layer_norm_backward(dlast, hidden.pop(), params["norm"]["g"], config.layer_norm_eps)  # [B, N, D]
    grads["norm"] = {"g": dg, "b": db}
    del dlast
    want = _attention_layer_set(attention_grads, L)
    attentions = {} if want else None
    block_grads = [None] * L
    for i in reversed(range(L)):
        name, block = f"blocks.{i}", params["blocks"][i]
        xi = hidden.pop()  # [B, N, D], block i's input
        rec = BlockRecorder(dropout)
        if keeper is not None:  # the saved context replaces the re-run's attention
            rec.saved = rerun_block(xi, keeper.contexts.pop(name), **block, config=config, ops=ops)
        else:
            encoder_block(xi, **block, config=config, ops=ops, head_mask=None if hm is None else hm[i], tap=rec,
                          name=name)
        on_probs = _probs_sink(i, attentions, on_attention_grad, x.shape[0], config, i in want, model.dtype)
        d, block_grads[i] = encoder_block_backward(d, xi, rec.saved, **block, config=config,
                                                   head_mask=None if hm is None else hm[i], dropout=dropout,
                                                   name=name, on_probs=on_probs, backend=backend)  # [B, N, D]
        del xi, rec
    grads["blocks"] = block_grads

    # ---- embeddings ------------------------------------------------------------------------------
    e = params["embed"]
    d = dropout_backward(d, dropout, "embed.out")  # [B, N, D]
    clip_grid = tubelet_grid(clip_thw(x.shape), config.tubelet_size)  # (t, h, w) of this clip
    dpatches, dcls, dpos = embed_backward(d, config.grid, clip_grid if interpolate_pos_encoding else None)
    dw, db, dx = tubelet_embed_backward(dpatches, x, e["proj"]["w"], config.tubelet_size, input_grad=input_grad)
    grads["embed"] = {"proj": {"w": dw, "b": db}, "cls": dcls, "pos": dpos}
    grads = _nest_like(params, grads)  # the same keys, in the same order, as params
    return Gradients(loss=float(loss), params=grads, output=out, pixel_values=dx, attentions=attentions)


def _heads_backward(params, config, ops, last, seeds, grads):
    """From the objective's seeds to dL/dlast_hidden_state [B, N, D]; fills grads['head'] / grads['pooler']
    (zeros for a head the objective does not read)."""
    dlast = np.zeros_like(last)  # [B, N, D]
    if "last_hidden_state" in seeds:
        dlast += seeds["last_hidden_state"]
    if "head" in params:  # logits = last[:, 0] @ w + b
        p = params["head"]
        if "logits" in seeds:
            dh, dw, db = cls_linear_backward(seeds["logits"], last, p["w"])  # [B, N, D], [D, C], [C]
            dlast += dh
        else:
            dw, db = np.zeros_like(p["w"]), np.zeros_like(p["b"])
        grads["head"] = {"w": dw, "b": db}
    if "pooler" in params:  # pooler_output = pooler_act(last[:, 0] @ w + b)
        p = params["pooler"]
        if "pooler_output" in seeds:
            z = ops.linear(last[:, 0], p["w"], p["b"])  # [B, D'], the activation's input (recomputed: [B, D] only)
            dz = activation_backward(seeds["pooler_output"], z, config.pooler_act)  # [B, D']
            dh, dw, db = cls_linear_backward(dz, last, p["w"])  # [B, N, D], [D, D'], [D']
            dlast += dh
        else:
            dw, db = np.zeros_like(p["w"]), np.zeros_like(p["b"])
        grads["pooler"] = {"w": dw, "b": db}
    return dlast


def _nest_like(params, grads):
    if isinstance(params, dict):
        return {k: _nest_like(v, grads[k]) for k, v in params.items()}
    if isinstance(params, list):
        return [_nest_like(v, g) for v, g in zip(params, grads)]
    return grads.astype(params.dtype, copy=False)


def _dropout(config, train, rng):
    if not train:
        return None
    if rng is None:
        raise ValueError("train=True needs rng=np.random.default_rng(seed): dropout masks are drawn from it")
    dropout = Dropout(config, rng)
    return dropout if dropout.active else None  # every probability 0: train mode equals eval mode


def _run_objective(objective, out):
    result = objective(out)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        raise TypeError("objective(output) must return (value, {output name: gradient}), e.g. "
                        "(o.pooler_output.sum(), {'pooler_output': np.ones_like(o.pooler_output)})")
    value, seeds = result
    for k, g in seeds.items():
        ref = getattr(out, k, None) if k in SEEDS else None
        if ref is None:
            have = [n for n in SEEDS if getattr(out, n) is not None]
            raise ValueError(f"objective returned a gradient for {k!r}; this model's outputs are {have}")
        if np.shape(g) != ref.shape:
            raise ValueError(f"objective's gradient for {k!r} has shape {np.shape(g)}; the output has {ref.shape}")
    return float(value), {k: np.asarray(g, dtype=out.last_hidden_state.dtype) for k, g in seeds.items()}


def _attention_layer_set(attention_grads, L):
    """attention_grads -> the set of layers whose dL/dA to return: None (none), "all", or a list of layers."""
    if attention_grads is None:
        return set()
    if isinstance(attention_grads, str) and attention_grads != "all":
        raise ValueError(f"attention_grads must be None, 'all' or a list of layers; got {attention_grads!r}")
    return attention_layer_set(None if isinstance(attention_grads, str) else attention_grads, L)


def _probs_sink(layer, attentions, callback, B, config, keep, dtype):
    """The on_probs function for one layer's attention backward: fills attentions[layer] [B, nh, N, N]
    (keep=True) and/or streams each head to callback(layer, head, A_h, dA_h). None when neither is asked."""
    if not keep and callback is None:
        return None

    def sink(h, a, da):  # a, da: [B, N, N]
        if keep:
            if layer not in attentions:
                attentions[layer] = np.empty((B, config.num_attention_heads, *da.shape[1:]), dtype)
            attentions[layer][:, h] = da
        if callback is not None:
            callback(layer, h, a, da)

    return sink
