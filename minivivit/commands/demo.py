"""`minivivit demo [--out attention.gif] [--seed S] [--label L] [--backend numpy|numba|cuda] [--force]`."""

from __future__ import annotations

import argparse

from .common import add_backend_argument, resolve_backend

DEFAULT_OUT = "attention.gif"


def add_parser(sub):
    from minivivit.data import VISIT_LABELS  # NumPy only

    p = sub.add_parser(
        "demo",
        help="classify a generated clip with the bundled model and write an attention GIF",
        description=(
            "Generate a synthetic clip (minivivit.data.make_visit_clip: a small object visits the four quadrants of\n"
            "a textured background one after another; the label is the quadrant where it ends: top-left, top-right,\n"
            "bottom-left, bottom-right), classify it with the bundled demo model (minivivit/assets/vivit-demo.safetensors, or\n"
            "$MINIVIVIT_WEIGHTS), print the top labels against the true one, and write an animated GIF of the\n"
            "CLS token's attention rollout over the frames: a trained model looks at the object, above all in the\n"
            "last frames (where it ends is the answer).\n\n"
            "Without --out the GIF goes to attention.gif, or attention-2.gif, ... if that exists; an explicit\n"
            "--out is never overwritten without --force."
        ),
        epilog=(
            "examples:\n"
            "  minivivit demo\n"
            "  minivivit demo --seed 7 --label top-left --out top-left.gif\n"
            "  minivivit demo --backend numba --out attention.gif --force"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", help=f"GIF to write (default: {DEFAULT_OUT}, or a fresh numbered name if it exists)")
    p.add_argument("--seed", type=int, default=0, help="which generated clip (default: 0)")
    p.add_argument("--label", choices=VISIT_LABELS, help="force the quadrant where the object ends (default: drawn "
                                                         "with the clip)")
    add_backend_argument(p)
    p.add_argument("--top-k", type=int, default=4, help="labels to print (default: 4)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def fresh_path(name: str):
    """attention.gif, or attention-2.gif, attention-3.gif, ... : the first that does not exist."""
    from pathlib import Path

    path = Path(name)
    n = 2
    while path.exists():
        path = Path(name).with_name(f"{Path(name).stem}-{n}{Path(name).suffix}")
        n += 1
    return path


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    import minivivit
    from minivivit import explain, layers
    from minivivit.data import VISIT_LABELS, make_visit_clip
    from minivivit.explain import viz
    from minivivit.video.preprocess import preprocess_for

    if args.out is None:
        out = fresh_path(DEFAULT_OUT)
    else:
        out = Path(args.out)
        if out.suffix.lower() != ".gif":
            raise ValueError(f"--out must end in .gif; got {out.name!r}")
        from minivivit.fileio import check_output

        check_output(out, args.force)  # an existing file (without --force), a directory, an unwritable folder
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer; got {args.seed}")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1; got {args.top_k}")

    model = minivivit.load()  # the bundled demo model (or $MINIVIVIT_WEIGHTS)
    resolve_backend(args)
    config = model.config
    if model.labels != list(VISIT_LABELS) or config.image_hw[0] != config.image_hw[1]:
        raise ValueError(f"the demo needs a model trained on minivivit.data's visits task (square frames, labels "
                         f"{list(VISIT_LABELS)}); "
                         f"the loaded one has labels {model.labels[:5]}... Unset $MINIVIVIT_WEIGHTS.")

    clip = make_visit_clip(args.seed, 0, num_frames=config.num_frames, size=config.image_hw[0], label=args.label)
    x = preprocess_for(config, clip.frames)  # [1, T, C, H, W]
    v, tokens, output = explain.cls_rollout(model, x, backend=args.backend)  # v: [1, N] CLS rollout
    probs = layers.softmax(output.logits[0].astype(np.float64))  # [num_labels]

    print(f"clip: seed {args.seed}, {config.num_frames} frames of {config.image_hw[0]}x{config.image_hw[1]}, "
          f"a {clip.shape} visiting {' -> '.join(VISIT_LABELS[q] for q in clip.order)}")
    print(f"model: {model}")
    for rank, i in enumerate(np.argsort(-probs)[: args.top_k], 1):
        mark = "  <- true label" if i == clip.label else ""
        print(f"  {rank}. {model.labels[i]:<12} {probs[i]:7.2%}{mark}")
    verdict = "correct" if int(np.argmax(probs)) == clip.label else "WRONG"
    print(f"prediction: {model.labels[int(np.argmax(probs))]} ({verdict}; true label: {clip.label_name})")

    mass = tokens.to_grid(v[0])  # [t, h, w] rollout mass on each tubelet (CLS itself left out)
    on_object = explain.tubelet_coverage(clip.masks, tokens) > 0  # [t, h, w] tubelets the object touches
    share = mass[on_object].sum() / mass.sum()
    print(f"attention: the object touches {on_object.mean():.1%} of the tubelets and gets {share:.1%} of the "
          f"CLS rollout ({share / on_object.mean():.1f}x its uniform share)")

    viz.save_attention_gif(clip.frames, v[0], config, out, label="CLS attention rollout", overwrite=args.force)
    print(f"wrote {out} ({config.num_frames} frames): the colours show where the CLS token draws its information from")
    return 0
