"""The backward never holds every layer's attention maps: its peak (tracemalloc, which sees NumPy's
allocations) stays below half of what all L x nh maps [B, N, N] would take. Storing them, as an
autograd tape does, would fail this."""

import tracemalloc

import numpy as np

import minivivit
from minivivit.grad import backward
from minivivit.weights import expected_shapes, unflatten_params


def test_backward_peak_memory_is_below_the_attention_maps():
    config = minivivit.ViViTConfig(image_size=64, num_frames=8, tubelet_size=(1, 8, 8), hidden_size=32,
                                   num_hidden_layers=8, num_attention_heads=4, intermediate_size=64, num_labels=3)
    rng = np.random.default_rng(0)
    params = unflatten_params({k: (rng.standard_normal(s) * 0.2).astype(np.float32)
                               for k, s in expected_shapes(config, head=True, pooler=False).items()})
    model = minivivit.Model(params, config)
    x = rng.standard_normal((1, 8, 3, 64, 64)).astype(np.float32)
    N = config.num_patches + 1  # 513
    all_maps = config.num_hidden_layers * config.num_attention_heads * N * N * 4  # bytes, float32: 33.7 MB
    tracemalloc.start()
    g = backward(model, x, np.array([1]), input_grad=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.isfinite(g.loss)
    assert peak < 0.5 * all_maps, f"backward peak {peak / 1e6:.1f} MB; all attention maps are {all_maps / 1e6:.1f} MB"
