"""Models 1-4 op by op on the CUDA backend (numba's simulator) against the stored Scenic float32 references.

Run by tests/scenic/test_variant_api.py::test_cuda_backend_runs_every_variant in its own process with
NUMBA_ENABLE_CUDASIM=1 (see tests/kernels/test_cuda_backend.py for why). By hand, from the repository root:
    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/scenic/cuda_sim_variants.py
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))  # tests/kernels/: cuda_sim_support
from cuda_sim_support import make_shared_arrays_thread_safe  # noqa: E402
from scenic_helpers import case_config, case_params, inputs, reference, rel_err  # noqa: E402

from minivivit import factorized  # noqa: E402
from minivivit.kernels import get_backend  # noqa: E402

cuda = get_backend("cuda")
make_shared_arrays_thread_safe()


@pytest.mark.parametrize("case", ["m2-token", "m3-space_time", "m4"])  # each new kind of block once
def test_variant_on_cuda_equals_scenic(case):
    out = factorized.forward(case_params(case, np.float32), case_config(case), inputs(np.float32)[:1], ops=cuda,
                             output_attentions="full")
    assert rel_err(out.logits, reference(case)["logits32"][:1]) <= 1e-5
    ref = factorized.forward(case_params(case, np.float32), case_config(case), inputs(np.float32)[:1],
                             ops=get_backend("numpy"), output_attentions="full")
    for a, b in zip(out.attentions, ref.attentions):
        for x, y in (zip(a.values(), b.values()) if isinstance(a, dict) else [(a, b)]):
            assert np.abs(x - y).max() <= 1e-5
