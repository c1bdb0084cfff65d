"""`minivivit bench`: numpy, numba and HF transformers (torch CPU, sdpa and eager) side by side.

One run: the same random ViViT weights (an HF model saved to a temporary directory, and its minivivit
conversion) and the same random clip for every backend; each backend runs in its own process so that
its peak RSS (load included) is its own. Reported per backend: median wall time of --repeats forward passes, the
ratio to HF-SDPA, GFLOP/s and the fraction of the machine's fp32 GEMM peak (measured here), peak RSS,
the first call (numba: JIT compile from a cold cache, then a warm start), and the extra cost of
capturing attention (CLS rows of every layer; full maps of the last layer).

Also `python -m minivivit.commands.bench --worker SPEC` (used internally: one backend, one process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALL_BACKENDS = ["numpy", "numba", "hf-sdpa", "hf-eager"]
VIVIT_B = {"image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16], "hidden_size": 768,
           "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "num_labels": 400,
           "hidden_act": "gelu_fast"}


def add_parser(sub):
    p = sub.add_parser(
        "bench",
        help="time numpy / numba / HF-torch forward passes side by side (wall time, GFLOP/s, memory)",
        description=(
            "Benchmark one clip through ViViT-B (random weights) on each backend: minivivit's numpy and numba "
            "backends and HF transformers on torch CPU with attn_implementation sdpa and eager. Each backend runs "
            "in its own process. Prints a table (or --json): median wall time, ratio to HF-SDPA, GFLOP/s, "
            "fraction of the measured fp32 GEMM peak, peak RSS, first-call cost (numba JIT), attention capture "
            "cost. Threads: NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are passed through. "
            "A full run takes about 10 minutes on 2 cores; use --layers/--frames/--image-size/--repeats to shrink it."
        ),
        epilog=(
            "examples:\n"
            "  minivivit bench                                   # ViViT-B, 32x224x224, 3 repeats\n"
            "  minivivit bench --backends numba,hf-sdpa --repeats 5\n"
            "  minivivit bench --layers 2 --frames 8 --image-size 112 --repeats 1 --json   # a quick smoke run"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backends", default=",".join(ALL_BACKENDS),
                   help=f"comma-separated subset of {','.join(ALL_BACKENDS)} (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per backend (default: 3)")
    p.add_argument("--layers", type=int, default=12, help="encoder blocks (default: 12, ViViT-B)")
    p.add_argument("--frames", type=int, default=32, help="clip frames (default: 32)")
    p.add_argument("--image-size", type=int, default=224, help="frame height = width (default: 224)")
    p.add_argument("--no-capture", action="store_true", help="skip the attention-capture timings")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and clip (default: 0)")
    p.add_argument("--peak-seconds", type=float, default=3.0,
                   help="time spent measuring the GEMM peak per library (default: 3)")
    p.add_argument("--threads", type=int,
                   help="threads for every backend: sets NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and "
                        "MKL_NUM_THREADS in the benchmark processes (default: leave the environment as it is)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


# ---------------------------------------------------------------------------------------------
# What is measured
# ---------------------------------------------------------------------------------------------


def forward_flops(cfg: dict) -> dict:
    """Multiply-adds x 2 of one clip: tubelet GEMM + per layer (QKV/O, MLP, Q K^T and P V)."""
    tt, ph, pw = cfg["tubelet_size"]
    P = (cfg["num_frames"] // tt) * (cfg["image_size"] // ph) ** 2
    N, D, F, L = P + 1, cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    K = tt * ph * pw * 3
    total = 2 * P * K * D + L * (2 * N * (4 * D * D + 2 * D * F) + 4 * N * N * D)
    formula = "2*P*K*D + L*(2*N*(4*D^2 + 2*D*F) + 4*N^2*D)"
    values = f"P={P}, K={K}, N={N}, D={D}, F={F}, L={L}"
    return {"gflop": total / 1e9, "formula": formula, "values": values}


def gemm_peak(seconds: float = 3.0) -> dict:
    """Best fp32 GEMM rate of this machine: NumPy's BLAS (and torch's, if installed), 2048^3, best run."""
    import numpy as np

    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    rates = {"numpy": _best_rate(lambda: np.matmul(a, a, out=out), 2 * n**3, seconds)}
    try:
        import torch

        t, t_out = torch.from_numpy(a), torch.empty(n, n)
        rates["torch"] = _best_rate(lambda: torch.matmul(t, t, out=t_out), 2 * n**3, seconds)
    except ImportError:
        pass
    best = max(rates, key=rates.get)
    return {"gflops": rates[best], "by_library": rates, "shape": f"{n}x{n}x{n}"}


def _best_rate(fn, flop, seconds):
    fn()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return flop / best / 1e9


THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def threads_info(env) -> dict:
    return {"cpus": os.cpu_count(), **{k: env.get(k, "unset") for k in THREAD_VARIABLES}}


def load_average() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# Shared inputs: random HF weights + one clip, in a temporary directory
# ---------------------------------------------------------------------------------------------


def make_inputs(directory: Path, cfg: dict, seed: int) -> None:
    """Save a random-weight HF VivitForVideoClassification (every parameter N(0, 1/D), LayerNorm gains
    1 + N(0, 1/D), so activations stay O(1) through the depth), its minivivit conversion, and a N(0, 1)
    clip [1, T, 3, H, W]. Each backend then loads its own format, as in real use."""
    import numpy as np

    try:
        import torch
        from transformers import VivitConfig, VivitForVideoClassification
    except ImportError as e:
        raise RuntimeError("minivivit bench makes its weights with HF transformers; install the dev extra "
                           "(pip install -e '.[dev]')") from e
    torch.manual_seed(seed)
    model = VivitForVideoClassification(VivitConfig(**cfg)).eval()
    g = torch.Generator().manual_seed(seed)
    scale = cfg["hidden_size"] ** -0.5
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=g) * scale
            param.copy_(1.0 + noise if ("layernorm" in name and name.endswith("weight")) else noise)
    model.save_pretrained(directory / "hf")
    import minivivit

    minivivit.convert(directory / "hf", directory / "minivivit.safetensors")  # converted once, as a user would
    clip = np.random.default_rng(seed).standard_normal(
        (1, cfg["num_frames"], 3, cfg["image_size"], cfg["image_size"])).astype(np.float32)
    np.save(directory / "clip.npy", clip)


# ---------------------------------------------------------------------------------------------
# Worker: one backend in this process
# ---------------------------------------------------------------------------------------------


def worker(spec: dict) -> dict:
    """Load, one first call, `repeats` timed calls, peak RSS; then (ours) the attention captures."""
    from statistics import median

    import numpy as np

    directory, backend, repeats = Path(spec["dir"]), spec["backend"], spec["repeats"]
    clip = np.load(directory / "clip.npy")
    t0 = time.perf_counter()
    if backend.startswith("hf-"):
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
    if spec["capture"] and not backend.startswith("hf-"):
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


def _run_worker(spec: dict, env: dict) -> dict:
    cmd = [sys.executable, "-m", "minivivit.commands.bench", "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {spec['backend']} benchmark process failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def numba_compile_cost(spec: dict, cache_dir: Path, env: dict) -> dict:
    """First call of the numba backend with an empty NUMBA_CACHE_DIR (JIT compile), then with it filled."""
    env = dict(env, NUMBA_CACHE_DIR=str(cache_dir))
    small = dict(spec, repeats=1, capture=False)
    cold = _run_worker(small, env)
    warm = _run_worker(small, env)
    return {"cold_first_call_s": cold["first_call_s"], "warm_first_call_s": warm["first_call_s"],
            "steady_s": warm["median_s"], "compile_s": cold["first_call_s"] - cold["median_s"],
            "cache_dir": "fresh temporary NUMBA_CACHE_DIR"}


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def run(args) -> int:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(ALL_BACKENDS))
    if unknown or not backends:
        raise ValueError(f"--backends: unknown {unknown}; choose from {','.join(ALL_BACKENDS)}")
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    env = dict(os.environ)  # the benchmark processes' environment
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
        env.update({key: str(args.threads) for key in THREAD_VARIABLES})  # torch reads OMP/MKL_NUM_THREADS
    cfg = dict(VIVIT_B, num_hidden_layers=args.layers, num_frames=args.frames, image_size=args.image_size)

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    report = {"config": cfg, "flops": forward_flops(cfg), "threads": threads_info(env), "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="minivivit-bench-") as tmp:
        tmp = Path(tmp)
        say("bench: making random weights and a clip ...")
        make_inputs(tmp, cfg, args.seed)
        say("bench: measuring the fp32 GEMM peak ...")
        report["gemm_peak"] = gemm_peak(args.peak_seconds)
        spec = {"dir": str(tmp), "repeats": args.repeats, "capture": not args.no_capture}
        if "numba" in backends:
            say("bench: numba JIT compile cost (cold cache, then warm) ...")
            report["numba_jit"] = numba_compile_cost(dict(spec, backend="numba"), tmp / "numba-cache", env)
        results = {}
        for backend in backends:
            say(f"bench: {backend}: 1 first call + {args.repeats} timed runs"
                + (" + attention captures" if spec["capture"] and not backend.startswith("hf-") else "") + " ...")
            backend_env = dict(env, NUMBA_CACHE_DIR=str(tmp / "numba-cache")) if backend == "numba" else env
            results[backend] = _run_worker(dict(spec, backend=backend), backend_env)
    report["load_after"] = load_average()
    report["results"] = _derived(results, report)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _derived(results: dict, report: dict) -> dict:
    """Add ratio to HF-SDPA, GFLOP/s, % of GEMM peak and capture overheads to each backend's numbers."""
    ref = results.get("hf-sdpa", {}).get("median_s")
    for r in results.values():
        r["ratio_to_hf_sdpa"] = r["median_s"] / ref if ref else None
        r["gflops"] = report["flops"]["gflop"] / r["median_s"]
        r["fraction_of_gemm_peak"] = r["gflops"] / report["gemm_peak"]["gflops"]
        for name in ("cls_all_layers", "full_last_layer"):
            if f"capture_{name}_s" in r:
                r[f"capture_{name}_overhead"] = r[f"capture_{name}_s"] / r["median_s"] - 1
    return results


