"""Hostile and broken pytorch_model.bin files: pickles that run code (each must be refused before anything runs),
encrypted / oddly compressed / lying zip archives, tensor views outside their storage, float8 and bfloat16 from
torch.save. Their ids are in the weights group."""

from __future__ import annotations

import json

import numpy as np
from files import (
    hf_config,
    hf_dir,
    hf_state,
    to_bfloat16_bytes,
    torch_members,
    write_zip,
    zip_member,
)
from harness import Case, cli, equals
from pickles import Pickle, hostile_pickles, state_dict_pickle, torch_zip_with_pickle

REFUSED = r"refus|not allowed|nothing was executed|not a PyTorch|damaged"


def _load_dir(ctx, d):
    import minivivit

    return minivivit.load(d)


def hostile_cases() -> list[Case]:
    out = []
    names = sorted(hostile_pickles("/x"))
    for name in names:
        def in_zip(ctx, name=name):
            d = ctx.path("hf")
            d.mkdir()
            (d / "config.json").write_text(json.dumps(hf_config()))
            torch_zip_with_pickle(d / "pytorch_model.bin", hostile_pickles(str(ctx.marker))[name])
            return _load_dir(ctx, d)

        out.append(Case(f"weights/hostile-pickle/{name}", in_zip, match=REFUSED))

        def bare(ctx, name=name):  # the pickle as the whole file (no zip): the legacy torch format
            d = ctx.path("hf")
            d.mkdir()
            (d / "config.json").write_text(json.dumps(hf_config()))
            (d / "pytorch_model.bin").write_bytes(hostile_pickles(str(ctx.marker))[name])
            return _load_dir(ctx, d)

        out.append(Case(f"weights/hostile-bare-pickle/{name}", bare, match=r"pytorch_model\.bin"))

    for name in ("reduce-os.system", "stack_global-exec", "inst-os.system", "concatenated"):
        def via_cli(ctx, name=name):
            d = ctx.path("hf")
            d.mkdir()
            (d / "config.json").write_text(json.dumps(hf_config()))
            torch_zip_with_pickle(d / "pytorch_model.bin", hostile_pickles(str(ctx.marker))[name])
            return cli(ctx, "convert", d, ctx.no_output(ctx.path("out.safetensors")))

        out.append(Case(f"weights/hostile-cli-convert/{name}", via_cli, match=REFUSED))

    def hostile_inside_valid(ctx):  # a valid state dict followed (in the pickle) by a hostile value
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        state = hf_state()
        members = torch_members(state)
        pkl = members[0]["comp"]
        evil = Pickle(2).call("os", "system", f"touch {ctx.marker}").bytes()[2:]  # without PROTO
        members[0] = zip_member("archive/data.pkl", pkl[:-2] + b"X\x04\x00\x00\x00evil" + evil + b"u.")
        write_zip(d / "pytorch_model.bin", members)
        return _load_dir(ctx, d)

    out.append(Case("weights/hostile-pickle/after-valid-tensors", hostile_inside_valid, match=REFUSED))
    return out


