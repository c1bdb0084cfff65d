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
# # 7. Backprop by hand
#
# **The idea:** training needs the derivative of the loss with respect to every weight. Frameworks
# get it with autograd; there is no magic in it — it is the chain rule, applied to the forward pass of
# notebook 3 read backwards. We derive the backward of one encoder block (LayerNorm, attention, MLP,
# the residuals), check it against **finite differences** (which need nothing but the forward pass)
# and against **torch autograd** (an independent implementation), and then do the same for the whole
# model with `minivivit.grad` — the hand-written backward the library trains with (`docs/training.md`).
# Two claims of notebook 3 get their backward half: a saturated softmax passes almost no gradient,
# and without residuals the gradient fades on its way down.
#
# *torch is in the `dev` extra. Without it, the torch comparisons are skipped (the cell says so) and
# finite differences still check every gradient.*
#
# **Conventions.** For a scalar loss L and an array a, `da` is ∂L/∂a, with the shape of a. A backward
# function takes `dy` (∂L/∂ of its output) and what the forward saw, and returns the gradients of its
# inputs. Letters as in notebook 3: `B, N, D, nh, d = D/nh, F`.

# %%
# %matplotlib inline
import importlib.util
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import minivivit
from minivivit import grad
from minivivit.convert.hf import hf_state_to_params
from minivivit.weights import flatten_params, init_params

has_torch = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None
if has_torch:
    import torch
    from transformers import VivitConfig, VivitForVideoClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's "Writing model shards" bar says nothing here
print("torch + transformers:", "installed, the autograd comparisons run" if has_torch else
      "not installed (the dev extra): the torch comparisons below are skipped; finite differences still run")

# %% [markdown]
# ## A block, small enough to check every number
#
# One encoder block with D = 8, 2 heads of d = 4, F = 16, on a batch of 2 sequences of 7 tokens, in
# float64 (so that finite differences are accurate to ~1e-10). Weights are random, as in notebook 3.
# The forward below is notebook 3's `my_block`, written so that it keeps what the backward needs in
# a dict `c` (a "cache").
#
# To check a backward we need a scalar loss. The simplest one that exercises every output is a fixed
# random projection, $L = \sum_{ij} \mathrm{out}_{ij} G_{ij}$, so that ∂L/∂out = G exactly.

# %%
config = minivivit.ViViTConfig(image_size=16, num_frames=4, tubelet_size=(2, 8, 8), hidden_size=8,
                               num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, num_labels=3)
p = init_params(config, seed=0, dtype=np.float64)["blocks"][0]  # one block's weights: ln1, attn, ln2, mlp
B, N, D, nh, F = 2, 7, config.hidden_size, config.num_attention_heads, config.intermediate_size
d = D // nh
eps = config.layer_norm_eps
rng = np.random.default_rng(0)
x = rng.standard_normal((B, N, D))  # [B, N, D], the block's input
G = rng.standard_normal((B, N, D))  # dL/dout for L = sum(out * G)


def layer_norm(x, g, b):
    mean = x.mean(-1, keepdims=True)  # [..., 1]
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # [..., 1]
    return (x - mean) / np.sqrt(var + eps) * g + b


def gelu_fast(u):
    return 0.5 * u * (1.0 + np.tanh(u * 0.7978845608 * (1.0 + 0.044715 * u * u)))


def heads(a):
    """[B, N, D] -> [B, nh, N, d]"""
    return a.reshape(a.shape[0], a.shape[1], nh, d).transpose(0, 2, 1, 3)


def merge(a):
    """[B, nh, N, d] -> [B, N, D]"""
    return a.transpose(0, 2, 1, 3).reshape(a.shape[0], a.shape[2], -1)


