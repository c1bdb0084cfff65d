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
# We use the bundled demo model: a small ViViT trained on the **visits** task
# (`minivivit.data.make_visit_clip`). A small bright object visits the four quadrants of the frame one
# after another, in a random order, a quarter of the clip in each; the label (`VISIT_LABELS`) is the
# quadrant of the **last** visit. Every clip shows the object in all four quadrants, so what the
# frames show, without *when* each was shown, cannot answer: the evidence is *where the object is at
# the end*. How long a visit is in tokens depends on the tubelet size, printed below from
# `model.config`: when a visit fills exactly one tubelet time slice, the evidence is the object's
# tubelets in the last slice.

# %%
# %matplotlib inline
import numpy as np
from IPython.display import HTML, display

import minivivit
from minivivit import explain
from minivivit.data import VISIT_LABELS, make_visit_batch, make_visit_clip
from minivivit.explain import capture, cls_rollout, viz
from minivivit.video.preprocess import preprocess_for

model = minivivit.load()  # weights/vivit-demo.safetensors
print(model)
tokens = explain.TokenMap.for_config(model.config)  # the one place that knows token <-> pixels
t_slices = model.config.grid[0]  # tubelet time slices
visit_frames = model.config.num_frames // len(VISIT_LABELS)  # frames per visit
print("tubelet size (frames, px, px):", model.config.tubelet_size, "; grid (t, h, w):", model.config.grid,
      "->", tokens.num_tokens, "tokens (patches + CLS)")
print(f"a visit is {visit_frames} frames = {visit_frames / model.config.tubelet_size[0]:g} tubelet time slice(s); "
      f"the last visit is time slice {t_slices - 1} (of 0 .. {t_slices - 1})")

# %% [markdown]
# A clip the model has never seen (stream 7; training used stream 0, validation 1, the tests 2024),
# classified:

# %%
clip = make_visit_clip(seed=7, index=3)
x = preprocess_for(model.config, clip.frames)  # uint8 [T, H, W, 3] -> float32 [1, T, 3, H, W]
cap = capture(model, x, mode="full")  # logits + every layer's full maps; the size is checked first
probs = np.exp(cap.output.logits[0] - cap.output.logits[0].max())
probs /= probs.sum()
print("quadrants in the order visited:", [VISIT_LABELS[q] for q in clip.order])
print(f"true label (the last visit): {clip.label_name!r}; predicted: {model.labels[int(probs.argmax())]!r} "
      f"({probs.max():.0%}); maps: {len(cap.attentions)} layers of {cap.attentions[0].shape}")

# %% [markdown]
# ## 1. Raw maps: the CLS row of every layer and head
#
# The classifier reads only the CLS token's final state, so the CLS *row* of each map (what CLS
# reads) is the natural first picture. Each cell sums the row over the tubelet time slices and shows
# it on the h × w tubelet grid of a frame (h, w = `model.config.grid[1:]`, printed above).

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
# These printed ratios are the measured size of the skip path against skip + update (vector norms, so
# only a rough stand-in for a mixing weight). Rollout's α = 0.5 ("half of every
# token's output is itself") is an *assumption* of the method, not a property of residual blocks, and
# it is not what was just measured unless the ratios happen to be 0.50 (the MLP half of each block is not
# modelled at all). The plain product of attention matrices (α = 1) ignores the skip path
# and pretends every bit of information travelled through attention. Both versions, measured on this
# clip — how spread out the CLS rollout is (normalised entropy: 1 = uniform), how much stays on CLS
# itself, and the share on the tubelets the object covers (in any slice, and in the last slice only: the
# last visit, which decides the label), each next to that set's share of all tubelets:

# %%
covered = explain.tubelet_coverage(clip.masks, tokens) > 0  # [t, h, w] tubelets that touch the object
last_visit = np.zeros_like(covered)
last_visit[-1] = covered[-1]  # [t, h, w] the object's tubelets in the last time slice
print(f"the object touches {covered.mean():.1%} of the tubelets; in the last slice, {last_visit.mean():.1%}")
for alpha in (1.0, 0.5):
    v = explain.rollout_cls(cap.attentions, alpha=alpha)[0]  # [N]
    g = tokens.to_grid(v) / v[1:].sum()  # [t, h, w] share of the patch attention
    print(f"alpha = {alpha}: entropy {explain.entropy(v):.3f}, share on CLS itself {v[0]:.3f}; "
          f"share of the patch attention on the object {g[covered].sum():.2f}, on its last-visit tubelets "
          f"{g[last_visit].sum():.2f}")

