"""Each CUDA kernel against its NumPy twin in layers.py, on tiny and ragged shapes.

Not collected by the main pytest run (the name does not start with test_): numba's CUDA simulator must
be switched on before numba.cuda is first imported, so tests/kernels/test_cuda_backend.py runs this file in its
own process with NUMBA_ENABLE_CUDASIM=1 (or on a real GPU when there is one). By hand:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/kernels/cuda_sim_kernels.py

The simulator runs every GPU thread as a Python thread (~0.2 ms per thread per syncthreads), so shapes
stay around 32 x 32, and are chosen to be ragged: not multiples of the tile sizes (GEMM 16, attention 32).
The reference is the twin evaluated in float64 on the same float32 inputs (the exact answer, as far as
float32 can tell), so a kernel may not be less accurate than float32 allows, whatever the order of its
sums. Tolerance: |ours - ref| <= atol + rtol |ref| with rtol = 1e-5 and atol = 1e-5 max(1, max |ref|) for
sums (GEMM, attention, LayerNorm), atol = 1e-6 for element-wise activations.
"""

import gc
import os
import time

import numpy as np
import pytest
from cuda_sim_support import make_shared_arrays_thread_safe
from hypothesis import given, settings
from hypothesis import strategies as st

from minivivit import layers
from minivivit.kernels import get_backend

ops = get_backend("cuda")  # raises a clear error if neither a GPU nor the simulator is there
make_shared_arrays_thread_safe()  # a race in numba's simulator, see cuda_sim_support.py
from numba import cuda  # after get_backend, which checked that it is usable

from minivivit.kernels.cuda import activations as cuda_activations
from minivivit.kernels.cuda import memory as cuda_memory


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def twin(fn, *args):
    """layers.fn evaluated in float64 on the (float32) array arguments."""
    return fn(*(a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args))


def assert_close(ours, ref, what, rtol=1e-5, atol=None):
    """float32 comparison with a message that gives the worst element."""
    ref = np.asarray(ref)
    atol = 1e-5 * max(1.0, float(np.abs(ref).max(initial=0))) if atol is None else atol
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape}, NumPy twin {ref.shape}"
    assert ours.dtype == np.float32, f"{what}: dtype {ours.dtype}"
    err = np.abs(ours.astype(np.float64) - ref) - rtol * np.abs(ref)
    worst = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    assert err.size == 0 or err[worst] <= atol, (
        f"{what}: at {worst} ours {ours[worst]!r} vs twin {ref[worst]!r} (atol {atol:.2g}, rtol {rtol:.2g})")


# ---- GEMM: linear / linear_act ------------------------------------------------------------------


def host(x):
    """An op's result (a device array: activations stay on the GPU) brought back for comparison."""
    assert ops.is_device_array(x), f"expected a device array from the op, got {type(x).__name__}"
    return ops.to_numpy(x)


@pytest.mark.parametrize("M, K, N, bias", [
    (1, 1, 1, False),  # a single element, no bias (qkv_bias=False)
    (17, 33, 5, True),  # ragged everywhere
    (33, 20, 18, True),  # 3 x 2 blocks of 16 x 16, 2 K steps
])
def test_linear_matches_numpy(M, K, N, bias):
    rng = np.random.default_rng(M * 100 + K)
    x, w = rand(rng, M, K), rand(rng, K, N)
    b = rand(rng, N) if bias else None
    assert_close(host(ops.linear(x, w, b)), twin(layers.linear, x, w, b), f"linear {M}x{K}x{N}")


def test_ops_take_device_arrays_and_return_them():
    """model.py chains ops: the output of one (a device array) is the input of the next, with no copy home."""
    rng = np.random.default_rng(8)
    x, w, b = rand(rng, 2, 5, 8), rand(rng, 8, 8), rand(rng, 8)
    h = ops.linear(x, w, b)  # [2, 5, 8] on the device
    y = ops.add(h, ops.linear(h, w, b))  # device in, device out
    ref = twin(layers.linear, x, w, b)
    assert_close(host(y), ref + twin(layers.linear, ref.astype(np.float32), w, b), "linear -> add chain")


def test_linear_keeps_leading_axes():
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, 2, 9, 16), rand(rng, 16, 4), rand(rng, 4)  # [B, N, D] @ [D, out]
    assert_close(host(ops.linear(x, w, b)), twin(layers.linear, x, w, b), "linear [B, N, D]")
    on_device = cuda.to_device(x)
    assert_close(host(ops.linear(on_device[:, 0], w, b)), twin(layers.linear, x[:, 0], w, b),
                 "linear on CLS rows (a strided device view)")


