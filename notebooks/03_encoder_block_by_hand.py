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
# # 3. One encoder block by hand
#
# **The idea:** a ViViT encoder block is a dozen lines of NumPy. We write every step ourselves —
# LayerNorm, Q/K/V, scaled scores, softmax, context, residual, MLP with GELU — and after each step
# compare with what the library computed, read from its trace of named intermediates. Then we take
# two pieces out (the 1/√d scale, the residual) and watch what breaks: that is *why* they are there.
#
# The paper (Arnab et al. 2021, **Section 3.1**, "Overview of Vision Transformers") writes the whole
# encoder in three lines; ViViT's Model 1 uses exactly ViT's block:
#
# $$z^0 = [z_{cls}, E x_1, E x_2, \ldots, E x_N] + p \qquad (1)$$
# $$y^\ell = \mathrm{MSA}(\mathrm{LN}(z^\ell)) + z^\ell \qquad (2)$$
# $$z^{\ell+1} = \mathrm{MLP}(\mathrm{LN}(y^\ell)) + y^\ell \qquad (3)$$
#
# Eq. 1 is the embedding (notebook 2); this notebook is Eqs. 2 and 3. MSA is multi-head
# self-attention, each head computing Vaswani et al. (2017)'s Eq. 1,
# $\mathrm{Attention}(Q, K, V) = \mathrm{softmax}(QK^\top/\sqrt{d})\,V$; the MLP is "two linear
# projections separated by a GELU non-linearity" (Sec. 3.1).
#
# ```
# x ──► LN1 ──► Q,K,V ──► scores = QKᵀ/√d ──► softmax ──► P·V ──► out-proj ──► + x ──► LN2 ──► fc1 ──► GELU ──► fc2 ──► + ──► out
# └─────────────────────────── residual 1 (Eq. 2) ──────────────────────────────┘ └──────── residual 2 (Eq. 3) ───────────┘
# ```
#
# Shapes use minivivit's letters: `B` batch, `N` tokens (CLS + tubelets), `D` width (the paper's
# *d*), `nh` heads, `d = D / nh` the head size, `F` MLP width.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import minivivit
from minivivit import debug, layers
from minivivit.weights import expected_shapes, flatten_params, init_params

# %% [markdown]
# ## A small model and its trace
#
# The arithmetic does not care whether the weights are trained, so we use a small random-weight
# model with the shape of the bundled demo model (16 frames of 64×64, 2×8×8 tubelets, so
# 8·8·8 = 512 tubelet tokens + CLS). We run it in **float64**: then "my step equals the library's"
# means equal to ~1e-15, and any real mistake stands out by many orders of magnitude.
#
# Two library tools appear here for the first time: `weights.expected_shapes(config)` lists every
# parameter name and shape a configuration implies (what `init_params` fills with random numbers), and
# `debug.trace(model, x)` runs the forward pass and keeps every named intermediate (`blocks.0.ln1`,
# `blocks.0.q`, …, `logits`; the list is in `minivivit/model.py`). Notebook 6 uses the same trace to
# hunt bugs.

# %%
config = minivivit.ViViTConfig(image_size=64, num_frames=16, tubelet_size=(2, 8, 8), hidden_size=64,
                               num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=4)
rng = np.random.default_rng(0)
# every weight drawn from N(0, 1/D) (LayerNorm gains around 1, as in a trained model); expected_shapes lists
# every name and shape the config implies, which is what init_params fills
print({k: s for k, s in list(expected_shapes(config, head=True, pooler=False).items())[:5]}, "...")
model = minivivit.Model(init_params(config, seed=0), config).to(np.float64)
print(model)

x = rng.normal(size=(1, config.num_frames, 3, *config.image_hw))  # [B, T, C, H, W], float64
trace = debug.trace(model, x)  # {name: array}: every intermediate of the forward pass, in order
print(len(trace), "named intermediates:", ", ".join(list(trace)[:6]), "...")


def check(name, mine, tol=1e-10):
    """Compare my array with the library's intermediate `name`."""
    ref = trace[name]
    assert mine.shape == ref.shape, f"{name}: my shape {mine.shape} != library's {ref.shape}"
    err = np.abs(mine - ref).max()
    assert err <= tol * max(1.0, np.abs(ref).max()), f"{name}: max |mine - library| = {err:.3g}"
    print(f"{name:18s} {ref.shape!s:18s} max |mine - library| = {err:.1e}  ✓")


