"""Transformer attribution (Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization",
CVPR 2021): LRP relevance of each attention map, weighted by the map's gradient, rolled out.

Letters as in minivivit/layers.py. Relevance R starts as the one-hot of the target class at the logits and is
propagated down with these rules (the authors' code, alpha = 1, beta = 0; eps = 1e-9 in every division):

    linear y = x W (+ b)   z+ rule:  Z = x+ W+ + x- W-;  R_x = x+ (R/Z W+^T) + x- (R/Z W-^T)   (bias ignored)
    matmul Z = A B         R_A = A (R/Z B^T),  R_B = B (A^T R/Z), each halved (two operands)
    residual Z = a + b     R_a = a R/Z, R_b = b R/Z, then rescaled so that |sum R_a| : |sum R_b| is kept and
                           sum R_a + sum R_b = sum R
    branch x -> (x, x)     R_x = R_1 + R_2;   LayerNorm, GELU, softmax: R passes through unchanged
    CLS pooling            R is zero on every token but CLS

In each block the rule for O = A V gives the relevance of the attention map, R^A_l [nh, N, N] (before the
softmax's pass-through). Then, with dA_l = d logit_target / dA_l:

    Abar_l = mean_h (dA_l * R^A_l)^+,   C = (I + Abar_{L-1}) ... (I + Abar_0),   explanation = C[0, 1:]

as GAE (relevance.py) with R^A in place of A. Streamed the same way: the LRP of block l runs when the backward
reaches layer l, head by head as the backward's heads arrive, so one head's R^A [B, N, N] is alive at a time and
the CLS row is a vector.
"""

from __future__ import annotations

import numpy as np

from ..grad import backward
from ..kernels import get_backend
from ..layers import layer_norm, merge_heads, softmax_, split_heads
from ..model import encoder_block
from .relevance import logit_objective, require_model_1

EPS = 1e-9


def safe_divide(a, b):
    """a / (b + eps), and 0 where b == 0 (the authors' safe_divide)."""
    den = b + EPS
    den = np.where(den == 0, EPS, den)
    return np.where(b != 0, a / den, 0.0)


def linear_relprop(R, x, w):
    """z+ rule through y = x @ w: R [..., out], x [..., in], w [in, out] -> R_x [..., in]."""
    pw, nw = np.maximum(w, 0), np.minimum(w, 0)
    px, nx = np.maximum(x, 0), np.minimum(x, 0)
    s = safe_divide(R, px @ pw + nx @ nw)  # [..., out]
    return px * (s @ pw.T) + nx * (s @ nw.T)


def matmul_relprop(R, a, b):
    """Through Z = a @ b (the last two axes): -> (R_a, R_b), each halved."""
    s = safe_divide(R, a @ b)
    return a * (s @ b.swapaxes(-1, -2)) / 2, b * (a.swapaxes(-1, -2) @ s) / 2


def add_relprop(R, a, b):
    """Through Z = a + b, per clip (axis 0): -> (R_a, R_b) with the sums rescaled as in the module docstring."""
    s = safe_divide(R, a + b)
    ra, rb = a * s, b * s
    axes = tuple(range(1, R.ndim))
    sa, sb, sr = ra.sum(axes, keepdims=True), rb.sum(axes, keepdims=True), R.sum(axes, keepdims=True)
    fa = safe_divide(np.abs(sa), np.abs(sa) + np.abs(sb)) * sr
    fb = safe_divide(np.abs(sb), np.abs(sa) + np.abs(sb)) * sr
    return ra * safe_divide(fa, sa), rb * safe_divide(fb, sb)


def clone_relprop(x, *Rs):
    """A tensor used by several branches: R_x = x * sum_i R_i / x (= sum_i R_i where x != 0)."""
    return x * sum(safe_divide(r, x) for r in Rs)


class _Keep:
    """A tap that keeps every named intermediate of a block re-run (no attention maps)."""

    def __init__(self):
        self.saved = {}

    def wants(self, name):
        return not name.endswith((".scores", ".probs"))

    def __call__(self, name, x):
        self.saved[name.rsplit(".", 1)[-1]] = x
        return x


