"""`minivivit attention --method gae|grad-rollout|inputxgrad|ig --target ...`: the drawn map equals GAE computed
with torch autograd on HF's model; per-class figures; clear errors (class-agnostic methods, factorised models)."""

import numpy as np
import pytest
from PIL import Image

from minivivit.cli import main

torch = pytest.importorskip("torch", reason="compares with HF transformers (dev extra)")
from reference import random_hf_model, to_minivivit
from torch_relevance import torch_gae, torch_maps
from transformers import VivitImageProcessor

import minivivit
from minivivit.weights import init_params

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("explain")
    labels = {0: "cat", 1: "dog", 2: "owl", 3: "bee", 4: "elk"}
    hf = random_hf_model("classifier", seed=23, num_hidden_layers=3, tubelet_size=[2, 8, 8], id2label=labels,
                         label2id={v: k for k, v in labels.items()})
    to_minivivit(hf).save(d / "tiny.safetensors")
    frames = np.random.default_rng(6).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.save(d / "clip.npy", frames)
    proc = VivitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    x = proc(list(frames), return_tensors="pt")["pixel_values"].numpy()
    return d, hf, x


def _run(d, *extra):
    return main(["attention", str(d / "clip.npy"), "--weights", str(d / "tiny.safetensors"), *extra])


def test_gae_map_equals_torch_autograd_on_hf(setup, capsys):
    d, hf, x = setup
    assert _run(d, "--out", str(d / "gae.png"), "--method", "gae", "--target", "owl",
                "--save-map", str(d / "gae.npy")) == 0
    attn, grads, _ = torch_maps(hf, x, 2)
    ref = torch_gae(attn, grads)[0].numpy()  # [P]
    heat = np.load(d / "gae.npy")
    assert heat.shape == (2, 4, 4)
    assert np.abs(heat.ravel() - ref).max() <= 1e-4 * np.abs(ref).max()
    assert "for owl" in capsys.readouterr().out
    assert Image.open(d / "gae.png").size[0] > 200


def test_several_targets_give_a_per_class_figure(setup):
    d, hf, x = setup
    assert _run(d, "--out", str(d / "classes.png"), "--method", "gae", "--target", "cat,4",
                "--save-map", str(d / "classes.npy")) == 0
    maps = np.load(d / "classes.npy")
    assert maps.shape == (2, 2, 4, 4)
    for heat, t in zip(maps, (0, 4)):
        attn, grads, _ = torch_maps(hf, x, t)
        ref = torch_gae(attn, grads)[0].numpy()
        assert np.abs(heat.ravel() - ref).max() <= 1e-4 * np.abs(ref).max()
    assert not np.allclose(maps[0], maps[1], rtol=1e-2)
    one = Image.open(d / "classes.png").size
    assert _run(d, "--out", str(d / "one.png"), "--method", "gae", "--target", "cat") == 0
    assert one[1] > 1.5 * Image.open(d / "one.png").size[1]  # two rows of panels, not one


@pytest.mark.parametrize("method", ["grad-rollout", "transformer-attribution", "inputxgrad", "ig"])
def test_other_class_specific_methods_write_gifs(setup, method):
    d, _, _ = setup
    out = d / f"{method}.gif"
    assert _run(d, "--out", str(out), "--method", method, "--steps", "3") == 0
    assert Image.open(out).n_frames == 4


@pytest.mark.parametrize("extra,message", [
    (["--method", "rollout", "--target", "cat"], "class-agnostic"),
    (["--method", "gae", "--target", "cat,dog"], "per-class figure"),
    (["--method", "gae", "--target", "zebra"], "labels are: cat, dog, owl"),
    (["--method", "gae", "--target", "7"], "has 5 classes"),
])
def test_bad_targets_say_what_to_do(setup, capsys, extra, message):
    d, _, _ = setup
    assert _run(d, "--out", str(d / "bad.gif"), *extra) == 2
    assert message in capsys.readouterr().err
    assert not (d / "bad.gif").exists()


def test_factorised_model_is_refused(tmp_path, capsys):
    config = minivivit.ViViTConfig(image_size=32, num_frames=4, tubelet_size=(2, 16, 16), hidden_size=24,
                                   num_hidden_layers=2, num_attention_heads=3, intermediate_size=40, num_labels=3,
                                   attention_type="factorized_encoder", temporal_num_layers=1)
    minivivit.Model(init_params(config, 0), config).save(tmp_path / "m2.safetensors")
    np.save(tmp_path / "clip.npy", np.zeros((4, 32, 32, 3), np.uint8))
    assert main(["attention", str(tmp_path / "clip.npy"), "--weights", str(tmp_path / "m2.safetensors"),
                 "--out", str(tmp_path / "x.png"), "--method", "gae"]) == 2
    assert "needs Model 1" in capsys.readouterr().err


def test_help_lists_the_methods(capsys):
    with pytest.raises(SystemExit):
        main(["attention", "--help"])
    out = capsys.readouterr().out
    for method in ("gae", "grad-rollout", "inputxgrad", "ig", "Chefer"):
        assert method in out
