"""`minivivit bench-train`: one training step (forward + backward) of ViViT-B, minivivit vs HF + torch autograd
(the harness is minivivit/bench/train.py)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub):
    from minivivit.bench.train import VARIANTS  # standard library only: --help stays fast

    p = sub.add_parser(
        "bench-train",
        help="time one training step (forward + backward) of numpy / numba / HF-torch autograd side by side",
        description=(
            "Benchmark one training step of ViViT-B (random weights, one clip, fp32): forward, cross-entropy on "
            "one label and the backward to every parameter, for minivivit.grad on the numpy and numba backends "
            "and HF transformers + torch autograd (attn_implementation sdpa and eager). Each contender runs in "
            "its own process (one warm-up step, then the timed ones); contenders are interleaved over --rounds "
            "rounds so that a changing machine load hits them alike. Prints the median step time, the ratio to "
            "hf-sdpa (median over rounds of the same-round ratio), peak RSS and the loss. ViViT-B at 2 threads "
            "takes a few minutes per contender and round; --layers/--frames/--image-size shrink it."
        ),
        epilog=(
            "examples:\n"
            "  minivivit bench-train                                  # ViViT-B, 32x224x224, 2 threads, 2 rounds\n"
            "  minivivit bench-train --variants numba,hf-sdpa --rounds 3\n"
            "  minivivit bench-train --layers 2 --frames 8 --image-size 112 --rounds 1   # a quick smoke run"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the contenders (default: 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed steps per contender and round (default: 1)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads of every contender (NUMBA/OPENBLAS/OMP/MKL_NUM_THREADS, torch.set_num_threads); "
                        "default: 2")
    p.add_argument("--layers", type=int, default=12, help="encoder blocks (default: 12, ViViT-B)")
    p.add_argument("--frames", type=int, default=32, help="clip frames (default: 32)")
    p.add_argument("--image-size", type=int, default=224, help="frame height = width (default: 224)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and clip (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args) -> int:
    from minivivit.bench.harness import vivit_b
    from minivivit.bench.train import format_table
    from minivivit.bench.train import run as run_benchmark
    from minivivit.config import ViViTConfig

    try:
        ViViTConfig.from_hf_dict(vivit_b(num_hidden_layers=args.layers, num_frames=args.frames,
                                         image_size=args.image_size))
    except ValueError as e:
        raise ValueError(f"--layers {args.layers} / --frames {args.frames} / --image-size {args.image_size} do not make "
                         f"a ViViT: {e}") from None
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    report = run_benchmark(variants, layers=args.layers, frames=args.frames, image_size=args.image_size,
                           rounds=args.rounds, repeats=args.repeats, threads=args.threads, seed=args.seed,
                           progress=(lambda s: None) if args.json else print)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
