"""An interactive space-time attention explorer ("bertviz for video"): in a notebook and as one offline HTML file.

    from minivivit.explain.explore import explore, build_html, write_html
    w = explore(model, clip)                      # notebook widget; clicked rows computed on demand
    html, info = build_html(model, clip)          # one self-contained page (<= 25 MB by default)
    write_html("view.html", html)                 # or: minivivit explore VIDEO --out view.html

extract.py computes what is shown (from capture / explain: nothing is re-derived), budget.py chooses
what a file holds, page.py writes it, widget.py is the notebook side, static/ is the one script both use.
"""

from .budget import DEFAULT_BUDGET
from .extract import ExplorerData, extract, prepare_clip
from .maps import MapSet
from .page import build_html, write_html


def explore(model, clip_or_pixel_values, *, frames=None, backend: str = "numpy", top_k: int = 5, processor_config=None,
            preset=None, progress: bool = False):
    """The explorer as a notebook widget (anywidget): frames, CLS maps of every layer and head, rollout,
    per-head distances; a clicked tubelet's row is recomputed by the kernel from the stored hidden state.

    clip_or_pixel_values: uint8 frames [T, H, W, 3], a minivivit.data.Clip, a video path, or pixel_values
    [1, T, C, H, W] (then pass frames= to show the real pixels). Needs `pip install anywidget`
    (the `notebooks` extra). `w.save("view.html")` writes the offline file of the same clip.
    """
    from .widget import ExplorerWidget

    data = extract(model, clip_or_pixel_values, frames=frames, backend=backend, top_k=top_k,
                   processor_config=processor_config, preset=preset, progress=progress)
    return ExplorerWidget(data)


__all__ = ["DEFAULT_BUDGET", "ExplorerData", "MapSet", "build_html", "explore", "extract", "prepare_clip", "write_html"]
