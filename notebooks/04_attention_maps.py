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
# # 4. Attention maps: where does a video transformer look?
#
# **The idea:** attention maps are ordinary arrays `[B, heads, N, N]` — row *i* says how much token
# *i* reads from every other token. To draw them over a video we need exactly one thing right:
# which pixels each token covers (the tubelet grid, notebook 2). Then we can look at raw maps per
# layer and head, chain the layers with **rollout**, measure how far heads look in **space and in
# time**, and — just as important — say what these pictures do *not* show.
#
# We use the bundled demo model: a small ViViT trained to tell the direction in which a small
# object moves (left / right / up / down). No single frame can answer that, so the model must look
# at the object *across time*.

# %%
# %matplotlib inline
import numpy as np
from IPython.display import HTML, display

import minivivit
from minivivit import explain
from minivivit.data import make_clip
from minivivit.explain import capture, cls_rollout, viz
from minivivit.video.preprocess import preprocess_for

model = minivivit.load()  # weights/vivit-demo.safetensors
print(model)
tokens = explain.TokenMap.for_config(model.config)  # the one place that knows token <-> pixels
print("tubelet grid (t, h, w):", tokens.grid, "->", tokens.num_tokens, "tokens")

# %% [markdown]
# A clip the model has never seen (the training and test streams use other seeds), classified:

# %%
clip = make_clip(seed=7, index=3)
x = preprocess_for(model.config, clip.frames)  # uint8 [T, H, W, 3] -> float32 [1, T, 3, H, W]
cap = capture(model, x, mode="full")  # logits + every layer's full maps; the size is checked first
probs = np.exp(cap.output.logits[0] - cap.output.logits[0].max())
probs /= probs.sum()
print(f"true label: {clip.label_name!r}; predicted: {model.labels[int(probs.argmax())]!r} "
      f"({probs.max():.0%}); maps: {len(cap.attentions)} layers of {cap.attentions[0].shape}")

# %% [markdown]
# ## 1. Raw maps: the CLS row of every layer and head
#
# The classifier reads only the CLS token's final state, so the CLS *row* of each map (what CLS
# reads) is the natural first picture. Each cell sums the row over time and shows it on the 8×8
# tubelet grid of a frame.

# %%
display(viz.plot_cls_grid(cap.attentions, model.config, time="sum"))

# %% [markdown]
# ## 2. Rollout, and its residual trick
#
# One layer's map says where CLS reads *from the previous layer's tokens* — but those tokens have
# already mixed with each other. **Attention rollout** (Abnar & Zuidema, 2020) chains the layers:
# multiply the maps, last layer on the left. Each block also has a residual connection, `x + attn(x)`,
# so part of every token's output is itself; rollout models that by mixing each map with the identity
# before multiplying, and it simply *assumes* the two paths weigh the same (α = 0.5 below) — an
# assumption we measure after the exercise:
#
# $$\hat A_l = \mathrm{rownorm}\big(\alpha\, \bar A_l + (1-\alpha) I\big), \qquad
# R = \hat A_{L-1} \cdots \hat A_0, \qquad \bar A_l = \text{mean over heads}$$
#
# **Exercise.** Write `my_rollout(attentions, alpha)` returning the CLS row of R, `[B, N]`, from a
# list of full maps `[B, nh, N, N]`.

# %% tags=["exercise"]
def my_rollout(attentions, alpha=0.5):
    # your code here: fuse heads, mix with the identity, renormalise rows, multiply, take row 0
    raise NotImplementedError("write my_rollout, then run the check below")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_rollout(attentions, alpha=0.5):
    r = None
    for a in attentions:  # layer 0 first
        f = a.mean(axis=1)  # [B, N, N] heads fused
        f = f / f.sum(-1, keepdims=True)  # rows sum to 1 (they already do, unless heads were masked)
        a_hat = alpha * f + (1 - alpha) * np.eye(f.shape[-1])  # the residual path as the identity
        a_hat = a_hat / a_hat.sum(-1, keepdims=True)
        r = a_hat if r is None else a_hat @ r  # later layers on the left
    return r[:, 0, :]  # [B, N]


# %%
try:
    mine = my_rollout(cap.attentions, 0.5)
except NotImplementedError:
    mine = None
library = explain.rollout(cap.attentions, head_fusion="mean", alpha=0.5)[:, 0, :]  # [B, N]
if mine is None:
    print("not done: write my_rollout above (the rest of the notebook uses the library's explain.rollout)")
