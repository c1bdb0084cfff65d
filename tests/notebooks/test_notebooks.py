"""The teaching notebooks: stored as jupytext py:percent text, executed top to bottom by nbclient.

Storage rule (enforced here): notebooks/NN_name.py in py:percent format is the only source of
truth. No .ipynb is committed; a paired .ipynb that Jupyter creates next to a .py is ignored by
notebooks/.gitignore, and so is notebooks/_rendered/ (the HTML that notebooks/render.py writes).
Each notebook has an exercise cell, a collapsed solution cell, a check cell right after the solution
(an assert on the student's answer), and ends with a check that prints "✓".

Exercises: the check cell says "not done" (never ✓) while the exercise is left as shipped, ✓ only
for the student's own right answer, and fails (AssertionError) on a wrong one; the hidden solution
is used only so that the rest of the notebook can run. All three are tested for every notebook, in
the one run of the notebook: right after a check cell has run (exercise as shipped), the same kernel
runs a wrong answer and the check again, the solution (as the student's answer) and the check, and
the blank exercise and the check once more — which must say "not done" again, so a check cell must
leave the notebook's state as it found it (it may not draw from a shared random generator, say).

Execution: notebooks/render.py's runner (the same one that renders the HTML): nbclient with
kernel_name="python3" started with *this* interpreter (sys.executable), matplotlib inline as in
Jupyter, and a start-up probe that records which cell made each Figure. A failing cell raises
CellExecutionError, which fails the test (proved by test_a_failing_cell_fails_the_run). Every cell
that made a figure must show an image; no output may hold a progress bar or tqdm's IProgress warning.
Each notebook runs once per session (run_once caches it) and every check reads that run.
Notebooks 1, 2, 4 and 10 use the bundled demo model (weights/vivit-demo.safetensors); 6 needs
torch + transformers (the dev extra).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import conftest
import pytest

jupytext = pytest.importorskip("jupytext", reason="notebook tests need the notebooks extra (jupytext, nbclient)")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from nbclient.exceptions import CellExecutionError

ROOT = conftest.ROOT
NB_DIR = ROOT / "notebooks"
DEMO_WEIGHTS = ROOT / "weights" / "vivit-demo.safetensors"  # = minivivit.DEFAULT_WEIGHTS

_spec = importlib.util.spec_from_file_location("notebook_render", NB_DIR / "render.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)
read_notebook, run_notebook, text_of = render.read_notebook, render.run_notebook, render.text_of
TRIES = ("wrong", "check after the wrong answer", "right", "check after the right answer", "blank",
         "check after the blank exercise")  # what run_once runs after each check cell, in this order

NOTEBOOKS = render.notebooks(NB_DIR)
IDS = [p.stem for p in NOTEBOOKS]
EXPECTED = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]

# A wrong answer for every exercise (in the notebook's order), and what the check cell's assert then says.
WRONG = {
    "01": [("def top_k(logits, labels, k=5):\n    order = np.argsort(logits)[:k]  # ascending: the least likely\n"
            "    return [(labels[i], float(logits[i])) for i in order]\n", "top_k order")],
    "02": [("def my_token(frame, row, col):\n    return 1 + (frame // tt) * h * w + (col // pw) * h + row // ph"
            "  # columns before rows\n", r"my_token\(")],
    "03": [("def my_layer_norm(x, g, b, eps):\n    return x / x.std(axis=-1, keepdims=True) * g + b  # no centring\n",
            "my_layer_norm differs")],
    "04": [("def my_rollout(attentions, alpha=0.5):\n    r = attentions[0].mean(1)\n    for a in attentions[1:]:\n"
            "        r = a.mean(1) @ r  # no identity: the residual path is ignored\n    return r[:, 0, :]\n",
            "my_rollout differs")],
    "05": [("def online_update(m, l, acc, s, v_blk):\n    m_new = np.maximum(m, s.max(axis=1))\n"
            "    p = np.exp(s - m_new[:, None])\n    return m_new, l + p.sum(axis=1), acc + p @ v_blk  # no rescaling\n",
            "online_update is not right")],
    "06": [("def fixed_tubelet_embed(pixel_values, w, b, tubelet):\n"
            "    return port_tubelet_embed(pixel_values, w, b, tubelet)  # the bug left in\n", "fixed_tubelet_embed"),
           ("def fix_mystery(params):\n    return params  # nothing fixed\n", "fix_mystery did not fix")],
    "07": [("def my_layer_norm_backward(dy, x, g, eps):\n"
            "    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)\n"
            "    rows = dy.reshape(-1, dy.shape[-1])\n"
            "    dx = dy * g / np.sqrt(x.var(-1, keepdims=True) + eps)  # forgets that mean and var depend on x\n"
            "    return dx, (rows * xhat.reshape(rows.shape)).sum(0), rows.sum(0)\n", "my_layer_norm_backward")],
    "08": [("def to_time_groups(z, t, S):\n    B, P, D = z.shape\n"
            "    return z.reshape(B * S, t, D)  # no transpose: rows of one group are not one location\n",
            "to_time_groups"),
           ("def to_space_groups(z, t, S):\n    B, P, D = z.shape\n"
            "    return z.reshape(B, S, t, D).transpose(0, 2, 1, 3).reshape(B * t, S, D)  # (h, w, t) order assumed\n",
            "to_space_groups")],
    "09": [("def my_lr(step, total, warmup):\n    return 0.5 * (1.0 + np.cos(np.pi * step / total))  # no warm-up\n",
            "my_lr differs")],
    "10": [("def my_share_on_object(relevance, mask, tubelet):\n    tt, ph, pw = tubelet\n    T, H, W = mask.shape\n"
            "    touched = mask.reshape(T // tt, H // ph, W // pw, -1).any(-1).reshape(-1)  # memory order, not tubelets\n"
            "    return float(relevance[touched].sum() / relevance.sum()), float(touched.mean())\n",
            "my_share_on_object on one object pixel")],
}
EXERCISES = [(p, k) for p in NOTEBOOKS for k in range(len(WRONG.get(p.name[:2], [None])))]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def tiny_notebook(*sources):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def number(path: Path) -> str:
    return path.name[:2]


def exercise_cells(nb):
    """[(exercise, solution, check) cell indices in nb.cells], in order: each exercise cell is followed by its
    solution cell, and the check is the first code cell after the solution."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    tagged = lambda tag: [i for i in code if tag in nb.cells[i].metadata.get("tags", [])]
    ex, sol = tagged("exercise"), tagged("solution")
    assert ex and len(ex) == len(sol), f"expected exercise cells each with a solution cell; got {len(ex)} and {len(sol)}"
    triples = []
    for e, s in zip(ex, sol):
        check = next((i for i in code if i > s), None)
        assert e < s and check is not None and all(not e < x < s for x in ex), \
            "each exercise cell must be followed by its solution cell and then a check cell"
        triples.append((e, s, check))
    return triples