# %% [markdown]
# The block's input is the embedded clip (`embed.out`, see notebook 2), and its weights are one
# entry of `params["blocks"]`. Weights are stored `[in, out]`, so a linear layer is `x @ w + b`.

# %%
x0 = trace["embed.out"]  # [B, N, D]
p = model.params["blocks"][0]
B, N, D = x0.shape
nh = config.num_attention_heads
d = D // nh
print(f"B={B}  N={N}  D={D}  nh={nh}  d={d}  F={config.intermediate_size}")
for name, a in flatten_params(p).items():
    print(f"  {name:10s} {a.shape}")

# %% [markdown]
# ## Step 1 — LayerNorm (exercise)
#
# LayerNorm normalises **each token** over its D features:
#
# $$\mathrm{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}}\, g + b, \qquad
# \mu = \mathrm{mean}(x),\ \sigma^2 = \mathrm{mean}((x-\mu)^2)\ \text{(biased, as torch)}$$
#
# **Exercise.** Write `my_layer_norm(x, g, b, eps)` for `x` of shape `[..., D]`. The cell after it
# holds a collapsed solution (click the `…` to expand it). The check below it tests *your* function:
# ✓ when it is right, an error when it is wrong, and "not done" while the cell is as shipped (the rest
# of the notebook then runs on the hidden solution, so you can read on).

# %% tags=["exercise"]
def my_layer_norm(x, g, b, eps):
    # your code here: normalise over the last axis, then scale by g and shift by b
    raise NotImplementedError("write my_layer_norm, then run the check below")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_layer_norm(x, g, b, eps):
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # [..., 1]
    return (x - mean) / np.sqrt(var + eps) * g + b


# %%
try:
    h = my_layer_norm(x0, p["ln1"]["g"], p["ln1"]["b"], config.layer_norm_eps)  # [B, N, D]
except NotImplementedError:
    h = None
if h is None:
    print("not done: write my_layer_norm above (until then the rest of the notebook uses the hidden solution)")
    layer_norm = solution_layer_norm
else:
    ref = trace["blocks.0.ln1"]
    assert np.shape(h) == ref.shape, f"my_layer_norm returned shape {np.shape(h)}; expected {ref.shape}"
    err = np.abs(h - ref).max()
    assert err < 1e-10, f"my_layer_norm differs from the library's LayerNorm by {err:.3g}: check mean, variance and eps"
    print(f"your my_layer_norm matches the library's: ✓ (max diff {err:.1e})")
    layer_norm = my_layer_norm
h = layer_norm(x0, p["ln1"]["g"], p["ln1"]["b"], config.layer_norm_eps)  # [B, N, D], what the next steps use

# %% [markdown]
# ## Step 2 — queries, keys, values, split into heads
#
# The MSA of Eq. 2 starts with three linear maps of the normalised tokens, $Q = \mathrm{LN}(z)W_Q$ (and
# K, V alike), each `[D, D]`; head *i* then works on its own `d = D / nh` columns of each.

# %%
q = h @ p["attn"]["q"]["w"] + p["attn"]["q"]["b"]  # [B, N, D]
k = h @ p["attn"]["k"]["w"] + p["attn"]["k"]["b"]  # [B, N, D]
v = h @ p["attn"]["v"]["w"] + p["attn"]["v"]["b"]  # [B, N, D]
for name, mine in (("q", q), ("k", k), ("v", v)):
    check(f"blocks.0.{name}", mine)


def heads(a):
    """[B, N, D] -> [B, nh, N, d]: head i owns features i*d ... (i+1)*d - 1."""
    return a.reshape(B, N, nh, d).transpose(0, 2, 1, 3)


qh, kh, vh = heads(q), heads(k), heads(v)  # [B, nh, N, d] each
print("one head's queries:", qh.shape)

# %% [markdown]
# ## Step 3 — scaled scores and softmax
#
# Every query is compared with every key: `scores[b, head, i, j] = q_i · k_j / √d`, the
# $QK^\top/\sqrt{d}$ of $\mathrm{softmax}(QK^\top/\sqrt{d})V$. Dividing by √d keeps the scores' spread
# independent of the head size (the next section tests that claim). Softmax turns each row into
# probabilities; subtracting the row maximum first changes nothing mathematically but keeps `exp`
# from overflowing.

