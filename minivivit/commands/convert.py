"""`minivivit convert SRC OUT [--config C] [--force]`."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "convert",
        help="convert an HF ViViT checkpoint to one minivivit .safetensors file",
        description=(
            "Convert an HF transformers ViViT checkpoint (a directory with config.json and model.safetensors, "
            "a sharded *.safetensors.index.json, or pytorch_model.bin, which is read without torch and without "
            "running any code) to one minivivit .safetensors file with the config and labels inside. "
            "The output is written atomically and never overwritten without --force."
        ),
        epilog="example: minivivit convert ./vivit-b-16x2-kinetics400 vivit-b.safetensors",
    )
    p.add_argument("src", help="HF model directory, or a weights file (then config.json must sit beside it, or pass --config)")
    p.add_argument("out", help="output .safetensors path")
    p.add_argument("--config", help="config.json to use (default: the one next to the weights)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args) -> int:
    import minivivit

    out = minivivit.convert(args.src, args.out, config=args.config, force=args.force)
    model = minivivit.load(out)
    print(f"wrote {out}: {model}")
    return 0
