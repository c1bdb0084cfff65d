"""Figures and animations of attention (matplotlib; the maths is in minivivit.explain).

The one call `minivivit demo` and `minivivit attention` use:

    save_attention_gif(frames, heat, config, path, *, label="attention", upsample="nearest",
                       normalize="global", cmap="inferno", alpha=0.55, fps=4, dpi=100,
                       figsize=None, overwrite=False) -> Path
        frames  uint8 [T, H, W, 3]: the clip as the model saw it (after resize/crop, before normalisation)
        heat    one attention map: token values [N] (CLS first, e.g. a CLS row or rollout_cls(...)[0]),
                patch values [P], or the tubelet grid [t, h, w]
        config  the model's ViViTConfig (or an explain.TokenMap); the grid is taken from the frames' size
        writes an animated GIF of T frames, each figsize*dpi pixels (default figsize (4.8, 0.9 + 3.6*H/W)
        inches), the heatmap over the frame, with a labelled colour bar. Refuses to overwrite unless asked.

Also: plot_overlay (a PNG/SVG of one panel per time slice), plot_classes (one row per class: per-class
explanations side by side), animate + to_jshtml (notebooks),
plot_cls_grid (layers x heads), plot_attention_distance, plot_temporal_curve, save_figure.

Figures are built on matplotlib's Agg canvas directly (no pyplot), so they render headless and never
change the notebook's backend; Jupyter still displays a returned Figure. Heatmaps are upsampled
nearest by default, so each tubelet stays the honest box of pixels it covers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import explain
from ..fileio import atomic_output, check_output


def _figure(figsize, dpi=100, layout="constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _tokens(config, frames_shape):
    """A TokenMap for frames [T, H, W, ...] from a ViViTConfig or a TokenMap."""
    if isinstance(config, explain.TokenMap):
        return config
    return explain.TokenMap.for_config(config, tuple(frames_shape[:3]))


def _check_frames(frames):
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"expected frames uint8 [T, H, W, 3]; got shape {f.shape}")
    if f.dtype != np.uint8:
        if np.issubdtype(f.dtype, np.floating) and np.nanmin(f) >= 0 and np.nanmax(f) <= 1:
            return (f * 255).round().astype(np.uint8)
        raise TypeError(f"expected uint8 frames (or floats in [0, 1]); got {f.dtype}. Pass the frames before "
                        f"normalisation, e.g. minivivit.preprocess(..., do_normalize=False)")
    return f


def heat_volume(frames, heat, config, upsample: str = "nearest", normalize: str = "global"):
    """frames [T, H, W, 3] + heat ([N], [P] or [t, h, w]) -> (volume [T, H, W], vmin, vmax, TokenMap).

    normalize "global" keeps the values (one colour range for the clip); "frame" scales each frame to
    [0, 1]. Pixels the tubelets do not cover are NaN (drawn transparent)."""
    tokens = _tokens(config, np.shape(frames))
    h = np.asarray(heat, dtype=np.float64)
    if h.ndim == 1:
        h = tokens.to_grid(h)  # [t, h, w]
    if h.shape != tokens.grid:
        raise ValueError(f"expected one map as [N], [P] or the grid {tokens.grid} of these {np.shape(frames)[:3]} "
                         f"frames; got {h.shape}. For a batch pass heat[0]; pass the frames the model saw "
                         f"(after resize and crop)")
    vol = tokens.to_pixels(h, mode=upsample, size=np.shape(frames)[:3])  # [T, H, W]
    if normalize == "frame":
        vol = explain.normalize(vol, "frame")
    elif normalize != "global":
        raise ValueError(f"normalize must be 'global' or 'frame'; got {normalize!r}")
    return vol, float(np.nanmin(vol)), float(np.nanmax(vol)), tokens


def _slice_text(tokens, f):
    """'slice t=1' for frame f, or a note that the Conv3d dropped it (frames beyond t*tt)."""
    if f >= tokens.clip_shape[0]:
        return "not in any tubelet"
    return f"slice t={int(tokens.cell_at(f, 0, 0)[0])}"


def _bar_label(label, normalize):
    return f"{label} (each frame scaled to [0, 1])" if normalize == "frame" else label


# ---------------------------------------------------------------------------------------------
# Overlays: a still figure, an animation, a GIF
# ---------------------------------------------------------------------------------------------


def plot_overlay(frames, heat, config, frame_indices=None, ncols=None, label="attention", upsample="nearest",
                 normalize="global", cmap="inferno", alpha=0.55, panel_inches=2.2, dpi=100):
    """One panel per frame with the heatmap over it and one colour bar. Returns a matplotlib Figure.

    frame_indices default: the first frame of each tubelet time slice (the map is constant within one).
    """
    frames = _check_frames(frames)
    vol, vmin, vmax, tokens = heat_volume(frames, heat, config, upsample, normalize)
    if frame_indices is None:
        frame_indices = [tokens.box(tokens.token(t, 0, 0))[0].start for t in range(tokens.grid[0])]
    n = len(frame_indices)
    ncols = ncols or min(n, 4)
    nrows = -(-n // ncols)
    H, W = vol.shape[1:]
    fig = _figure((panel_inches * ncols + 1.2, panel_inches * nrows * H / W + 0.4), dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for i, (f, ax) in enumerate(zip(frame_indices, axes.flat)):
        ax.imshow(frames[f], interpolation="nearest")
        im = ax.imshow(vol[f], cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"frame {f} ({_slice_text(tokens, f)})", fontsize=8)
        ax.tick_params(labelsize=6)
        if i % ncols == 0:
            ax.set_ylabel("row (px)", fontsize=7)
        if i >= n - ncols:
            ax.set_xlabel("column (px)", fontsize=7)
    fig.colorbar(im, ax=axes, label=_bar_label(label, normalize), shrink=0.9)
    return fig


def plot_classes(frames, heats: dict, config, label="relevance", upsample="nearest", normalize="global",
                 cmap=None, signed: bool = False, alpha=0.55, panel_inches=2.0, dpi=100):
    """Per-class side by side: one row per class ({class name: heat}, each heat [N], [P] or [t, h, w]), one
    column per tubelet time slice (its first frame), each row with its own labelled colour bar. Returns a Figure.

    signed=True draws a diverging map with a range symmetric about 0 (input x gradient, integrated gradients)."""
    frames = _check_frames(frames)
    if not heats:
        raise ValueError("plot_classes needs at least one {class name: map}")
    cmap = cmap or ("RdBu_r" if signed else "inferno")
    tokens = _tokens(config, frames.shape)
    cols = [tokens.box(tokens.token(t, 0, 0))[0].start for t in range(tokens.grid[0])]
    H, W = frames.shape[1:3]
    fig = _figure((panel_inches * len(cols) + 1.6, panel_inches * len(heats) * H / W + 0.5), dpi)
    axes = fig.subplots(len(heats), len(cols), squeeze=False)
    for i, (row, (name, heat)) in enumerate(zip(axes, heats.items())):
        vol, vmin, vmax, _ = heat_volume(frames, heat, tokens, upsample, normalize)
        if signed:
            vmax = max(abs(vmin), abs(vmax)) or 1.0
            vmin = -vmax
        for j, (f, ax) in enumerate(zip(cols, row)):
            ax.imshow(frames[f], interpolation="nearest")
            im = ax.imshow(vol[f], cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"frame {f} ({_slice_text(tokens, f)})", fontsize=8)
            if j == 0:
                ax.set_ylabel(str(name), fontsize=9)
        fig.colorbar(im, ax=list(row), label=str(name), shrink=0.9)
    fig.suptitle(_bar_label(f"{label}, one row per class (each row its own colour range)", normalize), fontsize=10)
    return fig


def _overlay_animation_figure(frames, heat, config, label, upsample, normalize, cmap, alpha, dpi, figsize):
    """A one-axes figure and update(f) that draws frame f: shared by animate and save_attention_gif."""
    frames = _check_frames(frames)
    vol, vmin, vmax, tokens = heat_volume(frames, heat, config, upsample, normalize)
    T, H, W = vol.shape
    fig = _figure(figsize or (4.8, 0.9 + 3.6 * H / W), dpi)
    ax = fig.add_subplot()
    base = ax.imshow(frames[0], interpolation="nearest")
    over = ax.imshow(vol[0], cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    fig.colorbar(over, ax=ax, label=_bar_label(label, normalize))
    title = ax.set_title("")

    def update(f):
        base.set_data(frames[f])
        over.set_data(vol[f])
        title.set_text(f"frame {f + 1}/{T} (tubelet {_slice_text(tokens, f)})")
        return base, over, title

    return fig, update, T


def animate(frames, heat, config, label="attention", upsample="nearest", normalize="global", cmap="inferno",
            alpha=0.55, fps=4, dpi=100, figsize=None):
    """A matplotlib FuncAnimation of the overlay, one animation frame per video frame (see to_jshtml)."""
    from matplotlib.animation import FuncAnimation

    fig, update, T = _overlay_animation_figure(frames, heat, config, label, upsample, normalize, cmap, alpha,
                                               dpi, figsize)
    return FuncAnimation(fig, update, frames=T, interval=1000 / fps, blit=False)


def to_jshtml(anim) -> str:
    """HTML+JS player for a notebook: IPython.display.HTML(to_jshtml(animate(...)))."""
    return anim.to_jshtml()


GIF_FPS = (0.01, 100.0)  # GIF frame delays are whole hundredths of a second: 1 / 100 s to 655 s


def check_fps(fps) -> float:
    """A GIF frame rate: a number in [0.01, 100] frames per second (GIF stores delays in hundredths of a second)."""
    lo, hi = GIF_FPS
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not lo <= fps <= hi:
        raise ValueError(f"fps={fps!r}: a GIF's frame rate must be a number in [{lo:g}, {hi:g}] frames per second "
                         f"(its frame delays are whole hundredths of a second)")
    return float(fps)


def save_attention_gif(frames, heat, config, path, *, label="attention", upsample="nearest", normalize="global",
                       cmap="inferno", alpha=0.55, fps=4, dpi=100, figsize=None, overwrite=False) -> Path:
    """Write the overlay as an animated GIF (Pillow): T frames of figsize*dpi pixels. See the module docstring."""
    from PIL import Image

    fps = check_fps(fps)
    check_output(path, overwrite)  # before drawing anything

    fig, update, T = _overlay_animation_figure(frames, heat, config, label, upsample, normalize, cmap, alpha,
                                               dpi, figsize)
    images = []
    for f in range(T):
        update(f)
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # [height px, width px, 3]
        images.append(Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT))
    path = Path(path)
    with atomic_output(path, overwrite) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                       loop=0, disposal=1)
    return path


# ---------------------------------------------------------------------------------------------
# Per-layer / per-head summaries
# ---------------------------------------------------------------------------------------------


def plot_cls_grid(attentions, config, time="sum", normalize="cell", cmap="viridis", cell_inches=1.3, dpi=100,
                  batch=0):
    """Layers x heads grid of CLS attention maps from captured maps (full or "cls" rows, per layer).

    time: "sum" (mass per place, summed over time slices), "tile" (slices side by side, left to right)
    or an int (one slice). normalize: "cell" (each map to [0, 1]) or "global" (one scale).
    """
    tokens = config if isinstance(config, explain.TokenMap) else explain.TokenMap.for_config(config)
    maps, layer_ids = explain.cls_maps(attentions, tokens, batch)  # [L', nh, t, h, w]
    L, nh, t, h, w = maps.shape
    if time == "sum":
        imgs, what = maps.sum(axis=2), "summed over time"  # [L', nh, h, w]
    elif time == "tile":
        sep = np.full((L, nh, t, h, 1), np.nan)
        imgs = np.concatenate([maps, sep], axis=-1)  # [L', nh, t, h, w+1]; a NaN column after each slice
        imgs = imgs.transpose(0, 1, 3, 2, 4).reshape(L, nh, h, t * (w + 1))[..., :-1]  # slices left to right
        what = f"time slices 0..{t - 1} left to right"
    elif isinstance(time, (int, np.integer)) and -t <= time < t:
        imgs, what = maps[:, :, time], f"time slice {time % t}"  # [L', nh, h, w]
    else:
        raise ValueError(f"time must be 'sum', 'tile' or a slice index in 0..{t - 1}; got {time!r}")
    if normalize == "cell":
        lo = np.nanmin(imgs, axis=(-2, -1), keepdims=True)
        hi = np.nanmax(imgs, axis=(-2, -1), keepdims=True)
        imgs, vmin, vmax = (imgs - lo) / np.where(hi > lo, hi - lo, 1), 0.0, 1.0
        bar = "CLS attention (each map scaled to [0, 1])"
    elif normalize == "global":
        vmin, vmax, bar = float(np.nanmin(imgs)), float(np.nanmax(imgs)), "CLS attention"
    else:
        raise ValueError(f"normalize must be 'cell' or 'global'; got {normalize!r}")
    aspect = imgs.shape[-1] / imgs.shape[-2]
    fig = _figure((cell_inches * aspect * nh + 1.4, cell_inches * L + 0.6), dpi, layout="compressed")
    axes = fig.subplots(L, nh, squeeze=False)
    for i in range(L):
        for j in range(nh):
            ax = axes[i, j]
            im = ax.imshow(imgs[i, j], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"head {j}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"layer {layer_ids[i]}", fontsize=8)
    fig.suptitle(f"CLS attention per layer and head ({what})", fontsize=9)
    fig.colorbar(im, ax=axes, label=bar, shrink=0.8)
    return fig


def plot_attention_distance(distances: dict, layer_ids=None, uniform=None, dpi=100):
    """Mean attention distance against layer, in space (pixels) and time (frames): one dot per head.

    distances: explain.distance_by_layer(...) -> {"space": [L, nh], "time": [L, nh], ...}.
    uniform: {"space": px, "time": frames} of uniform attention over all tubelets (explain.uniform_distance),
    drawn as a dashed line: heads on it look everywhere alike, heads below it look near."""
    fig = _figure((8.0, 3.2), dpi)
    axes = fig.subplots(1, 2)
    L = distances["space"].shape[0]
    layers = np.arange(L) if layer_ids is None else np.asarray(layer_ids)
    for ax, key, unit in zip(axes, ("space", "time"), ("pixels", "frames")):
        d = np.asarray(distances[key])  # [L, nh]
        for j in range(d.shape[1]):
            ax.scatter(layers, d[:, j], s=12, alpha=0.6, color="tab:blue", label="one head" if j == 0 else None)
        ax.plot(layers, d.mean(axis=1), color="black", label="mean over heads")
        if uniform is not None:
            ax.axhline(uniform[key], color="tab:red", ls="--", lw=1, label="uniform attention")
        ax.set_xlabel("layer")
        ax.set_xticks(layers)
        ax.set_ylabel(f"mean attention distance ({unit})")
        ax.set_title(f"in {key}")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    return fig


def plot_temporal_curve(decomposition: dict, query=None, dpi=100):
    """m(tau), attention mass against time offset, from explain.space_time_decomposition(...); only the
    offsets the query has (a query in slice 0 cannot look back), with uniform attention's 1/t as a line."""
    fig = _figure((5.0, 3.2), dpi)
    ax = fig.add_subplot()
    taus = np.asarray(decomposition["taus"])
    ax.bar(taus, decomposition["curve"], color="tab:blue", label="this query")
    if "uniform" in decomposition:
        ax.step(np.r_[taus - 0.5, taus[-1] + 0.5], np.r_[decomposition["uniform"], decomposition["uniform"][-1]],
                where="post", color="tab:red", ls="--", lw=1, label="uniform attention")
        ax.legend(fontsize=7)
    ax.set_xticks(taus)
    ax.set_xlabel("tau = t_key - t_query (tubelet time slices)")
    ax.set_ylabel("attention mass m(tau)")
    who = "" if query is None else f"query token {query}: "
    ax.set_title(f"{who}same slice {decomposition['same_slice']:.2f}, "
                 f"same place {decomposition['same_location']:.2f}", fontsize=9)
    return fig


def save_figure(fig, path, overwrite: bool = False, dpi=None) -> Path:
    """Write a Figure as .png, .svg or .pdf (by suffix), atomically; pixel size = figsize * dpi for PNG."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"cannot tell the image format from {path.name!r}; use .png, .svg or .pdf")
    check_output(path, overwrite)
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi or fig.dpi)
    return path
