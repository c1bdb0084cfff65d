"""`minivivit convert` / minivivit.convert: every bad input is a clear error that leaves no output file;
both HF weight layouts, prefixes, heads, shards and file formats convert to the same numbers.

Inputs come from the transformers-4.48 fixtures (tests/fixtures/hf448, v4 names), edited here with
NumPy; .bin files are written by hand in torch's zip layout (torch_zip below), so most tests run without
torch. Tests marked "torch" compare with torch.save / HF v5 themselves and skip without the dev extra.
"""

import io
import json
import os
import pickle
import shutil
import struct
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from test_fixtures_hf448 import FIXTURES, NAMES, compare

import minivivit
from minivivit.cli import main as cli_main
from minivivit.convert.torch_pickle import UnsafePickleError, load_torch_state_dict

CLS, BASE = "classifier-gelu-t2x16x16", "base-pooler-gelu_fast-t1x8x8-noqkvbias"
Q1 = "vivit.encoder.layer.1.attention.attention.key.weight"  # [16, 16] in the CLS fixture


def fixture_state(name) -> dict[str, np.ndarray]:
    return load_file(str(FIXTURES / name / "model.safetensors"))


def hf_dir(path, name, state=None, fmt="safetensors"):
    """An HF-style directory: the fixture's config.json + `state` (default: its weights) as fmt."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / name / "config.json", path / "config.json")
    state = fixture_state(name) if state is None else state
    if fmt == "safetensors":
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch_zip(path / "pytorch_model.bin", state)
    return path


# ---- a pytorch_model.bin written by hand, opcode by opcode, as torch.save lays it out --------------------

def _global(module, name):
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _str(s):
    return pickle.BINUNICODE + struct.pack("<I", len(s.encode())) + s.encode()


def _int(i):
    return pickle.BININT + struct.pack("<i", i)


def _tuple(*items):
    return pickle.MARK + b"".join(items) + pickle.TUPLE


STORAGE = {"float32": "FloatStorage", "float16": "HalfStorage", "float64": "DoubleStorage", "int64": "LongStorage",
           "bfloat16": "BFloat16Storage"}


def tensor_ops(storage, key, numel, offset, size, stride, hooks=None):
    """torch._utils._rebuild_tensor_v2((storage persistent id), offset, size, stride, False, OrderedDict())."""
    pid = _tuple(_str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel)) + pickle.BINPERSID
    hooks = hooks or _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    args = _tuple(pid, _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)), pickle.NEWFALSE, hooks)
    return _global("torch._utils", "_rebuild_tensor_v2") + args + pickle.REDUCE


def torch_zip(path, state, *, byteorder="little", bf16=(), views=None):
    """{name: array} -> archive/data.pkl (protocol 2) + archive/data/<i>. Names in bf16 hold uint16 bit patterns.

    views: {name: (storage key, offset, size, stride)} extra float32 tensors viewing another tensor's storage."""
    items, storages = b"", {}
    for i, (name, a) in enumerate(state.items()):
        kind = "bfloat16" if name in bf16 else a.dtype.name
        storages[str(i)] = a.astype(a.dtype.newbyteorder("<" if byteorder == "little" else ">")).tobytes()
        items += _str(name) + tensor_ops(STORAGE[kind], str(i), a.size, 0, a.shape, [
            int(np.prod(a.shape[d + 1:])) for d in range(a.ndim)])
    for name, (key, offset, size, stride) in (views or {}).items():
        items += _str(name) + tensor_ops("FloatStorage", key, len(storages[key]) // 4, offset, size, stride)
    pkl = pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK + items + pickle.SETITEMS + pickle.STOP
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", byteorder)
        z.writestr("archive/version", "3\n")
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
    return path


# ---- the shape of every failure: a clear message, exit code 2 from the CLI, no file left behind ---------

def expect_failure(capsys, src, out, exc_type, *parts, config=None):
    """Both the API and the CLI refuse `src` with a message containing every part; `out`'s folder stays as it was."""
    before = sorted(p.name for p in out.parent.iterdir())
    with pytest.raises(exc_type) as info:
        minivivit.convert(src, out, config=config)
    for part in parts:
        assert part in str(info.value), f"{part!r} not in error: {info.value}"
    argv = ["convert", str(src), str(out)] + (["--config", str(config)] if config else [])
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("minivivit convert: error: ") and all(p in err for p in parts), err
    assert sorted(p.name for p in out.parent.iterdir()) == before, "a partial or temporary file was left behind"
    return str(info.value)


@pytest.fixture
def out(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "model.safetensors"


def test_missing_key(tmp_path, out, capsys):
    state = fixture_state(CLS)
    del state[Q1]
    expect_failure(capsys, hf_dir(tmp_path / "src", CLS, state), out, ValueError,
                   "1 problem(s)", "missing key for 'blocks.1.attn.k.w'", "'vivit.encoder.layer.1.attention.attention"
                   ".key.weight'", "expected shape (16, 16)")


def test_wrong_shape_names_key_and_both_shapes(tmp_path, out, capsys):
    state = fixture_state(CLS)
    state["vivit.encoder.layer.0.intermediate.dense.weight"] = np.zeros((33, 16), np.float32)  # HF stores [32, 16]
    state["vivit.embeddings.position_embeddings"] = np.zeros((1, 10, 16), np.float32)  # 1 + 8 tokens expected
    expect_failure(capsys, hf_dir(tmp_path / "src", CLS, state, fmt="bin"), out, ValueError, "2 problem(s)",
                   "key 'vivit.encoder.layer.0.intermediate.dense.weight' has shape (33, 16), expected (32, 16)",
                   "key 'vivit.embeddings.position_embeddings' has shape (1, 10, 16), expected (1, 9, 16)")


def test_unknown_keys(tmp_path, out, capsys):
    state = fixture_state(CLS)
    state["vivit.encoder.layer.0.attention.attention.rotary.weight"] = np.zeros(4, np.float32)
    state["vivit.encoder.layer.2.output.dense.bias"] = np.zeros(16, np.float32)  # a third layer; config says 2
    expect_failure(capsys, hf_dir(tmp_path / "src", CLS, state), out, ValueError,
                   "unknown key 'vivit.encoder.layer.0.attention.attention.rotary.weight' with shape (4,)",
                   "unexpected key 'vivit.encoder.layer.2.output.dense.bias' with shape (16,)", "2 layers")


def test_mixed_v4_and_v5_names(tmp_path, out, capsys):
    state = fixture_state(CLS)
    state["vivit.layers.1.attention.k_proj.weight"] = state[Q1]
    expect_failure(capsys, hf_dir(tmp_path / "src", CLS, state), out, ValueError, "both map to 'blocks.1.attn.k.w'")


# ---- hostile pickles: refused before anything runs -------------------------------------------------------

class _Payload:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _hostile(kind, marker) -> tuple[bytes, str]:
    """(data.pkl bytes whose loading would create `marker`, the global the error must name)."""
    touch = f"touch {marker}"
    if kind == "os.system-protocol2":
        return pickle.dumps({"w": _Payload(os.system, touch)}, protocol=2), f"{os.system.__module__}.system"
    if kind == "exec-protocol4-stack_global":
        return pickle.dumps(_Payload(exec, f"open({str(marker)!r}, 'w').close()"), protocol=4), "builtins.exec"
    if kind == "os.system-INST-protocol0":
        return f"(S'{touch}'\nios\nsystem\n.".encode(), "os.system"
    if kind == "inside-a-valid-tensor":  # a real tensor entry whose backward_hooks argument is the payload
        hooks = _global("os", "system") + _tuple(_str(touch)) + pickle.REDUCE
        body = _str("w") + tensor_ops("FloatStorage", "0", 1, 0, (1,), (1,), hooks=hooks)
        return pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + body + pickle.SETITEM + pickle.STOP, "os.system"
    raise AssertionError(kind)


HOSTILE = ["os.system-protocol2", "exec-protocol4-stack_global", "os.system-INST-protocol0", "inside-a-valid-tensor"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_pickle_that_runs_code_is_refused_and_never_runs(kind, tmp_path, out, capsys):
    marker = tmp_path / "PAYLOAD_RAN"
    pkl, name = _hostile(kind, marker)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(FIXTURES / CLS / "config.json", src / "config.json")
    with zipfile.ZipFile(src / "pytorch_model.bin", "w") as z:
        z.writestr("pytorch_model/data.pkl", pkl)
        z.writestr("pytorch_model/data/0", b"\0\0\0\0")
    msg = expect_failure(capsys, src, out, UnsafePickleError, f"refusing to load {name}", "Nothing was executed")
    assert "safetensors" in msg  # says what to do instead
    assert not marker.exists(), "the payload ran"

    # control: the same bytes really are live -- an unpickler without the allow-list runs them (a harmless touch)
    control = tmp_path / "CONTROL"
    _PlainUnpickler(io.BytesIO(_hostile(kind, control)[0])).load()
    assert control.exists()


class _PlainUnpickler(pickle.Unpickler):
    """Ordinary pickle behaviour, with stand-ins for torch's names so that no torch is needed."""

    def persistent_load(self, pid):
        return pid

    def find_class(self, module, name):
        return (lambda *args: args) if module.startswith("torch") else super().find_class(module, name)


def test_view_outside_its_storage_is_refused(tmp_path):
    """A crafted negative stride used to make as_strided read (or crash on) memory outside the file's bytes."""
    bad = torch_zip(tmp_path / "a.bin", {"x": np.arange(4, dtype=np.float32)},
                    views={"y": ("0", 0, (3,), (-1000,)), "z": ("0", 3, (3,), (1,))})
    with pytest.raises(ValueError, match=r"invalid tensor view: offset 0, size \(3,\), stride \(-1000,\)"):
        load_torch_state_dict(bad)
    overrun = torch_zip(tmp_path / "b.bin", {"x": np.arange(4, dtype=np.float32)}, views={"z": ("0", 3, (3,), (1,))})
    with pytest.raises(ValueError, match=r"needs 6 elements but its storage has 4"):
        load_torch_state_dict(overrun)


# ---- damaged files, existing outputs, missing pieces --------------------------------------------------

@pytest.mark.parametrize("keep", [0, 8, 100, 0.5, -1])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_truncated_weights(fmt, keep, tmp_path, out, capsys):
    src = hf_dir(tmp_path / "src", CLS, fmt=fmt)
    f = src / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep % len(data)])
    expect_failure(capsys, src, out, ValueError, str(f), "truncated")


def test_corrupted_bin(tmp_path, out, capsys):
    src = hf_dir(tmp_path / "src", CLS, fmt="bin")
    data = bytearray((src / "pytorch_model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a storage: the zip CRC no longer matches
    (src / "pytorch_model.bin").write_bytes(bytes(data))
    expect_failure(capsys, src, out, ValueError, "damaged or truncated")


def test_existing_output_needs_force(out, capsys):
    out.write_bytes(b"precious")
    expect_failure(capsys, FIXTURES / CLS, out, FileExistsError, f"{out} already exists", "--force")
    assert out.read_bytes() == b"precious"
    assert cli_main(["convert", str(FIXTURES / CLS), str(out), "--force"]) == 0
    assert list(out.parent.iterdir()) == [out]
    compare(minivivit.load(out), CLS)


def test_failure_while_writing_keeps_the_old_file(out, monkeypatch):
    import safetensors.numpy

    def dies_halfway(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("disk full")

    out.write_bytes(b"precious")
    monkeypatch.setattr(safetensors.numpy, "save_file", dies_halfway)
    with pytest.raises(RuntimeError, match="disk full"):
        minivivit.convert(FIXTURES / CLS, out, force=True)
    assert out.read_bytes() == b"precious" and list(out.parent.iterdir()) == [out]


def test_directory_without_weights(tmp_path, out, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(FIXTURES / CLS / "config.json", src / "config.json")
    expect_failure(capsys, src, out, FileNotFoundError, "model.safetensors", "pytorch_model.bin", "HF model directory")
    expect_failure(capsys, tmp_path / "nowhere", out, FileNotFoundError, "no such file or directory")


def test_missing_config_json_and_the_config_flag(tmp_path, out, capsys):
    src = hf_dir(tmp_path / "src", CLS)
    (src / "config.json").rename(tmp_path / "elsewhere.json")
    expect_failure(capsys, src, out, FileNotFoundError, "no config.json", "--config")
    assert cli_main(["convert", str(src), str(out), "--config", str(tmp_path / "elsewhere.json")]) == 0
    compare(minivivit.load(out), CLS)


# ---- layouts that must all convert to HF's numbers ---------------------------------------------------

@pytest.mark.parametrize("prefix", ["as-saved", "with-vivit", "without-vivit"])
@pytest.mark.parametrize("name", NAMES)
def test_prefix_variants_of_the_448_fixtures(name, prefix, tmp_path, out):
    state = fixture_state(name)
    strip = lambda k: k.removeprefix("vivit.")
    rename = {"as-saved": lambda k: k, "without-vivit": strip,
              "with-vivit": lambda k: k if k.startswith("classifier.") else "vivit." + strip(k)}[prefix]
    state = {rename(k): v for k, v in state.items()}
    assert minivivit.convert(hf_dir(tmp_path / "src", name, state), out) == out
    compare(minivivit.load(out), name)
    compare(minivivit.load(out), name, prefix="hm_")


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_sharded_checkpoint(fmt, tmp_path, out, capsys):
    state, src = fixture_state(CLS), tmp_path / "src"
    src.mkdir()
    shutil.copy(FIXTURES / CLS / "config.json", src / "config.json")
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    keys, weight_map = sorted(state), {}
    for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2:])):
        shard = f"{stem}-{i + 1:05d}-of-00002.{ext}"
        (save_file if fmt == "safetensors" else lambda s, p: torch_zip(p, s))({k: state[k] for k in part}, str(src / shard))
        weight_map.update({k: shard for k in part})
    index = src / f"{stem}.{ext}.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": sum(a.nbytes for a in state.values())},
                                 "weight_map": weight_map}))
    compare(minivivit.load(src), CLS)  # the directory finds the index
    assert cli_main(["convert", str(index), str(out)]) == 0  # so does the index file itself
    compare(minivivit.load(out), CLS)

    os.remove(src / f"{stem}-00002-of-00002.{ext}")
    expect_failure(capsys, src, tmp_path / "out" / "b.safetensors", FileNotFoundError, f"{stem}-00002-of-00002.{ext}")
    index.write_text(json.dumps({"metadata": {}}))
    expect_failure(capsys, src, tmp_path / "out" / "b.safetensors", ValueError, "is not a shard index", "weight_map")


