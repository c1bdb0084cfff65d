"""Backward twins of the NumPy reference layers (minivivit/layers.py), one per forward function.

Convention: `f_backward(dy, <what the forward saw>) -> gradients`, where dy = dL/d(output) has the
shape of the output and every returned gradient has the shape of what it differentiates. Shapes in
layers.py's letters; M = the number of rows (all leading axes flattened, B*N for token arrays).
Nothing is cached by the forward: what a backward needs (an input, LayerNorm's statistics) is passed
in or recomputed, so the caller decides what to keep in memory.
"""

from __future__ import annotations

import numpy as np

from ..layers import patchify
from ..position import bicubic_matrix, linear_matrix

# ---------------------------------------------------------------------------------------------
# Linear and LayerNorm
# ---------------------------------------------------------------------------------------------


def linear_backward(dy, x, w, bias: bool = True):
    """y = x @ w + b, w [in, out].

    dL/dx = dy @ w^T; dL/dw = sum over rows of x^T dy; dL/db = sum over rows of dy.
    Returns (dx [..., in], dw [in, out], db [out] or None).
    """
    x2 = x.reshape(-1, x.shape[-1])  # [..., in] -> [M, in]
    dy2 = dy.reshape(-1, dy.shape[-1])  # [..., out] -> [M, out]
    dx = dy @ w.T  # [..., out] @ [out, in] -> [..., in]
    dw = x2.T @ dy2  # [in, M] @ [M, out] -> [in, out]
    db = dy2.sum(axis=0) if bias else None  # [M, out] -> [out]
    return dx, dw, db


def layer_norm_backward(dy, x, g, eps):
    """y = xhat * g + b, xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), over the last axis (size D).

    dL/dg = sum over rows of dy * xhat, dL/db = sum over rows of dy. With dn = dy * g (dL/dxhat):
    mean and var depend on every x_j of the row, and working the chain rule through them gives
    (llm.c's layernorm derivation)
        dL/dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat))
    i.e. remove from dn its component along the constant vector and along xhat, then scale.
    mean and rstd are recomputed from x (cheaper than keeping them).
    Returns (dx [..., D], dg [D], db [D]).
    """
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    xc = x - mean  # [..., D]
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)  # [..., 1]
    xhat = xc * rstd  # [..., D]
    dy2, xhat2 = dy.reshape(-1, dy.shape[-1]), xhat.reshape(-1, x.shape[-1])  # [M, D]
    dg = (dy2 * xhat2).sum(axis=0)  # [D]
    db = dy2.sum(axis=0)  # [D]
    dn = dy * g  # [..., D]
    dx = rstd * (dn - dn.mean(axis=-1, keepdims=True) - xhat * (dn * xhat).mean(axis=-1, keepdims=True))
    return dx.astype(x.dtype, copy=False), dg, db


# ---------------------------------------------------------------------------------------------
# Softmax and cross-entropy
# ---------------------------------------------------------------------------------------------


def softmax_backward(dp, p):
    """p = softmax(s) over the last axis. dp_j/ds_k = p_j (delta_jk - p_k), so
        dL/ds = p * (dp - sum_j dp_j p_j)
    p = 0 entries (a -inf logit) get gradient 0, as in torch. dp, p: [..., n] -> [..., n]."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy over the batch, torch.nn.functional.cross_entropy's definition.

    logits [B, C]; labels int [B] (class indices) or float [B, C] (class probabilities).
    With label smoothing e the target is q = (1 - e) * target + e / C, and
        loss = -(1/B) sum_b sum_c q_bc log softmax(logits_b)_c,  dL/dlogits = (softmax(logits) - q) / B
    (sum_c q_bc = 1 makes the log-sum-exp term's gradient softmax itself).
    Returns (loss: float, dlogits [B, C]).
    """
    logits = np.asarray(logits)
    B, C = logits.shape
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing}")
    q = _targets(labels, B, C).astype(np.float64)  # [B, C]
    q = (1.0 - label_smoothing) * q + label_smoothing / C
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)  # [B, C], max-subtracted
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # log softmax, [B, C]
    loss = float(-(q * logp).sum() / B)
    dlogits = (np.exp(logp) - q) / B  # [B, C]
    return loss, dlogits.astype(logits.dtype)


