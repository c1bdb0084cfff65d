"""The size budget of an explorer file: which full maps go in, and what is left out (said on the page).

Always in the file (the fixed part): the frames the model saw, the CLS rows of every layer and head
choice and of the rollout through every layer (float32, exact), per-head mean attention distances,
the prediction, the script and the styles. At ViViT-B (32x224x224, N = 3137) that is about 4 MB.

Within the budget: full maps [N, N], 8-bit per row (minivivit.explain.explore.maps.quantise_rows), one per
(method, layer, head choice), N^2 bytes + 4N for the scales, base64 in the page (x 4/3). At ViViT-B
one such map is 13.1 MB in the file, so the default budget of 25 MB holds the last layer's head-mean
map; one layer with all 12 heads + mean + max would be 184 MB. Groups are taken in this order, each
only if it fits whole (later, smaller ones may still fit):

    1. raw attention, heads mean, for each chosen layer (last layer first)
    2. raw attention, every other head choice (max, 0..nh-1), for each chosen layer
    3. every other method (rollout, ...): its first head choice (mean), for each chosen layer
    4. every other method: its remaining head choices
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..capturing import format_bytes

DEFAULT_BUDGET = 25_000_000  # bytes (25 MB, decimal) for the whole file
UNIT_OVERHEAD = 160  # bytes of markup around one embedded map (script tags, ids, the JSON reference)


def b64_len(nbytes: int) -> int:
    """Characters of the base64 text of nbytes bytes."""
    return 4 * ((int(nbytes) + 2) // 3)


def unit_bytes(num_tokens: int) -> int:
    """Bytes one quantised full map [N, N] adds to the file: the codes, the row scales, the markup."""
    return b64_len(num_tokens * num_tokens) + b64_len(4 * num_tokens) + UNIT_OVERHEAD


def parse_layers(spec, num_layers: int):
    """--layers-full text -> "auto" or a list of layer indices (0..L-1, in the order given).

    Accepts "auto", "all", "none", or comma-separated indices where negative ones count from the end
    ("-1" = the last layer); a list/tuple of ints works too."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        return "auto"
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(num_layers - 1, -1, -1))
        if text in ("none", ""):
            return []
        parts = [p.strip() for p in text.split(",")]
    else:
        parts = list(spec)
    layers = []
    for p in parts:
        try:
            i = int(p)
        except (TypeError, ValueError):
            raise ValueError(f"--layers-full takes auto, all, none or comma-separated layer indices such as "
                             f"'-1' or '0,5,11'; got {spec!r}") from None
        if not -num_layers <= i < num_layers:
            raise ValueError(f"--layers-full: layer {i} does not exist; the model has layers 0..{num_layers - 1} "
                             f"(negative indices count from the end)")
        if i % num_layers not in layers:
            layers.append(i % num_layers)
    return layers


@dataclass
class Plan:
    """Which full maps an explorer file embeds: units (method, layer, head index), in the order chosen."""

    units: list = field(default_factory=list)  # [(method, layer, head)]
    left_out: list = field(default_factory=list)  # [str]: what is not embedded, with its size
    unit_bytes: int = 0  # bytes of one embedded map
    fixed_bytes: int = 0  # the rest of the file (estimated before extraction)
    budget: int = DEFAULT_BUDGET

    @property
    def total_bytes(self) -> int:
        return self.fixed_bytes + len(self.units) * self.unit_bytes


def _groups(sets: dict, layers: list[int]):
    """(phase, method, layer, [head indices]) in the order of the module docstring."""
    for method, s in sets.items():
        first = s.heads.index("mean") if "mean" in s.heads else 0
        rest = [h for h in range(len(s.heads)) if h != first]
        rest.sort(key=lambda h: (s.heads[h].isdigit(), h))  # fused choices (max, min) before single heads
        for layer in layers:
            yield (1 if method == "raw" else 3), method, layer, [first]
            yield (2 if method == "raw" else 4), method, layer, rest


