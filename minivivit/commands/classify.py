"""`minivivit classify VIDEO [--weights PATH] [--backend B] [--top-k K] [--views CxK] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_backend_argument, resolve_backend, weights_path


def add_parser(sub):
    p = sub.add_parser(
        "classify",
        help="classify a video file (top-k labels with probabilities)",
        description=(
            "Decode VIDEO (mp4/webm/mkv/avi/mov with PyAV; GIF/APNG/WebP or a folder of frames with Pillow),\n"
            "sample the model's number of frames, preprocess as HF's VivitImageProcessor (resized and cropped to\n"
            "the model's frame size unless the weights come with a preprocessor_config.json), run the model and\n"
            "print the top-k labels, the frames used and the timing.\n\n"
            "--views 4x3 averages the logits of 4 temporal clips x 3 spatial crops (left/centre/right, or\n"
            "top/middle/bottom for portrait video), as in the ViViT paper's evaluation."
        ),
        epilog=(
            "examples:\n"
            "  minivivit classify clip.mp4                                 bundled demo model, 1 view\n"
            "  minivivit classify clip.mp4 --weights vivit-b-k400.safetensors --views 4x3 --stride 2 --preset scenic\n"
            "  minivivit classify frames/ --backend numba --top-k 3 --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", help="video file, animated GIF/APNG/WebP, or a folder of frame images")
    p.add_argument("--weights", metavar="PATH", help="minivivit .safetensors or HF model directory (default: the bundled demo model)")
    add_backend_argument(p)
    p.add_argument("--top-k", type=int, metavar="K", default=5, help="how many labels to print (default: 5)")
    p.add_argument("--views", default="1x1", metavar="CxK", help="temporal clips x spatial crops, e.g. 4x3 (default: 1x1)")
    p.add_argument("--sampling", choices=["uniform", "hf", "scenic"],
                   help="frame sampling: uniform over the video (default for 1 clip), hf (HF's doc sampler, random "
                        "window with --seed), scenic (evenly spaced clips at --stride; default for several clips)")
    p.add_argument("--stride", type=int, default=1, metavar="N", help="frame stride for scenic sampling (default: 1; the "
                                                         "Kinetics ViViT-B used 2)")
    p.add_argument("--frame-sample-rate", type=int, default=1, metavar="N", help="hf sampling: take every n-th frame (default: 1)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="hf sampling: seed of the random window (default: 0)")
    p.add_argument("--preset", choices=["hf", "scenic"],
                   help="pixel range: hf [-3, 1] (HF's default) or scenic [-1, 1] (the original ViViT's)")
    p.add_argument("--preprocessor-config", metavar="JSON", help="an HF preprocessor_config.json to use instead of the one found "
                                                 "with the weights")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it shows for more than one view)")


def run(args) -> int:
    import numpy as np

    import minivivit
    from minivivit.video import VideoDependencyError
    from minivivit.video.classify import classify, parse_views
    from minivivit.video.preprocess import load_processor_config, processor_config_for_weights

    views = parse_views(args.views)
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1; got {args.top_k}")
    weights = weights_path(args.weights)
    model = minivivit.load(weights)
    resolve_backend(args)
    if args.preprocessor_config:
        processor_config = load_processor_config(args.preprocessor_config)
    else:
        processor_config = processor_config_for_weights(weights)
    try:
        pred = classify(model, args.video, views=views, backend=args.backend, sampling=args.sampling,
                        stride=args.stride, frame_sample_rate=args.frame_sample_rate, seed=args.seed,
                        processor_config=processor_config, preset=args.preset, top_k=args.top_k,
                        progress=not args.no_progress and views[0] * views[1] > 1)
    except VideoDependencyError as e:
        raise RuntimeError(str(e)) from e
    meta = pred.meta
    if args.json:
        out = {
            "video": str(args.video),
            "weights": str(weights),
            "backend": args.backend,
            "views": list(views),
            "sampling": pred.sampling,
            "crops": pred.crops,
            "video_info": None if meta is None else {
                "num_frames": meta.num_frames, "fps": meta.fps, "duration": meta.duration,
                "height": meta.height, "width": meta.width, "reader": meta.reader, "codec": meta.codec},
            "frames_used": pred.indices.tolist(),
            "preprocessing": {"source": "preprocessor_config.json" if processor_config else "model defaults",
                              "preset": args.preset, **pred.options},
            "top_k": [{"label": lab, "class_id": int(i), "probability": float(p), "logit": float(pred.logits[i])}
                      for lab, i, p in zip(pred.labels, pred.class_ids, pred.probabilities)],
            "timing_s": {k: round(v, 6) for k, v in pred.timing.items()},
        }
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    if meta is not None:
        fps = f" @ {meta.fps:.3g} fps ({meta.duration:.2f} s)" if meta.fps else ""
        print(f"{args.video}: {meta.num_frames} frames of {meta.width}x{meta.height}{fps}, read with {meta.reader}"
              f"{f' ({meta.codec})' if meta.codec else ''}")
    print(f"model: {model}")
    print(f"views: {views[0]} clip(s) x {views[1]} crop(s) [{', '.join(pred.crops)}], {pred.sampling} sampling")
    for c, idx in enumerate(pred.indices):
        print(f"  frames used{f' (clip {c})' if len(pred.indices) > 1 else ''}: {np.asarray(idx).tolist()}")
    width = max(len(lab) for lab in pred.labels)
    print(f"top-{len(pred.labels)}:")
    for rank, (lab, p) in enumerate(zip(pred.labels, pred.probabilities), 1):
        print(f"  {rank:>2}. {lab:<{width}}  {100 * p:6.2f}%")
    t = pred.timing
    print(f"time: decode {t['decode']:.3f} s, preprocess {t['preprocess']:.3f} s, model {t['model']:.3f} s "
          f"({args.backend}), total {t['total']:.3f} s")
    return 0
