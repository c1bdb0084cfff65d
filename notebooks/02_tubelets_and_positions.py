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
# # 2. Tubelets and position embeddings
#
# **The idea:** ViViT turns a video into a *sequence* by cutting it into small space-time boxes,
# **tubelets**, projecting each to a D-dimensional token, and adding a learned **position
# embedding** that tells the model where (and when) each token came from.
#
# 1. the tubelet grid over frames, and the token count of ViViT-B;
# 2. the tubelet projection *is* a strided 3-D convolution;
# 3. what a trained model's position embeddings look like, in space and in time, and whether it needs them;
# 4. resizing the position embeddings to a new clip size, and why HF's version breaks.

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import minivivit
from minivivit import layers
from minivivit.data import VISIT_LABELS, make_visit_batch, make_visit_clip

# %% [markdown]
# ## 1. A clip and its tubelet grid
#
# A generated clip of the visits task, the data the bundled demo model was trained on: a small
# bright object visits the four quadrants of the frame, a quarter of the clip in each, in a random
# order; the label is the quadrant of the last visit. The tubelet size and the grid it makes are
# the demo model's, read from its config (printed below).

# %%
demo = minivivit.load()  # weights/vivit-demo.safetensors
config = demo.config
clip = make_visit_clip(seed=0, index=1)
frames = clip.frames  # uint8 [T, H, W, 3]
T, H, W, _ = frames.shape
tt, ph, pw = config.tubelet_size
t, h, w = config.grid
print(f"clip {frames.shape}, visits {[VISIT_LABELS[q] for q in clip.order]}, label {clip.label_name!r}")
print(f"tubelet (frames, rows, columns) = {config.tubelet_size} -> grid (t, h, w) = {config.grid}: "
      f"{config.num_patches} tubelets + CLS = {config.num_patches + 1} tokens; a visit lasts {T // 4} frames")

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, f in zip(axes, [0, tt - 1, tt, 2 * tt - 1]):  # first and last frame of time slices 0 and 1
    ax.imshow(frames[f], extent=(0, W, H, 0))
    for k in range(0, W + 1, pw):
        ax.axvline(k, color="w", lw=0.5)
    for k in range(0, H + 1, ph):
        ax.axhline(k, color="w", lw=0.5)
    ax.add_patch(Rectangle((3 * pw, 2 * ph), pw, ph, fill=False, ec="red", lw=2))
    ax.set(title=f"frame {f} (time slice t={f // tt})", xlabel="x (pixels)", ylabel="y (pixels)")
