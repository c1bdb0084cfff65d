"""ViViT Models 2-4 of Arnab et al. 2021 (Section 3.3) and the Model-1 options HF lacks, as Scenic computes them.

    Model 1  spatio-temporal attention, attention_type='spacetime' (Eqs. 1-3): every token attends to every token.
             HF's VivitModel is Model 1 with classifier='token' and no representation_size, and model.py runs
             that; this module runs the rest: classifier='gap' (no CLS token: the mean of the output tokens is
             classified) and representation_size (Scenic's pre-logits dense + tanh before the head).
    Model 2  factorised encoder, 'factorized_encoder': a spatial encoder (a ViT with its own CLS token and
             positions, num_hidden_layers blocks) encodes each of the t time slices on its own; each slice's
             CLS output (or token mean) h_i makes H [t, D], which a temporal encoder (own CLS and positions,
             temporal_num_layers blocks) encodes; its CLS output (or mean) is classified.
    Model 3  factorised self-attention, 'factorized_self_attention_block' (Eqs. 4-6): in every block, LN ->
             attention over time at each location -> residual, LN -> attention over space in each slice ->
             residual (attention_order='space_time' swaps the two), then LN -> MLP -> residual.
    Model 4  factorised dot-product attention, 'factorized_dot_product_attention' (Eq. 7 and below): a Model-1
             block whose heads [0, nh/2) attend over time at the query's location and heads [nh/2, nh) over
             space in the query's slice; Y = Concat(Y_t, Y_s) W_O. (The paper writes Concat(Y_s, Y_t); Scenic,
             whose checkpoints these are, puts the time heads first.)
Models 3 and 4 have no CLS token (classifier='gap'), as in the paper and Scenic.

Attention over a subset of tokens is a reshape, then the backend's ordinary ops.attention on [B*G, n, D]: the
G groups (time slices, or locations) become batch rows. Token order is (t, h, w) everywhere, as in model.py.
Shape letters: those of minivivit/layers.py, plus
    S = h*w   tubelets in one time slice        n_s = S (+1 with a CLS token)   Model 2's spatial sequence
    R   representation_size                      n_t = t (+1 with a CLS token)   Model 2's temporal sequence
    B'  the batch rows one attention sees (clips x groups), n its tokens, h' its heads (Model 4: nh/2)

params (nested; w stored [in, out]; the Model-1 names of minivivit/weights.py wherever a part is the same):

    Model 1 (token or gap)   embed: proj {w [K, D], b [D]}, cls [D] (token only), pos [N, D] (N = P, +1 with token)
                             blocks: L x {ln1, attn {q, k, v, o}, ln2, mlp {fc1, fc2}}, norm {g, b}
    Model 2                  embed: proj {w [K, D], b [D]}
                             spatial:  cls [D] (token only), pos [n_s, D], blocks: L x {...Model 1...}, norm {g, b}
                             temporal: cls [D] (token only), pos [n_t, D], blocks: temporal_num_layers x {...}, norm
    Model 3                  embed: proj, pos [P, D];  norm {g, b}
                             blocks: L x {time {ln {g, b}, attn {q, k, v, o}}, space {ln, attn}, ln2, mlp {fc1, fc2}}
    Model 4                  the tree of Model 1 with classifier='gap' (which is why a checkpoint cannot tell them apart)
    every variant            pre_logits {w [D, R], b [R]} (only with representation_size); head {w [R or D, labels], b}

Trace names (what `tap(name, array) -> array` sees, in forward order), beyond Model 1's (minivivit/debug.py):

    Model 1 gap / repr.   as model.py, without embed.tokens when there is no CLS; then the head names below
    Model 2               embed.patches [B, P, D]
                          spatial.tokens [B*t, n_s, D] (row b*t + i: clip b, slice i; CLS first),
                          spatial.embed [B*t, n_s, D] (+ spatial.pos), spatial.blocks.i.<Model-1 block names>
                          (probs [B*t, nh, n_s, n_s]), spatial.norm [B*t, n_s, D], spatial.pool [B, t, D] (= H),
                          temporal.tokens [B, n_t, D], temporal.embed [B, n_t, D],
                          temporal.blocks.i.<block names> (probs [B, nh, n_t, n_t]), temporal.norm [B, n_t, D]
    Model 3, block i      for each of time, space in attention_order (X = time | space):
                          blocks.i.X.ln, .q, .k, .v, .context, .attn_out  [B*S, t, D] (time: row b*S + s, location s)
                                                                         [B*t, S, D] (space: row b*t + i, slice i)
                          blocks.i.X.scores, .probs   [B*S, nh, t, t] (time) or [B*t, nh, S, S] (space)
                          blocks.i.X.out [B, P, D]    the residual sum, back in (t, h, w) order
                          blocks.i.ln2, .fc1 [B, P, F], .act, .fc2, .out [B, P, D]   the MLP half, as Model 1
    Model 4, block i      blocks.i.ln1, .q, .k, .v [B, P, D];
                          blocks.i.time.scores, .probs [B*S, nh/2, t, t], blocks.i.time.context [B*S, t, D/2];
                          blocks.i.space.scores, .probs [B*t, nh/2, S, S], blocks.i.space.context [B*t, S, D/2];
                          blocks.i.context [B, P, D] (time heads' channels first), then attn_out, resid1, ln2, fc1,
                          act, fc2, out as Model 1
    every variant         final_norm [B, N, D] (not Model 2), pool [B, D] (CLS token or mean), pre_logits [B, R]
                          (with representation_size), logits [B, num_labels] (with a head)

Attention maps (ViViTOutput.attentions, one entry per attention layer; 'cls' = the CLS query's row only):

    Model 1               [B, nh, N, N]       or 'cls' [B, nh, N]        (as model.py; 'cls' needs classifier='token')
    Model 2               layers 0..L-1 are spatial:   [B, t, nh, n_s, n_s]   or 'cls' [B, t, nh, n_s]  (per slice)
                          layers L..L+Lt-1 temporal:   [B, nh, n_t, n_t]      or 'cls' [B, nh, n_t]
    Model 3               {'time': [B, S, nh, t, t] (per location s = y*w + x), 'space': [B, t, nh, S, S] (per slice)}
    Model 4               {'time': [B, S, nh/2, t, t], 'space': [B, t, nh/2, S, S]}   (time heads are heads 0..nh/2-1)

hidden_states: Models 1, 3, 4: L+1 arrays [B, N, D] (embeddings, then each block's output); Model 2: L+1 arrays
[B, t, n_s, D] of the spatial encoder, then Lt+1 arrays [B, n_t, D] of the temporal one. head_mask: [nh] or
[layers, nh] with the layers counted as in attentions (Model 2: L + Lt); in Model 3 a row masks the heads of both
attentions of its block, in Model 4 its first half masks the time heads and its second half the space heads.
"""

