"""Backward through one encoder block, from the intermediates of a re-run of model.encoder_block.

The block (model.encoder_block; dropout sites as in grad/dropout.py):

    ln1 = LN1(x);  q, k, v = ln1 @ Wq, Wk, Wv (+ b);  context = attention(q, k, v)
    attn_out = drop(context @ Wo + bo);  resid1 = x + attn_out
    ln2 = LN2(resid1);  fc1 = ln2 @ W1 + b1;  act = drop(f(fc1));  fc2 = drop(act @ W2 + b2)
    out = resid1 + fc2

read bottom-up by encoder_block_backward. A residual connection copies its gradient to both branches,
so dL/dresid1 = dL/dout + (the MLP branch's LN2 backward), and dL/dx = dL/dresid1 + (the attention
branch's LN1 backward).
"""

from __future__ import annotations

from ..config import ViViTConfig
from .dropout import Dropout, dropout_backward
from .fast import backward_ops
from .layers import linear_backward

# What the backward reads from a re-run of the block (trace names without the "blocks.i." prefix)
SAVED = ("ln1", "q", "k", "v", "context", "resid1", "ln2", "fc1", "act")


class BlockRecorder:
    """The tap for re-running block i: applies the same dropout as the first forward (masks redrawn
    from their seeds) and keeps the intermediates in SAVED. Attention maps are not wanted (the
    backward recomputes them head by head) unless attention dropout has to act on them."""

    def __init__(self, dropout: Dropout | None):
        self.dropout = dropout
        self.saved = {}

    def wants(self, name: str) -> bool:
        if name.endswith((".scores", ".probs")):
            return self.dropout is not None and self.dropout.wants(name)
        return True

    def __call__(self, name, x):
        if self.dropout is not None:
            x = self.dropout(name, x)
        short = name.rsplit(".", 1)[-1]
        if short in SAVED:
            self.saved[short] = x
        return x


class ContextKeeper:
    """A tap for the first forward that keeps each block's attention context [B, N, D] (one array per
    block, 9.6 MB for a ViViT-B clip), so that rerun_block need not recompute attention."""

    def __init__(self):
        self.contexts = {}  # block name ("blocks.i") -> context

    def wants(self, name: str) -> bool:
        return name.endswith(".context")

    def __call__(self, name, x):
        self.contexts[name.rsplit(".", 1)[0]] = x
        return x


def rerun_block(x, context, ln1, attn, ln2, mlp, *, config: ViViTConfig, ops) -> dict:
    """What BlockRecorder taps from a re-run of model.encoder_block on x (the SAVED names), given the
    block's attention context from the first forward: the attention itself (a third of a ViViT-B block's
    forward) and fc2 (not read by the backward) are not recomputed. Eval mode only (no dropout)."""
    eps, lin = config.layer_norm_eps, ops.linear
    h = ops.layer_norm(x, ln1["g"], ln1["b"], eps)  # [B, N, D]
    q, k, v = (lin(h, attn[n]["w"], attn[n].get("b")) for n in "qkv")  # [B, N, D] each
    resid1 = ops.add(x, lin(context, attn["o"]["w"], attn["o"]["b"]))  # [B, N, D]
    ln2_ = ops.layer_norm(resid1, ln2["g"], ln2["b"], eps)  # [B, N, D]
    fc1 = lin(ln2_, mlp["fc1"]["w"], mlp["fc1"]["b"])  # [B, N, F]
    act = ops.activation(fc1, config.hidden_act)  # [B, N, F]
    return {"ln1": h, "q": q, "k": k, "v": v, "context": context, "resid1": resid1, "ln2": ln2_, "fc1": fc1,
            "act": act}


def encoder_block_backward(dout, x, saved, ln1, attn, ln2, mlp, *, config: ViViTConfig, head_mask=None,
                           dropout: Dropout | None = None, name="", on_probs=None, backend="numpy"):
    """dL/dout [B, N, D] -> (dL/dx [B, N, D], grads with the block's params nesting).

    x: the block's input; saved: BlockRecorder.saved of a re-run on x (consumed: entries are popped so
    that memory is freed as the backward goes); head_mask: [nh] or None; on_probs: see attention_backward. backend: "numba" runs LayerNorm, activation and
    attention backward on the numba kernels (grad/fast.py; NumPy twins where a kernel does not apply).
    """
    missing = [n for n in SAVED if n not in saved]
    if missing:
        raise RuntimeError(f"the re-run of {name or 'the block'} did not tap {missing}: the backward reads "
                           f"{list(SAVED)} from model.encoder_block's tap (see minivivit.debug's trace names)")
    s, eps, ops = saved, config.layer_norm_eps, backward_ops(backend)
    # MLP branch: out = resid1 + drop(drop(f(fc1)) @ W2 + b2)
    d = dropout_backward(dout, dropout, f"{name}.fc2")  # [B, N, D]
    d, dw2, db2 = linear_backward(d, s.pop("act"), mlp["fc2"]["w"])  # [B, N, D] -> [B, N, F]
    d = dropout_backward(d, dropout, f"{name}.act")  # [B, N, F]
    d = ops.activation_backward(d, s.pop("fc1"), config.hidden_act)  # [B, N, F]
    d, dw1, db1 = linear_backward(d, s.pop("ln2"), mlp["fc1"]["w"])  # [B, N, F] -> [B, N, D]
    d, dg2, dbeta2 = ops.layer_norm_backward(d, s.pop("resid1"), ln2["g"], eps)  # [B, N, D]
    dresid = d + dout  # both branches of residual 2
    # attention branch: resid1 = x + drop(context @ Wo + bo)
    d = dropout_backward(dresid, dropout, f"{name}.attn_out")  # [B, N, D]
    context = s.pop("context")  # [B, N, D]
    d, dwo, dbo = linear_backward(d, context, attn["o"]["w"])  # [B, N, D]
    q, k, v = s.pop("q"), s.pop("k"), s.pop("v")
    drop_h = None if dropout is None else dropout.attention_multiplier(f"{name}.probs", (q.shape[0], q.shape[1],
                                                                                         q.shape[1]), q.dtype)
    dqkv = ops.attention_backward(d, q, k, v, config.num_attention_heads, head_mask, drop_h, on_probs,
                                  context=context)  # 3 x [B, N, D]
    del q, k, v, context
    h = s.pop("ln1")
    dh, grads_attn = 0.0, {}
    for key, dproj in zip("qkv", dqkv):
        dh_, dw, db = linear_backward(dproj, h, attn[key]["w"], bias="b" in attn[key])  # [B, N, D]
        dh = dh + dh_
        grads_attn[key] = {"w": dw, **({"b": db} if db is not None else {})}
    del dqkv, h
    grads_attn["o"] = {"w": dwo, "b": dbo}
    dx, dg1, dbeta1 = ops.layer_norm_backward(dh, x, ln1["g"], eps)  # [B, N, D]
    dx = dx + dresid  # both branches of residual 1
    grads = {
        "ln1": {"g": dg1, "b": dbeta1},
        "attn": grads_attn,
        "ln2": {"g": dg2, "b": dbeta2},
        "mlp": {"fc1": {"w": dw1, "b": db1}, "fc2": {"w": dw2, "b": db2}},
    }
    return dx, grads