def right_answer(nb, k: int) -> str:
    """Exercise k's solution code under the exercise's name: def solution_x(...) -> def my_x(...)."""
    ex, sol, _ = exercise_cells(nb)[k]
    wanted = re.search(r"def (\w+)\(", nb.cells[ex].source).group(1)
    given = re.search(r"def (\w+)\(", nb.cells[sol].source).group(1)
    return re.sub(rf"\b{given}\b", wanted, nb.cells[sol].source)


def needs_demo_weights(nb, path):
    if any("minivivit.load()" in c.source for c in code_cells(nb)) and not (
            os.environ.get("MINIVIVIT_WEIGHTS") or DEMO_WEIGHTS.exists()):
        pytest.fail(f"{path.name} needs the bundled demo model, and {DEMO_WEIGHTS} is missing: "
                    f"python weights/train_demo.py makes it (see weights/README.md)")


_RUNS: dict[Path, tuple] = {}  # path -> (executed notebook, {check cell: [(cell, error)] for TRIES}, seconds)


def run_once(path: Path, tmp_path_factory):
    """Execute the notebook as shipped (exercises blank), once per test session, trying the answers of WRONG
    and the solutions in each check cell as it goes (TRIES); later calls reuse the run."""
    if path not in _RUNS:
        nb = read_notebook(path)
        needs_demo_weights(nb, path)
        tries = {}
        wrong = WRONG[number(path)]
        for k, (ex, _, check) in enumerate(exercise_cells(nb)):
            blank, test = nb.cells[ex].source, nb.cells[check].source
            tries[check] = [wrong[k][0], test, right_answer(nb, k), test, blank, test]
        start = time.perf_counter()
        try:
            results = render.run_with_extra_cells(nb, tmp_path_factory.mktemp(path.stem), tries)
            _RUNS[path] = (nb, results, time.perf_counter() - start)
        except CellExecutionError as e:
            _RUNS[path] = (None, e, None)
    nb, results, _ = _RUNS[path]
    if nb is None:
        raise results
    return nb, results


