"""One backend of the benchmark in this process: `python -m minivivit.bench.worker SPEC_JSON` prints
`RESULT {json}`. Started by harness.py, one process per backend, so that peak memory is the backend's own."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .peers import ONNX_NAME, PEERS, load_peer


def worker(spec: dict) -> dict:
    """Load, one first call, `repeats` timed calls, peak RSS; then (ours) the attention captures."""
    from statistics import median

    import numpy as np

    directory, backend, repeats = Path(spec["dir"]), spec["backend"], spec["repeats"]
    clip = np.load(directory / "clip.npy")
    t0 = time.perf_counter()
    if backend in PEERS:  # HF's model exported to ONNX (harness: peers.export_onnx), run by ONNX Runtime / OpenVINO
        run_peer = load_peer(backend, directory / ONNX_NAME, int(spec.get("threads") or os.cpu_count() or 1))

        def forward(**kwargs):
            return run_peer(clip)
    elif backend.startswith("hf-"):
        import torch
        from transformers import VivitForVideoClassification

        model = VivitForVideoClassification.from_pretrained(directory / "hf", attn_implementation=backend[3:]).eval()
        x = torch.from_numpy(clip)

        def forward(**kwargs):
            with torch.inference_mode():
                return model(x, **kwargs).logits.numpy()
    else:
        import minivivit

        model = minivivit.load(directory / "minivivit.safetensors")

        def forward(**kwargs):
            return model(clip, backend=backend, **kwargs).logits

    result = {"backend": backend, "load_s": time.perf_counter() - t0, "peak_rss_load_mb": peak_rss_mb()}
    result["run_peak_is_separate"] = reset_peak_rss()  # from here on VmHWM is the peak while running
    t0 = time.perf_counter()
    logits = forward()
    result["first_call_s"] = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        forward()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # CPU seconds of all threads (spin-waiting included)
    result.update(times_s=times, median_s=median(times), median_cpu_s=median(cpu),
                  logits_head=[float(v) for v in logits[0, :3]],
                  peak_rss_run_mb=peak_rss_mb())
    result["peak_rss_mb"] = max(result["peak_rss_load_mb"], result["peak_rss_run_mb"])
    np.save(directory / f"logits-{backend}.npy", np.asarray(logits))  # the harness checks them against HF eager
    if spec["capture"] and backend in ("numpy", "numba", "cuda"):
        last = model.config.num_hidden_layers - 1
        for name, kwargs in (("cls_all_layers", {"output_attentions": "cls"}),
                             ("full_last_layer", {"output_attentions": "full", "attention_layers": [last]})):
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                forward(**kwargs)
                ts.append(time.perf_counter() - t0)
            result[f"capture_{name}_s"] = median(ts)
        result["peak_rss_with_capture_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM from /proc/self/status on Linux. (Not getrusage's
    ru_maxrss: a child started by fork + exec inherits its parent's peak there.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux, bytes on macOS


def reset_peak_rss() -> bool:
    """Start a new peak for VmHWM (Linux: write 5 to /proc/self/clear_refs); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m minivivit.bench.worker SPEC_JSON  (dir, backend, repeats, capture)", file=sys.stderr)
        return 2
    print("RESULT " + json.dumps(worker(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
