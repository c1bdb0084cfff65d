"""`minivivit bench-train` (minivivit/bench/train.py) on a tiny model: every contender computes the same loss
(torch's cross-entropy on HF's model and minivivit's, from the same saved weights), the report is complete,
and bad arguments get a clear error. Timings are printed, never asserted."""

import pytest

pytest.importorskip("torch", reason="the benchmark's weights are made by transformers (dev extra)")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow  # four benchmark processes (numba and torch imports), 30 s to minutes on a busy machine

from minivivit.bench.train import format_table, run  # noqa: E402
from minivivit.cli import main  # noqa: E402


def test_tiny_training_step_benchmark_agrees_on_the_loss():
    report = run(["numba", "hf-sdpa"], layers=1, frames=4, image_size=32, rounds=2, repeats=1,
                 progress=lambda s: None)
    s = report["summary"]
    assert set(s) == {"numba", "hf-sdpa"} and len(report["rounds"]) == 2
    for v in ("numba",):
        assert abs(s[v]["loss"] - s["hf-sdpa"]["loss"]) <= 1e-5 * max(1.0, abs(s["hf-sdpa"]["loss"]))
        assert s[v]["ratio_to_hf_sdpa"] > 0 and s[v]["peak_rss_mb"] > 0 and len(s[v]["steps_s"]) == 2
    assert s["hf-sdpa"]["ratio_to_hf_sdpa"] == 1.0
    table = format_table(report)
    assert "| numba |" in table and "time / hf-sdpa" in table


def test_bad_arguments_say_what_to_do(capsys):
    with pytest.raises(ValueError, match="choose from numpy, numba, hf-sdpa, hf-eager"):
        run(["torch"], layers=1, frames=4, image_size=32)
    with pytest.raises(ValueError, match="at least 1"):
        run(["numpy"], layers=1, frames=4, image_size=32, rounds=0)
    assert main(["bench-train", "--frames", "1", "--image-size", "32", "--layers", "1"]) == 2
    assert "do not make a ViViT" in capsys.readouterr().err
