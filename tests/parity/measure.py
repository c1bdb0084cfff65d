"""Print the parity numbers the README quotes: the worst max |ours - HF| / max(1, max |HF|) over the config
matrix of test_parity_hf.py (every output, hidden state and attention map), per backend.

    python tests/parity/measure.py [--full]   (from the repository root; needs the dev extra; --full adds ViViT-B)
"""

import sys
import zlib
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from reference import hf_forward, random_clip, random_hf_model, rel_err, to_minivivit  # noqa: E402
from test_parity_hf import CONFIGS  # noqa: E402


def worst_errors() -> dict:
    worst = {}
    for name, overrides in CONFIGS:
        for kind in ("classifier", "base"):
            hf = random_hf_model(kind, seed=zlib.crc32(name.encode()) % 1000, **overrides)
            model = to_minivivit(hf)
            x = random_clip(model.config, batch=2, seed=1)
            ref = hf_forward(hf, x, output_hidden_states=True, output_attentions=True)
            for backend in ("numpy", "numba"):
                ours = model(x, backend=backend, output_hidden_states=True, output_attentions=True)
                if kind == "classifier":
                    pairs = [(ours.logits, ref.logits)]
                else:
                    pairs = [(ours.last_hidden_state, ref.last_hidden_state)]
                    pairs += [(ours.pooler_output, ref.pooler_output)] if ref.pooler_output is not None else []
                pairs += list(zip(ours.hidden_states, ref.hidden_states)) + list(zip(ours.attentions, ref.attentions))
                err = max(rel_err(a, b) for a, b in pairs)
                if err > worst.get(backend, (0.0, ""))[0]:
                    worst[backend] = (err, f"{name}/{kind}")
    return worst


if __name__ == "__main__":
    for backend, (err, where) in worst_errors().items():
        print(f"{backend}: worst {err:.2e} ({where}) over {len(CONFIGS)} configs x 2 heads")


def full_vivit_b_errors(kind: str = "classifier") -> dict:
    """The same measure at the full ViViT-B shape (one 32x224x224 clip), as test_parity_full_vivit_b runs it."""
    from minivivit.bench.harness import vivit_b

    hf = random_hf_model(kind, seed=11, **vivit_b())
    model = to_minivivit(hf)
    x = random_clip(model.config, seed=4)
    ref = hf_forward(hf, x, output_hidden_states=True)
    out = {}
    for backend in ("numpy", "numba"):
        ours = model(x, backend=backend, output_hidden_states=True)
        out[backend] = {"logits": rel_err(ours.logits, ref.logits),
                        "hidden_states": max(rel_err(a, b) for a, b in zip(ours.hidden_states, ref.hidden_states))}
    return out


if __name__ == "__main__" and "--full" in sys.argv:
    for backend, errs in full_vivit_b_errors().items():
        print(f"ViViT-B {backend}: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
