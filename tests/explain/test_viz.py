"""viz.py: figures and animations render headless with the right content, frame count and pixel size."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from minivivit.explain import TokenMap, viz

TM = TokenMap(grid=(3, 2, 3), tubelet=(2, 4, 4))  # clip of 6 frames x 8 x 12 pixels, t != h != w


def _frames(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (6, 8, 12, 3), dtype=np.uint8)


def _tyx_tokens():
    """[N] values 100 t + 10 y + x in HF's token order (nested loops t, y, x), CLS first."""
    return np.array([-1.0] + [100 * t + 10 * y + x for t in range(3) for y in range(2) for x in range(3)])


def _expected_pixels():
    f, r, c = np.meshgrid(np.arange(6), np.arange(8), np.arange(12), indexing="ij")
    return 100 * (f // 2) + 10 * (r // 4) + c // 4  # [T, H, W]


def test_heat_volume_puts_each_tubelet_in_its_frames_and_box():
    vol, vmin, vmax, _ = viz.heat_volume(_frames(), _tyx_tokens(), TM)
    assert np.array_equal(vol, _expected_pixels()) and (vmin, vmax) == (0, 212)
    per_frame = viz.heat_volume(_frames(), _tyx_tokens(), TM, normalize="frame")[0]
    assert np.allclose(per_frame.min(axis=(1, 2)), 0) and np.allclose(per_frame.max(axis=(1, 2)), 1)
    with pytest.raises(ValueError, match="grid"):
        viz.heat_volume(_frames(), np.zeros((2, 19)), TM)


def test_overlay_figure_png_and_svg(tmp_path):
    fig = viz.plot_overlay(_frames(), _tyx_tokens(), TM, label="test heat", dpi=50)
    panels = [ax for ax in fig.axes if len(ax.images) == 2]
    assert len(panels) == 3  # one per time slice: frames 0, 2, 4
    for ax, f in zip(panels, (0, 2, 4)):
        assert np.array_equal(ax.images[1].get_array(), _expected_pixels()[f])
        assert ax.get_title() == f"frame {f} (slice t={f // 2})"
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "test heat"
    assert panels[0].get_ylabel() == "row (px)" and panels[0].get_xlabel() == "column (px)"
    png = viz.save_figure(fig, tmp_path / "o.png")
    w, h = (fig.get_size_inches() * 50).round().astype(int)
    assert Image.open(png).size == (w, h)
    svg = viz.save_figure(fig, tmp_path / "o.svg").read_text()
    wpt, hpt = (float(v) for v in re.search(r'<svg[^>]*width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    assert np.allclose((wpt, hpt), fig.get_size_inches() * 72)
    with pytest.raises(FileExistsError):
        viz.save_figure(fig, png)
    with pytest.raises(ValueError, match=".png, .svg or .pdf"):
        viz.save_figure(fig, tmp_path / "o.jpg")


def test_gif_has_one_frame_per_video_frame_and_the_asked_size(tmp_path):
    path = viz.save_attention_gif(_frames(), _tyx_tokens(), TM, tmp_path / "a.gif", figsize=(4, 3), dpi=50, fps=5)
    im = Image.open(path)
    assert im.format == "GIF" and im.n_frames == 6 and im.size == (200, 150)
    frames = []
    for i in range(im.n_frames):
        im.seek(i)
        assert im.size == (200, 150)
        assert im.info["duration"] == 200
        frames.append(np.asarray(im.convert("RGB")))
    assert all(not np.array_equal(frames[0], f) for f in frames[1:])  # every frame drawn anew
    with pytest.raises(FileExistsError):
        viz.save_attention_gif(_frames(), _tyx_tokens(), TM, path)
    viz.save_attention_gif(_frames(), _tyx_tokens()[1:], TM, path, overwrite=True, normalize="frame")  # [P] heat


def test_gif_default_size_follows_the_frames(tmp_path, monkeypatch):
    path = viz.save_attention_gif(_frames(), _tyx_tokens(), TM, tmp_path / "a.gif", dpi=40)
    assert Image.open(path).size == (round(4.8 * 40), round((0.9 + 3.6 * 8 / 12) * 40))


def test_notebook_animation_frame_count_and_size():
    anim = viz.animate(_frames(), _tyx_tokens(), TM, figsize=(3, 2), dpi=40)
    html = viz.to_jshtml(anim)
    pngs = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"', html)
    assert [int(i) for i, _ in pngs] == list(range(6))
    assert Image.open(io.BytesIO(base64.b64decode(pngs[0][1]))).size == (120, 80)


def _cls_rows(L=2, nh=3):
    """Captured CLS rows [B=1, nh, N] per layer: value 1000 layer + 100 head + (100 t + 10 y + x)."""
    return [np.stack([_tyx_tokens() + 1000 * i + 100 * j for j in range(nh)])[None] for i in range(L)]


def test_cls_grid_layers_by_heads():
    fig = viz.plot_cls_grid(_cls_rows(), TM, time="tile", normalize="global")
    cells = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(cells) == 6
    img = cells[5].images[0].get_array()  # layer 1, head 2; slices of 2 x 3 side by side, NaN between
    assert img.shape == (2, 3 * 4 - 1)
    for t in range(3):
        for y in range(2):
            for x in range(3):
                assert img[y, t * 4 + x] == 1200 + 100 * t + 10 * y + x
    assert np.ma.getmaskarray(img)[:, [3, 7]].all()  # NaN separators, masked by matplotlib
    assert cells[3].get_ylabel() == "layer 1" and cells[2].get_title() == "head 2"
    summed = viz.plot_cls_grid(_cls_rows(), TM, time="sum", normalize="global")
    cell = next(ax for ax in summed.axes if ax.images).images[0].get_array()
    assert np.allclose(cell, [[300 + 30 * y + 3 * x for x in range(3)] for y in range(2)])  # sum of 3 slices
    full = [np.zeros((1, 3, 19, 19)) + r[:, :, None, :] for r in _cls_rows()]  # full maps work as well
    assert len(viz.plot_cls_grid(full, TM).axes) == 7
    with pytest.raises(ValueError, match="time"):
        viz.plot_cls_grid(_cls_rows(), TM, time="middle")


def test_distance_and_temporal_curve_plots():
    d = {"space": np.array([[1.0, 3.0], [2.0, 6.0], [5.0, 5.0]]), "time": np.array([[0.0, 2.0]] * 3)}
    fig = viz.plot_attention_distance(d, uniform={"space": 7.5, "time": 3.0})
    ax_space, ax_time = fig.axes
    assert np.allclose(ax_space.lines[0].get_ydata(), [2.0, 4.0, 5.0])
    assert np.allclose(ax_space.lines[1].get_ydata(), 7.5) and np.allclose(ax_time.lines[1].get_ydata(), 3.0)
    assert "uniform" in [t.get_text() for t in ax_space.get_legend().get_texts()][-1]
    assert "pixels" in ax_space.get_ylabel() and "frames" in ax_time.get_ylabel()
    assert ax_space.get_xlabel() == "layer"
    dec = {"taus": np.arange(-1, 3), "curve": np.array([0.2, 0.4, 0.3, 0.1]), "uniform": np.full(4, 0.25),
           "same_slice": 0.4, "same_location": 0.3}
    fig = viz.plot_temporal_curve(dec, query=5)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert np.allclose(heights, dec["curve"]) and "tau" in fig.axes[0].get_xlabel()
    assert list(fig.axes[0].get_xticks()) == [-1, 0, 1, 2]  # only the offsets the query has
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), 0.25)  # the uniform reference


def test_bad_frames_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        viz.plot_overlay(np.zeros((6, 3, 8, 12), np.uint8), _tyx_tokens(), TM)
    with pytest.raises(TypeError, match="do_normalize=False"):
        viz.plot_overlay(np.full((6, 8, 12, 3), -2.0), _tyx_tokens(), TM)