@settings(max_examples=5, deadline=None, derandomize=True, database=None)
@given(M=st.integers(1, 40), K=st.integers(1, 40), N=st.integers(1, 40))
def test_linear_random_shapes(M, K, N):
    rng = np.random.default_rng(M + 41 * K + 41 * 41 * N)
    x, w, b = rand(rng, M, K), rand(rng, K, N), rand(rng, N)
    assert_close(host(ops.linear(x, w, b)), twin(layers.linear, x, w, b), f"linear {M}x{K}x{N}")


@pytest.mark.parametrize("name", ["gelu_fast", "gelu", "quick_gelu"])
def test_linear_act_fuses_bias_and_activation(name):
    rng = np.random.default_rng(2)
    x, w, b = rand(rng, 19, 24), rand(rng, 24, 20, scale=0.5), rand(rng, 20)  # pre-activations ~ +-5
    assert_close(host(ops.linear_act(x, w, b, name)), twin(layers.linear_act, x, w, b, name), f"linear_act {name}")


# ---- activations: every hidden_act, extreme inputs ----------------------------------------------


@cuda.jit
def apply_activation_kernel(out, x, code):
    """Test-only: out[i] = activate(x[i], code), to check the device function on its own."""
    i = cuda.grid(1)
    if i >= x.shape[0]:
        return
    out[i] = cuda_activations.activate(x[i], code)


EXTREMES = np.concatenate([np.linspace(-300, 300, 41), [-88.5, -30, -5.5, -1e-3, 0.0, 1e-3, 5.5, 30, 88.5],
                           np.linspace(-4, 4, 15)]).astype(np.float32)  # 65 values, one block of 96 threads


def test_every_activation_formula_has_a_device_code():
    assert set(layers.ACTIVATIONS.values()) == set(cuda_activations.CODES)


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activation_matches_numpy_on_extremes(name):
    out = np.zeros_like(EXTREMES)
    apply_activation_kernel[1, 96](out, EXTREMES, cuda_activations.act_code(name))
    ref = twin(layers.activation, EXTREMES, name)
    assert_close(out, ref, f"activation {name}", rtol=1e-5, atol=1e-6)
    alone = host(ops.activation(EXTREMES.reshape(5, 13), name)).reshape(-1)  # the activation op, no GEMM
    assert_close(alone, ref, f"activation op {name}", rtol=1e-5, atol=1e-6)


def test_unknown_activation_is_refused_before_launch():
    with pytest.raises(ValueError, match="unknown activation 'gelu_fastest'"):
        ops.linear_act(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), np.zeros(2, np.float32),
                       "gelu_fastest")


# ---- LayerNorm ----------------------------------------------------------------------------------


@pytest.mark.parametrize("M, D, offset", [(1, 1, 0.0), (5, 33, 0.0), (37, 16, 1000.0)])
def test_layer_norm_matches_numpy(M, D, offset):
    rng = np.random.default_rng(D)
    x = rand(rng, M, D) + np.float32(offset)  # offset: the two-pass variance must not cancel
    g, b = 1 + rand(rng, D, scale=0.1), rand(rng, D)
    assert_close(host(ops.layer_norm(x, g, b, 1e-6)), twin(layers.layer_norm, x, g, b, 1e-6),
                 f"layer_norm {M}x{D}+{offset}")


# ---- tubelet embedding --------------------------------------------------------------------------


@pytest.mark.parametrize("clip, tubelet, D", [
    ((2, 3, 3, 9, 10), (1, 4, 4), 7),  # K = 48 (3 K steps), 12 tubelets per clip, leftover rows/cols
    ((1, 5, 3, 7, 11), (2, 3, 5), 5),  # odd tubelet, K = 90, leftover frame; P = 8
])
def test_tubelet_embed_matches_numpy(clip, tubelet, D):
    rng = np.random.default_rng(sum(clip))
    pix = rand(rng, *clip)
    K = tubelet[0] * tubelet[1] * tubelet[2] * clip[2]
    w, b = rand(rng, K, D, scale=K**-0.5), rand(rng, D)
    assert_close(host(ops.tubelet_embed(pix, w, b, tubelet)), twin(layers.tubelet_embed, pix, w, b, tubelet),
                 f"tubelet_embed {clip} {tubelet}")