from __future__ import annotations

import numpy as np

from . import layers, model
from .config import ViViTConfig
from .model import ViViTOutput

TIME, SPACE = "time", "space"


# ---------------------------------------------------------------------------------------------
# Token layout: the same [B, P, D] tokens seen per time slice or per location
# ---------------------------------------------------------------------------------------------


def to_grid(x, grid):
    """[B, P, D] -> [B, t, S, D]: tokens are flattened (t, h, w), so a plain reshape splits time from space."""
    t, h, w = grid
    return x.reshape(x.shape[0], t, h * w, x.shape[-1])  # [B, t*h*w, D] -> [B, t, S, D]


def time_groups(x, grid):
    """[B, P, D] -> [B*S, t, D]: one row per (clip, location), the t tokens at that location (Scenic: axis 1)."""
    g = to_grid(x, grid)  # [B, t, S, D]
    B, t, S, D = g.shape
    return g.transpose(0, 2, 1, 3).reshape(B * S, t, D)  # [B, S, t, D] -> [B*S, t, D]


def from_time_groups(x, grid, batch):
    """[B*S, t, D] -> [B, P, D], the inverse of time_groups."""
    t, h, w = grid
    g = x.reshape(batch, h * w, t, x.shape[-1]).transpose(0, 2, 1, 3)  # [B, S, t, D] -> [B, t, S, D]
    return g.reshape(batch, t * h * w, x.shape[-1])  # [B, P, D]


