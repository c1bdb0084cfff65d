"""The variants' API around the forward: config fields and their errors, param trees (counted against Scenic's
own count at ViViT-B size), save/load, trace names and shapes, taps, attention capture, head_mask. ~3 s
(plus the CUDA-simulator run, marked slow, ~40 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scenic_helpers import FIXTURES, case_config, case_params, inputs, random_params

from minivivit import ViViTConfig, factorized
from minivivit.kernels import get_backend
from minivivit.weights import check_params, expected_shapes, flatten_params, load_file, save

NUMPY = get_backend("numpy")
KINDS = ["m1-gap", "m1-token-repr", "m2-token", "m2-gap", "m3-time_space", "m3-space_time", "m4"]


def fwd(case, **kw):
    return factorized.forward(case_params(case, np.float64), case_config(case), inputs(np.float64), ops=NUMPY, **kw)


# ---- config ------------------------------------------------------------------------------------


def test_model1_dicts_are_unchanged_and_variants_round_trip(tmp_path):
    assert not {"attention_type", "classifier", "temporal_num_layers", "attention_order",
                "representation_size"} & set(ViViTConfig().to_hf_dict())
    for case in KINDS:
        c = case_config(case)
        p = tmp_path / f"{case}.json"
        p.write_text(c.to_json_string())
        assert ViViTConfig.from_json_file(p) == c
    d = case_config("m3-space_time").to_hf_dict()
    assert d["attention_type"] == "factorized_self_attention_block" and d["attention_order"] == "space_time"
    assert "temporal_num_layers" not in d  # only what differs from HF's Model 1


@pytest.mark.parametrize("kwargs,match", [
    ({"attention_type": "divided"}, r"attention_type='divided' \(str\): expected one of \['factorized_dot_product"),
    ({"classifier": "gmp"}, r"classifier='gmp' \(str\): expected one of \['gap', 'token'\]"),
    ({"attention_type": "factorized_self_attention_block"}, "pass classifier='gap'"),
    ({"attention_type": "factorized_dot_product_attention", "classifier": "gap", "hidden_size": 48,
      "num_attention_heads": 3}, "must be even"),
    ({"attention_order": "space_time"}, "only applies to attention_type='factorized_self_attention_block'"),
    ({"temporal_num_layers": 2}, "only applies to attention_type='factorized_encoder'"),
    ({"attention_type": "factorized_encoder", "temporal_num_layers": 0}, r"temporal_num_layers=0 \(int\): expected an int in 1\.\.1024"),
    ({"representation_size": 0}, r"representation_size=0 \(int\): expected an int in 1\.\.65536"),
])
def test_variant_configs_refuse_what_scenic_does_not_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ViViTConfig(**kwargs)


# ---- params --------------------------------------------------------------------------------------


def test_param_counts_at_vivit_b_equal_scenics():
    """Scenic's own count of its ViViT-B/16x2 models (initialize_model, stored by the fixture maker)."""
    scenic = json.loads((FIXTURES / "scenic_flops_vivit_b.json").read_text())
    for kind, info in scenic.items():
        c = ViViTConfig(attention_type=kind, classifier="token" if kind in ("spacetime", "factorized_encoder")
                        else "gap", num_labels=400)
        ours = sum(int(np.prod(s)) for s in expected_shapes(c, head=True, pooler=False).values())
        assert ours == info["params"], (kind, ours, info["params"])


@pytest.mark.parametrize("case", KINDS)
def test_save_and_load_every_variant(case, tmp_path):
    params, config = case_params(case, np.float32), case_config(case)
    save(tmp_path / "m.safetensors", params, config)
    back, c2 = load_file(tmp_path / "m.safetensors")
    assert c2 == config
    a, b = flatten_params(params), flatten_params(back)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_check_params_names_the_problem():
    config = case_config("m3-time_space")
    flat = flatten_params(case_params("m3-time_space", np.float32))
    flat["blocks.0.time.attn.q.w"] = np.zeros((3, 3), np.float32)
    flat["embed.cls"] = np.zeros(16, np.float32)  # Model 3 has no CLS token
    del flat["blocks.1.space.ln.g"]
    with pytest.raises(ValueError) as e:
        check_params(flat, config)
    msg = str(e.value)
    assert "blocks.0.time.attn.q.w' has shape (3, 3), expected (16, 16)" in msg
    assert "unknown key 'embed.cls'" in msg and "missing key 'blocks.1.space.ln.g'" in msg


