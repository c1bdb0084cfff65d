"""Scenic checkpoints written by flax itself (tests/fixtures/scenic/checkpoints/, by make_scenic_fixtures.py):
minivivit's msgpack reader and converter get exactly the params flax wrote, and the converted models give
Scenic's outputs. Both layouts, chunked arrays, bfloat16; the questions the tree cannot answer. About 2 s.
"""

import json

import numpy as np
import pytest
from scenic_helpers import FIXTURES, case_config, case_params, inputs, load_cases, reference, rel_err, scenic_flat

import minivivit
from minivivit import factorized
from minivivit.cli import main as cli_main
from minivivit.convert import scenic
from minivivit.kernels import get_backend
from minivivit.model import vivit_forward
from minivivit.weights import flatten_params

CKPTS = FIXTURES / "checkpoints"
HINTS = {  # what each checkpoint's tree cannot tell (8 tubelets per frame is 2x4: not square, so the frame size)
    "m2-token-optimizer_target": {"image_size": (8, 16)},
    "m3-time_space-params": {"image_size": (8, 16), "attention_order": "time_space"},
    "m4-params-chunked": {"image_size": (8, 16), "variant": "factorized_dot_product_attention"},
    "m1-token-params-bf16": {"num_frames": 6, "image_size": (8, 16)},
}
FLOAT32_CKPTS = [n for n in HINTS if "bf16" not in n]


def forward(params, config, dtype=np.float32):
    if config.is_hf_model:
        return vivit_forward(params, config, inputs(dtype))
    return factorized.forward(params, config, inputs(dtype), ops=get_backend("numpy"))


@pytest.mark.parametrize("name", FLOAT32_CKPTS)
def test_reader_gets_exactly_the_params_flax_wrote(name):
    info = load_cases()["checkpoints"][name]
    flat, layout = scenic.read_params(CKPTS / name)
    assert layout == {"optimizer": "optimizer.target", "params": "params"}[info["layout"]]
    expected = scenic_flat(info["case"])
    assert set(flat) == set(expected)
    for k, a in expected.items():
        assert flat[k].dtype == np.float32 and np.array_equal(flat[k], a), k


def test_chunked_arrays_are_joined():
    raw = (CKPTS / "m4-params-chunked").read_bytes()
    assert b"__msgpack_chunked_array__" in raw  # flax really chunked it
    flat, _ = scenic.read_params(CKPTS / "m4-params-chunked")
    assert flat["embedding/kernel"].shape == (2, 4, 4, 3, 16)


def test_bfloat16_is_read_as_flax_reads_it():
    flat, _ = scenic.read_params(CKPTS / "m1-token-params-bf16")
    view = np.load(CKPTS / "m1-token-params-bf16.float32.npz")  # jnp.asarray(bf16, float32) by JAX
    assert len(view.files) == 3
    for k in view.files:
        assert flat[k].dtype == np.float32 and np.array_equal(flat[k], view[k]), k


@pytest.mark.parametrize("name", FLOAT32_CKPTS)
def test_flax_written_round_trip_outputs_equal(name, tmp_path):
    """flax writes, `minivivit convert` converts, minivivit.load loads: the same outputs as the params flax
    was given, which equal Scenic's own float32 outputs."""
    case = load_cases()["checkpoints"][name]["case"]
    out = tmp_path / "m.safetensors"
    minivivit.convert(CKPTS / name, out, **HINTS[name])
    model = minivivit.load(out)
    assert model.config == case_config(case)  # inferred from the tree (+ hints) = the hand-written config
    loaded = forward(model.params, model.config).logits
    direct = forward(case_params(case, np.float32), case_config(case)).logits
    assert np.array_equal(loaded, direct)
    assert rel_err(loaded, reference(case)["logits32"]) <= 1e-5


def test_cli_convert_sniffs_a_scenic_file(tmp_path, capsys):
    out = tmp_path / "fe.safetensors"
    assert cli_main(["convert", str(CKPTS / "m2-token-optimizer_target"), str(out), "--image-size", "8x16"]) == 0
    assert "Model 2: factorised encoder" in capsys.readouterr().out
    flat = flatten_params(minivivit.load(out).params)
    assert "spatial.blocks.1.attn.q.w" in flat and "temporal.cls" in flat


