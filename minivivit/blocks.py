"""The building blocks every ViViT forward pass is made of: the tap, the embeddings, multi-head attention,
the MLP and the pre-norm encoder block, each a plain function of arrays and params, written only in the
backend's ops (minivivit/kernels/__init__.py; the numpy backend is layers.py itself).

model.py assembles them into HF's Model 1; minivivit/factorized/ into Models 2-4. Shapes use the letters of
minivivit/layers.py.

The tap. Every named intermediate is shown to `tap(name, array) -> array` and the forward continues with
what the tap returns: that is how traces and interventions work (minivivit.debug). The default tap shows
nothing. A tap may have a method `wants(name) -> bool`; a plain function wants every name. Two names exist
only when a tap wants them, because the fast kernels never materialise an N x N matrix: for such a layer,
attention runs as the reference's three steps (layers.attention_scores -> attention_probs -> probs @ V) so
that scores and probs can be seen and replaced. Likewise fc1 and act are separate steps only when a tap
wants them (linear_act fuses them). The names are listed in model.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers
from .config import ViViTConfig
from .position import resize_grid
from .tokens import clip_thw, tubelet_grid

# The names the blocks show to a tap (the whole table, with shapes, is in minivivit/model.py).
EMBED_NAMES = ("embed.patches", "embed.tokens", "embed.out")
BLOCK_NAMES = ("ln1", "q", "k", "v", "scores", "probs", "context", "attn_out", "resid1", "ln2", "fc1", "act", "fc2",
               "out")


@dataclass
class ViViTOutput:
    """What a forward pass returns; fields named as in HF's output classes. All NumPy arrays."""

    logits: np.ndarray | None  # [B, num_labels], None for a base model
    last_hidden_state: np.ndarray  # [B, N, D] after the final LayerNorm
    pooler_output: np.ndarray | None  # [B, pooler_output_size], None without a pooler
    hidden_states: tuple | None  # L+1 arrays [B, N, D]: embeddings, then each block's output
    attentions: tuple | None  # L entries: [B, nh, N, N] (full) or [B, nh, N] (CLS row) or None


class NoTap:
    """The default tap: wants no name, so the forward runs on its fast path and shows nothing."""

    def __call__(self, name, x):
        return x

    def wants(self, name) -> bool:
        return False


NO_TAP = NoTap()


def wants(tap, name: str) -> bool:
    """Whether `tap` asks to see `name` (a plain function sees every name)."""
    return getattr(tap, "wants", None) is None or tap.wants(name)


def show(tap, ops, name: str, x):
    """Show x to the tap as a NumPy array, if it wants `name`, and continue with what the tap returns."""
    return tap(name, ops.to_numpy(x)) if wants(tap, name) else x


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


def embed(pixel_values, proj, cls, pos, *, config: ViViTConfig, ops, interpolate_pos_encoding=False, tap=NO_TAP):
    """[B, T, C, H, W] -> [B, N, D]: tubelet tokens, CLS first, plus position embeddings."""
    grid = tubelet_grid(clip_thw(pixel_values.shape), config.tubelet_size)  # (t, h, w) of this clip
    patches = show(tap, ops, "embed.patches",
                   ops.tubelet_embed(pixel_values, proj["w"], proj["b"], config.tubelet_size))  # [B, P, D]
    tokens = show(tap, ops, "embed.tokens", ops.prepend_cls(patches, cls))  # [B, N, D]
    if grid != config.grid and interpolate_pos_encoding:
        pos = np.concatenate([pos[:1], resize_grid(pos[1:], config.grid, grid)])  # [N', D]
    return show(tap, ops, "embed.out", ops.add(tokens, pos))  # [B, N, D] + [N, D]


# ---------------------------------------------------------------------------------------------
# Encoder block
# ---------------------------------------------------------------------------------------------


def attention_heads(q, k, v, *, num_heads, ops, head_mask=None, output_attentions=None, tap=NO_TAP, name=""):
    """softmax(Q K^T / sqrt(d)) V, head by head, on projected q, k, v [B', n, D'] -> (context [B', n, D'], maps).

    Each row of B' attends only within itself, so a reshape to [B * groups, n, D] restricts attention to
    groups of tokens (minivivit/factorized/: time slices, locations). output_attentions: None, "full"
    ([B', nh, n, n]) or "cls" (the first query's row, [B', nh, n]).
    """
    if wants(tap, f"{name}.scores") or wants(tap, f"{name}.probs"):  # the reference's steps, each one shown
        qh, kh, vh = (layers.split_heads(ops.to_numpy(a), num_heads) for a in (q, k, v))  # [B', nh, n, d]
        scores = show(tap, layers, f"{name}.scores", layers.attention_scores(qh, kh))  # [B', nh, n, n]
        gain = None if head_mask is None else head_mask[:, None, None]  # [nh, 1, 1]
        probs = show(tap, layers, f"{name}.probs", layers.attention_probs(scores.copy(), gain))  # [B', nh, n, n]
        context = layers.merge_heads(probs @ vh)  # [B', nh, n, d] -> [B', n, D']
        maps = {None: None, "full": probs, "cls": probs[:, :, 0]}[output_attentions]
    else:
        context, maps = ops.attention(q, k, v, num_heads, head_mask, output_attentions)  # [B', n, D']
    return show(tap, ops, f"{name}.context", context), maps


