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
# compare with what the library computed, read from its trace of named intermediates.
#
# ```
# x ──► LN1 ──► Q,K,V ──► scores = QKᵀ/√d ──► softmax ──► P·V ──► out-proj ──► + x ──► LN2 ──► fc1 ──► GELU ──► fc2 ──► + ──► out
# └───────────────────────────── residual 1 ────────────────────────────────────┘ └──────────── residual 2 ──────────────┘
# ```
#
# Shapes use minivivit's letters: `B` batch, `N` tokens (CLS + tubelets), `D` width, `nh` heads,
# `d = D / nh`, `F` MLP width.

# %%
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
# `debug.trace` runs the forward pass and keeps every named intermediate (`blocks.0.ln1`,
# `blocks.0.q`, …, `logits`; the list is in `minivivit/model.py`).

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
# holds a collapsed solution (click the `…` to expand it); the check below it tests *your* function
# if you wrote one, and the solution otherwise.

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
    my_layer_norm(x0, p["ln1"]["g"], p["ln1"]["b"], config.layer_norm_eps)
except NotImplementedError:
    print("my_layer_norm is not written yet: checking the hidden solution instead")
    my_layer_norm = solution_layer_norm
h = my_layer_norm(x0, p["ln1"]["g"], p["ln1"]["b"], config.layer_norm_eps)  # [B, N, D]
err = np.abs(h - trace["blocks.0.ln1"]).max()
assert err < 1e-10, f"my_layer_norm differs from the library's LayerNorm by {err:.3g}: check mean, variance and eps"
print(f"your my_layer_norm matches the library's: ✓ (max diff {err:.1e})")

# %% [markdown]
# ## Step 2 — queries, keys, values, split into heads

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
# Every query is compared with every key: `scores[b, head, i, j] = q_i · k_j / √d`. Dividing by √d
# keeps the scores' spread independent of the head size. Softmax turns each row into
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
# ## Step 4 — context, output projection, first residual

# %%
context = (probs @ vh).transpose(0, 2, 1, 3).reshape(B, N, D)  # [B, nh, N, d] -> [B, N, D]
check("blocks.0.context", context)
attn_out = context @ p["attn"]["o"]["w"] + p["attn"]["o"]["b"]  # [B, N, D]
check("blocks.0.attn_out", attn_out)
resid1 = x0 + attn_out  # the residual: attention only *adds* to the token
check("blocks.0.resid1", resid1)

# %% [markdown]
# ## Step 5 — the MLP and the GELU variants
#
# The MLP widens every token to F features, applies GELU, and narrows back to D. "GELU" is three
# slightly different functions in practice, and a port that picks the wrong one is off by ~1e-4 —
# small enough to miss, large enough to fail a parity test:
#
# * `gelu` — exact, x·Φ(x) = ½x(1 + erf(x/√2));
# * `gelu_new` / `gelu_pytorch_tanh` — the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³)));
# * `gelu_fast` — ViViT's default: the same tanh formula with √(2/π) rounded to 0.7978845608.

# %%
import matplotlib.pyplot as plt

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
a1.set(xlabel="x", ylabel="absolute difference (log scale)", title="how far the approximations are", ylim=(1e-16, 1.0))
a1.legend(loc="upper right", fontsize=8)
plt.tight_layout()
plt.show()

# %%
h2 = my_layer_norm(resid1, p["ln2"]["g"], p["ln2"]["b"], config.layer_norm_eps)  # [B, N, D]
check("blocks.0.ln2", h2)
f1 = h2 @ p["mlp"]["fc1"]["w"] + p["mlp"]["fc1"]["b"]  # [B, N, D] -> [B, N, F]
check("blocks.0.fc1", f1)
print("this model's hidden_act:", config.hidden_act)
act = 0.5 * f1 * (1.0 + np.tanh(f1 * 0.7978845608 * (1.0 + 0.044715 * f1 * f1)))  # gelu_fast, written out
check("blocks.0.act", act)
f2 = act @ p["mlp"]["fc2"]["w"] + p["mlp"]["fc2"]["b"]  # [B, N, F] -> [B, N, D]
check("blocks.0.fc2", f2)
block_out = resid1 + f2  # residual 2
check("blocks.0.out", block_out)
wrong = resid1 + layers.gelu(f1) @ p["mlp"]["fc2"]["w"] + p["mlp"]["fc2"]["b"]
print(f"with the exact GELU instead, the block output would be off by {np.abs(wrong - block_out).max():.1e}")

