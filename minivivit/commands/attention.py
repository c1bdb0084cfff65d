"""`minivivit attention VIDEO --out FILE.gif|.png [--weights W] [--method raw|rollout|gae|...] [--target LABEL]`."""

from __future__ import annotations

import argparse

from .common import add_backend_argument, resolve_backend, weights_path

METHOD_HELP = {  # minivivit.explain.methods.DESCRIPTIONS, without importing the package at --help time
    "raw": "one layer's CLS attention row (class-agnostic)",
    "rollout": "attention rollout, Abnar & Zuidema 2020 (class-agnostic; the default)",
    "gae": "gradient x attention relevance, Chefer et al. ICCV 2021 (class-specific)",
    "grad-rollout": "gradient-weighted attention rollout (class-specific)",
    "transformer-attribution": "LRP relevance x gradient of attention, rolled out, Chefer et al. CVPR 2021 "
                               "(class-specific)",
    "inputxgrad": "input x gradient on pixels, summed per tubelet (class-specific, signed)",
    "ig": "integrated gradients on pixels, per tubelet, --steps points (class-specific, signed)",
}


def add_parser(sub):
    p = sub.add_parser(
        "attention",
        help="draw where the model looks: CLS attention or rollout over the clip (GIF or PNG/SVG)",
        description=(
            "Decode VIDEO, sample and preprocess it as `minivivit classify` does (the model's number of frames, "
            "resized and cropped to its frame size), run the model and draw the CLS token's attention over the "
            "frames the model saw. --method raw shows one layer's CLS attention row (one head, or the heads "
            "combined); --method rollout shows attention rollout (Abnar & Zuidema 2020) through layers "
            "--start-layer..--layer, computed one layer at a time so that it fits in memory even for ViViT-B. "
            "Those two are class-agnostic; gae, grad-rollout, transformer-attribution, inputxgrad and ig explain one class (--target, "
            "default the predicted one) from the gradient of its logit; several --target classes draw a per-class "
            "figure side by side (.png/.svg/.pdf). Class-specific methods need Model 1 (HF's ViViT). "
            "Tubelets are drawn as the sharp boxes of pixels they cover (--smooth interpolates in space). "
            ".gif writes an animation (one frame per video frame); .png/.svg/.pdf one panel per tubelet time slice."
        ),
        epilog=(
            "examples:\n"
            "  minivivit attention clip.mp4 --out attention.gif                  bundled model, rollout\n"
            "  minivivit attention clip.mp4 --out cls.png --method raw --layer -1 --head 3\n"
            "  minivivit attention clip.mp4 --out a.gif --weights vivit-b-k400.safetensors --backend numba\n"
            "  minivivit attention clip.npy --out a.svg --save-map heat.npy      clip saved as uint8 [T, H, W, 3]\n"
            "  minivivit attention clip.mp4 --out gae.gif --method gae --target top-left\n"
            "  minivivit attention clip.mp4 --out classes.png --method gae --target top-left,bottom-right\n\n"
            "methods:\n" + "\n".join(f"  {k:<13} {v}" for k, v in METHOD_HELP.items())
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", help="video file, animated GIF/APNG/WebP, a folder of frames, or a .npy uint8 [T, H, W, 3]")
    p.add_argument("--out", required=True, help="output .gif (animation) or .png / .svg / .pdf (figure)")
    p.add_argument("--weights", help="minivivit .safetensors or HF model directory (default: the bundled demo model)")
    p.add_argument("--method", default="rollout", choices=list(METHOD_HELP),
                   help="what to draw (default: rollout); see 'methods' below")
    p.add_argument("--target", metavar="LABEL[,LABEL...]",
                   help="class-specific methods: the class(es) to explain, by name or index (default: the predicted "
                        "class); several give a per-class figure")
    p.add_argument("--steps", type=int, default=16, help="ig: points on the path from the black clip (default: 16)")
    p.add_argument("--layer", type=int, default=-1,
                   help="raw: the layer to show; rollout: the last layer rolled out (default: -1, the last; "
                        "gae / grad-rollout use every layer)")
    p.add_argument("--head", default="mean",
                   help="a head index, or mean | max | min over heads (default: mean; rollout and grad-rollout fuse heads "
                        "per layer; gae always averages them, as the paper)")
    p.add_argument("--start-layer", type=int, default=0, help="rollout: first layer (default: 0)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="rollout: weight of attention against the residual identity (default: 0.5)")
    p.add_argument("--discard", type=float, default=0.0,
                   help="rollout: drop this fraction of the weakest entries of each row (never self or CLS; default 0)")
    p.add_argument("--normalize", default="global", choices=["global", "frame"],
                   help="one colour range for the clip (default) or each frame scaled to [0, 1]")
    p.add_argument("--smooth", action="store_true", help="interpolate between tubelet centres (default: sharp boxes)")
    add_backend_argument(p)
    p.add_argument("--fps", type=float, default=4.0, help="GIF frames per second (default: 4)")
    p.add_argument("--preset", choices=["hf", "scenic"], help="pixel range, as in `minivivit classify`")
    p.add_argument("--save-map", metavar="FILE.npy", help="also save the drawn map on the tubelet grid [t, h, w]")
    p.add_argument("--force", action="store_true", help="overwrite --out / --save-map if they exist")


def _parse_head(text):
    if text in ("mean", "max", "min"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--head must be a head index or one of mean, max, min; got {text!r}") from None


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    import minivivit
    from minivivit import explain
    from minivivit.explain import viz
    from minivivit.explain.rollout import check_options
    from minivivit.fileio import atomic_output, check_output
    from minivivit.inputs import layer_index
    from minivivit.video import load_frames
    from minivivit.video.preprocess import preprocess_for, processor_config_for_weights

    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".png", ".svg", ".pdf"):
        raise ValueError(f"--out must end in .gif (animation) or .png / .svg / .pdf (figure); got {out.name!r}")
    if args.save_map:
        if Path(args.save_map).suffix.lower() != ".npy":
            raise ValueError(f"--save-map {args.save_map}: the map is saved with np.save; give it a .npy name")
        if Path(args.save_map).resolve() == out.resolve():
            raise ValueError(f"--save-map and --out are both {out}; give them different names")
    for target in (out, args.save_map):  # every output checked before any work (exists, directory, permissions)
        if target:
            check_output(target, args.force)
    if out.suffix.lower() == ".gif":
        viz.check_fps(args.fps)
    head = _parse_head(args.head)
    class_specific = args.method in ("gae", "grad-rollout", "transformer-attribution", "inputxgrad", "ig")
    targets = None if args.target is None else [t.strip() for t in args.target.split(",") if t.strip()]
    if targets is not None and not class_specific:
        raise ValueError(f"--method {args.method} is class-agnostic; --target applies to gae, grad-rollout, "
                         f"transformer-attribution, inputxgrad and ig")
    if targets is not None and len(targets) > 1 and out.suffix.lower() == ".gif":
        raise ValueError(f"{len(targets)} --target classes make a per-class figure side by side; write it to "
                         f".png / .svg / .pdf, or give one --target for a GIF")
    weights = weights_path(args.weights)
    model = minivivit.load(weights)
    resolve_backend(args)
    config, L = model.config, model.config.num_hidden_layers
    layer = layer_index(args.layer, L, "--layer")
    start = layer_index(args.start_layer, L, "--start-layer")
    if args.method == "rollout" and start > layer:
        raise ValueError(f"--start-layer {args.start_layer} comes after --layer {args.layer}")
    try:
        check_options(head, args.alpha, args.discard, config.num_attention_heads)
    except ValueError as e:
        raise ValueError(f"{e} (--head / --alpha / --discard)") from None

    frames = load_frames(args.video, config.num_frames)  # [T0, H0, W0, 3]
    proc = processor_config_for_weights(weights)
    x = preprocess_for(config, frames, proc, args.preset)  # [1, T, C, H, W]
    shown = preprocess_for(config, frames, proc, do_rescale=False, offset=False, do_normalize=False)  # 0..255
    shown = np.clip(shown[0].transpose(0, 2, 3, 1).round(), 0, 255).astype(np.uint8)  # [T, H, W, 3]

    if class_specific:
        return _explain(args, model, x, shown, targets, head, out)
    if args.method == "raw":
        cap = explain.capture(model, x, layers=[layer], output_attentions="cls", backend=args.backend)
        v = explain.fuse_heads(cap.attentions[layer][0], head, axis=-2)  # [nh, N] -> [N]
        logits, what = cap.output.logits, f"CLS attention, layer {layer}, head {head}"
    else:
        v, _, output = explain.cls_rollout(model, x, head_fusion=head, alpha=args.alpha, discard_ratio=args.discard,
                                           start_layer=start, end_layer=layer, backend=args.backend)
        v, logits = v[0], output.logits  # [N]
        what = f"CLS rollout, layers {start}-{layer}, heads {head}"
    tokens = explain.TokenMap.for_config(config, x.shape)
    heat = tokens.to_grid(v)  # [t, h, w]

    if out.suffix.lower() == ".gif":
        viz.save_attention_gif(shown, heat, tokens, out, label=what, upsample="smooth" if args.smooth else "nearest",
                               normalize=args.normalize, fps=args.fps, overwrite=args.force)
    else:
        fig = viz.plot_overlay(shown, heat, tokens, label=what, upsample="smooth" if args.smooth else "nearest",
                               normalize=args.normalize)
        viz.save_figure(fig, out, overwrite=args.force)
    if args.save_map:
        with atomic_output(args.save_map, args.force) as tmp, open(tmp, "wb") as f:
            np.save(f, heat)
    if logits is not None:
        top = int(np.argmax(logits[0]))
        print(f"prediction: {config.id2label[top]} ({top})")
    print(f"wrote {out}: {what}, tubelet grid {tokens.grid} over {shown.shape[0]} frames of "
          f"{shown.shape[1]}x{shown.shape[2]}")
    return 0


def _explain(args, model, x, shown, targets, head, out) -> int:
    """The class-specific methods: one map per --target (or the predicted class), drawn on the frames."""
    import numpy as np

    from minivivit import explain
    from minivivit.explain import viz
    from minivivit.explain.relevance import target_index
    from minivivit.fileio import atomic_output

    config = model.config
    wanted = [None] if targets is None else [target_index(config, t) for t in targets]
    maps, logits = {}, None
    for t in wanted:
        e = explain.explain(model, x, args.method, target=t, backend=args.backend, steps=args.steps,
                            head_fusion=head, alpha=args.alpha, discard_ratio=args.discard)
        maps[config.id2label[int(e.target[0])]] = e.grid(0)  # [t, h, w]
        logits, tokens = e.logits, e.tokens
    signed = args.method in ("inputxgrad", "ig")
    what = {"gae": "GAE relevance (Chefer et al. 2021)", "grad-rollout": "gradient-weighted rollout",
            "transformer-attribution": "transformer attribution (Chefer et al. 2021)",
            "inputxgrad": "input x gradient", "ig": "integrated gradients"}[args.method]
    up = "smooth" if args.smooth else "nearest"
    if out.suffix.lower() == ".gif":  # signed maps: the colour bar shows the sign (figures: a diverging map at 0)
        (name, heat), = maps.items()
        viz.save_attention_gif(shown, heat, tokens, out, label=f"{what}: {name}", upsample=up,
                               normalize=args.normalize, fps=args.fps, overwrite=args.force)
    else:
        fig = viz.plot_classes(shown, maps, tokens, label=what, upsample=up, normalize=args.normalize, signed=signed)
        viz.save_figure(fig, out, overwrite=args.force)
    if args.save_map:
        with atomic_output(args.save_map, args.force) as tmp, open(tmp, "wb") as f:
            np.save(f, np.stack(list(maps.values())) if len(maps) > 1 else next(iter(maps.values())))
    top = int(np.argmax(logits[0]))
    print(f"prediction: {config.id2label[top]} ({top})")
    print(f"wrote {out}: {what} for {', '.join(maps)}, tubelet grid {tokens.grid} over {shown.shape[0]} frames of "
          f"{shown.shape[1]}x{shown.shape[2]}")
    return 0