# %%
scores = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(d)  # [B, nh, N, d] @ [B, nh, d, N] -> [B, nh, N, N]
check("blocks.0.scores", scores)
e = np.exp(scores - scores.max(axis=-1, keepdims=True))  # [B, nh, N, N]
probs = e / e.sum(axis=-1, keepdims=True)  # [B, nh, N, N], rows sum to 1
check("blocks.0.probs", probs)
print("row sums:", probs.sum(-1).min(), "...", probs.sum(-1).max())

# %% [markdown]
# ### Why divide by √d? Take it out and watch the softmax saturate
#
# Vaswani et al. (Sec. 3.2.1) argue: if the entries of q and k are independent with mean 0 and
# variance 1, then q · k is a sum of d such products, so its variance is **d**. Without the scale, the
# larger the head, the wider the scores — and softmax of widely spread scores puts nearly all the
# weight on one key (a nearly one-hot row, which also sends its gradient to that key alone: notebook
# 7). With the scale, the scores have variance 1 for every d.
#
# Measured: 513 queries against 513 keys (this model's N) with unit-variance entries — which is what
# LayerNorm followed by `[D, D]` weights of variance 1/D produces (the std of this model's real
# scores is printed last). We plot the average largest probability of a row (1/513 = uniform, 1 =
# one-hot) and the row entropy divided by log N (1 = uniform, 0 = one-hot).

# %%
sizes = [4, 16, 64, 256, 1024]
stats = {True: [], False: []}  # scaled?: [(mean max prob, mean normalised entropy, std of scores)] per d
for dd in sizes:
    qq, kk = rng.standard_normal((2, N, dd))  # [N, dd] each, unit variance
    for scaled in (True, False):
        s_ = qq @ kk.T / (np.sqrt(dd) if scaled else 1.0)  # [N, N]
        p_ = np.exp(s_ - s_.max(-1, keepdims=True))
        p_ /= p_.sum(-1, keepdims=True)  # [N, N], rows sum to 1
        entropy = -(p_ * np.log(np.maximum(p_, 1e-300))).sum(-1).mean() / np.log(N)
        stats[scaled].append((p_.max(-1).mean(), entropy, s_.std()))

fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.4))
for scaled, style in ((True, "o-"), (False, "s--")):
    label = "scores / √d (the paper)" if scaled else "no scale"
    a0.semilogx(sizes, [m for m, _, _ in stats[scaled]], style, base=2, label=label)
    a1.semilogx(sizes, [e for _, e, _ in stats[scaled]], style, base=2, label=label)
a0.axhline(1 / N, color="gray", lw=0.8, ls=":", label=f"uniform (1/{N})")
a0.set(xlabel="head size d", ylabel="mean of a row's largest probability", title="how peaked is a softmax row?", ylim=(0, 1))
a1.set(xlabel="head size d", ylabel="row entropy / log N", title="how spread out (1 = uniform, 0 = one-hot)", ylim=(0, 1))
a0.legend(fontsize=8)
a1.legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"{'d':>5s} {'std, scaled':>12s} {'std, unscaled':>14s} {'max prob, unscaled':>19s}")
for dd, (m1, _, s1), (m0, _, s0) in zip(sizes, stats[True], stats[False]):
    print(f"{dd:5d} {s1:12.2f} {s0:14.2f} {m0:19.3f}")
print(f"this model's real scores (blocks.0, d = {d}): std {trace['blocks.0.scores'].std():.2f} scaled, "
      f"{trace['blocks.0.scores'].std() * np.sqrt(d):.2f} without the scale")

# %% [markdown]
# The scaled curves stay flat: the rows look the same for every head size. Without the scale the
# score std grows like √d and the rows turn one-hot — at ViViT-B's d = 64 a row already gives most
# of its weight to one key, and the model would have to learn weights √d times smaller to undo it.

# %% [markdown]
# ## Step 4 — context, output projection, first residual (Eq. 2)
#
# Each head's probabilities average its value vectors, the heads are concatenated back to `[B, N, D]`
# and mixed by the output projection $W_O$: that is $\mathrm{MSA}(\mathrm{LN}(z^\ell))$. Eq. 2 then *adds*
# it to the block's input.

