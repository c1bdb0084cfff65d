"""Models 1-4 against the original Scenic code (stored references of tests/fixtures/scenic/, written by
make_scenic_fixtures.py with JAX on the CPU): logits, every stored intermediate and every attention map.

Tolerances (max |ours - Scenic| / max |Scenic|): float64 1e-10, float32 1e-5; stored intermediates and maps
are float32 roundings of Scenic's float64 run, so they are compared at 1e-6. About 3 s in all.
"""

import numpy as np
import pytest
from scenic_helpers import BASE_CASES, CASES, case_config, case_params, inputs, reference, rel_err

from minivivit import factorized
from minivivit.kernels import get_backend
from minivivit.model import vivit_forward

TOL = {np.float64: 1e-10, np.float32: 1e-5}
STORED = 1e-6  # float32-rounded intermediates and maps


def run(case, dtype, backend="numpy", **kwargs):
    config = case_config(case)
    params = case_params(case, dtype)
    if config.is_hf_model:  # HF's Model 1: model.py's forward (the lead's dispatch will route the rest here too)
        return vivit_forward(params, config, inputs(dtype), backend=backend, **kwargs)
    return factorized.forward(params, config, inputs(dtype), ops=get_backend(backend), **kwargs)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_logits_equal_scenic(case, dtype, backend):
    ref = reference(case)
    out = run(case, dtype, backend)
    err = rel_err(out.logits, ref["logits64" if dtype == np.float64 else "logits32"])
    assert err <= TOL[dtype], f"{case} {backend} {dtype.__name__}: logits differ from Scenic by {err:.2e}"
    if "pre_logits64" in ref:  # Scenic's pre_logits Dense output; its nn.tanh comes after the module
        assert rel_err(out.pooler_output, np.tanh(ref["pre_logits64"])) <= TOL[dtype]


def _scenic_intermediates(case, ref, config):
    """Scenic's recorded module outputs -> {our trace name: array in our layout}."""
    B = ref["logits64"].shape[0]
    t, h, w = config.grid
    out = {}
    for key, a in ref.items():
        if not key.startswith("out:"):
            continue
        enc, module, *rest = key[4:].split("/")
        prefix = {"Transformer": "", "SpatialTransformer": "spatial.", "TemporalTransformer": "temporal."}[enc]
        if enc == "SpatialTransformer":  # [t, B, n_s, D] (one array per time slice) -> [B*t, n_s, D]
            a = a.transpose(1, 0, 2, 3).reshape(B * t, *a.shape[2:])
        if rest:  # Model 3: encoderblock_0/LayerNorm_time or _space
            name = f"blocks.{module.split('_')[1]}.{rest[0].split('_')[1]}.ln"
        elif module == "posembed_input":
            name = f"{prefix}embed" if prefix else "embed.out"
        elif module == "encoder_norm":
            name = f"{prefix}norm" if prefix else "final_norm"
        else:
            name = f"{prefix}blocks.{module.split('_')[1]}.out"
            a = a.reshape(a.shape[0], -1, a.shape[-1]) if a.ndim == 4 and not prefix else a  # Model 4 [B, t, S, D]
        out[name] = a
    return out


@pytest.mark.parametrize("case", BASE_CASES)
def test_every_stored_intermediate_equals_scenic(case):
    config, ref = case_config(case), reference(case)
    wanted = _scenic_intermediates(case, ref, config)
    assert len(wanted) >= 4, f"{case}: the fixture should hold at least the embeddings, blocks and final norm"
    seen = {}
    run(case, np.float64, tap=lambda name, a: seen.setdefault(name, a))
    for name, a in wanted.items():
        assert name in seen, f"{case}: no trace name {name!r} (Scenic {a.shape})"
        err = rel_err(seen[name], a)
        assert err <= STORED, f"{case}: {name} differs from Scenic by {err:.2e}"


