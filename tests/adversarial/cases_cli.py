"""Bad command-line values: every numeric option of every command, out of range, NaN, wrong type; missing inputs."""

from __future__ import annotations

import json

from files import copy_fixture, gif, minivivit_file
from harness import Case, cli


def _video(ctx):
    return gif(ctx.path("clip.gif"), n=16, h=64, w=64)


def attention_cases() -> list[Case]:
    def att(*argv):
        def run(ctx):
            return cli(ctx, "attention", _video(ctx), "--out", ctx.no_output(ctx.path("a.gif")), *argv)

        return run

    values = {
        "--fps": ["0", "-4", "1e-9", "nan", "inf", "1e9"],
        "--start-layer": ["99", "-99"],
        "--layer": ["99", "-99"],
        "--head": ["99", "-99", "foo", "1.5"],
        "--alpha": ["nan", "-1", "2", "inf"],
        "--discard": ["1.5", "-0.1", "nan", "1"],
    }
    out = []
    for option, vals in values.items():
        for v in vals:
            name = option.strip("-")
            out.append(Case(f"cli/attention{option}={v}", att(option, v), match=rf"{option}|{name.replace('-', '_')}"))
    out.append(Case("cli/attention--start-layer-after---layer", att("--start-layer", "2", "--layer", "1"),
                    match="start-layer"))
    out.append(Case("cli/attention--head-with-raw-method-99", att("--method", "raw", "--head", "99"), match="head"))

    def too_big(ctx):  # a model whose one full attention map exceeds the rollout's memory limit
        weights = minivivit_file(ctx.path("big.safetensors"), image_size=1024, num_attention_heads=12, hidden_size=24)
        return cli(ctx, "attention", _video(ctx), "--out", ctx.no_output(ctx.path("a.gif")), "--weights", weights)

    out.append(Case("cli/attention-memory-error-names-the-real-override", too_big,
                    match=r"^(?!.*CLI: --force).*MINIVIVIT_MAX_BYTES"))
    return out


def bench_cases() -> list[Case]:
    def bench(*argv):
        def run(ctx):
            return cli(ctx, "bench", "--backends", "numpy", "--repeats", "1", "--peak-seconds", "0.01",
                       "--no-capture", *argv)

        return run

    values = {"--layers": ["-1", "0", "100000"], "--frames": ["0", "-2"], "--image-size": ["0", "-224", "100000"],
              "--repeats": ["0"], "--threads": ["0"], "--peak-seconds": ["nan", "-1"], "--seed": ["-1"]}
    out = []
    for option, vals in values.items():
        for v in vals:
            match = {"--layers": r"--layers|num_hidden_layers", "--frames": r"--frames|num_frames",
                     "--image-size": r"--image-size|image_size"}.get(option, option)
            out.append(Case(f"cli/bench{option}={v}", bench(option, v), match=match, timeout=60))
    out.append(Case("cli/bench--backends=torch", bench("--backends", "torch"), match="backends"))
    return out


