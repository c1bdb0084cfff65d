"""The adversarial suite's machinery: cases, the classification of what happened, and the runner.

A case makes its own inputs in a fresh folder and does one thing a hostile or careless user would do.
What happened is one of

    CLEAR    a clear error: an expected exception type whose message matches the case's pattern
             (for the CLI: exit status 2 and `minivivit CMD: error: ...`, or argparse's usage error)
    OK       a documented behaviour that is not an error (e.g. bfloat16 upcast with a warning), checked
    RAW      a traceback: any other exception, a message that does not say what is wrong, or a crash
    SILENT   a wrong answer: the call returned where an error was due (NaN logits, a file written,
             a half-written file left under the user's name), or an OK case whose check failed
    HANG     the case ran past its timeout and was killed
    PWNED    code from a file ran (the marker file that a hostile payload creates exists)
    CLOBBER  an existing user file was changed or removed

Cases run in worker processes (worker.py) with a memory limit (RLIMIT_AS) and a per-case timeout;
several cases share a worker unless a case asks for its own process (isolated=True).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES = ("CLEAR", "OK", "RAW", "SILENT", "HANG", "PWNED", "CLOBBER")
GOOD = ("CLEAR", "OK")
MEMORY_LIMIT = 3 * 2**30  # RLIMIT_AS of a worker: far below what an unguarded case would allocate
DEFAULT_TIMEOUT = 30.0  # seconds per case (a busy machine); a hang is reported after this
CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, MemoryError, ImportError)


@dataclass
class Case:
    id: str  # "group/what", unique
    run: object  # run(ctx) -> anything; raises for errors
    expect: str = "error"  # "error" (a clear error is due) or "ok" (a documented behaviour; `check` verifies it)
    match: str | None = None  # regex (case-insensitive) the error message must contain to count as CLEAR
    check: object = None  # check(result, ctx) for expect="ok": raise AssertionError for a wrong answer
    types: tuple = CLEAR_TYPES  # exception types that count as a clear error
    isolated: bool = False  # needs a fresh process (process state matters)
    timeout: float = DEFAULT_TIMEOUT
    note: str = ""  # what a user does here, for the report

    @property
    def group(self) -> str:
        return self.id.split("/")[0]


class Context:
    """What a case gets: its own folder (also the working directory), the marker path, file protection."""

    def __init__(self, folder: Path):
        self.dir = folder
        self.marker = folder / "PWNED"  # hostile payloads create this file
        self.protected: dict[Path, bytes | None] = {}
        self.must_not_exist: list[Path] = []
        self.warnings: list[warnings.WarningMessage] = []
        self.planted_partials: set[Path] = set()

    def path(self, name) -> Path:
        return self.dir / name

    def protect(self, path) -> Path:
        """Record a user file (its bytes); if it changes or disappears, the case is CLOBBER."""
        path = Path(path)
        self.protected[path] = path.read_bytes() if path.is_file() else None
        return path

    def no_output(self, path) -> Path:
        """A path that must not exist after the case (a refused write, a half-written file)."""
        self.must_not_exist.append(Path(path))
        return Path(path)

    def plant_partial(self, path) -> Path:
        self.planted_partials.add(Path(path))
        return Path(path)

    def warned(self, pattern: str) -> list[str]:
        return [str(w.message) for w in self.warnings if re.search(pattern, str(w.message), re.IGNORECASE)]


class CliError(Exception):
    """The CLI exited with status 2 and an error message (a clear error when the message matches)."""


def cli(ctx: Context, *argv, env: dict | None = None):
    """Run `minivivit ARGV` in this process; return (status, stdout, stderr) or raise CliError for status 2."""
    from minivivit.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as e:  # argparse: usage error
                code = e.code if isinstance(e.code, int) else 2
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if code == 2 and ("error:" in err.getvalue()):
        raise CliError(err.getvalue().strip())
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# Running one case and classifying the outcome (inside a worker)
# ---------------------------------------------------------------------------------------------


def _digest(data: bytes | None):
    return None if data is None else hashlib.sha256(data).hexdigest()


def run_case(case: Case, root: Path) -> dict:
    """Run a case in a fresh folder under root; return {id, cls, detail, seconds}."""
    folder = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    ctx = Context(folder)
    cwd = os.getcwd()
    t0 = time.perf_counter()
    result, error = None, None
    try:
        os.chdir(folder)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = case.run(ctx)
            except BaseException as e:
                if isinstance(e, KeyboardInterrupt):
                    raise
                error = e
            ctx.warnings = list(caught)
        cls, detail = classify(case, ctx, result, error)
    finally:
        os.chdir(cwd)
    return {"id": case.id, "cls": cls, "detail": detail[:600], "seconds": round(time.perf_counter() - t0, 3)}


def _message(error) -> str:
    return str(error) if not isinstance(error, CliError) else error.args[0]


def classify(case: Case, ctx: Context, result, error) -> tuple[str, str]:
    if ctx.marker.exists():
        return "PWNED", f"the marker {ctx.marker.name} was created by code from the input"
    for path, before in ctx.protected.items():
        now = path.read_bytes() if path.is_file() else None
        if _digest(now) != _digest(before):
            return "CLOBBER", f"{path.name} was {'removed' if now is None else 'changed'}"
    leftovers = [p for p in ctx.must_not_exist if p.exists() or p.is_symlink()]
    partials = [p for p in ctx.dir.rglob("*partial*") if p not in ctx.planted_partials]
    if leftovers or partials:
        names = ", ".join(str(p.relative_to(ctx.dir)) for p in leftovers + partials)
        return "SILENT", f"left {names} behind" + (f" (and raised {type(error).__name__}: {error})" if error else "")
    if case.expect == "ok":
        if error is not None:
            return "RAW", _describe(error)
        try:
            if case.check is not None:
                case.check(result, ctx)
        except AssertionError as e:
            return "SILENT", f"documented behaviour not met: {e}"
        except Exception as e:  # noqa: BLE001
            return "RAW", "check crashed: " + _describe(e)
        return "OK", _short(result)
    if error is None:
        return "SILENT", "returned " + _short(result)
    clear_type = isinstance(error, CliError) or isinstance(error, case.types)
    message = _message(error)
    if clear_type and message and (case.match is None or re.search(case.match, message, re.IGNORECASE | re.DOTALL)):
        return "CLEAR", f"{type(error).__name__}: {message}"
    return "RAW", _describe(error)


def _describe(error) -> str:
    tb = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(error).__name__}{where}: {_message(error)}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


# ---------------------------------------------------------------------------------------------
# The runner (parent process): workers, timeouts, crashes, totals
# ---------------------------------------------------------------------------------------------


def all_cases() -> list[Case]:
    """Every case, from the cases_*.py modules next to this file."""
    import importlib

    sys.path.insert(0, str(HERE))
    cases = []
    for module in sorted(p.stem for p in HERE.glob("cases_*.py")):
        cases.extend(importlib.import_module(module).cases())
    ids = [c.id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate case ids: {duplicates}")
    return cases


@dataclass
class Worker:
    ids: list[str]
    proc: subprocess.Popen = None
    current: str | None = None
    started: float = 0.0
    buffer: bytes = b""
    results: dict = field(default_factory=dict)


def _spawn(ids, env, root) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE / "worker.py"), str(root)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    proc.stdin.write(json.dumps(ids).encode())
    proc.stdin.close()
    return proc


def run_cases(cases: list[Case], jobs: int = 2, env: dict | None = None, progress=None) -> list[dict]:
    """Run cases in worker processes; returns one result dict per case, in the order given."""
    env = dict(os.environ if env is None else env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[threads] = "1"  # small cases; and BLAS thread buffers would eat the RLIMIT_AS on a many-core machine
    by_id = {c.id: c for c in cases}
    shared = [c.id for c in cases if not c.isolated]
    queues = [shared[i::jobs] for i in range(jobs) if shared[i::jobs]] + [[c.id] for c in cases if c.isolated]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="minivivit-adversarial-") as root:
        pending, active = list(queues), []
        while pending or active:
            while pending and len(active) < jobs:
                ids = pending.pop(0)
                active.append(Worker(ids, _spawn(ids, env, root), started=time.monotonic()))
            streams = {w.proc.stdout: w for w in active}
            ready, _, _ = select.select(list(streams), [], [], 0.2)
            for stream in ready:
                w = streams[stream]
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:  # the worker ended
                    w.proc.wait()
                    _finish(w, results, by_id, pending, f"the worker process died (exit {w.proc.returncode})")
                    active.remove(w)
                    continue
                w.buffer += chunk
                *lines, w.buffer = w.buffer.split(b"\n")
                for line in lines:
                    kind, _, payload = line.decode(errors="replace").partition(" ")
                    if kind == "START":
                        w.current, w.started = payload, time.monotonic()
                    elif kind == "RESULT":
                        r = json.loads(payload)
                        results[r["id"]] = w.results[r["id"]] = r
                        w.current = None
                        if progress:
                            progress(r)
            for w in list(active):
                limit = by_id[w.current].timeout if w.current else 120.0  # 120 s: import + startup
                if time.monotonic() - w.started > limit:
                    os.killpg(w.proc.pid, 9)
                    w.proc.wait()
                    stuck = w.current
                    if stuck:
                        results[stuck] = {"id": stuck, "cls": "HANG", "detail": f"still running after {limit:.0f} s",
                                          "seconds": limit}
                        if progress:
                            progress(results[stuck])
                    _finish(w, results, by_id, pending, "the worker hung before starting a case")
                    active.remove(w)
    return [results.get(c.id, {"id": c.id, "cls": "RAW", "detail": "no result", "seconds": 0}) for c in cases]


def _finish(w: Worker, results, by_id, pending, why):
    """After a worker ends: the case it was running crashed it (RAW); the rest go back in the queue."""
    if w.current and w.current not in results:
        results[w.current] = {"id": w.current, "cls": "RAW", "detail": f"{why} during this case", "seconds": 0}
    rest = [i for i in w.ids if i not in results]
    if rest:
        pending.insert(0, rest)


def totals(results: list[dict]) -> dict[str, int]:
    counts = {c: 0 for c in CLASSES}
    for r in results:
        counts[r["cls"]] += 1
    return counts


def format_totals(results: list[dict]) -> str:
    counts = totals(results)
    groups = sorted({r["id"].split("/")[0] for r in results})
    lines = [f"{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
             f"{'group':<12}" + "".join(f"{c:>8}" for c in CLASSES)]
    for g in groups:
        sub = totals([r for r in results if r["id"].startswith(g + "/")])
        lines.append(f"{g:<12}" + "".join(f"{sub[c]:>8}" for c in CLASSES))
    return "\n".join(lines)


def equals(expected):
    """A check for expect="ok" cases: the result equals `expected`."""
    def check(result, ctx):
        assert result == expected, f"got {result!r}, expected {expected!r}"

    return check
