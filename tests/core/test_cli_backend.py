"""The commands that run a model choose numba when --backend is not given and numba works, numpy otherwise,
and say on stderr which one ran; --backend is obeyed; `debug compare` keeps the reference by default."""

import argparse
import io
import json

import pytest

import minivivit.kernels
from minivivit.cli import main
from minivivit.commands.common import resolve_backend


def _broken_numba(monkeypatch):
    real = minivivit.kernels.get_backend

    def get_backend(name):
        if name == "numba":
            raise ImportError("No module named 'numba' (simulated)")
        return real(name)

    monkeypatch.setattr(minivivit.kernels, "get_backend", get_backend)


def test_default_is_numba_when_it_imports():
    args, err = argparse.Namespace(backend=None), io.StringIO()
    assert resolve_backend(args, stream=err) == "numba" == args.backend
    assert err.getvalue() == "backend: numba (default; --backend numpy for the reference)\n"


def test_default_falls_back_to_numpy_and_says_why(monkeypatch):
    _broken_numba(monkeypatch)
    args, err = argparse.Namespace(backend=None), io.StringIO()
    assert resolve_backend(args, stream=err) == "numpy"
    assert "backend: numpy (default; numba is not usable here: ImportError: No module named 'numba'" in err.getvalue()


def test_an_explicit_backend_is_kept_and_the_reference_default_stays_numpy():
    err = io.StringIO()
    assert resolve_backend(argparse.Namespace(backend="numpy"), stream=err) == "numpy"
    assert resolve_backend(argparse.Namespace(backend=None), auto=False, stream=err) == "numpy"
    assert err.getvalue().splitlines() == ["backend: numpy (--backend)", "backend: numpy (default: the reference)"]


@pytest.mark.parametrize("broken", [False, True])
def test_demo_and_classify_report_the_backend_they_ran(tmp_path, capsys, monkeypatch, broken):
    if broken:
        _broken_numba(monkeypatch)
    want = "numpy" if broken else "numba"
    assert main(["demo", "--out", str(tmp_path / "a.gif")]) == 0
    assert f"backend: {want} (default" in capsys.readouterr().err
    from PIL import Image

    from minivivit.data import make_clip

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(make_clip(0).frames):  # a folder of frames: classify reads it without PyAV
        Image.fromarray(f).save(frames / f"{i:03d}.png")
    assert main(["classify", str(frames), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["backend"] == want
    assert f"backend: {want} (default" in captured.err


def test_explicit_backend_on_the_command_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "a.gif"), "--backend", "numpy"]) == 0
    assert "backend: numpy (--backend)" in capsys.readouterr().err
