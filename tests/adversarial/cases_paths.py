"""Output paths: existing files and folders, read-only folders, suffixes that cannot be read back, output = input,
and SIGKILL in the middle of a write (no half-written file under the user's name; no hidden leftovers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from files import copy_fixture, gif, minivivit_file, tiny_model
from harness import Case, CliError, cli, equals


class RawTraceback(Exception):
    """A child process printed a Python traceback."""


def _drop_root_file_powers():
    """In a child of root: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (prctl PR_CAPBSET_DROP) so that, after exec,
    file permissions apply to it as to any user (a read-only folder is read-only)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def cli_child(ctx, *argv, as_user: bool = False, env=None):
    """Run `python -m minivivit ARGV` in a child process (without root's file powers if asked); like harness.cli."""
    kwargs = {}
    if as_user and os.getuid() == 0:
        kwargs["preexec_fn"] = _drop_root_file_powers
    proc = subprocess.run([sys.executable, "-m", "minivivit", *map(str, argv)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kwargs)
    if "Traceback (most recent call last)" in proc.stderr:
        raise RawTraceback(proc.stderr.strip().splitlines()[-1])
    if proc.returncode == 2 and "error:" in proc.stderr:
        raise CliError(proc.stderr.strip())
    return proc.returncode, proc.stdout, proc.stderr


def big_hf_dir(folder, layers=8, D=512):
    """An HF checkpoint of about 100 MB (so that writing its conversion takes long enough to be interrupted)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    F, N, labels = 4 * D, 9, 3
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s, dtype=np.float32) * 0.02
    state = {"vivit.embeddings.cls_token": r(1, 1, D), "vivit.embeddings.position_embeddings": r(1, N, D),
             "vivit.embeddings.patch_embeddings.projection.weight": r(D, 3, 2, 16, 16),
             "vivit.embeddings.patch_embeddings.projection.bias": r(D),
             "vivit.layernorm.weight": r(D) + 1, "vivit.layernorm.bias": r(D),
             "classifier.weight": r(labels, D), "classifier.bias": r(labels)}
    for i in range(layers):
        p = f"vivit.encoder.layer.{i}."
        for m in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                  "attention.output.dense"):
            state[p + m + ".weight"], state[p + m + ".bias"] = r(D, D), r(D)
        state[p + "intermediate.dense.weight"], state[p + "intermediate.dense.bias"] = r(F, D), r(F)
        state[p + "output.dense.weight"], state[p + "output.dense.bias"] = r(D, F), r(D)
        for m in ("layernorm_before", "layernorm_after"):
            state[p + m + ".weight"], state[p + m + ".bias"] = r(D) + 1, r(D)
    config = {"model_type": "vivit", "image_size": 32, "num_frames": 4, "tubelet_size": [2, 16, 16], "hidden_size": D,
              "num_hidden_layers": layers, "num_attention_heads": 8, "intermediate_size": F, "hidden_act": "gelu_fast",
              "id2label": {"0": "a", "1": "b", "2": "c"}}
    (folder / "config.json").write_text(json.dumps(config))
    save_file(state, str(folder / "model.safetensors"))
    return folder


def kill_when_partial_appears(cmd, folder, what, timeout=60.0):
    """Start cmd, SIGKILL it as soon as a partial file of `what` exists in folder; returns True if it was killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            if any(what in p.name and "partial" in p.name for p in folder.iterdir()):
                proc.kill()  # at once: the partial exists from before the first byte is written to the end
                proc.wait()
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return False


def _loads(path) -> bool:
    import minivivit

    try:
        minivivit.load(path)
        return True
    except ValueError:
        return False


def _gif_complete(path, frames=16) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.seek(frames - 1)
            im.load()
        return True
    except (OSError, EOFError, ValueError):
        return False


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def kill_cases() -> list[Case]:
    def kill_convert(ctx):
        src = big_hf_dir(ctx.path("hf"))
        out = ctx.path("converted.safetensors")
        killed = kill_when_partial_appears([sys.executable, "-m", "minivivit", "convert", src, out], ctx.dir,
                                           "converted.safetensors")
        assert killed, "the convert finished before it could be killed (make the checkpoint bigger)"
        half = out.exists() and not _loads(out)  # (if the kill came after the rename, the file is complete)
        cli(ctx, "convert", src, out, "--force")  # the next run: must work, and must clean the stale partial
        return {"half-written-file-under-the-name": half, "next-run-works": _loads(out)}

    def kill_save(ctx):
        code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import files; "
                f"m = files.tiny_model(hidden_size=768, num_attention_heads=12, intermediate_size=3072, "
                f"num_hidden_layers=6); m.save({str(ctx.path('m.safetensors'))!r})")
        killed = kill_when_partial_appears([sys.executable, "-c", code], ctx.dir, "m.safetensors")
        assert killed, "the save finished before it could be killed"
        out = ctx.path("m.safetensors")
        half = out.exists() and not _loads(out)
        out.unlink(missing_ok=True)
        minivivit_file(out)  # the next save to that name
        return {"half-written-file-under-the-name": half, "next-run-works": _loads(out)}

    def kill_gif(ctx):
        video = gif(ctx.path("clip.gif"), n=16, h=64, w=64)
        out = ctx.path("a.gif")
        killed = kill_when_partial_appears([sys.executable, "-m", "minivivit", "attention", video, "--out", out],
                                           ctx.dir, "a.gif")
        assert killed, "the attention command finished before it could be killed"
        half = out.exists() and not _gif_complete(out)
        cli(ctx, "attention", video, "--out", out, "--force")
        return {"half-written-file-under-the-name": half, "next-run-works": _gif_complete(out)}

    ok = equals({"half-written-file-under-the-name": False, "next-run-works": True})
    return [Case("paths/sigkill-during-convert-then-rerun", kill_convert, expect="ok", check=ok, timeout=120),
            Case("paths/sigkill-during-model-save-then-resave", kill_save, expect="ok", check=ok, timeout=120),
            Case("paths/sigkill-during-attention-gif-then-rerun", kill_gif, expect="ok", check=ok, timeout=120)]