# %%
context = (probs @ vh).transpose(0, 2, 1, 3).reshape(B, N, D)  # [B, nh, N, d] -> [B, N, D]
check("blocks.0.context", context)
attn_out = context @ p["attn"]["o"]["w"] + p["attn"]["o"]["b"]  # [B, N, D]
check("blocks.0.attn_out", attn_out)
resid1 = x0 + attn_out  # Eq. 2: y = MSA(LN(z)) + z; attention only *adds* to the token
check("blocks.0.resid1", resid1)

# %% [markdown]
# ## Step 5 — the MLP and the GELU variants (Eq. 3)
#
# The MLP widens every token to F features, applies GELU, and narrows back to D; Eq. 3 adds the result
# to its input, like Eq. 2. "GELU" is three slightly different functions in practice:
#
# * `gelu` — exact, x·Φ(x) = ½x(1 + erf(x/√2)) (Hendrycks & Gimpel 2016);
# * `gelu_new` / `gelu_pytorch_tanh` — the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³)));
# * `gelu_fast` — ViViT's default (HF's config): the same tanh formula with √(2/π) rounded to 0.7978845608.
#
# The tanh approximation differs from the exact GELU by up to about 5e-4 (the figure and the first
# print below measure it) — small enough to miss, large enough to fail a parity test. The two tanh
# versions differ only by the rounding of one constant.

# %%
u = np.linspace(-6, 6, 1201)
exact = layers.gelu(u)
fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.2))
a0.plot(u, exact, label="gelu (exact, erf)")
a0.plot(u, np.maximum(u, 0), ":", label="relu, for comparison")
a0.set(xlabel="x", ylabel="GELU(x)", title="GELU")
a0.legend()
a1.semilogy(u, np.abs(layers.gelu_tanh(u) - exact) + 1e-20, label="|gelu_new − gelu|")
a1.semilogy(u, np.abs(layers.gelu_fast(u) - exact) + 1e-20, "--", label="|gelu_fast − gelu|")
a1.semilogy(u, np.abs(layers.gelu_fast(u) - layers.gelu_tanh(u)) + 1e-20, ":", label="|gelu_fast − gelu_new|")
a1.set(xlabel="x", ylabel="absolute difference (log scale)", title="how far the approximations are (float64)", ylim=(1e-16, 1.0))
a1.legend(loc="upper right", fontsize=8)
plt.tight_layout()
plt.show()
gap = np.abs(layers.gelu_tanh(u) - exact)
print(f"max |gelu_new - gelu|      = {gap.max():.1e} (at x = {u[gap.argmax()]:+.2f})")
print(f"max |gelu_fast - gelu_new| = {np.abs(layers.gelu_fast(u) - layers.gelu_tanh(u)).max():.1e} (float64: the rounded constant)")

# %%
h2 = layer_norm(resid1, p["ln2"]["g"], p["ln2"]["b"], config.layer_norm_eps)  # [B, N, D]
check("blocks.0.ln2", h2)
f1 = h2 @ p["mlp"]["fc1"]["w"] + p["mlp"]["fc1"]["b"]  # [B, N, D] -> [B, N, F]
check("blocks.0.fc1", f1)
print("this model's hidden_act:", config.hidden_act)
act = 0.5 * f1 * (1.0 + np.tanh(f1 * 0.7978845608 * (1.0 + 0.044715 * f1 * f1)))  # gelu_fast, written out
check("blocks.0.act", act)
f2 = act @ p["mlp"]["fc2"]["w"] + p["mlp"]["fc2"]["b"]  # [B, N, F] -> [B, N, D]
check("blocks.0.fc2", f2)
block_out = resid1 + f2  # Eq. 3: z' = MLP(LN(y)) + y
check("blocks.0.out", block_out)
wrong = resid1 + layers.gelu(f1) @ p["mlp"]["fc2"]["w"] + p["mlp"]["fc2"]["b"]
print(f"with the exact GELU instead, this block's output would be off by {np.abs(wrong - block_out).max():.1e} "
      f"(the activations differ by up to {np.abs(layers.gelu(f1) - act).max():.1e}, and fc2 sums {config.intermediate_size} of them)")

