"""The blocks of Models 2-4 (Arnab et al. 2021, Section 3.3), built from minivivit/blocks.py's Model-1 pieces.

Letters as in factorized/__init__.py. Every function takes the backend `ops` and a `tap`, as blocks.py's do.
"""

from __future__ import annotations

import numpy as np

from ..blocks import NO_TAP, attention_heads, encoder_block, feed_forward, qkv, self_attention, show
from ..config import ViViTConfig
from .layout import group, group_maps, space_groups, time_space_halves, ungroup

# ---------------------------------------------------------------------------------------------
# Tokens in, pooled representation and head out
# ---------------------------------------------------------------------------------------------


def add_cls_and_pos(tokens, cls, pos, *, ops, tap=NO_TAP, name="embed"):
    """[B', n, D] -> [B', n(+1), D]: prepend the CLS token (if the model has one), add the position embeddings."""
    if cls is not None:
        tokens = show(tap, ops, f"{name}.tokens", ops.prepend_cls(tokens, cls))  # [B', n+1, D]
    return show(tap, ops, f"{name}.out" if name == "embed" else f"{name}.embed", ops.add(tokens, pos))  # + [n', D]


def pool(x, classifier: str):
    """[..., n, D] -> [..., D]: the CLS token's output ('token'), or the mean over the tokens ('gap')."""
    return x[..., 0, :] if classifier == "token" else x.mean(axis=-2)


def head(z, params, config: ViViTConfig, *, ops, tap=NO_TAP):
    """pooled [B, D] -> (pre_logits [B, R] or None, logits [B, num_labels] or None): Scenic's pre_logits
    (dense + tanh, with representation_size) then its output_projection."""
    pre = None
    if config.representation_size is not None:
        p = params["pre_logits"]
        pre = z = show(tap, ops, "pre_logits", ops.linear_act(z, p["w"], p["b"], "tanh"))  # [B, R]
    logits = None
    if "head" in params:
        logits = show(tap, ops, "logits", ops.linear(z, params["head"]["w"], params["head"]["b"]))  # [B, num_labels]
    return pre, logits


def mlp_half(x, ln2, mlp, *, config: ViViTConfig, ops, tap=NO_TAP, name=""):
    """z = MLP(LN(y)) + y (Eqs. 3 and 6): [B', n, D] -> [B', n, D], with Model 1's trace names."""
    h = show(tap, ops, f"{name}.ln2", ops.layer_norm(x, ln2["g"], ln2["b"], config.layer_norm_eps))  # [B', n, D]
    h = feed_forward(h, **mlp, config=config, ops=ops, tap=tap, name=name)  # [B', n, D]
    return show(tap, ops, f"{name}.out", ops.add(x, h))


# ---------------------------------------------------------------------------------------------
# Model 3: factorised self-attention, Model 4: factorised dot-product attention
# ---------------------------------------------------------------------------------------------


def factorized_self_attention_block(x, time, space, ln2, mlp, *, config: ViViTConfig, ops, grid, head_mask=None,
                                    output_attentions=None, tap=NO_TAP, name=""):
    """Model 3's block (Eqs. 4-6), x [B, P, D] -> ([B, P, D], {'time': maps, 'space': maps} or None).

    Each attention is y = MSA(LN(z)) + z inside groups: time at each of the S locations ([B*S, t, D]), space in
    each of the t slices ([B*t, S, D]); config.attention_order says which comes first (the paper's Eqs. 4-5
    write space first; Scenic's default is time_space). Then the MLP (Eq. 6)."""
    B = x.shape[0]
    maps = {}
    for axis in config.attention_order.split("_"):  # "time_space" -> time, then space
        p = time if axis == "time" else space
        z = group(ops.to_numpy(x), grid, axis)  # [B*S, t, D] (time) or [B*t, S, D] (space)
        h = show(tap, ops, f"{name}.{axis}.ln", ops.layer_norm(z, p["ln"]["g"], p["ln"]["b"], config.layer_norm_eps))
        a, m = self_attention(h, **p["attn"], num_heads=config.num_attention_heads, ops=ops, head_mask=head_mask,
                              output_attentions=output_attentions, tap=tap, name=f"{name}.{axis}")  # as z
        y = ops.to_numpy(ops.add(z, a))  # the residual, inside the groups
        x = show(tap, ops, f"{name}.{axis}.out", ungroup(y, grid, B, axis))  # [B, P, D]
        maps[axis] = None if m is None else group_maps(ops.to_numpy(m), B)  # [B, G, nh, n, n]
    x = mlp_half(x, ln2, mlp, config=config, ops=ops, tap=tap, name=name)  # [B, P, D]
    return x, (maps if output_attentions else None)


