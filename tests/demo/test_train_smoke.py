"""weights/train_demo.py cannot rot: a few training steps of a tiny model, through save_pretrained and
`minivivit convert`, and the converted file equals the trained HF model. CI never retrains the demo model."""

import importlib.util
import json

import conftest
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the trainer needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import hf_forward, rel_err

import minivivit
from minivivit.data import LABELS, make_batch

TRAINER = conftest.ROOT / "weights" / "train_demo.py"


@pytest.fixture(scope="module")
def td():
    spec = importlib.util.spec_from_file_location("train_demo", TRAINER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def torch_state():
    """The trainer switches on deterministic algorithms and sets threads; give the process its state back."""
    det, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(det)
    torch.set_num_threads(threads)


def test_trainer_pixels_are_vivit_image_processor_pixels(td):
    """The training pixels are what HF's processor (and so minivivit) gives at inference: bit for bit."""
    from transformers import VivitImageProcessor

    frames, _, _ = make_batch(2, seed=3)  # [2, 16, 64, 64, 3]
    proc = VivitImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    ref = proc([list(clip) for clip in frames], return_tensors="np")["pixel_values"]  # [2, 16, 3, 64, 64]
    ours = td.preprocess(frames)
    assert ours.shape == ref.shape == (2, 16, 3, 64, 64) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() == 0.0
    assert ours.min() >= -3 and ours.max() <= 1
    # and what minivivit does at inference for a 64x64 model (minivivit demo / classify / attention)
    from minivivit.video.preprocess import preprocess_for

    config = minivivit.ViViTConfig(image_size=64, num_frames=16, tubelet_size=(2, 8, 8), num_labels=4)
    assert np.array_equal(preprocess_for(config, frames), ours)


def test_smoke_run_saves_hf_and_converts(td, tmp_path, torch_state):
    out, hf_dir = tmp_path / "demo.safetensors", tmp_path / "hf"
    assert td.main(["--smoke", "--out", str(out), "--hf-dir", str(hf_dir)]) == 0

    # the HF side: a checkpoint HF itself can load, with labels and the matching processor config
    hf = transformers.VivitForVideoClassification.from_pretrained(hf_dir, attn_implementation="eager").eval()
    assert [hf.config.id2label[i] for i in range(len(LABELS))] == list(LABELS)
    proc = transformers.VivitImageProcessor.from_pretrained(hf_dir)
    assert proc.crop_size == {"height": 32, "width": 32}
    info = json.loads((hf_dir / "training_info.json").read_text())
    assert info["recipe"]["steps"] == 3 and np.isfinite(info["final_loss"])

    # the converted file (written by `minivivit convert`) computes what the trained HF model computes
    model = minivivit.load(out)
    assert model.labels == list(LABELS)
    frames, _, _ = make_batch(4, seed=2024, num_frames=4, size=32)
    x = td.preprocess(frames)  # [4, 4, 3, 32, 32]
    ref = hf_forward(hf, x).logits
    ours = model(x).logits
    assert rel_err(ours, ref) <= 1e-5
    assert np.array_equal(ours.argmax(-1), ref.numpy().argmax(-1))


def test_refuses_to_overwrite(td, tmp_path):
    out = tmp_path / "demo.safetensors"
    out.write_bytes(b"a user's file")
    with pytest.raises(SystemExit, match="--force"):
        td.main(["--smoke", "--out", str(out)])
    assert out.read_bytes() == b"a user's file"


def test_training_is_deterministic(td, torch_state):
    td.setup_determinism(2)
    runs = [td.train(td.SMOKE, seed, log=lambda msg: None) for seed in (0, 0, 1)]
    (a, hist_a), (b, hist_b), (c, _) = runs
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert hist_a == hist_b
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "same seed, different weights"
    assert not all(torch.equal(sa[k], sc[k]) for k in sa), "the seed should change the initial weights"