def _scenic_maps(case, ref, config):
    """Scenic's softmax outputs, in call order -> the entries of our ViViTOutput.attentions."""
    maps = [ref[k] for k in sorted(k for k in ref if k.startswith("softmax:"))]
    L, t = config.num_hidden_layers, config.grid[0]
    B = ref["logits64"].shape[0]
    kind = config.attention_type
    if kind == "spacetime":
        return maps
    if kind == "factorized_encoder":  # per spatial layer, one [B, nh, n, n] per time slice; then temporal layers
        spatial = [np.stack(maps[i * t:(i + 1) * t], axis=1) for i in range(L)]  # [B, t, nh, n_s, n_s]
        return spatial + maps[L * t:]
    per_layer = [maps[2 * i: 2 * i + 2] for i in range(L)]
    if kind == "factorized_self_attention_block":  # [B*G, nh, n, n] -> [B, G, nh, n, n], in attention_order
        axes = config.attention_order.split("_")
        return [{ax: m.reshape(B, -1, *m.shape[1:]) for ax, m in zip(axes, pair)} for pair in per_layer]
    # Model 4, Scenic's einsum layout: time [B, t_q, S, h, t_k], space [B, t, S_q, h, S_k]
    return [{"time": tm.transpose(0, 2, 3, 1, 4), "space": sp.transpose(0, 1, 3, 2, 4)} for tm, sp in per_layer]


@pytest.mark.parametrize("backend,dtype", [("numpy", np.float64), ("numba", np.float32)])
@pytest.mark.parametrize("case", [c for c in BASE_CASES if c != "m1-gap"])
def test_attention_maps_equal_scenic(case, backend, dtype):
    config, ref = case_config(case), reference(case)
    expected = _scenic_maps(case, ref, config)
    got = run(case, dtype, backend, output_attentions="full").attentions
    assert len(got) == len(expected) == factorized.num_attention_layers(config)
    for i, (ours, theirs) in enumerate(zip(got, expected)):
        pairs = ours.items() if isinstance(ours, dict) else [("", ours)]
        for axis, m in pairs:
            s = theirs[axis] if axis else theirs
            assert m.shape == s.shape, f"{case} layer {i} {axis}: {m.shape} vs Scenic {s.shape}"
            err = float(np.abs(m - s).max())
            assert err <= 1e-5 if dtype == np.float32 else err <= STORED, f"{case} layer {i} {axis}: {err:.2e}"


# ---- planted bugs: the comparison above would catch them --------------------------------------


def test_planted_bug_model4_head_halves_swapped_is_caught(monkeypatch):
    good = rel_err(run("m4", np.float64).logits, reference("m4")["logits64"])
    swapped = lambda x: (x[..., x.shape[-1] // 2:], x[..., :x.shape[-1] // 2])  # noqa: E731
    monkeypatch.setattr(factorized.blocks, "time_space_halves", swapped)
    bad = rel_err(run("m4", np.float64).logits, reference("m4")["logits64"])
    assert good <= 1e-10 and bad > 1e-3, (good, bad)


@pytest.mark.parametrize("case", BASE_CASES)
def test_planted_bug_tokens_flattened_hwt_is_caught(case, monkeypatch):
    """Tubelet tokens flattened (h, w, t) instead of (t, h, w): every variant's logits move far off."""
    numpy_ops = get_backend("numpy")
    t, h, w = case_config(case).grid

    class HWTOps:  # the numpy backend with a tubelet embedding that orders its tokens (h, w, t)
        def __getattr__(self, name):
            return getattr(numpy_ops, name)

        @staticmethod
        def tubelet_embed(x, wt, b, tubelet):
            p = numpy_ops.tubelet_embed(x, wt, b, tubelet)  # [B, P, D] in (t, h, w) order
            return p.reshape(p.shape[0], t, h, w, -1).transpose(0, 2, 3, 1, 4).reshape(p.shape)

    config = case_config(case)
    params = case_params(case, np.float64)
    if config.is_hf_model:
        import minivivit.model as model_mod
        monkeypatch.setattr(model_mod, "get_backend", lambda name: HWTOps())
        out = vivit_forward(params, config, inputs(np.float64))
    else:
        out = factorized.forward(params, config, inputs(np.float64), ops=HWTOps())
    bad = rel_err(out.logits, reference(case)["logits64"])
    assert bad > 1e-3, f"{case}: an (h, w, t) token order moved the logits by only {bad:.1e}"
