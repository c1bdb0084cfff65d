"""`minivivit classify` and multi-view inference, end to end against HF's processor + HF's model.

The HF side decodes the mp4 itself with PyAV (as in HF's ViViT docs), picks frames with the documented
formulas written out here, preprocesses with transformers.VivitImageProcessor and runs
transformers.VivitForVideoClassification; minivivit's CLI must give the same top-1 and logits (<= 1e-5).
"""

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="end-to-end tests need the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import random_hf_model, rel_err, to_minivivit
from test_video import encode_av

import minivivit
from minivivit.cli import main
from minivivit.data import make_clip
from minivivit.video.classify import classify, crop_positions, parse_views

TOL = 1e-5
K = 4  # frames per clip of the tiny model (conftest.TINY: 4 frames of 32x32, 5 labels)


def hf_frames(path):
    """Every frame of a video decoded by PyAV directly, as HF's docs do."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def hf_logits(hf_model, frames, **processor_kwargs):
    inputs = transformers.VivitImageProcessor(**processor_kwargs)(list(frames), return_tensors="pt")
    with torch.no_grad():
        return hf_model(**inputs).logits[0].numpy()


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["classify", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random HF classifier saved with its preprocessor_config.json, converted, and a generated mp4."""
    d = tmp_path_factory.mktemp("classify")
    hf = random_hf_model("classifier", seed=11)
    hf.save_pretrained(d / "hf")
    transformers.VivitImageProcessor(size={"shortest_edge": 32}, crop_size=32).save_pretrained(d / "hf")
    weights = minivivit.convert(d / "hf", d / "tiny.safetensors")
    frames = make_clip(seed=3, index=0, num_frames=20, size=64).frames  # uint8 [20, 64, 64, 3]
    video = encode_av(d / "clip.mp4", frames, "libx264", fps=10, options={"crf": "18"})
    return hf, d, weights, video