# %% [markdown]
# ## The block as one function
#
# Steps 1–5 in one function: Eq. 2, then Eq. 3. `residual=False` drops the two `x +` — the next
# experiment needs it.

# %%
def my_block(x, p, residual=True):
    """One encoder block from the steps above: [B, N, D] -> [B, N, D]."""
    h = layer_norm(x, p["ln1"]["g"], p["ln1"]["b"], config.layer_norm_eps)
    qh, kh, vh = (heads(h @ p["attn"][n]["w"] + p["attn"][n]["b"]) for n in "qkv")  # [B, nh, N, d]
    s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(d)  # [B, nh, N, N]
    e = np.exp(s - s.max(-1, keepdims=True))
    ctx = ((e / e.sum(-1, keepdims=True)) @ vh).transpose(0, 2, 1, 3).reshape(B, N, D)  # [B, N, D]
    a = ctx @ p["attn"]["o"]["w"] + p["attn"]["o"]["b"]  # MSA(LN(z))
    y = x + a if residual else a  # Eq. 2
    f = layer_norm(y, p["ln2"]["g"], p["ln2"]["b"], config.layer_norm_eps) @ p["mlp"]["fc1"]["w"] + p["mlp"]["fc1"]["b"]
    f = 0.5 * f * (1.0 + np.tanh(f * 0.7978845608 * (1.0 + 0.044715 * f * f)))  # gelu_fast, [B, N, F]
    f = f @ p["mlp"]["fc2"]["w"] + p["mlp"]["fc2"]["b"]  # MLP(LN(y))
    return y + f if residual else f  # Eq. 3


check("blocks.0.out", my_block(x0, p))

# %% [markdown]
# ### Why the residual? Take it out and watch the tokens collapse
#
# Attention *averages*: every output row is a convex combination of value vectors. Stack averages
# and all tokens drift towards the same vector — a known failure of attention without skip
# connections ("rank collapse", Dong et al. 2021). The residual `z + MSA(...)` keeps each token's own
# state in the sum. We stack 12 random blocks (ViViT-B's depth) on this clip's embedded tokens and
# measure, after every block, how different the tokens still are from each other:
# spread = ‖X − mean over tokens‖ / ‖X‖ (1 when the mean token is negligible, 0 when every token is
# the same).

# %%
deep_config = config.replace(num_hidden_layers=12)
deep = init_params(deep_config, seed=1, dtype=np.float64)["blocks"]  # 12 random blocks, same shapes


def spread(x):
    """How different the tokens are: ||X - mean token|| / ||X|| for X = x[0], [N, D]."""
    X = x[0]
    return np.linalg.norm(X - X.mean(axis=0)) / np.linalg.norm(X)


curves = {}
for residual in (True, False):
    y, curve = x0, [spread(x0)]
    for block in deep:
        y = my_block(y, block, residual=residual)  # [B, N, D]
        curve.append(spread(y))
    curves[residual] = curve

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(curves[True], "o-", label="with the residuals (Eqs. 2-3)")
ax.plot(curves[False], "s--", label="without: z' = MLP(LN(MSA(LN(z))))")
ax.set(xlabel="blocks applied", ylabel="token spread  ||X - mean|| / ||X||", ylim=(-0.03, 1.05),
       title="12 random blocks on the embedded clip")
ax.legend(loc="center right")
plt.tight_layout()
plt.show()
print("spread, with residuals:   ", np.round(curves[True], 3))
print("spread, without residuals:", np.round(curves[False], 3))

# %% [markdown]
# Without the residuals the tokens become indistinguishable within a few blocks: after that, nothing
# the classifier reads can depend on *which* tubelet was where. With them, the spread shrinks slowly
# and stays large at full depth. (The gradient tells the same story backwards: notebook 7.)

# %% [markdown]
# ## The cost of attention: N² memory, and counting FLOPs
#
# The scores and probabilities are `[B, nh, N, N]`. Our small model has N = 513; ViViT-B has
# N = 1 + 16·14·14 = 3137. The table works the numbers out from the configuration.
#
# FLOPs come in two conventions. Counting a multiply and an add as **2 FLOPs** (the hardware
# convention, what a GPU's "TFLOP/s" means) gives one total; counting each **multiply-add once** (the
# vision papers' convention) gives half of it. The paper's **Table 2** reports 455.2 GFLOPs for
# Model 1 (ViViT-B/16x2, 32 frames): multiply-adds, from Scenic's `compute_flops(fuse_multiply_add=True)`.
# `minivivit.flops(config)` counts multiply-adds of the matrix products, the same convention.

