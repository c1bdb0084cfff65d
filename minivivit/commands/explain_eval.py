"""`minivivit explain-eval [DATA] --out DIR [--methods raw,rollout,gae,...] [--clips N] [--seed S]`:
the perturbation test of every explanation method over a set of clips (minivivit.explain.faithfulness)."""

from __future__ import annotations

import argparse

from .common import add_backend_argument, resolve_backend, weights_path

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".npy")
FILES = ("faithfulness.csv", "curves.csv", "faithfulness.md", "faithfulness.png")


def add_parser(sub):
    p = sub.add_parser(
        "explain-eval",
        help="measure which explanation is faithful: remove tubelets by relevance, watch the logit (table + plot)",
        description=(
            "The perturbation test of Chefer et al. (CVPR 2021): for each clip and method, tubelets are removed "
            "(set to 0 in the model's input, the processor's mean pixel) in order of decreasing relevance (positive "
            "test: a faithful map makes the predicted class's logit and the accuracy fall fast, lower area is better) "
            "and of increasing relevance (negative test: higher area is better), at fractions 0, 0.1, ..., 1; a random "
            "order is the baseline. Without DATA the clips are generated (minivivit.data.make_visit_clip: the demo "
            "model's task, labels known) from --seed; DATA is a folder of videos (labels from a parent folder named "
            "like a class, else the clean prediction counts as correct)."
        ),
        epilog=(
            "writes DIR/faithfulness.csv (areas per method), DIR/curves.csv (every point), DIR/faithfulness.md (the "
            "table) and DIR/faithfulness.png (the curves).\n\nexamples:\n"
            "  minivivit explain-eval --out faith --clips 32 --seed 0                  bundled model, generated clips\n"
            "  minivivit explain-eval videos/ --weights m.safetensors --methods rollout,gae --out faith"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", nargs="?", help="folder of videos (searched recursively); default: generated clips")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the table, curves and plot")
    p.add_argument("--weights", help="minivivit .safetensors or HF model directory (default: the bundled demo model)")
    p.add_argument("--methods", default="raw,rollout,gae,grad-rollout,transformer-attribution,inputxgrad,ig",
                   help="comma-separated methods of `minivivit attention --method` (default: all seven)")
    p.add_argument("--clips", type=int, default=32, help="number of clips (default: 32; DATA: at most this many)")
    p.add_argument("--seed", type=int, default=0, help="generated clips and random orders (default: 0)")
    p.add_argument("--fractions", default="0:1:0.1", metavar="START:STOP:STEP|F,F,...",
                   help="fractions of tubelets removed: a range (default 0:1:0.1, Chefer et al.'s) or a list; the "
                        "areas are divided by the range's width")
    p.add_argument("--ig-steps", type=int, default=16, help="integrated gradients: points on the path (default: 16)")
    add_backend_argument(p)
    p.add_argument("--force", action="store_true", help="overwrite the files in DIR if they exist")


def _clips(args, config, weights):
    """(x [1, T, C, H, W], label or None) pairs, lazily, and how many."""
    from pathlib import Path

    from minivivit.video import load_frames
    from minivivit.video.preprocess import preprocess_for, processor_config_for_weights

    if args.data is None:
        from minivivit.data import make_visit_clip

        H, W = config.image_hw
        if H != W:
            raise ValueError(f"generated clips are square; this model takes {H}x{W} frames: pass a folder of videos")

        def gen():
            for i in range(args.clips):
                clip = make_visit_clip(args.seed, i, num_frames=config.num_frames, size=H)
                yield preprocess_for(config, clip.frames), clip.label  # labels: minivivit.data.VISIT_LABELS order

        return gen(), args.clips
    root = Path(args.data)
    if not root.is_dir():
        raise ValueError(f"DATA must be a folder of videos; {root} is not a folder")
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file())[:args.clips]
    if not files:
        raise ValueError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {root}")
    proc = processor_config_for_weights(weights)
    names = {str(v): int(k) for k, v in config.id2label.items()}

    def read():
        for f in files:
            yield preprocess_for(config, load_frames(f, config.num_frames), proc), names.get(f.parent.name)

    return read(), len(files)


def parse_fractions(text):
    """'0:1:0.1' (start:stop:step, stop included) or '0,0.05,0.1' -> checked fractions."""
    import numpy as np

    from minivivit.explain.faithfulness import check_fractions

    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            values = np.round(np.arange(start, stop + step / 2, step), 6)
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--fractions {text!r}: expected START:STOP:STEP (e.g. 0:1:0.1) or a list (0,0.05,0.1)") \
            from None
    return check_fractions(values)


def run(args) -> int:
    from pathlib import Path

    import minivivit
    from minivivit.explain.faithfulness import evaluate
    from minivivit.explain.methods import METHODS
    from minivivit.explain.report import write_report
    from minivivit.fileio import check_output
    from minivivit.progress import tqdm

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--methods {args.methods!r}: unknown {bad}; choose from {', '.join(METHODS)}")
    parse_fractions(args.fractions)  # before any work
    if args.clips < 1:
        raise ValueError(f"--clips must be at least 1; got {args.clips}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing)")
    for name in FILES:
        check_output(out / name, args.force)
    weights = weights_path(args.weights)
    model = minivivit.load(weights)
    if not model.config.is_hf_model:
        raise ValueError(f"explain-eval needs Model 1 (HF's ViViT); this model is Model {model.config.model_number}")
    fractions = parse_fractions(args.fractions)
    clips, n = _clips(args, model.config, weights)
    resolve_backend(args, auto=False)  # numpy unless --backend: the published table is the reference backend's
    result = evaluate(model, clips, methods, fractions, seed=args.seed, backend=args.backend, steps=args.ig_steps,
                      progress=lambda it: tqdm(it, total=n, desc="explain-eval", unit="clip"))
    what = f"{args.data or 'generated clips'} (seed {args.seed})"
    table = write_report(result, out, what, weights, args.force)
    print(table)
    print(f"wrote {', '.join(str(out / f) for f in FILES)}")
    return 0
