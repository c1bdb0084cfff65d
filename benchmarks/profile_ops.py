"""Per-op times of one ViViT-B encoder layer on the numba backend (one 32x224x224 clip: N = 3137, D = 768),
with both attention kernels side by side: blocked_attention (NumPy BLAS per query block, numba softmax) and
fused_attention (one parallel region, SciPy's sgemm inside).

    python benchmarks/profile_ops.py               # 7 rounds, every op once per round, interleaved
    python benchmarks/profile_ops.py --rounds 15

Random weights and activations of ViViT-B's shape; the median of the rounds, so the ops see the same machine
load. Prints milliseconds per op and the attention's GFLOP/s (4 N^2 D per layer).
"""

import argparse
import os
import time

import numpy as np

from minivivit.bench.harness import vivit_b
from minivivit.config import ViViTConfig
from minivivit.kernels import get_backend
from minivivit.kernels.numba import blocked_attention, fused_attention
from minivivit.weights import init_params


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    config = ViViTConfig.from_hf_dict(vivit_b(num_hidden_layers=1))
    blk = init_params(config, seed=0)["blocks"][0]
    nb = get_backend("numba")
    N, D, nh = config.num_patches + 1, config.hidden_size, config.num_attention_heads
    x = np.random.default_rng(0).standard_normal((1, N, D)).astype(np.float32)
    a = blk["attn"]
    h = nb.layer_norm(x, blk["ln1"]["g"], blk["ln1"]["b"], 1e-6)
    q, k, v = (nb.linear(h, a[n]["w"], a[n].get("b")) for n in "qkv")
    hidden = nb.linear_act(h, blk["mlp"]["fc1"]["w"], blk["mlp"]["fc1"]["b"], config.hidden_act)
    ops = {
        "layer_norm": lambda: nb.layer_norm(x, blk["ln1"]["g"], blk["ln1"]["b"], 1e-6),
        "q, k, v linear (3 GEMMs)": lambda: [nb.linear(h, a[n]["w"], a[n].get("b")) for n in "qkv"],
        "attention: blocked (old)": lambda: blocked_attention.attention(q, k, v, nh),
        "attention: fused (new)": lambda: fused_attention.attention(q, k, v, nh),
        "o linear": lambda: nb.linear(h, a["o"]["w"], a["o"]["b"]),
        "residual add": lambda: nb.add(x, h),
        "fc1 + GELU": lambda: nb.linear_act(h, blk["mlp"]["fc1"]["w"], blk["mlp"]["fc1"]["b"], config.hidden_act),
        "fc2": lambda: nb.linear(hidden, blk["mlp"]["fc2"]["w"], blk["mlp"]["fc2"]["b"]),
    }
    for fn in ops.values():
        fn()  # compile / warm up
    times = {name: [] for name in ops}
    for _ in range(args.rounds):
        for name, fn in ops.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    load = os.getloadavg()
    print(f"one ViViT-B layer, N={N}, D={D}, {nh} heads; median of {args.rounds} interleaved rounds; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; NUMBA_NUM_THREADS="
          f"{os.environ.get('NUMBA_NUM_THREADS', 'unset')}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    attn_gflop = 4 * N * N * D / 1e9
    for name, ts in times.items():
        ms = 1e3 * float(np.median(ts))
        rate = f"  {attn_gflop / (ms / 1e3):.0f} GFLOP/s" if name.startswith("attention") else ""
        print(f"  {name:<28}{ms:9.1f} ms  (best {1e3 * min(ts):.1f}){rate}")
    c_old, _ = blocked_attention.attention(q, k, v, nh)
    c_new, _ = fused_attention.attention(q, k, v, nh)
    print(f"  fused vs blocked context: max |diff| / max |blocked| = "
          f"{np.abs(c_new - c_old).max() / np.abs(c_old).max():.1e}")


if __name__ == "__main__":
    main()
