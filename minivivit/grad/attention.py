"""Backward of multi-head self-attention, recomputing the attention maps one head at a time.

Forward (layers.attention / model.self_attention), per head h, with s = 1 / sqrt(d):

    S = Q K^T s          [B, N, N]   scores
    P = softmax(S)       [B, N, N]
    A = P * m_h * R_h    [B, N, N]   m_h: head_mask value, R_h: dropout multiplier (mask / (1 - p)) or 1
    O = A V              [B, N, d]   context (heads merged afterwards)

Backward, given dO (dL/dcontext):

    dV = A^T dO                       dA = dO V^T        (dA is "dL/dA", what explanation methods read)
    dP = dA * m_h * R_h               dS = P * (dP - rowsum(dP * P))   (softmax_backward)
    dQ = dS K s                       dK = dS^T Q s

Nothing N x N is kept from the forward: S and P are recomputed from Q and K here, one head at a
time, so memory holds a few [B, N, N] arrays (39 MB each for ViViT-B) instead of all heads of all
layers (12 x 12 x 39 MB = 5.7 GB per clip).
"""

from __future__ import annotations

import numpy as np

from ..layers import attention_scores, merge_heads, softmax_, split_heads
from .layers import softmax_backward


def attention_backward(dcontext, q, k, v, num_heads, head_mask=None, dropout=None, on_probs=None):
    """Gradients of layers.attention w.r.t. its inputs q, k, v.

    dcontext, q, k, v: [B, N, D] (q, k, v projected, heads not split). head_mask: [nh] or None.
    dropout: None or a function h -> [B, N, N] multiplier R_h of head h (the same mask the forward used).
    on_probs: None or a function (h, A_h, dA_h) called with head h's probabilities as used by the
    forward (after head_mask and dropout) and dL/dA_h, both [B, N, N], e.g. to build dL/dA.
    Returns (dq, dk, dv), each [B, N, D].
    """
    qh, kh, vh, dch = (split_heads(a, num_heads) for a in (q, k, v, dcontext))  # [B, nh, N, d] each
    nh, d = qh.shape[1], qh.shape[3]
    scale = np.asarray(d**-0.5, dtype=q.dtype)
    dq, dk, dv = np.empty_like(qh), np.empty_like(kh), np.empty_like(vh)  # [B, nh, N, d]
    for h in range(nh):
        p = softmax_(attention_scores(qh[:, h], kh[:, h]))  # [B, N, N], recomputed
        mult = None  # m_h * R_h, [B, N, N] or a scalar
        if head_mask is not None:
            mult = head_mask[h].astype(p.dtype)
        if dropout is not None:
            mult = dropout(h) if mult is None else dropout(h) * mult
        a = p if mult is None else p * mult  # [B, N, N], what multiplied V
        dv[:, h] = a.swapaxes(-1, -2) @ dch[:, h]  # [B, N, N] @ [B, N, d] -> [B, N, d]
        da = dch[:, h] @ vh[:, h].swapaxes(-1, -2)  # [B, N, d] @ [B, d, N] -> [B, N, N]
        if on_probs is not None:
            on_probs(h, a, da)
        del a
        dp = da if mult is None else da * mult  # [B, N, N]
        ds = softmax_backward(dp, p)  # [B, N, N]
        del p, da, dp
        dq[:, h] = (ds @ kh[:, h]) * scale  # [B, N, N] @ [B, N, d] -> [B, N, d]
        dk[:, h] = (ds.swapaxes(-1, -2) @ qh[:, h]) * scale  # [B, N, N]^T @ [B, N, d] -> [B, N, d]
    return merge_heads(dq), merge_heads(dk), merge_heads(dv)  # [B, N, D] each
