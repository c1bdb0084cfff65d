"""One training step (forward + backward, one clip) of ViViT-B: minivivit vs HF transformers + torch autograd.

    python benchmarks/train_step.py                                   # numpy, numba, hf-sdpa, hf-eager; 2 rounds
    python benchmarks/train_step.py --variants numba,hf-sdpa --rounds 3
    python benchmarks/train_step.py --layers 2 --frames 8 --image-size 112 --rounds 1   # smoke run, < 1 min

The same benchmark as `minivivit bench-train` (the harness is minivivit/bench/train.py: contenders, each
in its own process on the same random weights, clip and label, interleaved over rounds; median step
time after one warm-up step, the same-round ratio to hf-sdpa, peak RSS, the loss):

    numpy     minivivit.grad.value_and_grad, backend="numpy" (the NumPy backward, the specification)
    numba     the same with backend="numba" (numba forward and backward kernels, grad/fast.py)
    hf-sdpa   VivitForVideoClassification(attn_implementation="sdpa"), cross_entropy, loss.backward()
    hf-eager  the same with attn_implementation="eager"

Results measured on the project machine are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from minivivit.bench.train import VARIANTS, format_table, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the contenders")
    p.add_argument("--repeats", type=int, default=1, help="timed steps per contender and round (after one warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    report = run(variants, layers=args.layers, frames=args.frames, image_size=args.image_size, rounds=args.rounds,
                 repeats=args.repeats, threads=args.threads, seed=args.seed,
                 progress=(lambda s: None) if args.json else lambda s: print(s, flush=True))
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
