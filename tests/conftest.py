"""Shared test helpers and fixtures: the tiny config, random models and clips, the parity measure.

Tests are grouped by topic (core, parity, kernels, video, explain, debug, demo, notebooks, packaging);
helpers that need torch live in reference.py, imported only by the tests that compare with HF.
"""

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"  # stored reference data

import numpy as np
import pytest

import minivivit
from minivivit.weights import init_params

# The tiny model of most tests: grid (2, 2, 2) -> P = 8 tubelets, N = 9 tokens, D = 24, 3 heads, F = 40.
TINY = dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=24, num_hidden_layers=2,
            num_attention_heads=3, intermediate_size=40, num_labels=5)


def tiny_config(**overrides) -> minivivit.ViViTConfig:
    return minivivit.ViViTConfig(**{**TINY, **overrides})


def random_model(seed: int = 0, dtype=np.float32, head: bool = True, pooler: bool = False, config=None,
                 **overrides) -> minivivit.Model:
    """A minivivit model with every parameter random (weights.init_params) of the tiny config (with overrides)."""
    config = config or tiny_config(**overrides)
    return minivivit.Model(init_params(config, seed, head=head, pooler=pooler, dtype=dtype), config)


def random_clip(config, batch=1, seed=0, frames=None, size=None, dtype=np.float32) -> np.ndarray:
    """N(0, 1) pixel values [batch, T, C, H, W] for a config (or another T / (H, W))."""
    rng = np.random.default_rng(seed)
    h, w = size or config.image_hw
    return rng.standard_normal((batch, frames or config.num_frames, config.num_channels, h, w)).astype(dtype)


def rel_err(ours: np.ndarray, ref) -> float:
    """max |ours - ref| / max(1, max |ref|): the parity measure of the issues."""
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    assert ours.shape == ref.shape, f"shape {ours.shape} vs reference {ref.shape}"
    return float(np.abs(ours.astype(np.float64) - ref).max() / max(1.0, np.abs(ref).max()))


def deep_model():
    """(model, x, all_maps) of the memory tests: 8 layers x 4 heads, N = 513 tokens, random weights (scale 0.2), a
    random clip [1, 8, 3, 64, 64], and the bytes that all L x nh float32 attention maps [N, N] take (33.7 MB)."""
    from minivivit.weights import expected_shapes, unflatten_params

    config = minivivit.ViViTConfig(image_size=64, num_frames=8, tubelet_size=(1, 8, 8), hidden_size=32,
                                   num_hidden_layers=8, num_attention_heads=4, intermediate_size=64, num_labels=3)
    rng = np.random.default_rng(0)
    params = unflatten_params({k: (rng.standard_normal(s) * 0.2).astype(np.float32)
                               for k, s in expected_shapes(config, head=True, pooler=False).items()})
    x = rng.standard_normal((1, 8, 3, 64, 64)).astype(np.float32)
    N = config.num_patches + 1  # 513
    return minivivit.Model(params, config), x, config.num_hidden_layers * config.num_attention_heads * N * N * 4


def encode_video(path, frames, *, fps=8, codec="libx264", pix_fmt="yuv420p", options=None):
    """uint8 frames [T, H, W, 3] -> a video file written with PyAV (the video extra); returns path."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if options:
            stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def tiny():
    """The tiny config."""
    return tiny_config()


@pytest.fixture
def model():
    """A random classifier of the tiny config."""
    return random_model()


@pytest.fixture
def clip(tiny):
    """One random clip [1, 4, 3, 32, 32] for the tiny config."""
    return random_clip(tiny)
