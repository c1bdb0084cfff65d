"""ViViT-B/16x2 Models 1-4 on the CPU: one 32x224x224 clip per variant, random weights, each variant in its own
process (so that peak memory is its own). Prints wall time (median of --repeats after one first call), the
paper's cost (minivivit.flops, GMAC), the achieved GMAC/s, and peak resident memory (VmHWM).

    python benchmarks/bench_variants.py                       # numba, all four models, ~2 min on 2 cores
    python benchmarks/bench_variants.py --backend numpy --repeats 1
    python benchmarks/bench_variants.py --layers 2 --frames 8 --image-size 112   # smoke run

Results measured on the project machine are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {  # name: ViViTConfig overrides (Table 2's four rows)
    "Model 1 spatio-temporal": {},
    "Model 2 factorised encoder": {"attention_type": "factorized_encoder"},
    "Model 3 factorised self-attention": {"attention_type": "factorized_self_attention_block", "classifier": "gap"},
    "Model 4 factorised dot-product": {"attention_type": "factorized_dot_product_attention", "classifier": "gap"},
}

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from minivivit import ViViTConfig, flops
from minivivit.kernels import get_backend
from minivivit.weights import expected_shapes, unflatten_params
from minivivit import factorized, model

args = json.loads(sys.argv[1])
config = ViViTConfig(**args["config"])
rng = np.random.default_rng(0)
params = unflatten_params({{k: (rng.standard_normal(s) * 0.02 + k.endswith(".g")).astype(np.float32)
                           for k, s in expected_shapes(config, head=True, pooler=False).items()}})
x = rng.standard_normal((1, config.num_frames, 3, *config.image_hw)).astype(np.float32)
ops = get_backend(args["backend"])

def run():
    if config.is_hf_model:
        return model.vivit_forward(params, config, x, backend=args["backend"])
    return factorized.forward(params, config, x, ops=ops)

t0 = time.perf_counter(); run(); first = time.perf_counter() - t0
times = []
for _ in range(args["repeats"]):
    t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"first": first, "median": float(np.median(times)), "gmac": flops(config) / 1e9,
                  "peak_mb": int(hwm) / 1024}}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="numba", choices=["numpy", "numba"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    base = {"num_hidden_layers": args.layers, "num_frames": args.frames, "image_size": args.image_size,
            "num_labels": 400}
    rows = {}
    for name, overrides in VARIANTS.items():
        child = {"config": {**base, **overrides}, "backend": args.backend, "repeats": args.repeats}
        r = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), json.dumps(child)],
                           capture_output=True, text=True, check=False)
        if r.returncode:
            sys.exit(f"{name} failed:\n{r.stderr[-3000:]}")
        rows[name] = json.loads(r.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    m1 = rows["Model 1 spatio-temporal"]["median"]
    print(f"| {args.backend} | median s | x Model 1 | GMAC (flops) | GMAC/s | first call s | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['median']:.2f} | {r['median'] / m1:.2f} | {r['gmac']:.1f} | {r['gmac'] / r['median']:.0f} "
              f"| {r['first']:.2f} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