def space_groups(x, grid):
    """[B, P, D] -> [B*t, S, D]: one row per (clip, time slice), the S tokens of that slice (Scenic: axis 2)."""
    g = to_grid(x, grid)  # [B, t, S, D]
    return g.reshape(-1, g.shape[2], g.shape[3])  # [B*t, S, D]


def from_space_groups(x, grid, batch):
    """[B*t, S, D] -> [B, P, D], the inverse of space_groups."""
    return x.reshape(batch, -1, x.shape[-1])  # [B, t*S, D]


def time_space_halves(x):
    """[..., D] -> (time heads' channels [..., D/2], space heads' channels [..., D/2]). Heads are stored
    head-major (channel = head*d + j, as layers.split_heads reads them), so heads [0, nh/2) are the first half."""
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


# ---------------------------------------------------------------------------------------------
# Shared pieces: tokens in, pooled representation and head out
# ---------------------------------------------------------------------------------------------


def add_cls_and_pos(tokens, cls, pos, *, tap, name):
    """[B', n, D] -> [B', n(+1), D]: prepend the CLS token (if the model has one), add the position embeddings."""
    if cls is not None:
        cls_tokens = np.broadcast_to(cls.astype(tokens.dtype), (tokens.shape[0], 1, tokens.shape[-1]))  # [B', 1, D]
        tokens = tap(f"{name}.tokens", np.concatenate([cls_tokens, tokens], axis=1))  # [B', n+1, D]
    return tap(f"{name}.out" if name == "embed" else f"{name}.embed", tokens + pos)  # [B', n', D] + [n', D]


def pool(x, classifier):
    """[..., n, D] -> [..., D]: the CLS token's output ('token'), or the mean over the tokens ('gap')."""
    return x[..., 0, :] if classifier == "token" else x.mean(axis=-2)


def head(z, params, config: ViViTConfig, *, ops, tap):
    """pooled [B, D] -> (pre_logits [B, R] or None, logits [B, num_labels] or None): Scenic's pre_logits
    (dense + tanh, with representation_size) then output_projection."""
    pre = None
    if config.representation_size is not None:
        pre = tap("pre_logits", np.tanh(ops.linear(z, params["pre_logits"]["w"], params["pre_logits"]["b"])))  # [B, R]
        z = pre
    logits = None
    if "head" in params:
        logits = tap("logits", ops.linear(z, params["head"]["w"], params["head"]["b"]))  # [B, num_labels]
    return pre, logits


def mlp_half(x, ln2, mlp, *, config: ViViTConfig, ops, tap, name):
    """z = MLP(LN(y)) + y (Eq. 3 and Eq. 6): [B', n, D] -> [B', n, D], with Model 1's trace names."""
    h = tap(f"{name}.ln2", ops.layer_norm(x, ln2["g"], ln2["b"], config.layer_norm_eps))  # [B', n, D]
    h = tap(f"{name}.fc1", ops.linear(h, mlp["fc1"]["w"], mlp["fc1"]["b"]))  # [B', n, F]
    h = tap(f"{name}.act", layers.activation(h, config.hidden_act))  # [B', n, F]
    h = tap(f"{name}.fc2", ops.linear(h, mlp["fc2"]["w"], mlp["fc2"]["b"]))  # [B', n, D]
    return tap(f"{name}.out", h + x)


def _mlp_half_fast(x, ln2, mlp, *, config: ViViTConfig, ops):
    """mlp_half without a tap: the backend's fused linear + activation."""
    h = ops.layer_norm(x, ln2["g"], ln2["b"], config.layer_norm_eps)  # [B', n, D]
    h = ops.linear_act(h, mlp["fc1"]["w"], mlp["fc1"]["b"], config.hidden_act)  # [B', n, F]
    return ops.linear(h, mlp["fc2"]["w"], mlp["fc2"]["b"], residual=x)  # [B', n, D]


# ---------------------------------------------------------------------------------------------
# Attention inside groups of tokens
# ---------------------------------------------------------------------------------------------


