"""Export back to HF: transformers loads what `minivivit export` writes, with no missing/unexpected keys
and the same outputs (max |diff| / max(1, max |ref|) <= 1e-5 against our forward; bit-equal for an
unmodified round trip)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the export round trip needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import hf_forward, random_clip, random_hf_model, rel_err, to_minivivit  # noqa: E402

import minivivit  # noqa: E402
from minivivit.cli import main  # noqa: E402
from minivivit.convert.hf_export import export_hf, params_to_hf_state  # noqa: E402


def load_hf(kind, path, **kwargs):
    cls = transformers.VivitForVideoClassification if kind == "classifier" else transformers.VivitModel
    model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
    return model.eval(), info


@pytest.mark.parametrize("kind,pooler,overrides", [
    ("classifier", False, {}),
    ("base", True, {"qkv_bias": False, "tubelet_size": [1, 8, 16], "image_size": [16, 32], "num_frames": 3}),
    ("base", False, {"num_attention_heads": 1}),
])
def test_export_round_trip_through_transformers(kind, pooler, overrides, tmp_path):
    hf = random_hf_model(kind, seed=70, add_pooling_layer=pooler, **overrides)
    model = to_minivivit(hf)
    rng = np.random.default_rng(0)  # move every parameter, as training would: outputs then differ from hf's
    for p in minivivit.weights.flatten_params(model.params).values():
        p += (0.05 * rng.standard_normal(p.shape)).astype(p.dtype)
    export_hf(model, tmp_path / "out")
    loaded, info = load_hf(kind, tmp_path / "out", **({} if kind == "classifier" else {"add_pooling_layer": pooler}))
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    x = random_clip(model.config, batch=2, seed=3)
    ours, ref = model(x), hf_forward(loaded, x)
    if kind == "classifier":
        assert rel_err(ours.logits, ref.logits) <= 1e-5
    else:
        assert rel_err(ours.last_hidden_state, ref.last_hidden_state) <= 1e-5
        if pooler:
            assert rel_err(ours.pooler_output, ref.pooler_output) <= 1e-5
    assert rel_err(ours.last_hidden_state if kind == "base" else ours.logits,
                   (hf_forward(hf, x).last_hidden_state if kind == "base" else hf_forward(hf, x).logits)) > 1e-3
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["architectures"] == ["VivitForVideoClassification" if kind == "classifier" else "VivitModel"]
    assert minivivit.ViViTConfig.from_hf_dict(cfg) == model.config
    back = minivivit.load(tmp_path / "out")  # and minivivit reads its own export
    for k, v in minivivit.weights.flatten_params(model.params).items():
        np.testing.assert_array_equal(minivivit.weights.flatten_params(back.params)[k], v)


def test_export_uses_the_hub_v4_names():
    hf = random_hf_model("classifier", seed=71)
    state = params_to_hf_state(to_minivivit(hf).params, to_minivivit(hf).config)
    assert "vivit.encoder.layer.0.attention.attention.query.weight" in state
    assert "vivit.encoder.layer.1.output.dense.bias" in state and "classifier.weight" in state
    assert state["vivit.embeddings.patch_embeddings.projection.weight"].shape == (24, 3, 2, 16, 16)
    assert not any(".layers." in k or "q_proj" in k for k in state)


def test_export_command_refuses_to_overwrite(tmp_path, capsys):
    hf = random_hf_model("classifier", seed=72)
    to_minivivit(hf).save(tmp_path / "m.safetensors")
    out = tmp_path / "hf"
    assert main(["export", str(tmp_path / "m.safetensors"), str(out)]) == 0
    assert "VivitForVideoClassification.from_pretrained" in capsys.readouterr().out
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert main(["export", str(tmp_path / "m.safetensors"), str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    assert main(["export", str(tmp_path / "m.safetensors"), str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded, info = load_hf("classifier", out)
    assert not info["missing_keys"] and not info["unexpected_keys"]
