"""Bad weights: unsupported dtypes, non-finite values, shard indexes that loop or disagree, minivivit files with the
wrong contents. (Hostile pickles and broken zip archives: cases_hostile.py.)"""

from __future__ import annotations

import json

import numpy as np
from files import (
    copy_fixture,
    hf_config,
    hf_dir,
    hf_state,
    minivivit_file,
    safetensors_raw,
    to_bfloat16_bytes,
)
from harness import Case, cli, equals
from pickles import Pickle, torch_zip_with_pickle

REFUSED = r"refus|not allowed|nothing was executed|not a PyTorch|damaged"


def _load_dir(ctx, d):
    import minivivit

    return minivivit.load(d)


def dtype_cases() -> list[Case]:
    def hf_with(change, fmt="safetensors"):
        def run(ctx):
            state = hf_state()
            change(state)
            return _load_dir(ctx, hf_dir(ctx.path("hf"), state=state, fmt=fmt))

        return run

    def nan(state):
        state["vivit.encoder.layer.1.intermediate.dense.weight"][3, 2] = np.nan

    def inf(state):
        state["classifier.bias"][0] = np.inf

    def as_int(state):
        state["vivit.layernorm.weight"] = np.ones(16, np.int64)

    def as_bool(state):
        state["vivit.layernorm.bias"] = np.zeros(16, bool)

    def as_f16(state):
        for k in state:
            state[k] = state[k].astype(np.float16)

    out = [
        Case("weights/values/nan-in-hf-safetensors", hf_with(nan), match=r"layer\.1\.intermediate\.dense\.weight.*NaN"),
        Case("weights/values/inf-in-hf-safetensors", hf_with(inf), match=r"classifier\.bias.*inf"),
        Case("weights/values/nan-in-hf-bin", hf_with(nan, "bin"), match=r"intermediate\.dense\.weight.*NaN"),
        Case("weights/dtype/int64-tensor", hf_with(as_int), match=r"layernorm\.weight.*int64"),
        Case("weights/dtype/bool-tensor", hf_with(as_bool), match=r"layernorm\.bias.*bool"),
        Case("weights/dtype/float16-loads", lambda c: hf_with(as_f16)(c).dtype.name, expect="ok",
             check=equals("float32")),
    ]

    def bf16_safetensors(ctx):
        state = hf_state()
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        safetensors_raw(d / "model.safetensors", {k: ("BF16", v.shape, to_bfloat16_bytes(v)) for k, v in state.items()},
                        metadata={"format": "pt"})
        model = _load_dir(ctx, d)
        ref = state["vivit.embeddings.cls_token"].reshape(-1)
        close = bool(np.allclose(model.params["embed"]["cls"], ref, rtol=1e-2, atol=1e-2))
        return close, model.dtype.name

    def said_bf16(result, ctx):
        assert result == (True, "float32"), result
        assert ctx.warned("bfloat16"), "no warning says the bfloat16 tensors were upcast"

    out.append(Case("weights/dtype/bfloat16-safetensors-loads", bf16_safetensors, expect="ok", check=said_bf16))

    def f8_safetensors(ctx):
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        safetensors_raw(d / "model.safetensors", {k: ("F8_E4M3", v.shape, bytes(v.size)) for k, v in hf_state().items()})
        return _load_dir(ctx, d)

    out.append(Case("weights/dtype/float8-safetensors", f8_safetensors, match=r"F8_E4M3|float8"))

    def nan_minivivit(ctx):
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        import minivivit

        path = minivivit_file(ctx.path("m.safetensors"))
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata())
        flat = load_file(str(path))
        flat["blocks.1.attn.v.w"][0, 0] = np.nan
        save_file(flat, str(path), metadata=meta)
        return minivivit.load(path)

    out.append(Case("weights/values/nan-in-minivivit-file", nan_minivivit, match=r"blocks\.1\.attn\.v\.w.*NaN"))

    def nan_cli_classify(ctx):
        from files import gif
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        path = minivivit_file(ctx.path("m.safetensors"))
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata())
        flat = load_file(str(path))
        flat["head.w"][:] = np.nan
        save_file(flat, str(path), metadata=meta)
        return cli(ctx, "classify", gif(ctx.path("clip.gif")), "--weights", path, "--no-progress")

    out.append(Case("weights/values/nan-head-cli-classify", nan_cli_classify, match=r"head\.w.*NaN"))

    def nan_allowed(ctx):
        import os

        os.environ["MINIVIVIT_ALLOW_NONFINITE_WEIGHTS"] = "1"
        try:
            state = hf_state()
            nan(state)
            model = _load_dir(ctx, hf_dir(ctx.path("hf"), state=state))
            return bool(np.isnan(model.params["blocks"][1]["mlp"]["fc1"]["w"]).any())
        finally:
            del os.environ["MINIVIVIT_ALLOW_NONFINITE_WEIGHTS"]

    def warned_nan(result, ctx):
        assert result is True, result
        assert ctx.warned("NaN"), "loading non-finite weights with the override must still warn"

    out.append(Case("weights/values/nan-allowed-by-override-warns", nan_allowed, expect="ok", check=warned_nan))
    return out


