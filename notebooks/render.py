"""Run every teaching notebook top to bottom and write it, executed, with its figures, as one HTML file each.

    python notebooks/render.py                          # every notebook -> notebooks/_rendered/NN_name.html
    python notebooks/render.py notebooks/03_*.py        # some of them
    python notebooks/render.py --out DIR --force        # elsewhere; --force replaces existing files

notebooks/_rendered/ is git-ignored. Each HTML file is self-contained (figures embedded as PNG), so it reads
in any browser without Jupyter. Needs the notebooks extra (jupytext, nbclient, ipykernel, nbconvert).

This file is also the runner the test suite uses (tests/notebooks/test_notebooks.py imports it), so what
is rendered is exactly what is tested:
  * the kernel is "python3" started with *this* interpreter (sys.executable), never another Python's
    kernelspec;
  * matplotlib draws inline, as in Jupyter (`--matplotlib=inline`, which wins over MPLBACKEND=Agg in the
    environment, the setting that used to make every figure vanish);
  * a probe installed at kernel start-up records which cell made each matplotlib Figure, so a cell that
    made a figure but shows no image can be found (`cells_missing_images`);
  * `noise_in_outputs` finds progress bars and tqdm's "IProgress not found" warning in any output (the
    notebooks switch transformers' bars off, and minivivit.progress never warns), so the tests can fail on them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

NB_DIR = Path(__file__).resolve().parent
ROOT = NB_DIR.parent
DEFAULT_OUT = NB_DIR / "_rendered"
CELL_TIMEOUT = 240  # seconds; a hang guard, not a timing target

# Run in the kernel at start-up, before the first cell: it numbers the notebook's cells as they run (1, 2, ...:
# nbclient runs every non-empty code cell, in order; extra cells the tests run, which start with PROBE_MARK,
# are not counted) and records, for every matplotlib Figure created, the number of the cell that created it.
PROBE_MARK = "# (run by the test suite in the notebook's kernel; not a cell of the notebook)"
_PROBE = """
def _install_notebook_probe():
    import sys, types
    import matplotlib.figure
    probe = sys.modules.setdefault("_notebook_probe", types.ModuleType("_notebook_probe"))
    probe.cell, probe.figures, probe.extra = 0, [], False
    def count(info):
        probe.extra = (info.raw_cell or "").startswith(%r)
        probe.cell += 0 if probe.extra else 1
    get_ipython().events.register("pre_run_cell", count)
    original = matplotlib.figure.Figure.__init__
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if not probe.extra:
            probe.figures.append(probe.cell)
    matplotlib.figure.Figure.__init__ = __init__
_install_notebook_probe()
del _install_notebook_probe
""" % PROBE_MARK
_READ_PROBE = PROBE_MARK + "\nimport json as _j, _notebook_probe as _p; print(_j.dumps(_p.figures)); del _j, _p"

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
NOISE = [  # (what, pattern): things that must never appear in an output
    ("tqdm's IProgress warning", re.compile(r"TqdmWarning|IProgress not found")),
    ("a progress bar", re.compile(r"\d+%\|[^|\n]*\||\d+/\d+ \[\d+:\d+|it/s\]|s/it\]")),
    ("HF's shard/weights loading bar", re.compile(r"Loading checkpoint shards|Loading weights")),
]


def notebooks(directory: Path = NB_DIR) -> list[Path]:
    """The teaching notebooks, in order: NN_name.py."""
    return sorted(Path(directory).glob("[0-9][0-9]_*.py"))


def read_notebook(path):
    """A py:percent file -> an nbformat notebook (cells, tags and hidden-source metadata included)."""
    import jupytext

    return jupytext.read(Path(path), fmt="py:percent")


def _kernel_manager_class():
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager
    from traitlets import default

    class ThisPythonKernelSpecs(KernelSpecManager):
        """Resolve "python3" to the interpreter running this code (a user-level kernelspec or $JUPYTER_PATH
        could otherwise point it at another Python that lacks minivivit or has an old copy of it)."""

        def get_kernel_spec(self, kernel_name):
            if kernel_name != "python3":
                return super().get_kernel_spec(kernel_name)
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Python 3 (this interpreter)", language="python")

    class ThisPythonKernelManager(KernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return ThisPythonKernelSpecs(data_dir=self.data_dir)

    return ThisPythonKernelManager


def run_notebook(nb, cwd, timeout: int = CELL_TIMEOUT, inline: bool = True):
    """Execute every cell in order in a fresh "python3" kernel (raises nbclient's CellExecutionError on the
    first failing cell). Sets nb.metadata["figure_cells"]: for each matplotlib Figure created, the index in
    nb.cells of the cell that created it. inline=False leaves matplotlib's backend to the environment."""
    _execute(nb, cwd, timeout, inline, {})
    return nb


def run_with_extra_cells(nb, cwd, extra: dict[int, list[str]], timeout: int = CELL_TIMEOUT):
    """As run_notebook, and after cell i has run, run each source in extra[i] in the same kernel as a cell of
    its own (not part of nb; its errors do not stop the run). Returns {i: [(that cell, its CellExecutionError or
    None), ...]}. The tests use it to try answers in an exercise's check cell without re-running the notebook."""
    return _execute(nb, cwd, timeout, True, extra)


