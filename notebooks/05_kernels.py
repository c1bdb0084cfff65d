# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Kernels: one specification, three implementations
#
# **The idea:** every fast kernel in minivivit has a **NumPy twin** — a few readable lines in
# `minivivit/layers.py` that *are* the specification — and is tested against it. A backend is a
# module with the same five ops (`tubelet_embed`, `linear`, `linear_act`, `layer_norm`,
# `attention`), chosen by name:
#
# | backend | where | what it is for |
# |---|---|---|
# | `"numpy"` | `minivivit/layers.py` | the readable reference |
# | `"numba"` | `minivivit/kernels/numba/` | fast on the CPU (JIT-compiled, parallel, fused) |
# | `"cuda"` | `minivivit/kernels/cuda/` | NVIDIA GPUs via numba.cuda; here run by the **simulator** |
#
# We check the three agree on GELU, the tubelet projection and attention; see how the numba and
# CUDA kernels avoid holding the N×N attention matrix — two different tricks — and measure a timing
# table that says what each speed-up comes from.

# %%
# The CUDA simulator must be switched on before numba.cuda is first imported, so this cell comes first
# (after changing it, restart the kernel). On a machine with an NVIDIA GPU, "0" runs the kernels on the GPU.
# %matplotlib inline
import os

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

# %%
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

from minivivit import layers
from minivivit.kernels import OPS, get_backend

backends = {name: get_backend(name) for name in ("numpy", "numba", "cuda")}
print("every backend provides:", OPS)
print("CUDA simulator on:", os.environ["NUMBA_ENABLE_CUDASIM"] == "1")

# %% [markdown]
# ## 1. Same ops, same answers
#
# Small shapes, float32, for the three ops with real arithmetic in them. The simulator executes
# every CUDA thread as Python (about 150 µs each), so its inputs stay tiny.
# Each comparison is max |backend − numpy| against a tolerance of `atol + rtol·|numpy|`.
#
# The two time columns are *not* speed measurements. A numba kernel is compiled the first time it is
# called with new argument types (or loaded from numba's on-disk cache, `cache=True`, if an earlier
# run compiled it), so the **first call** is mostly compilation; the **second call** is the kernel on
# these tiny inputs, dominated by call overhead. For `cuda` both are the simulator running Python.
# Section 3 measures speed properly.

# %%
rng = np.random.default_rng(0)
f32 = np.float32
x = rng.standard_normal((2, 17, 16)).astype(f32)  # [B, N, D]
w = (rng.standard_normal((16, 24)) / 4).astype(f32)  # [D, F]
b = rng.standard_normal(24).astype(f32)  # [F]
pix = rng.standard_normal((1, 4, 3, 16, 16)).astype(f32)  # [B, T, C, H, W]
w_embed = (rng.standard_normal((2 * 8 * 8 * 3, 8)) / 20).astype(f32)  # [K, D]
b_embed = rng.standard_normal(8).astype(f32)
q, k, v = (rng.standard_normal((1, 33, 16)).astype(f32) for _ in range(3))  # [B, N, D], 2 heads of d=8

cases = {  # name: (function of a backend module, atol, rtol)
    "linear + gelu_fast": (lambda ops: ops.linear_act(x, w, b, "gelu_fast"), 1e-5, 1e-5),
    "linear + gelu (erf)": (lambda ops: ops.linear_act(x, w, b, "gelu"), 1e-5, 1e-5),
    "tubelet projection": (lambda ops: ops.tubelet_embed(pix, w_embed, b_embed, (2, 8, 8)), 1e-5, 1e-5),
    "attention (context)": (lambda ops: ops.attention(q, k, v, 2, None, None)[0], 1e-5, 1e-5),
    "attention (CLS probs)": (lambda ops: ops.attention(q, k, v, 2, None, "cls")[1], 1e-6, 1e-5),
}
print(f"{'op':24s} {'backend':7s} {'max |diff|':>11s} {'1st call ms':>12s} {'2nd call ms':>12s}")
for name, (fn, atol, rtol) in cases.items():
    ref = fn(backends["numpy"])
    for backend in ("numba", "cuda"):
        seconds = []
        for _ in range(2):  # the first call compiles (or loads numba's cache), the second runs the kernel
            start = time.perf_counter()
            got = fn(backends[backend])
            seconds.append(time.perf_counter() - start)
        err = np.abs(got - ref).max()
        assert np.all(np.abs(got - ref) <= atol + rtol * np.abs(ref)), f"{name} on {backend}: max |diff| {err:.3g}"
        print(f"{name:24s} {backend:7s} {err:11.2e} {seconds[0] * 1e3:12.1f} {seconds[1] * 1e3:12.1f}")

