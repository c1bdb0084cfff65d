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
# # 6. Debugging a broken port
#
# **The idea:** when your port of a model disagrees with the reference, don't stare at the logits.
# Record every named intermediate in both implementations and compare them in forward order:
# the **first** one that diverges was produced by the buggy step — everything after it is just
# the error spreading.
#
# `minivivit.debug` does the bookkeeping: `trace(model, x)` and `hf_trace(hf_model, x)` give
# `{name: array}` with the same names (`embed.patches`, `blocks.0.q`, …, `logits`), and
# `compare(ours, reference)` gives a table and `first_divergence`.
#
# We meet three classic porting bugs — wrong token order, wrong GELU, a transposed weight —
# find each one, fix it, and confirm: the first in a port's own code, which you fix. Then you find
# one yourself.
#
# `debug.trace` and its names were introduced in notebook 3; `weights.flatten_params` /
# `unflatten_params` turn the nested params into flat names (`blocks.1.attn.v.w`) and back.
#
# *Needs the `dev` extra (torch + transformers): HF is the reference.*

# %%
import tempfile

import numpy as np
import torch
from transformers import VivitConfig, VivitForVideoClassification
from transformers.utils import logging as hf_logging

import minivivit
from minivivit import debug, layers
from minivivit.bench.hf_reference import randomise_

hf_logging.disable_progress_bar()  # save_pretrained draws a "Writing model shards" bar, which says nothing here

# %% [markdown]
# ## The reference and a correct port
#
# A tiny HF `VivitForVideoClassification` (8 frames of 32×32, 2×8×8 tubelets, 2 layers). HF
# initialises the CLS token and the position embeddings to zero, which would hide bugs there, so we
# randomise *every* parameter. Then we take the real path a user's checkpoint takes:
# `save_pretrained` → `minivivit.load(directory)` (the converter runs in memory).

# %%
hf_config = VivitConfig(image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, num_labels=4, hidden_act="gelu_fast")
torch.manual_seed(0)
hf = randomise_(VivitForVideoClassification(hf_config), seed=0)  # every parameter ~ N(0, 1/D), LayerNorm gains ~ 1

scratch = tempfile.TemporaryDirectory(prefix="tiny-vivit-")  # deleted when the kernel stops
checkpoint = scratch.name
hf.save_pretrained(checkpoint)
port = minivivit.load(checkpoint)
print(port)

x = np.random.default_rng(0).standard_normal((1, 8, 3, 32, 32)).astype(np.float32)  # [B, T, C, H, W]
reference = debug.hf_trace(hf, x)  # {name: array} from HF, via forward hooks
print(len(reference), "names:", ", ".join(list(reference)[:8]), "...")

# %%
report = debug.compare(debug.trace(port, x), reference, labels=("minivivit", "HF"))
print(report)

# %% [markdown]
# Every row is within float32 tolerance (|a − b| ≤ 1e-4 + 1e-4·|b|): two independent float32
# implementations of the same maths differ by ~1e-6 of the tensor's scale. In Jupyter, `report`
# on its own renders as an HTML table with the first divergence highlighted.

# %% [markdown]
# ## Bug 1 — wrong token order, in the port's own code
#
# Here is a port's tubelet embedding: cut the clip `[B, T, C, H, W]` into tubelets, one row of
# `K = tt·ph·pw·C` values per tubelet, and project each row to D features. It runs, every shape is
# right — and it has a bug. Read it before running anything.

# %%
def port_tubelet_embed(pixel_values, w, b, tubelet):
    """The port's embedding: [B, T, C, H, W] -> tubelet rows [B, P, K] -> tokens [B, P, D]."""
    B, T, C, H, W = pixel_values.shape
    tt, ph, pw = tubelet
    gt, gh, gw = T // tt, H // ph, W // pw  # the tubelet grid
    x = pixel_values.reshape(B, gt, tt, C, gh, ph, gw, pw)  # split each axis into (grid, inside a tubelet)
    x = x.transpose(0, 1, 6, 4, 2, 5, 7, 3)  # -> [B, gt, gh, gw, tt, ph, pw, C]
    rows = x.reshape(B, gt * gh * gw, tt * ph * pw * C)  # [B, P, K]
    return rows @ w + b  # [B, P, K] @ [K, D] -> [B, P, D]