def test_model4_and_model1_gap_have_one_tree():
    a = case_config("m4")
    b = a.replace(attention_type="spacetime")
    assert expected_shapes(a, True, False) == expected_shapes(b, True, False)


# ---- traces, taps, captures ----------------------------------------------------------------------


@pytest.mark.parametrize("case", KINDS)
def test_trace_names_are_what_the_tap_sees_and_taps_change_nothing(case):
    seen = []

    def tap(name, a):
        seen.append((name, a.shape))
        return a

    traced = fwd(case, tap=tap)
    assert [n for n, _ in seen] == factorized.trace_names(case_config(case))
    assert np.abs(traced.logits - fwd(case).logits).max() < 1e-12  # explicit path = backend path
    shapes = dict(seen)
    c = case_config(case)
    t, h, w = c.grid
    if c.attention_type == "factorized_encoder":  # the documented shapes
        n_s = h * w + (c.classifier == "token")
        assert shapes["spatial.blocks.0.probs"] == (2 * t, 4, n_s, n_s) and shapes["spatial.pool"] == (2, t, 16)
        assert shapes["temporal.norm"] == (2, t + (c.classifier == "token"), 16)
    if c.attention_type == "factorized_self_attention_block":
        assert shapes["blocks.0.time.probs"] == (2 * h * w, 4, t, t) and shapes["blocks.0.space.ln"] == (2 * t, 8, 16)
        assert shapes["blocks.0.time.out"] == (2, 24, 16)
    if c.attention_type == "factorized_dot_product_attention":
        assert shapes["blocks.0.time.probs"] == (2 * 8, 2, t, t) and shapes["blocks.0.space.context"] == (2 * t, 8, 8)


@pytest.mark.parametrize("case", KINDS)
def test_debug_trace_capture_and_compare_work_for_every_variant(case):
    """The user-level tools on a variant: debug.trace (names from Model.trace_names), debug.compare, and a
    capture whose size estimate equals what it kept; rollout refuses with a message naming what to use."""
    import minivivit
    from minivivit import debug, explain

    model = minivivit.Model(case_params(case, np.float64), case_config(case))
    x = inputs(np.float64)
    trace = debug.trace(model, x)
    assert list(trace) == model.trace_names()
    assert debug.compare(trace, debug.trace(model, x, backend="numba")).ok
    cap = explain.capture(model, x, output_attentions="full")
    kept = sum(m.nbytes for a in cap.attentions for m in (a.values() if isinstance(a, dict) else [a]))
    assert cap.nbytes == kept > 0
    if not model.config.is_hf_model:
        with pytest.raises(ValueError, match="Model 1"):
            explain.cls_rollout(model, x)


def test_an_intervention_on_time_attention_changes_only_what_follows():
    base = fwd("m3-time_space").logits
    uniform = fwd("m3-time_space", tap=lambda n, a: np.full_like(a, 1 / a.shape[-1]) if n == "blocks.1.time.probs" else a)
    assert np.abs(uniform.logits - base).max() > 1e-3


