"""Bad preprocessing options (HF preprocessor_config.json), from a dict, a file, a minivivit file's metadata and
the command line; and bad frames handed to preprocess."""

from __future__ import annotations

import json
import math

import numpy as np
from files import frames, gif, minivivit_file
from harness import Case, cli

NAN, INF = math.nan, math.inf

BAD_OPTIONS = {
    "image_mean": ["abc", [0.5, 0.5], [NAN, 0.5, 0.5], [INF, 0, 0], {"r": 1}, True],
    "image_std": [0, [0.5, 0.0, 0.5], -1, "x", [NAN, 1, 1], [1, 1]],
    "rescale_factor": ["x", NAN, INF, 0, -1, True],
    "size": [{"shortest_edge": 0}, {"shortest_edge": -5}, {"shortest_edge": "256"}, {"shortest_edge": 256.5},
             {"shortest_edge": True}, {"shortest_edge": 256, "height": 5}, {"height": 0, "width": 10},
             {"height": 10, "width": -1}, [], [1, 2, 3], "256", -3, 0],
    "crop_size": [0, -1, {"height": 224}, "224", {"height": 0, "width": 0}, {"height": 32.5, "width": 32}, [0, 5]],
    "do_center_crop": ["false", "true", 2, "no"],
    "do_resize": ["no", "false"],
    "do_rescale": ["yes", 3],
    "offset": ["true"],
    "do_normalize": ["false", 0.5],
    "resample": ["cubic", 9, 2.5, True, -1],
}


def _short(v) -> str:
    text = json.dumps(v, allow_nan=True)
    return text if len(text) < 30 else text[:27] + "..."


def _options_call(name, value):
    def run(ctx):
        import minivivit

        return minivivit.preprocess(frames(4, 32, 32), processor_config={name: value})

    return run


def _file_call(name, value):
    def run(ctx):
        import minivivit

        path = ctx.path("preprocessor_config.json")
        path.write_text(json.dumps({name: value}, allow_nan=True))
        return minivivit.preprocess(frames(4, 32, 32), processor_config=path)

    return run


def option_cases() -> list[Case]:
    out = []
    for name, values in BAD_OPTIONS.items():
        for v in values:
            if v is None:
                continue
            out.append(Case(f"preprocess/dict/{name}={_short(v)}", _options_call(name, v), match=name))
            out.append(Case(f"preprocess/file/{name}={_short(v)}", _file_call(name, v),
                            match=rf"preprocessor_config\.json.*{name}|{name}.*preprocessor_config\.json"))

    def kwarg(name, value, match=None):
        def run(ctx):
            import minivivit

            return minivivit.preprocess(frames(4, 32, 32), **{name: value})

        return Case(f"preprocess/kwarg/{name}={_short(value)}", run, match=match or name)

    out += [kwarg("do_center_crop", "false"), kwarg("image_std", 0), kwarg("size", {"shortest_edge": 0}),
            kwarg("crop_size", -1), kwarg("rescale_factor", NAN)]
    return out