# %% [markdown]
# To test the port's embedding inside an otherwise trusted model, `replace=` runs it in place of the
# library's at the step `embed.patches` (the projected tubelet tokens); every later step is the
# library's own code. Then compare with HF:

# %%
tubelet = port.config.tubelet_size
proj = port.params["embed"]["proj"]


def with_port_embedding(embed):
    """Trace names of the port with `embed(pixel_values, w, b, tubelet)` as its tubelet embedding."""
    return debug.trace(port, x, replace={"embed.patches": lambda _: embed(x, proj["w"], proj["b"], tubelet)})


buggy = debug.compare(with_port_embedding(port_tubelet_embed), reference)
print(buggy.summary())
print("logits: port", with_port_embedding(port_tubelet_embed)["logits"].round(3), " HF", reference["logits"].round(3))
assert buggy.first_divergence == "embed.patches"

# %% [markdown]
# The logits are off by only a few hundredths — a port like this "almost works" and would pass a
# loose end-to-end check. The trace is unambiguous: the first divergence is `embed.patches`, so the
# bug is in the tubelet embedding. No shape is wrong, so ask *which* tokens the port made: match each
# of its tubelet tokens (`embed.patches` has no CLS, so row j is tubelet j) to the HF row with the same
# values, and print both (t, y, x) positions.

