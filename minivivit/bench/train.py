"""One training step (forward + cross-entropy + backward to every parameter) of ViViT-B, minivivit against
HF transformers + torch autograd: the harness behind `minivivit bench-train` and benchmarks/train_step.py.

Contenders, each in its own process on the same random weights (an HF model saved once and its minivivit
conversion, harness.make_inputs), the same clip [1, T, 3, H, W] and the same label:

    numpy     minivivit.grad.value_and_grad(..., backend="numpy"): the NumPy backward (the specification)
    numba     the same with backend="numba": numba forward and backward kernels (grad/fast.py)
    hf-sdpa   VivitForVideoClassification(attn_implementation="sdpa"), cross_entropy, loss.backward()
    hf-eager  the same with attn_implementation="eager"

The machine may be shared, so contenders are interleaved: each of `rounds` rounds runs every contender
once (one process: load, one warm-up step, `repeats` timed steps). Reported per contender: the median
step time over all rounds, the median over rounds of its time / hf-sdpa's time in the same round (the
ratio that survives a changing load), peak RSS while stepping (VmHWM, reset after loading and warm-up
where the kernel allows it) and the loss (all contenders compute the same one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

VARIANTS = ("numpy", "numba", "hf-sdpa", "hf-eager")
LABEL = 7


def worker(spec: dict) -> dict:
    """In this process: load one contender, one warm-up step, `repeats` timed steps, peak RSS."""
    import numpy as np

    from .worker import peak_rss_mb, reset_peak_rss

    directory, variant = Path(spec["dir"]), spec["variant"]
    clip = np.load(directory / "clip.npy")
    if variant.startswith("hf-"):
        import torch
        from transformers import VivitForVideoClassification

        torch.set_num_threads(spec["threads"])
        model = VivitForVideoClassification.from_pretrained(directory / "hf", attn_implementation=variant[3:])
        model.train()  # dropout probabilities are 0 in this config: train mode changes nothing else
        x, y = torch.from_numpy(clip), torch.tensor([LABEL])

        def step():
            model.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x).logits, y)
            loss.backward()
            return float(loss.detach())
    else:
        import minivivit
        from minivivit.grad import value_and_grad

        model = minivivit.load(directory / "minivivit.safetensors")
        y = np.array([LABEL])

        def step():
            loss, _grads = value_and_grad(model, clip, y, backend=variant)
            return loss

    result = {"variant": variant, "peak_rss_load_mb": peak_rss_mb()}
    t0 = time.perf_counter()
    loss = step()  # warm-up: numba's cached kernels load, first-touch page faults
    result["warmup_s"] = time.perf_counter() - t0
    result["peak_is_steady"] = reset_peak_rss()  # from here on VmHWM is the peak of the timed steps
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    result.update(step_s=times, loss=loss, peak_rss_mb=peak_rss_mb())
    return result


def _run_worker(spec: dict, env: dict) -> dict:
    cmd = [sys.executable, "-m", "minivivit.bench.train", json.dumps(spec)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {spec['variant']} training-step process failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _load_average() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run(variants, *, layers=12, frames=32, image_size=224, rounds=2, repeats=1, threads=2, seed=0,
        progress=print) -> dict:
    """Interleaved rounds of every contender; returns the report (see format_table)."""
    from .harness import THREAD_VARIABLES, make_inputs, vivit_b

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"unknown or no variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if rounds < 1 or repeats < 1 or threads < 1:
        raise ValueError(f"rounds, repeats and threads must be at least 1; got {rounds}, {repeats}, {threads}")
    cfg = vivit_b(image_size=image_size, num_frames=frames, num_hidden_layers=layers)
    env = dict(os.environ, **{k: str(threads) for k in THREAD_VARIABLES})
    report = {"config": {"layers": layers, "frames": frames, "image_size": image_size, "threads": threads,
                         "rounds": rounds, "repeats": repeats, "dtype": "float32", "clips": 1},
              "load_average_start": _load_average(), "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        make_inputs(Path(tmp), cfg, seed)
        for r in range(rounds):
            order = variants if r % 2 == 0 else variants[::-1]  # alternate the order too
            results = {}
            for v in order:
                results[v] = _run_worker({"dir": tmp, "variant": v, "repeats": repeats, "threads": threads}, env)
                res = results[v]
                progress(f"round {r + 1}/{rounds} {v:9s} step {', '.join(f'{t:.1f}' for t in res['step_s'])} s   "
                         f"peak RSS {res['peak_rss_mb']:.0f} MB   loss {res['loss']:.6f}   load {_load_average()}")
            report["rounds"].append(results)
    report["load_average_end"] = _load_average()
    report["summary"] = summarise(report)
    return report


def summarise(report: dict) -> dict:
    """Per contender: median step time over all rounds, median per-round ratio to hf-sdpa, max peak RSS."""
    rounds = report["rounds"]
    out = {}
    for v in rounds[0]:
        steps = [t for rd in rounds for t in rd[v]["step_s"]]
        s = {"median_step_s": median(steps), "steps_s": steps,
             "peak_rss_mb": max(rd[v]["peak_rss_mb"] for rd in rounds), "loss": rounds[0][v]["loss"]}
        if "hf-sdpa" in rounds[0]:
            s["ratio_to_hf_sdpa"] = median(median(rd[v]["step_s"]) / median(rd["hf-sdpa"]["step_s"]) for rd in rounds)
            s["memory_ratio_to_hf_sdpa"] = s["peak_rss_mb"] / max(rd["hf-sdpa"]["peak_rss_mb"] for rd in rounds)
        out[v] = s
    return out


def format_table(report: dict) -> str:
    c = report["config"]
    lines = [(f"one training step, ViViT {c['layers']} layers, {c['frames']}x{c['image_size']}x{c['image_size']}, "
              f"1 clip, fp32, {c['threads']} threads, {c['rounds']} interleaved rounds x {c['repeats']} step(s); "
              f"load average {report['load_average_start']} -> {report['load_average_end']}"),
             "| contender | median step s | time / hf-sdpa | peak RSS MB | memory / hf-sdpa | loss |",
             "| --- | --- | --- | --- | --- | --- |"]
    for v, s in report["summary"].items():
        ratio = f"{s['ratio_to_hf_sdpa']:.2f}x" if "ratio_to_hf_sdpa" in s else "-"
        mem = f"{s['memory_ratio_to_hf_sdpa']:.2f}x" if "memory_ratio_to_hf_sdpa" in s else "-"
        lines.append(f"| {v} | {s['median_step_s']:.1f} | {ratio} | {s['peak_rss_mb']:.0f} | {mem} | {s['loss']:.6f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # a worker: python -m minivivit.bench.train SPEC_JSON
    print("RESULT " + json.dumps(worker(json.loads(sys.argv[1]))))
