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

Attention over a subset of tokens is a reshape (layout.py), then the ordinary blocks.attention_heads on
[B*G, n, D]: the G groups (time slices, or locations) become batch rows. Token order is (t, h, w) everywhere,
as in model.py (minivivit/tokens.py). Built from the blocks of minivivit/blocks.py, written in the backend's
ops, so every backend runs every variant (cuda op by op: the reshapes between groups run on the host).
Files: layout.py (token groups), blocks.py (Models 2-4's blocks and heads), params.py (parameter shapes,
trace names, map shapes), and forward() below.
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

Trace names (what a tap sees, in forward order), beyond Model 1's (minivivit/model.py):

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

from ..blocks import NO_TAP, ViViTOutput, encoder_block, show
from ..config import ViViTConfig
from ..inputs import (
    attention_layer_set,
    attention_request,
    attention_storage_dtype,
    cast_pixel_values,
    check_pixel_values,
)
from . import layout
from .blocks import (
    add_cls_and_pos,
    factorized_dot_product_block,
    factorized_encoder,
    factorized_self_attention_block,
    head,
    pool,
)
from .params import attention_shapes, check_head_mask, expected_shapes, num_attention_layers, trace_names

__all__ = ["attention_shapes", "expected_shapes", "forward", "layout", "num_attention_layers", "trace_names"]


def forward(params: dict, config: ViViTConfig, pixel_values, *, ops, output_attentions=None, attention_layers=None,
            head_mask=None, output_hidden_states: bool = False, tap=NO_TAP, attention_dtype=None) -> ViViTOutput:
    """Run any variant on pixel_values [B, T, C, H, W]; see the module docstring for shapes and names.

    ops: a backend module (minivivit.kernels.get_backend(name)); the other arguments as model.vivit_forward's
    (model.vivit_forward calls this for every config that is not HF's Model 1)."""
    dtype = params["embed"]["proj"]["w"].dtype
    x = cast_pixel_values(check_pixel_values(pixel_values, config, False), dtype)  # [B, T, C, H, W]
    attention_dtype = attention_storage_dtype(attention_dtype)  # None or a float dtype
    request = attention_request(output_attentions)  # None | "full" | "cls"
    if request == "cls" and config.classifier != "token":
        raise ValueError("output_attentions='cls' needs a CLS token, and this model has classifier='gap'; "
                         "pass output_attentions='full'")
    n_layers = num_attention_layers(config)
    keep = attention_layer_set(attention_layers, n_layers)
    head_mask = check_head_mask(head_mask, config, n_layers, dtype)  # [layers, nh] or None
    tap = tap or NO_TAP
    hidden, attentions = ([] if output_hidden_states else None), []

    if config.attention_type == "factorized_encoder":  # Model 2
        x = factorized_encoder(x, params, config, ops=ops, head_mask=head_mask,
                               request_for=lambda i: request if i in keep else None, tap=tap, hidden=hidden,
                               attentions=attentions)  # [B, n_t, D]
    else:  # Models 1 (gap / representation_size), 3 and 4: one sequence of P (+1) tokens
        e = params["embed"]
        patches = show(tap, ops, "embed.patches",
                       ops.tubelet_embed(x, e["proj"]["w"], e["proj"]["b"], config.tubelet_size))  # [B, P, D]
        x = add_cls_and_pos(patches, e.get("cls"), e["pos"], ops=ops, tap=tap, name="embed")  # [B, N, D]
        if hidden is not None:
            hidden.append(ops.to_numpy(x))
        block_fn = {"spacetime": encoder_block,
                    "factorized_self_attention_block": factorized_self_attention_block,
                    "factorized_dot_product_attention": factorized_dot_product_block}[config.attention_type]
        extra = {} if config.attention_type == "spacetime" else {"grid": config.grid}
        for i, block in enumerate(params["blocks"]):
            mask = None if head_mask is None else head_mask[i]  # [nh]
            x, maps = block_fn(x, **block, config=config, ops=ops, head_mask=mask,
                               output_attentions=request if i in keep else None, tap=tap, name=f"blocks.{i}",
                               **extra)  # [B, N, D]
            if hidden is not None:
                hidden.append(ops.to_numpy(x))
            attentions.append(maps)
        n = params["norm"]
        x = show(tap, ops, "final_norm", ops.layer_norm(x, n["g"], n["b"], config.layer_norm_eps))  # [B, N, D]

    x = ops.to_numpy(x)
    z = show(tap, ops, "pool", pool(x, config.classifier))  # [B, D]
    pre, logits = head(z, params, config, ops=ops, tap=tap)
    return ViViTOutput(
        logits=None if logits is None else ops.to_numpy(logits),
        last_hidden_state=x,
        pooler_output=None if pre is None else ops.to_numpy(pre),
        hidden_states=tuple(hidden) if hidden is not None else None,
        attentions=tuple(_as_numpy(a, ops, attention_dtype) for a in attentions) if request else None,
    )


def _as_numpy(maps, ops, dtype):
    """One layer's maps (an array, a {'time', 'space'} dict of arrays, or None) as NumPy, cast to dtype if given."""
    if maps is None:
        return None
    if isinstance(maps, dict):
        return {k: _as_numpy(m, ops, dtype) for k, m in maps.items()}
    m = ops.to_numpy(maps)
    return m if dtype is None else m.astype(dtype)
