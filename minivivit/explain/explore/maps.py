"""What the explorer can show: named map sets (one per method), each with CLS rows and full maps on demand.

A map set is one entry of the page's "method" menu. It knows, for every layer and every head choice,
the CLS row (where the classification token looks: [N] values, CLS first) and, when asked, the full
map [N, N] (row q = where token q looks), from which the page shows a clicked tubelet's row. The
explorer ships the CLS rows whole and the full maps only within the size budget (or, in a notebook,
computes rows on demand from the kernel).

    maps = LayerMaps(model, hidden_states)                 # recomputes one layer's attention at a time
    sets = {"raw": raw_attention(maps), "rollout": rollout_maps(maps)}
    sets["raw"].full(layer=2, head=sets["raw"].heads.index("mean"))   # [N, N]

Extension point: a new method (issue 15: GAE, attention x gradient, ...) is one more MapSet in that dict.
A class-specific method sets class_specific=True and its full(layer, head, target) uses `target`
(a class index as a string); the page then enables the target-class menu for it.

Shapes use the letters of minivivit/layers.py (nh heads, N tokens, CLS first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..capturing import recompute_attention
from ..rollout import fuse_heads, rollout_matrix

HEAD_FUSIONS = ("mean", "max")  # head choices beside the single heads for raw attention
ROLLOUT_FUSIONS = ("mean", "max", "min")  # how rollout combines the heads of each layer (fuse_heads)
ANY_CLASS = "*"  # the target of a method that does not depend on the class


@dataclass
class MapSet:
    """One method's maps. full(layer, head, target) -> float [N, N] (head: index into `heads`)."""

    label: str  # the method menu's entry, e.g. "raw attention"
    description: str  # what the numbers are, shown on the page next to the colour scale
    value_label: str  # the colour scale's short label
    layer_label: str  # how the layer menu reads for this method ("layer" or "rollout through layer")
    heads: list[str]  # the head menu: "0".."nh-1", "mean", "max" (raw) or the fusions (rollout)
    num_layers: int
    full: Callable  # (layer, head, target) -> [N, N]; may be slow (recomputes), caches what it can
    class_specific: bool = False  # True: the maps depend on the target class (the page's class menu)
    targets: list[str] = field(default_factory=lambda: [ANY_CLASS])  # classes with maps ("*": any)

    def row(self, layer: int, head: int, query: int, target: str = ANY_CLASS) -> np.ndarray:
        """Token `query`'s row of the full map: [N] (query 0 is the CLS row)."""
        return np.asarray(self.full(layer, head, target)[query])


class LayerMaps:
    """Full attention maps of one layer at a time, recomputed from the stored hidden states.

    hidden_states: the L+1 arrays [1, N, D] of a forward pass with output_hidden_states=True. item l is
    recompute_attention(model, hidden_states[l], l)[0]: [nh, N, N] (the last one asked is kept).
    """

    def __init__(self, model, hidden_states, backend: str = "numpy"):
        self.model, self.hidden, self.backend = model, hidden_states, backend
        self.num_layers = model.config.num_hidden_layers
        self.num_heads = model.config.num_attention_heads
        self._cached = (None, None)  # (layer, maps)

    def __len__(self):
        return self.num_layers

    def __getitem__(self, layer: int) -> np.ndarray:
        layer = _check_layer(layer, self.num_layers)
        if self._cached[0] != layer:
            self._cached = (None, None)  # free the previous layer first (472 MB at ViViT-B)
            maps = recompute_attention(self.model, self.hidden[layer], layer, self.backend)[0]  # [nh, N, N]
            self._cached = (layer, maps)
        return self._cached[1]


def head_choices(num_heads: int) -> list[str]:
    """The raw-attention head menu: every head, then the fused heads."""
    return [str(h) for h in range(num_heads)] + list(HEAD_FUSIONS)


