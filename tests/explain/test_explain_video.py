"""Class-specific explanations end to end on real encoded video: h264 and vp9 in mp4 and webm, odd sizes and frame
rates, portrait and landscape (written with PyAV here), through `minivivit attention --method gae|...`, with the
bundled demo model and (slow) a ViViT-B-shaped model with random weights."""

import numpy as np
import pytest

av = pytest.importorskip("av", reason="writing test videos needs PyAV (the video extra)")

import minivivit
from conftest import encode_video
from minivivit.cli import main
from minivivit.data import make_visit_clip
from minivivit.weights import init_params

VIDEOS = [  # name, codec, pixel format, (height, width), frames per second, frames
    ("landscape-h264.mp4", "libx264", "yuv420p", (74, 130), 29.97, 23),
    ("odd-h264-444.mp4", "libx264", "yuv444p", (61, 97), 25, 19),
    ("portrait-vp9.webm", "libvpx-vp9", "yuv420p", (97, 61), 7, 17),
    ("portrait-vp9.mp4", "libvpx-vp9", "yuv420p", (121, 75), 12.5, 21),
]


def write_video(path, codec, pix_fmt, hw, fps, n):
    """A visits clip (minivivit.data, the demo model's task), resized to hw by nearest neighbour, encoded with PyAV."""
    frames = make_visit_clip(3, 1, num_frames=n, size=64).frames  # [n, 64, 64, 3]
    rows = np.arange(hw[0]) * 64 // hw[0]
    cols = np.arange(hw[1]) * 64 // hw[1]
    frames = np.ascontiguousarray(frames[:, rows][:, :, cols])  # [n, H, W, 3]
    return encode_video(path, frames, fps=fps, codec=codec, pix_fmt=pix_fmt)


def encoders():
    have = set(av.codecs_available)
    return [v for v in VIDEOS if v[1] in have]


@pytest.mark.parametrize("video", encoders(), ids=[v[0] for v in encoders()])
def test_bundled_model_explains_encoded_video(tmp_path, capsys, video):
    name, codec, pix_fmt, hw, fps, n = video
    path = write_video(tmp_path / name, codec, pix_fmt, hw, fps, n)
    assert main(["attention", str(path), "--method", "gae", "--target", "top-left", "--out", str(tmp_path / "g.gif"),
                 "--save-map", str(tmp_path / "g.npy")]) == 0
    heat = np.load(tmp_path / "g.npy")
    assert heat.shape == minivivit.load(minivivit.default_weights()).config.grid and np.isfinite(heat).all()
    assert main(["attention", str(path), "--method", "grad-rollout", "--target", "top-left,top-right,bottom-left,bottom-right",
                 "--out", str(tmp_path / "classes.svg")]) == 0
    assert main(["attention", str(path), "--method", "ig", "--steps", "2", "--out", str(tmp_path / "ig.png")]) == 0
    assert "wrote" in capsys.readouterr().out


def test_all_four_encoders_are_available():
    missing = [v[1] for v in VIDEOS if v[1] not in set(av.codecs_available)]
    assert not missing, f"PyAV lacks the encoders {missing}: the video tests above did not all run"


@pytest.mark.slow
def test_vivit_b_shaped_model_explains_encoded_video(tmp_path):
    config = minivivit.ViViTConfig(num_labels=5)  # ViViT-B: 12 layers, D = 768, 32 x 224 x 224, 3137 tokens
    minivivit.Model(init_params(config, 0), config).save(tmp_path / "b.safetensors")
    path = write_video(tmp_path / "v.webm", "libvpx-vp9", "yuv420p", (97, 61), 7, 17)
    assert main(["attention", str(path), "--weights", str(tmp_path / "b.safetensors"), "--method", "gae",
                 "--target", "3", "--out", str(tmp_path / "b.png"), "--save-map", str(tmp_path / "b.npy")]) == 0
    heat = np.load(tmp_path / "b.npy")
    assert heat.shape == (16, 14, 14) and np.isfinite(heat).all()