def shard_cases() -> list[Case]:
    from safetensors.numpy import save_file

    def sharded(ctx, index, shards: dict[str, dict]):
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        for name, tensors in shards.items():
            save_file(tensors, str(d / name))
        (d / "model.safetensors.index.json").write_text(index if isinstance(index, str) else json.dumps(index))
        return d

    def split_state():
        state = hf_state()
        keys = sorted(state)
        half = len(keys) // 2
        return state, {k: state[k] for k in keys[:half]}, {k: state[k] for k in keys[half:]}

    def honest(ctx):
        state, a, b = split_state()
        wm = {**{k: "a.safetensors" for k in a}, **{k: "b.safetensors" for k in b}}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {"a.safetensors": a, "b.safetensors": b})).config.hidden_size

    def self_index(ctx):
        state, a, b = split_state()
        wm = {k: "model.safetensors.index.json" for k in state}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {}))

    def outside(ctx):
        state, a, b = split_state()
        save_file(b, str(ctx.path("secret.safetensors")))
        wm = {**{k: "a.safetensors" for k in a}, **{k: "../secret.safetensors" for k in b}}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {"a.safetensors": a}))

    def dup_same(ctx):  # a tensor in both shards, same values; the index says b
        state, a, b = split_state()
        k = sorted(b)[0]
        a2 = {**a, k: b[k]}
        wm = {**{x: "a.safetensors" for x in a}, **{x: "b.safetensors" for x in b}}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {"a.safetensors": a2, "b.safetensors": b})).config.hidden_size

    def dup_conflict(ctx):  # a tensor in both shards with different values
        state, a, b = split_state()
        k = sorted(b)[0]
        a2 = {**a, k: b[k] + 1}
        wm = {**{x: "a.safetensors" for x in a}, **{x: "b.safetensors" for x in b}}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {"a.safetensors": a2, "b.safetensors": b}))

    def index_says_other_shard(ctx):
        state, a, b = split_state()
        k = sorted(b)[0]
        wm = {**{x: "a.safetensors" for x in a}, **{x: "b.safetensors" for x in b}, k: "a.safetensors"}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {"a.safetensors": a, "b.safetensors": b}))

    def missing_shard(ctx):
        state, a, b = split_state()
        wm = {**{k: "a.safetensors" for k in a}, **{k: "b.safetensors" for k in b}}
        return _load_dir(ctx, sharded(ctx, {"weight_map": wm}, {"a.safetensors": a}))

    def weight_map_list(ctx):
        return _load_dir(ctx, sharded(ctx, {"weight_map": ["a.safetensors"]}, {}))

    def no_weight_map(ctx):
        return _load_dir(ctx, sharded(ctx, {"metadata": {}}, {}))

    def broken_index(ctx):
        return _load_dir(ctx, sharded(ctx, '{"weight_map": {', {}))

    def bin_index_pointing_to_index(ctx):
        state, a, b = split_state()
        d = sharded(ctx, {"weight_map": {k: "model.safetensors.index.json" for k in state}}, {})
        (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {k: "model.safetensors.index.json"
                                                                                   for k in state}}))
        return _load_dir(ctx, d)

    return [
        Case("weights/shards/honest-two-shards", honest, expect="ok", check=equals(16)),
        Case("weights/shards/index-names-itself", self_index, match=r"index\.json"),
        Case("weights/shards/index-points-to-another-index", bin_index_pointing_to_index, match=r"index\.json"),
        Case("weights/shards/shard-outside-the-folder", outside, match=r"secret\.safetensors|\.\./"),
        Case("weights/shards/same-tensor-in-two-shards-index-decides", dup_same, expect="ok", check=equals(16)),
        Case("weights/shards/same-tensor-two-shards-different-values", dup_conflict, match=r"a\.safetensors.*b\.safetensors|b\.safetensors.*a\.safetensors"),
        Case("weights/shards/index-names-the-wrong-shard", index_says_other_shard, match=r"a\.safetensors"),
        Case("weights/shards/missing-shard-file", missing_shard, match=r"b\.safetensors"),
        Case("weights/shards/weight_map-is-a-list", weight_map_list, match=r"weight_map"),
        Case("weights/shards/no-weight_map", no_weight_map, match=r"weight_map"),
        Case("weights/shards/broken-index-json", broken_index, match=r"index\.json"),
    ]