def raw_attention(maps: LayerMaps) -> MapSet:
    """Raw attention: layer l's softmax probabilities, one head or the heads fused (fuse_heads)."""
    heads = head_choices(maps.num_heads)

    def full(layer, head, target=ANY_CLASS):
        return fuse_heads(maps[layer], _head_value(heads, head), axis=-3)  # [nh, N, N] -> [N, N]

    return MapSet(
        label="raw attention",
        description=("softmax attention probabilities of one layer: row q says how much token q's query attends to "
                     "each key token; every row sums to 1 over all N tokens (CLS included). mean/max combine the "
                     "heads entry by entry."),
        value_label="attention weight (softmax probability)",
        layer_label="layer", heads=heads, num_layers=maps.num_layers, full=full)


class _RolloutProducts:
    """R_l = A_hat_l @ ... @ A_hat_0 for one head fusion, extended one layer at a time (as rollout).

    Asking for layers in increasing order (what extraction does) costs one product per layer; asking for
    an earlier layer than the last starts again from layer 0.
    """

    def __init__(self, maps: LayerMaps, fusion: str, alpha: float):
        self.maps, self.fusion, self.alpha = maps, fusion, alpha
        self.layer, self.r = -1, None

    def __call__(self, layer: int) -> np.ndarray:
        layer = _check_layer(layer, len(self.maps))
        if layer < self.layer:
            self.layer, self.r = -1, None
        while self.layer < layer:
            i = self.layer + 1
            a = rollout_matrix(self.maps[i], self.fusion, self.alpha)  # [nh, N, N] -> [N, N]
            self.r = a if self.r is None else a @ self.r  # later layers multiply on the left
            self.layer = i
        return self.r


def rollout_maps(maps: LayerMaps, alpha: float = 0.5) -> MapSet:
    """Attention rollout (Abnar & Zuidema 2020) from layer 0 through layer l; row 0 is rollout_cls's."""
    products = {f: _RolloutProducts(maps, f, alpha) for f in ROLLOUT_FUSIONS}
    heads = list(ROLLOUT_FUSIONS)

    def full(layer, head, target=ANY_CLASS):
        return products[_head_value(heads, head)](layer)  # [N, N]

    return MapSet(
        label="attention rollout",
        description=(f"attention rollout from layer 0 through the chosen layer (alpha = {alpha}: each layer is "
                     f"rownorm(alpha * heads fused + (1 - alpha) * identity), the identity standing for the residual "
                     f"path; the layers' matrices multiplied). Row q says how much of token q's output at that layer "
                     f"comes from each input token; rows sum to 1. mean/max/min: how each layer's heads are fused."),
        value_label="rollout weight (share of the input token)",
        layer_label="through layer", heads=heads, num_layers=maps.num_layers, full=full)


def _head_value(heads: list[str], head):
    """Index into the head menu -> what fuse_heads takes (an int head or a fusion name)."""
    if not 0 <= int(head) < len(heads):
        raise ValueError(f"head choice {head} does not exist; the choices are 0..{len(heads) - 1}: {heads}")
    name = heads[int(head)]
    return int(name) if name.isdigit() else name


def _check_layer(layer, num_layers: int) -> int:
    if not -num_layers <= int(layer) < num_layers:
        raise ValueError(f"layer {layer} does not exist; the model has layers 0..{num_layers - 1}")
    return int(layer) % num_layers


# ---------------------------------------------------------------------------------------------
# 8-bit quantisation of full maps: per row, relative to the row's largest entry
# ---------------------------------------------------------------------------------------------


def quantise_rows(m):
    """[N, N] non-negative map -> (q uint8 [N, N], scale float32 [N]) with m ~ q * scale / 255.

    scale is each row's maximum, so |dequantise(q, scale) - m| <= scale / 510 (half a step) plus float32
    rounding of the scale: for attention, a row's largest weight / 510.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or (m.size and m.min() < 0):
        raise ValueError(f"expected a non-negative map [N, N] to quantise; got shape {m.shape}")
    scale = m.max(axis=1).astype(np.float32)  # [N]
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)[:, None]  # [N, 1]
    q = np.rint(np.clip(m / safe, 0.0, 1.0) * 255.0).astype(np.uint8)  # [N, N]
    return q, scale


def dequantise(q, scale):
    """(q uint8 [..., N], scale [...]) -> float64 [..., N] = q * scale / 255 (what the page computes)."""
    return np.asarray(q, dtype=np.float64) * (np.asarray(scale, dtype=np.float64)[..., None] / 255.0)