def block_forward(x, p, residual=True):
    """Eqs. 2-3 of the paper (notebook 3): [B, N, D] -> ([B, N, D], cache for the backward)."""
    a, m = p["attn"], p["mlp"]
    c = {"x": x, "h": layer_norm(x, **p["ln1"])}  # h = LN1(x)
    c["qh"], c["kh"], c["vh"] = (heads(c["h"] @ a[n]["w"] + a[n]["b"]) for n in "qkv")  # [B, nh, N, d]
    s = c["qh"] @ c["kh"].transpose(0, 1, 3, 2) / np.sqrt(d)  # [B, nh, N, N]
    e = np.exp(s - s.max(-1, keepdims=True))
    c["P"] = e / e.sum(-1, keepdims=True)  # softmax, [B, nh, N, N]
    c["ctx"] = merge(c["P"] @ c["vh"])  # [B, N, D]
    y = c["ctx"] @ a["o"]["w"] + a["o"]["b"]  # MSA(LN1(x))
    c["y"] = y = x + y if residual else y  # Eq. 2
    c["h2"] = layer_norm(y, **p["ln2"])
    c["f1"] = c["h2"] @ m["fc1"]["w"] + m["fc1"]["b"]  # [B, N, F]
    c["g"] = gelu_fast(c["f1"])  # [B, N, F]
    f2 = c["g"] @ m["fc2"]["w"] + m["fc2"]["b"]  # [B, N, D]
    return (y + f2 if residual else f2), c  # Eq. 3


out, cache = block_forward(x, p)
print("out", out.shape, " L =", float((out * G).sum()))

# %% [markdown]
# ## Finite differences: the reference that needs no derivation
#
# For any entry θ of any array, $\partial L/\partial\theta \approx \frac{L(\theta + h) - L(\theta - h)}{2h}$
# with an error of order h² (central differences), plus rounding of order ε/h with ε ≈ 1e-16 in
# float64; h = 1e-5 balances the two at ~1e-10. Slow (two forward passes per entry) but it is the
# definition of the derivative. Our block has a few hundred weights, so we check *every* entry.

# %%
H = 1e-5


def finite_differences(loss, a):
    """dloss/da for every entry of the array a (changed in place and restored): [same shape as a]."""
    out = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + H
        up = loss()
        a[i] = old - H
        down = loss()
        a[i] = old
        out[i] = (up - down) / (2 * H)
    return out


def rel(mine, ref):
    """max |mine - ref| / max(1, max |ref|): the error measure of every check below (relative for gradients
    larger than 1, absolute for small ones, so that a gradient that is exactly 0 can be checked too)."""
    return float(np.abs(np.asarray(mine) - ref).max() / max(1.0, np.abs(ref).max()))


# %% [markdown]
# ## Linear and GELU
#
# $y = xW + b$ with W stored `[in, out]`. Each output is a sum over inputs, so by the chain rule
#
# $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} W^\top, \qquad
# \frac{\partial L}{\partial W} = \sum_{\text{rows}} x^\top \frac{\partial L}{\partial y}, \qquad
# \frac{\partial L}{\partial b} = \sum_{\text{rows}} \frac{\partial L}{\partial y}$$
#
# (every row — every token of every clip — used the same W, so their contributions add up). An
# elementwise function like GELU multiplies the gradient by its derivative: dx = dy · GELU′(x). For
# gelu_fast, with $u = c\,x(1 + 0.044715x^2)$ and $t = \tanh u$:
# $\mathrm{GELU}'(x) = \tfrac12(1 + t) + \tfrac12 x (1 - t^2)\, c\,(1 + 3 \cdot 0.044715 x^2)$.

# %%
def linear_backward(dy, x, w):
    """dy [..., out], x [..., in], w [in, out] -> (dx [..., in], dw [in, out], db [out])."""
    rows_x, rows_dy = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])  # [M, in], [M, out]
    return dy @ w.T, rows_x.T @ rows_dy, rows_dy.sum(0)


