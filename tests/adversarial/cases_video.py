"""Bad videos and images: wrong names, truncated and lying files, decompression bombs, special files, playlists,
bad sampling arguments; and the documented behaviours (the first bytes choose the reader, tubelet remainders)."""

from __future__ import annotations

import os

import numpy as np
from files import frames, gif, gif_claiming, mp4, png_claiming, tiny_model
from harness import Case, equals


def _read(path_fn, **kwargs):
    def run(ctx):
        import minivivit

        return minivivit.read_video(path_fn(ctx), **kwargs)

    return run


def _shape(path_fn, **kwargs):
    def run(ctx):
        import minivivit

        return minivivit.read_video(path_fn(ctx), **kwargs)[0].shape

    return run


def file_cases() -> list[Case]:
    out = []

    def truncated_gif(ctx):
        path = gif(ctx.path("clip.gif"), n=8)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
        return path

    out.append(Case("video/truncated-gif-read", _read(truncated_gif), match=r"clip\.gif.*(truncat|corrupt|decod)"))
    out.append(Case("video/truncated-gif-info", lambda ctx: __import__("minivivit").video_info(truncated_gif(ctx)),
                    match=r"clip\.gif"))
    out.append(Case("video/truncated-gif-frame-3", _read(truncated_gif, indices=[3]), match=r"clip\.gif"))

    def gif_header_only(ctx):
        path = gif(ctx.path("clip.gif"), n=8)
        path.write_bytes(path.read_bytes()[:20])
        return path

    out.append(Case("video/gif-cut-after-header", _read(gif_header_only), match=r"clip\.gif"))

    def truncated_mp4(ctx):
        path = mp4(ctx.path("clip.mp4"))
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        return path

    out.append(Case("video/truncated-mp4", _read(truncated_mp4), match=r"clip\.mp4"))

    def write(name, data):
        def make(ctx):
            p = ctx.path(name)
            p.write_bytes(data)
            return p

        return make

    out.append(Case("video/random-bytes-mp4", _read(write("clip.mp4", os.urandom(4096))), match=r"clip\.mp4"))
    out.append(Case("video/empty-file", _read(write("clip.mp4", b"")), match=r"clip\.mp4.*empty"))
    out.append(Case("video/text-file-mp4", _read(write("clip.mp4", b"hello, this is not a video\n" * 20)),
                    match=r"clip\.mp4"))
    out.append(Case("video/random-bytes-gif", _read(write("clip.gif", os.urandom(4096))), match=r"clip\.gif"))
    out.append(Case("video/png-bomb-100000x100000", _read(lambda c: png_claiming(c.path("big.png"), 100000, 100000)),
                    match=r"big\.png"))
    out.append(Case("video/gif-bomb-65535x65535", _read(lambda c: gif_claiming(c.path("big.gif"), 65535, 65535)),
                    match=r"big\.gif"))
    out.append(Case("video/png-bomb-info", lambda c: __import__("minivivit").video_info(
        png_claiming(c.path("big.png"), 100000, 100000)), match=r"big\.png"))
    out.append(Case("video/png-bomb-in-a-frame-folder", _read(lambda c: _folder_with_bomb(c)), match=r"big\.png"))

    # the first bytes choose the reader (docs/video.md)
    out.append(Case("video/mp4-named-gif", _shape(lambda c: _renamed(mp4(c.path("clip.mp4")), "clip.gif")),
                    expect="ok", check=equals((8, 32, 32, 3))))
    out.append(Case("video/gif-named-mp4", _shape(lambda c: _renamed(gif(c.path("clip.gif")), "clip.mp4")),
                    expect="ok", check=equals((8, 32, 32, 3))))
    out.append(Case("video/mp4-named-png", _shape(lambda c: _renamed(mp4(c.path("clip.mp4")), "frame.png")),
                    expect="ok", check=equals((8, 32, 32, 3))))

    # special files and playlists
    def fifo(ctx):
        path = ctx.path("clip.mp4")
        os.mkfifo(path)
        return path

    out.append(Case("video/fifo-named-mp4", _read(fifo), match=r"clip\.mp4", timeout=20))

    def devzero(ctx):
        path = ctx.path("clip.mp4")
        path.symlink_to("/dev/zero")
        return path

    out.append(Case("video/dev-zero-named-mp4", _read(devzero), match=r"clip\.mp4", timeout=20))

    def concat(ctx):
        mp4(ctx.path("other.mp4"))
        path = ctx.path("clip.mp4")
        path.write_text("ffconcat version 1.0\nfile other.mp4\nfile other.mp4\n")
        return path

    out.append(Case("video/ffconcat-list-named-mp4", _read(concat), match=r"clip\.mp4"))

    def hls(ctx):
        mp4(ctx.path("other.mp4"))
        path = ctx.path("clip.mp4")
        path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{ctx.path('other.mp4')}\n"
                        "#EXT-X-ENDLIST\n")
        return path

    out.append(Case("video/hls-playlist-named-mp4", _read(hls), match=r"clip\.mp4"))
    out.append(Case("video/missing-file", _read(lambda c: c.path("nope.mp4")), match=r"nope\.mp4"))
    out.append(Case("video/path-is-None", _read(lambda c: None), match="path|str"))
    return out


def _renamed(path, name):
    new = path.with_name(name)
    path.rename(new)
    return new


