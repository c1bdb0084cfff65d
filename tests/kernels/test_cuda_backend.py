"""backend="cuda", tested from the main pytest process through subprocesses with a controlled environment.

Why subprocesses: numba.cuda decides at its first import whether it is numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) or the real driver, and other tests in this process import numba. The kernel and
end-to-end checks need the simulator on (there is no GPU here); the PTX compile needs it off. A fresh
`python -m pytest FILE` gets exactly the environment it needs, whatever this process already imported:

    cuda_sim_kernels.py   each kernel vs its NumPy twin (simulator; also on a real GPU when there is one)
    cuda_sim_forward.py   a tiny ViViT end to end vs the numpy backend (idem)
    (cuda_sim_support.py  makes the simulator's shared arrays thread-safe; used by both)
    cuda_ptx_checks.py    every kernel compiles to PTX for sm_80 and sm_90, no simulator, no GPU needed

Together they take about 1.5-2 minutes on 2 cores (the simulator runs each GPU thread as a Python thread).
"""

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[1]  # the repository root


def run_python(args, simulator: bool, timeout=900) -> subprocess.CompletedProcess:
    """Run `python ARGS` from the repository root with the simulator switched on or off."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def run_pytest(file: str, simulator: bool) -> None:
    r = run_python(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / file)], simulator)
    where = "under NUMBA_ENABLE_CUDASIM=1" if simulator else "without the simulator"
    assert r.returncode == 0, f"{file} {where} failed (exit {r.returncode}):\n{r.stdout[-8000:]}\n{r.stderr[-3000:]}"
    print(r.stdout.strip().splitlines()[-1])  # "N passed in S s", shown with pytest -s


ASK_FOR_CUDA = """
import minivivit
from minivivit.kernels import get_backend
try:
    get_backend("cuda")
    print("AVAILABLE")
except RuntimeError as e:
    print("ERROR:", e)
"""


@pytest.fixture(scope="module")
def without_simulator() -> str:
    """What backend="cuda" says on this machine with the simulator off: "AVAILABLE" or "ERROR: ..."."""
    r = run_python(["-c", ASK_FOR_CUDA], simulator=False, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_minivivit_never_imports_cuda():
    code = ("import sys, minivivit, minivivit.kernels\n"
            "minivivit.kernels.get_backend('numpy')\n"
            "print([m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda', 'minivivit.kernels.cuda'))])")
    for simulator in (False, True):
        r = run_python(["-c", code], simulator=simulator, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "[]", f"import minivivit imported CUDA modules: {r.stdout}"


def test_no_gpu_and_no_simulator_gives_a_clear_error(without_simulator):
    if without_simulator == "AVAILABLE":
        pytest.skip("this machine has a working CUDA GPU, so there is no error to check")
    assert without_simulator.startswith("ERROR: backend='cuda' found no CUDA GPU"), without_simulator
    for advice in ("nvidia-smi", "NUMBA_ENABLE_CUDASIM=1", "backend='numba'"):
        assert advice in without_simulator, f"the error should mention {advice!r}: {without_simulator}"


def test_simulator_switched_on_too_late_is_explained(without_simulator):
    if without_simulator == "AVAILABLE":
        pytest.skip("this machine has a working CUDA GPU")
    code = "import os\nimport numba.cuda\nos.environ['NUMBA_ENABLE_CUDASIM'] = '1'\n" + ASK_FOR_CUDA
    r = run_python(["-c", code], simulator=False, timeout=120)
    assert "only after numba.cuda had been imported" in r.stdout, r.stdout + r.stderr


def test_missing_numba_cuda_says_how_to_install():
    code = "import sys\nsys.modules['numba.cuda'] = None  # as if numba-cuda were not installed\n" + ASK_FOR_CUDA
    r = run_python(["-c", code], simulator=True, timeout=120)
    assert "ERROR: backend='cuda' needs numba-cuda" in r.stdout and "minivivit[cuda]" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("file", ["cuda_sim_kernels.py", "cuda_sim_forward.py"])
def test_under_the_simulator(file):
    run_pytest(file, simulator=True)


@pytest.mark.skipif(find_spec("numba_cuda") is None, reason="compile_ptx needs numba-cuda[cu13]: pip install -e '.[cuda]'")
def test_every_kernel_compiles_to_ptx_for_sm80_and_sm90():
    run_pytest("cuda_ptx_checks.py", simulator=False)


@pytest.mark.parametrize("file", ["cuda_sim_kernels.py", "cuda_sim_forward.py"])
def test_on_a_real_gpu(file, without_simulator):
    if without_simulator != "AVAILABLE":
        pytest.skip("no CUDA GPU on this machine (the same checks ran under the simulator)")
    run_pytest(file, simulator=False)