def zip_cases() -> list[Case]:
    def bin_dir(ctx, members):
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        write_zip(d / "pytorch_model.bin", members)
        return d

    def altered(change):
        def run(ctx):
            members = torch_members(hf_state())
            change(members)
            return _load_dir(ctx, bin_dir(ctx, members))

        return run

    def encrypt(members):
        members[0]["flags"] |= 0x1

    def encrypt_data(members):
        members[2]["flags"] |= 0x1

    def method_99(members):
        members[2]["method"] = 99

    def method_bzip2(members):
        members[2]["method"] = 12

    def drop_pkl(members):
        del members[0]

    def two_pkl(members):
        members.append(zip_member("other/data.pkl", members[0]["comp"]))

    def byteorder_middle(members):
        members[1] = zip_member("archive/byteorder", b"middle")

    def drop_data(members):
        del members[2]

    def bad_crc(members):
        members[2]["crc"] ^= 0xFFFF

    def short_data(members):
        members[2] = zip_member(members[2]["name"].decode(), members[2]["comp"][:5])

    out = [Case(f"weights/zip/{name}", altered(fn), match=m) for name, fn, m in [
        ("encrypted-data.pkl", encrypt, r"pytorch_model\.bin.*(encrypt|password)"),
        ("encrypted-storage", encrypt_data, r"pytorch_model\.bin.*(encrypt|password)"),
        ("compression-method-99", method_99, r"pytorch_model\.bin.*compress"),
        ("compression-bzip2", method_bzip2, r"pytorch_model\.bin"),
        ("no-data.pkl", drop_pkl, r"pytorch_model\.bin"),
        ("two-data.pkl", two_pkl, r"pytorch_model\.bin"),
        ("byteorder-middle", byteorder_middle, r"pytorch_model\.bin|byteorder"),
        ("missing-storage", drop_data, r"pytorch_model\.bin"),
        ("bad-crc", bad_crc, r"pytorch_model\.bin"),
        ("storage-shorter-than-tensor", short_data, r"pytorch_model\.bin"),
    ]]

    def truncated(ctx):
        d = hf_dir(ctx.path("hf"), fmt="bin")
        p = d / "pytorch_model.bin"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return _load_dir(ctx, d)

    out.append(Case("weights/zip/truncated-half", truncated, match=r"pytorch_model\.bin"))

    def pickle_views(entries, name):
        def run(ctx):
            members = torch_members({}, pickle_bytes=state_dict_pickle(entries))
            members.append(zip_member("archive/data/0", np.zeros(16, np.float32).tobytes()))
            return _load_dir(ctx, bin_dir(ctx, members))

        return Case(f"weights/tensor-view/{name}", run, match=r"pytorch_model\.bin")

    key = "vivit.embeddings.cls_token"
    out += [
        pickle_views([(key, "FloatStorage", "0", 16, 0, (1, 1, 32), (32, 32, 1))], "view-past-storage-end"),
        pickle_views([(key, "FloatStorage", "0", 16, 20, (1, 1, 16), (16, 16, 1))], "offset-past-end"),
        pickle_views([(key, "FloatStorage", "0", 16, -4, (1, 1, 16), (16, 16, 1))], "negative-offset"),
        pickle_views([(key, "FloatStorage", "0", 16, 0, (1, 1, 16), (16, 16, -1))], "negative-stride"),
        pickle_views([(key, "FloatStorage", "0", 16, 0, (1, 1, 16), (16, 16))], "size-stride-lengths-differ"),
        pickle_views([(key, "ComplexFloatStorage", "0", 8, 0, (1, 1, 8), (8, 8, 1))], "complex-storage"),
        pickle_views([(key, "QInt8Storage", "0", 64, 0, (1, 1, 64), (64, 64, 1))], "quantized-storage"),
    ]

    def float8(ctx):  # what torch.save writes for a float8_e4m3fn tensor (torch 2.x): _rebuild_tensor_v3
        p = Pickle(2).call("collections", "OrderedDict").op(b"(").str_("vivit.embeddings.cls_token")
        p.global_("torch._utils", "_rebuild_tensor_v3").op(b"(")
        p.tuple_("storage", lambda q: q.global_("torch.storage", "UntypedStorage"), "0", "cpu", 16).op(b"Q")
        p.int_(0).tuple_(1, 1, 16).tuple_(16, 16, 1).op(b"\x89").call("collections", "OrderedDict")
        p.global_("torch", "float8_e4m3fn").op(b"t").op(b"R").op(b"u").stop()
        members = torch_members({}, pickle_bytes=p.bytes()) + [zip_member("archive/data/0", bytes(16))]
        return _load_dir(ctx, bin_dir(ctx, members))

    out.append(Case("weights/dtype/float8-torch-save", float8, match=r"float8(?!.*run code)"))

    def bf16_bin(ctx):
        state = {k: v for k, v in hf_state().items()}
        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(json.dumps(hf_config()))
        members = torch_members({}, pickle_bytes=state_dict_pickle(
            [(k, "BFloat16Storage", str(i), v.size, 0, v.shape, _strides(v.shape)) for i, (k, v) in enumerate(state.items())]))
        members += [zip_member(f"archive/data/{i}", to_bfloat16_bytes(v)) for i, v in enumerate(state.values())]
        write_zip(d / "pytorch_model.bin", members)
        model = _load_dir(ctx, d)
        return float(np.abs(model.params["embed"]["cls"]).max() > 0), model.dtype.name

    out.append(Case("weights/dtype/bfloat16-torch-save-loads", bf16_bin, expect="ok", check=equals((1.0, "float32"))))
    return out


def _strides(shape):
    from pickles import contiguous_strides

    return contiguous_strides(shape)



def cases() -> list[Case]:
    return hostile_cases() + zip_cases()
