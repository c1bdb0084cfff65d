"""A non-editable install works: build the wheel, install it into a fresh virtualenv, run `minivivit demo`.

The fresh venv gets minivivit only from the wheel (--no-deps); its dependencies come from this test's
environment through a .pth line (no download). Nothing of the repository is on its path, so the demo model
must come from inside the wheel.
"""

import site
import subprocess
import sys
import zipfile

import conftest
import pytest

pytestmark = pytest.mark.slow


def run(args, **kwargs) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    command = " ".join(map(str, args))
    assert r.returncode == 0, f"{command} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
         str(conftest.ROOT)])
    (path,) = out.glob("minivivit-*.whl")
    return path


def test_the_wheel_carries_the_demo_weights(wheel):
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo("minivivit/assets/vivit-demo.safetensors")  # a real file, not a link
        assert info.file_size == (conftest.ROOT / "weights" / "vivit-demo.safetensors").stat().st_size
        names = z.namelist()
    assert "minivivit/explain/explore/static/explorer.js" in names, "the explorer's script must ship"
    assert not any(n.startswith(("tests/", "notebooks/", "weights/")) for n in names), "only the package is shipped"


def test_a_fresh_install_runs_the_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    purelib = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (tmp_path / "venv" / purelib.split(str(venv) + "/", 1)[1] / "test-deps.pth").write_text("\n".join(deps) + "\n")
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "MPLBACKEND": "Agg"}
    where = run([str(py), "-c", "import minivivit; print(minivivit.__file__)"], cwd=work, env=env).stdout
    assert where.startswith(str(venv)), f"minivivit was imported from {where}, not from the installed wheel"
    demo = run([str(venv / "bin" / "minivivit"), "demo", "--out", "demo.gif"], cwd=work, env=env)
    assert "prediction:" in demo.stdout and (work / "demo.gif").stat().st_size > 1000
