"""Token layouts: the same [B, P, D] tokens (flattened (t, h, w), minivivit/tokens.py) seen per time slice or
per location, as batch rows for attention within groups. NumPy arrays in and out (the forward brings a
backend's arrays home with ops.to_numpy first). Letters as in factorized/__init__.py: S = h*w."""

from __future__ import annotations


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


def group(x, grid, axis: str):
    """[B, P, D] -> [B*S, t, D] (axis 'time') or [B*t, S, D] (axis 'space')."""
    return time_groups(x, grid) if axis == "time" else space_groups(x, grid)


def ungroup(x, grid, batch: int, axis: str):
    """The inverse of group: [B*S, t, D] or [B*t, S, D] -> [B, P, D]."""
    return from_time_groups(x, grid, batch) if axis == "time" else from_space_groups(x, grid, batch)


def group_maps(maps, batch: int):
    """Per-group maps [B*G, h', n, n] -> [B, G, h', n, n] (Models 3 and 4 have no CLS: no 'cls' rows)."""
    return None if maps is None else maps.reshape(batch, -1, *maps.shape[1:])
