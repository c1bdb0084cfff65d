"""ViViTConfig: HF field names and defaults, config.json round trip, clear errors."""

import json

import pytest

from minivivit import ViViTConfig


def test_defaults_are_vivit_b_kinetics400():
    c = ViViTConfig()
    assert (c.image_size, c.num_frames, c.tubelet_size, c.hidden_size) == (224, 32, (2, 16, 16), 768)
    assert (c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (12, 12, 3072)
    assert (c.hidden_act, c.layer_norm_eps, c.qkv_bias, c.num_labels) == ("gelu_fast", 1e-6, True, 400)
    assert c.grid == (16, 14, 14) and c.num_patches == 3136 and c.head_dim == 64
    assert c.id2label[116] == "LABEL_116" and c.label2id["LABEL_3"] == 3


def test_every_hf_vivitconfig_field_exists_with_hf_default():
    transformers = pytest.importorskip("transformers")
    hf = transformers.VivitConfig()
    ours = ViViTConfig()
    for name in ("image_size", "num_frames", "num_channels", "hidden_size", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob",
                 "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps", "qkv_bias",
                 "pooler_output_size", "pooler_act"):
        assert getattr(ours, name) == getattr(hf, name), name
    assert ours.tubelet_size == tuple(hf.tubelet_size)


def test_hf_config_json_round_trip(tmp_path):
    c = ViViTConfig(image_size=64, num_frames=16, tubelet_size=(2, 8, 8), hidden_size=128, num_hidden_layers=3,
                    num_attention_heads=4, intermediate_size=256, num_labels=3,
                    id2label={0: "left", 1: "right", 2: "up"})
    path = tmp_path / "config.json"
    path.write_text(c.to_json_string())
    d = json.loads(path.read_text())
    assert d["model_type"] == "vivit" and d["id2label"] == {"0": "left", "1": "right", "2": "up"}
    back = ViViTConfig.from_json_file(path)
    assert back == c and back.id2label == c.id2label and back.label2id == {"left": 0, "right": 1, "up": 2}


def test_reads_a_transformers_written_config(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.VivitConfig(image_size=32, num_frames=4, hidden_size=24, num_attention_heads=3,
                                  id2label={0: "a", 1: "b"}, qkv_bias=False)
    hf.save_pretrained(tmp_path)
    c = ViViTConfig.from_json_file(tmp_path / "config.json")
    assert (c.image_size, c.num_frames, c.hidden_size, c.qkv_bias, c.num_labels) == (32, 4, 24, False, 2)
    assert c.id2label == {0: "a", 1: "b"}
    # and transformers accepts what we write
    again = transformers.VivitConfig(**{k: v for k, v in c.to_hf_dict().items() if k != "model_type"})
    assert again.hidden_size == 24 and again.id2label == {0: "a", 1: "b"}


@pytest.mark.parametrize("kwargs,match", [
    ({"hidden_size": 100, "num_attention_heads": 12}, "divisible"),
    ({"tubelet_size": (2, 16)}, "tubelet_size"),
    ({"image_size": 8}, "smaller than one tubelet"),
])
def test_impossible_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ViViTConfig(**kwargs)


def test_wrong_model_type_is_refused():
    with pytest.raises(ValueError, match="model_type='vit'"):
        ViViTConfig.from_hf_dict({"model_type": "vit"})
