"""compare(a, b): two traces side by side, name by name, and the first place they diverge.

A value passes when |a - b| <= atol + rtol * |b| (numpy.allclose's rule; b is the reference).
Default tolerances depend on the less precise dtype of the pair (DEFAULT_TOLERANCES):

    float16   atol 1e-3,  rtol 1e-2
    float32   atol 1e-4,  rtol 1e-4    independent float32 implementations of the same maths
                                       (minivivit vs HF, up to ViViT-B size) differ by less
    float64   atol 1e-10, rtol 1e-9

The table also shows max |a - b| and max |a - b| / max |b| (the error relative to the tensor's
scale; an element-wise relative error is meaningless next to values that are almost zero).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np

DEFAULT_TOLERANCES = {  # dtype -> (atol, rtol)
    np.dtype(np.float16): (1e-3, 1e-2),
    np.dtype(np.float32): (1e-4, 1e-4),
    np.dtype(np.float64): (1e-10, 1e-9),
}
_CHUNK = 1 << 22  # values compared at a time, so ViViT-B attention maps need no float64 copy


@dataclass
class Row:
    """One name of a comparison."""

    name: str
    shape_a: tuple | None  # None: the name is missing from a
    shape_b: tuple | None
    max_abs: float = math.nan  # max |a - b| (nan if a NaN/inf is on one side only, or not comparable)
    max_rel: float = math.nan  # max |a - b| / max |b|
    num_bad: int = 0  # values outside tolerance
    worst: tuple | None = None  # index of the largest |a - b|
    atol: float = math.nan
    rtol: float = math.nan

    @property
    def status(self) -> str:
        """'ok', 'diverged', 'shape mismatch', 'only in a' or 'only in b'."""
        if self.shape_b is None:
            return "only in a"
        if self.shape_a is None:
            return "only in b"
        if self.shape_a != self.shape_b:
            return "shape mismatch"
        return "ok" if self.num_bad == 0 else "diverged"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Report:
    """The result of compare(): one Row per name, in forward order."""

    rows: list[Row]
    labels: tuple[str, str] = ("a", "b")

    @property
    def first_divergence(self) -> str | None:
        """The first name, in forward order, whose values or shapes disagree (missing names do not count)."""
        return next((r.name for r in self.rows if r.status in ("diverged", "shape mismatch")), None)

    @property
    def missing(self) -> list[str]:
        """Names present in only one of the two traces."""
        return [r.name for r in self.rows if r.status.startswith("only in")]

    @property
    def ok(self) -> bool:
        """True when every name is in both traces and every value is within tolerance."""
        return all(r.ok for r in self.rows)

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"{name!r} is not in this report; it has {[r.name for r in self.rows][:5]} ...")

    def __len__(self):
        return len(self.rows)

    def summary(self) -> str:
        a, b = self.labels
        if self.ok:
            return f"no divergence: all {len(self.rows)} names of {a} match {b} within tolerance"
        parts = []
        if self.first_divergence:
            r = self[self.first_divergence]
            what = (f"shapes {r.shape_a} vs {r.shape_b}" if r.status == "shape mismatch" else
                    f"max |a-b| = {r.max_abs:.3g}, {r.num_bad} value(s) outside atol={r.atol:g} + rtol={r.rtol:g}*|b|"
                    + (f", worst at index {r.worst}" if r.worst is not None else ""))
            parts.append(f"first divergence: {r.name} ({what})")
        if self.missing:
            parts.append(f"{len(self.missing)} name(s) in only one trace: {', '.join(self.missing[:6])}"
                         + (" ..." if len(self.missing) > 6 else ""))
        return "; ".join(parts)

    def _cells(self, r: Row) -> list[str]:
        a, b = self.labels
        shape = (str(r.shape_a) if r.shape_a == r.shape_b else
                 f"{a} {r.shape_a} vs {b} {r.shape_b}" if r.shape_a and r.shape_b else str(r.shape_a or r.shape_b))
        status = {"only in a": f"only in {a}", "only in b": f"only in {b}"}.get(r.status, r.status)
        if r.status == "diverged":
            status += f" ({r.num_bad} values)"
        if r.name == self.first_divergence:
            status += "  <- first divergence"
        return [r.name, shape, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}", status]

    _HEADER = ("name", "shape", "max |a-b|", "max |a-b| / max |b|", "status")

    def __str__(self) -> str:
        a, b = self.labels
        lines = [self._cells(r) for r in self.rows]
        widths = [max(len(c[i]) for c in [*lines, self._HEADER]) for i in range(len(self._HEADER))]

        def fmt(cells):
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        out = [f"compare a = {a} vs b = {b} (pass: |a-b| <= atol + rtol*|b|{self._tol_text()})", fmt(self._HEADER),
               fmt(["-" * w for w in widths])]
        out += [fmt(c) for c in lines]
        return "\n".join(out + [self.summary()])

    def _tol_text(self) -> str:
        tols = {(r.atol, r.rtol) for r in self.rows if not math.isnan(r.atol)}
        if len(tols) != 1:
            return ""  # mixed dtypes: each row used its own defaults
        ((atol, rtol),) = tols
        return f", atol={atol:g}, rtol={rtol:g}"

    def _repr_html_(self) -> str:
        a, b = self.labels
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self._HEADER)
        body = []
        for r in self.rows:
            style = "" if r.ok else " style='background:#fdd'" if not r.status.startswith("only") else " style='background:#eee'"
            if r.name == self.first_divergence:
                style = " style='background:#f99;font-weight:bold'"
            cells = "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in self._cells(r))
            body.append(f"<tr{style}>{cells}</tr>")
        caption = html.escape(f"a = {a} vs b = {b} (pass: |a-b| <= atol + rtol*|b|{self._tol_text()}). {self.summary()}")
        return (f"<table><caption style='text-align:left'>{caption}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")


def default_tolerance(*dtypes) -> tuple[float, float]:
    """(atol, rtol) for the least precise of the given float dtypes (non-float dtypes count as float64)."""
    floats = [np.dtype(d) for d in dtypes if np.issubdtype(np.dtype(d), np.floating)] or [np.dtype(np.float64)]
    least = min(floats, key=lambda d: d.itemsize)
    return DEFAULT_TOLERANCES.get(least, DEFAULT_TOLERANCES[np.dtype(np.float16)])


def compare(a: dict, b: dict, atol: float | None = None, rtol: float | None = None,
            labels: tuple[str, str] = ("a", "b")) -> Report:
    """Compare two traces {name: array} name by name; b is the reference. Never raises on content.

    atol / rtol: None picks DEFAULT_TOLERANCES from the arrays' dtypes. Rows follow a's order, with
    names found only in b placed after their predecessor in b. Names in only one trace and shape
    mismatches become rows of their own.
    """
    if not isinstance(a, dict) or not isinstance(b, dict):
        raise TypeError(f"compare() takes two traces {{name: array}} (from trace / hf_trace); got "
                        f"{type(a).__name__} and {type(b).__name__}")
    for name, tol in (("atol", atol), ("rtol", rtol)):
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float, np.number))
                                or not math.isfinite(tol) or tol < 0):
            raise ValueError(f"{name} must be a finite number >= 0 (or None for the dtype's default); got {tol!r}")
    rows = [_compare_one(n, a.get(n), b.get(n), atol, rtol) for n in _merged_order(list(a), list(b))]
    return Report(rows, labels=tuple(labels))


def _merged_order(a_names: list[str], b_names: list[str]) -> list[str]:
    order = list(a_names)
    seen = set(order)
    for i, name in enumerate(b_names):
        if name not in seen:
            prev = next((b_names[j] for j in range(i - 1, -1, -1) if b_names[j] in seen), None)
            order.insert(0 if prev is None else order.index(prev) + 1, name)
            seen.add(name)
    return order


def _compare_one(name, x, y, atol, rtol) -> Row:
    if x is None or y is None:
        return Row(name, None if x is None else tuple(np.shape(x)), None if y is None else tuple(np.shape(y)))
    x, y = _as_array(x), _as_array(y)
    row = Row(name, tuple(x.shape), tuple(y.shape))
    if x.shape != y.shape:
        return row
    d_atol, d_rtol = default_tolerance(x.dtype, y.dtype)
    row.atol = d_atol if atol is None else float(atol)
    row.rtol = d_rtol if rtol is None else float(rtol)
    dtype = np.result_type(x.dtype, y.dtype, np.float32)
    xf, yf = x.reshape(-1), y.reshape(-1)  # [n] views
    max_abs, max_ref, worst, bad = 0.0, 0.0, None, 0
    for s in range(0, xf.size, _CHUNK):
        xs, ys = xf[s:s + _CHUNK].astype(dtype), yf[s:s + _CHUNK].astype(dtype)  # [chunk]
        with np.errstate(invalid="ignore"):
            d = np.abs(xs - ys)  # inf - inf and NaN give NaN
        same = (xs == ys) | (np.isnan(xs) & np.isnan(ys))  # equal infinities and NaN in both count as equal
        d[same] = 0
        with np.errstate(invalid="ignore"):
            bad += int(np.count_nonzero(~(same | (d <= row.atol + row.rtol * np.abs(ys)))))  # other NaN fail
        if np.isnan(d).any():
            max_abs = math.nan
        elif d.size and not math.isnan(max_abs) and d.max() > max_abs:
            max_abs, worst = float(d.max()), s + int(d.argmax())
        finite = np.abs(ys[np.isfinite(ys)])
        max_ref = max(max_ref, float(finite.max()) if finite.size else 0.0)
    row.max_abs, row.num_bad = max_abs, bad
    row.max_rel = max_abs / max_ref if max_ref > 0 else (0.0 if max_abs == 0 else math.inf)
    row.worst = None if worst is None else tuple(int(i) for i in np.unravel_index(worst, x.shape))
    return row


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)