def format_table(report: dict) -> str:
    cfg, fl, peak = report["config"], report["flops"], report["gemm_peak"]
    lines = [
        f"ViViT: {cfg['num_hidden_layers']} layers, D={cfg['hidden_size']}, 1 clip {cfg['num_frames']}x"
        f"{cfg['image_size']}x{cfg['image_size']}; {fl['gflop']:.1f} GFLOP per clip = {fl['formula']}"
        f" with {fl['values']}",
        f"fp32 GEMM peak {peak['gflops']:.0f} GFLOP/s ({peak['shape']}, best of "
        + ", ".join(f"{k} {v:.0f}" for k, v in peak["by_library"].items()) + ")",
        "threads: " + ", ".join(f"{k}={v}" for k, v in report["threads"].items())
        + f"; load average before {report['load_before']}, after {report['load_after']}",
        "",
        f"{'backend':<10}{'median s':>10}{'cpu s':>8}{'x HF-SDPA':>11}{'GFLOP/s':>9}{'% peak':>8}"
        f"{'RSS MB load/run':>17}{'first call s':>14}{'+CLS rows':>11}{'+1 full map':>13}",
    ]
    for name, r in report["results"].items():
        ratio = f"{r['ratio_to_hf_sdpa']:.2f}" if r["ratio_to_hf_sdpa"] else "-"
        cls = f"{100 * r['capture_cls_all_layers_overhead']:+.0f}%" if "capture_cls_all_layers_s" in r else "-"
        full = f"{100 * r['capture_full_last_layer_overhead']:+.0f}%" if "capture_full_last_layer_s" in r else "-"
        lines.append(f"{name:<10}{r['median_s']:>10.2f}{r['median_cpu_s']:>8.1f}{ratio:>11}{r['gflops']:>9.0f}"
                     f"{100 * r['fraction_of_gemm_peak']:>7.0f}%"
                     f"{r['peak_rss_load_mb']:>10.0f} /{r['peak_rss_run_mb']:>5.0f}"
                     f"{r['first_call_s']:>14.2f}{cls:>11}{full:>13}")
    if "numba_jit" in report:
        j = report["numba_jit"]
        lines.append(f"\nnumba JIT: first call {j['cold_first_call_s']:.1f} s with an empty cache "
                     f"(~{j['compile_s']:.1f} s compiling), {j['warm_first_call_s']:.1f} s from the on-disk cache "
                     f"(steady {j['steady_s']:.1f} s)")
    lines.append("RSS = peak resident memory of the backend's own process while loading the weights / while running "
                 "forward passes (weights included)")
    lines.append("median of the timed runs (wall; cpu s = CPU time of all the process's threads); "
                 "+CLS rows = output_attentions='cls' for every layer, +1 full map = output_attentions='full' "
                 "for the last layer only, vs the plain forward")
    return "\n".join(lines)


def main(argv=None) -> int:
    """`python -m minivivit.commands.bench --worker SPEC`: run one backend and print `RESULT {json}`."""
    parser = argparse.ArgumentParser(prog="python -m minivivit.commands.bench")
    parser.add_argument("--worker", required=True, help="JSON spec: dir, backend, repeats, capture")
    args = parser.parse_args(argv)
    print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