# %% [markdown]
# ## 3. Space-time overlays
#
# The rollout over the clip, one panel per tubelet time slice. Each tubelet is drawn as the box of
# pixels it covers (nearest upsampling: no smoothing that would invent detail finer than a token).
# The colour scale is shared by all panels. Below it, the share of the rollout in each time slice
# (uniform would be 1/t each): the last slice is the last visit.

# %%
rollout = explain.rollout_cls(cap.attentions, alpha=0.5)[0]  # [N]
display(viz.plot_overlay(clip.frames, rollout, model.config, label="CLS rollout (share of attention)"))
print("rollout share per time slice:", explain.slice_profile(rollout, tokens).round(2),
      f"(uniform: {1 / t_slices:.2f} each)")

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
# between tubelet centres) and **time** (frames between them). Averaged over a few clips, and drawn
# against the reference it must be read with: the same distance for *uniform* attention over all
# tubelets (red dashed line), since even a head that looks nowhere in particular has a nonzero distance:

# %%
frames, _, _ = make_visit_batch(4, seed=7)  # [4, T, H, W, 3]
maps = capture(model, preprocess_for(model.config, frames), mode="full").attentions  # L layers x [4, nh, N, N]
distances = explain.distance_by_layer(maps, tokens)  # {"space": [L, nh], "time": [L, nh], "cls_share": ...}
uniform = explain.uniform_distance(tokens)  # what a head that looks everywhere alike would score
display(viz.plot_attention_distance(distances, uniform=uniform))
print("mean over heads, per layer:")
print("  space (px):   ", distances["space"].mean(1).round(1))
print("  time (frames):", distances["time"].mean(1).round(1))
print(f"range over all heads and layers: space {distances['space'].min():.1f} .. {distances['space'].max():.1f} px, "
      f"time {distances['time'].min():.1f} .. {distances['time'].max():.1f} frames")
print(f"uniform attention over all tubelets (the dashed line): space {uniform['space']:.1f} px, "
      f"time {uniform['time']:.1f} frames")

# %% [markdown]
# Heads near the dashed line look *globally* (or at least not preferentially near); heads well below it
# look locally. In the ViT paper, early layers also have local heads and the distance grows with depth.
# Compare the printed per-layer means and the range over heads with the printed uniform values (these
# are the patch tokens' queries; the CLS row of section 1 is another matter): how does this small model
# compare, and what does that say about where its local work happens (hint: notebook 2, section 3)?

# %% [markdown]
# ## 5. A query on the object: its temporal curve
#
# Take the token that covers the object's centre in the middle of the clip, and split its attention
# by time offset τ = t_key − t_query: m(τ) is the share of its attention on tubelets τ slices away.
# With t time slices, τ can only be −(t−1) .. t−1, and a given query has just the t offsets
# −t_query .. t−1−t_query (a query in slice 0 cannot look back); the plot shows exactly those, with
# uniform attention (1/t per offset) as the dashed line.

# %%
f_mid = model.config.num_frames // 2
cy, cx = (int(c) for c in np.rint(clip.centers[f_mid]) % np.array(model.config.image_hw))
query = int(tokens.token_at(f_mid, cy, cx))
layer = model.config.num_hidden_layers - 1
row = cap.attentions[layer][0].mean(axis=0)[query]  # [N], heads averaged
decomposition = explain.space_time_decomposition(row, query, tokens)
print(f"query token {query} = tubelet {tuple(int(a) for a in tokens.coords(query))} (t, y, x), on the object in frame {f_mid}")
print(f"same time slice: {decomposition['same_slice']:.2f}   same place across time: {decomposition['same_location']:.2f}")
print("tau:  ", decomposition["taus"], f"(possible offsets: -{t_slices - 1} .. {t_slices - 1})")
print("m(tau):", decomposition["curve"].round(2), f"(uniform: {1 / t_slices:.2f} each)")
display(viz.plot_temporal_curve(decomposition, query=query))