# %% [markdown]
# A numba row whose first call is far longer than its second compiled its kernel there (hundreds of
# ms) or loaded it from numba's cache (milliseconds); one where both calls are short reused a kernel
# that an earlier row had already compiled (the two GELU rows share `bias_act_`, the two attention
# rows `softmax_rows_`).

# %% [markdown]
# ## 2. Attention without the N × N matrix: two tricks
#
# The NumPy twin (`layers.attention`) builds, per head, the whole `[N, N]` score matrix, softmaxes it
# and multiplies by V: 39 MB per head for ViViT-B (N = 3137). The fast kernels avoid that in two
# different ways.
#
# **The numba kernel** (`minivivit/kernels/numba/blocked_attention.py`) blocks the *queries* only. It
# takes up to 1024 query rows at a time (equal blocks: ViViT-B's 3137 rows become 4 × 785), computes
# their scores against **every key** with one BLAS call (`[r, d] @ [d, N]`), softmaxes each row in a
# fused numba loop (max, exp, sum, scale) and multiplies by V with a second BLAS call. A whole row of
# scores is there at once, so softmax needs no trick — no running maximum. Memory: one reused `[r, N]`
# buffer (785 × 3137 floats = 9.9 MB for ViViT-B) instead of `[N, N]`. It works on a CPU because a row of N = 3137 floats
# (12 KB) fits in the L1 cache.
#
# **The CUDA kernel** (`minivivit/kernels/cuda/flash_attention.py`) is flash attention proper (Dao et
# al. 2022, Algorithm 1): one GPU thread per query row walks over the *keys* in tiles of 32 rows, so it
# never sees a whole row of scores, and softmax needs the row's maximum and sum before it can
# normalise. The trick (Milakov & Gimelshein 2018, "online softmax") keeps, per row, a running
# maximum `m`, a running sum `l` of `exp(s − m)` and a running weighted sum `acc` of the values. When
# a new tile raises the maximum from `m` to `m'`, everything accumulated so far was relative to the old
# maximum, so it is **rescaled by exp(m − m')**:
#
# $$m' = \max(m, \max_j s_j), \quad l' = l\,e^{m - m'} + \sum_j e^{s_j - m'}, \quad
# \text{acc}' = \text{acc}\,e^{m - m'} + \sum_j e^{s_j - m'} v_j$$
#
# At the end, `context = acc / l` — exactly `softmax(s) · V`. Memory per query row: d + 2 numbers,
# whatever N is.
#
# Below we write the CUDA kernel's loop in NumPy (blocks of queries *and* keys, so only a
# `[block, block]` tile of scores ever exists).
#
# **Exercise.** Write `online_update(m, l, acc, s, v_blk)`: one step of the loop for a block of
# queries (`m`, `l`: `[bq]`; `acc`: `[bq, d]`; `s`: `[bq, bk]` scores of this key block; `v_blk`: `[bk, d]`).
# Return the new `(m, l, acc)`.

# %% tags=["exercise"]
def online_update(m, l, acc, s, v_blk):
    # your code here: new max, rescale the old sums by exp(m - m_new), add this block's terms
    raise NotImplementedError("write online_update, then run the check below")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_online_update(m, l, acc, s, v_blk):
    m_new = np.maximum(m, s.max(axis=1))  # [bq]
    correction = np.exp(m - m_new)  # [bq]; 0 on the first block, where m = -inf
    p = np.exp(s - m_new[:, None])  # [bq, bk]
    return m_new, l * correction + p.sum(axis=1), acc * correction[:, None] + p @ v_blk


