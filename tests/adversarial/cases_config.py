"""Bad model configs: every ViViTConfig field with values of the wrong type or out of range, impossible
combinations, and broken config.json files, through the API, config.json and a minivivit file's metadata."""

from __future__ import annotations

import json
import math

from files import TINY, hf_dir, tiny_hf_config
from harness import Case, cli

NAN, INF = math.nan, math.inf

# field -> bad values (each must be refused with the field named)
BAD_VALUES = {
    "image_size": [0, -1, True, 64.0, "64", [64], [32, 32, 32], None, 10**9, [0, 32], [32, "a"], {"h": 1}],
    "num_frames": [0, -4, True, 4.0, "4", [4], None, 10**9],
    "tubelet_size": [8, [2, 16], [0, 16, 16], [2, -16, 16], [2.0, 16, 16], ["2", 16, 16], [True, 16, 16], None,
                     "2,16,16", [2, 16, 16, 1]],
    "num_channels": [0, -3, 3.5, "3", None, True],
    "hidden_size": [0, -24, 24.0, "24", True, None, 10**9],
    "num_hidden_layers": [0, -1, 10**9, 2.5, "2", None, True],
    "num_attention_heads": [0, -3, 3.0, "3", None, 10**6],
    "intermediate_size": [0, -1, 40.5, "40", None],
    "hidden_act": ["sparkle", 5, None, "", ["gelu"]],
    "hidden_dropout_prob": [-0.1, 1.5, "0", NAN, None],
    "attention_probs_dropout_prob": [2, "x", INF],
    "initializer_range": [-1, NAN, INF, "0.02"],
    "layer_norm_eps": [0, -1, NAN, INF, "abc", None, True, 0.0],
    "qkv_bias": ["false", "true", 2, None],
    "pooler_output_size": [0, -1, "24", 24.5, True],
    "pooler_act": ["sparkle", 3, None],
    "num_labels": [0, -1, "5", 5.0, 10**9, True],
    "id2label": [{"0": "a"}, {"a": "x", "b": "y", "c": "z", "d": "w", "e": "v"}, ["a", "b", "c", "d", "e"],
                 {str(i): "x" for i in range(6)}, {0: "a", 1: "b", 2: "c", 3: "d", 5: "e"},
                 {-1: "a", 0: "b", 1: "c", 2: "d", 3: "e"}, "labels"],
    "label2id": [["a"], {"a": "zero"}, "x"],
}
# values that contain the field's own value text a clear message shows
JSONABLE = (int, float, str, list, dict, bool, type(None))


def _config_call(field, value):
    def run(ctx):
        from minivivit import ViViTConfig

        return ViViTConfig(**{**TINY, field: value})

    return run


def _json_call(field, value):
    def run(ctx):
        from minivivit import ViViTConfig

        path = ctx.path("config.json")
        path.write_text(json.dumps(tiny_hf_config(**{field: value}), allow_nan=True))
        return ViViTConfig.from_json_file(path)

    return run


def _short(v) -> str:
    text = json.dumps(v, allow_nan=True) if isinstance(v, JSONABLE) else repr(v)
    return text if len(text) < 30 else text[:27] + "..."


def field_cases() -> list[Case]:
    out = []
    for field, values in BAD_VALUES.items():
        for v in values:
            # id2label with the wrong length names num_labels or id2label; pooler_act must be named as such
            match = "id2label|num_labels" if field in ("id2label",) else field
            out.append(Case(f"config/api/{field}={_short(v)}", _config_call(field, v), match=match,
                            note=f"ViViTConfig({field}={v!r})"))
            if field not in ("label2id",):
                out.append(Case(f"config/json/{field}={_short(v)}", _json_call(field, v),
                                match=rf"config\.json.*(?:{match})|(?:{match}).*config\.json",
                                note=f"config.json with {field}: {_short(v)}"))
    return out


def relation_cases() -> list[Case]:
    def make(changes):
        def run(ctx):
            from minivivit import ViViTConfig

            return ViViTConfig(**{**TINY, **changes})

        return run

    rel = {
        "heads-do-not-divide-hidden": ({"hidden_size": 24, "num_attention_heads": 5}, "num_attention_heads"),
        "tubelet-longer-than-clip": ({"num_frames": 1, "tubelet_size": [2, 16, 16]}, "tubelet"),
        "tubelet-wider-than-frame": ({"image_size": [32, 8], "tubelet_size": [2, 16, 16]}, "tubelet"),
        "65537-tokens": ({"image_size": [256, 256], "num_frames": 1, "tubelet_size": [1, 1, 1],
                          "hidden_size": 8, "num_attention_heads": 1, "intermediate_size": 8}, "65537"),
        "million-tokens": ({"image_size": 4096, "num_frames": 64, "tubelet_size": [1, 8, 8]}, "tokens"),
        "id2label-shorter-than-num_labels": ({"num_labels": 5, "id2label": {0: "a", 1: "b"}}, "id2label"),
        "id2label-longer-than-num_labels": ({"num_labels": 2, "id2label": {i: str(i) for i in range(5)}}, "id2label"),
        "label2id-outside-labels": ({"num_labels": 2, "id2label": {0: "a", 1: "b"}, "label2id": {"a": 7}}, "label2id"),
    }
    out = [Case(f"config/relation/{name}", make(ch), match=m) for name, (ch, m) in rel.items()]

    def replace_bad(ctx):
        from minivivit import ViViTConfig

        return ViViTConfig(**TINY).replace(hidden_size=25)

    out.append(Case("config/relation/replace-breaks-divisibility", replace_bad, match="num_attention_heads"))
    return out


