"""The CPU peers of `minivivit bench` (HF's model exported to ONNX, on ONNX Runtime and OpenVINO): run through
the harness on a 1-layer model, their logits equal HF eager's computed here, and the harness's check can fail."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="the peers run HF's model exported with torch.onnx (dev extra)")
pytest.importorskip("onnxruntime", reason="the bench extra")
pytest.importorskip("openvino", reason="the bench extra")
pytest.importorskip("onnx", reason="the bench extra")

pytestmark = pytest.mark.torch

ARGS = ["--layers", "1", "--frames", "4", "--image-size", "32", "--repeats", "1", "--peak-seconds", "0.1",
        "--no-capture", "--threads", "2", "--json"]
TINY = dict(num_hidden_layers=1, num_frames=4, image_size=32, hidden_size=48, num_attention_heads=3, intermediate_size=64)


def test_peers_run_hf_model_with_hf_logits(tmp_path):
    """The harness's steps on a tiny model: make_inputs, export_onnx, one worker process per peer, the check."""
    import torch

    from minivivit.bench import harness
    from minivivit.bench.hf_reference import random_hf_model
    from minivivit.bench.peers import export_onnx

    cfg = harness.vivit_b(**TINY)
    harness.make_inputs(tmp_path, cfg, seed=3)
    export_onnx(tmp_path / "hf", tmp_path, cfg)
    spec = {"dir": str(tmp_path), "repeats": 1, "capture": False, "threads": 2}
    results = {p: harness._run_worker(dict(spec, backend=p), dict(__import__("os").environ))
               for p in ("onnxruntime", "openvino")}
    harness._check_logits(results, tmp_path, print)  # against HF eager's, computed by the harness
    model = random_hf_model(cfg, "classifier", 3)  # the same model, and HF eager's logits computed here
    model.config._attn_implementation = "eager"
    clip = np.load(tmp_path / "clip.npy")
    with torch.inference_mode():
        ref = model(torch.from_numpy(clip)).logits.numpy()
    for name, r in results.items():
        assert r["logits_ok"] and r["logits_rel_err"] <= 1e-5, (name, r["logits_rel_err"])
        ours = np.load(tmp_path / f"logits-{name}.npy")
        assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max(), name
        assert r["median_s"] > 0 and r["peak_rss_mb"] > 20


def test_the_logits_check_fails_on_wrong_logits(tmp_path):
    from minivivit.bench.harness import _check_logits

    ref = np.array([[1.0, -2.0, 3.0]], np.float32)
    np.save(tmp_path / "logits-hf-eager.npy", ref)
    np.save(tmp_path / "logits-good.npy", ref + 1e-6)
    np.save(tmp_path / "logits-bad.npy", ref + np.array([[0, 0, 1e-3]], np.float32))
    results = {"hf-eager": {}, "good": {}, "bad": {}}
    _check_logits(results, tmp_path, print)
    assert results["good"]["logits_ok"] and results["hf-eager"]["logits_rel_err"] == 0
    assert not results["bad"]["logits_ok"] and results["bad"]["logits_rel_err"] == pytest.approx(1e-3 / 3, rel=1e-3)


def test_a_peer_without_the_bench_extra_is_refused_clearly(monkeypatch):
    from minivivit.bench import harness
    from minivivit.cli import main

    monkeypatch.setattr(harness, "_importable", lambda *names: False)
    assert harness.default_backends() == "numpy,numba,hf-sdpa,hf-eager"
    assert main(["bench", "--backends", "openvino", *ARGS]) == 2
