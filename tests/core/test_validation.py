"""The validation layers of issue 16: the config's field table, the value rules, the memory guard helper, output
paths. (The adversarial suite, tests/adversarial, throws ~750 bad inputs at the whole package; these tests pin
the pieces it relies on.) About 2 s."""

import json
import math
import os
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

import minivivit
from minivivit import checks, memory
from minivivit.config import FIELD_RULES, MAX_TOKENS, RELATIONS, ConfigError, ViViTConfig
from minivivit.fileio import atomic_output, check_output, clean_stale_partials, parse_json, read_json_file

# ---- the config table -------------------------------------------------------------------------


def test_every_config_field_has_exactly_one_rule():
    names = [f.name for f in fields(ViViTConfig)]
    assert sorted(FIELD_RULES) == sorted(names), "a new ViViTConfig field needs its entry in config.FIELD_RULES"
    assert all(getattr(rule, "allowed", None) for rule in FIELD_RULES.values())
    assert all(callable(r) for r in RELATIONS)


@pytest.mark.parametrize("field,value,words", [
    ("num_hidden_layers", 0, ["num_hidden_layers=0", "1..1024"]),
    ("image_size", 64.0, ["image_size=64.0", "(float)", "[height, width]"]),
    ("image_size", True, ["image_size=True", "(bool)"]),
    ("tubelet_size", [2, 16], ["tubelet_size=[2, 16]", "3 ints"]),
    ("layer_norm_eps", -1.0, ["layer_norm_eps=-1.0", "(0, 1]"]),
    ("layer_norm_eps", math.nan, ["layer_norm_eps=nan", "finite"]),
    ("qkv_bias", "false", ["qkv_bias='false'", "(str)", "true or false"]),
    ("pooler_act", "sparkle", ["pooler_act='sparkle'", "'tanh'"]),
    ("hidden_act", "sparkle", ["hidden_act='sparkle'", "'gelu_fast'"]),
])
def test_a_bad_field_is_named_with_its_value_and_range(field, value, words):
    with pytest.raises(ConfigError) as e:
        ViViTConfig(**{field: value})
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_what_hf_writes_is_accepted_and_normalised():
    c = ViViTConfig(image_size=[32, 48], tubelet_size=[2, 16, 16], num_frames=np.int64(4), hidden_size=24,
                    num_attention_heads=3, num_labels=2, id2label={"0": "a", "1": "b"}, layer_norm_eps=1)
    assert c.image_size == (32, 48) and c.tubelet_size == (2, 16, 16) and type(c.num_frames) is int
    assert c.id2label == {0: "a", 1: "b"} and c.layer_norm_eps == 1.0 and c.label2id == {"a": 0, "b": 1}


def test_reads_a_config_transformers_writes_for_every_image_size_form(tmp_path):
    transformers = pytest.importorskip("transformers")
    for image_size in (32, [32, 48]):
        hf = transformers.VivitConfig(image_size=image_size, num_frames=4, hidden_size=24, num_attention_heads=3)
        hf.save_pretrained(tmp_path)
        c = ViViTConfig.from_json_file(tmp_path / "config.json")
        assert c.image_hw == ((32, 32) if image_size == 32 else (32, 48)) and c.num_labels == hf.num_labels


def test_relations():
    with pytest.raises(ConfigError, match="divisible by num_attention_heads=5"):
        ViViTConfig(hidden_size=24, num_attention_heads=5)
    with pytest.raises(ConfigError, match=f"65537 tokens .* above the limit of {MAX_TOKENS}"):
        ViViTConfig(image_size=256, num_frames=1, tubelet_size=[1, 1, 1], hidden_size=8, num_attention_heads=1)
    ViViTConfig(image_size=[256, 255], num_frames=1, tubelet_size=[1, 1, 1], hidden_size=8, num_attention_heads=1)
    with pytest.raises(ConfigError, match=r"id2label has 2 label\(s\) .* num_labels=3"):
        ViViTConfig(num_labels=3, id2label={0: "a", 1: "b"})


def test_a_new_field_is_one_table_entry():
    """How the ViViT Models 2-4 fields slot in: a rule per field (e.g. attention_type), no other code."""
    rule = checks.choice(["joint_space_time", "factorized_encoder", "factorized_self_attention", "factorized_dot_product"])
    assert rule("attention_type", "factorized_encoder") == "factorized_encoder"
    with pytest.raises(checks.FieldError, match="attention_type='factorised'"):
        rule("attention_type", "factorised")
    size = checks.optional(checks.integer(1, 65536))
    assert size("representation_size", None) is None and size("representation_size", np.int32(7)) == 7


def test_config_files_name_the_file_and_the_place(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "hidden_size": 24,\n  "num_frames": 4,,\n}')
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON: .* at line 3, column 19"):
        ViViTConfig.from_json_file(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match=r"config\.json must hold an object .* it holds an array"):
        ViViTConfig.from_json_file(path)
    path.write_text(json.dumps({"model_type": "vivit", "num_attention_heads": 0}))
    with pytest.raises(ConfigError, match=r"config\.json: invalid ViViT config: num_attention_heads=0"):
        ViViTConfig.from_json_file(path)
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100000, "x.json")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_json_file(path)


# ---- value rules --------------------------------------------------------------------------------


