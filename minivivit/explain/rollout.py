"""Attention rollout (Abnar & Zuidema, 2020): how information flows from the input tokens to the CLS token.

Maths only (NumPy); minivivit.explain.viz draws what these functions compute. An attention map is
[..., nh, N, N] (query rows, key columns; every row sums to 1) or a CLS row [..., nh, N]; letters as in
minivivit/layers.py, plus L layers.

    v = rollout_cls(full_maps)           # [B, N]: CLS row of A_hat_{L-1} ... A_hat_start
    heat = tokens.to_grid(v)             # [B, t, h, w] (minivivit.tokens.TokenMap)
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# Attention rollout (Abnar & Zuidema, 2020), with row normalisation (not columns: rows are queries)
# ---------------------------------------------------------------------------------------------


def rownorm(a):
    """Divide each row by its sum so that it sums to 1; all-zero rows stay zero."""
    s = a.sum(axis=-1, keepdims=True)
    return np.divide(a, s, out=np.zeros(a.shape, dtype=np.result_type(a, np.float32)), where=s > 0)


def fuse_heads(attn, how="mean", axis: int = -3):
    """Combine heads: [..., nh, N, N] -> [..., N, N] (axis=-3), or CLS rows [..., nh, N] -> [..., N] (axis=-2).

    how: "mean", "max", "min", or an int to take one head."""
    attn = np.asarray(attn)
    nh = attn.shape[axis]
    if isinstance(how, (int, np.integer)):
        if not -nh <= how < nh:
            raise ValueError(f"head {how} does not exist; the maps have {nh} heads (0..{nh - 1})")
        return np.take(attn, how, axis=axis)
    fns = {"mean": np.mean, "max": np.max, "min": np.min}
    if how not in fns:
        raise ValueError(f"head fusion must be 'mean', 'max', 'min' or a head index; got {how!r}")
    return fns[how](attn, axis=axis)


def discard_lowest(f, ratio: float):
    """Zero the lowest `ratio` of each row's entries, never the diagonal (self) or column 0 (CLS).

    Of the n droppable entries of a row, floor(ratio * n) are dropped (ties: the earlier column first).
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"discard ratio must be in [0, 1); got {ratio}")
    f = np.array(f, dtype=np.result_type(f, np.float32))
    N = f.shape[-1]
    keep = np.eye(N, dtype=bool)
    keep[:, 0] = True  # [N, N] protected entries
    n_drop = np.floor(ratio * (N - keep.sum(axis=-1))).astype(int)  # [N] per row
    keys = np.where(keep, np.inf, f)  # [..., N, N] protected entries sort last
    order = np.argsort(keys, axis=-1, kind="stable")  # [..., N, N]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(N), axis=-1)  # rank[i, j] = position of j in row i's order
    f[rank < n_drop[:, None]] = 0.0
    return f


def check_options(head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0, num_heads=None) -> None:
    """Raise ValueError for rollout options outside their range (before any map is computed)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (weight of attention against the residual) must be a number in [0, 1]; got {alpha!r}")
    if isinstance(discard_ratio, bool) or not isinstance(discard_ratio, (int, float, np.number)) \
            or not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard ratio must be a number in [0, 1); got {discard_ratio!r}")
    if isinstance(head_fusion, (int, np.integer)) and not isinstance(head_fusion, bool):
        if num_heads is not None and not -num_heads <= head_fusion < num_heads:
            raise ValueError(f"head {head_fusion} does not exist; the model has {num_heads} heads (0..{num_heads - 1})")
    elif head_fusion not in ("mean", "max", "min"):
        raise ValueError(f"head fusion must be 'mean', 'max', 'min' or a head index; got {head_fusion!r}")


def rollout_matrix(attn, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0):
    """One layer's maps [..., nh, N, N] -> A_hat [..., N, N] = rownorm(alpha*rownorm(F) + (1-alpha)*I).

    F is the head-fused map (after the optional discard); the identity stands for the residual path.
    """
    check_options(head_fusion, alpha, discard_ratio)
    f = fuse_heads(_full_map(attn), head_fusion)  # [..., N, N]
    if discard_ratio:
        f = discard_lowest(f, discard_ratio)
    eye = np.eye(f.shape[-1], dtype=f.dtype)  # [N, N]
    return rownorm(alpha * rownorm(f) + (1.0 - alpha) * eye)  # [..., N, N]


def rollout(attentions, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0, start_layer: int = 0):
    """Full rollout R = A_hat_{L-1} @ ... @ A_hat_start: [..., N, N]; row i is where token i's output draws from.

    attentions: a sequence of L full maps [..., nh, N, N] (e.g. ViViTOutput.attentions with
    output_attentions="full"). Memory: one N x N product; use rollout_cls for only the CLS row.
    """
    layers = _layer_range(attentions, start_layer)
    r = None
    for i in layers:
        a = rollout_matrix(attentions[i], head_fusion, alpha, discard_ratio)  # [..., N, N]
        r = a if r is None else a @ r  # later layers multiply on the left
    return r


def rollout_cls(attentions, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0,
                start_layer: int = 0):
    """CLS row of the rollout, v^T = e_0^T A_hat_{L-1} ... A_hat_start: [..., N], equal to rollout(...)[..., 0, :].

    Computed as v^T <- v^T A_hat_l from the last layer down, so it keeps one vector instead of an
    N x N product and does L matrix-vector products instead of matrix-matrix ones. It still needs
    every layer's FULL map (v mixes all rows of A_hat_l), but one at a time: `attentions` may be a lazy
    sequence (minivivit.explain.cls_rollout recomputes each layer's map on demand). CLS-row captures
    (output_attentions="cls") are not enough; use them for raw maps only.
    """
    v = None
    for i in reversed(_layer_range(attentions, start_layer)):
        a = rollout_matrix(attentions[i], head_fusion, alpha, discard_ratio)  # [..., N, N]
        if v is None:
            v = a[..., 0, :].copy()  # e_0^T A_hat: [..., N]
        else:
            v = np.einsum("...i,...ij->...j", v, a)  # [..., N] @ [..., N, N] -> [..., N]
    return v


def _layer_range(attentions, start_layer):
    L = len(attentions)
    if not -L <= start_layer < L:
        raise ValueError(f"start_layer {start_layer} does not exist; there are {L} layers of maps")
    return list(range(start_layer % L, L))


def _full_map(attn):
    if attn is None:
        raise ValueError("rollout needs the full map of every layer from start_layer on, but a layer was not "
                         "captured; capture with attention_layers=None (all) or use minivivit.explain.cls_rollout")
    attn = np.asarray(attn)
    if attn.ndim < 3 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(
            f"rollout needs full maps [..., heads, N, N]; got shape {attn.shape}. CLS rows "
            f"(output_attentions='cls') are not enough: the CLS row of a product mixes every row of the later "
            f"layers. Use minivivit.explain.cls_rollout(model, x) (one full map at a time) or "
            f"output_attentions='full'.")
    return attn