def grouped_attention(q, k, v, num_heads, *, ops, head_mask=None, probs=None, tap=None, name=""):
    """Eq. 7 on projected q, k, v [B', n, D'] (each row of B' a separate group): (context [B', n, D'], probs).

    Without a tap this is the backend's ops.attention; with one, the explicit scores -> softmax -> context path,
    so that scores, probs and context get names (as model.self_attention does for Model 1)."""
    if tap is None:
        return ops.attention(np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v),
                             num_heads, head_mask, probs)  # [B', n, D']
    qh, kh, vh = (layers.split_heads(np.ascontiguousarray(a), num_heads) for a in (q, k, v))  # [B', h', n, d]
    scores = tap(f"{name}.scores", layers.attention_scores(qh, kh))  # [B', h', n, n]
    p = layers.softmax(scores)  # [B', h', n, n]
    if head_mask is not None:
        p = p * head_mask[None, :, None, None].astype(p.dtype)
    p = tap(f"{name}.probs", p)
    context = tap(f"{name}.context", layers.merge_heads(p @ vh))  # [B', h', n, d] -> [B', n, D']
    return context, {None: None, "full": p, "cls": None if probs != "cls" else p[:, :, 0, :]}[probs]


def factorized_self_attention_block(x, time, space, ln2, mlp, *, config: ViViTConfig, ops, grid, head_mask=None,
                                    probs=None, tap=None, name=""):
    """Model 3's block (Eqs. 4-6), x [B, P, D] -> ([B, P, D], {'time': maps, 'space': maps} or None).

    Each attention is y = MSA(LN(z)) + z inside groups: time at each of the S locations ([B*S, t, D]), space in
    each of the t slices ([B*t, S, D]); config.attention_order says which comes first (the paper's Eqs. 4-5
    write space first; Scenic's default is time_space). Then the MLP (Eq. 6)."""
    t = tap or model._no_tap
    B = x.shape[0]
    maps = {}
    for axis in config.attention_order.split("_"):  # "time_space" -> time, then space
        p = time if axis == TIME else space
        groups, back = (time_groups, from_time_groups) if axis == TIME else (space_groups, from_space_groups)
        z = groups(x, grid)  # [B*S, t, D] (time) or [B*t, S, D] (space)
        h = t(f"{name}.{axis}.ln", ops.layer_norm(z, p["ln"]["g"], p["ln"]["b"], config.layer_norm_eps))  # as z
        a, m = model.self_attention(h, **p["attn"], num_heads=config.num_attention_heads, ops=ops,
                                    head_mask=head_mask, probs=probs, tap=tap, name=f"{name}.{axis}")
        y = t(f"{name}.{axis}.attn_out", a) + z  # the residual, inside the groups
        x = t(f"{name}.{axis}.out", back(y, grid, B))  # [B, P, D]
        maps[axis] = m
    if tap is None:
        x = _mlp_half_fast(x, ln2, mlp, config=config, ops=ops)
    else:
        x = mlp_half(x, ln2, mlp, config=config, ops=ops, tap=t, name=name)
    return x, (_group_maps(maps, grid, B) if probs else None)