def file_cases() -> list[Case]:
    def st(name, data: bytes, match):
        def run(ctx):
            d = ctx.path("hf")
            d.mkdir()
            (d / "config.json").write_text(json.dumps(hf_config()))
            (d / "model.safetensors").write_bytes(data if not callable(data) else data())
            return _load_dir(ctx, d)

        return Case(f"weights/safetensors/{name}", run, match=match)

    def fixture_bytes():
        from files import HF_FIXTURE

        return (HF_FIXTURE / "model.safetensors").read_bytes()

    out = [
        st("random-bytes", bytes(range(256)) * 8, r"model\.safetensors"),
        st("empty", b"", r"model\.safetensors"),
        st("header-length-huge", b"\xff" * 8 + b"{}", r"model\.safetensors"),
        st("truncated", lambda: fixture_bytes()[:5000], r"model\.safetensors"),
        st("header-not-json", b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"not json at all!", r"model\.safetensors"),
    ]

    def mv(change, match, name):
        def run(ctx):
            from safetensors import safe_open
            from safetensors.numpy import load_file, save_file

            import minivivit

            path = minivivit_file(ctx.path("m.safetensors"))
            with safe_open(str(path), "np") as f:
                meta = dict(f.metadata())
            flat = load_file(str(path))
            change(flat, meta)
            save_file(flat, str(path), metadata=meta)
            return minivivit.load(path)

        return Case(f"weights/minivivit-file/{name}", run, match=match)

    out += [
        mv(lambda f, m: f.pop("blocks.0.ln1.g"), r"blocks\.0\.ln1\.g", "missing-key"),
        mv(lambda f, m: f.update({"blocks.9.extra": np.zeros(3, np.float32)}), r"blocks\.9\.extra", "unknown-key"),
        mv(lambda f, m: f.update({"embed.cls": np.zeros(7, np.float32)}), r"embed\.cls.*\(7,\)", "wrong-shape"),
        mv(lambda f, m: f.update({"head.w": f["head.w"].astype(np.int32)}), r"head\.w.*int32", "int-tensor"),
    ]

    def bin_named_safetensors(ctx):
        import minivivit

        d = hf_dir(ctx.path("hf"), fmt="bin")
        target = d / "model.safetensors"
        (d / "pytorch_model.bin").rename(target)
        return minivivit.load(target)

    out.append(Case("weights/bin-renamed-to-safetensors", bin_named_safetensors, match=r"model\.safetensors"))

    def unknown_suffix(ctx):
        import minivivit

        d = copy_fixture(ctx.path("hf"))
        return minivivit.load(d / "config.json")

    out.append(Case("weights/config-json-as-weights", unknown_suffix, match=r"config\.json"))

    def not_zip_bin(ctx):
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        (d / "pytorch_model.bin").write_bytes(b"\x80\x02" + b"garbage" * 10)
        return _load_dir(ctx, d)

    out.append(Case("weights/legacy-non-zip-bin", not_zip_bin, match=r"pytorch_model\.bin"))

    def wrong_labels(ctx):
        cfg = {**hf_config(), "id2label": {str(i): str(i) for i in range(7)}}
        cfg.pop("label2id")
        return _load_dir(ctx, hf_dir(ctx.path("hf"), config=cfg))

    out.append(Case("weights/config-labels-do-not-fit-classifier", wrong_labels, match=r"classifier"))

    def nested_training_checkpoint(ctx):  # {"state_dict": {...}, "epoch": 3}: a training checkpoint, not a state dict
        from pickles import MARK, SETITEMS

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        p = Pickle(2).call("collections", "OrderedDict").op(MARK).str_("state_dict")
        p.call("collections", "OrderedDict").str_("epoch").int_(3).op(SETITEMS).stop()
        torch_zip_with_pickle(d / "pytorch_model.bin", p.bytes())
        return _load_dir(ctx, d)

    out.append(Case("weights/bin-is-a-training-checkpoint", nested_training_checkpoint, match=r"state_dict"))

    def load_as_int(ctx):
        import minivivit

        return minivivit.load(dtype=np.int8)

    out.append(Case("weights/load-dtype-int8", load_as_int, match="float"))
    return out


def cases() -> list[Case]:
    return dtype_cases() + shard_cases() + file_cases()