def test_rules_refuse_look_alikes():
    assert checks.integer(1, 8)("n", np.uint8(3)) == 3
    for bad in (True, 3.0, "3", None, [3], 9, 0):
        with pytest.raises(checks.FieldError):
            checks.integer(1, 8)("n", bad)
    assert checks.number(0, 1)("p", 1) == 1.0
    for bad in (math.nan, math.inf, "0.5", True, -0.1):
        with pytest.raises(checks.FieldError):
            checks.number(0, 1)("p", bad)
    for bad in ("false", 0, 1, None):
        with pytest.raises(checks.FieldError):
            checks.boolean()("flag", bad)
    assert checks.finite_numbers(3, 0, math.inf, lo_open=True)("std", [0.5, 1, 2]) == [0.5, 1.0, 2.0]
    with pytest.raises(checks.FieldError, match=r"std\[1\]=0"):
        checks.finite_numbers(3, 0, math.inf, lo_open=True)("std", [0.5, 0, 2])


def test_preprocessing_options_are_validated():
    from minivivit.video.preprocess import processor_options

    assert processor_options({"do_center_crop": False, "image_std": 0.25})["image_std"] == 0.25
    for bad, word in [({"do_center_crop": "false"}, "do_center_crop"), ({"image_std": 0}, "image_std"),
                      ({"rescale_factor": math.nan}, "rescale_factor"), ({"size": {"shortest_edge": 0}}, "shortest_edge"),
                      ({"crop_size": True}, "crop_size"), ({"image_mean": [0.5, 0.5]}, "image_mean")]:
        with pytest.raises(ValueError, match=word):
            processor_options(bad)


# ---- the memory guard --------------------------------------------------------------------------


def test_parse_bytes_and_the_environment(monkeypatch):
    assert memory.parse_bytes("32GB") == 32 * 10**9 and memory.parse_bytes("8 GiB") == 8 * 2**30
    assert memory.parse_bytes("1.5e9") == 1_500_000_000 and memory.parse_bytes("none") is None
    with pytest.raises(ValueError, match="MINIVIVIT_MAX_BYTES='lots' is not a size"):
        memory.parse_bytes("lots")
    monkeypatch.delenv(memory.ENV, raising=False)
    assert memory.limit() == memory.DEFAULT_MAX_BYTES == 8 * 2**30
    monkeypatch.setenv(memory.ENV, "1MB")
    assert memory.limit() == 10**6 and memory.limit(123) == 10**6
    monkeypatch.setenv(memory.ENV, "off")
    assert memory.limit() is None


def test_check_budget_names_size_limit_cheaper_and_override():
    with pytest.raises(memory.MemoryBudgetError) as e:
        memory.check_budget(20 * 10**9, 8 * 2**30, False, "decoding 100000 clips", ["fewer clips"])
    msg = str(e.value)
    for part in ("decoding 100000 clips needs 20.00 GB", "limit of 8.59 GB", "fewer clips", "MINIVIVIT_MAX_BYTES=20GB"):
        assert part in msg, (part, msg)
    assert isinstance(e.value, MemoryError) and isinstance(e.value, ValueError)
    memory.check_budget(20 * 10**9, 8 * 2**30, True, "forced", [])  # force: no error
    memory.check_budget(20 * 10**9, None, False, "no limit", [])


def test_explain_keeps_its_names_and_yields_to_the_environment(monkeypatch):
    from minivivit import explain

    assert explain.format_bytes is memory.format_bytes and issubclass(explain.AttentionBudgetError,
                                                                       memory.MemoryBudgetError)
    monkeypatch.setenv(memory.ENV, "10GB")
    explain.check_budget(5 * 10**9, explain.DEFAULT_MAX_BYTES, False, "maps", [])  # the default yields: allowed
    with pytest.raises(explain.AttentionBudgetError, match="force=True"):
        explain.check_budget(5 * 10**9, 10**9, False, "maps", ["cls"])  # an explicit limit stays
    monkeypatch.delenv(memory.ENV)
    with pytest.raises(explain.AttentionBudgetError) as e:
        explain.check_budget(5 * 10**9, explain.DEFAULT_MAX_BYTES, False, "maps", ["cls"])
    assert "CLI: --force" not in str(e.value) and "MINIVIVIT_MAX_BYTES=5GB" in str(e.value)


def test_forward_memory_is_refused_before_allocating():
    config = ViViTConfig(image_size=32, num_frames=4, hidden_size=24, num_attention_heads=3, num_hidden_layers=1,
                         intermediate_size=8, num_labels=2)
    model = minivivit.Model(minivivit.weights.init_params(config), config)
    x = np.broadcast_to(np.zeros((1, 4, 3, 1, 1), np.float32), (1, 4, 3, 4096, 4096))  # no memory of its own
    with pytest.raises(memory.MemoryBudgetError, match=r"(?s)131073 tokens.*backend='numba'"):
        model(x, interpolate_pos_encoding=True)


# ---- output paths -------------------------------------------------------------------------------


def test_check_output(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="never replaces a directory"):
        check_output(tmp_path / "d", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="--force"):
        check_output(tmp_path / "f")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_output(tmp_path / "f" / "out.gif")
    assert check_output(tmp_path / "new" / "deeper" / "out.gif") == tmp_path / "new" / "deeper" / "out.gif"


def test_partials_are_visible_and_stale_ones_are_cleaned(tmp_path):
    out = tmp_path / "out.bin"
    with atomic_output(out) as tmp:
        assert tmp.name.startswith(f"out.bin.{os.getpid()}.") and tmp.name.endswith(".partial")
        tmp.write_bytes(b"x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"out.bin.{dead.pid}.abcd1234.partial"
    live = tmp_path / f"out.bin.{os.getpid()}.efgh5678.partial"
    old = tmp_path / ".out.bin.k2j3h4g5.partial"
    mine = tmp_path / "out.bin.my notes.partial"
    for p in (stale, live, old, mine):
        p.write_text("half")
    assert sorted(clean_stale_partials(out)) == sorted([stale, old])
    assert live.exists() and mine.exists()
