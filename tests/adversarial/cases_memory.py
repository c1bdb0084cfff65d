"""Requests whose memory would be far above any sane limit: each must be refused BEFORE allocating, with the
size, the limit and the override ($MINIVIVIT_MAX_BYTES). The worker's RLIMIT_AS (3 GiB) turns a missing
guard into a MemoryError traceback (RAW) instead of an OOM kill of the machine."""

from __future__ import annotations

import numpy as np
from files import (
    frames,
    gif,
    hf_config,
    hf_dir,
    hf_state,
    npy_claiming,
    tiny_model,
    torch_members,
    write_zip,
    zeros_deflated,
    zip_member,
)
from harness import Case, cli, equals

GUARD = r"(GB|GiB|TB|MB).*MINIVIVIT_MAX_BYTES|MINIVIVIT_MAX_BYTES.*(GB|GiB|TB|MB)"  # size + the override


def _demo():
    import minivivit

    return minivivit.load()


def cases() -> list[Case]:
    out = []

    def views_api(ctx):
        import minivivit

        return minivivit.classify(_demo(), gif(ctx.path("clip.gif"), n=16, h=64, w=64), views=(100000, 1))

    out.append(Case("memory/classify-views-100000x1", views_api, match=GUARD))

    def views_cli(ctx):
        return cli(ctx, "classify", gif(ctx.path("clip.gif"), n=16, h=64, w=64), "--views", "100000x1",
                   "--no-progress")

    out.append(Case("memory/cli-classify-views-100000x1", views_cli, match=GUARD))

    def views_frames(ctx):
        import minivivit

        return minivivit.classify(_demo(), frames(16, 64, 64), views=(100000, 1))

    out.append(Case("memory/classify-array-views-100000x1", views_frames, match=GUARD))

    def broadcast_batch(ctx):
        model = tiny_model()
        x = np.zeros((1, 4, 3, 32, 32), np.float32)
        return model(np.broadcast_to(x, (100000, 4, 3, 32, 32)))

    out.append(Case("memory/batch-broadcast-to-100000", broadcast_batch, match=GUARD))

    def broadcast_demo(ctx):
        model = _demo()
        x = np.zeros((1, 16, 3, 64, 64), np.float32)
        return model(np.broadcast_to(x, (100000, 16, 3, 64, 64)), backend="numpy")

    out.append(Case("memory/demo-batch-broadcast-to-100000", broadcast_demo, match=GUARD))

    def huge_frames(ctx):
        model = tiny_model()
        x = np.broadcast_to(np.zeros((1, 4, 3, 1, 1), np.float32), (1, 4, 3, 4096, 4096))
        return model(x, interpolate_pos_encoding=True)

    out.append(Case("memory/4096x4096-frames-interpolate_pos_encoding", huge_frames, match=GUARD))

    def huge_frames_capture(ctx):
        from minivivit import explain

        x = np.broadcast_to(np.zeros((1, 4, 3, 1, 1), np.float32), (1, 4, 3, 2048, 2048))
        return explain.capture(tiny_model(), x, output_attentions="cls", interpolate_pos_encoding=True)

    out.append(Case("memory/capture-cls-2048x2048-frames", huge_frames_capture, match=GUARD))

    def init_huge(ctx):
        import minivivit
        from minivivit.weights import init_params

        config = minivivit.ViViTConfig(hidden_size=16384, intermediate_size=65536, num_attention_heads=16,
                                       num_hidden_layers=64)
        return init_params(config)

    out.append(Case("memory/init_params-of-a-3-TB-config", init_huge, match=GUARD))

    def read_1e8(ctx):
        import minivivit

        return minivivit.read_video(gif(ctx.path("clip.gif")), num_frames=10**8)

    out.append(Case("memory/read_video-num_frames=1e8", read_1e8, match=GUARD))

    def read_many_indices(ctx):
        import minivivit

        return minivivit.read_video(gif(ctx.path("clip.gif")), indices=np.broadcast_to(np.zeros(1, np.int64), (10**9,)))

    out.append(Case("memory/read_video-1e9-indices", read_many_indices, match=GUARD))

    def read_scenic_clips(ctx):
        import minivivit

        return minivivit.read_video(gif(ctx.path("clip.gif")), num_frames=16, sampling="scenic", num_clips=10**7)

    out.append(Case("memory/read_video-1e7-clips", read_scenic_clips, match=GUARD))

    def npy_229(ctx):
        path = npy_claiming(ctx.path("clip.npy"), (10000, 4096, 2000, 3))  # 229 GiB of uint8
        return cli(ctx, "attention", path, "--out", ctx.no_output(ctx.path("a.gif")))

    out.append(Case("memory/npy-header-claims-229-GiB", npy_229, match=r"clip\.npy"))

    def npy_short(ctx):
        path = npy_claiming(ctx.path("clip.npy"), (10, 32, 32, 3), payload=bytes(3 * 32 * 32 * 3))
        return cli(ctx, "attention", path, "--out", ctx.no_output(ctx.path("a.gif")))

    out.append(Case("memory/npy-header-claims-more-than-the-file", npy_short, match=r"clip\.npy"))

    def npy_pickle(ctx):
        path = ctx.path("clip.npy")
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return cli(ctx, "attention", path, "--out", ctx.no_output(ctx.path("a.gif")))

    out.append(Case("memory/npy-object-array-pickle", npy_pickle, match=r"clip\.npy|pickle|object"))

    def npy_garbage(ctx):
        path = ctx.path("clip.npy")
        path.write_bytes(b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 200)
        return cli(ctx, "attention", path, "--out", ctx.no_output(ctx.path("a.gif")))

    out.append(Case("memory/npy-broken-header", npy_garbage, match=r"clip\.npy"))

    def zip_bomb(ctx):
        import minivivit

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(__import__("json").dumps(hf_config()))
        members = torch_members({"vivit.embeddings.cls_token": np.zeros((1, 1, 16), np.float32)})
        members[-1] = zip_member("archive/data/0", b"", method=8, declared_size=8 << 30, crc=0,
                                 compressed=zeros_deflated(8))
        write_zip(d / "pytorch_model.bin", members)
        return minivivit.load(d)

    out.append(Case("memory/zip-bomb-8GiB-in-pytorch_model.bin", zip_bomb, match=r"pytorch_model\.bin"))

    def zip_bomb_pickle(ctx):
        import minivivit

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(__import__("json").dumps(hf_config()))
        members = torch_members({"vivit.embeddings.cls_token": np.zeros((1, 1, 16), np.float32)})
        members[0] = zip_member("archive/data.pkl", b"", method=8, declared_size=8 << 30, crc=0,
                                compressed=zeros_deflated(8))
        write_zip(d / "pytorch_model.bin", members)
        return minivivit.load(d)

    out.append(Case("memory/zip-bomb-8GiB-data.pkl", zip_bomb_pickle, match=r"pytorch_model\.bin"))

    def zip_understated(ctx):
        import minivivit

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(__import__("json").dumps(hf_config()))
        members = torch_members({"vivit.embeddings.cls_token": np.zeros((1, 1, 16), np.float32)})
        members[-1] = zip_member("archive/data/0", b"", method=8, declared_size=64, crc=0,
                                 compressed=zeros_deflated(1))
        write_zip(d / "pytorch_model.bin", members)
        return minivivit.load(d)

    out.append(Case("memory/zip-member-inflates-past-its-declared-size", zip_understated, match=r"pytorch_model\.bin"))

    def zero_strides(ctx):
        from pickles import state_dict_pickle

        import minivivit

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(__import__("json").dumps(hf_config()))
        pkl = state_dict_pickle([("vivit.embeddings.cls_token", "FloatStorage", "0", 1, 0, (100000, 100000), (0, 0))])
        members = torch_members({}, pickle_bytes=pkl) + [zip_member("archive/data/0", np.zeros(1, np.float32).tobytes())]
        write_zip(d / "pytorch_model.bin", members)
        return minivivit.load(d)

    out.append(Case("memory/1-element-storage-viewed-as-100000x100000", zero_strides, match=r"pytorch_model\.bin"))

    def storage_claims_more(ctx):
        from pickles import state_dict_pickle

        import minivivit

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(__import__("json").dumps(hf_config()))
        pkl = state_dict_pickle([("vivit.embeddings.cls_token", "FloatStorage", "0", 10**10, 0, (1, 1, 16),
                                  (16, 16, 1))])
        members = torch_members({}, pickle_bytes=pkl) + [zip_member("archive/data/0", np.zeros(16, np.float32).tobytes())]
        write_zip(d / "pytorch_model.bin", members)
        return minivivit.load(d)

    out.append(Case("memory/storage-numel-1e10-data-64-bytes", storage_claims_more, match=r"pytorch_model\.bin"))

    def safetensors_lies(ctx):
        from files import safetensors_raw

        import minivivit

        d = ctx.path("hf")
        d.mkdir()
        (d / "config.json").write_text(__import__("json").dumps(hf_config()))
        safetensors_raw(d / "model.safetensors", {"vivit.embeddings.cls_token": ("F32", [100000, 100000], b"\0" * 64)})
        return minivivit.load(d)

    out.append(Case("memory/safetensors-header-claims-40GB", safetensors_lies, match=r"model\.safetensors"))

    def preprocess_huge(ctx):
        import minivivit

        return minivivit.preprocess(frames(4, 32, 32), size={"shortest_edge": 40000})

    out.append(Case("memory/preprocess-shortest_edge-40000", preprocess_huge, match=GUARD))

    def crop_huge(ctx):
        import minivivit

        return minivivit.preprocess(frames(4, 32, 32), do_resize=False, crop_size=100000)

    out.append(Case("memory/preprocess-crop_size-100000-pads", crop_huge, match=GUARD))

    def hidden_states_huge(ctx):
        from minivivit import explain

        x = np.broadcast_to(np.zeros((1, 4, 3, 1, 1), np.float32), (64, 4, 3, 1024, 1024))
        return explain.cls_rollout(tiny_model(), x, interpolate_pos_encoding=True)

    out.append(Case("memory/cls_rollout-64-clips-of-1024x1024", hidden_states_huge, match=GUARD))

    # the override, and a bad value of it
    def env_small(ctx):
        import os

        import minivivit

        os.environ["MINIVIVIT_MAX_BYTES"] = "10kB"
        try:
            return minivivit.read_video(gif(ctx.path("clip.gif")), num_frames=8)
        finally:
            del os.environ["MINIVIVIT_MAX_BYTES"]

    out.append(Case("memory/env-limit-10kB-refuses-a-small-read", env_small, match=r"10\.00 kB.*MINIVIVIT_MAX_BYTES"))

    def env_bogus(ctx):
        import os

        import minivivit

        os.environ["MINIVIVIT_MAX_BYTES"] = "lots"
        try:
            return minivivit.read_video(gif(ctx.path("clip.gif")), num_frames=8)
        finally:
            del os.environ["MINIVIVIT_MAX_BYTES"]

    out.append(Case("memory/env-limit-not-a-size", env_bogus, match=r"MINIVIVIT_MAX_BYTES.*lots"))

    def env_none(ctx):
        import os

        import minivivit

        os.environ["MINIVIVIT_MAX_BYTES"] = "none"
        try:
            return minivivit.read_video(gif(ctx.path("clip.gif")), num_frames=8)[0].shape
        finally:
            del os.environ["MINIVIVIT_MAX_BYTES"]

    out.append(Case("memory/env-limit-none-allows", env_none, expect="ok", check=equals((8, 32, 32, 3))))

    def hf_bin_ok(ctx):  # the control: an honest .bin written by the suite loads
        import minivivit

        return minivivit.load(hf_dir(ctx.path("hf"), fmt="bin", state=hf_state())).config.hidden_size

    out.append(Case("memory/control-honest-bin-loads", hf_bin_ok, expect="ok", check=equals(16)))
    return out
