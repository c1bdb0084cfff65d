"""weights/train_demo.py cannot rot: a few minivivit.train.fit steps of a tiny model, without torch, and the file
it writes loads with the task's labels. CI never retrains the demo model."""

import importlib.util
import subprocess
import sys

import conftest
import numpy as np
import pytest

import minivivit
from minivivit.data import VISIT_LABELS, make_visit_batch

TRAINER = conftest.ROOT / "weights" / "train_demo.py"


@pytest.fixture(scope="module")
def td():
    spec = importlib.util.spec_from_file_location("train_demo", TRAINER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_trains_without_torch(tmp_path):
    """The whole script in a fresh interpreter where `import torch` (and transformers) fails."""
    out = tmp_path / "demo.safetensors"
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            f"sys.argv = ['train_demo.py', '--smoke', '--out', {str(out)!r}]\n"
            f"import runpy; runpy.run_path({str(TRAINER)!r}, run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=conftest.ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trained 3 steps" in r.stdout
    model = minivivit.load(out)
    assert model.labels == list(VISIT_LABELS) and model.config.num_frames == 4


def test_training_pixels_are_what_inference_uses(td):
    """The training source gives exactly minivivit's inference preprocessing (= HF's VivitImageProcessor at 64x64,
    checked against HF in tests/video and tests/parity) of make_visit_clip's frames, with their labels."""
    from minivivit.video.preprocess import preprocess_for

    model = td.build_model(td.DEMO["model"], 0)
    x, y = td.VisitClips(td.TRAIN_SEED, 10, model.config).batch([3, 7])
    frames, labels, _ = make_visit_batch(8, td.TRAIN_SEED)
    assert np.array_equal(x, preprocess_for(model.config, frames[[3, 7]])) and list(y) == list(labels[[3, 7]])
    assert x.min() >= -3 and x.max() <= 1


def test_hf_processor_gives_the_same_pixels():
    transformers = pytest.importorskip("transformers")
    from minivivit.video.preprocess import preprocess_for

    frames, _, _ = make_visit_batch(2, seed=3)  # [2, 16, 64, 64, 3]
    proc = transformers.VivitImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    ref = proc([list(clip) for clip in frames], return_tensors="np")["pixel_values"]  # [2, 16, 3, 64, 64]
    config = minivivit.ViViTConfig(image_size=64, num_frames=16, tubelet_size=(2, 8, 8), num_labels=4)
    assert np.abs(preprocess_for(config, frames) - ref).max() == 0.0


def test_refuses_to_overwrite(td, tmp_path):
    out = tmp_path / "demo.safetensors"
    out.write_bytes(b"a user's file")
    with pytest.raises(SystemExit, match="--force"):
        td.main(["--smoke", "--out", str(out)])
    assert out.read_bytes() == b"a user's file"


def test_training_is_deterministic(td):
    runs = [td.train(td.SMOKE, seed, log=lambda msg: None) for seed in (0, 0, 1)]
    (a, ra, ca), (b, rb, cb), (c, _, _) = runs
    fa, fb, fc = (minivivit.weights.flatten_params(m.params) for m in (a, b, c))
    timeless = lambda r: [{k: v for k, v in h.items() if k not in ("seconds", "clips_per_second")}  # noqa: E731
                          for h in r.history]
    assert ca == cb and timeless(ra) == timeless(rb)
    assert all(np.array_equal(fa[k], fb[k]) for k in fa), "same seed, different weights"
    assert not all(np.array_equal(fa[k], fc[k]) for k in fa), "the seed should change the initial weights"