def d_gelu_fast(x):
    c = 0.7978845608
    t = np.tanh(c * x * (1.0 + 0.044715 * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)


w, b = p["mlp"]["fc1"]["w"], p["mlp"]["fc1"]["b"]  # [D, F], [F]
Gf = rng.standard_normal((B, N, F))
dx, dw, db = linear_backward(Gf * d_gelu_fast(x @ w + b), x, w)  # L = sum(gelu(x W + b) * Gf)
loss = lambda: float((gelu_fast(x @ w + b) * Gf).sum())
for name, mine, arr in (("dx", dx, x), ("dW", dw, w), ("db", db, b)):
    err = rel(mine, finite_differences(loss, arr))
    print(f"linear + gelu_fast {name}: max rel. error vs finite differences {err:.1e}")
    assert err < 1e-6

# %% [markdown]
# ## LayerNorm (exercise)
#
# $\hat x = (x - \mu)\,r$ with $r = 1/\sqrt{\sigma^2 + \varepsilon}$, and $y = \hat x g + b$, over the D
# features of each token. g and b are like a linear layer's: $\partial L/\partial g = \sum_\text{rows}
# dy \cdot \hat x$, $\partial L/\partial b = \sum_\text{rows} dy$. For x, the catch is that μ and σ² depend
# on *every* feature of the token. Write $n = dy \cdot g$ (that is ∂L/∂x̂). Working the chain rule
# through μ and σ² (try it: ∂μ/∂x_j = 1/D, ∂σ²/∂x_j = 2(x_j − μ)/D) gives, per token,
#
# $$\frac{\partial L}{\partial x} = r\,\Big(n - \mathrm{mean}(n) - \hat x\,\mathrm{mean}(n \hat x)\Big)$$
#
# — remove from n its part along the constant vector (the mean's doing) and along x̂ (the variance's),
# then scale by r.
#
# **Exercise.** Write `my_layer_norm_backward(dy, x, g, eps)` for x, dy of shape `[..., D]`,
# returning `(dx, dg, db)`. The check compares it with finite differences: ✓ when right, an error when
# wrong, "not done" while the cell is as shipped (the rest of the notebook then uses the hidden
# solution).

# %% tags=["exercise"]
def my_layer_norm_backward(dy, x, g, eps):
    # your code here: recompute mean, r and xhat from x, then dg, db and dx as above
    raise NotImplementedError("write my_layer_norm_backward, then run the check below")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_layer_norm_backward(dy, x, g, eps):
    mean = x.mean(-1, keepdims=True)  # [..., 1]
    r = 1.0 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)  # [..., 1]
    xhat = (x - mean) * r  # [..., D]
    rows_dy, rows_xhat = dy.reshape(-1, dy.shape[-1]), xhat.reshape(-1, x.shape[-1])  # [M, D]
    n = dy * g  # dL/dxhat, [..., D]
    dx = r * (n - n.mean(-1, keepdims=True) - xhat * (n * xhat).mean(-1, keepdims=True))
    return dx, (rows_dy * rows_xhat).sum(0), rows_dy.sum(0)


# %%
g1, b1 = p["ln1"]["g"], p["ln1"]["b"]
loss = lambda: float((layer_norm(x, g1, b1) * G).sum())
reference = {"dx": finite_differences(loss, x), "dg": finite_differences(loss, g1), "db": finite_differences(loss, b1)}
try:
    answer = my_layer_norm_backward(G, x, g1, eps)
except NotImplementedError:
    answer = None
if answer is None:
    print("not done: write my_layer_norm_backward above (until then the rest of the notebook uses the hidden solution)")
    layer_norm_backward = solution_layer_norm_backward
else:
    assert len(answer) == 3, "my_layer_norm_backward must return (dx, dg, db)"
    for name, mine in zip(("dx", "dg", "db"), answer):
        assert np.shape(mine) == reference[name].shape, \
            f"my_layer_norm_backward's {name} has shape {np.shape(mine)}; expected {reference[name].shape}"
        err = rel(mine, reference[name])
        assert err < 1e-6, f"my_layer_norm_backward's {name} differs from finite differences by {err:.1e} (relative)"
    print("your my_layer_norm_backward matches finite differences: ✓ "
          f"(dx {rel(answer[0], reference['dx']):.1e}, dg {rel(answer[1], reference['dg']):.1e}, "
          f"db {rel(answer[2], reference['db']):.1e})")
    layer_norm_backward = my_layer_norm_backward

# %% [markdown]
# ## Softmax and attention
#
# Per head, $S = QK^\top/\sqrt d$, $P = \mathrm{softmax}(S)$ row by row, context $= PV$. Backwards:
#
# * $dV = P^\top d\mathrm{ctx}$ and $dP = d\mathrm{ctx}\, V^\top$ (a product, like a linear layer);
# * softmax: $\partial p_j / \partial s_k = p_j(\delta_{jk} - p_k)$, so each row gives
#   $dS = P \odot (dP - \textstyle\sum_j dP_j P_j)$;
# * $dQ = dS\,K/\sqrt d$ and $dK = dS^\top Q/\sqrt d$.
#
# The softmax line says where the gradient goes: to score k, in proportion to p_k. A row that is
# nearly one-hot (notebook 3: what the scores become without the 1/√d scale) sends almost all of its
# gradient to the one or two keys that hold its weight; the scores of every other key — the
# alternatives the model could learn to attend to — get almost nothing. (For an *exactly* one-hot row
# every factor $p_j(\delta_{jk} - p_k)$ is 0 and nothing passes at all.) Measured on random rows
# (513 keys, unit-variance q and k, a random dP): how many keys carry 90% of a row's squared
# gradient, and the gradient's total size ‖dS‖ / ‖dP‖.