# %%
def online_attention(q, k, v, update, block=64):
    """One head, q, k, v: [N, d] -> [N, d] = softmax(q k^T / sqrt d) v, holding at most [block, block] scores:
    the CUDA kernel's loop, with `update` doing one key block of the online softmax."""
    N, d = q.shape
    out = np.empty_like(q)
    for i0 in range(0, N, block):
        qb = q[i0:i0 + block]  # [bq, d]
        m, l, acc = np.full(len(qb), -np.inf), np.zeros(len(qb)), np.zeros((len(qb), d))
        for j0 in range(0, N, block):
            s = qb @ k[j0:j0 + block].T / np.sqrt(d)  # [bq, bk]: the only scores that exist
            m, l, acc = update(m, l, acc, s, v[j0:j0 + block])
        out[i0:i0 + block] = acc / l[:, None]
    return out


one_head = list(np.random.default_rng(1).standard_normal((3, 300, 32)))  # q, k, v: N = 300 (not a multiple of 64)
ref = layers.attention(*(a[None] for a in one_head), num_heads=1)[0][0]  # [1, N, d] -> [N, d]
try:
    mine = online_attention(*one_head, update=online_update)
except NotImplementedError:
    mine = None
if mine is None:
    print("not done: write online_update above (until then the rest of the notebook uses the hidden solution)")
    update = solution_online_update
else:
    assert np.shape(mine) == ref.shape and np.allclose(mine, ref, atol=1e-12), \
        f"online_update is not right yet: max |diff| {np.abs(np.asarray(mine) - ref).max():.3g}"
    print(f"your online_update gives layers.attention: ✓ (max diff {np.abs(mine - ref).max():.1e})")
    update = online_update

# %% [markdown]
# **Measured.** Python's `tracemalloc` sees every NumPy allocation, including the numba kernel's
# buffers (it allocates them with NumPy before calling its compiled loops). One head, N = 2049, d = 64,
# float32: the reference holds `[N, N]`; the numba kernel one `[r, N]` block (2049 rows become 3 blocks
# of 683); the online loop a `[128, 128]` tile.