def file_cases() -> list[Case]:
    def from_text(text: str | bytes, name="config.json"):
        def run(ctx):
            from minivivit import ViViTConfig

            path = ctx.path(name)
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
            return ViViTConfig.from_json_file(path)

        return run

    files = {
        "list": ("[]", "object"),
        "string": ('"vivit"', "object"),
        "number": ("42", "object"),
        "null": ("null", "object"),
        "broken-json": ('{"hidden_size": 24,, "num_frames": 4}', r"config\.json.*line 1.*column"),
        "broken-json-line-3": ('{\n  "hidden_size": 24,\n  "num_frames": 4,,\n}', r"config\.json.*line 3"),
        "empty": ("", r"config\.json.*(empty|line 1)"),
        "not-utf8": (b"\xff\xfe\x00{garbage\x81", r"config\.json"),
        "binary-garbage": (bytes(range(256)) * 4, r"config\.json"),
        "deeply-nested": ("[" * 100000 + "]" * 100000, r"config\.json.*(nest|deep)"),
        "model-type-vit": (json.dumps(tiny_hf_config(model_type="vit")), "model_type"),
        "model-type-number": (json.dumps(tiny_hf_config(model_type=5)), "model_type"),
        "nan-literal-eps": (json.dumps(tiny_hf_config()).replace('"layer_norm_eps": 1e-06', '"layer_norm_eps": NaN'),
                            "layer_norm_eps"),
        "infinity-literal": (json.dumps(tiny_hf_config()).replace('"layer_norm_eps": 1e-06',
                                                                  '"layer_norm_eps": Infinity'), "layer_norm_eps"),
    }
    out = [Case(f"config/file/{name}", from_text(t), match=m) for name, (t, m) in files.items()]

    def config_is_a_directory(ctx):
        from minivivit import ViViTConfig

        ctx.path("config.json").mkdir()
        return ViViTConfig.from_json_file(ctx.path("config.json"))

    out.append(Case("config/file/is-a-directory", config_is_a_directory, match="config.json"))

    # through a whole checkpoint: load(dir) and `minivivit convert`
    def load_dir(changes, cli_convert=False):
        def run(ctx):
            from files import hf_config

            import minivivit

            cfg = {**hf_config(), **changes}
            d = hf_dir(ctx.path("hf"), config=cfg)
            if cli_convert:
                return cli(ctx, "convert", d, ctx.no_output(ctx.path("out.safetensors")))
            return minivivit.load(d)

        return run

    for name, changes, m in [("num_attention_heads=0", {"num_attention_heads": 0}, "num_attention_heads"),
                             ("num_hidden_layers=0", {"num_hidden_layers": 0}, "num_hidden_layers"),
                             ("layer_norm_eps=-1", {"layer_norm_eps": -1}, "layer_norm_eps"),
                             ("image_size=str", {"image_size": "32"}, "image_size"),
                             ("id2label-short", {"id2label": {"0": "a"}}, "id2label|num_labels"),
                             ("pooler_act=sparkle", {"pooler_act": "sparkle"}, "pooler_act"),
                             ("qkv_bias=false-string", {"qkv_bias": "false"}, "qkv_bias")]:
        out.append(Case(f"config/load-hf-dir/{name}", load_dir(changes), match=m))
        out.append(Case(f"config/cli-convert/{name}", load_dir(changes, cli_convert=True), match=m))

    def hf_dir_config_list(ctx):
        import minivivit

        d = hf_dir(ctx.path("hf"), config="[]")
        return minivivit.load(d)

    out.append(Case("config/load-hf-dir/config-json-is-a-list", hf_dir_config_list, match="object"))

    # a minivivit file whose metadata holds a bad config
    def bad_metadata(meta_text):
        def run(ctx):
            import numpy as np
            from safetensors.numpy import save_file

            import minivivit

            path = ctx.path("m.safetensors")
            save_file({"embed.cls": np.zeros(24, np.float32)}, str(path),
                      metadata={"minivivit_config": meta_text, "format": "np"})
            return minivivit.load(path)

        return run

    for name, text, m in [("broken-json", '{"hidden_size": 24,', r"m\.safetensors"),
                          ("a-list", "[1, 2]", r"m\.safetensors.*object|object.*m\.safetensors"),
                          ("heads-zero", json.dumps(tiny_hf_config(num_attention_heads=0)), "num_attention_heads"),
                          ("layers-1e9", json.dumps(tiny_hf_config(num_hidden_layers=10**9)), "num_hidden_layers")]:
        out.append(Case(f"config/metadata/{name}", bad_metadata(text), match=m))
    return out


def cases() -> list[Case]:
    return field_cases() + relation_cases() + file_cases()