def factorized_dot_product_attention(x, q, k, v, o, *, num_heads, ops, grid, head_mask=None, probs=None, tap=None,
                                     name=""):
    """Model 4's attention: [B, P, D] -> ([B, P, D], {'time': maps, 'space': maps} or None).

    Q, K, V are projected once, as in Model 1. Heads [0, nh/2) attend over time (keys and values K_t, V_t at the
    query's location), heads [nh/2, nh) over space (K_s, V_s of the query's slice); Y = Concat(Y_t, Y_s) W_O."""
    t = tap or model._no_tap
    B = x.shape[0]
    q_ = t(f"{name}.q", ops.linear(x, q["w"], q.get("b")))  # [B, P, D]
    k_ = t(f"{name}.k", ops.linear(x, k["w"], k.get("b")))  # [B, P, D]
    v_ = t(f"{name}.v", ops.linear(x, v["w"], v.get("b")))  # [B, P, D]
    (qt, qs), (kt, ks), (vt, vs) = (time_space_halves(a) for a in (q_, k_, v_))  # [B, P, D/2] each
    half = num_heads // 2
    mt, ms = (None, None) if head_mask is None else (head_mask[:half], head_mask[half:])
    ct, pt = grouped_attention(time_groups(qt, grid), time_groups(kt, grid), time_groups(vt, grid), half, ops=ops,
                               head_mask=mt, probs=probs, tap=tap, name=f"{name}.time")  # [B*S, t, D/2]
    cs, ps = grouped_attention(space_groups(qs, grid), space_groups(ks, grid), space_groups(vs, grid), half, ops=ops,
                               head_mask=ms, probs=probs, tap=tap, name=f"{name}.space")  # [B*t, S, D/2]
    context = np.concatenate([from_time_groups(ct, grid, B), from_space_groups(cs, grid, B)], axis=-1)  # [B, P, D]
    context = t(f"{name}.context", context)
    maps = _group_maps({TIME: pt, SPACE: ps}, grid, B) if probs else None
    return ops.linear(context, o["w"], o["b"]), maps  # [B, P, D]


def factorized_dot_product_block(x, ln1, attn, ln2, mlp, *, config: ViViTConfig, ops, grid, head_mask=None,
                                 probs=None, tap=None, name=""):
    """Model 4's block: Eqs. 2-3 with factorized_dot_product_attention as the MSA. [B, P, D] -> [B, P, D]."""
    t = tap or model._no_tap
    h = t(f"{name}.ln1", ops.layer_norm(x, ln1["g"], ln1["b"], config.layer_norm_eps))  # [B, P, D]
    a, maps = factorized_dot_product_attention(h, **attn, num_heads=config.num_attention_heads, ops=ops, grid=grid,
                                               head_mask=head_mask, probs=probs, tap=tap, name=name)  # [B, P, D]
    x = t(f"{name}.resid1", t(f"{name}.attn_out", a) + x)  # residual 1
    if tap is None:
        return _mlp_half_fast(x, ln2, mlp, config=config, ops=ops), maps
    return mlp_half(x, ln2, mlp, config=config, ops=ops, tap=t, name=name), maps


def _group_maps(maps, grid, batch):
    """Per-group maps [B*G, h', n, n] -> [B, G, h', n, n] ('cls' maps never occur: Models 3/4 have no CLS)."""
    return {axis: None if m is None else m.reshape(batch, -1, *m.shape[1:]) for axis, m in maps.items()}


# ---------------------------------------------------------------------------------------------
# Model 2: two encoders in series
# ---------------------------------------------------------------------------------------------


def encoder(x, enc, *, config: ViViTConfig, ops, head_mask, probs_for, tap, name, hidden, attentions, reshape_maps):
    """One of Model 2's encoders: + CLS, + positions, its blocks, its LayerNorm. [B', n, D] -> [B', n', D]."""
    t = tap or model._no_tap
    x = add_cls_and_pos(x, enc.get("cls"), enc["pos"], tap=t, name=name)  # [B', n', D]
    if hidden is not None:
        hidden.append(x)
    for i, block in enumerate(enc["blocks"]):
        layer = len(attentions)
        x, p = model.encoder_block(x, **block, config=config, ops=ops,
                                   head_mask=None if head_mask is None else head_mask[layer], probs=probs_for(layer),
                                   tap=tap, name=f"{name}.blocks.{i}")  # [B', n', D]
        if hidden is not None:  # otherwise do not keep every block's output alive
            hidden.append(x)
        attentions.append(None if p is None else reshape_maps(p))
    return t(f"{name}.norm", ops.layer_norm(x, enc["norm"]["g"], enc["norm"]["b"], config.layer_norm_eps))