def block_relprop_top(R, x, block, config, ops) -> dict:
    """LRP through the top of encoder block l (input x [B, N, D], R at its output [B, N, D]) down to the
    attention's context: MLP, residuals, output projection. Returns the state the per-head step and
    block_relprop_bottom read."""
    tap = _Keep()
    encoder_block(x, **block, config=config, ops=ops, tap=tap, name="b")
    s, nh = tap.saved, config.num_attention_heads
    # residual 2 and the MLP: out = resid1 + fc2(act(fc1(ln2)))
    r_res, r_mlp = add_relprop(R, s["resid1"], s["fc2"])
    r = linear_relprop(r_mlp, s["act"], block["mlp"]["fc2"]["w"])  # [B, N, F]
    r = linear_relprop(r, s["ln2"], block["mlp"]["fc1"]["w"])  # [B, N, D] (GELU, LN2: passed through)
    R = clone_relprop(s["resid1"], r_res, r)
    # residual 1 and attention: resid1 = x + o(context)
    r_x, r_attn = add_relprop(R, x, s["attn_out"])
    r_ctx = split_heads(linear_relprop(r_attn, s["context"], block["attn"]["o"]["w"]), nh)  # [B, nh, N, d]
    qh, kh, vh = (split_heads(s[n], nh) for n in "qkv")  # [B, nh, N, d]
    return {"x": x, "ln1": s["ln1"], "attn": block["attn"], "r_x": r_x, "r_ctx": r_ctx, "q": qh, "k": kh, "v": vh,
            "rq": np.zeros(qh.shape, r_ctx.dtype), "rk": np.zeros(qh.shape, r_ctx.dtype),
            "rv": np.zeros(qh.shape, r_ctx.dtype)}


def head_relprop(st: dict, h: int):
    """Head h of the attention: O = A V, then Q K^T (the softmax passed through). Returns R^A_h [B, N, N] and
    fills head h of the relevance at q, k, v."""
    q, k, v = st["q"][:, h], st["k"][:, h], st["v"][:, h]  # [B, N, d]
    a = softmax_((q @ k.swapaxes(-1, -2)) * q.shape[-1] ** -0.5)  # [B, N, N], recomputed
    ra, st["rv"][:, h] = matmul_relprop(st["r_ctx"][:, h], a, v)  # [B, N, N], [B, N, d]
    st["rq"][:, h], rkt = matmul_relprop(ra, q, k.swapaxes(-1, -2))  # [B, N, d], [B, d, N]
    st["rk"][:, h] = rkt.swapaxes(-1, -2)
    return ra


def block_relprop_bottom(st: dict):
    """From the relevance at q, k, v (every head done) to R at the block's input [B, N, D]."""
    r = sum(linear_relprop(merge_heads(st[rr]), st["ln1"], st["attn"][n]["w"]) for rr, n in
            (("rq", "q"), ("rk", "k"), ("rv", "v")))  # [B, N, D] (LN1 passed through)
    return clone_relprop(st["x"], st["r_x"], r)


def block_relprop(R, x, block, config, ops):
    """The whole block at once: (R at the block's input [B, N, D], R^A [B, nh, N, N])."""
    st = block_relprop_top(R, x, block, config, ops)
    ra = np.stack([head_relprop(st, h) for h in range(config.num_attention_heads)], axis=1)
    return block_relprop_bottom(st), ra


def transformer_attribution(model, pixel_values, target=None, backend: str = "numpy"):
    """Chefer et al. 2021's explanation (module docstring): returns (C[:, 0, :] [B, N], target [B], output)."""
    config = model.config
    require_model_1(config, "transformer-attribution")
    params, ops, nh = model.params, get_backend(backend), config.num_attention_heads
    x = np.asarray(pixel_values)
    hidden = model(x, backend=backend, output_hidden_states=True).hidden_states  # L + 1 x [B, N, D]
    B, N = hidden[0].shape[:2]
    state = {"layer": None, "R": None, "block": None, "r": None, "delta": None, "target": None}

    def start(layer):
        if state["R"] is None:  # the head: one-hot at the logits -> the CLS row of the final LayerNorm's output
            cls = layer_norm(hidden[-1][:, 0], params["norm"]["g"], params["norm"]["b"], config.layer_norm_eps)
            onehot = np.zeros((B, config.num_labels))
            onehot[np.arange(B), state["target"]] = 1.0
            R = np.zeros(hidden[-1].shape, np.float64)  # [B, N, D]
            R[:, 0] = clone_relprop(cls, linear_relprop(onehot, cls, params["head"]["w"]))  # pooling of CLS
            state["R"] = R
            state["r"] = np.zeros((B, N))
            state["r"][:, 0] = 1.0  # e_0
        state["block"] = block_relprop_top(state["R"], hidden[layer], params["blocks"][layer], config, ops)
        state["layer"], state["delta"] = layer, np.zeros_like(state["r"])

    def finish():
        if state["delta"] is not None:
            state["r"] = state["r"] + state["delta"]  # r (I + Abar_l)
            state["R"] = block_relprop_bottom(state["block"])  # relevance at block l's input
            state["delta"] = state["block"] = None

    def fold(layer, head, a, da):  # layers arrive last to first
        if state["layer"] != layer:
            finish()
            start(layer)
        cam = np.maximum(da * head_relprop(state["block"], head), 0.0)  # (dA * R^A)^+ of one head: [B, N, N]
        state["delta"] += np.einsum("bi,bij->bj", state["r"], cam) / nh

    objective, chosen = logit_objective(target, config)

    def objective_and_target(out):
        value = objective(out)
        state["target"] = chosen["target"]
        return value

    g = backward(model, x, objective=objective_and_target, on_attention_grad=fold, backend=backend)
    finish()
    return state["r"].astype(model.dtype), chosen["target"], g.output
