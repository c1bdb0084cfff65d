"""The README's Python blocks run as written (in a folder holding the clip.mp4 they name)."""

import re

import conftest
import numpy as np
import pytest


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    av = pytest.importorskip("av", reason="the README's classify line reads an mp4 (the video extra)")
    from minivivit.data import make_clip

    frames = make_clip(seed=3).frames  # uint8 [16, 64, 64, 3]
    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (conftest.ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    scope = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), scope)  # noqa: S102 (our own README)
    assert scope["out"].logits.shape == (1, 4) and np.isfinite(scope["loss"])
    assert set(scope["grads"]) == set(scope["model"].params)
