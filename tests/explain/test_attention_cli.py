"""`minivivit attention`: the drawn map equals HF's attention (raw) or a rollout of HF's maps, files are right."""

import numpy as np
import pytest
from PIL import Image

from minivivit.cli import main

torch = pytest.importorskip("torch", reason="compares with HF transformers (dev extra)")
from reference import random_hf_model, to_minivivit
from transformers import VivitImageProcessor


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("attn")
    hf = random_hf_model("classifier", seed=21, num_hidden_layers=3, tubelet_size=[2, 8, 8])  # grid (2, 4, 4)
    to_minivivit(hf).save(d / "tiny.safetensors")
    frames = np.random.default_rng(5).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)  # the model's size
    np.save(d / "clip.npy", frames)
    proc = VivitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pixel_values = proc(list(frames), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = hf(pixel_values, output_attentions=True)
    attn = [a.numpy().astype(np.float64)[0] for a in ref.attentions]  # L x [nh, N, N]
    return d, attn, int(ref.logits.argmax())


def _run(d, *extra):
    return main(["attention", str(d / "clip.npy"), "--weights", str(d / "tiny.safetensors"), *extra])


def test_raw_png_shows_hf_cls_row(setup, capsys):
    d, attn, top = setup
    assert _run(d, "--out", str(d / "raw.png"), "--method", "raw", "--layer", "1", "--head", "2",
                "--save-map", str(d / "raw.npy")) == 0
    heat = np.load(d / "raw.npy")
    assert heat.shape == (2, 4, 4)
    assert np.abs(heat.ravel() - attn[1][2, 0, 1:]).max() < 1e-5  # HF's token order is C order of (t, h, w)
    out = capsys.readouterr().out
    assert f"({top})" in out and "raw.png" in out
    w, h = Image.open(d / "raw.png").size
    assert w > 200 and h > 100
    assert _run(d, "--out", str(d / "raw2.png"), "--method", "raw", "--head", "max", "--save-map",
                str(d / "raw2.npy")) == 0
    assert np.abs(np.load(d / "raw2.npy").ravel() - attn[-1][:, 0, 1:].max(axis=0)).max() < 1e-5


def _rollout_by_hand(attn, start, end):
    """Rollout of HF's maps written out: mean over heads, 0.5 A + 0.5 I, rows to 1, later layers on the left."""
    r = np.eye(attn[0].shape[-1])
    for a in attn[start:end + 1]:
        m = 0.5 * a.mean(axis=0) + 0.5 * np.eye(a.shape[-1])
        r = (m / m.sum(axis=1, keepdims=True)) @ r
    return r[0]


def test_rollout_gif_frames_size_and_values(setup):
    d, attn, _ = setup
    assert _run(d, "--out", str(d / "roll.gif"), "--save-map", str(d / "roll.npy")) == 0
    im = Image.open(d / "roll.gif")
    assert im.n_frames == 4 and im.size == (480, 450)  # one frame per video frame; figsize (4.8, 4.5) at 100 dpi
    assert np.abs(np.load(d / "roll.npy").ravel() - _rollout_by_hand(attn, 0, 2)[1:]).max() < 1e-5
    assert _run(d, "--out", str(d / "roll.svg"), "--start-layer", "1", "--layer", "1", "--save-map",
                str(d / "roll1.npy")) == 0
    assert np.abs(np.load(d / "roll1.npy").ravel() - _rollout_by_hand(attn, 1, 1)[1:]).max() < 1e-5
    assert (d / "roll.svg").read_text().lstrip().startswith("<?xml")


def test_reads_a_real_video_file(setup):
    d, _, _ = setup
    frames = np.load(d / "clip.npy")
    imgs = [Image.fromarray(f) for f in np.concatenate([frames, frames])]  # 8 frames, sampled down to 4
    imgs[0].save(d / "clip.gif", save_all=True, append_images=imgs[1:], duration=100)
    code = main(["attention", str(d / "clip.gif"), "--weights", str(d / "tiny.safetensors"), "--out",
                 str(d / "from_gif.gif"), "--smooth", "--normalize", "frame"])
    assert code == 0 and Image.open(d / "from_gif.gif").n_frames == 4


@pytest.mark.parametrize("extra,message", [
    (["--out", "x.jpg"], ".gif"),
    (["--out", "{d}/e.png", "--head", "first"], "--head"),
    (["--out", "{d}/e.png", "--head", "7"], "head 7"),
    (["--out", "{d}/e.png", "--layer", "3"], "layers 0..2"),
    (["--out", "{d}/e.png", "--start-layer", "2", "--layer", "1"], "--start-layer"),
    (["--out", "{d}/exists.png"], "--force"),
])
def test_bad_arguments_give_clear_errors(setup, capsys, extra, message):
    d, _, _ = setup
    (d / "exists.png").write_bytes(b"mine")
    assert _run(d, *[e.format(d=d) for e in extra]) == 2
    assert message in capsys.readouterr().err
    assert (d / "exists.png").read_bytes() == b"mine" and not (d / "e.png").exists()


def test_missing_default_weights(setup, capsys, monkeypatch, tmp_path):
    d, _, _ = setup
    monkeypatch.setenv("MINIVIVIT_WEIGHTS", str(tmp_path / "nothing.safetensors"))
    assert main(["attention", str(d / "clip.npy"), "--out", str(tmp_path / "a.gif")]) == 2
    assert "--weights" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["attention", "--help"])
    assert e.value.code == 0 and "examples:" in capsys.readouterr().out
