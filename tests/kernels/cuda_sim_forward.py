"""End to end: a tiny ViViT on the CUDA backend matches the numpy backend, attention maps included.

Run by tests/kernels/test_cuda_backend.py in its own process with NUMBA_ENABLE_CUDASIM=1 (see cuda_sim_kernels.py
for why). By hand: NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/kernels/cuda_sim_forward.py

Model: 2 layers, hidden 16, 2 heads, a 4 x 16 x 16 clip cut into (2, 8, 8) tubelets (N = 9 tokens), every
parameter random (weights.init_params). The numpy backend is itself checked
against HF transformers in tests/parity/test_parity_hf.py. Measure: max |ours - numpy| / max(1, max |numpy|) <= 1e-5,
the parity bar of the whole project for float32.
"""

import conftest
import numpy as np
import pytest
from cuda_sim_support import make_shared_arrays_thread_safe

from minivivit.kernels import get_backend
from minivivit.model import vivit_forward

cuda_backend = get_backend("cuda")  # a clear error if neither a GPU nor the simulator is there
make_shared_arrays_thread_safe()  # a race in numba's simulator, see cuda_sim_support.py

SMALL = {"image_size": 16, "tubelet_size": (2, 8, 8), "hidden_size": 16, "num_attention_heads": 2,
         "intermediate_size": 24}  # on top of conftest.TINY: N = 9 tokens


def tiny_model(seed=0, head=True, pooler=True, **overrides):
    return conftest.random_model(seed, head=head, pooler=pooler, **{**SMALL, **overrides})


def clip(config, batch=1, frames=None, size=None, seed=1):
    return conftest.random_clip(config, batch, seed, frames, size)


rel_err = conftest.rel_err


def assert_outputs_match(ours, ref, tol=1e-5):
    """Compare every field of two ViViTOutputs; the message lists every error so a failure shows where."""
    errors = {}
    for name in ("logits", "pooler_output", "last_hidden_state"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert (a is None) == (b is None), f"{name}: {a is None=} vs numpy {b is None=}"
        if a is not None:
            errors[name] = rel_err(a, b)
    for name in ("hidden_states", "attentions"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert (a is None) == (b is None) and (a is None or len(a) == len(b)), f"{name} differ in presence/length"
        for i, (x, y) in enumerate(zip(a or (), b or ())):
            assert (x is None) == (y is None), f"{name}[{i}]: one is None"
            if x is not None:
                assert x.dtype == y.dtype, f"{name}[{i}]: dtype {x.dtype} vs numpy {y.dtype}"
                errors[f"{name}[{i}]"] = rel_err(x, y)
    assert max(errors.values()) <= tol, f"max relative error per output: {errors}"
    return errors


def test_forward_on_device_matches_numpy_with_full_maps():
    model = tiny_model()
    x = clip(model.config, batch=2)
    ref = model(x, backend="numpy", output_attentions=True, output_hidden_states=True)
    ours = model(x, backend="cuda", output_attentions=True, output_hidden_states=True)
    errors = assert_outputs_match(ours, ref)
    print("relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert ours.attentions[0].shape == (2, 2, 9, 9)
    np.testing.assert_allclose(ours.attentions[1].sum(-1), 1.0, rtol=1e-5)  # each row is a distribution


def test_forward_on_device_cls_rows_layers_head_mask_and_new_clip_size():
    """CLS rows of one layer only, a head mask, float16 maps, and a 4 x 16 x 24 clip (positions resized)."""
    model = tiny_model(seed=2, head=False, hidden_act="gelu")  # base model + pooler, exact GELU
    x = clip(model.config, size=(16, 24), seed=3)  # grid (2, 2, 3): N = 13
    mask = np.array([[1.0, 0.0], [0.5, 1.0]], np.float32)  # [L, nh]
    kwargs = {"head_mask": mask, "interpolate_pos_encoding": True, "attention_dtype": np.float16}
    ref = model(x, backend="numpy", output_attentions="cls", attention_layers=[-1], **kwargs)
    ours = model(x, backend="cuda", output_attentions="cls", attention_layers=[-1], **kwargs)
    assert ours.attentions[0] is None and ours.attentions[1].shape == (1, 2, 13)
    assert_outputs_match(ours, ref, tol=1e-3)  # float16 maps: 2^-11 relative rounding
    ref32 = model(x, backend="numpy", head_mask=mask, interpolate_pos_encoding=True)
    assert rel_err(ours.last_hidden_state, ref32.last_hidden_state) <= 1e-5
    assert rel_err(ours.pooler_output, ref32.pooler_output) <= 1e-5


def test_model_call_with_backend_cuda_and_a_tap():
    """model(x, backend="cuda"), and with a tap that wants every name: the same names as on the numpy
    backend (scores and probs included), each shown as a NumPy array, equal to numpy's."""
    model = tiny_model(seed=4, qkv_bias=False, hidden_act="quick_gelu")
    x = clip(model.config, seed=5)
    ref = model(x, backend="numpy", output_attentions="cls")
    assert_outputs_match(model(x, backend="cuda", output_attentions="cls"), ref)
    traces = {"numpy": {}, "cuda": {}}
    for backend, trace in traces.items():
        vivit_forward(model.params, model.config, x, backend=backend,
                      tap=lambda name, a, trace=trace: trace.setdefault(name, a))
    assert list(traces["cuda"]) == list(traces["numpy"]) == model.trace_names()
    assert all(isinstance(a, np.ndarray) for a in traces["cuda"].values())
    errors = {name: rel_err(traces["cuda"][name], ref_a) for name, ref_a in traces["numpy"].items()}
    assert max(errors.values()) <= 1e-5, f"first names over 1e-5: {[n for n, e in errors.items() if e > 1e-5][:5]}"


def test_parameters_stay_on_the_device_between_calls():
    from minivivit.kernels.cuda import memory as cuda_memory

    model = tiny_model(seed=6, num_hidden_layers=1)
    x = clip(model.config, seed=7)

    def device_copies():
        return {key: dev for key, (_, dev) in cuda_memory._DEVICE_COPIES.items()}

    first = model(x, backend="cuda")
    cached = device_copies()
    second = model(x, backend="cuda")
    assert id(model.params["blocks"][0]["attn"]["q"]["w"]) in cached
    now = device_copies()
    assert now.keys() == cached.keys() and all(now[k] is cached[k] for k in now)  # no new uploads
    np.testing.assert_array_equal(first.logits, second.logits)
    assert first.attentions is None and first.hidden_states is None  # nothing comes down that was not asked for


def test_float64_model_is_refused_with_advice():
    model = tiny_model().to(np.float64)
    with pytest.raises(TypeError, match="computes in float32"):
        model(clip(model.config).astype(np.float64), backend="cuda")
