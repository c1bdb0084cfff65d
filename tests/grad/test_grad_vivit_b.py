"""The real ViViT-B shape (12 layers, D = 768, 32 x 224 x 224, 3137 tokens), random weights: every parameter
gradient and dL/dx against torch autograd (SDPA attention), on the numpy and the numba backward, max |ours - torch| / max(1, max |torch|) <= 1e-4."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="gradient parity needs the dev extra (torch + transformers)")
transformers = pytest.importorskip("transformers")

from reference import random_clip, random_hf_model, to_minivivit  # noqa: E402
from torch_reference import grad_errors, rel, torch_backward  # noqa: E402

from minivivit.bench.harness import vivit_b  # noqa: E402
from minivivit.grad import backward  # noqa: E402

FULL = vivit_b()  # ViViTConfig's defaults are ViViT-B


@pytest.fixture(scope="module")
def vivit_b_case():
    hf = random_hf_model("classifier", seed=80, attn_implementation="sdpa", **FULL)
    model = to_minivivit(hf)
    x, y = random_clip(model.config, seed=9), np.array([123])
    loss, grads, dx, _ = torch_backward(hf, x, labels=y, attentions=False)
    del hf
    return model, x, y, loss, grads, dx


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_vivit_b_gradients_equal_torch(vivit_b_case, backend):
    model, x, y, loss, grads, dx = vivit_b_case
    ours = backward(model, x, y, input_grad=True, backend=backend)
    errs = grad_errors(ours.params, grads)
    errs["pixel_values"] = rel(ours.pixel_values, dx)
    worst = max(errs, key=errs.get)
    print(f"ViViT-B gradients ({backend}): worst {worst} {errs[worst]:.2e}, dL/dx {errs['pixel_values']:.2e}, loss {ours.loss:.6f}"
          f" vs {loss:.6f}")
    bad = {k: v for k, v in errs.items() if not v <= 1e-4}
    assert abs(ours.loss - loss) <= 1e-4 * max(1, loss)
    assert not bad, f"ViViT-B gradient parity failures (tol 1e-4): {bad}; worst overall {max(errs.values()):.2e}"
