"""The benchmark harness behind `minivivit bench` and benchmarks/: numpy, numba, HF transformers (torch CPU,
sdpa and eager) and HF's model exported to ONNX on ONNX Runtime and OpenVINO (peers.py) side by side.

One run: the same random ViViT weights (an HF model saved to a temporary directory, and its minivivit
conversion) and the same random clip for every backend; each backend runs in its own process
(worker.py) so that its peak RSS (load included) is its own. Reported per backend: median wall time of
the repeated forward passes, the ratio to HF-SDPA, GFLOP/s and the fraction of the machine's fp32 GEMM
peak (measured here), peak RSS, the first call (numba: JIT compile from a cold cache, then a warm
start), the extra cost of capturing attention (CLS rows of every layer; full maps of the last layer), and every
contender's logits relative error to HF eager's (max |ours - HF| / max |HF|, limit peers.LOGITS_LIMIT = 1e-5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .peers import LOGITS_LIMIT, PEERS, rel_err

ALL_BACKENDS = ["numpy", "numba", "hf-sdpa", "hf-eager", *PEERS]
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def vivit_b(**changes) -> dict:
    """ViViT-B's HF config dict (ViViTConfig's defaults are ViViT-B), with changes."""
    from ..config import ViViTConfig

    cfg = {k: v for k, v in ViViTConfig().to_hf_dict().items() if k not in ("id2label", "label2id", "model_type")}
    return {**cfg, **changes}


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


def threads_info(env) -> dict:
    return {"cpus": os.cpu_count(), **{k: env.get(k, "unset") for k in THREAD_VARIABLES}}


def load_average() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def make_inputs(directory: Path, cfg: dict, seed: int) -> None:
    """Save a random-weight HF VivitForVideoClassification (every parameter N(0, 1/D), LayerNorm gains
    1 + N(0, 1/D), so activations stay O(1) through the depth), its minivivit conversion, and a N(0, 1)
    clip [1, T, 3, H, W]. Each backend then loads its own format, as in real use."""
    import numpy as np

    from .hf_reference import random_hf_model

    model = random_hf_model(cfg, "classifier", seed)
    model.save_pretrained(directory / "hf")
    import minivivit

    minivivit.convert(directory / "hf", directory / "minivivit.safetensors")  # converted once, as a user would
    clip = np.random.default_rng(seed).standard_normal(
        (1, cfg["num_frames"], 3, cfg["image_size"], cfg["image_size"])).astype(np.float32)
    np.save(directory / "clip.npy", clip)


def _run_worker(spec: dict, env: dict) -> dict:
    cmd = [sys.executable, "-m", "minivivit.bench.worker", json.dumps(spec)]
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


def default_backends() -> str:
    """Every contender whose libraries are installed: ours and HF's always, the peers with the bench extra."""
    return ",".join([*ALL_BACKENDS[:4], *(p for p in PEERS if _importable(p, "onnx"))])


def run(args) -> dict:
    backends = [b.strip() for b in (args.backends or default_backends()).split(",") if b.strip()]
    unknown = sorted(set(backends) - set(ALL_BACKENDS))
    if unknown or not backends:
        raise ValueError(f"--backends: unknown {unknown}; choose from {','.join(ALL_BACKENDS)}")
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    missing = [p for p in PEERS if p in backends and not _importable(p, "onnx")]
    if missing:
        raise ValueError(f"--backends {','.join(missing)} needs the bench extra (onnx, onnxruntime, openvino): "
                         f"python -m pip install -e '.[bench]'")
    env = dict(os.environ)  # the benchmark processes' environment
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
        env.update({key: str(args.threads) for key in THREAD_VARIABLES})  # torch reads OMP/MKL_NUM_THREADS
    cfg = vivit_b(num_hidden_layers=args.layers, num_frames=args.frames, image_size=args.image_size)

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    report = {"config": cfg, "flops": forward_flops(cfg), "threads": threads_info(env), "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="minivivit-bench-") as tmp:
        tmp = Path(tmp)
        say("bench: making random weights and a clip ...")
        make_inputs(tmp, cfg, args.seed)
        if any(b in PEERS for b in backends):
            from .peers import export_onnx

            say("bench: exporting HF's model to ONNX for the peers ...")
            export_onnx(tmp / "hf", tmp, cfg)
        say("bench: measuring the fp32 GEMM peak ...")
        report["gemm_peak"] = gemm_peak(args.peak_seconds)
        spec = {"dir": str(tmp), "repeats": args.repeats, "capture": not args.no_capture,
                "threads": args.threads or os.cpu_count()}
        if "numba" in backends:
            say("bench: numba JIT compile cost (cold cache, then warm) ...")
            report["numba_jit"] = numba_compile_cost(dict(spec, backend="numba"), tmp / "numba-cache", env)
        results = {}
        for backend in backends:
            say(f"bench: {backend}: 1 first call + {args.repeats} timed runs"
                + (" + attention captures" if spec["capture"] and not backend.startswith("hf-") else "") + " ...")
            backend_env = dict(env, NUMBA_CACHE_DIR=str(tmp / "numba-cache")) if backend == "numba" else env
            results[backend] = _run_worker(dict(spec, backend=backend), backend_env)
        _check_logits(results, tmp, say)
    report["load_after"] = load_average()
    report["results"] = _derived(results, report)
    return report


def _importable(*names) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in names)


