"""`minivivit debug compare --hf HF_DIR [--weights W] [--video V]`: layer-by-layer comparison with HF."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time

from .common import add_backend_argument, resolve_backend

MAPS_LIMIT_BYTES = 2 * 2**30  # above this, attention maps (scores, probs) are left out unless --include asks


def add_parser(sub):
    p = sub.add_parser(
        "debug",
        help="compare minivivit with HF transformers intermediate by intermediate",
        description="Step-by-step debugging of a port. See minivivit.debug for the Python API "
                    "(trace, hf_trace, compare, run with replace=..., precision_drift).",
    )
    dsub = p.add_subparsers(dest="debug_command", metavar="SUBCOMMAND")
    dsub.required = True
    c = dsub.add_parser(
        "compare",
        help="run minivivit and HF transformers on the same clip and print a table of every intermediate",
        description=textwrap.fill(
            "Load an HF ViViT checkpoint with transformers (eager attention) and the same weights in minivivit "
            "(converted in memory, or a converted --weights file), run both on one clip and compare every named "
            "intermediate (embed.patches, blocks.i.q, blocks.i.probs, blocks.i.fc1, ..., logits): shape, max |a-b|, "
            "max |a-b| / max |b| and allclose, and the first name where they diverge. a = minivivit, b = HF. "
            "Exit status: 0 when everything matches, 1 when something diverges, 2 on errors. Needs the dev extra "
            "(torch + transformers).", width=100
        ),
        epilog=(
            "examples:\n"
            "  minivivit debug compare --hf vivit-b-16x2-kinetics400\n"
            "  minivivit debug compare --hf vivit-b-16x2-kinetics400 --weights vivit-b-k400.safetensors "
            "--video clip.mp4\n"
            "  minivivit debug compare --hf my-vivit --include 'blocks.0.*' 'logits' --atol 1e-5\n"
            "At ViViT-B size the attention maps of all 12 layers take about 11 GB per model, so they are left out\n"
            "unless --include names them (e.g. --include '*' or --include 'blocks.11.*')."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--hf", required=True, metavar="HF_DIR",
                   help="HF model directory (config.json + model.safetensors or pytorch_model.bin)")
    c.add_argument("--weights", help="minivivit .safetensors to test (default: HF_DIR converted in memory)")
    c.add_argument("--video", help="video file or frame folder (default: a random clip, see --seed)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random clip when no --video is given (default: 0)")
    c.add_argument("--include", nargs="+", metavar="GLOB", help="trace names to compare (fnmatch globs; default: all)")
    c.add_argument("--exclude", nargs="+", metavar="GLOB", help="trace names to leave out (fnmatch globs)")
    c.add_argument("--atol", type=float, help="absolute tolerance (default: per dtype, 1e-4 for float32)")
    c.add_argument("--rtol", type=float, help="relative tolerance (default: per dtype, 1e-4 for float32)")
    add_backend_argument(c, auto=False, help_prefix="minivivit backend (the trace runs attention as the reference's steps anyway); ")


def _load_hf(hf_dir, structure, torch_needed_message):
    """The HF model of HF_DIR, built like `structure` (the checkpoint converted by minivivit: head? pooler?)."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        raise RuntimeError(torch_needed_message) from e
    if structure.has_head:
        cls, kwargs = transformers.VivitForVideoClassification, {}
    else:
        cls, kwargs = transformers.VivitModel, {"add_pooling_layer": "pooler" in structure.params}
    hf_model, info = cls.from_pretrained(hf_dir, attn_implementation="eager", local_files_only=True,
                                         output_loading_info=True, **kwargs)
    if info.get("missing_keys"):
        raise ValueError(f"transformers left {len(info['missing_keys'])} weight(s) of {hf_dir} randomly initialised "
                         f"(missing: {sorted(info['missing_keys'])[:4]}); the comparison would be meaningless")
    return hf_model.eval()


def _clip(args, config):
    """pixel_values [1, T, C, H, W] and a line saying where they came from."""
    import numpy as np

    if args.video is None:
        rng = np.random.default_rng(args.seed)
        shape = (1, config.num_frames, config.num_channels, *config.image_hw)
        note = (f"clip: random N(0, 1) pixel values {shape} (seed {args.seed}); pass --video clip.mp4 for real "
                f"frames")
        return rng.standard_normal(shape).astype(np.float32), note
    from minivivit.video import VideoDependencyError, read_video
    from minivivit.video.preprocess import preprocess_for, processor_config_for_weights

    try:
        frames, meta = read_video(args.video, num_frames=config.num_frames)  # [T, H, W, 3] uint8
    except VideoDependencyError as e:
        raise RuntimeError(str(e)) from e
    pixel_values = preprocess_for(config, frames, processor_config=processor_config_for_weights(args.hf))
    note = (f"clip: {args.video}, frames {meta.indices.tolist()} of {meta.num_frames}, preprocessed to "
            f"{pixel_values.shape}")
    return pixel_values, note


def _default_exclude(args, config):
    """Leave the attention maps out when they would not fit comfortably in memory."""
    if args.include or args.exclude:
        return args.exclude
    n = config.num_patches + 1
    maps = 2 * 2 * config.num_hidden_layers * config.num_attention_heads * n * n * 4  # 2 models x (scores, probs)
    if maps <= MAPS_LIMIT_BYTES:
        return None
    print(f"note: leaving out blocks.*.scores and blocks.*.probs ({maps / 2**30:.1f} GB for both models); "
          f"add --include '*' to compare them too, or --include 'blocks.11.*' for one layer")
    return ["blocks.*.scores", "blocks.*.probs"]


def run(args) -> int:
    import minivivit
    from minivivit import debug

    needs = ("minivivit debug compare needs torch and transformers (the reference stack of the dev extra): "
             "python -m pip install -e '.[dev]'")
    from pathlib import Path

    if not (Path(args.hf) / "config.json").is_file():
        raise FileNotFoundError(f"--hf {args.hf}: expected an HF model directory with config.json (e.g. from "
                                f"`hf download google/vivit-b-16x2-kinetics400 --local-dir DIR`)")
    converted = minivivit.load(args.hf)  # the checkpoint as minivivit reads it: tells which HF class to build
    hf_model = _load_hf(args.hf, converted, needs)
    model = converted if args.weights is None else minivivit.load(args.weights)
    print(f"a = minivivit: {model}\nb = HF: {type(hf_model).__name__} from {args.hf}")
    pixel_values, note = _clip(args, model.config)
    print(note)
    resolve_backend(args, auto=False)
    exclude = _default_exclude(args, model.config)
    t0 = time.perf_counter()
    ours = debug.trace(model, pixel_values, backend=args.backend, include=args.include, exclude=exclude)
    t1 = time.perf_counter()
    ref = debug.hf_trace(hf_model, pixel_values, include=args.include, exclude=exclude)
    t2 = time.perf_counter()
    print(f"traced {len(ours)} intermediates: minivivit {t1 - t0:.2f} s, HF {t2 - t1:.2f} s")
    report = debug.compare(ours, ref, atol=args.atol, rtol=args.rtol, labels=("minivivit", "HF"))
    print(report)
    sys.stdout.flush()
    return 0 if report.ok else 1