else:
    assert np.shape(mine) == library.shape, f"my_rollout returned shape {np.shape(mine)}; expected {library.shape}"
    err = np.abs(mine - library).max()
    assert err < 1e-5, f"my_rollout differs from explain.rollout by {err:.3g}"
    print(f"your my_rollout matches the library's: ✓ (max diff {err:.1e})")

# %% [markdown]
# Why the identity: in every block a token's output is `x + attention(x)`, so some of what it carries
# forward is *itself*. How much? Not "half" by any law of residual blocks: it is whatever the trained
# weights make it. We can measure it — the size of the skip path `x` against the attention update
# `attention(x)` (trace names `blocks.i.attn_out`, notebook 3), per layer, averaged over tokens:

# %%
from minivivit import debug

trace = debug.trace(model, x)
for i in range(model.config.num_hidden_layers):
    skip = trace["embed.out" if i == 0 else f"blocks.{i - 1}.out"]  # [1, N, D] the block's input x
    update = trace[f"blocks.{i}.attn_out"]  # [1, N, D] attention(LayerNorm(x)), what is added to x
    ns, nu = np.linalg.norm(skip, axis=-1), np.linalg.norm(update, axis=-1)  # [1, N]
    print(f"layer {i}: |x| / (|x| + |attn(x)|) = {np.mean(ns / (ns + nu)):.2f} (mean over tokens)")

# %% [markdown]
# So α = 0.5 is a modelling choice of rollout, not a property of the network (and the MLP half of each
# block is not modelled at all). The plain product of attention matrices (α = 1) ignores the skip path
# and pretends every bit of information travelled through attention. Both versions, measured on this
# clip — how spread out the CLS rollout is (normalised entropy: 1 = uniform), how much stays on CLS
# itself, and the share on the tubelets the object covers:

# %%
covered = explain.tubelet_coverage(clip.masks, tokens) > 0  # [t, h, w] tubelets that touch the object
for alpha in (1.0, 0.5):
    v = explain.rollout_cls(cap.attentions, alpha=alpha)[0]  # [N]
    on_object = tokens.to_grid(v)[covered].sum() / v[1:].sum()
    print(f"alpha = {alpha}: entropy {explain.entropy(v):.3f}, share on CLS itself {v[0]:.3f}, "
          f"share of the patch attention on the object {on_object:.2f} (the object covers {covered.mean():.1%} of the tubelets)")

# %% [markdown]
# ## 3. Space-time overlays
#
# The rollout over the clip, one panel per tubelet time slice. Each tubelet is drawn as the box of
# pixels it covers (nearest upsampling: no smoothing that would invent detail finer than a token).
# The colour scale is shared by all panels.

# %%
rollout = explain.rollout_cls(cap.attentions, alpha=0.5)[0]  # [N]
display(viz.plot_overlay(clip.frames, rollout, model.config, label="CLS rollout (share of attention)"))

# %% [markdown]
# The same as an animation, one frame per video frame (in Jupyter it plays inline):

# %%
anim = viz.animate(clip.frames, rollout, model.config, label="CLS rollout", dpi=50)
display(HTML(viz.to_jshtml(anim)))

# %% [markdown]
# ## 4. How far does each head look — in space and in time?
#
# The ViT paper's "mean attention distance" (its fig. 7): for each query token, the attention-weighted
# distance to the keys, averaged over queries. For video it splits naturally into **space** (pixels
# between tubelet centres) and **time** (frames between them). Averaged over a few clips:

# %%
frames = np.stack([make_clip(seed=7, index=i).frames for i in range(4)])  # [4, T, H, W, 3]
maps = capture(model, preprocess_for(model.config, frames), mode="full").attentions  # L layers x [4, nh, N, N]
distances = explain.distance_by_layer(maps, tokens)  # {"space": [L, nh], "time": [L, nh], "cls_share": ...}
uniform = explain.uniform_distance(tokens)  # what a head that looks everywhere alike would score
display(viz.plot_attention_distance(distances, uniform=uniform))
print("mean over heads, per layer:")
print("  space (px):   ", distances["space"].mean(1).round(1))
print("  time (frames):", distances["time"].mean(1).round(1))
print(f"uniform attention over all tubelets (the dashed line): space {uniform['space']:.1f} px, "
      f"time {uniform['time']:.1f} frames")

# %% [markdown]
# Heads near the uniform value look *globally*; in the ViT paper, early layers also have heads that
# look locally (small distances) and the distance grows with depth. How does this small model compare,
# and what does that say about where its local work happens (hint: notebook 2, section 3)?

