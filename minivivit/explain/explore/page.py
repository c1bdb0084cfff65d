"""One self-contained HTML file: the script, the styles and the data inline; no CDN, no server, no network.

    html, info = build_html(model, clip)                   # info: sizes, what is embedded / left out
    write_html("view.html", html, overwrite=False)         # atomic; refuses to replace a file unless asked

The page is static/explorer.js + static/explorer.css (package data, inlined here) and a JSON
payload. Arrays travel as base64 blobs, each in its own <script type="application/octet-stream">
element, so that the page starts without decoding the big full maps: a clicked row is decoded from
its slice of the base64 text alone. A Content-Security-Policy (default-src 'none') makes the
browser refuse any network request the page might try.
"""

from __future__ import annotations

import base64
import io
import json
import time
from importlib import resources

import numpy as np

from ...fileio import atomic_output
from ...tokens import TokenMap
from ..capturing import format_bytes
from . import budget as budget_mod
from .extract import extract, prepare_clip
from .maps import ROLLOUT_FUSIONS, head_choices, quantise_rows

FORMAT = "minivivit-explorer/1"
DTYPES = {"f32": np.float32, "u8": np.uint8, "i32": np.int32}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


SCRIPTS = ("explorer-data.js", "explorer-draw.js", "explorer.js")  # in this order; they define mountExplorer


def static_text(name: str) -> str:
    """A file of minivivit/explore/static/ (package data) as text."""
    return resources.files("minivivit.explain.explore").joinpath("static", name).read_text(encoding="utf-8")


def script_text() -> str:
    """The explorer's script: the three static files, as the page and the widget both run it."""
    return "\n".join(static_text(name) for name in SCRIPTS)


class Blobs:
    """Arrays -> base64 references {"blob", "dtype", "shape"}; inline ({"b64": ...}) or as separate elements."""

    def __init__(self, inline: bool):
        self.inline, self.texts = inline, {}

    def add(self, array, dtype: str) -> dict:
        a = np.ascontiguousarray(np.asarray(array), dtype=DTYPES[dtype])
        ref = {"dtype": dtype, "shape": list(a.shape)}
        text = base64.b64encode(a.tobytes()).decode("ascii")  # little-endian on every machine minivivit runs on
        if self.inline:
            ref["b64"] = text
        else:
            ref["blob"] = f"mv-b{len(self.texts)}"
            self.texts[ref["blob"]] = text
        return ref


def encode_frames(frames, fmt: str = "auto", max_bytes: int | None = None):
    """uint8 [T, H, W, 3] -> (mime, [base64 text per frame]). auto: PNG (lossless) unless it passes
    max_bytes, then JPEG at quality 90 (the frames are only the backdrop of the map)."""
    from PIL import Image

    def encode(kind):
        out = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(f)).save(buf, format=kind, **({"quality": 90} if kind == "JPEG" else {}))
            out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
        return out

    if fmt not in ("auto", "png", "jpeg"):
        raise ValueError(f"frame format must be auto, png or jpeg; got {fmt!r}")
    if fmt in ("auto", "png"):
        png = encode("PNG")
        if fmt == "png" or max_bytes is None or sum(map(len, png)) <= max_bytes:
            return "image/png", png
    return "image/jpeg", encode("JPEG")


def token_tables(tokens: TokenMap, num_frames: int, height: int, width: int) -> dict:
    """The lookups the page draws with, all from TokenMap (the page never re-derives the mapping).

    token_grid [t*h*w]: the token at each grid cell; frame_slice [T], row_cell [H], col_cell [W]: the
    time slice / tubelet row / tubelet column of each frame, pixel row, pixel column (-1: not covered);
    boxes [P, 6]: frames, rows, cols [start, stop) of each patch token; coords [P, 3]: its (t, y, x)."""
    T, H, W = tokens.clip_shape
    k = np.arange(1, tokens.num_tokens)  # [P] patch tokens
    boxes = [[r.start, r.stop] for kk in k for r in tokens.box(kk)]  # P x 3 ranges
    return {
        "grid": list(tokens.grid), "tubelet": list(tokens.tubelet), "clip_shape": [T, H, W],
        "num_tokens": tokens.num_tokens,
        "token_grid": tokens.to_grid(np.arange(tokens.num_tokens)).ravel().tolist(),  # [t, h, w] -> [t*h*w]
        "frame_slice": [int(tokens.cell_at(f, 0, 0)[0]) if f < T else -1 for f in range(num_frames)],
        "row_cell": [int(tokens.cell_at(0, r, 0)[1]) if r < H else -1 for r in range(height)],
        "col_cell": [int(tokens.cell_at(0, 0, c)[2]) if c < W else -1 for c in range(width)],
        "boxes": np.asarray(boxes, dtype=int).reshape(-1, 6).ravel().tolist(),
        "coords": np.stack(tokens.coords(k), axis=1).ravel().tolist(),  # [P, 3] (t, y, x)
    }


