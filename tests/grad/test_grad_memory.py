"""The backward never holds every layer's attention maps: its peak (tracemalloc, which sees NumPy's
allocations) stays below half of what all L x nh maps [B, N, N] would take. Storing them, as an
autograd tape does, would fail this."""

import tracemalloc

import numpy as np

from conftest import deep_model

from minivivit.grad import backward


def test_backward_peak_memory_is_below_the_attention_maps():
    model, x, all_maps = deep_model()  # all_maps: bytes of every layer's float32 maps, 33.7 MB
    tracemalloc.start()
    g = backward(model, x, np.array([1]), input_grad=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.isfinite(g.loss)
    assert peak < 0.5 * all_maps, f"backward peak {peak / 1e6:.1f} MB; all attention maps are {all_maps / 1e6:.1f} MB"
