"""The explorer in a notebook: an anywidget whose page (static/, the same script as the file) asks the
kernel for a clicked tubelet's row, recomputed from the stored hidden state of that layer.

    w = minivivit.explain.explore.explore(model, clip)     # display w in a cell
    w.row("raw", layer=2, head=0, query=17)        # the row the page gets: [N]
    w.save("view.html")                            # the offline file of the same clip

Only the CLS rows, the distances and the frames travel to the browser up front; a row is one layer's
recomputed maps (recompute_attention, cached for the last layer asked) sliced at the query:
ViViT-B's 472 MB-per-layer maps never leave the kernel.
"""

from __future__ import annotations

import json

import numpy as np

from .budget import DEFAULT_BUDGET
from .maps import ANY_CLASS
from .page import Blobs, html_from_data, payload, script_text, static_text, write_html

try:
    import anywidget
    import traitlets
except ImportError as e:  # pragma: no cover - exercised by the error message test when anywidget is missing
    raise ImportError("the notebook explorer needs anywidget: python -m pip install anywidget "
                      "(or the notebooks extra: pip install 'minivivit[notebooks]'); without it, write the offline "
                      "file with minivivit.explain.explore.build_html or `minivivit explore`") from e


class ExplorerWidget(anywidget.AnyWidget):
    """The attention explorer of one clip; rows on demand from the kernel."""

    _esm = traitlets.Unicode(script_text() + "\n" + static_text("widget.js")).tag(sync=True)
    _css = traitlets.Unicode(static_text("explorer.css")).tag(sync=True)
    payload = traitlets.Unicode("").tag(sync=True)  # the page's JSON (CLS rows inline, no full maps)

    def __init__(self, data, **kwargs):
        super().__init__(**kwargs)
        self.data = data
        pay = payload(data, Blobs(inline=True), "kernel", title="minivivit attention explorer")
        self.payload = json.dumps(pay, separators=(",", ":"), allow_nan=False)
        self.on_msg(self._on_message)

    def row(self, method: str, layer: int, head: int, query: int, target: str = ANY_CLASS) -> np.ndarray:
        """Token `query`'s row [N] of `method`'s full map at `layer`, head choice `head` (an index into its menu)."""
        if method not in self.data.sets:
            raise ValueError(f"no method {method!r}; the methods are {list(self.data.sets)}")
        s = self.data.sets[method]
        N = self.data.tokens.num_tokens
        if not 0 <= int(query) < N:
            raise ValueError(f"query token {query} does not exist; tokens are 0..{N - 1} (0 is CLS)")
        if target not in s.targets:
            target = s.targets[0]
        return np.asarray(s.row(int(layer), int(head), int(query), target), dtype=np.float32)

    def _on_message(self, _widget, content, _buffers):
        if not isinstance(content, dict) or content.get("type") != "row":
            return
        try:
            values = self.row(content["method"], content["layer"], content["head"], content["query"],
                              content.get("target", ANY_CLASS))
            reply = {"type": "row", "id": content.get("id"), "values": values.astype(float).tolist()}
        except (ValueError, KeyError, TypeError) as e:
            reply = {"type": "row", "id": content.get("id"), "error": f"the kernel could not compute that row: {e}"}
        self.send(reply)

    def save(self, path, *, layers_full="auto", budget: int = DEFAULT_BUDGET, overwrite: bool = False):
        """Write the offline HTML file of this clip (full maps within `budget`, see minivivit.explain.explore.budget)."""
        html, info = html_from_data(self.data, config=self.data.maps.model.config, layers_full=layers_full,
                                    budget=budget)
        write_html(path, html, overwrite)
        return info
