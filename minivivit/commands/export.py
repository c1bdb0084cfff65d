"""`minivivit export MODEL OUT_DIR [--force]`."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "export",
        help="export a minivivit model to an HF transformers model directory",
        description=(
            "Write OUT_DIR/config.json and OUT_DIR/model.safetensors with the v4 weight names of the checkpoints "
            "on the HF hub, so that transformers' VivitForVideoClassification.from_pretrained(OUT_DIR) (a "
            "classifier) or VivitModel.from_pretrained(OUT_DIR) (a base model) loads it with no missing or "
            "unexpected keys. Files are written atomically and never overwritten without --force."
        ),
        epilog="example: minivivit export finetuned.safetensors ./vivit-finetuned-hf",
    )
    p.add_argument("model", help="a minivivit .safetensors file (or an HF model directory, converted in memory)")
    p.add_argument("out_dir", help="output directory (created if missing)")
    p.add_argument("--force", action="store_true", help="replace config.json / model.safetensors in OUT_DIR")


def run(args) -> int:
    import minivivit
    from minivivit.convert.hf_export import export_hf

    model = minivivit.load(args.model)
    out = export_hf(model, args.out_dir, force=args.force)
    cls = "VivitForVideoClassification" if model.has_head else "VivitModel"
    extra = "" if model.has_head or "pooler" in model.params else ", add_pooling_layer=False"
    print(f"wrote {out}/config.json and {out}/model.safetensors: {model}\n"
          f"load it with transformers.{cls}.from_pretrained({str(out)!r}{extra})")
    return 0