def test_a_scenic_folder_uses_its_latest_checkpoint(tmp_path):
    for step in (3, 12):  # Scenic's workdir holds checkpoint_<step> files
        (tmp_path / f"checkpoint_{step}").write_bytes((CKPTS / "m3-time_space-params").read_bytes())
    (tmp_path / "checkpoint_12").write_bytes((CKPTS / "m2-token-optimizer_target").read_bytes())
    out = minivivit.convert(tmp_path, tmp_path / "m.safetensors", image_size=(8, 16))
    assert minivivit.load(out).config.attention_type == "factorized_encoder"


def test_every_case_tree_infers_its_config():
    for case in load_cases()["cases"]:
        cfg = case_config(case)
        hints = {"image_size": (8, 16)}
        if cfg.attention_type == "factorized_self_attention_block":
            hints["attention_order"] = cfg.attention_order
        if cfg.classifier == "gap" and cfg.attention_type in ("spacetime", "factorized_dot_product_attention"):
            hints["variant"] = cfg.attention_type
        assert scenic.infer_config(scenic_flat(case), **hints) == cfg, case


@pytest.mark.parametrize("hints,match", [
    ({"image_size": (8, 16)}, "fits both Model 1 with classifier='gap'.*--variant"),
    ({"variant": "factorized_encoder", "image_size": (8, 16)}, "does not fit this tree"),
    ({"variant": "factorized_dot_product_attention"}, "P = t\\*h\\*w = 24 tubelets.*--num-frames"),
    ({"variant": 4, "num_frames": 6}, "not a square grid.*--image-size"),
    ({"variant": 4, "num_frames": 10, "image_size": (8, 16)}, "do not split"),
    ({"variant": "model 9"}, "variant must be one of"),
])
def test_what_the_tree_cannot_tell_is_asked_for(hints, match):
    with pytest.raises(ValueError, match=match):
        scenic.infer_config(scenic_flat("m4"), **hints)


def test_model3_order_and_model2_sizes():
    with pytest.raises(ValueError, match="attention_order='time_space' or 'space_time'"):
        scenic.infer_config(scenic_flat("m3-space_time"), image_size=(8, 16))
    with pytest.raises(ValueError, match="temporal position embeddings have 3"):
        scenic.infer_config(scenic_flat("m2-token"), num_frames=8, image_size=(8, 16))
    with pytest.raises(ValueError, match="is Model 2"):
        scenic.infer_config(scenic_flat("m2-token"), variant="spacetime", image_size=(8, 16))


def test_conversion_is_strict_with_scenic_names():
    flat = scenic_flat("m1-token")
    flat["Transformer/encoderblock_9/LayerNorm_0/scale"] = np.ones(16, np.float32)
    flat["Transformer/extra/thing"] = np.ones(2, np.float32)
    del flat["Transformer/encoderblock_1/MlpBlock_0/Dense_1/bias"]
    with pytest.raises(ValueError) as e:
        scenic.scenic_to_params(flat, case_config("m1-token"))
    msg = str(e.value)
    assert "unknown Scenic key 'Transformer/extra/thing'" in msg and "blocks.1.mlp.fc2.b" in msg
    assert "encoderblock_9" in msg


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "checkpoint"
    p.write_bytes(msgpack_bytes({"foo": 1}))
    with pytest.raises(ValueError, match="holds no ViViT params.*'optimizer' -> 'target'"):
        minivivit.convert(p, tmp_path / "o.safetensors")
    truncated = tmp_path / "checkpoint_1"
    truncated.write_bytes((CKPTS / "m4-params-chunked").read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        minivivit.convert(truncated, tmp_path / "o.safetensors", variant=4)
    with pytest.raises(ValueError, match="only apply to"):
        minivivit.convert(FIXTURES / "inputs.npz", tmp_path / "o.safetensors", variant=4)


def msgpack_bytes(obj):
    """A map written with the reference encoder (the msgpack package, dev extra) -- plain values only."""
    mp = pytest.importorskip("msgpack")
    return mp.packb(obj, use_bin_type=True)


def test_cases_json_is_what_the_tests_expect():
    info = json.loads((FIXTURES / "cases.json").read_text())
    assert set(info["checkpoints"]) == set(HINTS)
    assert info["scenic_commit"] and info["jax"] and info["flax"]
