"""viz.plot_classes: one row per class, one panel per time slice, a colour bar per row named after its class;
signed maps get a range symmetric about 0."""

import numpy as np
import pytest
from conftest import tiny_config

from minivivit.explain import viz


def test_rows_columns_and_colour_bars():
    config = tiny_config()  # grid (2, 2, 2)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    heats = {"cat": np.arange(8.0), "dog": -np.arange(8.0) + 2}
    fig = viz.plot_classes(frames, heats, config, signed=True)
    panels = [ax for ax in fig.axes if ax.get_ylabel() in ("cat", "dog") or ax.get_title().startswith("frame")]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(fig.axes) == 2 * 2 + 2 and len(bars) == 2
    assert sorted(b.get_ylabel() for b in bars) == ["cat", "dog"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["frame 0 (slice t=0)", "frame 2 (slice t=1)"]
    for bar, m in zip(bars, (7.0, 5.0)):  # symmetric: -max|v| .. max|v|
        assert bar.get_ylim() == pytest.approx((-m, m))
    assert len(panels) >= 2
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_classes(frames, {}, config)
