"""Value rules for the tables that validate configs (config.py) and preprocessing options (video/preprocess.py).

A rule is a plain function `rule(name, value) -> value` that returns the value normalised (a list
becomes a tuple, a NumPy int an int) or raises FieldError naming the field, the value, its type and
what is allowed; `rule.allowed` says the same in words, for docs and messages:

    integer(1, 1024)("num_hidden_layers", 0)
    -> FieldError: num_hidden_layers=0 (int): expected an int in 1..1024

Booleans are not ints here, strings are not numbers and "false" is not a boolean: a value must have
the JSON type the field means.
"""

from __future__ import annotations

import math

import numpy as np


class FieldError(ValueError):
    """A field whose value has the wrong type or lies outside its range."""


def fail(name, value, allowed: str):
    raise FieldError(f"{name}={value!r} ({type(value).__name__}): expected {allowed}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _rule(fn, allowed: str):
    fn.allowed = allowed
    return fn


def integer(lo: int, hi: int):
    """An int in lo..hi (not a bool, not a float such as 64.0, not a string)."""
    allowed = f"an int in {lo}..{hi}"

    def rule(name, value):
        if not _is_int(value) or not lo <= value <= hi:
            fail(name, value, allowed)
        return int(value)

    return _rule(rule, allowed)


def number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    """A finite number in [lo, hi] (open ends where asked); ints are accepted and become floats."""
    if math.isinf(lo) and math.isinf(hi):
        allowed = "a finite number"
    elif math.isinf(hi):
        allowed = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        allowed = f"a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def rule(name, value):
        if not _is_number(value) or not math.isfinite(value):
            fail(name, value, allowed)
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            fail(name, value, allowed)
        return float(value)

    return _rule(rule, allowed)


def boolean():
    """true or false (a JSON boolean; the string "false" is refused, not taken as true)."""
    allowed = "true or false (a boolean, not a string or a number)"

    def rule(name, value):
        if not isinstance(value, (bool, np.bool_)):
            fail(name, value, allowed)
        return bool(value)

    return _rule(rule, allowed)


def choice(options):
    """One of a fixed set of strings."""
    options = sorted(options)
    allowed = f"one of {options}"

    def rule(name, value):
        if not isinstance(value, str) or value not in options:
            fail(name, value, allowed)
        return value

    return _rule(rule, allowed)


def optional(inner):
    """None, or what `inner` accepts."""

    def rule(name, value):
        return None if value is None else inner(name, value)

    return _rule(rule, f"null (None) or {inner.allowed}")


def int_or_pair(lo: int, hi: int):
    """An int (square) or [height, width] of ints in lo..hi, as HF's image_size; a pair becomes a tuple."""
    one = integer(lo, hi)
    allowed = f"an int in {lo}..{hi}, or [height, width] of such ints"

    def rule(name, value):
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                fail(name, value, allowed)
            return tuple(one(f"{name}[{i}]", v) for i, v in enumerate(value))
        if not _is_int(value):
            fail(name, value, allowed)
        return one(name, value)

    return _rule(rule, allowed)


def int_tuple(n: int, lo: int, hi: int, what: str):
    """A list of n ints in lo..hi, e.g. tubelet_size [frames, rows, cols]; becomes a tuple."""
    one = integer(lo, hi)
    allowed = f"{n} ints in {lo}..{hi}, {what}"

    def rule(name, value):
        if not isinstance(value, (list, tuple)) or len(value) != n:
            fail(name, value, allowed)
        return tuple(one(f"{name}[{i}]", v) for i, v in enumerate(value))

    return _rule(rule, allowed)


def finite_numbers(n: int, lo: float, hi: float, lo_open: bool = False):
    """A number, or a list of n numbers, each finite and in range (image_mean / image_std: one per channel)."""
    one = number(lo, hi, lo_open=lo_open)
    allowed = f"{one.allowed} or a list of {n} such numbers (one per channel)"

    def rule(name, value):
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                fail(name, value, allowed)
            return [one(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if not _is_number(value):
            fail(name, value, allowed)
        return one(name, value)

    return _rule(rule, allowed)


def label_names():
    """{index: name}: keys ints (or JSON's strings of ints) 0, 1, ..., values strings; keys become ints."""
    allowed = "an object {index: label name} with keys 0..num_labels-1 (ints, or strings of ints in JSON)"

    def rule(name, value):
        if not isinstance(value, dict):
            fail(name, value, allowed)
        out = {}
        for k, v in value.items():
            key = int(k) if _is_int(k) else int(k) if isinstance(k, str) and k.strip().lstrip("-").isdigit() else None
            if key is None:
                fail(f"{name} key", k, "an int (or a string of one)")
            if not isinstance(v, str):
                fail(f"{name}[{k!r}]", v, "a label name (a string)")
            out[key] = v
        return out

    return _rule(rule, allowed)


def label_ids():
    """{name: index}: the inverse of id2label; keys strings, values ints."""
    allowed = "an object {label name: index}"

    def rule(name, value):
        if not isinstance(value, dict):
            fail(name, value, allowed)
        for k, v in value.items():
            if not isinstance(k, str) or not _is_int(v):
                fail(f"{name}[{k!r}]", v, "an int index, keyed by a label name")
        return {k: int(v) for k, v in value.items()}

    return _rule(rule, allowed)