def test_prepend_cls_then_positions():
    rng = np.random.default_rng(3)
    B, P, D = 2, 7, 5
    patches, cls, pos = rand(rng, B, P, D), rand(rng, D), rand(rng, P + 1, D)
    tokens = ops.prepend_cls(patches, cls)
    np.testing.assert_array_equal(host(tokens), layers.prepend_cls(patches, cls))  # a copy: exact
    np.testing.assert_array_equal(host(ops.add(tokens, pos)), layers.add(layers.prepend_cls(patches, cls), pos))


def test_add_of_two_activations():
    rng = np.random.default_rng(9)
    a, b = rand(rng, 3, 11, 6), rand(rng, 3, 11, 6)
    np.testing.assert_array_equal(host(ops.add(a, b)), a + b)


# ---- attention ----------------------------------------------------------------------------------


@pytest.mark.parametrize("B, N, nh, d, mask", [
    (1, 1, 1, 4, None),  # one token: softmax of a single score is 1
    (2, 33, 2, 8, None),  # N = 33: two query blocks and two key tiles of 32, the last one ragged
    (1, 40, 3, 5, (1.0, 0.0, 0.5)),  # head mask: head 1 switched off, head 2 halved
    (1, 3, 1, 128, None),  # the largest head size the kernel allows (MAX_HEAD_DIM)
])
@pytest.mark.parametrize("output_attentions", [None, "full", "cls"])
def test_attention_matches_numpy(B, N, nh, d, mask, output_attentions):
    rng = np.random.default_rng(N * 7 + d)
    q, k, v = (rand(rng, B, N, nh * d) for _ in range(3))
    mask = None if mask is None else np.array(mask, np.float32)
    context, p = ops.attention(q, k, v, nh, mask, output_attentions)
    ref_context, ref_p = twin(layers.attention, q, k, v, nh, mask, output_attentions)
    assert_close(host(context), ref_context, f"attention context B={B} N={N} nh={nh} d={d}")
    if output_attentions is None:
        assert p is None
    else:
        assert_close(host(p), ref_p, f"attention maps ({output_attentions}) B={B} N={N} nh={nh} d={d}")


def test_attention_is_stable_for_huge_logits():
    """Scores of +-1e4 overflow exp() in float32 unless the running maximum is subtracted."""
    rng = np.random.default_rng(4)
    q, k, v = rand(rng, 1, 35, 8, scale=40.0), rand(rng, 1, 35, 8, scale=40.0), rand(rng, 1, 35, 8)
    context, p = (host(a) for a in ops.attention(q, k, v, 2, None, "full"))
    ref_context, ref_p = twin(layers.attention, q, k, v, 2, None, "full")
    assert np.abs(layers.attention_scores(layers.split_heads(q, 2), layers.split_heads(k, 2))).max() > 1000
    assert np.isfinite(context).all() and np.isfinite(p).all()
    assert_close(context, ref_context, "attention context, huge logits")
    assert_close(p, ref_p, "attention probs, huge logits")


def test_attention_refuses_a_head_size_above_the_limit():
    x = np.zeros((1, 2, 2 * 129), np.float32)
    with pytest.raises(ValueError, match="head size 129 > MAX_HEAD_DIM"):
        ops.attention(x, x, x, 2)


# ---- what goes up, what stays ---------------------------------------------------------------------


def test_parameters_are_uploaded_once_and_forgotten_when_freed():
    w = np.ones((4, 3), np.float32)
    first = cuda_memory.device_copy(w)
    assert cuda_memory.device_copy(w) is first  # cached: no second upload
    assert cuda_memory.device_copy(w.copy()) is not first  # another array is another upload
    key = id(w)
    del w, first
    gc.collect()
    assert key not in cuda_memory._DEVICE_COPIES  # freed with the NumPy array


def test_float64_is_refused_with_advice():
    x = np.zeros((2, 2))
    with pytest.raises(TypeError, match="computes in float32.*model.to"):
        ops.linear(x, x)


def test_shared_arrays_stay_shared_when_the_gil_switches(monkeypatch):
    """The simulator race that cuda_sim_support.py fixes, forced: np.empty sleeps (releasing the GIL) while
    the simulator creates a shared array. Without the fix every launch of the GEMM is wrong."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("a simulator-only problem")
    real_empty = np.empty

    def slow_empty(*args, **kwargs):
        time.sleep(0.002)
        return real_empty(*args, **kwargs)

    rng = np.random.default_rng(5)
    x, w, b = rand(rng, 17, 20), rand(rng, 20, 18), rand(rng, 18)
    monkeypatch.setattr(np, "empty", slow_empty)
    ours = host(ops.linear(x, w, b))
    monkeypatch.undo()
    assert_close(ours, twin(layers.linear, x, w, b), "linear while the GIL switches")
