"""`minivivit convert SRC OUT [--config C] [--force] [--variant V] [--attention-order O] [--num-frames T]
[--image-size S]`."""

from __future__ import annotations

import argparse


def add_parser(sub):
    p = sub.add_parser(
        "convert",
        help="convert an HF or Scenic ViViT checkpoint to one minivivit .safetensors file",
        description=(
            "Convert an HF transformers ViViT checkpoint (a directory with config.json and model.safetensors, "
            "a sharded *.safetensors.index.json, or pytorch_model.bin, which is read without torch and without "
            "running any code), or a Scenic (Flax msgpack) checkpoint of any of the paper's Models 1-4, read "
            "without JAX, to one minivivit .safetensors file with the config and labels inside. "
            "The output is written atomically and never overwritten without --force."
        ),
        epilog="examples: minivivit convert ./vivit-b-16x2-kinetics400 vivit-b.safetensors\n"
               "          minivivit convert vivit_base_16x2_fe/checkpoint vivit-b-fe.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="HF model directory, or a weights file (then config.json must sit beside it, or pass --config)")
    p.add_argument("out", help="output .safetensors path")
    p.add_argument("--config", help="config.json to use (default: the one next to the weights)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    g = p.add_argument_group("Scenic checkpoints", "what a Scenic parameter tree cannot tell (the error says when)")
    g.add_argument("--variant", help="attention_type: spacetime, factorized_encoder, factorized_self_attention_block, "
                                     "factorized_dot_product_attention (or 1-4); needed for Model 4 / Model 1-gap")
    g.add_argument("--attention-order", choices=["time_space", "space_time"], help="Model 3's attention order")
    g.add_argument("--num-frames", type=int, help="frames per clip (e.g. 32)")
    g.add_argument("--image-size", type=_image_size, help="frame size: 224 or HEIGHTxWIDTH")


def _image_size(text):
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"must be an int or HEIGHTxWIDTH, e.g. 224 or 224x320; got {text!r}")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))


def run(args) -> int:
    import minivivit

    out = minivivit.convert(args.src, args.out, config=args.config, force=args.force, variant=args.variant,
                            attention_order=args.attention_order, num_frames=args.num_frames,
                            image_size=args.image_size)
    model = minivivit.load(out)
    c = model.config
    if c.is_hf_model:
        print(f"wrote {out}: {model}")
    else:  # Models 2-4 / gap / representation_size (Model.__repr__ reads embed.pos, which Model 2 does not have)
        from minivivit.config import ATTENTION_TYPES

        print(f"wrote {out}: ViViT {ATTENTION_TYPES[c.attention_type]}, classifier={c.classifier!r}, "
              f"{c.num_hidden_layers} layers, D={c.hidden_size}, {c.num_attention_heads} heads, clip "
              f"{c.num_frames}x{c.image_hw[0]}x{c.image_hw[1]}, {model.num_params() / 1e6:.2f}M params")
    return 0