def _execute(nb, cwd, timeout, inline, extra):
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError

    args = ["--IPKernelApp.exec_lines=" + f"exec({_PROBE!r})"]
    if inline:
        args.append("--matplotlib=inline")
    results, busy = {}, []

    async def run_extra(cell, cell_index, execute_reply):
        if busy or cell_index not in extra or cell is reader:
            return  # (the hook also fires for the extra cells themselves)
        busy.append(True)
        try:
            for source in extra[cell_index]:
                cell = nbformat.v4.new_code_cell(PROBE_MARK + "\n" + source)
                try:
                    await client.async_execute_cell(cell, cell_index)  # (nbclient puts it at nb.cells[cell_index];
                    error = None  # the notebook's own cell is put back right after this hook)
                except CellExecutionError as e:
                    error = e
                results.setdefault(cell_index, []).append((cell, error))
        finally:
            busy.clear()

    reader = nbformat.v4.new_code_cell(_READ_PROBE)
    nb.cells.append(reader)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", kernel_manager_class=_kernel_manager_class(), timeout=timeout,
        resources={"metadata": {"path": str(cwd)}}, allow_errors=False, extra_arguments=args,
        on_cell_executed=run_extra if extra else None,
    )
    try:
        client.execute()
    finally:
        nb.cells.remove(reader)
    ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]  # in run order
    nb.metadata["figure_cells"] = [ran[n - 1] for n in json.loads(text_of(reader)) if n <= len(ran)]
    return results


def text_of(cell) -> str:
    """All the text a code cell printed (stdout, stderr, and text/plain results)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def has_image(cell) -> bool:
    """Does a code cell's output hold a picture (PNG/JPEG/GIF/SVG, or HTML with an embedded image)?"""
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if any(kind in data for kind in IMAGE_TYPES):
            return True
        html = data.get("text/html", "")
        if "<img" in html or "data:image/" in html:
            return True
    return False


def cells_missing_images(nb) -> list[str]:
    """The code cells that created a matplotlib Figure (per the start-up probe) but show no image."""
    made = set(nb.metadata.get("figure_cells", []))
    missing = []
    for i, cell in enumerate(nb.cells):
        if i in made and not has_image(cell):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            missing.append(f"cell {i} ({first[:60]!r})")
    return missing


def noise_in_outputs(nb) -> list[str]:
    """Progress bars, tqdm's IProgress warning or widget outputs in any cell's output (each as 'cell i: what')."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                found.append(f"cell {i}: a widget output (a tqdm.auto bar in a kernel with ipywidgets?)")
            texts = [out.get("text", "")] + [v for k, v in data.items() if k.startswith("text/")]
            for what, pattern in NOISE:
                hit = next((m for t in texts if isinstance(t, str) for m in [pattern.search(t)] if m), None)
                if hit:
                    found.append(f"cell {i}: {what}: {hit.group(0)!r}")
    return found


def to_html(nb) -> str:
    """An executed notebook -> one self-contained HTML page (nbconvert's lab template, images embedded)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    return body


def render(paths, out_dir: Path = DEFAULT_OUT, force: bool = False, log=print) -> list[Path]:
    """Execute each notebook (in a scratch working directory) and write out_dir/NAME.html atomically.
    Refuses to replace an existing file unless force; fails on the first notebook that fails."""
    import tempfile

    sys.path.insert(0, str(ROOT))  # minivivit.fileio, when run as a script from a checkout
    from minivivit.fileio import atomic_output

    out_dir = Path(out_dir)
    targets = [(Path(p), out_dir / f"{Path(p).stem}.html") for p in paths]
    existing = [str(t) for _, t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to replace")
    written = []
    for path, target in targets:
        start = time.perf_counter()
        nb = read_notebook(path)
        with tempfile.TemporaryDirectory(prefix="minivivit-render-") as scratch:
            run_notebook(nb, Path(scratch))
        missing = cells_missing_images(nb)
        if missing:
            raise RuntimeError(f"{path.name}: these cells made a figure but show no image: {'; '.join(missing)}")
        html = to_html(nb)
        with atomic_output(target, overwrite=force) as tmp:
            Path(tmp).write_text(html, encoding="utf-8")
        written.append(target)
        log(f"{path.name}: {time.perf_counter() - start:.1f} s -> {target} ({len(html) / 1e3:.0f} kB)")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute the notebooks and write them as HTML with their figures.")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every notebooks/NN_*.py)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="replace existing HTML files")
    args = parser.parse_args(argv)
    paths = args.paths or notebooks()
    bad = [str(p) for p in paths if not (p.is_file() and p.suffix == ".py")]
    if bad:
        parser.error(f"not a py:percent notebook file: {', '.join(bad)} (expected e.g. notebooks/03_*.py)")
    try:
        render(paths, args.out, args.force)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