def _folder_with_bomb(ctx):
    d = ctx.path("frames")
    d.mkdir()
    from PIL import Image

    Image.fromarray(frames(1, 32, 32)[0]).save(d / "a.png")
    png_claiming(d / "big.png", 100000, 100000)
    return d


def folder_cases() -> list[Case]:
    from PIL import Image

    def folder(kind):
        def make(ctx):
            d = ctx.path("frames")
            d.mkdir()
            for i, f in enumerate(frames(4, 32, 32)):
                Image.fromarray(f).save(d / f"f{i}.png")
            if kind == "mixed-sizes":
                Image.fromarray(frames(1, 16, 16)[0]).save(d / "f9.png")
            elif kind == "corrupt-frame":
                (d / "f9.png").write_bytes((d / "f0.png").read_bytes()[:60])
            elif kind == "zero-byte-frame":
                (d / "f9.png").write_bytes(b"")
            elif kind == "text-as-png":
                (d / "f9.png").write_text("not a png")
            elif kind == "empty":
                for p in d.iterdir():
                    p.unlink()
            return d

        return make

    return [Case(f"video/folder-{k}", _read(folder(k)), match=m)
            for k, m in [("mixed-sizes", "f9.png"), ("corrupt-frame", "f9.png"), ("zero-byte-frame", "f9.png"),
                         ("text-as-png", "f9.png"), ("empty", "frames")]]


def sampling_cases() -> list[Case]:
    clip = lambda c: gif(c.path("clip.gif"), n=8)
    bad = {
        "seed=-1": dict(num_frames=4, sampling="hf", seed=-1),
        "seed=2**40": dict(num_frames=4, sampling="hf", seed=2**40),
        "seed=1.5": dict(num_frames=4, sampling="hf", seed=1.5),
        "num_frames=0": dict(num_frames=0),
        "num_frames=-1": dict(num_frames=-1),
        "num_frames=2.5": dict(num_frames=2.5),
        "num_frames=True": dict(num_frames=True),
        "num_frames=str": dict(num_frames="8"),
        "stride=0": dict(num_frames=4, sampling="scenic", stride=0),
        "stride=1e18": dict(num_frames=4, sampling="scenic", stride=10**18),
        "frame_sample_rate=1e18": dict(num_frames=4, sampling="hf", frame_sample_rate=10**18),
        "num_clips=0": dict(num_frames=4, sampling="scenic", num_clips=0),
        "sampling=random": dict(num_frames=4, sampling="random"),
        "indices-ragged": dict(indices=[[0, 1], [2]]),
        "indices-float": dict(indices=[0.5, 1.5]),
        "indices-negative": dict(indices=[-1]),
        "indices-huge": dict(indices=[10**20]),
        "indices-past-the-end": dict(indices=[8]),
        "indices-empty": dict(indices=[]),
        "indices-bool": dict(indices=[True, False]),
        "indices-and-num_frames": dict(indices=[0], num_frames=4),
    }
    matches = {"stride=1e18": "stride", "frame_sample_rate=1e18": "frame_sample_rate", "sampling=random": "sampling"}
    out = []
    for name, kwargs in bad.items():
        key = name.split("=")[0].split("-")[0]
        out.append(Case(f"video/sampling-{name}", _read(clip, **kwargs), match=matches.get(name, key)))
    return out


def remainder_cases() -> list[Case]:
    """Frames / pixels that do not fill a tubelet: HF's Conv3d drops them; minivivit does too, and warns once."""

    def run_15_frames(ctx):
        model = tiny_model(num_frames=15, image_size=32, tubelet_size=[2, 16, 16])
        x = np.zeros((1, 15, 3, 32, 32), np.float32)
        model(x)
        model(x)  # the second call must not warn again
        return model(x).last_hidden_state.shape

    def once_saying(pattern, shape):
        def check(result, ctx):
            assert result == shape, result
            said = ctx.warned(pattern)
            assert len(said) == 1, f"expected one warning matching {pattern!r}; got {[str(w.message) for w in ctx.warnings]}"

        return check

    def run_67_px(ctx):
        model = tiny_model(num_frames=4, image_size=67, tubelet_size=[2, 8, 8])
        x = np.zeros((1, 4, 3, 67, 67), np.float32)
        model(x)
        return model(x).last_hidden_state.shape

    def run_interpolated(ctx):
        model = tiny_model()
        x = np.zeros((1, 5, 3, 40, 40), np.float32)  # 1 frame and 8 rows / 8 columns left over
        model(x, interpolate_pos_encoding=True)
        return model(x, interpolate_pos_encoding=True).last_hidden_state.shape

    return [
        Case("video/tubelet-remainder-15-frames-t2", run_15_frames, expect="ok", isolated=True,
             check=once_saying(r"1 frame", (1, 7 * 2 * 2 + 1, 24))),
        Case("video/tubelet-remainder-67px-p8", run_67_px, expect="ok", isolated=True,
             check=once_saying(r"3 (pixel|row|column)", (1, 2 * 8 * 8 + 1, 24))),
        Case("video/tubelet-remainder-interpolated-clip", run_interpolated, expect="ok", isolated=True,
             check=once_saying(r"1 frame", (1, 2 * 2 * 2 + 1, 24))),
    ]


def cases() -> list[Case]:
    return file_cases() + folder_cases() + sampling_cases() + remainder_cases()
