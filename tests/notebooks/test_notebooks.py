"""The teaching notebooks: stored as jupytext py:percent text, executed top to bottom by nbclient.

Storage rule (enforced here): notebooks/NN_name.py in py:percent format is the only source of
truth. No .ipynb is committed; a paired .ipynb that Jupyter creates next to a .py is ignored by
notebooks/.gitignore. Each notebook has an exercise cell, a collapsed solution cell, an assert that
checks the answer, and ends with a check that prints "✓".

Execution: nbclient with kernel_name="python3", whose kernel is started with *this* interpreter
(sys.executable), so a fresh CI venv never picks up some other python's kernelspec. A failing cell
raises CellExecutionError, which fails the test (proved by test_a_failing_cell_fails_the_run).
Notebooks 1, 2 and 4 use the bundled demo model (weights/vivit-demo.safetensors); notebook 6 needs
torch + transformers (the dev extra). MPLBACKEND=Agg in the kernel's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import conftest
import pytest

jupytext = pytest.importorskip("jupytext", reason="notebook tests need the notebooks extra (jupytext, nbclient)")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient.exceptions import CellExecutionError
from traitlets import default

ROOT = conftest.ROOT
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
DEMO_WEIGHTS = ROOT / "weights" / "vivit-demo.safetensors"  # = minivivit.DEFAULT_WEIGHTS
CELL_TIMEOUT = 240  # seconds; a hang guard, not a timing target (timings live in benchmarks/)


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


class ThisPythonKernelSpecs(KernelSpecManager):
    """Resolve the "python3" kernel to the interpreter running the tests (sys.executable).

    A user-level kernelspec (~/.local/share/jupyter/kernels/python3) or $JUPYTER_PATH could
    otherwise point "python3" at another Python that lacks minivivit or has an old copy of it."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name != "python3":
            return super().get_kernel_spec(kernel_name)
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (this interpreter)",
            language="python",
        )


class ThisPythonKernelManager(KernelManager):
    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self):
        return ThisPythonKernelSpecs(data_dir=self.data_dir)


def read_notebook(path: Path):
    """A py:percent file -> an nbformat notebook (cells, tags and hidden-source metadata included)."""
    return jupytext.read(path, fmt="py:percent")


def run_notebook(nb, cwd: Path, timeout: int = CELL_TIMEOUT):
    """Execute every cell in order in a fresh "python3" kernel; raise CellExecutionError on the first failure."""
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", kernel_manager_class=ThisPythonKernelManager, timeout=timeout,
        resources={"metadata": {"path": str(cwd)}}, allow_errors=False,
    )
    client.execute()
    return nb