def test_attention_shapes_cls_rows_and_layer_choice():
    out = fwd("m2-token", output_attentions="cls", attention_layers=[0, -1])
    assert len(out.attentions) == 3 and out.attentions[1] is None
    assert out.attentions[0].shape == (2, 3, 4, 9) and out.attentions[2].shape == (2, 4, 4)
    full = fwd("m2-token", output_attentions="full")
    assert np.array_equal(out.attentions[0], full.attentions[0][:, :, :, 0])  # the CLS query's row
    m4 = fwd("m4", output_attentions=True).attentions[0]
    assert m4["time"].shape == (2, 8, 2, 3, 3) and m4["space"].shape == (2, 3, 2, 8, 8)
    assert np.allclose(m4["time"].sum(-1), 1) and np.allclose(m4["space"].sum(-1), 1)
    with pytest.raises(ValueError, match="needs a CLS token"):
        fwd("m4", output_attentions="cls")
    with pytest.raises(ValueError, match="layers 0..2"):
        fwd("m2-token", output_attentions=True, attention_layers=[3])


@pytest.mark.parametrize("case", KINDS)
def test_attention_shapes_predict_the_maps(case):
    config = case_config(case)
    for mode in ("full", "cls") if config.classifier == "token" else ("full",):
        got = fwd(case, output_attentions=mode, attention_dtype=np.float16).attentions
        want = factorized.attention_shapes(config, batch=2, output_attentions=mode)
        shapes = [{k: m.shape for k, m in a.items()} if isinstance(a, dict) else a.shape for a in got]
        assert shapes == want
        dtypes = {m.dtype for a in got for m in (a.values() if isinstance(a, dict) else [a])}
        assert dtypes == {np.dtype(np.float16)}


def test_hidden_states():
    hs = fwd("m2-gap", output_hidden_states=True).hidden_states
    assert [h.shape for h in hs] == [(2, 3, 8, 16)] * 3 + [(2, 3, 16)] * 2
    hs = fwd("m3-time_space", output_hidden_states=True).hidden_states
    assert [h.shape for h in hs] == [(2, 24, 16)] * 3


# ---- head_mask: masking head j = removing its rows of the output projection ----------------------


def _zero_head_rows(params, path, head, d, scale):
    o = params
    for p in path:
        o = o[p]
    o["o"]["w"][head * d:(head + 1) * d] *= scale


@pytest.mark.parametrize("case,paths", [
    ("m1-gap", [("blocks", 1, "attn")]),
    ("m2-token", [("temporal", "blocks", 0, "attn")]),  # layer 2 = the temporal encoder's first block
    ("m3-time_space", [("blocks", 1, "time", "attn"), ("blocks", 1, "space", "attn")]),
    ("m4", [("blocks", 1, "attn")]),
])
def test_head_mask_equals_removing_the_heads_output_rows(case, paths):
    config = case_config(case)
    layer = 2 if case == "m2-token" else 1
    mask = np.ones((factorized.num_attention_layers(config), 4))
    mask[layer, 1], mask[layer, 2] = 0.0, 0.5  # Model 4: head 1 is a time head, head 2 a space head
    masked = factorized.forward(case_params(case, np.float64), config, inputs(np.float64), ops=NUMPY, head_mask=mask)
    params = case_params(case, np.float64)
    for path in paths:
        _zero_head_rows(params, path, 1, 4, 0.0)
        _zero_head_rows(params, path, 2, 4, 0.5)
    surgery = factorized.forward(params, config, inputs(np.float64), ops=NUMPY)
    assert np.abs(masked.logits - surgery.logits).max() < 1e-12
    assert np.abs(masked.logits - fwd(case).logits).max() > 1e-4
    with pytest.raises(ValueError, match=r"head_mask must have shape \(4,\) or"):
        factorized.forward(params, config, inputs(np.float64), ops=NUMPY, head_mask=np.ones(3))


def test_random_params_builder_fits_every_variant():
    for case in KINDS:
        check_params(flatten_params(random_params(case_config(case), seed=3)), case_config(case))


# ---- CUDA, op by op ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cuda_backend_runs_every_variant():
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/scenic/cuda_sim_variants.py"], cwd=root, env=env, capture_output=True, text=True,
                       timeout=900, check=False)
    assert r.returncode == 0, f"{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
