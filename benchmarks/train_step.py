"""One training step (forward + backward, one clip) of ViViT-B: minivivit vs HF transformers + torch autograd.

    python benchmarks/train_step.py                                   # numpy, numba, hf-sdpa, hf-eager; ~6 min
    python benchmarks/train_step.py --variants numpy,hf-sdpa --repeats 2
    python benchmarks/train_step.py --layers 2 --frames 8 --image-size 112   # smoke run, < 1 min

Variants, each in its own process on the same random weights (an HF model saved once + its minivivit
conversion, as `minivivit bench` makes them) and the same clip and label:

    numpy     minivivit.grad.value_and_grad, forward and per-block re-runs on the numpy backend
    numba     the same with the forward and the re-runs on the numba backend (the backward is NumPy)
    hf-sdpa   VivitForVideoClassification(attn_implementation="sdpa"), cross_entropy, loss.backward()
    hf-eager  the same with attn_implementation="eager"

Reported: wall time of each step (the first includes one-off costs), peak resident memory while
loading and while stepping (VmHWM from /proc/self/status, reset after loading), the loss.
Results measured on the project machine are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minivivit.bench.harness import make_inputs, vivit_b
from minivivit.bench.worker import peak_rss_mb, reset_peak_rss

VARIANTS = ("numpy", "numba", "hf-sdpa", "hf-eager")
LABEL = 7


def worker(spec: dict) -> dict:
    import numpy as np

    directory, variant = Path(spec["dir"]), spec["variant"]
    clip = np.load(directory / "clip.npy")
    t0 = time.perf_counter()
    if variant.startswith("hf-"):
        import torch
        from transformers import VivitForVideoClassification

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
            loss, grads = value_and_grad(model, clip, y, backend=variant)
            return loss

    result = {"variant": variant, "load_s": time.perf_counter() - t0, "peak_rss_load_mb": peak_rss_mb()}
    result["run_peak_is_separate"] = reset_peak_rss()
    times, losses = [], []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    result.update(step_s=times, loss=losses, peak_rss_run_mb=peak_rss_mb())
    return result


def run_worker(spec: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['variant']} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=2, help="steps per variant (the first includes one-off costs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))))
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    cfg = vivit_b(image_size=args.image_size, num_frames=args.frames, num_hidden_layers=args.layers)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        make_inputs(Path(tmp), cfg, args.seed)
        for v in variants:
            results.append(run_worker({"dir": tmp, "variant": v, "repeats": args.repeats}))
            r = results[-1]
            if not args.json:
                print(f"{v:9s} steps {', '.join(f'{t:.1f}' for t in r['step_s'])} s   peak RSS load "
                      f"{r['peak_rss_load_mb']:.0f} MB / step {r['peak_rss_run_mb']:.0f} MB   loss {r['loss'][0]:.6f}",
                      flush=True)
    if args.json:
        print(json.dumps({"config": cfg, "threads": os.cpu_count(), "load_average": os.getloadavg(),
                          "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