# %% [markdown]
# Read the bars against the dashed line: a bar near 1/t means this query has no preference for that
# offset, so only bars clearly above or below it say anything about where in time the query looks.

# %% [markdown]
# ## 6. Honest caveats
#
# * **Rollout ignores the class.** It is built from the attention maps alone, and they are computed
#   before the classifier head ever sees the CLS token: the map "explaining" one label is, by
#   construction, the map "explaining" every other. It shows where information flows, not what
#   evidence supports a particular answer.
# * **Attention is not importance.** A token can receive attention and contribute little (small
#   value vectors), and the MLPs — half of each block — are invisible to it.
# * **Averaging heads** hides heads that specialise; look at the per-head grid before trusting a mean.
# * **Resolution is the tubelet** (its size is printed below; ViViT-B: 2 × 16×16). Smooth upsampling
#   makes prettier, not truer, pictures.
#
# The first caveat, shown: `minivivit.explain.explain(model, x, method, target=k)` for the two most
# likely classes of this clip, with rollout and with a class-specific method, GAE (Chefer et al. 2021:
# attention maps weighted by the gradient of class k's logit). Rollout's two maps are identical; GAE's
# are not.

# %%
print("tubelet (frames, px, px):", model.config.tubelet_size)
first, second = (int(c) for c in np.argsort(-probs)[:2])  # the two most likely classes
for method in ("rollout", "gae"):
    a, b = (explain.explain(model, x, method, target=k).relevance[0] for k in (first, second))  # [P] each
    corr = np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else float("nan")
    print(f"{method:8s} for {model.labels[first]!r} vs {model.labels[second]!r}: max |difference| "
          f"{np.abs(a - b).max():.3g}, correlation {corr:+.2f} over tubelets")
gae_first = explain.explain(model, x, "gae", target=first).relevance[0]  # [P]
display(viz.plot_overlay(clip.frames, np.r_[0.0, gae_first], model.config,
                         label=f"GAE for {model.labels[first]!r}"))

# %% [markdown]
# ## Final check
#
# (1) The memory-light rollout (`explain.cls_rollout`, one full map alive at a time — what you need
# at ViViT-B size) equals the full-matrix product. (2) Does the model look at the evidence? Over 8
# clips, the share of the CLS rollout, and of GAE (its positive part, for the predicted class), on the
# object's tubelets in the last time slice (the last visit, from the clip's masks), against those
# tubelets' share of all tubelets (what a map that looked everywhere alike would give).

# %%
light, _, _ = cls_rollout(model, x)  # [1, N]
assert np.allclose(light[0], rollout, atol=1e-6), np.abs(light[0] - rollout).max()
frames, labels, masks = make_visit_batch(8, seed=7)  # [8, T, H, W, 3], [8], [8, T, H, W]
xs = preprocess_for(model.config, frames)
by_method = {"rollout": explain.rollout_cls(capture(model, xs, mode="full").attentions)[:, 1:],  # [8, P]
             "gae": np.clip(explain.explain(model, xs, "gae").relevance, 0, None)}  # [8, P]
print(" clip  label          object's last-visit tubelets  rollout share  gae share")
ratios = {m: [] for m in by_method}
for i in range(len(frames)):
    covered = explain.tubelet_coverage(masks[i], tokens) > 0  # [t, h, w]
    last_visit = np.zeros_like(covered)
    last_visit[-1] = covered[-1]
    shares = {m: v[i].reshape(covered.shape)[last_visit].sum() / v[i].sum() for m, v in by_method.items()}
    for m in by_method:
        ratios[m].append(shares[m] / last_visit.mean())  # 1.0 = no preference
    print(f" {i:4d}  {VISIT_LABELS[labels[i]]:13s}  {last_visit.mean():27.1%}  {shares['rollout']:13.1%}  "
          f"{shares['gae']:9.1%}")
for m in by_method:
    print(f"{m}: share on the last-visit object / its share of the tubelets, mean over clips "
          f"{np.mean(ratios[m]):.1f} (min {np.min(ratios[m]):.1f})")
assert min(np.min(r) for r in ratios.values()) > 2, ratios
print("the rollout is right, and both maps put far more than their share on the object's last visit: ✓")