def factorized_encoder(x, params, config: ViViTConfig, *, ops, head_mask, probs_for, tap, hidden, attentions):
    """Model 2 (Fig. 4): pixel_values [B, T, C, H, W] -> temporal encoder output [B, n_t, D] after its LayerNorm."""
    t = tap or model._no_tap
    B = x.shape[0]
    nt = config.grid[0]  # time slices
    e = params["embed"]
    patches = t("embed.patches", ops.tubelet_embed(x, e["proj"]["w"], e["proj"]["b"], config.tubelet_size))  # [B, P, D]
    slices = space_groups(patches, config.grid)  # [B*t, S, D]: each time slice is an image for the spatial ViT
    spatial_hidden = None if hidden is None else []
    z = encoder(slices, params["spatial"], config=config, ops=ops, head_mask=head_mask, probs_for=probs_for, tap=tap,
                name="spatial", hidden=spatial_hidden, attentions=attentions,
                reshape_maps=lambda p: p.reshape(B, nt, *p.shape[1:]))  # [B*t, n_s, D]
    if hidden is not None:
        hidden.extend(h.reshape(B, nt, *h.shape[1:]) for h in spatial_hidden)  # [B, t, n_s, D] each
    H = t("spatial.pool", pool(z, config.classifier).reshape(B, nt, -1))  # h_i of each slice: [B*t, D] -> [B, t, D]
    return encoder(H, params["temporal"], config=config, ops=ops, head_mask=head_mask, probs_for=probs_for, tap=tap,
                   name="temporal", hidden=hidden, attentions=attentions, reshape_maps=lambda p: p)  # [B, n_t, D]


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def num_attention_layers(config: ViViTConfig) -> int:
    """Entries of ViViTOutput.attentions (and rows of head_mask): L, or L + temporal_num_layers for Model 2."""
    L = config.num_hidden_layers
    return L + config.temporal_num_layers if config.attention_type == "factorized_encoder" else L


def forward(params: dict, config: ViViTConfig, pixel_values, *, ops, output_attentions=None, attention_layers=None,
            head_mask=None, output_hidden_states: bool = False, tap=None, attention_dtype=None) -> ViViTOutput:
    """Run any variant on pixel_values [B, T, C, H, W]; see the module docstring for shapes and names.

    ops: a backend module (minivivit.kernels.get_backend(name)). output_attentions: None/False, True/'full' or
    'cls'; attention_layers: which attention layers to keep maps for (None: all); attention_dtype: e.g.
    np.float16 to store the maps smaller (as model.vivit_forward)."""
    dtype = params["embed"]["proj"]["w"].dtype
    x = model._check_pixel_values(pixel_values, config, False, dtype)  # [B, T, C, H, W]
    kind = {None: None, False: None, True: "full", "full": "full", "cls": "cls"}.get(output_attentions, "?")
    if kind == "?":
        raise ValueError(f"output_attentions must be None, False, True, 'full' or 'cls'; got {output_attentions!r}")
    if kind == "cls" and config.classifier != "token":
        raise ValueError("output_attentions='cls' needs a CLS token, and this model has classifier='gap'; "
                         "pass output_attentions='full'")
    n_layers = num_attention_layers(config)
    keep = model._attention_layer_set(attention_layers, n_layers)
    head_mask = _check_head_mask(head_mask, config, n_layers, dtype)
    t = tap or model._no_tap
    hidden, attentions = ([] if output_hidden_states else None), []

    if config.attention_type == "factorized_encoder":
        x = factorized_encoder(x, params, config, ops=ops, head_mask=head_mask,
                               probs_for=lambda i: kind if i in keep else None, tap=tap, hidden=hidden,
                               attentions=attentions)  # [B, n_t, D]
    else:
        e = params["embed"]
        patches = t("embed.patches", ops.tubelet_embed(x, e["proj"]["w"], e["proj"]["b"], config.tubelet_size))
        x = add_cls_and_pos(patches, e.get("cls"), e["pos"], tap=t, name="embed")  # [B, N, D]
        if hidden is not None:
            hidden.append(x)
        block_fn = {"spacetime": model.encoder_block,
                    "factorized_self_attention_block": factorized_self_attention_block,
                    "factorized_dot_product_attention": factorized_dot_product_block}[config.attention_type]
        extra = {} if config.attention_type == "spacetime" else {"grid": config.grid}
        for i, block in enumerate(params["blocks"]):
            x, p = block_fn(x, **block, config=config, ops=ops, head_mask=None if head_mask is None else head_mask[i],
                            probs=kind if i in keep else None, tap=tap, name=f"blocks.{i}", **extra)  # [B, N, D]
            if hidden is not None:
                hidden.append(x)
            attentions.append(p)
        n = params["norm"]
        x = t("final_norm", ops.layer_norm(x, n["g"], n["b"], config.layer_norm_eps))  # [B, N, D]

    z = t("pool", pool(x, config.classifier))  # [B, D]
    pre, logits = head(z, params, config, ops=ops, tap=t)
    if kind and attention_dtype is not None:
        attentions = [_cast_maps(a, attention_dtype) for a in attentions]
    return ViViTOutput(
        logits=logits,
        last_hidden_state=x,
        pooler_output=pre,
        hidden_states=tuple(hidden) if hidden is not None else None,
        attentions=tuple(attentions) if kind else None,
    )


