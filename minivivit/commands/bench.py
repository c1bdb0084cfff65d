"""`minivivit bench`: numpy, numba and HF transformers side by side (the harness is minivivit/bench/)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub):
    from minivivit.bench.harness import ALL_BACKENDS  # standard library only: --help stays fast

    p = sub.add_parser(
        "bench",
        help="time numpy / numba / HF-torch / ONNX Runtime / OpenVINO forward passes side by side",
        description=(
            "Benchmark one clip through ViViT-B (random weights) on each backend: minivivit's numpy and numba "
            "backends, HF transformers on torch CPU with attn_implementation sdpa and eager, and HF's model exported "
            "to ONNX (torch.onnx.export) run by ONNX Runtime and OpenVINO (the CPU peers; they need the bench extra). "
            "Each backend runs in its own process on the same weights and clip, and each one's logits are checked "
            "against HF eager's (relative error <= 1e-5). Prints a table (or --json): median wall time, ratio to "
            "HF-SDPA, GFLOP/s, fraction of the measured fp32 GEMM peak, peak RSS, first-call cost (numba JIT), "
            "attention capture cost, the logits check. Threads: NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS / "
            "OMP_NUM_THREADS are passed through; the peers get --threads (default: every core) intra-op threads. "
            "A full run takes about 15 minutes on 2 cores; use --layers/--frames/--image-size/--repeats to shrink it."
        ),
        epilog=(
            "examples:\n"
            "  minivivit bench                                   # ViViT-B, 32x224x224, 3 repeats\n"
            "  minivivit bench --backends numba,hf-sdpa --repeats 5\n"
            "  minivivit bench --backends numba,openvino,onnxruntime,hf-sdpa --no-capture   # against the CPU peers\n"
            "  minivivit bench --layers 2 --frames 8 --image-size 112 --repeats 1 --json   # a quick smoke run"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backends", default=None,
                   help=f"comma-separated subset of {','.join(ALL_BACKENDS)} (default: all; onnxruntime and openvino "
                        f"when the bench extra is installed)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per backend (default: 3)")
    p.add_argument("--layers", type=int, default=12, help="encoder blocks (default: 12, ViViT-B)")
    p.add_argument("--frames", type=int, default=32, help="clip frames (default: 32)")
    p.add_argument("--image-size", type=int, default=224, help="frame height = width (default: 224)")
    p.add_argument("--no-capture", action="store_true", help="skip the attention-capture timings")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and clip (default: 0)")
    p.add_argument("--peak-seconds", type=float, default=3.0,
                   help="time spent measuring the GEMM peak per library (default: 3)")
    p.add_argument("--threads", type=int,
                   help="threads for every backend: sets NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and "
                        "MKL_NUM_THREADS in the benchmark processes (default: leave the environment as it is)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def check_args(args) -> None:
    """Refuse impossible benchmark settings before anything is built (the model config through ViViTConfig's rules)."""
    import math

    from minivivit.bench.harness import vivit_b
    from minivivit.config import ViViTConfig

    cfg = vivit_b(num_hidden_layers=args.layers, num_frames=args.frames, image_size=args.image_size)
    try:
        ViViTConfig.from_hf_dict(cfg)
    except ValueError as e:
        raise ValueError(f"--layers {args.layers} / --frames {args.frames} / --image-size {args.image_size} do not make "
                         f"a ViViT: {e}") from None
    if not (math.isfinite(args.peak_seconds) and 0 <= args.peak_seconds <= 600):
        raise ValueError(f"--peak-seconds must be a number of seconds in [0, 600]; got {args.peak_seconds}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer; got {args.seed}")
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be at least 1")


def run(args) -> int:
    from minivivit.bench.harness import format_table
    from minivivit.bench.harness import run as run_benchmark

    check_args(args)
    report = run_benchmark(args)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