def plan(sets: dict, num_tokens: int, num_layers: int, layers="auto", budget: int = DEFAULT_BUDGET,
         fixed_bytes: int = 0) -> Plan:
    """Choose the embedded full maps. layers: "auto" (every layer, last first) or explicit indices.

    Explicit layers must at least fit their raw head-mean maps (else ValueError with the sizes);
    "auto" takes what fits. Raises when the fixed part alone is over the budget."""
    each = unit_bytes(num_tokens)
    if fixed_bytes > budget:
        raise ValueError(f"the frames, CLS rows and script alone take {format_bytes(fixed_bytes)}, above the budget "
                         f"of {format_bytes(budget)}; raise it (--budget {_mb_up(fixed_bytes + each)} MB)")
    explicit = layers != "auto"
    order = list(range(num_layers - 1, -1, -1)) if layers == "auto" else list(layers)
    result = Plan(unit_bytes=each, fixed_bytes=fixed_bytes, budget=budget)
    room = budget - fixed_bytes
    skipped = []
    for phase, method, layer, heads in sorted(_groups(sets, order), key=lambda g: (g[0], order.index(g[2]))):
        if not heads:
            continue
        size = len(heads) * each
        if size <= room:
            result.units += [(method, layer, h) for h in heads]
            room -= size
        else:
            skipped.append((phase, method, layer, heads))
    if explicit:
        missing = sorted({layer for phase, method, layer, _ in skipped if phase == 1})
        if missing:
            need = fixed_bytes + len(order) * each
            raise ValueError(f"--layers-full {','.join(map(str, order))}: the head-mean full maps alone need "
                             f"{format_bytes(each)} per layer, and layers {missing} do not fit in the budget of "
                             f"{format_bytes(budget)} (the rest of the file takes {format_bytes(fixed_bytes)}). "
                             f"Choose fewer layers, or raise the budget to --budget {_mb_up(need)} (MB)")
    result.left_out = _describe_left_out(sets, skipped, order, num_layers, each)
    return result


def _describe_left_out(sets, skipped, order, num_layers, each) -> list[str]:
    """One line per (method, head choices) with the layers left out, their size and how to include them."""
    lines = []
    by_key = {}
    for _, method, layer, heads in skipped:
        by_key.setdefault((method, tuple(heads)), []).append(layer)
    for (method, heads), skipped_layers in by_key.items():
        names = ", ".join(sets[method].heads[h] for h in heads)
        size = len(heads) * each
        lines.append(f"{sets[method].label}, head choice{'s' if len(heads) > 1 else ''} {names}: full maps of "
                     f"layer{'s' if len(skipped_layers) > 1 else ''} {_ranges(sorted(skipped_layers))} "
                     f"({format_bytes(size)} per layer in this file)")
    unchosen = sorted(set(range(num_layers)) - set(order))
    if unchosen:
        lines.append(f"full maps of layers {_ranges(unchosen)} (not chosen with --layers-full)")
    return lines


def describe_units(sets: dict, units) -> list[str]:
    """[(method, layer, head)] -> one line per method and head choices: 'raw attention, heads mean: layers 0-2'."""
    layers_of = {}
    for m, layer, h in units:
        layers_of.setdefault((m, h), set()).add(layer)
    by_layers = {}
    for (m, h), layers in layers_of.items():
        by_layers.setdefault((m, tuple(sorted(layers))), []).append(h)
    lines = []
    for (m, layers), heads in by_layers.items():
        names = ", ".join(sets[m].heads[h] for h in sorted(heads, key=lambda h: (sets[m].heads[h].isdigit(), h)))
        lines.append(f"{sets[m].label}, head choice{'s' if len(heads) > 1 else ''} {names}: "
                     f"layer{'s' if len(layers) > 1 else ''} {_ranges(list(layers))}")
    return lines


def how_to_include(num_tokens: int, used: int) -> str:
    """The sentence the page shows under "left out"."""
    each = unit_bytes(num_tokens)
    return (f"To embed more full maps, rebuild with e.g. `minivivit explore VIDEO --layers-full 0,-1 --budget "
            f"{_mb_up(used + each)}` (each map adds {format_bytes(each)}), or open the explorer in a notebook "
            f"with minivivit.explain.explore(model, clip): it computes any clicked row on demand.")


def _mb_up(nbytes: int) -> int:
    return -(-int(nbytes) // 1_000_000)


def _ranges(layers: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    out, start = [], None
    for i, x in enumerate(layers):
        if start is None:
            start = x
        if i + 1 == len(layers) or layers[i + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ", ".join(out)