def payload(data, blobs: Blobs, provider: str, frames=None, plan=None, title="minivivit attention explorer") -> dict:
    """The JSON the page reads. provider: "embedded" (rows from the file's full maps) or "kernel" (the widget)."""
    T, H, W = data.frames.shape[:3]
    mime, images = frames or encode_frames(data.frames, max_bytes=budget_mod.DEFAULT_BUDGET // 8)  # as a default page
    methods = []
    for name, s in data.sets.items():
        full = {f"{layer}:{h}": {"q": blobs.add(q, "u8"), "scale": blobs.add(sc, "f32")}
                for (m, layer, h), (q, sc) in sorted(data.full.items()) if m == name}
        methods.append({
            "id": name, "label": s.label, "description": s.description, "value_label": s.value_label,
            "layer_label": s.layer_label, "heads": s.heads, "class_specific": s.class_specific, "targets": s.targets,
            "cls": {t: blobs.add(a, "f32") for t, a in data.cls[name].items()}, "full": full})
    pred = data.prediction
    return {
        "format": FORMAT, "title": title, "provider": provider, "model": data.model_summary,
        "layers": int(data.cls["raw"]["*"].shape[0]), "heads": int(data.distance["space"].shape[1]),
        "tokens": token_tables(data.tokens, T, H, W),
        "frames": {"count": T, "height": H, "width": W, "mime": mime, "images": images, "note": data.frames_note},
        "prediction": None if pred is None else {
            "labels": pred["labels"], "probs": [float(p) for p in pred["probs"]], "top": pred["top"],
            "predicted": pred["predicted"]},
        "methods": methods,
        "distance": {k: np.round(v, 6).tolist() for k, v in data.distance.items()},
        "quantisation": {"bits": 8, "rule": "per row: code = round(255 * value / row max), value = code * (row max / 255)",
                         "bound": "|error| <= row max / 510 (half a step)"},
        "budget": None if plan is None else {
            "limit": plan.budget, "unit": plan.unit_bytes, "left_out": plan.left_out,
            "included": budget_mod.describe_units(data.sets, sorted(data.full)),
            "how": budget_mod.how_to_include(data.tokens.num_tokens, plan.total_bytes)},
    }


def render_html(pay: dict, blobs: Blobs) -> str:
    """The page: styles, payload, blobs, script; the one code path the widget shares (mountExplorer)."""
    def script_json(obj):
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")

    blob_tags = "".join(f'<script type="application/octet-stream" id="{i}">{t}</script>\n' for i, t in blobs.texts.items())
    title = pay["title"].replace("&", "&amp;").replace("<", "&lt;")
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n"
        f"<style>\n{static_text('explorer.css')}\n</style>\n</head>\n<body>\n"
        "<div id=\"mv-root\"></div>\n"
        f"<script type=\"application/json\" id=\"mv-data\">{script_json(pay)}</script>\n{blob_tags}"
        f"<script>\n{script_text()}\n</script>\n"
        "<script>\nwindow.minivivitExplorer = mountExplorer(document.getElementById('mv-root'),\n"
        "  JSON.parse(document.getElementById('mv-data').textContent), {standalone: true});\n</script>\n"
        "</body>\n</html>\n")


