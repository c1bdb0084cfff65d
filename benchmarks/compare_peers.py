"""ViViT-B (one 32x224x224 clip, random weights, fp32): minivivit numba vs OpenVINO vs ONNX Runtime vs HF SDPA,
interleaved: each round runs every contender once (its own process: load, one first call, --repeats timed calls),
so slow phases of a shared machine hit every contender alike. Also numba with the blocked attention kernel
(MINIVIVIT_NUMBA_ATTENTION=blocked), to compare the two kernels in the same run.

    python benchmarks/compare_peers.py --rounds 3 --repeats 2 > result.txt

Needs the dev and bench extras (torch, transformers, onnx, onnxruntime, openvino). Prints one line per round
and contender (median of its timed calls, logits check against HF eager), then the medians over the rounds and
the ratio of numba to the fastest peer; `uptime`'s load average before and after each round.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from statistics import median

from minivivit.bench import harness
from minivivit.bench.peers import LOGITS_LIMIT, export_onnx, rel_err

CONTENDERS = {  # name: (worker backend, extra environment)
    "numba": ("numba", {}),
    "numba-blocked": ("numba", {"MINIVIVIT_NUMBA_ATTENTION": "blocked"}),
    "openvino": ("openvino", {}),
    "onnxruntime": ("onnxruntime", {}),
    "hf-sdpa": ("hf-sdpa", {}),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    args = p.parse_args()
    names = args.contenders.split(",")
    env = dict(os.environ, **{k: str(args.threads) for k in harness.THREAD_VARIABLES})
    cfg = harness.vivit_b()
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="minivivit-peers-") as tmp:
        tmp = Path(tmp)
        harness.make_inputs(tmp, cfg, 0)
        export_onnx(tmp / "hf", tmp, cfg)
        import numpy as np

        ref = harness.hf_eager_logits(tmp / "hf", np.load(tmp / "clip.npy"))  # the reference of the logits check
        spec = {"dir": str(tmp), "repeats": args.repeats, "capture": False, "threads": args.threads}
        env["NUMBA_CACHE_DIR"] = str(tmp / "numba-cache")
        times = {n: [] for n in names}
        for rnd in range(args.rounds):
            say(f"round {rnd + 1}: load average before {harness.load_average()}")
            results = {}
            for name in names:
                backend, extra = CONTENDERS[name]
                r = harness._run_worker(dict(spec, backend=backend), dict(env, **extra))
                r["logits_rel_err"] = rel_err(np.load(tmp / f"logits-{backend}.npy"), ref)
                results[name] = r
                times[name].append(r["median_s"])
                say(f"  {name:<14}{r['median_s']:7.2f} s  (runs {', '.join(f'{t:.2f}' for t in r['times_s'])}; "
                    f"first call {r['first_call_s']:.2f} s; peak RSS load/run {r['peak_rss_load_mb']:.0f} / "
                    f"{r['peak_rss_run_mb']:.0f} MB)")
            say(f"  logits vs HF eager (limit {LOGITS_LIMIT:g}): " + ", ".join(
                f"{n} {results[n]['logits_rel_err']:.1e}" + ("" if results[n]["logits_rel_err"] <= LOGITS_LIMIT
                                                            else " FAIL") for n in names))
            say(f"  load average after {harness.load_average()}")
    say("\nmedian over rounds:")
    med = {n: median(ts) for n, ts in times.items()}
    for n, t in med.items():
        say(f"  {n:<14}{t:7.2f} s")
    peers = [n for n in ("openvino", "onnxruntime") if n in med]
    if "numba" in med and peers:
        best = min(peers, key=med.get)
        say(f"numba / fastest peer ({best}) = {med['numba'] / med[best]:.2f}; per round: "
            + ", ".join(f"{times['numba'][i] / min(times[p][i] for p in peers):.2f}" for i in range(args.rounds)))
    if "numba-blocked" in med and "numba" in med:
        say(f"numba fused / blocked attention = {med['numba'] / med['numba-blocked']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
