"""Where a video transformer looks, in numbers: token <-> pixel mapping, attention rollout, per-head
metrics. Maths only (NumPy); minivivit.viz draws what these functions compute.

Letters as in minivivit/layers.py, plus L layers, q a query token, and T', H', W' = (t*tt, h*ph, w*pw)
the pixels the tubelets cover. An attention map is [..., nh, N, N] (query rows, key columns; every
row sums to 1) or a CLS row [..., nh, N].

    tokens = TokenMap.for_config(model.config)            # (t, h, w) grid + tubelet size
    tokens.coords(k) -> (t, y, x);  tokens.box(k) -> frames, rows, cols;  tokens.token_at(f, r, c) -> k
    v = rollout_cls(full_maps)                             # [B, N]: CLS row of A_{L-1} ... A_start
    heat = tokens.to_grid(v)                               # [B, t, h, w], patch tokens only
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .position import linear_matrix

# ---------------------------------------------------------------------------------------------
# Token <-> pixel mapping: TokenMap is the only place that knows HF's Conv3d flatten order.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenMap:
    """Token k >= 1 is tubelet j = k-1 with t = j // (h*w), y = (j % (h*w)) // w, x = j % w; it covers
    frames [t*tt, (t+1)*tt), rows [y*ph, (y+1)*ph), cols [x*pw, (x+1)*pw). Token 0 is CLS (no place).

    ViViT-B: grid (16, 14, 14), 3136 tubelets. Reading them as a sqrt(3136) = 56 x 56 image (what
    image-ViT tools do) mixes 16 frames into one picture; every function here goes through this map.
    """

    grid: tuple[int, int, int]  # (t, h, w) tubelets along time, rows, columns
    tubelet: tuple[int, int, int]  # (tt, ph, pw) frames, rows, columns of one tubelet

    @classmethod
    def for_config(cls, config, clip_shape=None) -> TokenMap:
        """The map of a model's clip, or of another clip size (T, H, W) or pixel_values shape [B, T, C, H, W]."""
        tt, ph, pw = config.tubelet_size
        if clip_shape is None:
            return cls(tuple(config.grid), (tt, ph, pw))
        T, H, W = (clip_shape[1], clip_shape[3], clip_shape[4]) if len(clip_shape) == 5 else clip_shape
        return cls((T // tt, H // ph, W // pw), (tt, ph, pw))

    @property
    def num_patches(self) -> int:
        """P = t*h*w tubelet tokens."""
        return int(np.prod(self.grid))

    @property
    def num_tokens(self) -> int:
        """N = P + 1 (CLS first)."""
        return self.num_patches + 1

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(T, H, W) the tubelets cover; pixels beyond it (a remainder) are dropped by the Conv3d."""
        return tuple(g * s for g, s in zip(self.grid, self.tubelet))

    # ---- the two directions of the one formula ----------------------------------------------
    def coords(self, token):
        """token k (int or array, 1 <= k < N) -> (t, y, x) grid coordinates."""
        k = np.asarray(token)
        if np.any(k < 1) or np.any(k >= self.num_tokens):
            raise ValueError(f"patch tokens are 1..{self.num_tokens - 1} (token 0 is CLS, which has no place "
                             f"in the clip); got {token}")
        _, h, w = self.grid
        j = k - 1  # tubelet index
        return j // (h * w), (j % (h * w)) // w, j % w

    def token(self, t, y, x):
        """(t, y, x) grid coordinates -> token k (1 + t*h*w + y*w + x)."""
        _, h, w = self.grid
        return 1 + np.asarray(t) * (h * w) + np.asarray(y) * w + np.asarray(x)

    def cell_at(self, frame, row, col):
        """Pixel (frame, row, col) of the clip -> (t, y, x) of the tubelet that contains it."""
        f, r, c = (np.asarray(a) for a in (frame, row, col))
        T, H, W = self.clip_shape
        if np.any((f < 0) | (f >= T) | (r < 0) | (r >= H) | (c < 0) | (c >= W)):
            raise ValueError(f"pixel (frame, row, col) = ({frame}, {row}, {col}) is outside the {T}x{H}x{W} "
                             f"frames x rows x cols that the tubelets {self.tubelet} cover")
        tt, ph, pw = self.tubelet
        return f // tt, r // ph, c // pw

    def token_at(self, frame, row, col):
        """Pixel (frame, row, col) -> token k whose tubelet contains it."""
        return self.token(*self.cell_at(frame, row, col))

    def box(self, token) -> tuple[range, range, range]:
        """Token k -> (frames, rows, cols) ranges of the pixels its tubelet covers."""
        t, y, x = (int(a) for a in self.coords(int(token)))
        tt, ph, pw = self.tubelet
        return range(t * tt, (t + 1) * tt), range(y * ph, (y + 1) * ph), range(x * pw, (x + 1) * pw)

    # ---- whole arrays ------------------------------------------------------------------------
    def to_grid(self, values):
        """Per-token values [..., N] (CLS first, dropped) or [..., P] -> [..., t, h, w]."""
        values = np.asarray(values)
        n = values.shape[-1]
        if n not in (self.num_tokens, self.num_patches):
            raise ValueError(f"expected {self.num_tokens} token values (CLS first) or {self.num_patches} patch "
                             f"values for the grid {self.grid}; got {n}. Is the map from another clip size?")
        patches = values[..., n - self.num_patches:]  # [..., P]
        t, y, x = self.coords(np.arange(1, self.num_tokens))  # [P] each
        out = np.empty(values.shape[:-1] + self.grid, dtype=values.dtype)  # [..., t, h, w]
        out[..., t, y, x] = patches
        return out

    def to_pixels(self, grid_values, mode: str = "nearest", size=None):
        """[..., t, h, w] -> [..., T, H, W]: each pixel takes the value of its tubelet.

        mode "nearest" keeps tubelets as sharp boxes (honest); "smooth" interpolates linearly in space
        between tubelet centres (time stays per tubelet). size (T, H, W) >= clip_shape pads the
        remainder the Conv3d dropped with NaN (drawn transparent).
        """
        g = np.asarray(grid_values, dtype=np.float64)
        if g.shape[-3:] != self.grid:
            raise ValueError(f"expected values on the tubelet grid {self.grid} as [..., t, h, w]; got {g.shape}")
        T, H, W = size or self.clip_shape
        if T < self.clip_shape[0] or H < self.clip_shape[1] or W < self.clip_shape[2]:
            raise ValueError(f"size {(T, H, W)} is smaller than the {self.clip_shape} pixels the tubelets cover")
        Tc, Hc, Wc = self.clip_shape
        ti = self.cell_at(np.arange(Tc), 0, 0)[0]  # [T'] time slice of each frame
        yi = self.cell_at(0, np.arange(Hc), 0)[1]  # [H'] tubelet row of each pixel row
        xi = self.cell_at(0, 0, np.arange(Wc))[2]  # [W'] tubelet col of each pixel col
        out = np.full(g.shape[:-3] + (T, H, W), np.nan)  # [..., T, H, W]
        g = g[..., ti, :, :]  # [..., T', h, w]
        if mode == "nearest":
            out[..., :Tc, :Hc, :Wc] = g[..., yi, :][..., xi]  # [..., T', H', W']
        elif mode == "smooth":
            ry = linear_matrix(self.grid[1], Hc)  # [H', h] linear between cell centres (Hc = h * ph)
            rx = linear_matrix(self.grid[2], Wc)  # [W', w]
            out[..., :Tc, :Hc, :Wc] = np.einsum("rh,...hw,cw->...rc", ry, g, rx)  # [..., T', H', W']
        else:
            raise ValueError(f"mode must be 'nearest' or 'smooth'; got {mode!r}")
        return out


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


def rollout_matrix(attn, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0):
    """One layer's maps [..., nh, N, N] -> A_hat [..., N, N] = rownorm(alpha*rownorm(F) + (1-alpha)*I).

    F is the head-fused map (after the optional discard); the identity stands for the residual path.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (weight of attention against the residual) must be in [0, 1]; got {alpha}")
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
    sequence (minivivit.capture.cls_rollout recomputes each layer's map on demand). CLS-row captures
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
                         "captured; capture with attention_layers=None (all) or use minivivit.capture.cls_rollout")
    attn = np.asarray(attn)
    if attn.ndim < 3 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(
            f"rollout needs full maps [..., heads, N, N]; got shape {attn.shape}. CLS rows "
            f"(output_attentions='cls') are not enough: the CLS row of a product mixes every row of the later "
            f"layers. Use minivivit.capture.cls_rollout(model, x) (one full map at a time) or mode='full'.")
    return attn


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
      taus, curve    m(tau) = mass on keys at t_key - t_query = tau, tau = -(t-1) .. t-1; sums to 1
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
    taus = np.arange(-(tokens.grid[0] - 1), tokens.grid[0])  # [2t-1]
    by_slice = p.sum(axis=(1, 2))  # [t] mass per time slice
    curve = np.array([by_slice[tq + tau] if 0 <= tq + tau < tokens.grid[0] else 0.0 for tau in taus])
    return {"same_slice": float(by_slice[tq]), "same_location": float(p[:, yq, xq].sum()),
            "taus": taus, "curve": curve, "cls_share": cls_share}


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
