"""Train the bundled demo model with minivivit itself (no torch): a small ViViT that says where an object ends up.

    nice -n 5 python weights/train_demo.py --force     # ~15 min on 2 CPU cores -> weights/vivit-demo.safetensors
    python weights/train_demo.py --smoke --out /tmp/smoke.safetensors   # a few steps of a tiny model (CI)

The task (minivivit/data/visits.py): an object visits the four quadrants one after another, T/4 frames
each, in a random order; the label is the quadrant of the last visit. A clip's frames as an unordered set
say nothing about the label, so the model must use the frame order and its position embeddings
(tests/demo/test_demo_model.py shows both: shuffle the frames, or permute the position embeddings, and
held-out accuracy falls to chance).

Training is minivivit.train.fit: hand-written backward (minivivit.grad), AdamW, warm-up + cosine, clipping,
with an atomic checkpoint (pass --checkpoint PATH; --resume continues an interrupted run exactly).
Data: clip i of the training source is make_visit_clip(TRAIN_SEED, i), generated when a step needs it;
validation uses stream VAL_SEED; the test suite uses a third stream that neither touches.

Pixels are preprocessed exactly as minivivit does at inference (minivivit.video.preprocess.preprocess_for,
= HF's VivitImageProcessor with its defaults at the model's 64x64: x / 127.5 - 1, then (x - 0.5) / 0.5).
Deterministic: the same library versions and CPU give the same file (weights/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One BLAS thread (set before NumPy loads its BLAS): the matrices here are small, and on a busy 2-core
# machine OpenBLAS's threads spin-wait for each other: a step took 15 s of CPU with 2 threads, 1.1 s with 1.
# It also fixes the summation order, so the run is reproducible. Override by setting the variables yourself.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
TRAIN_SEED, VAL_SEED = 0, 1  # clip streams; tests/demo/test_demo_model.py uses TEST_SEED = 2024

# The demo model: ViViT-shaped, small. Tubelets of 4 frames: grid (4, 8, 8) = 256 tubelets + CLS, one time slice
# per quadrant visit. (2-frame tubelets, 512 tokens, cost ~2.5x more per step: too slow for the time budget.)
DEMO = {
    "model": {"image_size": 64, "num_frames": 16, "tubelet_size": [4, 8, 8], "hidden_size": 64, "num_hidden_layers": 3,
              "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": "gelu_fast", "layer_norm_eps": 1e-6},
    "train_clips": 24000, "val_clips": 400, "epochs": 1, "batch": 16, "lr": 1e-3, "warmup": 50, "weight_decay": 0.05,
    "init_std": 0.125, "pos_init_std": 3.0,  # 1/sqrt(hidden) and ~ the tubelet features' size; see init_for_training
}
# The smoke test: the same code on a model that trains in seconds.
SMOKE = {
    "model": {"image_size": 32, "num_frames": 4, "tubelet_size": [2, 8, 8], "hidden_size": 16, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu_fast", "layer_norm_eps": 1e-6},
    "train_clips": 12, "val_clips": 8, "epochs": 1, "batch": 4, "lr": 1e-3, "warmup": 1, "weight_decay": 0.05,
    "init_std": 0.25, "pos_init_std": 3.0,
}


class VisitClips:
    """A fit() clip source: clip i = make_visit_clip(seed, i), made and preprocessed when a step asks for it."""

    def __init__(self, seed: int, n: int, config, start: int = 0):
        self.seed, self.n, self.config, self.start = seed, n, config, start  # clips start .. start + n - 1

    def __len__(self):
        return self.n

    def batch(self, indices):
        from minivivit.data import make_visit_clip
        from minivivit.video.preprocess import preprocess_for

        c = self.config
        clips = [make_visit_clip(self.seed, self.start + int(i), num_frames=c.num_frames, size=c.image_hw[0])
                 for i in indices]
        frames = np.stack([k.frames for k in clips])  # uint8 [b, T, H, W, 3]
        return preprocess_for(c, frames), np.array([k.label for k in clips])  # [b, T, 3, H, W], [b]


def build_model(model_kw: dict, seed: int, std: float = 0.125, pos_std: float = 3.0):
    """A fresh minivivit Model: weight matrices ~ N(0, std^2), zero biases, unit LayerNorm gains, CLS and
    positions ~ truncated N(0, pos_std^2) (minivivit.train.init_for_training)."""
    import minivivit
    from minivivit.data import VISIT_LABELS
    from minivivit.train import init_for_training

    config = minivivit.ViViTConfig(**model_kw, num_labels=len(VISIT_LABELS), id2label=dict(enumerate(VISIT_LABELS)),
                                   label2id={n: i for i, n in enumerate(VISIT_LABELS)})
    return minivivit.Model(init_for_training(config, seed, std=std, pos_std=pos_std), config)


def train(recipe: dict, seed: int, checkpoint=None, resume=False, init_from=None, start_clip: int = 0,
          log=lambda msg: print(msg, flush=True)):
    """Train from scratch, or on from the weights file init_from (a second phase, on clips from start_clip on);
    or resume a checkpoint. Returns (model, FitResult, learning curve [(step, loss, acc), ...])."""
    import minivivit
    from minivivit.train import FitOptions, fit

    if init_from is not None:
        model = minivivit.load(init_from)
    else:
        model = build_model(recipe["model"], seed, recipe["init_std"], recipe["pos_init_std"])
    train_src = VisitClips(TRAIN_SEED, recipe["train_clips"], model.config, start=start_clip)
    val_src = VisitClips(VAL_SEED, recipe["val_clips"], model.config)
    opts = FitOptions(epochs=recipe["epochs"], batch_size=recipe["batch"], lr=recipe["lr"],
                      warmup_steps=recipe["warmup"], weight_decay=recipe["weight_decay"], max_grad_norm=1.0,
                      seed=seed, checkpoint_every=50)
    curve = []

    def on_step(step, stats):
        curve.append((step, round(stats["loss"], 5), stats["accuracy"]))
        if step % 20 == 0 or step == 1:
            log(f"step {step:4d}  loss {stats['loss']:.4f}  batch acc {stats['accuracy']:.2f}  lr {stats['lr']:.2e}")

    result = fit(model, train_src, val_src, opts, checkpoint=checkpoint, resume=resume, log=log, on_step=on_step)
    return model, result, curve


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: nice -n 5 python weights/train_demo.py --force   (rebuilds weights/vivit-demo.safetensors)")
    p.add_argument("--out", default=str(HERE / "vivit-demo.safetensors"), help="minivivit weights file to write")
    p.add_argument("--seed", type=int, default=0, help="initial weights and clip order (default 0)")
    p.add_argument("--train-clips", type=int, default=None, help="override the number of training clips")
    p.add_argument("--tubelet-frames", type=int, default=None, help="override the tubelet's number of frames")
    p.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    p.add_argument("--warmup", type=int, default=None, help="override the warm-up steps")
    p.add_argument("--init-from", default=None, help="start from this minivivit weights file (a second phase)")
    p.add_argument("--start-clip", type=int, default=0, help="the first training clip of stream 0 (default 0)")
    p.add_argument("--pos-init-std", type=float, default=None, help="override the position embeddings' initial spread")
    p.add_argument("--checkpoint", default=None, help="keep a training checkpoint here (every 50 steps)")
    p.add_argument("--resume", action="store_true", help="continue the run in --checkpoint")
    p.add_argument("--info", default=None, help="write the run's record (recipe, times, curve) as JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny model, 3 steps: checks that the trainer still runs")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = p.parse_args(argv)

    recipe = dict(SMOKE if args.smoke else DEMO)
    if args.train_clips is not None:
        recipe["train_clips"] = args.train_clips
    if args.tubelet_frames is not None:
        recipe["model"] = {**recipe["model"], "tubelet_size": [args.tubelet_frames, *recipe["model"]["tubelet_size"][1:]]}
    for key in ("lr", "warmup"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    if args.pos_init_std is not None:
        recipe["pos_init_std"] = args.pos_init_std
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} already exists; pass --force to replace it")

    t0, c0 = time.time(), time.process_time()
    model, result, curve = train(recipe, args.seed, checkpoint=args.checkpoint, resume=args.resume,
                                 init_from=args.init_from, start_clip=args.start_clip)
    train_time, cpu_time = time.time() - t0, time.process_time() - c0
    val_acc = result.history[-1]["val_accuracy"]
    print(f"trained {result.step} steps in {train_time:.0f} s ({cpu_time:.0f} s of CPU); held-out accuracy "
          f"(stream {VAL_SEED}, {recipe['val_clips']} clips): {val_acc:.4f}", flush=True)
    model.save(out, overwrite=args.force)  # atomic (minivivit.fileio)
    import minivivit

    info = {"recipe": recipe, "seed": args.seed, "init_from": args.init_from, "start_clip": args.start_clip, "train_seed": TRAIN_SEED, "val_seed": VAL_SEED,
            "steps": result.step, "train_seconds": round(train_time, 1), "train_cpu_seconds": round(cpu_time, 1),
            "val_accuracy": val_acc, "history": result.history, "final_loss": curve[-1][1] if curve else None,
            "numpy": np.__version__, "minivivit": getattr(minivivit, "__version__", "dev"),
            "command": "python weights/train_demo.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.info:
        Path(args.info).write_text(json.dumps({**info, "curve": curve}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in info.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