def build_html(model, clip, *, frames=None, layers_full="auto", budget: int = budget_mod.DEFAULT_BUDGET,
               backend: str = "numpy", processor_config=None, preset=None, top_k: int = 5, frame_format="auto",
               progress: bool = False, title=None):
    """Model + clip -> (html text, info dict). Plans the full maps within `budget` bytes (see budget.py),
    runs the extraction (which quantises the planned maps as it passes each layer), and never returns a
    page over the budget. info: bytes, units (the embedded maps), left_out, seconds, data (ExplorerData)."""
    t0 = time.perf_counter()
    prepared = prepare_clip(model, clip, frames, processor_config, preset)
    tokens = TokenMap.for_config(model.config, prepared[0].shape)
    enc = encode_frames(prepared[1], frame_format, max_bytes=budget // 8)
    plan = _plan(model.config, tokens, enc, prepared[1].shape, layers_full, budget)
    data = extract(model, clip, units=plan.units, backend=backend, top_k=top_k, progress=progress, prepared=prepared)
    return _render_within_budget(data, plan, enc, title or _title(model.config), t0)


def html_from_data(data, *, config, layers_full="auto", budget: int = budget_mod.DEFAULT_BUDGET, frame_format="auto",
                   title=None):
    """An ExplorerData that has its hidden states (extract's result, e.g. the widget's) -> (html, info):
    the planned full maps are recomputed from the hidden states (add_full_maps)."""
    t0 = time.perf_counter()
    enc = encode_frames(data.frames, frame_format, max_bytes=budget // 8)
    plan = _plan(config, data.tokens, enc, data.frames.shape, layers_full, budget)
    add_full_maps(data, plan.units)
    return _render_within_budget(data, plan, enc, title or _title(config), t0)


def add_full_maps(data, units):
    """Quantise the full maps `units` [(method, layer, head)] into data.full, one layer's maps at a time."""
    for m, layer, h in sorted(units, key=lambda u: (u[0], u[1], u[2])):
        if (m, layer, h) not in data.full:
            data.full[(m, layer, h)] = quantise_rows(data.sets[m].full(layer, h, data.sets[m].targets[0]))


def _plan(config, tokens, enc, frames_shape, layers_full, budget):
    L = config.num_hidden_layers
    menus = {"raw": _Menu(head_choices(config.num_attention_heads), "raw attention"),  # all the plan needs
             "rollout": _Menu(list(ROLLOUT_FUSIONS), "attention rollout")}
    fixed = _fixed_estimate(config, tokens, enc, frames_shape)
    return budget_mod.plan(menus, tokens.num_tokens, L, budget_mod.parse_layers(layers_full, L), budget, fixed)


def _render_within_budget(data, plan, enc, title, t0):
    budget = plan.budget
    while True:
        blobs = Blobs(inline=False)
        html = render_html(payload(data, blobs, "embedded", enc, plan, title), blobs)
        size = len(html.encode("utf-8"))
        if size <= budget or not plan.units:
            break
        m, layer, h = plan.units.pop()  # the estimate was short: drop the last chosen map
        data.full.pop((m, layer, h), None)
        plan.left_out.append(f"{data.sets[m].label}, layer {layer}, head choice {data.sets[m].heads[h]} (did not fit)")
    if size > budget:
        raise ValueError(f"the page takes {format_bytes(size)} without any full map, above the budget of "
                         f"{format_bytes(budget)}; raise --budget")
    info = {"bytes": size, "budget": budget, "units": list(plan.units), "left_out": list(plan.left_out),
            "frames": enc[0], "seconds": time.perf_counter() - t0, "data": data}
    return html, info


class _Menu:
    """A method's label and head menu: all the planner needs to know about it before the extraction."""

    def __init__(self, heads, label):
        self.heads, self.label = heads, label


def _fixed_estimate(config, tokens, enc, frames_shape) -> int:
    """Bytes of the page without full maps: assets, frames, CLS blobs, token tables, plus 100 kB of JSON slack."""
    L, nh, N = config.num_hidden_layers, config.num_attention_heads, tokens.num_tokens
    assets = len(script_text()) + len(static_text("explorer.css"))
    cls = budget_mod.b64_len(4 * L * (nh + 2) * N) + budget_mod.b64_len(4 * L * len(ROLLOUT_FUSIONS) * N)
    tables = len(json.dumps(token_tables(tokens, *frames_shape[:3])))
    return assets + sum(map(len, enc[1])) + cls + tables + 100_000


def _title(c) -> str:
    return (f"minivivit attention explorer: {c.num_hidden_layers} layers x {c.num_attention_heads} heads, "
            f"{c.num_frames}x{c.image_hw[0]}x{c.image_hw[1]} clip")


def write_html(path, html: str, overwrite: bool = False):
    """Write the page atomically (fileio.atomic_output); refuses an existing path unless overwrite."""
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path