def factorized_dot_product_attention(x, q, k, v, o, *, num_heads, ops, grid, head_mask=None, output_attentions=None,
                                     tap=NO_TAP, name=""):
    """Model 4's attention: [B, P, D] -> ([B, P, D], {'time': maps, 'space': maps} or None).

    Q, K, V are projected once, as in Model 1. Heads [0, nh/2) attend over time (keys and values K_t, V_t at the
    query's location), heads [nh/2, nh) over space (K_s, V_s of the query's slice); Y = Concat(Y_t, Y_s) W_O."""
    B = x.shape[0]
    q_, k_, v_ = (ops.to_numpy(a) for a in qkv(x, q, k, v, ops=ops, tap=tap, name=name))  # [B, P, D] each
    half = num_heads // 2
    masks = {"time": None, "space": None} if head_mask is None else {"time": head_mask[:half],
                                                                     "space": head_mask[half:]}
    contexts, maps = [], {}
    for axis, (qa, ka, va) in zip(("time", "space"), zip(*(time_space_halves(a) for a in (q_, k_, v_)))):
        qg, kg, vg = (np.ascontiguousarray(group(a, grid, axis)) for a in (qa, ka, va))  # [B*G, n, D/2] each
        c, m = attention_heads(qg, kg, vg, num_heads=half, ops=ops, head_mask=masks[axis],
                               output_attentions=output_attentions, tap=tap, name=f"{name}.{axis}")
        contexts.append(ungroup(ops.to_numpy(c), grid, B, axis))  # [B, P, D/2]
        maps[axis] = None if m is None else group_maps(ops.to_numpy(m), B)  # [B, G, nh/2, n, n]
    context = show(tap, ops, f"{name}.context", np.concatenate(contexts, axis=-1))  # [B, P, D], time heads first
    return ops.linear(context, o["w"], o["b"]), (maps if output_attentions else None)  # [B, P, D]


def factorized_dot_product_block(x, ln1, attn, ln2, mlp, *, config: ViViTConfig, ops, grid, head_mask=None,
                                 output_attentions=None, tap=NO_TAP, name=""):
    """Model 4's block: Eqs. 2-3 with factorized_dot_product_attention as the MSA. [B, P, D] -> [B, P, D]."""
    h = show(tap, ops, f"{name}.ln1", ops.layer_norm(x, ln1["g"], ln1["b"], config.layer_norm_eps))  # [B, P, D]
    a, maps = factorized_dot_product_attention(h, **attn, num_heads=config.num_attention_heads, ops=ops, grid=grid,
                                               head_mask=head_mask, output_attentions=output_attentions, tap=tap,
                                               name=name)  # [B, P, D]
    a = show(tap, ops, f"{name}.attn_out", a)
    x = show(tap, ops, f"{name}.resid1", ops.add(x, a))  # residual 1
    return mlp_half(x, ln2, mlp, config=config, ops=ops, tap=tap, name=name), maps


# ---------------------------------------------------------------------------------------------
# Model 2: two encoders in series
# ---------------------------------------------------------------------------------------------


def encoder(x, enc, *, config: ViViTConfig, ops, head_mask, request_for, tap, name, hidden, attentions,
            reshape_maps):
    """One of Model 2's encoders: + CLS, + positions, its blocks (Model 1's), its LayerNorm. [B', n, D] -> [B', n', D].

    request_for(layer) is the attention request of that layer (counted over both encoders)."""
    x = add_cls_and_pos(x, enc.get("cls"), enc["pos"], ops=ops, tap=tap, name=name)  # [B', n', D]
    if hidden is not None:
        hidden.append(ops.to_numpy(x))
    for i, block in enumerate(enc["blocks"]):
        layer = len(attentions)
        x, maps = encoder_block(x, **block, config=config, ops=ops,
                                head_mask=None if head_mask is None else head_mask[layer],
                                output_attentions=request_for(layer), tap=tap, name=f"{name}.blocks.{i}")  # [B', n', D]
        if hidden is not None:  # otherwise do not keep every block's output alive
            hidden.append(ops.to_numpy(x))
        attentions.append(None if maps is None else reshape_maps(ops.to_numpy(maps)))
    n = enc["norm"]
    return show(tap, ops, f"{name}.norm", ops.layer_norm(x, n["g"], n["b"], config.layer_norm_eps))


def factorized_encoder(x, params, config: ViViTConfig, *, ops, head_mask, request_for, tap, hidden, attentions):
    """Model 2 (Fig. 4): pixel_values [B, T, C, H, W] -> temporal encoder output [B, n_t, D] after its LayerNorm."""
    B, nt = x.shape[0], config.grid[0]  # clips, time slices
    e = params["embed"]
    patches = show(tap, ops, "embed.patches",
                   ops.tubelet_embed(x, e["proj"]["w"], e["proj"]["b"], config.tubelet_size))  # [B, P, D]
    slices = space_groups(ops.to_numpy(patches), config.grid)  # [B*t, S, D]: each slice an image for the spatial ViT
    spatial_hidden = None if hidden is None else []
    z = encoder(slices, params["spatial"], config=config, ops=ops, head_mask=head_mask, request_for=request_for,
                tap=tap, name="spatial", hidden=spatial_hidden, attentions=attentions,
                reshape_maps=lambda m: m.reshape(B, nt, *m.shape[1:]))  # [B*t, n_s, D]
    if hidden is not None:
        hidden.extend(h.reshape(B, nt, *h.shape[1:]) for h in spatial_hidden)  # [B, t, n_s, D] each
    H = show(tap, ops, "spatial.pool", pool(ops.to_numpy(z), config.classifier).reshape(B, nt, -1))  # [B, t, D]
    return encoder(H, params["temporal"], config=config, ops=ops, head_mask=head_mask, request_for=request_for,
                   tap=tap, name="temporal", hidden=hidden, attentions=attentions,
                   reshape_maps=lambda m: m)  # [B, n_t, D]
