"""Named traces of every intermediate, interventions, float32 vs float64 drift: a `tap` on the forward pass.

The trace names and their shapes are listed once, in minivivit/model.py's docstring (trace_names()
gives them in order for a model). A full ViViT-B trace is large: 12 layers x 2 maps (scores, probs)
of [12, 3137, 3137] float32, 472 MB each, about 11 GB per clip, plus about 2 GB for everything else.
Keep a subset with `include=` / `exclude=` glob patterns (fnmatch): include=["blocks.11.*", "logits"];
names that are not kept are never materialised (the attention maps stay inside the fast kernels).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

import numpy as np

from ..model import Model, ViViTOutput, vivit_forward
from ..tokens import TokenMap


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


class RecordingTap:
    """A tap that swaps in replacements and stores the (possibly replaced) arrays named in keep.

    It wants only the names it keeps or replaces, so everything else runs on the fast path."""

    def __init__(self, names: list[str], keep: Iterable[str], replace: dict[str, Replacement] | None):
        self.replace = dict(replace or {})
        unknown = [k for k in self.replace if k not in names]
        if unknown:
            raise ValueError(f"replace: no intermediate called {unknown[0]!r}; names are exact, like 'blocks.3.out' "
                             f"(see minivivit.debug.trace_names; this model has {names[0]} ... {names[-1]})")
        self.keep = set(keep)
        self.store: dict[str, np.ndarray] = {}

    def wants(self, name: str) -> bool:
        return name in self.keep or name in self.replace

    def __call__(self, name, x):
        if name in self.replace:
            new = self.replace[name]
            new = np.asarray(new(x) if callable(new) else new)
            if new.shape != x.shape:
                raise ValueError(f"replace[{name!r}] has shape {new.shape}; the forward pass needs {x.shape} there")
            x = new.astype(x.dtype, copy=False)
        if name in self.keep:
            self.store[name] = x
        return x


def _check_model(model, fn):
    if not isinstance(model, Model):
        hint = " For an HF transformers model use minivivit.debug.hf_trace()." if hasattr(model, "named_modules") else ""
        raise TypeError(f"{fn}() takes a minivivit.Model (e.g. minivivit.load(path)); got {type(model).__name__}.{hint}")


def trace(model: Model, pixel_values, backend: str = "numpy", include=None, exclude=None,
          replace: dict[str, Replacement] | None = None, **forward_kwargs) -> dict[str, np.ndarray]:
    """Run the forward pass and return {name: array} for every named intermediate, in forward order.

    include / exclude: fnmatch globs choosing which names to keep (all by default; the names are listed in
    minivivit/model.py). replace: interventions, as in run(). forward_kwargs go to the forward pass
    (head_mask, interpolate_pos_encoding). Layers whose scores or probs are kept run attention as the
    reference's explicit scores -> softmax -> context steps.
    """
    _check_model(model, "trace")
    names = model.trace_names()
    tap = RecordingTap(names, select_names(names, include, exclude), replace)
    vivit_forward(model.params, model.config, pixel_values, backend=backend, tap=tap, **forward_kwargs)
    return {name: tap.store[name] for name in names if name in tap.store}


def run(model: Model, pixel_values, replace: dict[str, Replacement] | None = None, backend: str = "numpy",
        **forward_kwargs) -> ViViTOutput:
    """A forward pass with named intermediates replaced: {name: array} or {name: fn(array) -> array}.

    E.g. replace={"blocks.0.out": np.zeros_like} switches the first block's output off;
    replace={"blocks.3.out": reorder_frames(order, model.config.grid)} shuffles time after layer 3.
    forward_kwargs go to the forward pass (head_mask=..., output_attentions=..., ...).
    """
    _check_model(model, "run")
    tap = RecordingTap(model.trace_names(), (), replace)
    return vivit_forward(model.params, model.config, pixel_values, backend=backend, tap=tap, **forward_kwargs)


# ---------------------------------------------------------------------------------------------
# Ready-made interventions
# ---------------------------------------------------------------------------------------------


def reorder_frames(order, grid: tuple[int, int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """A replacement that reorders the tubelet tokens in time: new time slot s gets old slot order[s].

    Works on [B, N, D] token arrays (CLS first, left in place) and on embed.patches [B, P, D].
    The token of each (t, y, x) comes from minivivit.tokens.TokenMap (HF's order).

    The lesson: on embed.patches (before the position embeddings) it changes the logits; after
    any block (e.g. "blocks.3.out") the logits stay equal up to rounding, because attention is
    permutation-equivariant and CLS reads all tokens alike: time order reaches the model only
    through the position embeddings.
    """
    tokens = TokenMap(tuple(grid), (1, 1, 1))  # only the grid matters here
    t, h, w = tokens.grid
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(t)):
        raise ValueError(f"order must be a permutation of 0..{t - 1} (the model has t={t} time slots); got {order}")
    ts, ys, xs = tokens.coords(np.arange(1, tokens.num_tokens))  # (t, y, x) of every patch token, [P] each
    source = tokens.token(order[ts], ys, xs)  # [P] the token whose content moves to each place

    def reorder(x):
        B, N, D = x.shape
        if N not in (tokens.num_tokens, tokens.num_patches):
            raise ValueError(f"reorder_frames expects {tokens.num_patches} or {tokens.num_tokens} tokens "
                             f"(grid {tuple(grid)}); got {N}")
        if N == tokens.num_patches:  # embed.patches: no CLS, tubelet j is column j
            return x[:, source - 1]  # [B, P, D]
        return np.concatenate([x[:, :1], x[:, source]], axis=1)  # [B, N, D], CLS stays first

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
