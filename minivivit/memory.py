"""Memory guards: estimate what an operation will allocate BEFORE allocating it, and refuse above a stated
limit with the size, the limit and a cheaper way to get the result. The one helper every guard uses.

    check_budget(nbytes, limit(), False, "decoding 1600000 frames of 64x64", ["pass num_frames=16"])

The limit is DEFAULT_MAX_BYTES (8 GiB), or $MINIVIVIT_MAX_BYTES when that is set: a size such as "32GB",
"32GiB", "1.5e10" or "none" (no limit). It is the override for every guard, from Python and from the
command line. Attention capture (minivivit.explain) has its own default of 2 GiB and a `force=` argument;
$MINIVIVIT_MAX_BYTES also replaces that default. Nothing here allocates.
"""

from __future__ import annotations

import math
import os
import re

ENV = "MINIVIVIT_MAX_BYTES"
DEFAULT_MAX_BYTES = 8 * 2**30  # 8 GiB: a ViViT-B forward is estimated at 0.31 GB per clip (numpy backend)
UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
         "tib": 2**40}
NO_LIMIT = ("none", "off", "unlimited", "inf")


class MemoryBudgetError(MemoryError, ValueError):
    """A request above the memory limit, refused before anything was allocated (a ValueError too, so that the
    command line reports it as a clear error)."""


def format_bytes(n: float) -> str:
    """5668282944 -> '5.67 GB' (decimal units, as disk and RAM sizes are usually quoted)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000


def parse_bytes(text: str, name: str = ENV) -> int | None:
    """'32GB' -> 32000000000, '8GiB' -> 8589934592, '1.5e9' -> 1500000000, 'none' -> None (no limit)."""
    s = str(text).strip().lower().replace(" ", "")
    if s in NO_LIMIT:
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([kmgt]i?b|b)?", s)
    if not m or not math.isfinite(float(m.group(1))):
        raise ValueError(f"{name}={text!r} is not a size; use e.g. {name}=16GB, {name}=8GiB, {name}=2e9 (bytes) "
                         f"or {name}=none (no limit)")
    return int(float(m.group(1)) * UNITS[m.group(2) or ""])


def limit(default: int | None = DEFAULT_MAX_BYTES) -> int | None:
    """The limit of a guard: $MINIVIVIT_MAX_BYTES if it is set, else `default` (None means no limit)."""
    text = os.environ.get(ENV)
    return default if text is None or not text.strip() else parse_bytes(text)


def override_hint(nbytes: int) -> str:
    """How to allow a refused request: the environment variable with a size that would allow it."""
    suggestion = f"{math.ceil(nbytes / 1e9)}GB" if nbytes >= 1e9 else f"{math.ceil(nbytes / 1e6)}MB"
    return f"set {ENV}={suggestion} (or {ENV}=none for no limit) to allow it"


def check_budget(nbytes: int, max_bytes: int | None, force: bool, what: str, cheaper=(), override: str | None = None,
                 error: type = MemoryBudgetError) -> None:
    """Raise `error` naming the size, the limit and the cheaper alternatives when nbytes > max_bytes (unless force).

    override: how to allow it anyway (default: the environment variable)."""
    if force or max_bytes is None or nbytes <= max_bytes:
        return
    options = "".join(f"\n  - {c}" for c in cheaper)
    how = override or override_hint(nbytes)
    need, have = format_bytes(nbytes), format_bytes(max_bytes)
    if need == have:  # too close to tell apart when rounded
        need, have = f"{nbytes} bytes", f"{max_bytes} bytes"
    raise error(f"{what} needs {need}, above the limit of {have}."
                + (f" Cheaper:{options}\n  - or {how}." if cheaper else f" To go ahead anyway, {how}."))


def guard(nbytes: int, what: str, cheaper=()) -> None:
    """check_budget with the default limit (limit()), no force: what the library's own guards call."""
    check_budget(int(nbytes), limit(), False, what, cheaper)