def test_handwritten_bin_big_endian_bf16_and_views(tmp_path):
    """Our reader against torch's format spec: byte order, bfloat16 bit patterns, strided views of a storage."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    exact_bf16 = np.array([1.0, -2.5, 3.140625, 1e-3, -6e4], np.float32).view(np.uint32) >> 16 << 16
    state = {"w": w, "d": w.astype(np.float64), "h": w.astype(np.float16), "i": np.arange(5),
             "b": (exact_bf16 >> 16).astype(np.uint16)}
    for order in ("little", "big"):
        got = load_torch_state_dict(torch_zip(tmp_path / f"{order}.bin", state, byteorder=order, bf16={"b"},
                                              views={"wT": ("0", 0, (4, 3), (1, 4)), "w_sub": ("0", 5, (2, 2), (4, 1))}))
        for k in ("w", "d", "h", "i"):
            assert got[k].dtype == state[k].dtype and got[k].dtype.isnative and np.array_equal(got[k], state[k]), k
        assert got["b"].dtype == np.float32 and np.array_equal(got["b"], exact_bf16.view(np.float32))
        assert np.array_equal(got["wT"], w.T) and np.array_equal(got["w_sub"], w[1:, 1:3])


# ---- with torch: torch.save itself, HF v5 names, bfloat16 end to end ----------------------------------

@pytest.mark.torch
def test_torch_save_bin_equals_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 6, generator=g)
    state = {"f32": base, "transposed": base.t(), "offset_view": base[2:, 1:4], "f16": base.half(),
             "f64": base.double(), "bf16": torch.randn(7, 3, generator=g).bfloat16(), "i64": torch.arange(-3, 4),
             "bool": base > 0, "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
             **{f"linear.{k}": v for k, v in torch.nn.Linear(3, 2).state_dict().items()}}
    torch.save(state, tmp_path / "t.bin")
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "module.bin")  # an OrderedDict with _metadata
    got = load_torch_state_dict(tmp_path / "t.bin")
    assert set(got) == set(state)
    for k, t in state.items():
        ref = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        assert got[k].dtype == ref.dtype and got[k].shape == ref.shape and np.array_equal(got[k], ref), k
    assert got["bf16"].dtype == np.float32 and not np.array_equal(got["bf16"], np.zeros((7, 3)))
    assert set(load_torch_state_dict(tmp_path / "module.bin")) == {"weight", "bias"}


@pytest.mark.torch
@pytest.mark.parametrize("prefix", ["as-in-memory", "toggled"])
@pytest.mark.parametrize("kind", ["classifier", "base+pooler", "base"])
def test_hf_v5_state_dict_names_convert(kind, prefix, tmp_path, out):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from reference import hf_forward, random_clip, random_hf_model, rel_err
    from safetensors.torch import save_file as torch_save_file

    hf = random_hf_model(kind.split("+")[0], seed=7, add_pooling_layer=kind == "base+pooler", num_labels=3)
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    assert any(".layers.0.attention.q_proj.weight" in "." + k for k in state)  # really the v5 names
    if prefix == "toggled":
        state = {(k.removeprefix("vivit.") if k.startswith("vivit.") else
                  k if k.startswith("classifier.") else "vivit." + k): v for k, v in state.items()}
    src = tmp_path / "src"
    src.mkdir()
    torch_save_file(state, str(src / "model.safetensors"))
    hf.config.to_json_file(str(src / "config.json"))
    assert cli_main(["convert", str(src), str(out)]) == 0
    model = minivivit.load(out)
    x = random_clip(model.config, batch=2, seed=3)
    ref, ours = hf_forward(hf, x, output_hidden_states=True), model(x, output_hidden_states=True)
    fields = ["logits"] if kind == "classifier" else ["last_hidden_state"] + (["pooler_output"] if "+" in kind else [])
    assert (ours.pooler_output is None) == (kind != "base+pooler")
    for f in fields:
        assert rel_err(getattr(ours, f), getattr(ref, f)) <= 1e-5, f
    for a, b in zip(ours.hidden_states, ref.hidden_states, strict=True):
        assert rel_err(a, b) <= 1e-5


@pytest.mark.torch
def test_bfloat16_bin_converts_to_the_widened_weights(tmp_path, out):
    """A bf16 pytorch_model.bin (torch.save) converts to exactly the float32 widening of its weights."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from reference import hf_forward, random_clip, random_hf_model, rel_err

    hf = random_hf_model("classifier", seed=5).to(torch.bfloat16)
    src = tmp_path / "src"
    src.mkdir()
    torch.save(hf.state_dict(), src / "pytorch_model.bin")
    hf.config.to_json_file(str(src / "config.json"))
    minivivit.convert(src, out)
    model = minivivit.load(out)
    assert model.dtype == np.float32
    ref_w = hf.vivit.layers[0].attention.q_proj.weight.detach().float().numpy()
    assert np.array_equal(model.params["blocks"][0]["attn"]["q"]["w"], ref_w.T)
    x = random_clip(model.config, seed=4)
    assert rel_err(model(x).logits, hf_forward(hf.float(), x).logits) <= 1e-5
