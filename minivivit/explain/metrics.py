"""Where a video transformer looks, in numbers: per-head attention distance, entropy, space/time splits,
tubelet coverage of a pixel mask. Maths only (NumPy); minivivit.explain.viz draws them.

Letters as in minivivit/layers.py, plus q a query token. Maps are [..., nh, N, N] or CLS rows [..., nh, N].
"""

from __future__ import annotations

import warnings

import numpy as np

from ..tokens import TokenMap


def tubelet_coverage(mask, tokens: TokenMap):
    """Pixel mask [T, H, W] (e.g. where the moving object is) -> [t, h, w] fraction of each tubelet covered."""
    m = np.asarray(mask, dtype=np.float64)
    T, H, W = tokens.clip_shape
    if m.ndim != 3:
        raise ValueError(f"expected a pixel mask [T, H, W]; got shape {m.shape}")
    if m.shape[0] < T or m.shape[1] < H or m.shape[2] < W:
        raise ValueError(f"mask {m.shape} is smaller than the {tokens.clip_shape} pixels the tubelets cover")
    f, r, c = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")  # [T', H', W'] each
    k = tokens.token_at(f, r, c).ravel()  # token of every covered pixel
    hits = np.bincount(k, weights=m[:T, :H, :W].ravel(), minlength=tokens.num_tokens)  # [N]
    return tokens.to_grid(hits / np.maximum(np.bincount(k, minlength=tokens.num_tokens), 1))  # [t, h, w]


def normalize(volume, how: str = "global"):
    """Scale [T, H, W] (or [..., T, H, W]) to [0, 1]: over the whole clip ("global") or each frame ("frame")."""
    v = np.asarray(volume, dtype=np.float64)
    axes = {"global": tuple(range(-3, 0)), "frame": (-2, -1)}.get(how)
    if axes is None:
        raise ValueError(f"normalisation must be 'global' or 'frame'; got {how!r}")
    with warnings.catch_warnings():  # frames beyond the tubelets (all NaN) stay NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(v, axis=axes, keepdims=True), np.nanmax(v, axis=axes, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (v - lo) / span


# ---------------------------------------------------------------------------------------------
# Per-head metrics
# ---------------------------------------------------------------------------------------------


def distance_matrices(tokens: TokenMap):
    """(space [P, P] pixels between tubelet centres, time [P, P] frames between them), patch tokens only."""
    t, y, x = (a.astype(np.float64) for a in tokens.coords(np.arange(1, tokens.num_tokens)))  # [P] each
    tt, ph, pw = tokens.tubelet
    space = np.hypot((y[:, None] - y[None, :]) * ph, (x[:, None] - x[None, :]) * pw)  # [P, P]
    time = np.abs(t[:, None] - t[None, :]) * tt  # [P, P]
    return space, time


def uniform_distance(tokens: TokenMap) -> dict:
    """{"space" px, "time" frames}: the mean attention distance of *uniform* attention over the patch keys,
    the reference every head's distance is read against (a head at this value looks everywhere alike)."""
    space, time = distance_matrices(tokens)
    return {"space": float(space.mean()), "time": float(time.mean())}


def mean_attention_distance(attn, tokens: TokenMap) -> dict:
    """Full maps [..., nh, N, N] -> {"space" px, "time" frames, "cls_share"}, each [..., nh] (or [N, N] -> scalars).

    For every patch query, the attention over patch keys is renormalised without CLS and the expected
    distance taken (ViT paper, fig. 7, here split into space and time); then averaged over queries.
    cls_share is the mean attention a patch query pays to CLS (before renormalisation).
    """
    a = np.asarray(attn)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"mean attention distance needs full maps [..., N, N] (all query rows); got {a.shape}")
    if a.shape[-1] != tokens.num_tokens:
        raise ValueError(f"maps have {a.shape[-1]} tokens, the grid {tokens.grid} has {tokens.num_tokens}")
    space, time = distance_matrices(tokens)  # [P, P] each
    patches = a[..., 1:, 1:].astype(np.float64)  # [..., nh, P, P] queries and keys without CLS
    mass = patches.sum(axis=-1)  # [..., nh, P]
    safe = np.where(mass > 0, mass, 1.0)
    out = {name: (np.einsum("...ij,ij->...i", patches, d) / safe).mean(axis=-1)  # [..., nh]
           for name, d in (("space", space), ("time", time))}
    out["cls_share"] = a[..., 1:, 0].astype(np.float64).mean(axis=-1)  # [..., nh]
    return out