def container_cases() -> list[Case]:
    def dict_of(config, match, name):
        def run(ctx):
            import minivivit

            return minivivit.preprocess(frames(4, 32, 32), processor_config=config)

        return Case(f"preprocess/config/{name}", run, match=match)

    out = [dict_of([1, 2], "processor_config|object|dict", "a-list"),
           dict_of(5, "processor_config", "an-int")]

    def file_text(text, name, match):
        def run(ctx):
            import minivivit

            path = ctx.path("preprocessor_config.json")
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
            return minivivit.preprocess(frames(4, 32, 32), processor_config=path)

        return Case(f"preprocess/config-file/{name}", run, match=match)

    out += [file_text("[1, 2]", "a-list", r"preprocessor_config\.json.*object"),
            file_text('{"size": ', "broken-json", r"preprocessor_config\.json.*line 1"),
            file_text(b"\xff\xfe\x81", "not-utf8", r"preprocessor_config\.json"),
            file_text("", "empty", r"preprocessor_config\.json"),
            file_text("[" * 100000, "deeply-nested", r"preprocessor_config\.json")]

    # the preprocessing stored in a minivivit file's metadata, used by `minivivit classify`
    def metadata(pp, name, match, raw_text=None):
        def run(ctx):
            import numpy as np  # noqa: F401
            from safetensors.numpy import load_file, save_file

            weights = minivivit_file(ctx.path("m.safetensors"), preprocessor_config={"do_resize": True})
            if raw_text is not None or pp is not None:
                from safetensors import safe_open

                with safe_open(str(weights), "np") as f:
                    meta = dict(f.metadata())
                meta["preprocessor_config"] = raw_text if raw_text is not None else json.dumps(pp, allow_nan=True)
                save_file(load_file(str(weights)), str(weights), metadata=meta)
            video = gif(ctx.path("clip.gif"), n=8)
            return cli(ctx, "classify", video, "--weights", weights, "--no-progress")

        return Case(f"preprocess/metadata/{name}", run, match=match)

    out += [metadata({"image_std": 0}, "image_std-zero", "image_std"),
            metadata({"do_center_crop": "false"}, "do_center_crop-string", "do_center_crop"),
            metadata(None, "broken-json", r"m\.safetensors", raw_text='{"size": '),
            metadata(None, "a-list", r"m\.safetensors|object", raw_text="[1]"),
            metadata({"size": {"shortest_edge": 40000}}, "shortest_edge-40000",
                     r"(GB|GiB).*MINIVIVIT_MAX_BYTES|MINIVIVIT_MAX_BYTES.*(GB|GiB)")]

    def cli_pp(pp_text, name, match):
        def run(ctx):
            video = gif(ctx.path("clip.gif"), n=8)
            path = ctx.path("pp.json")
            path.write_text(pp_text)
            return cli(ctx, "classify", video, "--preprocessor-config", path, "--no-progress")

        return Case(f"preprocess/cli/{name}", run, match=match)

    out += [cli_pp('{"rescale_factor": "x"}', "rescale_factor-string", "rescale_factor"),
            cli_pp('{"image_mean": [NaN, 0.5, 0.5]}', "image_mean-nan", "image_mean"),
            cli_pp("[]", "a-list", r"pp\.json"),
            cli_pp("{", "broken-json", r"pp\.json.*line 1")]
    return out


def frames_cases() -> list[Case]:
    def call(make, name, match, **kwargs):
        def run(ctx):
            import minivivit

            return minivivit.preprocess(make(), **kwargs)

        return Case(f"preprocess/frames/{name}", run, match=match)

    return [
        call(lambda: np.zeros((0, 4, 32, 32, 3), np.uint8), "empty-batch", "empty|batch|no clip"),
        call(list, "empty-list", "empty"),
        call(lambda: np.zeros((4, 0, 32, 3), np.uint8), "zero-height", "empty"),
        call(lambda: np.zeros((4, 32, 32, 3), object), "object-dtype", "dtype"),
        call(lambda: np.zeros((4, 32, 32, 3), np.uint16), "uint16", "uint8"),
        call(lambda: np.zeros((4, 32, 32, 3), np.complex64), "complex", "dtype"),
        call(lambda: np.full((4, 32, 32, 3), np.nan, np.float32), "nan-frames", "NaN"),
        call(lambda: [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], "ragged-frames", "shape"),
        call(lambda: "clip.mp4", "a-path-string", "frames|array"),
        call(lambda: np.zeros((4, 32, 32, 4), np.uint8), "rgba", "RGBA|channels"),
        call(lambda: np.zeros((4, 32, 32, 3), bool), "bool", "dtype|uint8"),
    ]


def cases() -> list[Case]:
    return option_cases() + container_cases() + frames_cases()
