"""`minivivit finetune` on a folder of generated mp4 files: it learns, keeps what it should, and bad data gets clear errors."""

import json

import numpy as np
import pytest

av = pytest.importorskip("av", reason="writing mp4 files needs PyAV (the video extra)")

import minivivit
from conftest import encode_video
from minivivit.cli import main
from minivivit.data import make_visit_clip
from minivivit.train.folder import UnreadableClipWarning, scan_folder, split
from minivivit.video.preprocess import preprocess_for
from minivivit.weights import flatten_params

ROWS = {"top": (0, 1), "bottom": (2, 3)}  # a 2-class task from the visits clips: the row the object ends in
PER_CLASS = 12


def encode_mp4(path, frames):
    return encode_video(path, frames, options={"crf": "18"})


def row_clip(seed, i, row):
    return make_visit_clip(seed, i, label=ROWS[row][i % 2])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for row in ROWS:
        (root / row).mkdir()
        for i in range(PER_CLASS):
            encode_mp4(root / row / f"clip{i:02d}.mp4", row_clip(100 if row == "top" else 200, i, row).frames)
    return root


def test_finetune_head_only_learns_the_folder_classes(dataset, tmp_path, capsys):
    """The bundled model's features (it was trained to say which quadrant the object ends in) + a new 2-class
    head, trained alone for 4 epochs on 20 mp4 clips: >= 90 % on 40 fresh clips (measured: see docs/training.md)."""
    out = tmp_path / "mine.safetensors"
    code = main(["finetune", str(dataset), "--out", str(out), "--head-only", "--epochs", "4", "--lr", "3e-2",
                 "--batch-size", "10", "--json", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == ["bottom", "top"] and summary["new_head"] is True
    assert summary["train_clips"] == 20 and summary["val_clips"] == 4 and summary["skipped"] == []
    tuned, base = minivivit.load(out), minivivit.load()
    assert tuned.labels == ["bottom", "top"] and tuned.config.num_labels == 2
    a, b = flatten_params(tuned.params), flatten_params(base.params)
    assert all(np.array_equal(a[k], b[k]) for k in b if not k.startswith("head."))  # the encoder did not move
    frames = np.stack([row_clip(300, i, row).frames for i in range(20) for row in ("bottom", "top")])
    labels = np.array([0, 1] * 20)
    pred = np.concatenate([tuned(preprocess_for(tuned.config, frames[i:i + 10])).logits.argmax(-1)
                           for i in range(0, 40, 10)])
    acc = float((pred == labels).mean())
    print(f"fine-tuned head only: {acc:.3f} on 40 fresh clips; history {summary['history']}")
    assert acc >= 0.9
    # and classify reads the same file, labels included
    assert main(["classify", str(dataset / "top" / "clip00.mp4"), "--weights", str(out), "--top-k", "1"]) == 0
    assert "top" in capsys.readouterr().out.split("top-1:")[1]


def test_last_k_blocks_trains_only_those(dataset, tmp_path, capsys):
    out = tmp_path / "k1.safetensors"
    assert main(["finetune", str(dataset), "--out", str(out), "--last-k-blocks", "1", "--epochs", "1",
                 "--batch-size", "10", "--no-progress"]) == 0
    L = minivivit.load().config.num_hidden_layers
    a, b = flatten_params(minivivit.load(out).params), flatten_params(minivivit.load().params)
    moved = {k for k in b if k in a and not np.array_equal(a[k], b[k])}
    assert moved and all(k.startswith((f"blocks.{L - 1}.", "norm.", "head.")) for k in moved), moved
    assert any(k.startswith(f"blocks.{L - 1}.") for k in moved)


def test_split_is_seeded_and_stratified(dataset):
    data = scan_folder(dataset)
    tr, va = split(data.files, 0.25, seed=1)
    assert split(data.files, 0.25, seed=1) == (tr, va) and split(data.files, 0.25, seed=2) != (tr, va)
    assert sorted(y for _, y in va) == [0, 0, 0, 1, 1, 1] and not set(tr) & set(va)


def make_tree(root, spec):
    """spec: {folder: [file names]} under root; .mp4 files get a tiny real video, .bad files garbage."""
    root.mkdir(exist_ok=True)
    for folder, names in spec.items():
        d = root / folder if folder else root
        d.mkdir(exist_ok=True)
        for name in names:
            if name.endswith("broken.mp4"):
                (d / name).write_bytes(b"this is not a video")
            else:
                encode_mp4(d / name, make_visit_clip(5, len(name)).frames)
    return root


@pytest.mark.parametrize("spec, message", [
    ({}, "no class folders"),
    ({"": ["a.mp4"]}, "videos lie directly in it: move them into one folder per class"),
    ({"cats": ["a.mp4"], "dogs": []}, r"class folder\(s\) \['dogs'\].*hold no videos"),
    ({"cats": ["a.mp4", "b.mp4"]}, "one class only"),
    ({"cats": ["notes.txt"], "dogs": []}, "no videos in"),
])
def test_bad_datasets_get_clear_errors(tmp_path, capsys, spec, message):
    if spec == {"cats": ["notes.txt"], "dogs": []}:
        (tmp_path / "d" / "cats").mkdir(parents=True)
        (tmp_path / "d" / "cats" / "notes.txt").write_text("x")
        (tmp_path / "d" / "dogs").mkdir()
    else:
        make_tree(tmp_path / "d", spec)
    assert main(["finetune", str(tmp_path / "d"), "--out", str(tmp_path / "o.safetensors"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "o.safetensors").exists()


def test_missing_folder_and_existing_out(tmp_path, dataset, capsys):
    assert main(["finetune", str(tmp_path / "nope"), "--out", str(tmp_path / "o.safetensors")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    out = tmp_path / "o.safetensors"
    out.write_bytes(b"a user's file")
    assert main(["finetune", str(dataset), "--out", str(out), "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"a user's file"


def test_unreadable_clip_is_skipped_with_its_name_unless_strict(tmp_path, capsys):
    root = make_tree(tmp_path / "d", {"a": ["x1.mp4", "x2.mp4", "broken.mp4"], "b": ["y1.mp4", "y2.mp4"]})
    out = tmp_path / "o.safetensors"
    with pytest.warns(UnreadableClipWarning, match="broken.mp4"):
        code = main(["finetune", str(root), "--out", str(out), "--epochs", "1", "--head-only", "--val-fraction", "0",
                     "--no-progress", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train_clips"] == 4 and len(summary["skipped"]) == 1 and "broken.mp4" in summary["skipped"][0]
    assert main(["finetune", str(root), "--out", str(tmp_path / "o2.safetensors"), "--strict", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "--strict" in err
    # a class whose only clip is unreadable: named, not a crash in the middle of training
    root2 = make_tree(tmp_path / "e", {"a": ["x1.mp4"], "b": ["broken.mp4"]})
    with pytest.warns(UnreadableClipWarning):
        assert main(["finetune", str(root2), "--out", str(tmp_path / "o3.safetensors"), "--no-progress"]) == 2
    assert "['b'] have no readable training clip" in capsys.readouterr().err