# %%
def peak_mib(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


N, d = 2049, 64
qkv = [rng.standard_normal((1, N, d)).astype(f32) for _ in range(3)]  # [B, N, d], one head
rows = -(-N // -(-N // 1024))  # the numba kernel's block height (blocked_attention.attention)
full_mib = peak_mib(lambda: layers.attention(*qkv, num_heads=1))
numba_mib = peak_mib(lambda: backends["numba"].attention(*qkv, 1))
online_mib = peak_mib(lambda: online_attention(*(a[0] for a in qkv), update=update, block=128))
print(f"N = {N}: one N x N float32 matrix is {N * N * 4 / 2**20:.1f} MiB; numba's [{rows}, N] block is {rows * N * 4 / 2**20:.1f} MiB")
print(f"  layers.attention (NumPy twin) peak:   {full_mib:6.1f} MiB")
print(f"  numba kernel (query blocks) peak:     {numba_mib:6.1f} MiB")
print(f"  online loop (128 x 128 tiles) peak:   {online_mib:6.1f} MiB")
assert numba_mib < full_mib / 2 and online_mib < full_mib / 4

# %% [markdown]
# ## 3. A timing table, measured live
#
# What is measured, and how:
#
# * **Sizes:** N = 2049 tokens (64 frames of 64×64 in 2×8×8 tubelets, + CLS), D = 128, MLP width
#   F = 512, 2 heads of d = 64 — big enough that each call takes milliseconds, not microseconds.
# * **Warm-up apart:** every op is called once before timing (compilation, caches), and that call is
#   not in the table.
# * **One thread, CPU time:** the main columns run NumPy's BLAS and numba on **one thread each**
#   (`threadpoolctl` limits OpenBLAS; `numba.set_num_threads(1)`) and measure the process's **CPU
#   time** (`time.process_time`). On a machine shared with other programs, wall time also counts the
#   time a thread waits for a core — which depends on the other programs, not on the op — while the
#   CPU time of a single thread is the op's own work. This is the comparison of the *code*.
# * **All threads, wall time:** the last two columns let BLAS and numba use every core and measure
#   wall time (`time.perf_counter`), what a user waits for; on a busy machine these move a lot.
# * **Best of 9**, after the warm-up, NumPy and numba called in turns so that both see the same state
#   of the machine: extra time only ever comes from disturbances, so the fastest run is the best
#   estimate; the load average is printed with the table.
#
# The CUDA simulator is left out: it measures Python, not a GPU.

# %%
import numba
from threadpoolctl import threadpool_limits

N, D, F, nh = 2049, 128, 512, 2
x = rng.standard_normal((1, N, D)).astype(f32)
w1, b1 = (rng.standard_normal((D, F)) / np.sqrt(D)).astype(f32), np.zeros(F, f32)
qkv = [rng.standard_normal((1, N, D)).astype(f32) for _ in range(3)]
pix = rng.standard_normal((1, 64, 3, 64, 64)).astype(f32)  # 32 x 8 x 8 = 2048 tubelets of 2x8x8
we = (rng.standard_normal((2 * 8 * 8 * 3, D)) / 20).astype(f32)
work = {  # name: (function of a backend, FLOPs with a multiply-add as 2, what numba changes)
    "linear + gelu_fast": (lambda ops: ops.linear_act(x, w1, b1, "gelu_fast"), 2 * N * D * F,
                           "same GEMM; bias + GELU fused into one pass (NumPy: ~10 elementwise passes)"),
    "tubelet projection": (lambda ops: ops.tubelet_embed(pix, we, np.zeros(D, f32), (2, 8, 8)), 2 * 2048 * 384 * D,
                           "same GEMM; the cut into tubelets is a numba copy instead of NumPy's transpose copy"),
    "attention": (lambda ops: ops.attention(*qkv, nh, None, None), 2 * 2 * N * N * D,
                  "same 2 GEMMs per head; scale + softmax fused, on a [683, N] block in cache (NumPy: 6 passes over [N, N])"),
}


def best_seconds(fns, clock, repeats=9):
    """The best time of each function in fns, called in turns (a, b, a, b, ...) so that both see the same
    state of the machine; each is called once first, untimed (JIT compilation, caches)."""
    for fn in fns:
        fn()  # warm-up, not timed
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            start = clock()
            fn()
            ts.append(clock() - start)
    return [min(ts) for ts in times]


all_threads = numba.config.NUMBA_NUM_THREADS
table = {}
for name, (fn, _, _) in work.items():
    pair = [lambda fn=fn: fn(backends["numpy"]), lambda fn=fn: fn(backends["numba"])]
    numba.set_num_threads(1)
    with threadpool_limits(limits=1):  # one BLAS thread, one numba thread: CPU time is the op's own work
        table[name, "numpy 1t"], table[name, "numba 1t"] = best_seconds(pair, time.process_time)
    numba.set_num_threads(all_threads)
    table[name, "numpy all"], table[name, "numba all"] = best_seconds(pair, time.perf_counter)  # every thread, wall
with threadpool_limits(limits=1):  # the GEMMs alone, the same BLAS call in both backends
    patches = layers.patchify(pix, (2, 8, 8)).reshape(-1, we.shape[0])  # [P, K]
    gemm = dict(zip(("tubelet projection", "linear + gelu_fast"),
                    best_seconds([lambda: patches @ we, lambda: x[0] @ w1], time.process_time)))
columns = ("numpy 1t", "numba 1t", "numpy all", "numba all")
load = os.getloadavg()[0]
print(f"load average {load:.1f} on {os.cpu_count()} cores ({all_threads} numba threads)"
      + ("  -- busy machine: the wall-time columns wait for cores" if load > os.cpu_count() else ""))
print(f"{'':20s} {'--- one thread, CPU ms ---':>37s} {'--- all threads, wall ms ---':>30s}")
print(f"{'op':20s} {'numpy':>8s} {'numba':>8s} {'speed-up':>9s} {'GFLOP/s':>8s} {'numpy':>14s} {'numba':>12s}")
for name, (fn, flops, why) in work.items():
    t = {c: table[name, c] for c in columns}
    print(f"{name:20s} {t['numpy 1t'] * 1e3:8.2f} {t['numba 1t'] * 1e3:8.2f} {t['numpy 1t'] / t['numba 1t']:8.1f}x "
          f"{flops / t['numba 1t'] / 1e9:8.1f} {t['numpy all'] * 1e3:14.2f} {t['numba all'] * 1e3:12.2f}")
print("(best of 9 after a warm-up, numpy and numba called in turns)")
for name, (_, _, why) in work.items():
    print(f"  {name}: {why}")
for name, seconds in gemm.items():
    print(f"  the GEMM of the {name} alone, one thread: {seconds * 1e3:.2f} ms (the same BLAS call in both backends)")

# %%
names = list(work)
pos = np.arange(len(names))
labels = {"numpy 1t": "numpy, 1 thread (CPU time)", "numba 1t": "numba, 1 thread (CPU time)",
          "numpy all": "numpy, all threads (wall)", "numba all": "numba, all threads (wall)"}
fig, ax = plt.subplots(figsize=(8, 3.6))
for i, column in enumerate(columns):
    ax.barh(pos + 0.2 * (1.5 - i), [table[n, column] * 1e3 for n in names], height=0.2, label=labels[column])
ax.set(yticks=pos, yticklabels=names, xlabel="best time of 9 (ms, log scale, lower is better)", xscale="log",
       title=f"N={N}, D={D}, {nh} heads, float32")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# **How to read it.**
#
# * Each row says what numba changes (printed under the table), and that predicts the one-thread
#   speed-up. The **tubelet projection** is one GEMM either way (its time alone is printed last), and
#   cutting a clip into tubelets is a copy that NumPy's reshape/transpose also does well: numba can
#   win only on the copy, so its speed-up stays small — near 1×, moving a little from run to run.
#   **linear + gelu_fast** is the same GEMM plus the activation, which NumPy evaluates as a chain of
#   whole-array operations, each writing a temporary, and numba in one pass: faster, by about what
#   the activation cost NumPy beyond the GEMM. **Attention** is the same two GEMMs per head plus the
#   softmax: numba's fused softmax on a block that stays in cache beats NumPy's passes over an
#   `[N, N]` array in memory, while the GEMMs take the same time in both.
# * GFLOP/s = FLOPs / CPU time (a multiply-add counted as 2, see notebook 3). The ceiling is one
#   core's matrix-multiply peak (`minivivit bench` measures it); the GEMM-shaped ops should approach it.
# * The all-threads columns add parallelism — and on a busy machine, contention: numba's and BLAS's
#   threads then wait for cores held by other programs, and a parallel run can even be slower than a
#   one-thread run, or than NumPy. That is why the speed-up column is taken from the one-thread CPU
#   times. None of these numbers is a pass/fail threshold; the real benchmarks live in `benchmarks/`
#   (`minivivit bench`, ViViT-B size, against HF transformers).

# %% [markdown]
# ## Final check
#
# A whole forward pass, three ways: a tiny model on the simulator must give the logits of the
# NumPy reference, and so must the numba backend.

# %%
import minivivit
from minivivit.weights import init_params

config = minivivit.ViViTConfig(image_size=16, num_frames=4, tubelet_size=(2, 8, 8), hidden_size=16,
                               num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=3)
model = minivivit.Model(init_params(config, seed=0), config)  # every weight random
clip = rng.standard_normal((1, 4, 3, 16, 16)).astype(f32)
logits = {backend: model(clip, backend=backend).logits for backend in ("numpy", "numba", "cuda")}
for backend in ("numba", "cuda"):
    err = np.abs(logits[backend] - logits["numpy"]).max()
    assert err < 1e-4, f"{backend} logits differ from numpy by {err:.3g}"
    print(f"{backend:5s} logits match numpy: max |diff| = {err:.1e}")
print("numba and the CUDA kernels match the NumPy twin end to end: ✓")
