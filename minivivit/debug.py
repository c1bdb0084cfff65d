"""Step-by-step debugging: a named trace of every intermediate, interventions, float64 drift.

    from minivivit import debug
    ours = debug.trace(model, x)                       # {name: array}, in forward order
    ref = debug.hf_trace(hf_model, x)                  # the same names from HF transformers (dev extra)
    report = debug.compare(ours, ref)                  # table: shape, max |a-b|, allclose per name
    report.first_divergence                            # e.g. "blocks.3.fc1", or None
    debug.run(model, x, replace={"blocks.3.out": np.zeros_like})       # interventions: any name, array or fn
    debug.precision_drift(model, x)                    # float32 vs float64, layer by layer

Trace names (an API: other code and notebooks use them). Shapes in minivivit/layers.py's letters.

    embed.patches      [B, P, D]      tubelet projection (HF: embeddings.patch_embeddings, Conv3d flattened)
    embed.tokens       [B, N, D]      CLS prepended
    embed.out          [B, N, D]      + position embeddings (HF: embeddings)
    blocks.i.ln1       [B, N, D]      LayerNorm before attention (HF: layers[i].layernorm_before)
    blocks.i.q/.k/.v   [B, N, D]      projections, heads not yet split (HF: attention.q_proj/k_proj/v_proj)
    blocks.i.scores    [B, nh, N, N]  Q K^T / sqrt(d), before softmax
    blocks.i.probs     [B, nh, N, N]  softmax(scores), times head_mask if given (HF: attn_weights)
    blocks.i.context   [B, N, D]      probs @ V, heads merged (HF: input of attention.o_proj)
    blocks.i.attn_out  [B, N, D]      output projection (HF: attention.o_proj)
    blocks.i.resid1    [B, N, D]      x + attn_out (HF: input of layernorm_after)
    blocks.i.ln2       [B, N, D]      LayerNorm before the MLP (HF: layernorm_after)
    blocks.i.fc1       [B, N, F]      first MLP layer, before the activation (HF: mlp.fc1)
    blocks.i.act       [B, N, F]      activation (hidden_act) (HF: input of mlp.fc2)
    blocks.i.fc2       [B, N, D]      second MLP layer (HF: mlp.fc2)
    blocks.i.out       [B, N, D]      resid1 + fc2: the block output, = hidden_states[i + 1]
    final_norm         [B, N, D]      last LayerNorm, = last_hidden_state (HF: layernorm)
    pooled             [B, D']        pooler_act(dense(CLS)), base models with a pooler only (HF: pooler)
    logits             [B, num_labels] classifier(CLS), classifiers only (HF: classifier)

A full ViViT-B trace is large: 12 layers x 2 maps (scores, probs) of [12, 3137, 3137] float32,
472 MB each, about 11 GB per clip, plus about 2 GB for everything else. Keep a subset with
`include=` / `exclude=` glob patterns (fnmatch): include=["blocks.11.*", "logits"].
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

import numpy as np

from .debug_report import DEFAULT_TOLERANCES, Report, Row, compare
from .model import Model, ViViTOutput, vivit_forward

__all__ = [
    "DEFAULT_TOLERANCES", "Report", "Row", "compare", "head_mask", "hf_trace", "precision_drift", "reorder_frames",
    "run", "select_names", "trace", "trace_names",
]

EMBED_NAMES = ("embed.patches", "embed.tokens", "embed.out")
BLOCK_NAMES = ("ln1", "q", "k", "v", "scores", "probs", "context", "attn_out", "resid1", "ln2", "fc1", "act", "fc2",
               "out")


def trace_names(num_layers: int, head: bool = True, pooler: bool = False) -> list[str]:
    """Every trace name in forward order, for a model with num_layers blocks (and a head / a pooler)."""
    names = list(EMBED_NAMES)
    names += [f"blocks.{i}.{n}" for i in range(num_layers) for n in BLOCK_NAMES]
    names += ["final_norm"] + ["pooled"] * pooler + ["logits"] * head
    return names


def _model_names(model: Model) -> list[str]:
    return trace_names(model.config.num_hidden_layers, head=model.has_head, pooler="pooler" in model.params)


def select_names(names: list[str], include=None, exclude=None) -> list[str]:
    """The names matching any include pattern (all if None) and no exclude pattern (fnmatch globs).

    A pattern that matches no name is a typo, so it raises ValueError listing what names look like."""
    include, exclude = _patterns(include, "include"), _patterns(exclude, "exclude")
    for kind, patterns in (("include", include), ("exclude", exclude)):
        for p in patterns or ():
            if not fnmatch.filter(names, p):
                raise ValueError(f"{kind} pattern {p!r} matches no trace name; names are like "
                                 f"'embed.patches', 'blocks.0.fc1', 'blocks.*.probs', 'logits' "
                                 f"(this model: {names[0]} ... {names[-1]}, {len(names)} names)")
    keep = [n for n in names if include is None or any(fnmatch.fnmatchcase(n, p) for p in include)]
    return [n for n in keep if not any(fnmatch.fnmatchcase(n, p) for p in exclude or ())]


def _patterns(patterns, kind):
    if patterns is None:
        return None
    if isinstance(patterns, str):
        return [patterns]
    patterns = list(patterns)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"{kind} must be a glob string or a list of them, like ['blocks.*.out', 'logits']")
    return patterns


# ---------------------------------------------------------------------------------------------
# Tracing and interventions: both are a `tap` on model.vivit_forward
# ---------------------------------------------------------------------------------------------

Replacement = np.ndarray | Callable[[np.ndarray], np.ndarray]


def _make_tap(names: list[str], keep: Iterable[str], replace: dict[str, Replacement] | None, store: dict):
    """A tap that swaps in replacements and stores the (possibly replaced) arrays named in keep."""
    replace = dict(replace or {})
    unknown = [k for k in replace if k not in names]
    if unknown:
        raise ValueError(f"replace: no intermediate called {unknown[0]!r}; names are exact, like 'blocks.3.out' "
                         f"(see minivivit.debug.trace_names; this model has {names[0]} ... {names[-1]})")
    keep = set(keep)

    def tap(name, x):
        if name in replace:
            new = replace[name]
            new = np.asarray(new(x) if callable(new) else new)
            if new.shape != x.shape:
                raise ValueError(f"replace[{name!r}] has shape {new.shape}; the forward pass needs {x.shape} there")
            x = new.astype(x.dtype, copy=False)
        if name in keep:
            store[name] = x
        return x

    return tap


def _check_model(model, fn):
    if not isinstance(model, Model):
        hint = " For an HF transformers model use minivivit.debug.hf_trace()." if hasattr(model, "named_modules") else ""
        raise TypeError(f"{fn}() takes a minivivit.Model (e.g. minivivit.load(path)); got {type(model).__name__}.{hint}")


def trace(model: Model, pixel_values, backend: str = "numpy", include=None, exclude=None,
          replace: dict[str, Replacement] | None = None, **forward_kwargs) -> dict[str, np.ndarray]:
    """Run the forward pass and return {name: array} for every named intermediate, in forward order.

    include / exclude: fnmatch globs choosing which names to keep (all by default; see the module
    docstring for the names). replace: interventions, as in run(). forward_kwargs go to the forward
    pass (head_mask, interpolate_pos_encoding). Attention runs on the explicit scores -> softmax path.
    """
    _check_model(model, "trace")
    names = _model_names(model)
    store: dict[str, np.ndarray] = {}
    tap = _make_tap(names, select_names(names, include, exclude), replace, store)
    vivit_forward(model.params, model.config, pixel_values, backend=backend, tap=tap, **forward_kwargs)
    return store


def run(model: Model, pixel_values, replace: dict[str, Replacement] | None = None, backend: str = "numpy",
        **forward_kwargs) -> ViViTOutput:
    """A forward pass with named intermediates replaced: {name: array} or {name: fn(array) -> array}.

    E.g. replace={"blocks.0.out": np.zeros_like} switches the first block's output off;
    replace={"blocks.3.out": reorder_frames(order, model.config.grid)} shuffles time after layer 3.
    forward_kwargs go to the forward pass (head_mask=..., output_attentions=..., ...).
    """
    _check_model(model, "run")
    tap = _make_tap(_model_names(model), (), replace, {})
    return vivit_forward(model.params, model.config, pixel_values, backend=backend, tap=tap, **forward_kwargs)


def hf_trace(hf_model, pixel_values, include=None, exclude=None, **forward_kwargs) -> dict[str, np.ndarray]:
    """The same names from a transformers VivitModel / VivitForVideoClassification; see debug_hf.py."""
    from .debug_hf import hf_trace as _hf_trace

    return _hf_trace(hf_model, pixel_values, include=include, exclude=exclude, **forward_kwargs)


# ---------------------------------------------------------------------------------------------
# Ready-made interventions
# ---------------------------------------------------------------------------------------------


def reorder_frames(order, grid: tuple[int, int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """A replacement that reorders the tubelet tokens in time: new time slot s gets old slot order[s].

    Works on [B, N, D] token arrays (CLS first, left in place) and on embed.patches [B, P, D].
    Token order is HF's Conv3d flatten order (t slowest), so time is the outer axis of the
    tubelet tokens: [B, P, D] = [B, t, h*w, D] flattened.

    The lesson: on embed.patches (before the position embeddings) it changes the logits; after
    any block (e.g. "blocks.3.out") the logits stay equal up to rounding, because attention is
    permutation-equivariant and CLS reads all tokens alike: time order reaches the model only
    through the position embeddings.
    """
    t, h, w = grid
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(t)):
        raise ValueError(f"order must be a permutation of 0..{t - 1} (the model has t={t} time slots); got {order}")

    def reorder(x):
        B, N, D = x.shape
        cls = N == t * h * w + 1  # token arrays carry CLS first; embed.patches does not
        if N - cls != t * h * w:
            raise ValueError(f"reorder_frames expects {t * h * w} or {t * h * w + 1} tokens (grid {grid}); got {N}")
        patches = x[:, int(cls):].reshape(B, t, h * w, D)  # [B, P, D] -> [B, t, h*w, D]
        patches = patches[:, order].reshape(B, t * h * w, D)  # [B, t, h*w, D] -> [B, P, D]
        return np.concatenate([x[:, :1], patches], axis=1) if cls else patches  # [B, N, D]

    return reorder


def head_mask(config, heads: Iterable[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """A [L, nh] head_mask of ones with value at each (layer, head): value 0 switches those heads off.

    Pass it as run(model, x, head_mask=m) or model(x, head_mask=m)."""
    L, nh = config.num_hidden_layers, config.num_attention_heads
    m = np.ones((L, nh), dtype=np.float32)
    for layer, h in heads:
        if not (-L <= layer < L and -nh <= h < nh):
            raise ValueError(f"head ({layer}, {h}) does not exist; the model has layers 0..{L - 1}, heads 0..{nh - 1}")
        m[layer, h] = value
    return m


def precision_drift(model: Model, pixel_values, backend: str = "numpy",
                    include=("embed.out", "blocks.*.out", "final_norm")) -> dict[str, float]:
    """Where float32 rounding accumulates: {name: ||x32 - x64|| / ||x64||} per traced name.

    Runs the model once in float32 and once in float64 (model.to(np.float64), the same input
    values) and takes the relative RMS error of each name, the float64 run being the reference. By
    default one number per layer (embeddings, every block's output, the final LayerNorm): each block
    adds its own rounding to the residual stream, so the numbers grow with depth.
    """
    _check_model(model, "precision_drift")
    x = np.asarray(pixel_values, dtype=np.float32)
    t32 = trace(model.to(np.float32), x, backend=backend, include=include)
    t64 = trace(model.to(np.float64), x.astype(np.float64), backend="numpy", include=include)
    drift = {}
    for name, a in t32.items():
        ref = t64[name].ravel()  # [n] float64
        drift[name] = float(np.linalg.norm(a.ravel() - ref) / max(np.linalg.norm(ref), np.finfo(np.float64).tiny))
    return drift