# %%
gt, gh, gw = port.config.grid
ours = with_port_embedding(port_tubelet_embed)["embed.patches"][0]  # [P, D]
theirs = reference["embed.patches"][0]  # [P, D]
same = [int(np.abs(theirs - row).max(axis=1).argmin()) for row in ours]  # HF's row of each port row
coords = lambda j: (j // (gh * gw), (j % (gh * gw)) // gw, j % gw)  # tubelet j -> (t, y, x), minivivit/tokens.py
for j in (1, 2, 4, 5):
    print(f"the port's tubelet {j} at (t, y, x) = {coords(j)} holds HF's tubelet {same[j]} at {coords(same[j])}")

# %% [markdown]
# Each of the port's tokens holds the tubelet with y and x exchanged: the port walks **columns before rows**.
# HF flattens its Conv3d output time-slowest, then rows, then columns. Since attention is
# permutation-equivariant, most of the network does not notice — only the position embeddings are now
# added to the wrong tubelets, hence the small error.
#
# **Exercise.** Find the line in `port_tubelet_embed` that puts the axes in the wrong order (its
# comment says what it should do) and write `fixed_tubelet_embed`, the corrected copy.

# %% tags=["exercise"]
def fixed_tubelet_embed(pixel_values, w, b, tubelet):
    # your code here: copy port_tubelet_embed and correct the line with the bug
    raise NotImplementedError("write fixed_tubelet_embed, then run the check below")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_fixed_tubelet_embed(pixel_values, w, b, tubelet):
    B, T, C, H, W = pixel_values.shape
    tt, ph, pw = tubelet
    gt, gh, gw = T // tt, H // ph, W // pw
    x = pixel_values.reshape(B, gt, tt, C, gh, ph, gw, pw)
    x = x.transpose(0, 1, 4, 6, 2, 5, 7, 3)  # the fix: gh (axis 4) before gw (axis 6)
    return x.reshape(B, gt * gh * gw, tt * ph * pw * C) @ w + b


# %%
try:
    fixed_trace = with_port_embedding(fixed_tubelet_embed)
except NotImplementedError:
    fixed_trace = None
if fixed_trace is None:
    print("not done: write fixed_tubelet_embed above")
else:
    result = debug.compare(fixed_trace, reference)
    assert result.ok, f"fixed_tubelet_embed is not right yet: the first divergence is {result.first_divergence}"
    print("your fixed_tubelet_embed makes the port agree with HF at every step: ✓")

# %% [markdown]
# (The library's `layers.patchify` has the right order: `transpose(0, 1, 4, 6, 2, 5, 7, 3)`.)

# %% [markdown]
# ## Bug 2 — the wrong GELU
#
# "GELU" names several functions. ViViT's config says `gelu_fast` (a tanh approximation); a port
# that uses the exact erf GELU instead is wrong by a few 1e-4 — small, and exactly the kind of
# error that hides inside "close enough" logits.

# %%
wrong_gelu = minivivit.Model(port.params, port.config.replace(hidden_act="gelu"))
buggy = debug.compare(debug.trace(wrong_gelu, x), reference)
print(buggy.summary())
row = buggy[buggy.first_divergence]
print(f"{row.name}: max |a-b| = {row.max_abs:.2g}; logits off by {buggy['logits'].max_abs:.2g}")
assert buggy.first_divergence == "blocks.0.act"

# %% [markdown]
# `blocks.0.fc1` agrees and `blocks.0.act` does not: the activation itself is wrong.
#
# What the comparison *cannot* see: `gelu_new` (√(2/π) computed in full precision) and `gelu_fast`
# (the same constant rounded to 10 digits). Measured in both precisions:

# %%
u64 = np.linspace(-6, 6, 100_001)  # float64
u32 = u64.astype(np.float32)
fast64, new64 = layers.gelu_fast(u64), layers.gelu_tanh(u64)
fast32, new32 = layers.gelu_fast(u32).astype(np.float32), layers.gelu_tanh(u32).astype(np.float32)  # float32 results
print(f"sqrt(2/pi) - 0.7978845608 = {np.sqrt(2 / np.pi) - 0.7978845608:.1e}")
print(f"float64: max |gelu_fast - gelu_new| = {np.abs(fast64 - new64).max():.1e}")
print(f"float32: max |gelu_fast - gelu_new| = {np.abs(fast32 - new32).max():.1e}, "
      f"on {np.mean(fast32 != new32):.0%} of the points; float32's spacing at 6 is {np.spacing(np.float32(6)):.1e}")
print(f"float32 rounding of each, max |float32 result - float64|: gelu_fast {np.abs(fast32 - fast64).max():.1e}, "
      f"gelu_new {np.abs(new32 - new64).max():.1e}")

# %% [markdown]
# In float64 the two differ by about 1e-12, the rounded constant's effect. In float32 they differ by
# up to one float32 spacing, on about half of the points — but that is rounding (the two formulas
# are evaluated in a different order), as large as each one's own float32 rounding error. In
# float32 they are the same function, far below the float32 tolerance of `compare`:

# %%
near_twin = minivivit.Model(port.params, port.config.replace(hidden_act="gelu_new"))
print("gelu_new instead of gelu_fast:", debug.compare(debug.trace(near_twin, x), reference).summary())
assert debug.compare(debug.trace(port, x), reference).ok  # the fix: take hidden_act from the checkpoint's config
print("fixed: ✓")

# %% [markdown]
# ## Bug 3 — a transposed weight
#
# torch's `nn.Linear` stores its weight `[out, in]` and computes `x @ W.T`; minivivit stores `[in, out]`
# and computes `x @ w`. A converter that forgets the transpose for one weight gets a shape error —
# *unless the matrix is square*, like every Q/K/V/output projection (D × D).

# %%
def with_transposed_v(model, layer):
    """A copy of model whose layer's value projection was converted without the transpose."""
    params = minivivit.weights.unflatten_params(dict(minivivit.weights.flatten_params(model.params)))
    v = params["blocks"][layer]["attn"]["v"]
    v["w"] = v["w"].T.copy()  # [D, D] -> [D, D]: no shape error to warn us
    return minivivit.Model(params, model.config)


buggy = debug.compare(debug.trace(with_transposed_v(port, 1), x), reference)
print(buggy.summary())
assert buggy.first_divergence == "blocks.1.v"

# %% [markdown]
# Everything up to `blocks.1.k` agrees; `blocks.1.v` does not, and its input (`blocks.1.ln1`) is
# fine, so the value projection's own weights are wrong. Compared with HF's `v_proj.weight`, ours is
# the weight *as torch stores it* (`[out, in]`): the converter copied it without the `.T`.

# %%
ours_v = with_transposed_v(port, 1).params["blocks"][1]["attn"]["v"]["w"]
hf_v = hf.vivit.layers[1].attention.v_proj.weight.detach().numpy()  # [out, in]
print("ours == HF v_proj.weight   ([out, in], the bug):", np.allclose(ours_v, hf_v))
print("ours == HF v_proj.weight.T ([in, out], correct): ", np.allclose(ours_v, hf_v.T))

# %% [markdown]
# ## Exercise: a mystery bug
#
# `mystery` below is a port with one planted bug (the cell that makes it is collapsed — no
# peeking). Find it with `debug.compare`, then write `fix_mystery(params)` that returns corrected
# params. Hints: look at the first divergence; check that the *input* of that step agrees; then
# look at the step's own parameters in `params["blocks"][i]` and at HF's module
# (`hf.vivit.layers[i]`: `layernorm_before`, `attention.q_proj`, …, `layernorm_after`, `mlp.fc1`, `mlp.fc2`).

# %% jupyter={"source_hidden": true}
_flat = dict(minivivit.weights.flatten_params(port.params))
_flat["blocks.1.ln2.g"], _flat["blocks.1.ln2.b"] = _flat["blocks.1.ln2.b"], _flat["blocks.1.ln2.g"]
mystery = minivivit.Model(minivivit.weights.unflatten_params(_flat), port.config)
del _flat

# %%
print(debug.compare(debug.trace(mystery, x), reference).summary())

# %% tags=["exercise"]
def fix_mystery(params):
    # your code here: return params with the planted bug undone (copy what you change)
    raise NotImplementedError("find the bug with debug.compare, then write fix_mystery")


# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_fix_mystery(params):
    # first divergence: blocks.1.ln2, while its input blocks.1.resid1 agrees -> ln2's own params.
    # g should be near 1 and b near 0 (compare with hf.vivit.layers[1].layernorm_after): they are swapped.
    flat = dict(minivivit.weights.flatten_params(params))
    flat["blocks.1.ln2.g"], flat["blocks.1.ln2.b"] = flat["blocks.1.ln2.b"], flat["blocks.1.ln2.g"]
    return minivivit.weights.unflatten_params(flat)


# %%
try:
    repaired = fix_mystery(mystery.params)
except NotImplementedError:
    repaired = None
if repaired is None:
    print("not done: find the bug with debug.compare, then write fix_mystery above (the final check uses the hidden solution)")
    fixed = minivivit.Model(solution_fix_mystery(mystery.params), mystery.config)
else:
    fixed = minivivit.Model(repaired, mystery.config)
    result = debug.compare(debug.trace(fixed, x), reference)
    assert result.ok, f"fix_mystery did not fix it yet: {result.summary()}"
    print("your fix_mystery repairs the port: ✓")

# %% [markdown]
# ## Final check
#
# The fixed port against HF on a new clip with a batch of two: every intermediate, and the logits.

# %%
x2 = np.random.default_rng(1).standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
final = debug.compare(debug.trace(fixed, x2), debug.hf_trace(hf, x2))
assert final.ok, final.summary()
with torch.no_grad():
    hf_logits = hf(torch.from_numpy(x2)).logits.numpy()
assert np.allclose(fixed(x2).logits, hf_logits, atol=1e-5)
print(final.summary())
whose = "your fix_mystery" if repaired is not None else "the hidden solution (fix_mystery is not done)"
print(f"the repaired port matches HF transformers: ✓ (repaired by {whose})")
