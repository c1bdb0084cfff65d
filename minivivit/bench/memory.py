"""Peak memory of loading a model file and of one forward pass, each measured in a fresh process.

    python -m minivivit.bench.memory WEIGHTS.safetensors [--run --backend numba --frames 32 --image-size 224]

prints `RESULT {json}`: the file's size, the resident memory after the imports (the baseline), the peak while
loading minus that baseline (`load_peak_mb`), and with --run the peak while running one forward pass on a
random clip minus the same baseline (`run_peak_mb`, no attention maps). Peaks are VmHWM from /proc/self/status,
reset after the imports (worker.reset_peak_rss), so the imports' own peak does not count. (getrusage's
ru_maxrss cannot be reset, and after fork + exec it starts from the parent's peak.) benchmarks/memory.py and
tests/bench/test_memory.py run it; make_weights_file writes the random file they measure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    """Current resident memory of this process in MB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


def make_weights_file(path, **changes) -> Path:
    """A minivivit file with random weights for vivit_b(**changes) (ViViT-B when no changes); no torch needed."""
    from ..config import ViViTConfig
    from ..weights import init_params, save
    from .harness import vivit_b

    config = ViViTConfig.from_hf_dict(vivit_b(**changes))
    return save(path, init_params(config, seed=0), config, overwrite=True)


def measure(path, run: bool = False, backend: str = "numba", frames: int | None = None,
            image_size: int | None = None) -> dict:
    """In this process: load `path` (and run one forward with `run`); peaks in MB above the post-import baseline."""
    import numpy as np

    import minivivit
    from minivivit.kernels import get_backend

    from .worker import peak_rss_mb, reset_peak_rss

    if run:
        get_backend(backend)  # its imports (numba, llvmlite) belong to the baseline too
    import safetensors.numpy  # noqa: F401  (imported by the loader)

    result = {"file_mb": Path(path).stat().st_size / 2**20, "resettable": reset_peak_rss()}  # MiB, as VmHWM
    base = rss_mb()
    t0 = time.perf_counter()
    model = minivivit.load(path)
    result.update(load_s=time.perf_counter() - t0, baseline_mb=base, load_peak_mb=peak_rss_mb() - base)
    if run:
        cfg = model.config
        T, H = frames or cfg.num_frames, image_size or cfg.image_size
        clip = np.random.default_rng(0).standard_normal((1, T, 3, H, H)).astype(np.float32)
        model(clip, backend=backend)  # the first call: JIT (or cache load) and the first touch of every page
        reset_peak_rss()
        t0 = time.perf_counter()
        model(clip, backend=backend)
        result.update(run_s=time.perf_counter() - t0, run_peak_mb=peak_rss_mb() - base,
                      clip_mb=clip.nbytes / 2**20, backend=backend)
    result["load_ratio"] = result["load_peak_mb"] / result["file_mb"]
    return result


def measure_in_subprocess(path, run: bool = False, backend: str = "numba", env: dict | None = None) -> dict:
    """measure() in a fresh interpreter (so nothing this process allocated counts)."""
    cmd = [sys.executable, "-m", "minivivit.bench.memory", str(path)] + (["--run", "--backend", backend] if run else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the memory probe failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minivivit.bench.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", help="a minivivit .safetensors file")
    p.add_argument("--run", action="store_true", help="also run one forward pass (the second call is measured)")
    p.add_argument("--backend", default="numba", help="backend of the forward pass (default: numba)")
    p.add_argument("--frames", type=int, help="clip frames (default: the config's)")
    p.add_argument("--image-size", type=int, help="frame size (default: the config's)")
    args = p.parse_args(argv)
    print("RESULT " + json.dumps(measure(args.weights, args.run, args.backend, args.frames, args.image_size)),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