# %%
def softmax_backward(dP, P):
    return P * (dP - (dP * P).sum(-1, keepdims=True))


sizes = [4, 16, 64, 256, 1024]
reach, ratio = {True: [], False: []}, {True: [], False: []}
for dd in sizes:
    qq, kk = rng.standard_normal((2, 513, dd))
    dP = rng.standard_normal((513, 513))
    for scaled in (True, False):
        s_ = qq @ kk.T / (np.sqrt(dd) if scaled else 1.0)  # [513, 513]
        e_ = np.exp(s_ - s_.max(-1, keepdims=True))
        dS = softmax_backward(dP, e_ / e_.sum(-1, keepdims=True))  # [513, 513]
        share = np.cumsum(np.sort(dS**2, axis=-1)[:, ::-1], axis=-1) / (dS**2).sum(-1, keepdims=True)
        reach[scaled].append(((share < 0.9).sum(-1) + 1).mean())  # keys needed for 90% of each row's ||dS||^2
        ratio[scaled].append(np.linalg.norm(dS) / np.linalg.norm(dP))
fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.4))
for scaled, style in ((True, "o-"), (False, "s--")):
    label = "scores / √d (the paper)" if scaled else "no scale"
    a0.semilogx(sizes, reach[scaled], style, base=2, label=label)
    a1.semilogx(sizes, ratio[scaled], style, base=2, label=label)
a0.set(xlabel="head size d", ylabel="keys carrying 90% of the gradient", title="where a row's gradient goes (of 513 keys)",
       yscale="log")
a1.set(xlabel="head size d", ylabel="‖dS‖ / ‖dP‖", title="how much passes in total", ylim=(0, None))
a0.legend(fontsize=8)
a1.legend(fontsize=8)
plt.tight_layout()
plt.show()
print("keys carrying 90% of the gradient, scaled:  ", np.round(reach[True], 1))
print("keys carrying 90% of the gradient, unscaled:", np.round(reach[False], 1))
print("||dS|| / ||dP||, scaled:  ", np.round(ratio[True], 4))
print("||dS|| / ||dP||, unscaled:", np.round(ratio[False], 4))

# %% [markdown]
# With the scale, every row spreads its gradient over dozens of keys, whatever d. Without it, from
# d = 16 on, a handful of keys (two to four) take it all: the model can only reinforce what it already attends to. The
# total (right) is not what collapses at these sizes — where it goes is.

# %% [markdown]
# ## The whole block backwards
#
# Read Eqs. 2–3 bottom-up. A residual `out = y + f(y)` sends its gradient down **both** paths:
# ∂L/∂y = ∂L/∂out (the identity) + f's backward of ∂L/∂out. That one `+` is all a residual does in the
# backward pass.

