"""minivivit.debug: traces, compare(), interventions, float64 drift, hf_trace and `minivivit debug compare`.

Tests that need the reference stack (torch + transformers) ask for the `hf` fixture and skip without it;
the rest run on the core install with a random-weight minivivit model built here.
"""

from __future__ import annotations

import itertools
import math
import sys

import conftest
import numpy as np
import pytest

import minivivit
from minivivit import debug, layers

random_model = conftest.random_model


def clip(config, batch=1, seed=0):
    return conftest.random_clip(config, batch, seed)


@pytest.fixture(scope="module")
def hf():
    pytest.importorskip("torch", reason="needs the dev extra (torch + transformers)")
    pytest.importorskip("transformers")
    import reference

    return reference


# ---------------------------------------------------------------------------------------------
# trace
# ---------------------------------------------------------------------------------------------


def test_trace_names_order_and_shapes():
    model = random_model()
    t = debug.trace(model, clip(model.config, batch=2))
    block0 = ["ln1", "q", "k", "v", "scores", "probs", "context", "attn_out", "resid1", "ln2", "fc1", "act", "fc2",
              "out"]
    expected = (["embed.patches", "embed.tokens", "embed.out"] + [f"blocks.0.{n}" for n in block0]
                + [f"blocks.1.{n}" for n in block0] + ["final_norm", "logits"])
    assert list(t) == expected
    # TINY: grid (2, 2, 2) -> P = 8 tubelets, N = 9 tokens, D = 24, 3 heads, F = 40
    shapes = {"embed.patches": (2, 8, 24), "embed.tokens": (2, 9, 24), "blocks.1.q": (2, 9, 24),
              "blocks.1.scores": (2, 3, 9, 9), "blocks.1.probs": (2, 3, 9, 9), "blocks.0.fc1": (2, 9, 40),
              "blocks.0.act": (2, 9, 40), "blocks.0.out": (2, 9, 24), "final_norm": (2, 9, 24), "logits": (2, 5)}
    for name, shape in shapes.items():
        assert t[name].shape == shape, name