def text_of(cell) -> str:
    """All the text a code cell printed (stdout, and text/plain results)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def tiny_notebook(*sources):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture
def agg(monkeypatch):
    """The kernel inherits this environment: headless matplotlib."""
    monkeypatch.setenv("MPLBACKEND", "Agg")


# ---------------------------------------------------------------------------------------------
# The runner itself can fail, and uses the right interpreter
# ---------------------------------------------------------------------------------------------


def test_a_failing_cell_fails_the_run(tmp_path, agg):
    nb = tiny_notebook("x = 1", "assert x == 2, 'planted failure'", "print('never reached')")
    with pytest.raises(CellExecutionError, match="planted failure"):
        run_notebook(nb, tmp_path)
    assert text_of(nb.cells[2]) == ""  # execution stopped at the failing cell


def test_kernel_is_this_interpreter_and_headless(tmp_path, agg):
    nb = run_notebook(tiny_notebook(
        "import sys, os, matplotlib; print(sys.executable); print(matplotlib.get_backend()); print(os.getcwd())"), tmp_path)
    executable, backend, cwd = text_of(nb.cells[0]).splitlines()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert backend.lower() == "agg"
    assert Path(cwd).resolve() == tmp_path.resolve()


# ---------------------------------------------------------------------------------------------
# Storage: py:percent only, canonical, no committed .ipynb
# ---------------------------------------------------------------------------------------------


def test_there_are_six_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"], [p.name for p in NOTEBOOKS]


def _body(text: str) -> str:
    """The text after the jupytext YAML header (the header carries the writer's version numbers)."""
    assert text.startswith("# ---\n"), "a py:percent notebook starts with jupytext's '# ---' YAML header"
    end = text.index("\n# ---\n", 1)
    return text[end + len("\n# ---\n"):]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_canonical_py_percent(path):
    text = path.read_text(encoding="utf-8")
    nb = read_notebook(path)
    fmt = nb.metadata["jupytext"]["text_representation"]
    assert fmt["format_name"] == "percent", f"{path.name}: jupytext header must say format_name: percent"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "py:percent" in nb.metadata["jupytext"]["formats"]
    again = jupytext.writes(nb, fmt="py:percent")
    assert _body(again) == _body(text), (
        f"{path.name} is not in canonical py:percent form; run: jupytext --to py:percent {path.name} "
        f"(or jupytext --sync after editing the paired .ipynb)")


def test_no_ipynb_is_committed():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", "notebooks"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    ipynb = [p for p in tracked if p.endswith(".ipynb")]
    assert not ipynb, f"notebooks are stored as py:percent only; remove {ipynb} from git (they are regenerated)"
    ignore = (NB_DIR / ".gitignore").read_text()
    assert "*.ipynb" in ignore.split()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_an_exercise_a_hidden_solution_and_a_check(path):
    nb = read_notebook(path)
    cells = code_cells(nb)
    tags = [c.metadata.get("tags", []) for c in cells]
    ex = [i for i, t in enumerate(tags) if "exercise" in t]
    sol = [i for i, t in enumerate(tags) if "solution" in t]
    assert ex, f"{path.name}: no code cell tagged 'exercise'"
    assert sol, f"{path.name}: no code cell tagged 'solution'"
    for i in sol:
        assert cells[i].metadata.get("jupyter", {}).get("source_hidden") is True, \
            f"{path.name}: solution cell {i} must be collapsed (jupyter={{\"source_hidden\": true}})"
    after = "\n".join(c.source for c in cells[max(sol) + 1:])
    assert "assert " in after, f"{path.name}: no assert after the solution checks the student's answer"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        f"{path.name}: the first cell is a markdown title"


# ---------------------------------------------------------------------------------------------
# Execution: every notebook, top to bottom
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, agg):
    nb = read_notebook(path)
    uses_demo = any("minivivit.load()" in c.source for c in code_cells(nb))
    if uses_demo and not (os.environ.get("MINIVIVIT_WEIGHTS") or DEMO_WEIGHTS.exists()):
        pytest.fail(f"{path.name} needs the bundled demo model, and {DEMO_WEIGHTS} is missing: "
                    f"python weights/train_demo.py makes it (see weights/README.md)")
    start = time.perf_counter()
    run_notebook(nb, tmp_path)
    seconds = time.perf_counter() - start
    last = text_of(code_cells(nb)[-1])
    assert "✓" in last, f"{path.name}: the last cell must end with a check that prints ✓; it printed {last!r}"
    print(f"{path.name}: {seconds:.1f} s")


def test_exercise_check_rejects_a_wrong_answer(tmp_path, agg):
    """The exercise assert checks the student's answer: replace notebook 3's exercise with a wrong
    one (a LayerNorm without the epsilon... and without the centring) and the run must fail there."""
    nb = read_notebook(NB_DIR / "03_encoder_block_by_hand.py")
    cells = code_cells(nb)
    ex = next(c for c in cells if "exercise" in c.metadata.get("tags", []))
    assert "def my_layer_norm" in ex.source
    ex.source = "def my_layer_norm(x, g, b, eps):\n    return x / x.std(axis=-1, keepdims=True) * g + b\n"
    with pytest.raises(CellExecutionError, match="my_layer_norm differs") as failure:
        run_notebook(nb, tmp_path)
    assert failure.value.ename == "AssertionError"