# %%
def block_backward(dout, c, p, residual=True):
    """dL/dout [B, N, D] -> (dL/dx [B, N, D], {flat param name: gradient}) for block_forward's cache c."""
    a, m, grads = p["attn"], p["mlp"], {}
    # Eq. 3 backwards: out = y + fc2(gelu(fc1(LN2(y))))
    dg, grads["mlp.fc2.w"], grads["mlp.fc2.b"] = linear_backward(dout, c["g"], m["fc2"]["w"])  # [B, N, F]
    df1 = dg * d_gelu_fast(c["f1"])  # [B, N, F]
    dh2, grads["mlp.fc1.w"], grads["mlp.fc1.b"] = linear_backward(df1, c["h2"], m["fc1"]["w"])  # [B, N, D]
    dy, grads["ln2.g"], grads["ln2.b"] = layer_norm_backward(dh2, c["y"], p["ln2"]["g"], eps)
    if residual:
        dy = dy + dout  # the identity path of Eq. 3
    # Eq. 2 backwards: y = x + o(softmax(Q K^T / sqrt d) V)
    dctx, grads["attn.o.w"], grads["attn.o.b"] = linear_backward(dy, c["ctx"], a["o"]["w"])  # [B, N, D]
    dctx = heads(dctx)  # [B, nh, N, d]
    dvh = c["P"].transpose(0, 1, 3, 2) @ dctx  # [B, nh, N, d]
    dS = softmax_backward(dctx @ c["vh"].transpose(0, 1, 3, 2), c["P"])  # [B, nh, N, N]
    dqh = dS @ c["kh"] / np.sqrt(d)  # [B, nh, N, d]
    dkh = dS.transpose(0, 1, 3, 2) @ c["qh"] / np.sqrt(d)  # [B, nh, N, d]
    dh = 0.0
    for n, dproj in zip("qkv", (dqh, dkh, dvh)):
        dh_n, grads[f"attn.{n}.w"], grads[f"attn.{n}.b"] = linear_backward(merge(dproj), c["h"], a[n]["w"])
        dh = dh + dh_n  # h feeds Q, K and V: their gradients add up
    dx, grads["ln1.g"], grads["ln1.b"] = layer_norm_backward(dh, c["x"], p["ln1"]["g"], eps)
    if residual:
        dx = dx + dy  # the identity path of Eq. 2
    return dx, grads


dx, grads = block_backward(G, cache, p)
flat = flatten_params(p)  # {"ln1.g": array, "attn.q.w": array, ...}, views into p
block_loss = lambda: float((block_forward(x, p)[0] * G).sum())
fd = {name: finite_differences(block_loss, a) for name, a in flat.items()}
fd["x"] = finite_differences(block_loss, x)
errors = {name: rel(grads[name] if name != "x" else dx, ref) for name, ref in fd.items()}
print(f"{'gradient':12s} {'shape':10s} {'max |ours|':>10s}  error vs finite differences")
for name, err in errors.items():
    print(f"{name:12s} {str(fd[name].shape):10s} {np.abs(grads.get(name, dx)).max():10.1e}  {err:.1e}")
assert max(errors.values()) < 1e-6, errors

# %% [markdown]
# Every gradient of the block — its 16 parameter arrays and dx — agrees with the definition of the
# derivative (the errors printed above). One of them is exactly zero: the key bias. Adding the same
# vector b to every key adds q · b to a whole row of scores, and softmax ignores a constant added to
# a row, so ∂L/∂b_k = 0 — finite differences see only rounding there.
# Two more references: **torch autograd** on the same block written with torch's own functions, and
# the library's `minivivit.grad.encoder_block_backward` (what `value_and_grad` uses), run on
# `minivivit.blocks.encoder_block`'s recorded intermediates.

# %%
from minivivit.blocks import encoder_block
from minivivit.kernels import get_backend

recorder = grad.BlockRecorder(None)  # keeps the intermediates the library's backward reads (no dropout)
lib_out, _ = encoder_block(x, **p, config=config, ops=get_backend("numpy"), tap=recorder, name="blocks.0")
assert np.allclose(lib_out, out, atol=1e-12)  # the library's forward is ours
lib_dx, lib_grads = grad.encoder_block_backward(G, x, recorder.saved, **p, config=config)
lib_flat = flatten_params(lib_grads)
print(f"minivivit.grad.encoder_block_backward vs ours: dx {rel(dx, lib_dx):.1e}, "
      f"worst parameter {max(rel(grads[k], lib_flat[k]) for k in lib_flat):.1e}")

if has_torch:
    T = {name: torch.tensor(a, requires_grad=True) for name, a in flat.items()}  # float64 leaves
    xt = torch.tensor(x, requires_grad=True)

    def torch_block(z):
        ln = lambda z, i: torch.nn.functional.layer_norm(z, (D,), T[f"ln{i}.g"], T[f"ln{i}.b"], eps)
        lin = lambda z, n: z @ T[f"{n}.w"] + T[f"{n}.b"]
        h = ln(z, 1)
        q, k, v = (lin(h, f"attn.{n}").reshape(B, N, nh, d).transpose(1, 2) for n in "qkv")  # [B, nh, N, d]
        ctx = (torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1) @ v).transpose(1, 2).reshape(B, N, D)
        y = z + lin(ctx, "attn.o")
        f = lin(ln(y, 2), "mlp.fc1")
        f = 0.5 * f * (1.0 + torch.tanh(f * 0.7978845608 * (1.0 + 0.044715 * f * f)))
        return y + lin(f, "mlp.fc2")

    (torch_block(xt) * torch.from_numpy(G)).sum().backward()
    torch_err = {name: rel(grads[name], T[name].grad.numpy()) for name in flat}
    torch_err["x"] = rel(dx, xt.grad.numpy())
    print(f"torch autograd vs ours: dx {torch_err['x']:.1e}, worst parameter {max(torch_err.values()):.1e}")
    assert max(torch_err.values()) < 1e-10, torch_err
