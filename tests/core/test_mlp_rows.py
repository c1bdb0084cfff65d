"""The MLP in row blocks (blocks.feed_forward_rows, taken when a forward has more than 2 * MLP_ROWS token rows)
gives the whole-array MLP's result, on both CPU backends, and is skipped when a tap wants fc1 / act."""

import conftest
import numpy as np
import pytest

from minivivit import blocks, debug
from minivivit.kernels import get_backend


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_row_blocks_equal_the_whole_mlp(backend, monkeypatch):
    config = conftest.tiny_config(hidden_size=16, intermediate_size=40, num_attention_heads=2)
    p = conftest.random_model(seed=2, config=config).params["blocks"][0]["mlp"]
    ops = get_backend(backend)
    x = np.random.default_rng(0).standard_normal((3, 1001, 16)).astype(np.float32)  # M = 3003 > 2 * 1024 rows
    rowwise = blocks.feed_forward(x, **p, config=config, ops=ops)
    monkeypatch.setattr(blocks, "MLP_ROWS", 10**9)  # the whole-array path
    whole = blocks.feed_forward(x, **p, config=config, ops=ops)
    ref = get_backend("numpy").linear(get_backend("numpy").linear_act(x, p["fc1"]["w"], p["fc1"]["b"], config.hidden_act),
                                      p["fc2"]["w"], p["fc2"]["b"])
    assert rowwise.shape == whole.shape == (3, 1001, 16)
    assert conftest.rel_err(rowwise, whole) < 1e-6
    assert conftest.rel_err(rowwise, ref) < 1e-6


def test_model_with_many_tokens_and_its_trace_agree():
    """A forward with 2 x 1025 tokens takes the row blocks; a trace of fc1 / act takes the whole-array path:
    the block outputs agree."""
    model = conftest.random_model(seed=4, image_size=(64, 512), tubelet_size=[1, 8, 8], num_frames=2)
    clip = conftest.random_clip(model.config, batch=2)
    assert clip.shape[0] * model.config.num_patches + 2 > 2 * blocks.MLP_ROWS
    out = model(clip, backend="numpy", output_hidden_states=True)
    trace = debug.trace(model, clip, include=["blocks.0.act", "blocks.0.out"])
    assert conftest.rel_err(out.hidden_states[1], trace["blocks.0.out"]) < 1e-6