fig.suptitle(f"the red box is one tubelet, (t, y, x) = (0, 2, 3) in frames 0–{tt - 1} "
             f"and a new one, (1, 2, 3), in frames {tt}–{2 * tt - 1}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Tokens are numbered like HF's Conv3d flattens its output: time slowest, then rows, then columns.
# Token 0 is the CLS token; token k ≥ 1 is tubelet j = k − 1 at
#
# $$t_j = \lfloor j / (h w) \rfloor, \quad y_j = \lfloor (j \bmod h w) / w \rfloor, \quad x_j = j \bmod w.$$
#
# For ViViT-B (32 frames of 224×224, tubelets 2×16×16) that is 16 × 14 × 14 = 3136 tubelets + CLS.

# %%
vit_b = minivivit.ViViTConfig()  # defaults = google/vivit-b-16x2-kinetics400
print("ViViT-B grid", vit_b.grid, "->", vit_b.num_patches, "tubelets +1 CLS =", vit_b.num_patches + 1, "tokens")
print("values in one tubelet: K = tt*ph*pw*C =", np.prod(vit_b.tubelet_size) * 3)
assert vit_b.num_patches == 16 * 14 * 14 == 3136

# %% [markdown]
# **Exercise.** Write `my_token(frame, row, col)`: the index (CLS = 0 counted) of the token
# whose tubelet contains pixel (row, col) of frame `frame`, for the demo model's clip and tubelets
# (`tt, ph, pw` and the grid `t, h, w` above). The check builds a clip whose every value is unique, cuts it with the library's
# `layers.patchify`, and looks up which token really holds that pixel.

# %% tags=["exercise"]
def my_token(frame, row, col):
    # your code here: which (t, y, x) tubelet, then its number in HF's order, then +1 for CLS
    raise NotImplementedError("write my_token, then run the check below")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_token(frame, row, col):
    ti, yi, xi = frame // tt, row // ph, col // pw  # which tubelet along time, rows, columns
    return 1 + ti * h * w + yi * w + xi  # time slowest, columns fastest; +1 for CLS


# %%
ids = np.arange(T * 3 * H * W, dtype=np.float64).reshape(1, T, 3, H, W)  # [B, T, C, H, W], all different
rows = layers.patchify(ids, config.tubelet_size)  # [B, P, K]: one row of values per tubelet


def true_token(frame, row, col):
    """Where patchify put the red value of that pixel (+1 for CLS)."""
    return 1 + int(np.argwhere(rows[0] == ids[0, frame, 0, row, col])[0, 0])


probe = np.random.default_rng(0).integers([0, 0, 0], [T, H, W], size=(50, 3))  # 50 random pixels
try:
    my_token(0, 0, 0)
    done = True
except NotImplementedError:
    done = False
if not done:
    print("not done: write my_token above (until then the rest of the notebook uses the hidden solution)")
else:
    for f, r, c in probe:
        assert my_token(f, r, c) == true_token(f, r, c), f"my_token({f}, {r}, {c}) = {my_token(f, r, c)}, patchify says {true_token(f, r, c)}"
    print(f"your my_token matches the library's patchify on {len(probe)} random pixels: ✓")

# %% [markdown]
# ## 2. The tubelet projection is a strided Conv3d
#
# HF computes the tokens with `Conv3d(C, D, kernel=tubelet, stride=tubelet)`. Because the stride
# equals the kernel, the windows do not overlap: each output position sees exactly one tubelet, so
# the convolution is "cut into tubelets, then one matrix multiply" — which is what minivivit's
# `tubelet_embed` does (`patchify(x) @ w + b`, with w stored `[K, D]`, K ordered frame, row, col, channel).
#
# Below, the textbook definition of a convolution, written with loops over output positions,
# against the library.

# %%
rng = np.random.default_rng(0)
D = config.hidden_size
x = rng.normal(size=(1, T, 3, H, W))  # [B, T, C, H, W]
proj_w = rng.normal(size=(tt * ph * pw * 3, D)) / 20  # [K, D]
proj_b = rng.normal(size=D)  # [D]
kernel = proj_w.reshape(tt, ph, pw, 3, D)  # conv kernel [tt, ph, pw, C, D] (K's order)


def conv3d_by_definition(x, kernel, b, stride):
    """out[o, i, j, l] = b[o] + sum over the kernel window of kernel * x; loops over output positions."""
    st, sy, sx = stride
    kt, ky, kx, _, D = kernel.shape
    video = x[0].transpose(0, 2, 3, 1)  # [T, H, W, C]
    T, H, W, _ = video.shape
    out = np.zeros(((T - kt) // st + 1, (H - ky) // sy + 1, (W - kx) // sx + 1, D))  # [t, h, w, D]
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for l in range(out.shape[2]):
                window = video[i * st:i * st + kt, j * sy:j * sy + ky, l * sx:l * sx + kx]  # [kt, ky, kx, C]
                out[i, j, l] = np.einsum("abcd,abcdo->o", window, kernel) + b
    return out.reshape(1, -1, D)  # [B, t*h*w, D], flattened in Conv3d's order


by_conv = conv3d_by_definition(x, kernel, proj_b, config.tubelet_size)  # [1, P, D]
by_library = layers.tubelet_embed(x, proj_w, proj_b, config.tubelet_size)  # [1, P, D]
print("max |conv - library| =", np.abs(by_conv - by_library).max())
assert np.allclose(by_conv, by_library, atol=1e-10)

# %% [markdown]
# If PyTorch is installed (the `dev` extra), the same with `torch.nn.functional.conv3d`: its
# weight layout is `[D, C, tt, ph, pw]`, so ours is reordered once — that is all the converter does.

# %%
import importlib.util

if importlib.util.find_spec("torch"):
    import torch

    weight = torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy())  # [tt, ph, pw, C, D] -> [D, C, tt, ph, pw]
    y = torch.nn.functional.conv3d(torch.from_numpy(x).permute(0, 2, 1, 3, 4), weight, torch.from_numpy(proj_b),
                                   stride=config.tubelet_size)  # input [B, C, T, H, W] -> [B, D, t, h, w]
    y = y.flatten(2).transpose(1, 2).numpy()  # [B, D, t*h*w] -> [B, P, D], as HF does
    print("max |torch conv3d - library| =", np.abs(y - by_library).max())
    assert np.allclose(y, by_library, atol=1e-10)
else:
    print("torch is not installed: skipping the torch comparison")

# %% [markdown]
# ### Tubelet embedding vs uniform frame sampling (paper, Section 3.2 and Figures 2–3)
#
# The paper considers two ways to make tokens from a clip. **Uniform frame sampling** takes n_t frames
# and cuts each into 2-D patches as ViT does — a "tubelet" one frame long, over the sampled frames.
# **Tubelet embedding** cuts space-time boxes of tt frames, so one token already fuses time (the
# paper's choice for ViViT). Both are the same Conv3d with different kernels; for our clip:

# %%
every_other = x[:, tt // 2::tt]  # [1, n_t, 3, H, W]: frame tt//2 of every tubelet (uniform sampling, n_t = t)
print("uniformly sampled frames:", list(range(tt // 2, T, tt)))
frame_kernel = proj_w.reshape(tt, ph * pw * 3, D)[tt // 2]  # [ph*pw*C, D]: a 2-D patch kernel (one frame)
by_frames = layers.tubelet_embed(every_other, frame_kernel, proj_b, (1, ph, pw))  # [1, t*h*w, D]
print(f"uniform frame sampling: {every_other.shape[1]} frames x {h * w} patches = {by_frames.shape[1]} tokens, "
      f"each seeing {ph * pw * 3} values of one frame")
print(f"tubelet embedding:      {t} slices x {h * w} tubelets  = {by_library.shape[1]} tokens, "
      f"each seeing {tt * ph * pw * 3} values of {tt} frames")

# %% [markdown]
# Same token count (t · h · w, printed above), different tokens. The paper initialises the tubelet kernel from an
# image ViT's patch kernel by **central frame initialisation** (its Eq. 9): the image kernel in the
# middle frame of the tubelet, zeros in the others. With that kernel, tubelet embedding computes
# *exactly* the uniform-frame-sampling tokens — checked here — and training is what lets the other
# frames of each tubelet (and so motion inside a token) in.

# %%
central = np.zeros((tt, ph * pw * 3, D))  # [tt, ph*pw*C, D] Eq. 9: zeros except the middle frame
central[tt // 2] = frame_kernel
by_central_tubelets = layers.tubelet_embed(x, central.reshape(-1, D), proj_b, config.tubelet_size)  # [1, P, D]
print("max |tubelets with central init - uniform frame sampling| =", np.abs(by_central_tubelets - by_frames).max())
assert np.allclose(by_central_tubelets, by_frames, atol=1e-10)

# %% [markdown]
# How much does a *trained* tubelet kernel use its frames? Split the bundled demo model's kernel
# `E = [E_0, …, E_{tt−1}]` (one `[ph·pw·C, D]` slice per frame) into the part that is the same in every
# frame, the mean `Ē` (it responds to the frames' sum, as a kernel of one averaged frame would), and
# the rest, `E_f − Ē`, which responds only to *change* between the frames — motion inside the token.
# The two parts are orthogonal, so their norms add in squares. Uniform frame sampling has no change part.

# %%
trained = demo.params["embed"]["proj"]["w"].astype(np.float64).reshape(tt, -1, D)  # [tt, ph*pw*C, D]
mean_frame = trained.mean(axis=0, keepdims=True)  # [1, ph*pw*C, D]
same_part = np.linalg.norm(np.broadcast_to(mean_frame, trained.shape))  # the mean, in each of the tt frames
change_part = np.linalg.norm(trained - mean_frame)
print(f"trained demo kernel: |same-in-every-frame part| = {same_part:.2f}, |change part| = {change_part:.2f} "
      f"(ratio {change_part / same_part:.2f}; 0 would mean the token cannot see change within its {tt} frames)")

# %% [markdown]
# ## 3. Position embeddings: where and when
#
# The position embeddings are a learned `[N, D]` table added to the tokens: without them attention
# would treat the tubelets as an unordered bag. Nothing tells the model that the table is a
# t × h × w grid. We look at the bundled demo model, trained on exactly these clips and tubelets, and
# measure the cosine similarity between position vectors. A vector's similarity with itself is 1 by
# definition and says nothing, so it is masked (white) in both pictures.

# %%
assert demo.config.grid == (t, h, w)
pos = demo.params["embed"]["pos"][1:].astype(np.float64)  # [P, D], CLS position dropped
unit = pos / np.linalg.norm(pos, axis=1, keepdims=True)
cos = (unit @ unit.T).reshape(t, h, w, t, h, w)  # cos[t, y, x, t', y', x']

space = np.mean([cos[s, :, :, s] for s in range(t)], axis=0)  # [h, w, h, w]: same slice, averaged over slices
time_sim = np.einsum("ayxbyx->ab", cos) / (h * w)  # [t, t]: same (y, x), averaged over places
space_shown = space.copy()
space_shown[np.arange(h)[:, None], np.arange(w)[None, :], np.arange(h)[:, None], np.arange(w)[None, :]] = np.nan
time_shown = np.where(np.eye(t, dtype=bool), np.nan, time_sim)  # the diagonal is cos(p, p) = 1: masked

fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1.15, 1]})
mosaic = np.full((h * (h + 1), w * (w + 1)), np.nan)  # an h x w grid of h x w maps, with gaps
for y in range(h):
    for x in range(w):
        mosaic[y * (h + 1):y * (h + 1) + h, x * (w + 1):x * (w + 1) + w] = space_shown[y, x]
im0 = a0.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1)
a0.set(title="space: cell (y, x) shows cos(pos[y, x], pos[y', x'])\n(same time slice, averaged over slices)",
       xlabel="x of the reference position (each small map: x')", ylabel="y of the reference position (small map: y')")
a0.set_xticks(np.arange(w) * (w + 1) + w / 2 - 0.5, range(w))
a0.set_yticks(np.arange(h) * (h + 1) + h / 2 - 0.5, range(h))
fig.colorbar(im0, ax=a0, label="cosine similarity")
im1 = a1.imshow(time_shown, cmap="viridis", vmin=-1, vmax=1)
for i in range(t):
    for j in range(t):
        if i != j:
            a1.text(j, i, f"{time_sim[i, j]:+.2f}", ha="center", va="center", color="w", fontsize=8)
a1.set(title="time: cos(pos[t, y, x], pos[t', y, x])\n(same place, averaged over places)\ndiagonal masked",
       xlabel="time slice t'", ylabel="time slice t", xticks=range(t), yticks=range(t))
fig.colorbar(im1, ax=a1, label="cosine similarity")
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for: in a model whose positions encode the layout of the grid (ViT and ViViT trained
# on real images and videos), each small map is brightest next to its own (masked) cell and fades with
# distance, and the time matrix is brightest next to its (masked) diagonal. Let's measure it rather
# than eyeball it: the mean similarity of neighbouring positions against distant ones, in space
# and in time (self-similarities excluded).

# %%
ty, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
coords = np.stack([ty.ravel(), yy.ravel(), xx.ravel()], axis=1)  # [P, 3] (t, y, x) of each tubelet
same_t = coords[:, None, 0] == coords[None, :, 0]  # [P, P]
d_space = np.abs(coords[:, None, 1:] - coords[None, :, 1:]).max(-1)  # [P, P] distance in tubelets (Chebyshev)
flat_cos = cos.reshape(t * h * w, t * h * w)
near, far = flat_cos[same_t & (d_space == 1)].mean(), flat_cos[same_t & (d_space >= 4)].mean()
gap = np.abs(np.subtract.outer(range(t), range(t)))  # [t, t] |t - t'|
adjacent, distant = time_sim[gap == 1].mean(), time_sim[gap >= 2].mean()
others = ~np.eye(t * h * w, dtype=bool)  # [P, P] every pair of two different positions
print(f"space: neighbours {near:+.3f}   4+ tubelets apart {far:+.3f}")
print(f"time:  adjacent slices {adjacent:+.3f}   2+ slices apart {distant:+.3f}   "
      f"(off-diagonal range {time_sim[gap > 0].min():+.3f} .. {time_sim[gap > 0].max():+.3f})")
noise = np.random.default_rng(0).normal(size=pos.shape)  # [P, D] random vectors, for comparison
noise /= np.linalg.norm(noise, axis=1, keepdims=True)
print(f"all pairs of different positions: mean |cos| = {np.abs(flat_cos[others]).mean():.3f} "
      f"(random vectors in {D} dimensions: {np.abs(noise @ noise.T)[others].mean():.3f})")
assert max(abs(near), abs(far), abs(adjacent), abs(distant)) < 0.05  # the text below says: all close to 0

# %% [markdown]
# Here the printed averages are all close to 0, neighbours and distant positions alike, and a typical
# pair of positions is about as similar as two random vectors of the same size (printed): the demo
# model's position vectors started large and random (std 3.0, weights/README.md) and training did not
# pull neighbours together. So cosine similarity shows no layout. That does not make them useless:
# distinct vectors still tell every token *which* position it has; the layout just is not written as
# "neighbours look alike".
#
# Does the model *need* its position embeddings? The visits task says it must: every clip shows the
# object in all four quadrants, one visit per time slice, so a bag of tubelets without their
# positions says nothing about which quadrant came last. The experiment: give every tubelet the
# position vector of another, randomly chosen tubelet (a permutation among the patch tokens; CLS keeps
# its own), and classify the same held-out clips (stream 2024, never seen in training) again.

# %%
from minivivit.video.preprocess import preprocess_for

heldout, labels, _ = make_visit_batch(128, seed=2024)  # uint8 [128, T, H, W, 3], labels [128]
pixels = preprocess_for(demo.config, heldout)  # [128, T, 3, H, W]
table = demo.params["embed"]["pos"]  # [1 + P, D]
perm = np.random.default_rng(0).permutation(t * h * w) + 1  # patch rows only: row 0 (CLS) stays put
permuted = minivivit.Model({**demo.params, "embed": {**demo.params["embed"], "pos": np.concatenate([table[:1], table[perm]])}},
                           demo.config)
acc = (demo(pixels).logits.argmax(-1) == labels).mean()
acc_permuted = (permuted(pixels).logits.argmax(-1) == labels).mean()
chance = 1 / len(VISIT_LABELS)
print(f"{len(labels)} held-out clips: accuracy with its own positions {acc:.1%}, "
      f"with positions permuted {acc_permuted:.1%} (chance {chance:.0%})")
print("-> this model relies on where (and when) its tokens are" if acc_permuted < (acc + chance) / 2 else
      "-> this model hardly uses where its tokens are")
assert acc >= 0.85 and acc_permuted < (acc + chance) / 2

# %% [markdown]
# The printed numbers are the conclusion: with its own position table the model gets nearly every
# held-out clip right; with the same vectors handed to the wrong tubelets it falls close to chance
# (25 %). The tubelet projection alone cannot solve this task — what a tubelet sees
# (a visit in some quadrant) is independent of the label; only *where* and *when* it is decides it, and
# that comes from the position embeddings. Remember this when you read attention maps in notebook 4:
# where CLS looks is only meaningful because the model knows where each token is.

# %% [markdown]
# ## 4. A clip of another size: resizing the position grid
#
# A model trained on clips of one size has exactly 1 + t·h·w positions (printed below for the demo
# model). To run it on fewer frames, or on larger frames, the table must be resized. minivivit treats it as the (t, h, w) grid it is:
# each time slice is resized bicubically like a ViT image, and time linearly
# (`minivivit.position.resize_grid`, used by `interpolate_pos_encoding=True`).

# %%
from minivivit.position import resize_grid
from minivivit.tokens import tubelet_grid


def tubelet_grid_of(config, height, width):
    """(t, h, w) tubelets of a clip of config.num_frames frames of height x width."""
    return tubelet_grid((config.num_frames, height, width), config.tubelet_size)


print(f"the demo model: {T} frames of {H}x{W}, grid {config.grid} -> {1 + t * h * w} positions")
new_grid = (t // 2, h * 3 // 2, w * 3 // 2)  # e.g. half the frames, 1.5x the height and width
grid_pos = np.zeros((t, h, w, 1))
grid_pos[:, :, :, 0] = np.arange(t)[:, None, None] * 10 + np.arange(h)[None, :, None]  # value = 10*t + y
resized = resize_grid(grid_pos.reshape(-1, 1), (t, h, w), new_grid).reshape(new_grid)  # [t', h', w']
print(f"resized from grid {(t, h, w)} to {new_grid}")
print("time slice means before:", grid_pos[..., 0].mean(axis=(1, 2)).round(1))
print("time slice means after: ", resized.mean(axis=(1, 2)).round(1), " (time resized linearly, slices stay separate)")

# %% [markdown]
# **What HF's `interpolate_pos_encoding` does instead** — measured live below on the transformers
# installed here, because its behaviour has changed between versions. `VivitEmbeddings` copies ViT's
# code, with two consequences:
#
# * it decides whether to resize by comparing the *config's* patch count with the table's (equal for
#   every checkpoint) and by asking whether the frames are square — not by looking at the clip's
#   token count. So for **square frames of any size** it returns the table unchanged, and the add
#   then fails for lack of positions;
# * **non-square frames** do reach the resize, and there the `t·h·w` positions are reshaped as a
#   *square image* of side `sqrt(t·h·w)` — 56 × 56 for ViViT-B — whose rows mix positions from
#   different frames, resized to `(h', w')`: `h'·w'` positions for `t·h'·w'` tokens.
#
# The picture shows which time slice every pixel of that 56 × 56 image comes from:

# %%
tb, hb, wb = vit_b.grid
time_of_position = np.repeat(np.arange(tb), hb * wb)  # [3136]: the time slice of each patch position
side = int(np.sqrt(vit_b.num_patches))
fig, ax = plt.subplots(figsize=(4.8, 4))
im = ax.imshow(time_of_position.reshape(side, side), cmap="viridis")
ax.set(title=f"HF's {side}×{side} 'image' of ViViT-B positions", xlabel="column of the 56×56 image",
       ylabel="row of the 56×56 image")
fig.colorbar(im, ax=ax, label="time slice t of the position")
plt.tight_layout()
plt.show()
ours_side = np.sqrt(t * h * w)
if ours_side == int(ours_side):
    print(f"and for the demo model's {t}x{h}x{w} grid, sqrt({t * h * w}) = {ours_side:g}: a {ours_side:g}x{ours_side:g} "
          f"'image' in which each time slice is a band of {h * w / ours_side:g} rows (each row = {ours_side / w:g} rows "
          f"of a frame's grid), so a 2-D resize blends neighbouring time slices at the band edges")
else:
    print(f"and for the demo model's {t}x{h}x{w} grid, sqrt({t * h * w}) = {ours_side:.2f} is not even an integer: "
          f"no square image at all")

# %% [markdown]
# Live, if transformers is installed: HF's own `VivitEmbeddings` with ViViT-B's config (random weights;
# the embedding layer alone, so it is quick), on 32 frames of 288 × 288 (square) and of 224 × 288
# (not square). For each: how many tokens the clip makes, how many positions HF's resize returns, and
# what the forward pass does with them.

# %%
if importlib.util.find_spec("transformers"):
    import transformers
    from transformers import VivitConfig
    from transformers.models.vivit.modeling_vivit import VivitEmbeddings

    print("transformers", transformers.__version__)
    hf_embed = VivitEmbeddings(VivitConfig()).eval()  # ViViT-B: 32 x 224 x 224, tubelets 2 x 16 x 16
    for height, width in ((288, 288), (224, 288)):
        clip_tokens = 1 + (32 // 2) * (height // 16) * (width // 16)
        with torch.no_grad():
            dummy = torch.zeros(1, clip_tokens, vit_b.hidden_size)
            positions = hf_embed.interpolate_pos_encoding(dummy, height, width).shape[1]
            try:
                hf_embed(torch.zeros(1, 32, 3, height, width), interpolate_pos_encoding=True)
                outcome = "ran"
            except RuntimeError as err:
                outcome = "fails: " + str(err).splitlines()[0]
        print(f"{height}x{width}: the clip has {clip_tokens} tokens, HF's resize returns {positions} positions; "
              f"the forward pass {outcome}")
        ours = 1 + int(np.prod(tubelet_grid_of(vit_b, height, width)))
        assert positions != clip_tokens and ours == clip_tokens
    print(f"minivivit's resize_grid gives both clips as many positions as tokens ({1 + 16 * 18 * 18} and {1 + 16 * 14 * 18})")
else:
    print("transformers is not installed: skipping the live HF measurement")

# %% [markdown]
# ## Final check
#
# Running a model on a smaller clip with `interpolate_pos_encoding=True` must equal running the
# forward pass by hand with the resized position table.

# %%
rng = np.random.default_rng(1)
from minivivit.weights import init_params

model = minivivit.Model(init_params(config, seed=1, scale=0.1), config).to(np.float64)
small = rng.normal(size=(1, T // 2, 3, H * 3 // 4, W * 3 // 4))  # half the frames, 3/4 the height and width
small_grid = (T // 2 // tt, H * 3 // 4 // ph, W * 3 // 4 // pw)  # (t', h', w')
library = model(small, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states[0]  # embeddings' output
e = model.params["embed"]
tokens = np.concatenate([e["cls"][None, None], layers.tubelet_embed(small, e["proj"]["w"], e["proj"]["b"], config.tubelet_size)], axis=1)
pos = np.concatenate([e["pos"][:1], resize_grid(e["pos"][1:], (t, h, w), small_grid)])  # [1 + t'*h'*w', D]
mine = tokens + pos  # [1, 1 + t'*h'*w', D]
print(f"clip {small.shape[1:]} [T, C, H, W] -> grid {small_grid}")
assert np.allclose(mine, library, atol=1e-12), np.abs(mine - library).max()
print(f"{mine.shape[1]} tokens; your resized embedding matches the library's: ✓")