else:
    print("torch is not installed: skipping the autograd comparison (finite differences above still checked every gradient)")

# %% [markdown]
# ## Without the residual, the gradient fades
#
# Notebook 3 showed the forward half: without residuals, 12 random blocks make all tokens the same.
# Backwards, the identity path of every residual hands ∂L/∂out to the block below unchanged, plus the
# branch's own term. Without it, the gradient must pass through every LayerNorm, attention and MLP on
# its way down, and what arrives depends on all the weights above. We stack 12 random blocks (D = 32,
# 4 heads, 65 tokens), backpropagate L = Σ out · G through our `block_backward` (checked above; the
# first line below checks `residual=False` too), and plot the gradient's norm at every block's input
# relative to the norm at the top — for 8 different random stacks, to see what is typical.

# %%
loss_nores = lambda: float((block_forward(x, p, residual=False)[0] * G).sum())
err_nores = rel(block_backward(G, block_forward(x, p, residual=False)[1], p, residual=False)[0],
                finite_differences(loss_nores, x))
print(f"block_backward(residual=False): dx vs finite differences {err_nores:.1e}")
assert err_nores < 1e-6

deep_config = config.replace(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=12)
D, nh, F, N, B = 32, 4, 64, 65, 1
d = D // nh
curves = {True: [], False: []}  # residual?: one curve per random stack; index l = the input of block l
for seed in range(8):
    deep = init_params(deep_config, seed=seed, dtype=np.float64)["blocks"]  # 12 random blocks
    z0, G_top = np.random.default_rng(seed).standard_normal((2, B, N, D))
    for residual in (True, False):
        z, caches = z0, []
        for block in deep:
            z, c = block_forward(z, block, residual)
            caches.append(c)
        dz, curve = G_top, [np.linalg.norm(G_top)]
        for block, c in zip(deep[::-1], caches[::-1]):
            dz, _ = block_backward(dz, c, block, residual)
            curve.append(np.linalg.norm(dz))
        curves[residual].append(np.array(curve[::-1]) / curve[0])

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for residual, colour, label in ((True, "C0", "with the residuals"), (False, "C1", "without")):
    for i, curve in enumerate(curves[residual]):
        ax.semilogy(range(13), curve, "o-" if residual else "s--", color=colour, ms=3, lw=1, alpha=0.7,
                    label=f"{label} (8 random stacks)" if i == 0 else None)
ax.axhline(1.0, color="gray", lw=0.8, ls=":")
ax.set(xlabel="l (input of block l; 12 = the output)", ylabel="‖dL/dz_l‖ / ‖dL/dout‖ (log scale)",
       title="the gradient on its way down 12 random blocks")
ax.legend()
plt.tight_layout()
plt.show()
with_res, without = np.array(curves[True]), np.array(curves[False])  # [8 stacks, 13]
print(f"with residuals:    smallest ratio at any block {with_res.min():.2f}; at the input {with_res[:, 0].min():.1f} to {with_res[:, 0].max():.1f}")
print(f"without residuals: smallest ratio at any block {without.min():.3f}; at the input {without[:, 0].min():.3f} to {without[:, 0].max():.2f}")
assert with_res.min() >= 0.99 and without[:, 0].max() / without[:, 0].min() > 10

# %% [markdown]
# With the residuals, in every stack and at every block, the input receives at least the output's
# gradient (the identity path delivers it, and the branches add more). Without them the gradient is
# at the mercy of the weights above: from one random stack to the next, what reaches the first block
# differs by more than a factor of ten, and on the way down it can fall below one percent of the top's.
# Training can fix the weights only if a useful signal reaches them; the residual path makes sure
# one does. (All measured on random weights; training changes the numbers, not the mechanism.)