def partial_cases() -> list[Case]:
    def plant(name_fn, expect_kept: bool):
        def run(ctx):
            src = copy_fixture(ctx.path("hf"))
            planted = ctx.plant_partial(ctx.path(name_fn()))
            planted.write_bytes(b"half a file")
            if expect_kept:
                ctx.protect(planted)
            cli(ctx, "convert", src, ctx.path("out.safetensors"))
            return planted.exists()

        return run

    return [
        Case("paths/stale-partial-of-a-dead-writer-is-cleaned",
             plant(lambda: f"out.safetensors.{dead_pid()}.abcd1234.partial", False), expect="ok", check=equals(False)),
        Case("paths/stale-hidden-partial-of-old-versions-is-cleaned",
             plant(lambda: ".out.safetensors.k2j3h4g5.partial", False), expect="ok", check=equals(False),
             note="the hidden name that minivivit 0.1 used (mkstemp's random part, no pid)"),
        Case("paths/partial-of-a-live-writer-is-kept",
             plant(lambda: f"out.safetensors.{os.getpid()}.abcd1234.partial", True), expect="ok", check=equals(True)),
        Case("paths/user-file-that-looks-like-a-partial-is-kept",
             plant(lambda: "out.safetensors.my notes.partial", True), expect="ok", check=equals(True)),
    ]


