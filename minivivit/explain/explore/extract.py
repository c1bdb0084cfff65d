"""What the explorer computes: one forward pass, then one pass over the layers.

    data = extract(model, clip)                  # clip: frames uint8 [T, H, W, 3], a data.Clip, or pixel_values
    data.cls["raw"]["*"]          # float32 [L, nh + 2, N]: CLS row of every layer and head choice (heads, mean, max)
    data.cls["rollout"]["*"]      # float32 [L, 3, N]: CLS row of the rollout through each layer (mean, max, min)
    data.distance["space"]        # [L, nh] mean attention distance in pixels; "time" in frames; "cls_share"
    data.sets["raw"].row(layer, head, query)   # on demand: one token's row [N], recomputed from the hidden state

The forward pass keeps the L+1 hidden states (ViViT-B: 125 MB); each layer's full maps [nh, N, N] are
then recomputed from them (recompute_attention), used for the CLS rows, the distances, the
rollout product and the planned full maps, and freed before the next layer (ViViT-B: 472 MB at a time).
Shapes use the letters of minivivit/layers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...tokens import TokenMap
from ..metrics import mean_attention_distance
from .maps import ANY_CLASS, LayerMaps, MapSet, quantise_rows, raw_attention, rollout_maps

HEADS_PER_DISTANCE = 4  # heads per mean_attention_distance call: ViViT-B's float64 copy is 315 MB, not 944 MB


@dataclass
class ExplorerData:
    """Everything the page shows, as arrays (minivivit.explain.explore.page turns it into a file)."""

    tokens: TokenMap  # the token <-> pixel map of this clip
    frames: np.ndarray  # uint8 [T, H, W, 3]: the frames the model saw (after resize and crop)
    frames_note: str  # where the frames come from
    sets: dict  # method name -> MapSet (raw, rollout, and any extra ones)
    cls: dict  # method name -> {target: float32 [L, len(heads), N]}
    distance: dict  # "space" px, "time" frames, "cls_share": float64 [L, nh]
    prediction: dict | None  # labels, probs [num_labels], top (indices), predicted; None for a base model
    model_summary: str  # repr(model)
    full: dict = field(default_factory=dict)  # (method, layer, head) -> (q uint8 [N, N], scale float32 [N])
    maps: LayerMaps | None = None  # recomputes any layer on demand from the kept hidden states (the widget)


def prepare_clip(model, clip, frames=None, processor_config=None, preset=None):
    """A clip in any accepted form -> (pixel_values float [1, T, C, H, W], frames uint8 [T, H, W, 3], note).

    clip: uint8 frames [T, H, W, 3] (any size and length: sampled and preprocessed as `minivivit classify`
    does), a minivivit.data.Clip, a video path, or pixel_values [1, T, C, H, W] already preprocessed (then
    pass `frames` to show the real pixels; otherwise the pixel values are rescaled to 0..255 for display).
    """
    from ...video.preprocess import preprocess_for

    config = model.config
    if isinstance(clip, (str, Path)):
        from ...video import load_frames  # .npy arrays or anything read_video opens

        clip = load_frames(clip, config.num_frames)
    if hasattr(clip, "frames") and hasattr(clip, "label"):  # a minivivit.data.Clip
        clip = clip.frames
    a = np.asarray(clip)
    if a.dtype == np.uint8:
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames [T, H, W, 3]; got shape {a.shape}")
        x = preprocess_for(config, a, processor_config, preset)  # [1, T, C, H, W]
        shown = preprocess_for(config, a, processor_config, do_rescale=False, offset=False, do_normalize=False)
        shown = np.clip(shown[0].transpose(0, 2, 3, 1).round(), 0, 255).astype(np.uint8)  # [T, H, W, 3]
        return x, shown, "the frames the model saw (sampled, resized and cropped; before normalisation)"
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"expected uint8 frames [T, H, W, 3] or float pixel_values [1, T, C, H, W]; got dtype {a.dtype}")
    if a.ndim != 5:
        hint = " Add a batch axis: pixel_values[None]." if a.ndim == 4 else ""
        raise ValueError(f"expected float pixel_values [1, T, C, H, W] (or uint8 frames [T, H, W, 3]); got {a.shape}.{hint}")
    if a.shape[0] != 1:
        raise ValueError(f"the explorer shows one clip; got a batch of {a.shape[0]}. Pass pixel_values[:1] (or [i:i+1])")
    if frames is None:
        lo, hi = float(a.min()), float(a.max())
        shown = np.rint((a[0].transpose(0, 2, 3, 1) - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)  # [T, H, W, C]
        if shown.shape[-1] == 1:
            shown = np.repeat(shown, 3, axis=-1)
        note = "pixel_values rescaled from [min, max] to 0..255 for display (pass frames= to show the real pixels)"
    else:
        shown = np.asarray(frames)
        if shown.dtype != np.uint8 or shown.shape != (a.shape[1], a.shape[3], a.shape[4], 3):
            raise ValueError(f"frames must be uint8 [T, H, W, 3] = {(a.shape[1], a.shape[3], a.shape[4], 3)} to match "
                             f"pixel_values {a.shape}; got {shown.dtype} {shown.shape}")
        note = "the frames passed with the pixel values"
    return a, shown, note


def _prediction(model, logits, top_k: int):
    if logits is None:
        return None
    z = logits[0].astype(np.float64)  # [num_labels]
    p = np.exp(z - z.max())
    p /= p.sum()
    top = [int(i) for i in np.argsort(-p, kind="stable")[:max(1, top_k)]]
    return {"labels": model.labels, "probs": p, "logits": z, "top": top, "predicted": top[0]}


def extract(model, clip, *, frames=None, units=(), backend: str = "numpy", processor_config=None, preset=None,
            top_k: int = 5, alpha: float = 0.5, extra_methods=None, progress: bool = False,
            prepared=None) -> ExplorerData:
    """Run the model on one clip and compute what the explorer shows (see the module docstring).

    units: full maps to quantise for a file, [(method, layer, head)] (minivivit.explain.explore.budget.plan).
    extra_methods: {name: function(maps: LayerMaps, output) -> MapSet} for more methods (issue 15).
    prepared: prepare_clip's (pixel_values, frames, note) when the caller already has them.
    The result keeps the hidden states (data.maps), so that any row can be recomputed later.
    """
    x, shown, note = prepared or prepare_clip(model, clip, frames, processor_config, preset)
    config = model.config
    L, nh = config.num_hidden_layers, config.num_attention_heads
    tokens = TokenMap.for_config(config, x.shape)
    out = model(x, backend=backend, output_hidden_states=True, interpolate_pos_encoding=tokens.grid != config.grid)
    maps = LayerMaps(model, out.hidden_states, backend)
    sets = {"raw": raw_attention(maps), "rollout": rollout_maps(maps, alpha)}
    for name, make in (extra_methods or {}).items():
        if name in sets:
            raise ValueError(f"method name {name!r} is taken; the built-in ones are {list(sets)}")
        sets[name] = make(maps, out)
    _check_units(units, sets, L)

    N = tokens.num_tokens
    cls = {m: {t: np.zeros((L, len(s.heads), N), np.float32) for t in s.targets} for m, s in sets.items()}
    distance = {k: np.zeros((L, nh)) for k in ("space", "time", "cls_share")}
    full = {}
    layers = range(L)
    if progress:
        from ...progress import tqdm  # no TqdmWarning in a notebook without ipywidgets

        layers = tqdm(layers, desc="layers", unit="layer")
    for layer in layers:
        a = maps[layer]  # [nh, N, N]
        for h in range(0, nh, HEADS_PER_DISTANCE):  # a few heads at a time: bounded float64 temporaries
            d = mean_attention_distance(a[None, h:h + HEADS_PER_DISTANCE], tokens)  # {k: [1, heads]}
            for k, per_head in distance.items():
                per_head[layer, h:h + HEADS_PER_DISTANCE] = d[k][0]
        for m, s in sets.items():
            for t in s.targets:
                for h in range(len(s.heads)):
                    m_full = s.full(layer, h, t)  # [N, N]
                    cls[m][t][layer, h] = m_full[0]  # the CLS row
                    if (m, layer, h) in units and t == s.targets[0]:
                        full[(m, layer, h)] = quantise_rows(m_full)
    return ExplorerData(tokens, shown, note, sets, cls, distance, _prediction(model, out.logits, top_k),
                        repr(model), full, maps)


def _check_units(units, sets, num_layers):
    for u in units:
        m, layer, h = u
        if m not in sets:
            raise ValueError(f"full map {u}: no method {m!r}; the methods are {list(sets)}")
        if not 0 <= layer < num_layers or not 0 <= h < len(sets[m].heads):
            raise ValueError(f"full map {u}: layers are 0..{num_layers - 1}, head choices 0..{len(sets[m].heads) - 1}")


__all__ = ["ANY_CLASS", "ExplorerData", "MapSet", "extract", "prepare_clip"]
