"""Shared helpers of the Scenic tests: random params for any variant, the stored fixtures, the error measure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from minivivit import ViViTConfig
from minivivit.weights import init_params

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scenic"


def random_params(config: ViViTConfig, seed: int = 0, head: bool = True, dtype=np.float64) -> dict:
    """Every parameter random (weights.init_params, any variant), N(0, 0.3^2), LayerNorm gains around 1."""
    return init_params(config, seed, head=head, scale=0.3, dtype=dtype)


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref|: the error measure of the tolerances (float64 1e-10, float32 1e-5)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


def load_cases() -> dict:
    """tests/fixtures/scenic/cases.json: {case name: {"config": HF-style dict, "scenic": Scenic config, ...}}."""
    return json.loads((FIXTURES / "cases.json").read_text())


def scenic_flat(case: str) -> dict:
    """The flat Scenic params of a case ('/'-joined names): its family's first case's, plus its own."""
    info = load_cases()["cases"][case]
    flat = {}
    if info["params_from"]:
        flat.update(np.load(FIXTURES / info["params_from"] / "params.npz"))
    flat.update(np.load(FIXTURES / case / "params.npz"))
    return flat


def case_config(case: str) -> ViViTConfig:
    """The case's model as the fixture maker wrote it by hand (not inferred by minivivit)."""
    return ViViTConfig(**load_cases()["cases"][case]["minivivit_config"])


def case_params(case: str, dtype) -> dict:
    from minivivit.convert.scenic import scenic_to_params

    return scenic_to_params(scenic_flat(case), case_config(case), dtype=dtype, source=case)


def inputs(dtype) -> np.ndarray:
    return np.load(FIXTURES / "inputs.npz")["pixel_values"].astype(dtype)  # [2, 6, 3, 8, 16]


def reference(case: str) -> dict:
    return dict(np.load(FIXTURES / case / "reference.npz"))


CASES = sorted(json.loads((FIXTURES / "cases.json").read_text())["cases"]) if (FIXTURES / "cases.json").exists() else []
BASE_CASES = [c for c in CASES if not c.endswith("-repr")]