def test_cli_top1_and_logits_equal_hf_processor_and_model(setup):
    hf, _, weights, video = setup
    code, out, _ = run_cli(video, "--weights", weights, "--json", "--top-k", 5)
    assert code == 0
    result = json.loads(out)
    idx = [(2 * i + 1) * 20 // (2 * K) for i in range(K)]  # uniform: centres of 4 segments of 5 frames
    assert result["frames_used"] == [idx] == [[2, 7, 12, 17]]
    ref = hf_logits(hf, hf_frames(video)[idx], size={"shortest_edge": 32}, crop_size=32)
    ours = np.zeros_like(ref)
    for entry in result["top_k"]:
        ours[entry["class_id"]] = entry["logit"]
    assert result["top_k"][0]["class_id"] == int(np.argmax(ref))
    assert rel_err(ours, ref) <= TOL
    probs = torch.softmax(torch.from_numpy(ref), 0).numpy()
    np.testing.assert_allclose([e["probability"] for e in result["top_k"]], np.sort(probs)[::-1], atol=1e-6)
    assert result["video_info"]["num_frames"] == 20 and result["views"] == [1, 1]


def test_cli_hf_sampling_reads_preprocessor_config_like_the_hf_doc_pipeline(setup):
    """--weights HF-directory uses its preprocessor_config.json; --sampling hf is HF's doc sampler (seeded)."""
    hf, d, _, video = setup
    code, out, _ = run_cli(video, "--weights", d / "hf", "--json", "--sampling", "hf", "--frame-sample-rate", 3,
                           "--seed", 0)
    assert code == 0
    result = json.loads(out)
    np.random.seed(0)  # HF's doc: sample_frame_indices(clip_len=4, frame_sample_rate=3, seg_len=20)
    end = np.random.randint(12, 20)
    idx = np.clip(np.linspace(end - 12, end, num=4), end - 12, end - 1).astype(np.int64).tolist()
    assert result["frames_used"] == [idx]
    assert result["preprocessing"]["source"] == "preprocessor_config.json"
    ref = hf_logits(hf, hf_frames(video)[idx], size={"shortest_edge": 32}, crop_size=32)
    assert result["top_k"][0]["class_id"] == int(np.argmax(ref))
    assert abs(result["top_k"][0]["logit"] - ref.max()) <= TOL * max(1, np.abs(ref).max())


def test_cli_reads_a_preprocessor_config_stored_in_minivivit_metadata(setup, tmp_path):
    """A converted file may carry preprocessor_config.json in its metadata; classify then uses it."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    hf, _, weights, video = setup
    with safe_open(str(weights), framework="np") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    meta["preprocessor_config"] = json.dumps({"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32},
                                              "image_mean": [0.3, 0.4, 0.5]})
    save_file(tensors, str(tmp_path / "with-pre.safetensors"), metadata=meta)
    code, out, _ = run_cli(video, "--weights", tmp_path / "with-pre.safetensors", "--json")
    result = json.loads(out)
    assert code == 0 and result["preprocessing"]["source"] == "preprocessor_config.json"
    assert result["preprocessing"]["size"] == {"shortest_edge": 40}
    ref = hf_logits(hf, hf_frames(video)[[2, 7, 12, 17]], size={"shortest_edge": 40}, crop_size=32,
                    image_mean=[0.3, 0.4, 0.5])
    assert result["top_k"][0]["class_id"] == int(np.argmax(ref))
    assert abs(result["top_k"][0]["logit"] - ref.max()) <= TOL * max(1, np.abs(ref).max())


def test_cli_text_output_and_multiview_progress(setup):
    _, _, weights, video = setup
    code, out, err = run_cli(video, "--weights", weights, "--views", "2x3", "--top-k", 2)
    assert code == 0, err
    assert "20 frames of 64x64 @ 10 fps" in out and "top-2:" in out and "time: decode" in out
    assert "frames used (clip 1): [16, 17, 18, 19]" in out  # scenic: offsets 0 and 20 - 4 = 16
    assert "2 clip(s) x 3 crop(s) [left, centre, right]" in out
    assert "views" in err and "/6" in err  # the tqdm bar


def test_multiview_views_equal_hf_on_each_crop_and_logits_are_averaged():
    hf = random_hf_model("classifier", seed=12)
    model = to_minivivit(hf)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 60, 100, 3), dtype=np.uint8)  # landscape: 60x100 -> 32x53 after resize
    pred = classify(model, frames, views=(3, 3), top_k=5)
    np.testing.assert_array_equal(pred.indices, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])  # offsets 0, 4, 8
    assert pred.crops == ["left", "centre", "right"] and pred.view_logits.shape == (3, 3, 5)
    proc = transformers.VivitImageProcessor(size={"shortest_edge": 32}, do_center_crop=False)
    for c, idx in enumerate(pred.indices):
        full = proc(list(frames[idx]), return_tensors="pt")["pixel_values"]  # [1, 4, 3, 32, 53] HF-resized
        assert full.shape[-1] == 53
        for k, left in enumerate([0, 10, 21]):  # 53 - 32 = 21 columns of room: 0, 21 // 2, 21
            with torch.no_grad():
                ref = hf(pixel_values=full[..., left:left + 32]).logits[0].numpy()
            assert rel_err(pred.view_logits[c, k], ref) <= TOL, (c, k)
    np.testing.assert_allclose(pred.logits, pred.view_logits.mean(axis=(0, 1)), rtol=1e-6)
    expected = torch.softmax(torch.from_numpy(pred.logits), 0).numpy()
    np.testing.assert_allclose(pred.probabilities, np.sort(expected)[::-1], atol=1e-6)


def test_crop_positions_landscape_portrait_square():
    assert crop_positions((32, 53), (32, 32), 3) == [("left", None, 0), ("centre", None, 10), ("right", None, 21)]
    assert crop_positions((57, 32), (32, 32), 3) == [("top", 0, None), ("middle", 12, None), ("bottom", 25, None)]
    assert crop_positions((32, 32), (32, 32), 3) == [("left", None, 0), ("centre", None, 0), ("right", None, 0)]
    assert crop_positions((256, 341), (224, 224), 1) == [("centre", None, None)]
    assert [p[2] for p in crop_positions((10, 110), (10, 10), 5)] == [0, 25, 50, 75, 100]


def test_portrait_video_uses_top_middle_bottom():
    model = to_minivivit(random_hf_model("classifier", seed=13))
    frames = np.random.default_rng(1).integers(0, 256, (4, 100, 60, 3), dtype=np.uint8)
    assert classify(model, frames, views="1x3").crops == ["top", "middle", "bottom"]


# ---- errors -------------------------------------------------------------------------------------


def test_cli_errors_are_clear(setup, monkeypatch, tmp_path):
    _, _, weights, video = setup
    monkeypatch.delenv("MINIVIVIT_WEIGHTS", raising=False)
    monkeypatch.setattr(minivivit.checkpoint, "BUNDLED_WEIGHTS", tmp_path / "missing-demo.safetensors")
    code, _, err = run_cli(video)
    assert code == 2 and "no --weights given" in err and "missing-demo.safetensors" in err
    code, _, err = run_cli(tmp_path / "nope.mp4", "--weights", weights)
    assert code == 2 and "no such video file" in err
    code, _, err = run_cli(video, "--weights", weights, "--views", "4by3")
    assert code == 2 and "views must look like '4x3'" in err
    code, _, err = run_cli(video, "--weights", weights, "--views", "2x1", "--sampling", "uniform")
    assert code == 2 and "use Scenic's evenly spaced clips" in err


def test_base_model_without_head_is_refused():
    model = to_minivivit(random_hf_model("base", seed=1))
    with pytest.raises(ValueError, match="no classification head"):
        classify(model, np.zeros((4, 32, 32, 3), np.uint8))


def test_a_preprocessor_config_for_another_model_size_is_refused():
    model = to_minivivit(random_hf_model("classifier", seed=2))
    with pytest.raises(ValueError, match="crops 224x224 but the model takes 32x32"):
        classify(model, np.zeros((4, 40, 40, 3), np.uint8), processor_config={"size": 256, "crop_size": 224})


def test_parse_views():
    assert parse_views("4x3") == (4, 3) and parse_views((2, 1)) == (2, 1)
    with pytest.raises(ValueError, match="at least 1x1"):
        parse_views("0x3")


def test_classify_is_a_registered_command():
    out = subprocess.run([sys.executable, "-m", "minivivit", "classify", "--help"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and "--views" in out.stdout and "example" in out.stdout