def _cast_maps(a, dtype):
    if a is None:
        return None
    return {k: None if m is None else m.astype(dtype) for k, m in a.items()} if isinstance(a, dict) else a.astype(dtype)


def attention_shapes(config: ViViTConfig, batch: int, mode: str = "full") -> list:
    """The shape of every entry of ViViTOutput.attentions (a dict of two shapes for Models 3 and 4), from the
    config alone: what a capture costs before running it (bytes = sum of the sizes x itemsize)."""
    if mode not in ("full", "cls"):
        raise ValueError(f"mode must be 'full' or 'cls'; got {mode!r}")
    if mode == "cls" and config.classifier != "token":
        raise ValueError("mode='cls' needs a CLS token, and this model has classifier='gap'; use mode='full'")
    B, nh, L = batch, config.num_attention_heads, config.num_hidden_layers
    t, h, w = config.grid
    S, token = h * w, int(config.classifier == "token")
    cls = mode == "cls"
    if config.attention_type == "spacetime":
        N = t * S + token
        return [(B, nh, N) if cls else (B, nh, N, N)] * L
    if config.attention_type == "factorized_encoder":
        n_s, n_t = S + token, t + token
        spatial = (B, t, nh, n_s) if cls else (B, t, nh, n_s, n_s)
        return [spatial] * L + [(B, nh, n_t) if cls else (B, nh, n_t, n_t)] * config.temporal_num_layers
    heads = nh if config.attention_type == "factorized_self_attention_block" else nh // 2
    return [{TIME: (B, S, heads, t, t), SPACE: (B, t, heads, S, S)}] * L


def _check_head_mask(head_mask, config: ViViTConfig, n_layers: int, dtype):
    """Accept [nh] (every layer) or [layers, nh]; return [layers, nh] or None."""
    if head_mask is None:
        return None
    m = np.asarray(head_mask, dtype=dtype)
    nh = config.num_attention_heads
    if m.shape == (nh,):
        m = np.broadcast_to(m, (n_layers, nh))
    if m.shape != (n_layers, nh):
        what = " (spatial then temporal layers)" if config.attention_type == "factorized_encoder" else ""
        raise ValueError(f"head_mask must have shape ({nh},) or ({n_layers}, {nh}) (layers{what}, heads); "
                         f"got {m.shape}")
    return m


# ---------------------------------------------------------------------------------------------
# The parameter tree of each variant (weights.expected_shapes calls this for every non-HF config)
# ---------------------------------------------------------------------------------------------


def _attention_shapes(config: ViViTConfig, prefix: str) -> dict[str, tuple]:
    D = config.hidden_size
    shapes = {}
    for name in ("q", "k", "v", "o"):
        shapes[f"{prefix}.{name}.w"] = (D, D)
        if name == "o" or config.qkv_bias:
            shapes[f"{prefix}.{name}.b"] = (D,)
    return shapes