def _targets(labels, B, C):
    labels = np.asarray(labels)
    if labels.shape == (B, C) and np.issubdtype(labels.dtype, np.floating):
        return labels
    if labels.shape != (B,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {B} class indices (int array of shape ({B},)) or class probabilities "
                         f"(float array of shape ({B}, {C})); got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= C:
        raise ValueError(f"labels must be class indices in 0..{C - 1} (the model has {C} labels); "
                         f"got values {labels.min()}..{labels.max()}")
    return np.eye(C)[labels]  # [B, C] one-hot


# ---------------------------------------------------------------------------------------------
# Embeddings: tubelets, CLS, position embeddings
# ---------------------------------------------------------------------------------------------


def unpatchify(dpatches, clip_shape, tubelet):
    """The adjoint of layers.patchify: [B, P, K] -> [B, T, C, H, W].

    patchify only cuts and reorders (each pixel lands in at most one row), so its backward puts each
    row value back where it came from; frames / pixels that patchify dropped (not a whole tubelet) get 0.
    """
    B, T, C, H, W = clip_shape
    tt, ph, pw = tubelet
    t, h, w = T // tt, H // ph, W // pw
    x = dpatches.reshape(B, t, h, w, tt, ph, pw, C)  # [B, P, K] -> [B, t, h, w, tt, ph, pw, C]
    x = x.transpose(0, 1, 4, 7, 2, 5, 3, 6)  # -> [B, t, tt, C, h, ph, w, pw] (inverse of patchify's transpose)
    out = np.zeros(clip_shape, dpatches.dtype)  # [B, T, C, H, W]
    out[:, : t * tt, :, : h * ph, : w * pw] = x.reshape(B, t * tt, C, h * ph, w * pw)
    return out


def tubelet_embed_backward(dy, pixel_values, w, tubelet, input_grad: bool = False):
    """y = patchify(x) @ w + b ([B, P, K] @ [K, D]): a linear layer on the tubelet rows.

    dL/dw = patches^T dy, dL/db = sum dy, dL/dx = unpatchify(dy @ w^T). The patches are recomputed
    from the clip (a reshape + copy), not kept. Returns (dw [K, D], db [D], dx [B, T, C, H, W] or None).
    """
    patches = patchify(pixel_values, tubelet)  # [B, P, K]
    dpatches, dw, db = linear_backward(dy, patches, w)  # [B, P, K], [K, D], [D]
    dx = unpatchify(dpatches, pixel_values.shape, tubelet) if input_grad else None
    return dw, db, dx


def embed_backward(dout, pos_grid=None, clip_grid=None):
    """out = concat(CLS broadcast over B, patches) + pos  ([B, N, D]).

    The CLS vector is added to every clip and pos to every clip, so their gradients sum over the
    batch: dL/dcls = sum_b dout[b, 0], dL/dpos = sum_b dout[b]; dL/dpatches = dout[:, 1:].
    With interpolate_pos_encoding (clip_grid != pos_grid) the patch positions went through the linear
    map position.resize_grid, whose backward is its transpose (resize_grid_backward).
    Returns (dpatches [B, P, D], dcls [D], dpos [N_model, D]).
    """
    dpos = dout.sum(axis=0)  # [B, N, D] -> [N, D]
    if clip_grid is not None and tuple(clip_grid) != tuple(pos_grid):
        dpos = np.concatenate([dpos[:1], resize_grid_backward(dpos[1:], pos_grid, clip_grid)])  # [N_model, D]
    return dout[:, 1:], dout[:, 0].sum(axis=0), dpos


def resize_grid_backward(dnew, old_grid, new_grid):
    """Adjoint of position.resize_grid: [t'*h'*w', D] -> [t*h*w, D].

    resize_grid applies three [out, in] matrices, one per axis (time linear, rows and cols bicubic);
    the transpose of a product of matrices applies each matrix transposed. Computed in float64.
    """
    (t, h, w), (t2, h2, w2) = old_grid, new_grid
    D = dnew.shape[-1]
    g = dnew.astype(np.float64).reshape(t2, h2, w2, D)  # [t', h', w', D]
    g = np.einsum("Ww,thWd->thwd", bicubic_matrix(w, w2), g)  # cols:  [t', h', w, D]
    g = np.einsum("Hh,tHwd->thwd", bicubic_matrix(h, h2), g)  # rows:  [t', h, w, D]
    g = np.einsum("Tt,Thwd->thwd", linear_matrix(t, t2), g)  # time:  [t, h, w, D]
    return g.reshape(t * h * w, D).astype(dnew.dtype)  # [t*h*w, D]


# ---------------------------------------------------------------------------------------------
# Heads: the classifier and the pooler read the CLS token only
# ---------------------------------------------------------------------------------------------


def cls_linear_backward(dy, hidden, w):
    """y = hidden[:, 0] @ w + b (classifier, or the pooler's dense layer) with hidden [B, N, D].

    Only the CLS row receives a gradient. Returns (dhidden [B, N, D], dw [D, out], db [out]).
    """
    dcls, dw, db = linear_backward(dy, hidden[:, 0], w)  # [B, D], [D, out], [out]
    dhidden = np.zeros_like(hidden)  # [B, N, D]
    dhidden[:, 0] = dcls
    return dhidden, dw, db


__all__ = ["cls_linear_backward", "cross_entropy", "embed_backward", "layer_norm_backward", "linear_backward",
           "resize_grid_backward", "softmax_backward", "tubelet_embed_backward", "unpatchify"]
