"""`minivivit finetune DATA_DIR --weights W --out OUT [--head-only | --last-k-blocks K] [...]`."""

from __future__ import annotations

import argparse
import json

from .common import weights_path


def add_parser(sub):
    p = sub.add_parser(
        "finetune",
        help="fine-tune a model on a folder of videos, one sub-folder per class",
        description=(
            "Fine-tune W on DATA_DIR/<class name>/<video files> (the layout of HF's video-classification guide\n"
            "and torchvision): class names are the folder names (sorted), a seeded stratified split keeps\n"
            "--val-fraction of each class for validation, and every clip is decoded, sampled and preprocessed\n"
            "exactly as `minivivit classify` does. The head gets the folder's classes (a new head when their\n"
            "number differs from W's). Training is minivivit's own backward pass with AdamW, warm-up + cosine,\n"
            "gradient clipping; validation after each epoch. OUT is a minivivit weights file (classify --weights\n"
            "OUT; minivivit export OUT DIR for HF transformers), written atomically, never over a file without --force.\n\n"
            "An unreadable clip is skipped with a warning naming it (--strict: stop instead)."
        ),
        epilog=(
            "examples:\n"
            "  minivivit finetune clips/ --weights vivit-demo.safetensors --out mine.safetensors --head-only\n"
            "  minivivit finetune clips/ --weights vivit-b.safetensors --out mine.safetensors --last-k-blocks 2 \\\n"
            "      --epochs 5 --batch-size 2 --accumulation 8 --lr 1e-4 --checkpoint run.ckpt.safetensors\n"
            "  minivivit finetune clips/ --weights W --out mine.safetensors --checkpoint run.ckpt.safetensors --resume"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", help="dataset folder: DATA_DIR/<class name>/*.mp4 (webm, mkv, avi, mov, gif too)")
    p.add_argument("--weights", metavar="W", help="starting weights: minivivit .safetensors or HF model directory "
                                                  "(default: the bundled demo model)")
    p.add_argument("--out", required=True, metavar="OUT", help="the fine-tuned weights to write (.safetensors)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--head-only", action="store_true", help="train only the classifier head")
    group.add_argument("--last-k-blocks", type=int, metavar="K",
                       help="train only the last K encoder blocks, the final LayerNorm and the head")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training clips (default: 5)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward + backward (default: 8)")
    p.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimiser step (default: 1)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps before the cosine decay (default: 0)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay on weight matrices (default: 0.05)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient's global norm (0: off; default: 1)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing (default: 0)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of each class kept for validation (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="split, clip order, new head, dropout (default: 0)")
    p.add_argument("--new-head", action="store_true", help="a new head even when W has as many classes as DATA_DIR")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable clip instead of skipping it")
    p.add_argument("--preset", choices=["hf", "scenic"], help="pixel range, as in classify (default: W's own)")
    p.add_argument("--checkpoint", metavar="PATH", help="write a training checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint (same options)")
    p.add_argument("--backend", default="numpy", choices=["numpy", "numba"], help="forward backend (default: numpy)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from minivivit.train import FitOptions
    from minivivit.train.finetune import finetune

    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint PATH (the checkpoint of the run to continue)")
    options = FitOptions(epochs=args.epochs, batch_size=args.batch_size, accumulation=args.accumulation, lr=args.lr,
                         warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
                         max_grad_norm=args.max_grad_norm or None, label_smoothing=args.label_smoothing,
                         seed=args.seed, head_only=args.head_only, last_k_blocks=args.last_k_blocks,
                         backend=args.backend, progress=not args.no_progress)
    summary = finetune(args.data_dir, weights_path(args.weights), args.out, options, val_fraction=args.val_fraction,
                       strict=args.strict, new_head=args.new_head, preset=args.preset, checkpoint=args.checkpoint,
                       resume=args.resume, overwrite=args.force, log=None if args.json else print)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "train_files"}, indent=2))
    return 0