# %% [markdown]
# ## The cost of attention: N² memory
#
# The scores and probabilities are `[B, nh, N, N]`. Our small model has N = 513; ViViT-B has
# N = 1 + 16·14·14 = 3137. The table works the numbers out from the configuration.

# %%
vit_b = minivivit.ViViTConfig()  # the defaults are google/vivit-b-16x2-kinetics400
Nb, Db, Fb, L, H = vit_b.num_patches + 1, vit_b.hidden_size, vit_b.intermediate_size, vit_b.num_hidden_layers, vit_b.num_attention_heads
one_map = Nb * Nb * 4  # bytes, float32
print(f"ViViT-B: N = {Nb} tokens, {H} heads, {L} layers")
print(f"  one head's attention map      {one_map / 1e6:8.1f} MB")
print(f"  one layer (all heads)         {H * one_map / 1e6:8.1f} MB")
print(f"  every layer and head          {L * H * one_map / 1e9:8.2f} GB   (why output_attentions='cls' exists)")
print(f"  CLS rows only, every layer    {L * H * Nb * 4 / 1e6:8.2f} MB")
flops = {  # multiply-adds count 2 FLOPs
    "Q, K, V, out projections": L * 4 * 2 * Nb * Db * Db,
    "scores + P·V (the N² part)": L * 2 * 2 * Nb * Nb * Db,
    "MLP": L * 2 * 2 * Nb * Db * Fb,
    "tubelet projection": 2 * (Nb - 1) * (3 * 2 * 16 * 16) * Db,
}
for name, f in flops.items():
    print(f"  {name:28s} {f / 1e9:6.1f} GFLOP")
print(f"  {'total':28s} {sum(flops.values()) / 1e9:6.1f} GFLOP per clip")

# %% [markdown]
# ## Final check: the whole model from our block
#
# Put the steps together into one function and run *every* block, the final LayerNorm and the
# classifier. If the logits match `model(x)`, we have re-implemented ViViT's encoder.

# %%
def my_block(x, p):
    """One encoder block from the steps above: [B, N, D] -> [B, N, D]."""
    h = my_layer_norm(x, p["ln1"]["g"], p["ln1"]["b"], config.layer_norm_eps)
    qh, kh, vh = (heads(h @ p["attn"][n]["w"] + p["attn"][n]["b"]) for n in "qkv")  # [B, nh, N, d]
    s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(d)  # [B, nh, N, N]
    e = np.exp(s - s.max(-1, keepdims=True))
    ctx = ((e / e.sum(-1, keepdims=True)) @ vh).transpose(0, 2, 1, 3).reshape(B, N, D)  # [B, N, D]
    x = x + ctx @ p["attn"]["o"]["w"] + p["attn"]["o"]["b"]
    f = my_layer_norm(x, p["ln2"]["g"], p["ln2"]["b"], config.layer_norm_eps) @ p["mlp"]["fc1"]["w"] + p["mlp"]["fc1"]["b"]
    f = 0.5 * f * (1.0 + np.tanh(f * 0.7978845608 * (1.0 + 0.044715 * f * f)))  # [B, N, F]
    return x + f @ p["mlp"]["fc2"]["w"] + p["mlp"]["fc2"]["b"]


y = x0
for block in model.params["blocks"]:
    y = my_block(y, block)  # [B, N, D]
n = model.params["norm"]
my_logits = my_layer_norm(y, n["g"], n["b"], config.layer_norm_eps)[:, 0] @ model.params["head"]["w"] + model.params["head"]["b"]
lib_logits = model(x).logits
assert np.allclose(my_logits, lib_logits, rtol=0, atol=1e-10), np.abs(my_logits - lib_logits).max()
print("my logits:     ", np.round(my_logits, 6))
print("library logits:", np.round(lib_logits, 6))
print(f"your encoder matches the library's: ✓ (max diff {np.abs(my_logits - lib_logits).max():.1e})")
