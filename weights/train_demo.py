"""Train the bundled demo model: a small ViViT that tells the direction of a moving object.

    python weights/train_demo.py --force          # ~8 min on 2 CPU cores -> weights/vivit-demo.safetensors
    python weights/train_demo.py --smoke --out /tmp/smoke.safetensors   # 3 steps of a tiny model (CI)

The model goes through exactly the path a user's Kinetics checkpoint takes:
HF `VivitForVideoClassification` (trained here with torch) -> `save_pretrained` (HF format, plus a
`preprocessor_config.json`) -> `minivivit convert` (the command line) -> weights/vivit-demo.safetensors.

Data: minivivit.data clips, drawn fresh for every step from stream TRAIN_SEED (clip k of step s is
make_clip(TRAIN_SEED, s * batch + k)); held-out accuracy uses stream VAL_SEED. The test suite uses a
third seed that neither touches (tests/demo/test_demo_model.py).

Pixels are preprocessed exactly as minivivit (and HF's VivitImageProcessor with its defaults at the
model's own 64x64 size: no resize, no crop) does at inference: x / 127.5 - 1, then (x - 0.5) / 0.5,
so pixels land in [-3, 1]. tests/demo/test_train_smoke.py checks `pixel_values` against VivitImageProcessor.

Determinism: torch.manual_seed, torch.use_deterministic_algorithms(True), 2 threads. Same machine,
same library versions -> the same file, bit for bit (weights/README.md says where it may differ).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRAIN_SEED, VAL_SEED = 0, 1  # clip streams; tests/demo/test_demo_model.py uses TEST_SEED = 2024

# The demo model: ViViT-shaped, small. Grid (8, 8, 8) = 512 tubelets + CLS; 0.16 M parameters.
# Hidden 64 rather than 128: at 128 (and 4 layers) a step costs ~3.6x more and 600 steps no longer fit the budget.
# lr 3e-3: at 1e-3 to 2e-3 the loss sat at chance (ln 4 = 1.386) for 200+ steps of 16 clips; see weights/README.md.
DEMO = {
    "model": {"image_size": 64, "num_frames": 16, "tubelet_size": [2, 8, 8], "hidden_size": 64, "num_hidden_layers": 3,
              "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": "gelu_fast", "layer_norm_eps": 1e-6},
    "steps": 600, "batch": 16, "lr": 3e-3, "warmup": 50, "weight_decay": 0.05, "val_clips": 400,
}
# The smoke test: the same code on a model that trains in seconds.
SMOKE = {
    "model": {"image_size": 32, "num_frames": 4, "tubelet_size": [2, 8, 8], "hidden_size": 16, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu_fast", "layer_norm_eps": 1e-6},
    "steps": 3, "batch": 4, "lr": 1e-3, "warmup": 1, "weight_decay": 0.05, "val_clips": 8,
}


def preprocess(frames: np.ndarray) -> np.ndarray:
    """uint8 [B, T, H, W, 3] -> float32 [B, T, 3, H, W] in [-3, 1]: VivitImageProcessor's defaults, no resize.

    HF's arithmetic, step for step (so the result is bit-identical, see tests/demo/test_train_smoke.py):
    rescale with offset in float64, cast to float32, minus 1 (in [-1, 1]); then normalise with
    mean = std = 0.5 in float32 ((x - 0.5) / 0.5, in [-3, 1]). minivivit.preprocess does the same.
    """
    x = (frames.astype(np.float64) * (1 / 127.5)).astype(np.float32) - np.float32(1)  # [B, T, H, W, 3] in [-1, 1]
    x = (x - np.float32(0.5)) / np.float32(0.5)  # [B, T, H, W, 3] in [-3, 1]
    return np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))  # [B, T, 3, H, W]


def build_model(model_kw: dict, seed: int):
    """A fresh HF VivitForVideoClassification with the labels of minivivit.data in its config."""
    import torch
    from transformers import VivitConfig, VivitForVideoClassification

    from minivivit.data import LABELS

    torch.manual_seed(seed)
    config = VivitConfig(**model_kw, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                         label2id={n: i for i, n in enumerate(LABELS)}, attn_implementation="sdpa")
    model = VivitForVideoClassification(config)
    with torch.no_grad():  # HF starts CLS and positions at zero; ViT's usual N(0, 0.02) trains faster
        torch.nn.init.trunc_normal_(model.vivit.embeddings.cls_token, std=0.02)
        torch.nn.init.trunc_normal_(model.vivit.embeddings.position_embeddings, std=0.02)
    return model


def batch(seed: int, start: int, n: int, model_kw: dict):
    """Clips start..start+n-1 of a stream -> (pixel_values torch [n, T, 3, H, W], labels torch [n])."""
    import torch

    from minivivit.data import make_batch

    frames, labels, _ = make_batch(n, seed, start, num_frames=model_kw["num_frames"], size=model_kw["image_size"])
    return torch.from_numpy(preprocess(frames)), torch.from_numpy(labels)


def evaluate(model, seed: int, n: int, model_kw: dict, chunk: int = 50) -> float:
    """Top-1 accuracy of the torch model on n clips of stream `seed`."""
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, n, chunk):
            x, y = batch(seed, start, min(chunk, n - start), model_kw)
            correct += int((model(pixel_values=x).logits.argmax(-1) == y).sum())
    model.train()
    return correct / n


def train(recipe: dict, seed: int, log=lambda msg: print(msg, flush=True)):
    """Train from scratch; returns (model, history). Warmup then cosine decay of the learning rate."""
    import torch
    from tqdm.auto import tqdm

    model = build_model(recipe["model"], seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    steps, warmup = recipe["steps"], recipe["warmup"]
    schedule = lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    history = []
    bar = tqdm(range(steps), desc="training", unit="step", mininterval=5)
    for step in bar:
        x, y = batch(TRAIN_SEED, step * recipe["batch"], recipe["batch"], recipe["model"])
        out = model(pixel_values=x, labels=y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss, acc = float(out.loss.detach()), float((out.logits.argmax(-1) == y).float().mean())
        history.append((step, loss, acc))
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.2f}")
        if step % 20 == 0 or step == steps - 1:
            log(f"step {step:4d}  loss {loss:.4f}  batch acc {acc:.2f}  lr {sched.get_last_lr()[0]:.2e}")
    model.eval()
    return model, history


def setup_determinism(threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # harmless on CPU; needed if someone uses a GPU


def save_hf(model, out_dir: Path, model_kw: dict, info: dict):
    """save_pretrained + the matching VivitImageProcessor config (64x64: no resize, no crop) + training info."""
    from transformers import VivitImageProcessor

    model.save_pretrained(out_dir)
    size = model_kw["image_size"]
    proc = VivitImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    proc.save_pretrained(out_dir)
    (out_dir / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")


def convert_with_cli(hf_dir: Path, out: Path, force: bool):
    """Run `minivivit convert` as a user would (a subprocess of this Python)."""
    cmd = [sys.executable, "-m", "minivivit", "convert", str(hf_dir), str(out)] + (["--force"] if force else [])
    print("$", " ".join(cmd[1:]))
    subprocess.run(cmd, check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python weights/train_demo.py --force   (rebuilds weights/vivit-demo.safetensors)")
    p.add_argument("--out", default=str(HERE / "vivit-demo.safetensors"), help="converted minivivit file to write")
    p.add_argument("--hf-dir", default=None,
                   help="keep the HF checkpoint (save_pretrained) here (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="torch seed for the initial weights (default 0)")
    p.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    p.add_argument("--threads", type=int, default=2, help="torch threads (results depend on it; default 2)")
    p.add_argument("--smoke", action="store_true", help="tiny model, 3 steps: checks that the trainer still runs")
    p.add_argument("--force", action="store_true", help="overwrite --out and --hf-dir if they exist")
    args = p.parse_args(argv)

    recipe = dict(SMOKE if args.smoke else DEMO)
    if args.steps is not None:
        recipe["steps"] = args.steps
    out = Path(args.out)
    for path in (out, args.hf_dir):
        if path is not None and Path(path).exists() and not args.force:
            raise SystemExit(f"{path} already exists; pass --force to replace it")

    import torch
    import transformers

    setup_determinism(args.threads)
    t0, c0 = time.time(), time.process_time()
    model, history = train(recipe, args.seed)
    train_time, cpu_time = time.time() - t0, time.process_time() - c0
    val_acc = evaluate(model, VAL_SEED, recipe["val_clips"], recipe["model"])
    print(f"trained {recipe['steps']} steps in {train_time:.0f} s ({cpu_time:.0f} s of CPU); held-out accuracy "
          f"(torch, stream {VAL_SEED}, {recipe['val_clips']} clips): {val_acc:.4f}")
    info = {
        "recipe": recipe, "seed": args.seed, "train_seed": TRAIN_SEED, "val_seed": VAL_SEED, "threads": args.threads,
        "train_seconds": round(train_time, 1), "train_cpu_seconds": round(cpu_time, 1), "val_accuracy": val_acc,
        "final_loss": history[-1][1], "history": history,
        "torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__,
        "command": "python weights/train_demo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory(prefix="vivit-demo-hf-") as tmp:
        hf_dir = Path(args.hf_dir or tmp)
        save_hf(model, hf_dir, recipe["model"], info)
        convert_with_cli(hf_dir, out, args.force)
    print(json.dumps({k: v for k, v in info.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