def distance_by_layer(attentions, tokens: TokenMap) -> dict:
    """Sequence of L full maps [B, nh, N, N] -> {"space", "time", "cls_share"}: [L, nh] (mean over batch)."""
    per = [mean_attention_distance(a, tokens) for a in attentions]
    return {k: np.stack([p[k].reshape(-1, p[k].shape[-1]).mean(axis=0) for p in per]) for k in per[0]}


def entropy(attn):
    """Normalised entropy of each row [..., N] -> [...]: -sum p log p / log N; 1 = uniform, 0 = one key."""
    p = np.asarray(attn, dtype=np.float64)
    n = p.shape[-1]
    if n < 2:
        raise ValueError("entropy needs at least 2 keys per row")
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -plogp.sum(axis=-1) / np.log(n)


def head_entropy(attn):
    """Mean normalised entropy per head: full maps [..., nh, N, N] or CLS rows [..., nh, N] -> [..., nh]."""
    a = np.asarray(attn)
    e = entropy(a)
    return e.mean(axis=-1) if a.ndim >= 3 and a.shape[-1] == a.shape[-2] else e


def space_time_decomposition(row, query: int, tokens: TokenMap) -> dict:
    """Where one patch query looks, split into space and time. row: [N] (or [P]) attention of query q.

    Keys are patch tokens, renormalised without CLS. Returns
      same_slice     mass on keys in the query's time slice (same t; attention "within the frame")
      same_location  mass on keys at the query's (y, x) in every time slice ("the same place over time")
      taus, curve    m(tau) = mass on keys at t_key - t_query = tau, for the offsets this query has:
                     tau = -t_query .. t-1-t_query (t values, sums to 1)
      uniform        m(tau) of uniform attention over the patch keys: 1/t for every tau
      cls_share      the raw attention on CLS (0 when row has only P entries)
    """
    r = np.asarray(row, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"expected one query's attention row [N] or [P]; got shape {r.shape}")
    cls_share = float(r[0]) if r.shape[0] == tokens.num_tokens else 0.0
    p = tokens.to_grid(r)  # [t, h, w]
    total = p.sum()
    if total <= 0:
        raise ValueError("the row has no attention on patch tokens")
    p = p / total
    tq, yq, xq = (int(a) for a in tokens.coords(query))
    t = tokens.grid[0]
    taus = np.arange(t) - tq  # [t] the offsets that exist for this query (key slices 0 .. t-1)
    by_slice = p.sum(axis=(1, 2))  # [t] mass per time slice = m(tau) at tau = slice - tq
    return {"same_slice": float(by_slice[tq]), "same_location": float(p[:, yq, xq].sum()),
            "taus": taus, "curve": by_slice, "uniform": np.full(t, 1.0 / t), "cls_share": cls_share}


def slice_profile(row, tokens: TokenMap):
    """Attention row [N] or [P] -> [t] mass per time slice over patch keys (renormalised without CLS).

    For the CLS query, which has no time of its own: which part of the clip it reads."""
    p = tokens.to_grid(np.asarray(row, dtype=np.float64)).sum(axis=(-2, -1))  # [..., t]
    return p / p.sum(axis=-1, keepdims=True)


def cls_maps(attentions, tokens: TokenMap, batch: int = 0):
    """Captured maps per layer (full [B, nh, N, N] or CLS rows [B, nh, N]) -> CLS maps [L', nh, t, h, w].

    Layers that were not captured (None) are skipped; returns (maps, layer indices)."""
    maps, kept = [], []
    for i, a in enumerate(attentions):
        if a is None:
            continue
        a = np.asarray(a)[batch]  # [nh, N, N] or [nh, N]
        row = a[:, 0, :] if a.ndim == 3 else a  # [nh, N]
        maps.append(tokens.to_grid(row))  # [nh, t, h, w]
        kept.append(i)
    if not maps:
        raise ValueError("no layer has captured attention; run the model with output_attentions='cls'")
    return np.stack(maps), kept
