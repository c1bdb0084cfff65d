"""`minivivit explore [VIDEO] --out view.html [--weights W] [--layers-full L] [--budget MB] [--force]`."""

from __future__ import annotations

import argparse

from .common import add_backend_argument, resolve_backend

DEFAULT_OUT = "explorer.html"


def add_parser(sub):
    from minivivit.data import VISIT_LABELS  # NumPy only

    p = sub.add_parser(
        "explore",
        help="write an interactive attention explorer: one offline HTML file (layers, heads, rollout, click a tubelet)",
        description=(
            "Run the model on VIDEO and write ONE self-contained HTML file (script, styles and data inline; no\n"
            "server, no network) to explore its attention: the frames the model saw with the map over them; layer,\n"
            "head (or mean/max), method (raw CLS attention, rollout), time slice and playback; click a tubelet to see\n"
            "its own row of the attention map across space and time; per-head mean attention distance in space and\n"
            "time; values under the cursor; keyboard keys. The clip is read and preprocessed as `minivivit attention`\n"
            "does.\n\n"
            "Size: the CLS rows of every layer and head (exact float32), the rollout and the distances are always in\n"
            "the file; full maps (for clicking a tubelet) are 8-bit, one per layer and head choice, as many as fit the\n"
            "--budget (default 25 MB). At ViViT-B (N = 3137 tokens) one full map is 13.1 MB, so by default the file holds\n"
            "the last layer's head-mean map; the page says what was left out. In a notebook,\n"
            "minivivit.explain.explore.explore(model, clip) computes any clicked row on demand instead.\n\n"
            "Without VIDEO (or with --demo): the bundled demo model on a generated clip (minivivit.data.make_visit_clip).\n"
            "Without --out the file goes to explorer.html, or explorer-2.html, ... if that exists; an explicit --out is\n"
            "never overwritten without --force."
        ),
        epilog=(
            "examples:\n"
            "  minivivit explore                                        demo model, generated clip -> explorer.html\n"
            "  minivivit explore --demo --seed 3 --label top-left --out tl.html\n"
            "  minivivit explore clip.mp4 --out view.html --weights vivit-b-k400.safetensors --backend numba\n"
            "  minivivit explore clip.mp4 --out view.html --layers-full 0,-1 --budget 40\n"
            "  minivivit explore clip.npy --out view.html --layers-full none       CLS rows only (smallest file)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", nargs="?",
                   help="video file, animated GIF/APNG/WebP, a folder of frames, or a .npy uint8 [T, H, W, 3] "
                        "(default: a generated clip for the demo model)")
    p.add_argument("--out", help=f"the .html file to write (default: {DEFAULT_OUT}, or a fresh numbered name)")
    p.add_argument("--demo", action="store_true", help="the bundled demo model on a generated clip (the default without VIDEO)")
    p.add_argument("--seed", type=int, default=0, help="--demo: which generated clip (default: 0)")
    p.add_argument("--label", choices=VISIT_LABELS, help="--demo: the quadrant where the object ends (default: drawn "
                                                         "with the clip)")
    p.add_argument("--weights", help="minivivit .safetensors or HF model directory (default: the bundled demo model)")
    p.add_argument("--preset", choices=["hf", "scenic"], help="pixel range, as in `minivivit classify`")
    add_backend_argument(p)
    p.add_argument("--layers-full", default="auto", metavar="LAYERS",
                   help="which layers' full maps to embed: auto (default: as many as fit, last layer first), all, none, "
                        "or indices such as -1 or 0,5,11")
    p.add_argument("--budget", type=float, default=25.0, metavar="MB",
                   help="largest file size in MB (10^6 bytes; default: 25)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="classes listed with the prediction (default: 5)")
    p.add_argument("--frames", default="auto", choices=["auto", "png", "jpeg"],
                   help="how frames are stored: auto (PNG unless they would take over 1/8 of the budget, then JPEG), "
                        "png, jpeg")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args) -> int:
    import os
    import sys
    import time
    from pathlib import Path

    import minivivit
    from minivivit.commands.demo import fresh_path
    from minivivit.explain import format_bytes
    from minivivit.explain.explore import budget as budget_mod
    from minivivit.explain.explore.page import build_html, write_html

    if args.out is None:
        out = fresh_path(DEFAULT_OUT)
    else:
        out = Path(args.out)
        if out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out must end in .html (one self-contained page); got {out.name!r}")
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} already exists; pass --force to replace it, or choose another --out")
    if not args.budget > 0:
        raise ValueError(f"--budget must be a positive number of MB; got {args.budget}")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1; got {args.top_k}")
    if args.video and args.demo:
        raise ValueError("give either VIDEO or --demo (a generated clip), not both")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer; got {args.seed}")
    if args.video and not Path(args.video).exists():
        raise FileNotFoundError(f"no such video: {args.video}")
    demo = not args.video
    if demo and args.weights:
        raise ValueError("--weights needs a VIDEO: the generated demo clip is made for the bundled demo model")

    weights = args.weights or os.environ.get("MINIVIVIT_WEIGHTS") or minivivit.DEFAULT_WEIGHTS
    if not os.path.exists(weights):
        raise FileNotFoundError(f"no --weights given and the bundled demo model {weights} does not exist (yet). "
                                f"Pass --weights model.safetensors or an HF model directory.")
    model = minivivit.load(weights)
    resolve_backend(args)
    layers = budget_mod.parse_layers(args.layers_full, model.config.num_hidden_layers)  # fail before the forward pass
    say = (lambda *a: None) if args.no_progress else (lambda *a: print(*a, file=sys.stderr, flush=True))

    if demo:
        from minivivit.data import make_visit_clip

        c = model.config
        clip = make_visit_clip(args.seed, 0, num_frames=c.num_frames, size=c.image_hw[0], label=args.label)
        source, processor_config = (f"generated clip (seed {args.seed}, a {clip.shape} that ends {clip.label_name})",
                                    None)
    else:
        from minivivit.video.preprocess import processor_config_for_weights

        clip, source, processor_config = args.video, args.video, processor_config_for_weights(weights)
    say(f"model: {model}")
    say(f"clip: {source}; running the model ({args.backend} backend), then every layer's maps")
    t0 = time.perf_counter()
    html, info = build_html(model, clip, layers_full=layers, budget=int(args.budget * 1e6), backend=args.backend,
                            processor_config=processor_config, preset=args.preset, top_k=args.top_k,
                            frame_format=args.frames, progress=not args.no_progress)
    write_html(out, html, overwrite=args.force or args.out is None)
    data = info["data"]
    if data.prediction is not None:
        p = data.prediction
        print(f"prediction: {p['labels'][p['predicted']]} ({100 * p['probs'][p['predicted']]:.1f}%)")
    print(f"wrote {out}: {format_bytes(info['bytes'])} (budget {format_bytes(info['budget'])}) in "
          f"{time.perf_counter() - t0:.1f} s")
    for line in budget_mod.describe_units(data.sets, info["units"]) or ["none (CLS rows only)"]:
        print(f"  full maps: {line}")
    for line in info["left_out"]:
        print(f"  left out: {line}")
    print(f"open it in any browser: {out.resolve().as_uri()} (it needs no network)")
    return 0