# %% [markdown]
# ## 5. A query on the moving object: its temporal curve
#
# Take the token that covers the object's centre in the middle of the clip, and split its attention
# by time offset τ = t_key − t_query: m(τ) is the share of its attention on tubelets τ slices away.

# %%
f_mid = model.config.num_frames // 2
cy, cx = (int(c) for c in np.rint(clip.centers[f_mid]) % 64)
query = int(tokens.token_at(f_mid, cy, cx))
layer = model.config.num_hidden_layers - 1
row = cap.attentions[layer][0].mean(axis=0)[query]  # [N], heads averaged
decomposition = explain.space_time_decomposition(row, query, tokens)
print(f"query token {query} = tubelet {tuple(int(a) for a in tokens.coords(query))} (t, y, x), on the object in frame {f_mid}")
print(f"same time slice: {decomposition['same_slice']:.2f}   same place across time: {decomposition['same_location']:.2f}")
display(viz.plot_temporal_curve(decomposition, query=query))

# %% [markdown]
# ## 6. Honest caveats
#
# * **Rollout ignores the class.** It is built from the attention maps alone, and they are computed
#   before the classifier ever sees the CLS token: `rollout(attentions)` has no argument for *which*
#   class, so the map "explaining" one label is the map "explaining" every other. It shows where
#   information flows, not what evidence supports a particular answer.
# * **Attention is not importance.** A token can receive attention and contribute little (small
#   value vectors), and the MLPs — half of each block — are invisible to it.
# * **Averaging heads** hides heads that specialise; look at the per-head grid before trusting a mean.
# * **Resolution is the tubelet** (here 2 frames × 8×8 pixels; ViViT-B: 2 × 16×16). Smooth upsampling
#   makes prettier, not truer, pictures.
#
# What a class-specific map needs is the class: a *gradient* of that class's logit. The simplest one,
# input × gradient (summed over each tubelet's pixels), for the two most likely classes of this clip —
# one backward pass each (`minivivit.grad`, notebook 7; class-specific attention methods are in the
# explanations notebook):

# %%
import minivivit.grad
from minivivit import layers


def input_x_gradient(model, x, target):
    """[P] per-tubelet sum of x * d logit[target] / dx (Simonyan et al. 2014; Shrikumar et al. 2017)."""
    def objective(o):  # the target class's logit, and its gradient w.r.t. the logits
        seed = np.zeros_like(o.logits)
        seed[:, target] = 1.0
        return float(o.logits[0, target]), {"logits": seed}
    g = minivivit.grad.backward(model, x, objective=objective, input_grad=True)
    return layers.patchify(x * g.pixel_values, model.config.tubelet_size)[0].sum(-1)  # [B, P, K] -> [P]


first, second = np.argsort(-probs)[:2]  # the two most likely classes
maps = {int(c): input_x_gradient(model, x, int(c)) for c in (first, second)}
corr = np.corrcoef(maps[first], maps[second])[0, 1]
print(f"input x gradient for {model.labels[first]!r} vs {model.labels[second]!r}: correlation {corr:+.2f} "
      "over tubelets (1 would mean the same map)")
assert corr < 0.99, corr  # the two classes' maps differ; rollout's would be identical
display(viz.plot_overlay(clip.frames, np.r_[0.0, maps[first]], model.config,
                         label=f"input x gradient for {model.labels[first]!r}"))

# %% [markdown]
# ## Final check
#
# (1) The memory-light rollout (`explain.cls_rollout`, one full map alive at a time — what you need
# at ViViT-B size) equals the full-matrix product. (2) The trained model looks at the object: over
# a few clips, the rollout share on tubelets the object covers is well above their share of the clip.

# %%
light, _, _ = cls_rollout(model, x)  # [1, N]
assert np.allclose(light[0], rollout, atol=1e-6), np.abs(light[0] - rollout).max()
ratios = []
for i in range(4):
    c = make_clip(seed=7, index=i)
    v = explain.rollout_cls(capture(model, preprocess_for(model.config, c.frames), mode="full").attentions)[0]  # [N]
    covered = explain.tubelet_coverage(c.masks, tokens) > 0  # [t, h, w] tubelets touching the object
    on_object = tokens.to_grid(v)[covered].sum() / v[1:].sum()  # share of the patch attention
    ratios.append(on_object / covered.mean())  # 1.0 = no preference
print("rollout share on the object / uniform share, per clip:", np.round(ratios, 1))
assert np.mean(ratios) > 1.5, ratios
print("the rollout is right, and the model looks at the moving object: ✓")
