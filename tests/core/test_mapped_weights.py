"""Loading maps the safetensors file: tensors are read-only zero-copy views, their values are safetensors' own,
hostile headers still give clear errors, in-place training copies first, and loading peaks near the file size."""

import hashlib
import json
import mmap
import struct

import conftest
import numpy as np
import pytest
from safetensors.numpy import load_file as reference_load

import minivivit
from minivivit.fileio import map_tensors, read_safetensors
from minivivit.train import AdamW
from minivivit.weights import save


def _mapped(a) -> bool:
    """True when array a's memory is a mmap (following the .base chain)."""
    while a is not None:
        if isinstance(a, mmap.mmap) or isinstance(getattr(a, "obj", None), mmap.mmap):
            return True
        a = getattr(a, "base", None)
    return False


def _raw(path, tensors, header_pad=0):
    """A safetensors file by hand: tensors {name: float32 array}; header_pad extra spaces (unaligned data)."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, "<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8 + header_pad)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return path


def test_loaded_weights_are_read_only_views_of_the_file_with_safetensors_values(tmp_path):
    model = conftest.random_model(seed=3)
    path = save(tmp_path / "m.safetensors", model.params, model.config)
    tensors, _ = read_safetensors(path)
    ref = reference_load(str(path))  # safetensors' own reader (copies)
    assert set(tensors) == set(ref)
    for k, a in tensors.items():
        assert _mapped(a), f"{k} is not a view of the mapped file"
        assert not a.flags.writeable and a.flags.aligned
        np.testing.assert_array_equal(a, ref[k])
    loaded = minivivit.load(path)
    w = loaded.params["blocks"][0]["attn"]["q"]["w"]
    assert _mapped(w)
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 1.0
    clip = conftest.random_clip(model.config)
    # The forward never writes into its weights (numba refuses to compile a write into a read-only array).
    # NumPy: the same BLAS calls on the same values, so bit for bit.
    np.testing.assert_array_equal(loaded(clip).logits, model(clip).logits)
    # numba compiles a separate specialisation for read-only arrays, and one specialisation may come from the
    # on-disk cache while the other is compiled fresh; with fastmath (reassoc, contract) two compilations may
    # order a reduction or fuse a multiply-add differently (seen in CI: 6e-7 on logits of size ~1). So numba is
    # held to the numba-vs-numpy parity bar, not to bit equality.
    ref = model(clip).logits
    for ours in (loaded(clip, backend="numba").logits, model(clip, backend="numba").logits):
        assert conftest.rel_err(ours, ref) <= 1e-5


def test_unaligned_data_is_copied_aligned_with_the_right_values(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    path = _raw(tmp_path / "u.safetensors", {"x": a, "y": a[:1] * 2}, header_pad=2)  # data starts at 8 + 8k + 2
    views = map_tensors(path)
    for name, want in (("x", a), ("y", a[:1] * 2)):
        assert views[name].flags.aligned and not views[name].flags.writeable
        np.testing.assert_array_equal(views[name], want)
    np.testing.assert_array_equal(read_safetensors(path)[0]["x"], a)


@pytest.mark.parametrize("change, match", [
    (lambda h: h["x"].update(data_offsets=[0, 4000]), r"x.*claims bytes \[0, 4000\)"),  # past the end
    (lambda h: h["x"].update(data_offsets=[-4, 44]), r"x.*claims bytes"),  # negative
    (lambda h: h["x"].update(shape=[4, 4]), r"x.*shape \(4, 4\)"),  # size != shape x item size
    (lambda h: h["x"].update(dtype="F99"), r"x.*malformed"),
])
def test_map_tensors_checks_every_range_itself(tmp_path, change, match):
    """map_tensors re-checks what safe_open checked (a file changed between the two gives an error, not a view)."""
    path = _raw(tmp_path / "x.safetensors", {"x": np.ones((3, 4), np.float32)})
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    change(header)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data[8 + n:])
    with pytest.raises(ValueError, match=match):
        map_tensors(path)


def test_training_a_loaded_model_copies_and_never_writes_the_file(tmp_path):
    model = conftest.random_model(seed=1)
    path = save(tmp_path / "m.safetensors", model.params, model.config)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = minivivit.load(path)
    before = loaded.params["head"]["w"].copy()
    opt = AdamW(loaded.params, lr=1e-2)
    grads = minivivit.weights.map_params(np.ones_like, loaded.params)
    opt.step(loaded.params, grads)
    w = loaded.params["head"]["w"]
    assert w.flags.writeable and not _mapped(w)
    assert np.all(w < before)  # a positive gradient moved every weight down
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    np.testing.assert_array_equal(minivivit.load(path).params["head"]["w"], before)


def test_loading_peaks_near_the_file_size(tmp_path):
    """Resident memory while loading a 4-layer ViViT-B-width file (~115 MB), in a fresh process: <= 1.1x the
    file (reading with copies peaked at 2x: the mapped pages plus the arrays)."""
    from minivivit.bench.memory import make_weights_file, measure_in_subprocess

    path = make_weights_file(tmp_path / "b4.safetensors", num_hidden_layers=4)
    r = measure_in_subprocess(path)
    if not r["resettable"]:
        pytest.skip("this kernel cannot reset VmHWM (/proc/self/clear_refs)")
    assert r["file_mb"] > 100
    assert r["load_peak_mb"] <= 1.1 * r["file_mb"], r


def test_selecting_trainable_parameters_of_a_mapped_model_updates_the_model(tmp_path):
    """A parameter group of a loaded (mapped, read-only) model: the selected arrays become writable copies inside
    model.params (so an optimiser step moves the model), the frozen ones stay views of the file."""
    from minivivit.train.step import select

    model = conftest.random_model(seed=4)
    loaded = minivivit.load(save(tmp_path / "m.safetensors", model.params, model.config))
    names = {"blocks.1.mlp.fc1.w", "head.b"}
    group = select(loaded.params, names)
    assert set(group) == names and all(a.flags.writeable for a in group.values())
    group["blocks.1.mlp.fc1.w"] += 1.0
    moved = loaded.params["blocks"][1]["mlp"]["fc1"]["w"]
    np.testing.assert_array_equal(moved, model.params["blocks"][1]["mlp"]["fc1"]["w"] + 1.0)
    assert _mapped(loaded.params["blocks"][0]["mlp"]["fc1"]["w"]) and not _mapped(moved)