# %%
vit_b = minivivit.ViViTConfig()  # the defaults are google/vivit-b-16x2-kinetics400
Nb, Db, Fb, L, H = vit_b.num_patches + 1, vit_b.hidden_size, vit_b.intermediate_size, vit_b.num_hidden_layers, vit_b.num_attention_heads
one_map = Nb * Nb * 4  # bytes, float32
print(f"ViViT-B: N = {Nb} tokens, {H} heads, {L} layers")
print(f"  one head's attention map      {one_map / 1e6:8.1f} MB")
print(f"  one layer (all heads)         {H * one_map / 1e6:8.1f} MB")
print(f"  every layer and head          {L * H * one_map / 1e9:8.2f} GB   (why output_attentions='cls' exists)")
print(f"  CLS rows only, every layer    {L * H * Nb * 4 / 1e6:8.2f} MB")
two_per_madd = {  # a multiply-add counts 2 FLOPs here
    "Q, K, V, out projections": L * 4 * 2 * Nb * Db * Db,
    "scores + P·V (the N² part)": L * 2 * 2 * Nb * Nb * Db,
    "MLP": L * 2 * 2 * Nb * Db * Fb,
    "tubelet projection": 2 * (Nb - 1) * (3 * 2 * 16 * 16) * Db,
}
madds = minivivit.flops(vit_b, breakdown=True)  # multiply-adds, counted once; also has the 400-class head
print(f"\n  {'':28s} {'2 per multiply-add':>19s} {'multiply-adds':>14s}")
for name, f in two_per_madd.items():
    print(f"  {name:28s} {f / 1e9:14.1f} GFLOP {f / 2e9:9.1f} G")
total2 = sum(two_per_madd.values())
print(f"  {'total (no head)':28s} {total2 / 1e9:14.1f} GFLOP {total2 / 2e9:9.1f} G")
assert total2 == 2 * (madds["total"] - madds["head"])  # the same count, two conventions
print(f"\nminivivit.flops(ViViTConfig()) = {madds['total'] / 1e9:.1f} G multiply-adds (with the head, "
      f"{madds['head'] / 1e6:.1f} M)")
print(f"the N² part (scores + P·V) is {madds['attention_products'] / madds['total']:.0%} of the multiply-adds")
print(f"the paper's Table 2, Model 1:    455.2 GFLOPs, {455.2 / (madds['total'] / 1e9) - 1:.1%} more: XLA's counter "
      f"also counts softmax, LayerNorm, GELU and the adds")

# %% [markdown]
# So "903 GFLOP" (2 per multiply-add) and the paper's "455 GFLOPs" (1 per multiply-add) are the same
# amount of work; the last 0.8% is elementwise work that `minivivit.flops` leaves out (notebook 8 and
# `docs/factorised-models.md` compare all four models with Table 2). Note the N² part: about 40% of
# the multiply-adds at N = 3137 — and it grows with the square of the clip length, the motivation for
# the factorised models.

# %% [markdown]
# ## Final check: the whole model from our block
#
# Run *every* block with `my_block`, the final LayerNorm and the classifier. If the logits match
# `model(x)`, we have re-implemented ViViT's encoder.

# %%
y = x0
for block in model.params["blocks"]:
    y = my_block(y, block)  # [B, N, D]
n = model.params["norm"]
my_logits = layer_norm(y, n["g"], n["b"], config.layer_norm_eps)[:, 0] @ model.params["head"]["w"] + model.params["head"]["b"]
lib_logits = model(x).logits
assert np.allclose(my_logits, lib_logits, rtol=0, atol=1e-10), np.abs(my_logits - lib_logits).max()
print("my logits:     ", np.round(my_logits, 6))
print("library logits:", np.round(lib_logits, 6))
whose = "your my_layer_norm" if layer_norm is my_layer_norm else "the hidden solution's LayerNorm (my_layer_norm is not done)"
print(f"the encoder built from these steps matches the library's: ✓ (max diff {np.abs(my_logits - lib_logits).max():.1e}; "
      f"LayerNorm: {whose})")