def out_cases() -> list[Case]:
    def convert_to(make_out, *flags):
        def run(ctx):
            src = copy_fixture(ctx.path("hf"))
            out = make_out(ctx)
            return cli(ctx, "convert", src, out, *flags)

        return run

    def existing_dir(ctx):
        d = ctx.path("out.safetensors")
        d.mkdir()
        ctx.protect(d)
        return d

    def existing_file(ctx):
        p = ctx.path("out.safetensors")
        p.write_bytes(b"my precious file")
        return ctx.protect(p)

    def under_a_file(ctx):
        f = ctx.path("notadir")
        f.write_text("x")
        ctx.protect(f)
        return f / "out.safetensors"

    out = [
        Case("paths/convert-out-is-a-directory", convert_to(existing_dir), match=r"out\.safetensors.*director"),
        Case("paths/convert-out-is-a-directory-force", convert_to(existing_dir, "--force"),
             match=r"out\.safetensors.*director"),
        Case("paths/convert-out-exists", convert_to(existing_file), match=r"out\.safetensors.*(exists|--force)"),
        Case("paths/convert-out-under-a-file", convert_to(under_a_file), match=r"notadir"),
        Case("paths/convert-out-empty-string", convert_to(lambda c: ""), match=r"director|OUT|out"),
        Case("paths/convert-out-suffix-bin", convert_to(lambda c: c.no_output(c.path("converted.bin"))),
             match=r"converted\.bin.*safetensors"),
        Case("paths/convert-out-no-suffix", convert_to(lambda c: c.no_output(c.path("converted"))),
             match=r"converted.*safetensors"),
    ]

    def convert_onto_source(ctx):
        src = copy_fixture(ctx.path("hf"))
        ctx.protect(src / "model.safetensors")
        return cli(ctx, "convert", src / "model.safetensors", src / "model.safetensors", "--force")

    out.append(Case("paths/convert-out-is-the-source-file-force", convert_onto_source, match=r"model\.safetensors"))

    def readonly(ctx):
        src = copy_fixture(ctx.path("hf"))
        ro = ctx.path("ro")
        ro.mkdir()
        os.chmod(ro, 0o555)
        try:
            return cli_child(ctx, "convert", src, ro / "out.safetensors", as_user=True)
        finally:
            os.chmod(ro, 0o755)

    out.append(Case("paths/convert-into-a-read-only-folder", readonly, match=r"ro.*(permission|read-only|writ)",
                    types=(), timeout=60))

    def save_bin(ctx):
        return tiny_model().save(ctx.no_output(ctx.path("m.bin")))

    out.append(Case("paths/model-save-suffix-bin", save_bin, match=r"m\.bin.*safetensors"))

    def save_existing(ctx):
        p = ctx.path("m.safetensors")
        p.write_bytes(b"mine")
        ctx.protect(p)
        return tiny_model().save(p)

    out.append(Case("paths/model-save-over-existing", save_existing, match=r"m\.safetensors.*(exists|overwrite)"))

    def save_into_dir(ctx):
        d = ctx.path("m.safetensors")
        d.mkdir()
        return tiny_model().save(d, overwrite=True)

    out.append(Case("paths/model-save-onto-a-directory-overwrite", save_into_dir, match=r"m\.safetensors.*director"))

    def nested_new_folder(ctx):
        src = copy_fixture(ctx.path("hf"))
        cli(ctx, "convert", src, ctx.path("new/deeper/out.safetensors"))
        return ctx.path("new/deeper/out.safetensors").is_file()

    out.append(Case("paths/convert-into-new-nested-folders", nested_new_folder, expect="ok", check=equals(True)))

    # attention and demo outputs
    def attention(make_out, *flags):
        def run(ctx):
            video = gif(ctx.path("clip.gif"), n=16, h=64, w=64)
            return cli(ctx, "attention", video, "--out", make_out(ctx), *flags)

        return run

    def existing_gif(ctx):
        p = ctx.path("a.gif")
        p.write_bytes(b"GIF89a mine")
        return ctx.protect(p)

    def dir_gif(ctx):
        d = ctx.path("a.gif")
        d.mkdir()
        return d

    def symlink_to_user_file(ctx):
        target = ctx.path("precious.txt")
        target.write_text("keep me")
        ctx.protect(target)
        link = ctx.path("a.gif")
        link.symlink_to(target)
        return link

    out += [
        Case("paths/attention-out-exists", attention(existing_gif), match=r"a\.gif.*(exists|--force)"),
        Case("paths/attention-out-is-a-directory-force", attention(dir_gif, "--force"), match=r"a\.gif.*director"),
        Case("paths/attention-out-symlink-to-user-file", attention(symlink_to_user_file),
             match=r"a\.gif.*(exists|--force)"),
        Case("paths/attention-out-jpg", attention(lambda c: c.no_output(c.path("a.jpg"))), match=r"a\.jpg"),
    ]

    def save_map_existing(ctx):
        video = gif(ctx.path("clip.gif"), n=16, h=64, w=64)
        m = ctx.path("heat.npy")
        np.save(m, np.zeros(3))
        ctx.protect(m)
        return cli(ctx, "attention", video, "--out", ctx.no_output(ctx.path("a.gif")), "--save-map", m)

    out.append(Case("paths/attention-save-map-exists", save_map_existing, match=r"heat\.npy.*(exists|--force)"))

    def save_map_same_as_out(ctx):
        video = gif(ctx.path("clip.gif"), n=16, h=64, w=64)
        return cli(ctx, "attention", video, "--out", ctx.no_output(ctx.path("a.png")), "--save-map", ctx.path("a.png"))

    out.append(Case("paths/attention-save-map-same-path-as-out", save_map_same_as_out, match=r"a\.png"))

    def save_map_suffix(ctx):
        video = gif(ctx.path("clip.gif"), n=16, h=64, w=64)
        return cli(ctx, "attention", video, "--out", ctx.no_output(ctx.path("a.png")), "--save-map",
                   ctx.no_output(ctx.path("heat.txt")))

    out.append(Case("paths/attention-save-map-not-npy", save_map_suffix, match=r"heat\.txt.*npy"))

    def demo_existing(ctx):
        p = ctx.path("mine.gif")
        p.write_bytes(b"GIF89a mine")
        ctx.protect(p)
        return cli(ctx, "demo", "--out", p)

    def demo_dir(ctx):
        d = ctx.path("out.gif")
        d.mkdir()
        return cli(ctx, "demo", "--out", d, "--force")

    out += [Case("paths/demo-out-exists", demo_existing, match=r"mine\.gif.*(exists|--force)"),
            Case("paths/demo-out-is-a-directory-force", demo_dir, match=r"out\.gif.*director")]

    def save_figure_existing(ctx):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from minivivit.explain import viz

        p = ctx.path("fig.png")
        p.write_bytes(b"mine")
        ctx.protect(p)
        fig = plt.figure()
        return viz.save_figure(fig, p)

    out.append(Case("paths/save_figure-over-existing", save_figure_existing, match=r"fig\.png.*(exists|overwrite)"))
    return out