def qkv(x, q, k, v, *, ops, tap=NO_TAP, name=""):
    """The query, key and value projections: [B, N, D] -> three [B, N, D] (heads not yet split)."""
    q_ = show(tap, ops, f"{name}.q", ops.linear(x, q["w"], q.get("b")))  # [B, N, D]
    k_ = show(tap, ops, f"{name}.k", ops.linear(x, k["w"], k.get("b")))  # [B, N, D]
    v_ = show(tap, ops, f"{name}.v", ops.linear(x, v["w"], v.get("b")))  # [B, N, D]
    return q_, k_, v_


def self_attention(x, q, k, v, o, *, num_heads, ops, head_mask=None, output_attentions=None, tap=NO_TAP, name=""):
    """Multi-head self-attention with its output projection: [B, N, D] -> ([B, N, D], maps or None).

    output_attentions: None, "full" ([B, nh, N, N]) or "cls" ([B, nh, N]) maps to return.
    """
    q_, k_, v_ = qkv(x, q, k, v, ops=ops, tap=tap, name=name)  # [B, N, D] each
    context, maps = attention_heads(q_, k_, v_, num_heads=num_heads, ops=ops, head_mask=head_mask,
                                    output_attentions=output_attentions, tap=tap, name=name)  # [B, N, D]
    return show(tap, ops, f"{name}.attn_out", ops.linear(context, o["w"], o["b"])), maps  # [B, N, D]


def feed_forward(x, fc1, fc2, *, config: ViViTConfig, ops, tap=NO_TAP, name=""):
    """The feed-forward sublayer fc2(act(fc1(x))): [B, N, D] -> [B, N, F] -> [B, N, D]."""
    if wants(tap, f"{name}.fc1") or wants(tap, f"{name}.act"):  # unfused, so that both names exist
        h = show(tap, ops, f"{name}.fc1", ops.linear(x, fc1["w"], fc1["b"]))  # [B, N, F]
        h = show(tap, ops, f"{name}.act", ops.activation(h, config.hidden_act))  # [B, N, F]
    elif isinstance(x, np.ndarray) and x.shape[0] * x.shape[1] > 2 * MLP_ROWS:  # host arrays: in row blocks
        return show(tap, ops, f"{name}.fc2", feed_forward_rows(x, fc1, fc2, config=config, ops=ops))  # [B, N, D]
    else:
        h = ops.linear_act(x, fc1["w"], fc1["b"], config.hidden_act)  # [B, N, F], bias + activation fused
    return show(tap, ops, f"{name}.fc2", ops.linear(h, fc2["w"], fc2["b"]))  # [B, N, D]


# Most token rows per block of feed_forward_rows: ViViT-B's N = 3137 -> 4 blocks of 785 rows, so the [rows, F]
# hidden is 9.6 MB instead of 38.5 MB, while every GEMM still has hundreds of rows (BLAS at full speed).
MLP_ROWS = 1024


def feed_forward_rows(x, fc1, fc2, *, config: ViViTConfig, ops):
    """feed_forward's fused path over blocks of token rows (each row's MLP is independent of the others), so
    the [B*N, F] hidden layer never exists at once: it is the largest activation of a forward (4x D)."""
    B, N, D = x.shape
    rows = x.reshape(B * N, D)  # [M, D], a view (x is contiguous)
    M = B * N
    step = -(-M // -(-M // MLP_ROWS))  # at most MLP_ROWS rows, blocks of equal size
    out = np.empty((M, fc2["w"].shape[1]), x.dtype)  # [M, D]
    for i0 in range(0, M, step):
        h = ops.linear_act(rows[i0:i0 + step], fc1["w"], fc1["b"], config.hidden_act)  # [r, F]
        out[i0:i0 + step] = ops.linear(h, fc2["w"], fc2["b"])  # [r, F] -> [r, D]
    return out.reshape(B, N, -1)  # [B, N, D]


def attention_sublayer(x, ln1, attn, *, config: ViViTConfig, ops, head_mask=None, output_attentions=None,
                       tap=NO_TAP, name=""):
    """MHSA(LN1(x)): [B, N, D] -> ([B, N, D], maps or None). Also used alone to recompute one layer's maps."""
    h = show(tap, ops, f"{name}.ln1", ops.layer_norm(x, ln1["g"], ln1["b"], config.layer_norm_eps))  # [B, N, D]
    return self_attention(h, **attn, num_heads=config.num_attention_heads, ops=ops, head_mask=head_mask,
                          output_attentions=output_attentions, tap=tap, name=name)


def encoder_block(x, ln1, attn, ln2, mlp, *, config: ViViTConfig, ops, head_mask=None, output_attentions=None,
                  tap=NO_TAP, name=""):
    """One pre-norm transformer block: x + MHSA(LN1(x)), then + MLP(LN2(.)). [B, N, D] -> ([B, N, D], maps)."""
    a, maps = attention_sublayer(x, ln1, attn, config=config, ops=ops, head_mask=head_mask,
                                 output_attentions=output_attentions, tap=tap, name=name)  # [B, N, D]
    x = show(tap, ops, f"{name}.resid1", ops.add(x, a))  # residual 1
    del a  # (not needed any more: its memory is free for the MLP)
    h = show(tap, ops, f"{name}.ln2", ops.layer_norm(x, ln2["g"], ln2["b"], config.layer_norm_eps))  # [B, N, D]
    h = feed_forward(h, **mlp, config=config, ops=ops, tap=tap, name=name)  # [B, N, D]
    return show(tap, ops, f"{name}.out", ops.add(x, h)), maps  # residual 2