def test_trace_values_are_those_of_the_forward_pass():
    model = random_model(seed=1)
    x = clip(model.config, batch=2, seed=1)
    t = debug.trace(model, x)
    out = model(x, output_hidden_states=True, output_attentions=True)  # the fused path, no tap
    np.testing.assert_allclose(t["logits"], out.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t["final_norm"], out.last_hidden_state, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t["embed.out"], out.hidden_states[0], rtol=1e-6, atol=1e-6)
    for i in range(2):
        np.testing.assert_allclose(t[f"blocks.{i}.out"], out.hidden_states[i + 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(t[f"blocks.{i}.probs"], out.attentions[i], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(t["blocks.0.probs"].sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(t["blocks.1.act"], layers.gelu_fast(t["blocks.1.fc1"]), rtol=1e-6, atol=1e-7)


def test_include_and_exclude_globs():
    model = random_model()
    t = debug.trace(model, clip(model.config), include=["blocks.1.*", "logits"], exclude="*.scores")
    assert list(t) == ["blocks.1.ln1", "blocks.1.q", "blocks.1.k", "blocks.1.v", "blocks.1.probs",
                       "blocks.1.context", "blocks.1.attn_out", "blocks.1.resid1", "blocks.1.ln2", "blocks.1.fc1",
                       "blocks.1.act", "blocks.1.fc2", "blocks.1.out", "logits"]
    with pytest.raises(ValueError, match="'blocks.2.\\*' matches no trace name"):
        debug.trace(model, clip(model.config), include=["blocks.2.*"])
    with pytest.raises(TypeError, match="minivivit.Model"):
        debug.trace(type("HFish", (), {"named_modules": None})(), clip(model.config))


# ---------------------------------------------------------------------------------------------
# compare (hand-made arrays: every expected number is written out)
# ---------------------------------------------------------------------------------------------


def test_compare_finds_the_first_divergence_with_numbers():
    b = {"x": np.ones((2, 3), np.float32), "y": np.full((2, 3), 2.0, np.float32), "z": np.zeros(4, np.float32)}
    a = {k: v.copy() for k, v in b.items()}
    a["y"][1, 2] += 1e-2  # fails: 1e-2 > 1e-4 + 1e-4 * 2
    a["z"][0] = 1.0  # fails too, later in forward order
    a["x"][0, 0] += 1e-5  # passes: 1e-5 <= 1e-4 + 1e-4 * 1
    r = debug.compare(a, b)
    assert r.first_divergence == "y" and not r.ok and r.missing == []
    assert r["x"].ok and r["x"].max_abs == pytest.approx(1e-5, rel=1e-2)
    y = r["y"]
    assert y.status == "diverged" and y.num_bad == 1 and y.worst == (1, 2)
    assert y.max_abs == pytest.approx(1e-2, rel=1e-3) and y.max_rel == pytest.approx(1e-2 / 2, rel=1e-3)
    assert (y.atol, y.rtol) == (1e-4, 1e-4)  # the float32 defaults
    assert r["z"].max_rel == math.inf  # the reference is all zeros
    text = str(r)
    assert "first divergence: y" in text
    assert next(line for line in text.splitlines() if "<- first divergence" in line).startswith("y ")
    assert debug.compare(b, b).ok and debug.compare(b, b).first_divergence is None


def test_compare_reports_shapes_and_missing_names_without_raising():
    a = {"e": np.zeros((1, 9, 4)), "p": np.zeros((1, 8, 4)), "only_a": np.zeros(1), "q": np.zeros(3)}
    b = {"e": np.zeros((1, 9, 4)), "p": np.zeros((1, 4, 8)), "b1": np.zeros(2), "q": np.zeros(3)}
    r = debug.compare(a, b, labels=("ours", "HF"))
    assert [row.name for row in r.rows] == ["e", "p", "b1", "only_a", "q"]  # b1 right after p, its predecessor in b
    assert r["p"].status == "shape mismatch" and r.first_divergence == "p"
    assert r.missing == ["b1", "only_a"] and r["only_a"].status == "only in a" and r["b1"].status == "only in b"
    assert not r.ok
    text = str(r)
    assert "ours (1, 8, 4) vs HF (1, 4, 8)" in text and "only in HF" in text and "only in ours" in text
    missing_only = debug.compare({"a": np.zeros(1)}, {"a": np.zeros(1), "b": np.zeros(1)})
    assert missing_only.first_divergence is None and not missing_only.ok and missing_only.missing == ["b"]


def test_compare_nan_inf_and_dtype_tolerances():
    nan_both = np.array([1.0, np.nan, np.inf])
    assert debug.compare({"v": nan_both}, {"v": nan_both.copy()}).ok
    r = debug.compare({"v": np.array([1.0, np.nan])}, {"v": np.array([1.0, 2.0])})
    assert r["v"].num_bad == 1 and math.isnan(r["v"].max_abs) and r.first_divergence == "v"
    # a 1e-7 relative difference: float32 rounding, but far too large between two float64 results
    ref = np.linspace(1.0, 2.0, 5)
    off = ref * (1 + 1e-7)
    assert not debug.compare({"v": off}, {"v": ref}).ok  # float64 defaults: atol 1e-10, rtol 1e-9
    assert debug.compare({"v": off.astype(np.float32)}, {"v": ref.astype(np.float32)}).ok
    assert debug.compare({"v": off}, {"v": ref}, atol=0, rtol=1e-6).ok  # explicit tolerances win
    assert debug.compare({"v": off.astype(np.float32)}, {"v": ref}).ok  # mixed: the less precise dtype decides
    with pytest.raises(TypeError, match="two traces"):
        debug.compare([1], {"v": ref})


def test_report_html():
    a = {"blocks.0.<q>": np.ones(3), "logits": np.ones(2)}
    b = {"blocks.0.<q>": np.zeros(3), "logits": np.ones(2)}
    page = debug.compare(a, b)._repr_html_()
    assert page.startswith("<table") and page.count("<tr") == 3  # header + 2 rows
    assert "blocks.0.&lt;q&gt;" in page and "<q>" not in page
    assert "first divergence: blocks.0.&lt;q&gt;" in page


# ---------------------------------------------------------------------------------------------
# Interventions
# ---------------------------------------------------------------------------------------------


def test_replace_with_itself_is_bit_identical_and_zeroing_changes_logits():
    model = random_model(seed=2)
    x = clip(model.config, seed=2)
    plain = debug.run(model, x).logits
    same_fn = debug.run(model, x, replace={"blocks.0.out": lambda a: a}).logits
    traced = debug.trace(model, x, include="blocks.0.out")["blocks.0.out"]
    same_array = debug.run(model, x, replace={"blocks.0.out": traced.copy()}).logits
    assert np.array_equal(plain, same_fn) and np.array_equal(plain, same_array)
    zeroed = debug.run(model, x, replace={"blocks.0.out": np.zeros_like}).logits
    assert np.abs(zeroed - plain).max() > 1e-3
    t = debug.trace(model, x, replace={"blocks.0.out": np.zeros_like}, include=["blocks.0.out", "blocks.1.ln1"])
    assert not t["blocks.0.out"].any()  # the trace shows the replaced array
    np.testing.assert_allclose(t["blocks.1.ln1"], np.broadcast_to(model.params["blocks"][1]["ln1"]["b"], (1, 9, 24)),
                               atol=1e-6)  # LayerNorm of zeros is its bias


def test_replace_errors_say_what_to_do():
    model = random_model()
    x = clip(model.config)
    with pytest.raises(ValueError, match="no intermediate called 'blocks.0.mlp'"):
        debug.run(model, x, replace={"blocks.0.mlp": np.zeros_like})
    with pytest.raises(ValueError, match=r"replace\['blocks.0.fc1'\] has shape \(1, 9, 24\).*needs \(1, 9, 40\)"):
        debug.run(model, x, replace={"blocks.0.fc1": np.zeros((1, 9, 24))})


def test_reorder_frames_follows_the_token_order():
    t, h, w = 3, 2, 2
    tokens = np.zeros((1, 1 + t * h * w, 3))
    for k in range(1, tokens.shape[1]):  # DESIGN.md: token k >= 1 is tubelet j = k-1 at (j // (h*w), ...)
        j = k - 1
        tokens[0, k] = (j // (h * w), (j % (h * w)) // w, j % w)
    tokens[0, 0] = -1  # CLS
    order = [2, 0, 1]
    out = debug.reorder_frames(order, (t, h, w))(tokens)
    assert np.array_equal(out[0, 0], [-1, -1, -1])
    for k in range(1, tokens.shape[1]):
        j = k - 1
        ti, yi, xi = j // (h * w), (j % (h * w)) // w, j % w
        assert np.array_equal(out[0, k], [order[ti], yi, xi])
    patches = debug.reorder_frames(order, (t, h, w))(tokens[:, 1:])  # embed.patches has no CLS
    assert np.array_equal(patches, out[:, 1:])
    with pytest.raises(ValueError, match="permutation of 0..2"):
        debug.reorder_frames([0, 0, 1], (t, h, w))


def test_shuffling_time_after_a_layer_only_permutes_tokens_but_before_positions_changes_logits():
    """Attention without masks is permutation-equivariant and CLS reads all tokens symmetrically: time order only
    reaches the logits through the position embeddings added in embed.out."""
    model = random_model(seed=3, num_frames=8, num_hidden_layers=3)  # t = 4 time slots
    x = clip(model.config, seed=3)
    shuffle = debug.reorder_frames([3, 1, 0, 2], model.config.grid)
    plain = debug.trace(model, x, include=["blocks.2.out", "logits"])
    same = debug.run(model, x, replace={"blocks.1.out": debug.reorder_frames([0, 1, 2, 3], model.config.grid)})
    assert np.array_equal(same.logits, plain["logits"])
    late = debug.trace(model, x, replace={"blocks.1.out": shuffle}, include=["blocks.2.out", "logits"])
    np.testing.assert_allclose(late["blocks.2.out"], shuffle(plain["blocks.2.out"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(late["logits"], plain["logits"], rtol=1e-5, atol=1e-5)
    early = debug.run(model, x, replace={"embed.patches": shuffle}).logits  # before the position embeddings
    assert np.abs(early - plain["logits"]).max() > 1e-3


def test_head_mask_switches_one_head_off():
    model = random_model(seed=4)
    x = clip(model.config, seed=4)
    m = debug.head_mask(model.config, [(0, 1)])
    assert m.shape == (2, 3) and m.sum() == 5 and m[0, 1] == 0
    masked, plain = debug.trace(model, x, head_mask=m), debug.trace(model, x)
    assert not masked["blocks.0.probs"][:, 1].any()
    np.testing.assert_array_equal(masked["blocks.0.probs"][:, [0, 2]], plain["blocks.0.probs"][:, [0, 2]])
    assert np.abs(masked["logits"] - plain["logits"]).max() > 1e-5
    with pytest.raises(ValueError, match="heads 0..2"):
        debug.head_mask(model.config, [(0, 3)])


def test_float64_drift_grows_with_depth():
    model = random_model(seed=0, num_hidden_layers=8, hidden_size=32, num_attention_heads=4, intermediate_size=64)
    drift = debug.precision_drift(model, clip(model.config, seed=0))
    names = ["embed.out"] + [f"blocks.{i}.out" for i in range(8)] + ["final_norm"]
    assert list(drift) == names
    values = [drift[n] for n in names[:-1]]
    assert all(1e-8 < v < 1e-5 for v in values), values  # nonzero, and float32-sized
    assert all(b >= 0.95 * a for a, b in itertools.pairwise(values)), values  # monotone within 5%
    assert values[-1] > 1.1 * values[0], values  # and it really grows


# ---------------------------------------------------------------------------------------------
# hf_trace: parity with HF transformers, hooks, planted faults
# ---------------------------------------------------------------------------------------------

PARITY_CONFIGS = [
    ("classifier", {}),
    ("classifier", {"hidden_act": "gelu", "qkv_bias": False}),
    ("classifier", {"tubelet_size": [1, 4, 4], "num_frames": 3, "image_size": 12}),
    ("classifier", {"num_attention_heads": 5, "hidden_size": 40, "image_size": [32, 48], "tubelet_size": [2, 8, 16]}),
    ("base", {"hidden_act": "quick_gelu", "layer_norm_eps": 1e-3}),
    ("base-no-pooler", {"num_hidden_layers": 3, "num_attention_heads": 1}),
]


@pytest.mark.parametrize("kind,overrides", PARITY_CONFIGS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(PARITY_CONFIGS)])
def test_no_divergence_against_hf(hf, kind, overrides):
    hf_model = hf.random_hf_model(kind.split("-")[0], seed=len(overrides), add_pooling_layer=kind == "base",
                                  **overrides)
    model = hf.to_minivivit(hf_model)
    x = hf.random_clip(model.config, batch=2, seed=5)
    ours, ref = debug.trace(model, x), debug.hf_trace(hf_model, x)
    L = model.config.num_hidden_layers
    assert list(ref) == list(ours) == debug.trace_names(L, head=kind == "classifier", pooler=kind == "base")
    report = debug.compare(ours, ref)
    assert report.ok and report.first_divergence is None, str(report)


def test_hf_trace_reads_hf_outputs_and_leaves_the_model_as_it_was(hf):
    import torch

    hf_model = hf.random_hf_model("classifier", seed=6, attn_implementation="sdpa")
    hf_model.train()
    x = hf.random_clip(hf.to_minivivit(hf_model).config, batch=2, seed=6)
    t = debug.hf_trace(hf_model, x)
    assert hf_model.config._attn_implementation == "sdpa" and hf_model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in hf_model.modules())
    hf_model.eval().set_attn_implementation("eager")
    ref = hf.hf_forward(hf_model, x, output_hidden_states=True, output_attentions=True)
    assert np.array_equal(t["logits"], ref.logits.numpy())
    for i in range(2):  # HF's own outputs, bit for bit
        assert np.array_equal(t[f"blocks.{i}.out"], ref.hidden_states[i + 1].numpy())
        assert np.array_equal(t[f"blocks.{i}.probs"], ref.attentions[i].numpy())
        recomputed = torch.softmax(torch.from_numpy(t[f"blocks.{i}.scores"]), dim=-1).numpy()
        assert np.array_equal(recomputed, t[f"blocks.{i}.probs"])  # the scores HF's softmax saw
    subset = debug.hf_trace(hf_model, x, include=["blocks.1.scores", "embed.tokens", "logits"])
    assert list(subset) == ["embed.tokens", "blocks.1.scores", "logits"]
    assert np.array_equal(subset["embed.tokens"][:, 1:], t["embed.patches"])


def test_hf_trace_without_torch_says_to_install_the_dev_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[dev\]'"):
        debug.hf_trace(object(), np.zeros((1, 4, 3, 32, 32), np.float32))


@pytest.fixture(scope="module")
def converted_with_bad_fc1(hf, tmp_path_factory):
    """An HF checkpoint on disk, its minivivit conversion, and that file with one fc1 weight of block 1 off."""
    d = tmp_path_factory.mktemp("debug")
    hf_model = hf.random_hf_model("classifier", seed=7, num_hidden_layers=3)
    hf_model.save_pretrained(d / "hf")
    good = minivivit.convert(d / "hf", d / "good.safetensors")
    model = minivivit.load(good)
    fc1 = model.params["blocks"][1]["mlp"]["fc1"]
    w = fc1["w"] = fc1["w"].copy()  # loaded weights are read-only views of the mapped file: edit a copy
    w[3, 5] += 0.01 * w.std()  # one weight, by 1% of the weights' spread
    model.save(d / "bad.safetensors")
    return hf_model, d


def test_planted_fault_perturbed_fc1_in_a_converted_checkpoint(hf, converted_with_bad_fc1):
    hf_model, d = converted_with_bad_fc1
    x = hf.random_clip(hf.to_minivivit(hf_model).config, seed=7)
    ref = debug.hf_trace(hf_model, x)
    assert debug.compare(debug.trace(minivivit.load(d / "good.safetensors"), x), ref).ok
    report = debug.compare(debug.trace(minivivit.load(d / "bad.safetensors"), x), ref)
    assert report.first_divergence == "blocks.1.fc1", str(report)
    assert report["blocks.1.fc1"].worst[-1] == 5  # the output unit of the perturbed column
    assert report["blocks.1.act"].status == "diverged"


def test_planted_fault_time_and_height_swapped_in_the_token_order(hf, monkeypatch):
    hf_model = hf.random_hf_model("classifier", seed=8, num_frames=6)  # grid (t, h, w) = (3, 2, 2)
    model = hf.to_minivivit(hf_model)
    x = hf.random_clip(model.config, seed=8)

    def patchify_t_h_swapped(pixel_values, tubelet):
        B, T, C, H, W = pixel_values.shape
        tt, ph, pw = tubelet
        t, h, w = T // tt, H // ph, W // pw
        p = pixel_values.reshape(B, t, tt, C, h, ph, w, pw).transpose(0, 4, 1, 6, 2, 5, 7, 3)  # [B, h, t, w, ...]
        return p.reshape(B, t * h * w, tt * ph * pw * C)

    monkeypatch.setattr(layers, "tubelet_embed", lambda x_, w_, b_, tub: patchify_t_h_swapped(x_, tub) @ w_ + b_)
    report = debug.compare(debug.trace(model, x), debug.hf_trace(hf_model, x))
    assert report.first_divergence == "embed.patches", str(report)


def test_planted_fault_wrong_gelu_variant(hf):
    hf_model = hf.random_hf_model("classifier", seed=9, hidden_act="gelu")  # exact erf GELU
    right = hf.to_minivivit(hf_model)
    wrong = minivivit.Model(right.params, right.config.replace(hidden_act="gelu_new"))  # tanh approximation
    x = hf.random_clip(right.config, seed=9)
    ref = debug.hf_trace(hf_model, x)
    assert debug.compare(debug.trace(right, x), ref).ok
    report = debug.compare(debug.trace(wrong, x), ref)
    assert report.first_divergence == "blocks.0.act", str(report)


# ---------------------------------------------------------------------------------------------
# `minivivit debug compare`
# ---------------------------------------------------------------------------------------------


def test_cli_debug_compare(hf, converted_with_bad_fc1, tmp_path, capsys):
    from PIL import Image

    from minivivit.cli import main

    _, d = converted_with_bad_fc1
    assert main(["debug", "compare", "--hf", str(d / "hf")]) == 0
    out = capsys.readouterr().out
    assert "random N(0, 1) pixel values (1, 4, 3, 32, 32) (seed 0)" in out and "no divergence" in out
    assert "blocks.2.probs" in out

    assert main(["debug", "compare", "--hf", str(d / "hf"), "--weights", str(d / "bad.safetensors")]) == 1
    out = capsys.readouterr().out
    assert "first divergence: blocks.1.fc1" in out

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(frames / f"f{i}.png")
    code = main(["debug", "compare", "--hf", str(d / "hf"), "--video", str(frames), "--include", "blocks.0.*"])
    out = capsys.readouterr().out
    assert code == 0 and f"clip: {frames}" in out and "(1, 4, 3, 32, 32)" in out and "logits" not in out


def test_cli_debug_compare_errors(hf, converted_with_bad_fc1, tmp_path, capsys, monkeypatch):
    from minivivit.cli import main

    _, d = converted_with_bad_fc1
    assert main(["debug", "compare", "--hf", str(tmp_path)]) == 2
    assert "expected an HF model directory with config.json" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["debug", "compare", "--hf", str(d / "hf")]) == 2
    assert "needs torch and transformers" in capsys.readouterr().err