@pytest.fixture
def agg(monkeypatch):
    """The kernel inherits this environment: headless matplotlib, as CI has it (the runner draws inline anyway)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")


# ---------------------------------------------------------------------------------------------
# The runner itself can fail, uses the right interpreter, and finds figures without an image
# ---------------------------------------------------------------------------------------------


def test_a_failing_cell_fails_the_run(tmp_path, agg):
    nb = tiny_notebook("x = 1", "assert x == 2, 'planted failure'", "print('never reached')")
    with pytest.raises(CellExecutionError, match="planted failure"):
        run_notebook(nb, tmp_path)
    assert text_of(nb.cells[2]) == ""  # execution stopped at the failing cell


def test_kernel_is_this_interpreter_and_draws_inline(tmp_path, agg):
    nb = run_notebook(tiny_notebook(
        "import sys, os, matplotlib; print(sys.executable); print(matplotlib.get_backend()); print(os.getcwd())"), tmp_path)
    executable, backend, cwd = text_of(nb.cells[0]).splitlines()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert "inline" in backend, f"the runner must draw inline as Jupyter does (got backend {backend!r})"
    assert Path(cwd).resolve() == tmp_path.resolve()


def test_the_figure_check_finds_a_figure_without_an_image(tmp_path, agg):
    """Planted: a cell that makes a figure and closes it unshown, and (the bug CI used to have) plt.show()
    under MPLBACKEND=Agg without inline drawing. The check names exactly those cells."""
    nb = run_notebook(tiny_notebook(
        "import matplotlib.pyplot as plt",
        "fig, ax = plt.subplots(); ax.plot([1, 2]); ax.set(xlabel='x', ylabel='y')",  # drawn
        "fig = plt.figure(); fig.add_subplot().plot([0, 1]); plt.close(fig)",  # made, never shown
        "x = 1"), tmp_path)
    assert [m.split(" (")[0] for m in render.cells_missing_images(nb)] == ["cell 2"]
    headless = run_notebook(tiny_notebook("import matplotlib.pyplot as plt", "plt.plot([1, 2]); plt.show()"), tmp_path,
                            inline=False)
    assert render.cells_missing_images(headless) == ["cell 1 ('plt.plot([1, 2]); plt.show()')"]


def test_extra_cells_run_in_the_same_kernel_and_leave_the_notebook_alone(tmp_path, agg):
    """run_with_extra_cells: the extra cells see the notebook's state, their errors are reported and do not stop
    the run, the notebook cell keeps its own outputs, and a figure made by an extra cell is not counted."""
    nb = tiny_notebook("x = 1\nprint('cell 0')", "import matplotlib.pyplot as plt\nplt.plot([x, 2]); plt.show()",
                       "print('cell 2 sees', x)")
    results = render.run_with_extra_cells(nb, tmp_path, {0: ["print('extra sees', x)", "assert x == 2, 'planted'",
                                                             "x = 5", "import matplotlib.pyplot as plt\nplt.close(plt.figure())"]})
    (seen, e1), (_, e2), (_, e3), (_, e4) = results[0]
    assert text_of(seen) == "extra sees 1\n" and e1 is None
    assert e2 is not None and e2.ename == "AssertionError" and "planted" in str(e2) and e3 is None and e4 is None
    assert text_of(nb.cells[0]) == "cell 0\n" and text_of(nb.cells[2]) == "cell 2 sees 5\n"
    assert nb.metadata["figure_cells"] == [1] and not render.cells_missing_images(nb)


def test_the_noise_check_finds_progress_bars(tmp_path, agg):
    """Planted: tqdm (plain, on stderr) and tqdm.auto in a kernel (a widget with ipywidgets, otherwise
    TqdmWarning: IProgress not found). Each is found."""
    nb = run_notebook(tiny_notebook(
        "from tqdm import tqdm\nfor _ in tqdm(range(3)): pass",
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='Writing model shards'): pass",
        "print('quiet')"), tmp_path)
    found = render.noise_in_outputs(nb)
    assert any(f.startswith("cell 0: a progress bar") for f in found), found
    assert any(f.startswith("cell 1:") for f in found), found
    assert not any(f.startswith("cell 2") for f in found)


def test_minivivit_progress_bars_do_not_warn_without_ipywidgets(tmp_path, agg):
    """minivivit.progress.tqdm in a kernel without ipywidgets: a text bar, no TqdmWarning; tqdm.auto itself (planted,
    after it) prints the warning, so the check would see one."""
    nb = run_notebook(tiny_notebook(
        "import sys\nsys.modules['ipywidgets'] = None  # as if ipywidgets were not installed",
        "from minivivit.progress import tqdm\nfor _ in tqdm(range(3), desc='ours'): pass",
        "from tqdm.auto import tqdm as auto\nfor _ in auto(range(3)): pass"), tmp_path)
    found = render.noise_in_outputs(nb)
    assert not any("IProgress" in f for f in found if f.startswith("cell 1")), found
    assert "ours" in text_of(nb.cells[1])  # the text bar (on stderr)
    assert any(f.startswith("cell 2: tqdm's IProgress warning") for f in found), found


# ---------------------------------------------------------------------------------------------
# Storage: py:percent only, canonical, no committed .ipynb, rendered HTML ignored
# ---------------------------------------------------------------------------------------------


def test_every_notebook_is_listed():
    assert [number(p) for p in NOTEBOOKS] == EXPECTED, [p.name for p in NOTEBOOKS]
    table = (ROOT / "docs" / "notebooks.md").read_text()
    for p in NOTEBOOKS:
        assert f"(../notebooks/{p.name})" in table, f"docs/notebooks.md's table has no row for {p.name}"
    assert set(WRONG) == set(EXPECTED), "every notebook's exercises need wrong answers in WRONG"


def _body(text: str) -> str:
    """The text after the jupytext YAML header (the header carries the writer's version numbers)."""
    assert text.startswith("# ---\n"), "a py:percent notebook starts with jupytext's '# ---' YAML header"
    end = text.index("\n# ---\n", 1)
    return text[end + len("\n# ---\n"):]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
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


def test_no_ipynb_or_rendered_html_is_committed():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", "notebooks"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    ipynb = [p for p in tracked if p.endswith((".ipynb", ".html"))]
    assert not ipynb, f"notebooks are stored as py:percent only; remove {ipynb} from git (they are regenerated)"
    ignore = (NB_DIR / ".gitignore").read_text().split()
    assert "*.ipynb" in ignore and "_rendered/" in ignore


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_has_exercises_hidden_solutions_and_checks(path):
    nb = read_notebook(path)
    triples = exercise_cells(nb)
    assert len(triples) == len(WRONG[number(path)]), f"{path.name}: WRONG needs one wrong answer per exercise"
    for ex, sol, check in triples:
        assert nb.cells[sol].metadata.get("jupyter", {}).get("source_hidden") is True, \
            f"{path.name}: solution cell {sol} must be collapsed (jupyter={{\"source_hidden\": true}})"
        assert "raise NotImplementedError" in nb.cells[ex].source, f"{path.name}: exercise cell {ex} ships blank"
        assert "assert " in nb.cells[check].source, f"{path.name}: the check cell {check} after the solution has no assert"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        f"{path.name}: the first cell is a markdown title"


# ---------------------------------------------------------------------------------------------
# Execution: every notebook, top to bottom, as shipped
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom(path, tmp_path_factory, agg):
    nb, _ = run_once(path, tmp_path_factory)
    last = text_of(code_cells(nb)[-1])
    assert "✓" in last, f"{path.name}: the last cell must end with a check that prints ✓; it printed {last!r}"
    print(f"{path.name}: {_RUNS[path][2]:.1f} s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_figure_is_drawn(path, tmp_path_factory, agg):
    nb, _ = run_once(path, tmp_path_factory)
    missing = render.cells_missing_images(nb)
    assert not missing, f"{path.name}: these cells made a matplotlib figure but show no image: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_progress_bars_or_tqdm_warnings(path, tmp_path_factory, agg):
    nb, _ = run_once(path, tmp_path_factory)
    noise = render.noise_in_outputs(nb)
    assert not noise, f"{path.name}: {noise}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_blank_exercise_says_not_done(path, tmp_path_factory, agg):
    nb, results = run_once(path, tmp_path_factory)
    for _, _, check in exercise_cells(nb):
        again = results[check][TRIES.index("check after the blank exercise")]
        for said, when in ((text_of(nb.cells[check]), "as shipped"), (text_of(again[0]), "when re-run blank")):
            assert "not done" in said and "✓" not in said, (
                f"{path.name}: with the exercise left blank its check must say 'not done' and no ✓ ({when}); "
                f"it printed {said!r}")
        assert again[1] is None


@pytest.mark.parametrize("path, k", EXERCISES, ids=[f"{p.stem}-{k}" for p, k in EXERCISES])
def test_exercise_check_rejects_a_wrong_answer(path, k, tmp_path_factory, agg):
    """Exercise k answered with a plausible wrong answer (WRONG): its check cell fails with an AssertionError."""
    nb, results = run_once(path, tmp_path_factory)
    check = exercise_cells(nb)[k][2]
    defined, checked = results[check][:2]
    assert defined[1] is None, f"{path.name}: the wrong answer itself failed to run: {defined[1]}"
    error = checked[1]
    assert error is not None, f"{path.name}: the check accepted a wrong answer; it printed {text_of(checked[0])!r}"
    assert error.ename == "AssertionError" and re.search(WRONG[number(path)][k][1], str(error)), error


@pytest.mark.parametrize("path, k", EXERCISES, ids=[f"{p.stem}-{k}" for p, k in EXERCISES])
def test_exercise_check_accepts_a_right_answer(path, k, tmp_path_factory, agg):
    """The hidden solution, pasted into exercise k as the student's own answer: its check prints ✓."""
    nb, results = run_once(path, tmp_path_factory)
    check = exercise_cells(nb)[k][2]
    (_, defined), (cell, error) = results[check][2:4]
    assert defined is None and error is None, f"{path.name}: the solution failed in the check: {defined or error}"
    said = text_of(cell)
    assert "✓" in said and "not done" not in said, f"{path.name}: a right answer must get ✓; the check printed {said!r}"


# ---------------------------------------------------------------------------------------------
# Rendering: one command writes every notebook, executed, with its figures, as HTML
# ---------------------------------------------------------------------------------------------


def test_render_writes_html_with_the_figures(tmp_path, agg):
    pytest.importorskip("nbconvert", reason="rendering needs nbconvert (the notebooks extra)")
    notebook = NB_DIR / "03_encoder_block_by_hand.py"
    cmd = [sys.executable, str(NB_DIR / "render.py"), str(notebook), "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    html = (tmp_path / "03_encoder_block_by_hand.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 3, "the rendered page must embed the notebook's figures"
    assert "One encoder block by hand" in html and "matches the library" in html  # the prose and the outputs
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)  # refuses, runs nothing
    assert again.returncode == 1 and "--force" in again.stderr