def hf_eager_logits(hf_dir, clip):
    """HF eager's logits of the clip: the reference every contender is checked against."""
    import torch
    from transformers import VivitForVideoClassification

    model = VivitForVideoClassification.from_pretrained(hf_dir, attn_implementation="eager").eval()
    with torch.inference_mode():
        return model(torch.from_numpy(clip)).logits.numpy()


def _check_logits(results: dict, directory: Path, say) -> None:
    """Each contender's logits (saved by its worker) vs HF eager's: logits_rel_err and logits_ok per contender."""
    import numpy as np

    if "hf-eager" in results:
        ref = np.load(directory / "logits-hf-eager.npy")
    else:
        say("bench: HF eager logits for the check ...")
        ref = hf_eager_logits(directory / "hf", np.load(directory / "clip.npy"))
    for name, r in results.items():
        r["logits_rel_err"] = rel_err(np.load(directory / f"logits-{name}.npy"), ref)
        r["logits_ok"] = r["logits_rel_err"] <= LOGITS_LIMIT


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
        f"{'backend':<12}{'median s':>10}{'cpu s':>8}{'x HF-SDPA':>11}{'GFLOP/s':>9}{'% peak':>8}"
        f"{'RSS MB load/run':>17}{'first call s':>14}{'+CLS rows':>11}{'+1 full map':>13}{'logits vs eager':>17}",
    ]
    for name, r in report["results"].items():
        ratio = f"{r['ratio_to_hf_sdpa']:.2f}" if r["ratio_to_hf_sdpa"] else "-"
        cls = f"{100 * r['capture_cls_all_layers_overhead']:+.0f}%" if "capture_cls_all_layers_s" in r else "-"
        full = f"{100 * r['capture_full_last_layer_overhead']:+.0f}%" if "capture_full_last_layer_s" in r else "-"
        lines.append(f"{name:<12}{r['median_s']:>10.2f}{r['median_cpu_s']:>8.1f}{ratio:>11}{r['gflops']:>9.0f}"
                     f"{100 * r['fraction_of_gemm_peak']:>7.0f}%"
                     f"{r['peak_rss_load_mb']:>10.0f} /{r['peak_rss_run_mb']:>5.0f}"
                     f"{r['first_call_s']:>14.2f}{cls:>11}{full:>13}"
                     f"{r['logits_rel_err']:>12.1e} {'ok' if r['logits_ok'] else 'FAIL'}")
    if "numba_jit" in report:
        j = report["numba_jit"]
        lines.append(f"\nnumba JIT: first call {j['cold_first_call_s']:.1f} s with an empty cache "
                     f"(~{j['compile_s']:.1f} s compiling), {j['warm_first_call_s']:.1f} s from the on-disk cache "
                     f"(steady {j['steady_s']:.1f} s)")
    lines.append(f"logits vs eager = max |logits - HF eager's| / max |HF eager's|, ok when <= {LOGITS_LIMIT:g}; "
                 "onnxruntime / openvino run HF's model exported to ONNX (torch.onnx.export, opset 17)")
    lines.append("RSS = peak resident memory of the backend's own process while loading the weights / while running "
                 "forward passes (weights included)")
    lines.append("median of the timed runs (wall; cpu s = CPU time of all the process's threads); "
                 "+CLS rows = output_attentions='cls' for every layer, +1 full map = output_attentions='full' "
                 "for the last layer only, vs the plain forward")
    return "\n".join(lines)