def classify_cases() -> list[Case]:
    def cls(*argv, video=True):
        def run(ctx):
            args = [_video(ctx)] if video else []
            return cli(ctx, "classify", *args, "--no-progress", *argv)

        return run

    bad = {
        "--views=0x1": ("--views", "0x1"), "--views=1x0": ("--views", "1x0"), "--views=abc": ("--views", "abc"),
        "--views=-1x1": ("--views", "-1x1"), "--views=1x1x1": ("--views", "1x1x1"), "--views=2.5x1": ("--views", "2.5x1"),
        "--top-k=0": ("--top-k", "0"), "--top-k=-3": ("--top-k", "-3"), "--stride=0": ("--stride", "0"),
        "--stride=-1": ("--stride", "-1"), "--frame-sample-rate=0": ("--sampling", "hf", "--frame-sample-rate", "0"),
        "--seed=-1": ("--sampling", "hf", "--seed", "-1"), "--sampling=hf-with-2-clips": ("--sampling", "hf",
                                                                                       "--views", "2x1"),
        "--backend=torch": ("--backend", "torch"), "--preset=imagenet": ("--preset", "imagenet"),
        "--weights-missing": ("--weights", "nope.safetensors"),
        "--preprocessor-config-missing": ("--preprocessor-config", "nope.json"),
    }
    matches = {"--weights-missing": "nope", "--preprocessor-config-missing": "nope", "--sampling=hf-with-2-clips":
               "sampling|scenic", "--backend=torch": "backend", "--preset=imagenet": "preset",
               "--frame-sample-rate=0": "frame.sample.rate", "--seed=-1": "seed", "--stride=-1": "stride",
               "--stride=0": "stride"}
    out = [Case(f"cli/classify{k}", cls(*v), match=matches.get(k, k.split("=")[0].strip("-").replace("-", "."))) for k, v in bad.items()]

    def missing_video(ctx):
        return cli(ctx, "classify", ctx.path("nope.mp4"))

    def dir_no_frames(ctx):
        ctx.path("empty").mkdir()
        return cli(ctx, "classify", ctx.path("empty"))

    def base_model(ctx):  # weights without a classification head
        import shutil

        from files import HF_FIXTURE

        d = ctx.path("base")
        shutil.copytree(HF_FIXTURE.parent / "base-pooler-gelu_fast-t1x8x8-noqkvbias", d)
        return cli(ctx, "classify", _video(ctx), "--weights", d, "--no-progress")

    out += [Case("cli/classify-missing-video", missing_video, match="nope.mp4"),
            Case("cli/classify-empty-folder", dir_no_frames, match="empty"),
            Case("cli/classify-base-model-without-head", base_model, match="head")]
    return out


def misc_cases() -> list[Case]:
    def demo(*argv):
        def run(ctx):
            return cli(ctx, "demo", *argv)

        return run

    out = [Case("cli/demo--seed=-1", demo("--seed", "-1"), match="seed"),
           Case("cli/demo--top-k=0", demo("--top-k", "0"), match="top-k"),
           Case("cli/demo--out=png", demo("--out", "x.png"), match="gif"),
           Case("cli/no-command", lambda ctx: cli(ctx), match="usage|COMMAND"),
           Case("cli/unknown-command", lambda ctx: cli(ctx, "train"), match="invalid choice|train")]

    def convert_missing(ctx):
        return cli(ctx, "convert", ctx.path("nope"), ctx.no_output(ctx.path("out.safetensors")))

    def convert_bad_config(ctx):
        src = copy_fixture(ctx.path("hf"))
        cfg = ctx.path("c.json")
        cfg.write_text("{oops")
        return cli(ctx, "convert", src, ctx.no_output(ctx.path("out.safetensors")), "--config", cfg)

    def convert_config_missing(ctx):
        src = copy_fixture(ctx.path("hf"))
        return cli(ctx, "convert", src, ctx.no_output(ctx.path("out.safetensors")), "--config", ctx.path("none.json"))

    def convert_pp_broken(ctx):
        src = copy_fixture(ctx.path("hf"))
        (src / "preprocessor_config.json").write_text("{broken")
        return cli(ctx, "convert", src, ctx.no_output(ctx.path("out.safetensors")))

    def convert_pp_list(ctx):
        src = copy_fixture(ctx.path("hf"))
        (src / "preprocessor_config.json").write_text(json.dumps([1, 2]))
        return cli(ctx, "convert", src, ctx.no_output(ctx.path("out.safetensors")))

    def debug_missing(ctx):
        return cli(ctx, "debug", "compare", "--hf", ctx.path("nope"))

    out += [Case("cli/convert-missing-source", convert_missing, match="nope"),
            Case("cli/convert-broken---config", convert_bad_config, match=r"c\.json.*line 1"),
            Case("cli/convert-missing---config", convert_config_missing, match=r"none\.json"),
            Case("cli/convert-broken-preprocessor_config", convert_pp_broken, match=r"preprocessor_config\.json"),
            Case("cli/convert-preprocessor_config-a-list", convert_pp_list, match=r"preprocessor_config\.json"),
            Case("cli/debug-compare-missing-hf-dir", debug_missing, match="nope")]
    return out


def cases() -> list[Case]:
    return attention_cases() + bench_cases() + classify_cases() + misc_cases()