def _block_shapes(config: ViViTConfig, prefix: str) -> dict[str, tuple]:
    """One block's keys under prefix ('blocks.3', 'temporal.blocks.0'): Model 1's block, or Model 3's."""
    D, F = config.hidden_size, config.intermediate_size
    if config.attention_type == "factorized_self_attention_block":
        norms = [f"{prefix}.time.ln", f"{prefix}.space.ln", f"{prefix}.ln2"]
        shapes = {**_attention_shapes(config, f"{prefix}.time.attn"), **_attention_shapes(config, f"{prefix}.space.attn")}
    else:
        norms = [f"{prefix}.ln1", f"{prefix}.ln2"]
        shapes = _attention_shapes(config, f"{prefix}.attn")
    for n in norms:
        shapes[f"{n}.g"] = shapes[f"{n}.b"] = (D,)
    shapes.update({f"{prefix}.mlp.fc1.w": (D, F), f"{prefix}.mlp.fc1.b": (F,),
                   f"{prefix}.mlp.fc2.w": (F, D), f"{prefix}.mlp.fc2.b": (D,)})
    return shapes


def expected_shapes(config: ViViTConfig, head: bool = True) -> dict[str, tuple]:
    """Every flat key (weights.flatten_params spelling) a model of this config has, with its shape."""
    D = config.hidden_size
    tt, ph, pw = config.tubelet_size
    token = config.classifier == "token"
    shapes = {"embed.proj.w": (tt * ph * pw * config.num_channels, D), "embed.proj.b": (D,)}
    if config.attention_type == "factorized_encoder":
        t, h, w = config.grid
        for enc, n, L in (("spatial", h * w, config.num_hidden_layers), ("temporal", t, config.temporal_num_layers)):
            if token:
                shapes[f"{enc}.cls"] = (D,)
            shapes[f"{enc}.pos"] = (n + token, D)
            for i in range(L):
                shapes.update(_block_shapes(config, f"{enc}.blocks.{i}"))
            shapes[f"{enc}.norm.g"] = shapes[f"{enc}.norm.b"] = (D,)
    else:
        if token:
            shapes["embed.cls"] = (D,)
        shapes["embed.pos"] = (config.num_patches + token, D)
        for i in range(config.num_hidden_layers):
            shapes.update(_block_shapes(config, f"blocks.{i}"))
        shapes["norm.g"] = shapes["norm.b"] = (D,)
    width = D
    if config.representation_size is not None:
        width = config.representation_size
        shapes.update({"pre_logits.w": (D, width), "pre_logits.b": (width,)})
    if head:
        shapes.update({"head.w": (width, config.num_labels), "head.b": (config.num_labels,)})
    return shapes


def trace_names(config: ViViTConfig, head: bool = True) -> list[str]:
    """Every name `tap` sees for this config, in forward order (the module docstring gives the shapes)."""
    token = config.classifier == "token"
    block1 = ["ln1", "q", "k", "v", "scores", "probs", "context", "attn_out", "resid1"]
    mlp = ["ln2", "fc1", "act", "fc2", "out"]
    if config.attention_type == "factorized_self_attention_block":
        attn = [f"{axis}.{n}" for axis in config.attention_order.split("_")
                for n in ("ln", "q", "k", "v", "scores", "probs", "context", "attn_out", "out")]
        block = attn + mlp
    elif config.attention_type == "factorized_dot_product_attention":
        block = ["ln1", "q", "k", "v", "time.scores", "time.probs", "time.context", "space.scores", "space.probs",
                 "space.context", "context", "attn_out", "resid1"] + mlp
    else:
        block = block1 + mlp
    names = ["embed.patches"]
    if config.attention_type == "factorized_encoder":
        for enc, L in (("spatial", config.num_hidden_layers), ("temporal", config.temporal_num_layers)):
            names += [f"{enc}.tokens"] * token + [f"{enc}.embed"]
            names += [f"{enc}.blocks.{i}.{n}" for i in range(L) for n in block]
            names += [f"{enc}.norm"] + ["spatial.pool"] * (enc == "spatial")
    else:
        names += ["embed.tokens"] * token + ["embed.out"]
        names += [f"blocks.{i}.{n}" for i in range(config.num_hidden_layers) for n in block]
        names += ["final_norm"]
    names += ["pool"] + ["pre_logits"] * (config.representation_size is not None) + ["logits"] * head
    return names