def disk_full_cases() -> list[Case]:
    """A write that runs out of room (RLIMIT_FSIZE in a child: the same EFBIG a full disk's ENOSPC gives)."""

    def limited(limit_bytes):
        def pre():
            import resource
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing it
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

        return pre

    def run_child(ctx, argv, limit_bytes):
        proc = subprocess.run([sys.executable, "-m", "minivivit", *map(str, argv)], capture_output=True, text=True,
                              timeout=120, preexec_fn=limited(limit_bytes))
        if "Traceback (most recent call last)" in proc.stderr:
            raise RawTraceback(proc.stderr.strip().splitlines()[-1])
        if proc.returncode == 2 and "error:" in proc.stderr:
            raise CliError(proc.stderr.strip())
        return proc.returncode, proc.stdout, proc.stderr

    def convert_full(ctx):
        src = big_hf_dir(ctx.path("hf"), layers=2, D=256)
        return run_child(ctx, ["convert", src, ctx.no_output(ctx.path("out.safetensors"))], 1 << 20)

    def gif_full(ctx):
        video = gif(ctx.path("clip.gif"), n=16, h=64, w=64)
        return run_child(ctx, ["attention", video, "--out", ctx.no_output(ctx.path("a.gif"))], 20_000)

    def model_save_full(ctx):  # the API: the error must be an OSError naming the file, nothing left behind
        code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import files\n"
                f"try:\n    files.tiny_model(hidden_size=256, num_attention_heads=4, intermediate_size=1024)"
                f".save({str(ctx.no_output(ctx.path('m.safetensors')))!r})\n"
                f"except OSError as e:\n    print('OSError', e)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              preexec_fn=limited(100_000))
        if not proc.stdout.startswith("OSError"):
            raise RawTraceback(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.stdout)
        raise OSError(proc.stdout.strip())

    return [Case("paths/disk-full-during-convert", convert_full, match=r"out\.safetensors.*(disk|too large)",
                 types=(), timeout=120),
            Case("paths/disk-full-during-attention-gif", gif_full, match=r"a\.gif.*(disk|too large)", types=(),
                 timeout=120),
            Case("paths/disk-full-during-model-save", model_save_full, match=r"m\.safetensors.*(disk|too large)",
                 types=(OSError,), timeout=120)]


def cases() -> list[Case]:
    return kill_cases() + partial_cases() + out_cases() + disk_full_cases()