# %% [markdown]
# ## The whole model: `minivivit.grad`
#
# `minivivit.grad.value_and_grad(model, x, labels)` runs the library's forward once, then walks the
# blocks backwards with the same rules as above (plus the embedding, the final LayerNorm, the
# classifier and softmax cross-entropy, whose gradient is softmax(logits) − one-hot, divided by the
# batch). It returns the loss and gradients nested exactly like `model.params`. Two references again:
# finite differences on a sample of entries of every parameter, and torch autograd on HF
# transformers' own `VivitForVideoClassification` with the same weights.

# %%
tiny = minivivit.ViViTConfig(image_size=16, num_frames=4, tubelet_size=(2, 8, 8), hidden_size=16,
                             num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=3)
model = minivivit.Model(init_params(tiny, seed=2), tiny).to(np.float64)
clips = rng.standard_normal((2, 4, 3, 16, 16))  # [B, T, C, H, W]
labels = np.array([0, 2])
loss_value, model_grads = grad.value_and_grad(model, clips, labels)
print(f"cross-entropy {loss_value:.4f}; gradients for {len(flatten_params(model_grads))} tensors")

params_flat, grads_flat = flatten_params(model.params), flatten_params(model_grads)
ce_loss = lambda: grad.cross_entropy(model(clips).logits, labels)[0]
fd_pairs = []  # (finite difference, ours) for 3 random entries of every parameter tensor
for name, a in params_flat.items():
    for _ in range(3):
        i = tuple(int(rng.integers(n)) for n in a.shape)
        old = a[i]
        a[i] = old + H
        up = ce_loss()
        a[i] = old - H
        down = ce_loss()
        a[i] = old
        fd_pairs.append(((up - down) / (2 * H), grads_flat[name][i]))
fd_vals, ours_vals = np.array(fd_pairs).T
fd_err = float(np.abs(fd_vals - ours_vals).max() / np.abs(fd_vals).max())
print(f"finite differences, {len(fd_pairs)} entries of {len(params_flat)} tensors: max rel. error {fd_err:.1e}")

# %%
torch_model_err = None
if has_torch:
    torch.manual_seed(0)
    hf = VivitForVideoClassification(VivitConfig(**tiny.to_hf_dict())).double().eval()
    with tempfile.TemporaryDirectory() as scratch:  # the checkpoint path a user takes (notebook 6)
        hf.save_pretrained(scratch)
        from_hf = minivivit.load(scratch).to(np.float64)
    hf.zero_grad()
    logits = hf(torch.from_numpy(clips)).logits
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)).backward()
    hf_grads = hf_state_to_params(
        {k: v.grad.numpy() for k, v in hf.named_parameters()}, from_hf.config, dtype=np.float64)  # HF -> our names
    loss_ours, ours = grad.value_and_grad(from_hf, clips, labels)
    ref_flat, ours_flat = flatten_params(hf_grads), flatten_params(ours)
    per_tensor = {k: float(np.abs(ours_flat[k] - ref_flat[k]).max() / max(1.0, np.abs(ref_flat[k]).max())) for k in ref_flat}
    torch_model_err = max(per_tensor.values())
    worst = max(per_tensor, key=per_tensor.get)
    print(f"torch autograd on HF's VivitForVideoClassification, every one of {len(per_tensor)} tensors: "
          f"max |ours - torch| / max(1, max |torch|) = {torch_model_err:.1e} (worst: {worst})")
else:
    print("torch is not installed: skipping the comparison with HF + autograd")

# %% [markdown]
# (HF initialises the CLS token and the position embeddings to zero; their gradients are still
# compared — a gradient does not care that its weight is zero.)
#
# ## Final check
#
# The whole model's gradients equal finite differences and, with torch installed, torch autograd on
# HF's model.

# %%
assert fd_err < 1e-6, f"value_and_grad differs from finite differences by {fd_err:.1e}"
assert torch_model_err is None or torch_model_err < 1e-10, torch_model_err
print("finite differences" + (" and torch autograd agree" if torch_model_err is not None else " agree (torch not installed)")
      + f" with the hand-written backward of every layer: ✓ (block max error {max(errors.values()):.1e}, "
      f"whole model {fd_err:.1e})")
