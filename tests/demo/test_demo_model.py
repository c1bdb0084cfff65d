"""The bundled demo model (weights/vivit-demo.safetensors): accuracy, parity with HF, where and when it looks.

Its task (minivivit.data.make_visit_clip): the object visits the four quadrants, the label is the quadrant of
the last visit. Clips come from stream TEST_SEED, which the trainer never touches (it trains on stream 0
and validates on stream 1; weights/train_demo.py). They are regenerated here, never read from disk.

Chance is 1/4. "Near chance" below means <= 40 %: 25 % plus 5 standard deviations of a 200-clip binomial
at p = 1/4 (sqrt(0.25 * 0.75 / 200) = 3.1 points), so a model that still read the label would fail.
"""

import os

import conftest
import numpy as np
import pytest

import minivivit
from minivivit.data import VISIT_LABELS as LABELS
from minivivit.data import make_visit_batch
from minivivit.video.preprocess import preprocess_for

TEST_SEED = 2024
N_ACCURACY, N_ATTENTION = 200, 50
NEAR_CHANCE = 0.25 + 5 * (0.25 * 0.75 / N_ACCURACY) ** 0.5  # 0.406


@pytest.fixture(scope="module")
def model():
    assert minivivit.DEFAULT_WEIGHTS.exists(), f"{minivivit.DEFAULT_WEIGHTS} is missing: it ships with the repo"
    return minivivit.load(minivivit.DEFAULT_WEIGHTS)


@pytest.fixture(scope="module")
def heldout(model):
    """200 fresh clips -> (pixel_values [200, T, C, H, W] via minivivit.preprocess, labels [200], masks)."""
    c = model.config
    frames, labels, masks = make_visit_batch(N_ACCURACY, TEST_SEED, num_frames=c.num_frames, size=c.image_hw[0])
    return preprocess_for(c, frames), labels, masks


@pytest.fixture(scope="module")
def heldout_frames(model):
    c = model.config
    return make_visit_batch(N_ACCURACY, TEST_SEED, num_frames=c.num_frames, size=c.image_hw[0])[:2]


def _logits(model, x, backend="numpy", chunk=25):
    return np.concatenate([model(x[i:i + chunk], backend=backend).logits for i in range(0, len(x), chunk)])


@pytest.fixture(scope="module")
def numpy_logits(model, heldout):
    return _logits(model, heldout[0])


def test_bundled_file_is_the_default_and_small(model, monkeypatch):
    monkeypatch.delenv("MINIVIVIT_WEIGHTS", raising=False)
    assert minivivit.load().config == model.config  # load() with no path is the bundled model
    assert model.labels == list(LABELS)
    assert model.has_head and model.config.num_frames == 16 and model.config.image_hw == (64, 64)
    assert os.path.getsize(minivivit.DEFAULT_WEIGHTS) < 5e6


def test_test_stream_is_not_a_training_stream():
    import importlib.util

    path = conftest.ROOT / "weights" / "train_demo.py"
    spec = importlib.util.spec_from_file_location("train_demo", path)
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)  # NumPy only at import; the trainer never imports torch
    assert TEST_SEED not in (td.TRAIN_SEED, td.VAL_SEED)


def test_heldout_accuracy_numpy(heldout, numpy_logits):
    _, labels, _ = heldout
    acc = float((numpy_logits.argmax(-1) == labels).mean())
    per_class = {LABELS[k]: float((numpy_logits.argmax(-1)[labels == k] == k).mean()) for k in range(len(LABELS))}
    print(f"held-out accuracy (numpy backend, {N_ACCURACY} clips of stream {TEST_SEED}): {acc:.3f} {per_class}")
    assert acc >= 0.95, per_class


def test_permuted_position_embeddings_drop_to_chance(model, heldout, numpy_logits):
    """The same clips and weights, the 256 tubelet position embeddings shuffled among the tubelets (CLS's kept):
    the model no longer knows where or when a tubelet is, and accuracy falls to chance."""
    x, labels, _ = heldout
    pos = model.params["embed"]["pos"]  # [1 + 256, D]
    perm = np.random.default_rng(0).permutation(len(pos) - 1) + 1
    params = {**model.params, "embed": {**model.params["embed"], "pos": np.concatenate([pos[:1], pos[perm]])}}
    shuffled = _logits(minivivit.Model(params, model.config), x)
    acc = float((shuffled.argmax(-1) == labels).mean())
    base = float((numpy_logits.argmax(-1) == labels).mean())
    print(f"position embeddings permuted: accuracy {acc:.3f} (unpermuted {base:.3f}; chance 0.25)")
    assert base >= 0.95 and acc <= NEAR_CHANCE


def test_shuffled_frames_drop_to_chance_and_reversed_frames_to_zero(model, heldout_frames, numpy_logits):
    """The frame order carries the label: each clip's 16 frames shuffled (a seeded permutation per clip) leaves
    frames whose set is independent of the label, so accuracy falls to chance; reversed, every clip ends in the
    quadrant it started from (never the label), and a model that reads "when" is wrong on (nearly) every clip."""
    frames, labels = heldout_frames  # uint8 [200, T, H, W, 3], [200]
    rng = np.random.default_rng(1)
    shuffled = np.stack([clip[rng.permutation(len(clip))] for clip in frames])
    acc = float((_logits(model, preprocess_for(model.config, shuffled)).argmax(-1) == labels).mean())
    rev = float((_logits(model, preprocess_for(model.config, frames[:, ::-1])).argmax(-1) == labels).mean())
    base = float((numpy_logits.argmax(-1) == labels).mean())
    print(f"frames shuffled: accuracy {acc:.3f}; reversed: {rev:.3f} (in order {base:.3f}; chance 0.25)")
    assert base >= 0.95 and acc <= NEAR_CHANCE and rev <= 0.05


def _hf_from_file(model):
    """An HF VivitForVideoClassification holding the committed file's weights.

    The inverse of the converter, written out here from HF's own (v5) parameter names and layouts,
    and loaded with strict=True so that every HF parameter is set. HF then runs its own forward pass.
    """
    import torch
    from transformers import VivitConfig, VivitForVideoClassification

    d = model.config.to_hf_dict()
    d.pop("model_type")
    hf = VivitForVideoClassification(VivitConfig(**d, attn_implementation="eager"))
    p, c = model.params, model.config
    tt, ph, pw = c.tubelet_size
    D = c.hidden_size
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    sd = {
        "vivit.embeddings.cls_token": t(p["embed"]["cls"].reshape(1, 1, D)),
        "vivit.embeddings.position_embeddings": t(p["embed"]["pos"][None]),
        # ours [tt*ph*pw*C, D] in (frame, row, col, channel) order -> Conv3d [D, C, tt, ph, pw]
        "vivit.embeddings.patch_embeddings.projection.weight":
            t(p["embed"]["proj"]["w"].reshape(tt, ph, pw, c.num_channels, D).transpose(4, 3, 0, 1, 2)),
        "vivit.embeddings.patch_embeddings.projection.bias": t(p["embed"]["proj"]["b"]),
        "vivit.layernorm.weight": t(p["norm"]["g"]), "vivit.layernorm.bias": t(p["norm"]["b"]),
        "classifier.weight": t(p["head"]["w"].T), "classifier.bias": t(p["head"]["b"]),
    }
    for i, blk in enumerate(p["blocks"]):
        pre = f"vivit.layers.{i}."
        for ours, theirs in (("ln1", "layernorm_before"), ("ln2", "layernorm_after")):
            sd[pre + theirs + ".weight"], sd[pre + theirs + ".bias"] = t(blk[ours]["g"]), t(blk[ours]["b"])
        for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
            sd[pre + f"attention.{theirs}.weight"] = t(blk["attn"][ours]["w"].T)  # ours [in, out] -> [out, in]
            sd[pre + f"attention.{theirs}.bias"] = t(blk["attn"][ours]["b"])
        for name in ("fc1", "fc2"):
            sd[pre + f"mlp.{name}.weight"] = t(blk["mlp"][name]["w"].T)
            sd[pre + f"mlp.{name}.bias"] = t(blk["mlp"][name]["b"])
    hf.load_state_dict(sd, strict=True)
    return hf.eval()


@pytest.fixture(scope="module")
def hf_logits(model, heldout):
    """HF transformers' logits on the held-out clips, from the committed weights."""
    pytest.importorskip("torch", reason="parity with HF needs the dev extra (torch + transformers)")
    pytest.importorskip("transformers")
    from reference import hf_forward

    hf = _hf_from_file(model)
    x = heldout[0]
    return np.concatenate([hf_forward(hf, x[i:i + 50]).logits.numpy() for i in range(0, len(x), 50)])


def _rel_err(ours, ref):
    """max |ours - HF| / max(1, max |HF|): the core parity measure (tests/conftest.rel_err)."""
    return float(np.abs(ours.astype(np.float64) - ref).max() / max(1.0, np.abs(ref).max()))


def test_numpy_matches_hf(heldout, numpy_logits, hf_logits):
    labels = heldout[1]
    err = _rel_err(numpy_logits, hf_logits)
    print(f"numpy vs HF on {len(labels)} clips: max rel err {err:.2e}")
    assert err <= 1e-5
    assert np.array_equal(numpy_logits.argmax(-1), hf_logits.argmax(-1))
    assert (hf_logits.argmax(-1) == labels).mean() >= 0.95  # HF, on its own, finds the model accurate


def test_numba_matches_hf(model, heldout, hf_logits):
    pytest.importorskip("numba")
    from minivivit.kernels import get_backend

    try:
        get_backend("numba")
    except NotImplementedError as e:
        pytest.skip(f"no numba backend in this tree yet: {e}")
    numba_logits = _logits(model, heldout[0], backend="numba")
    err = _rel_err(numba_logits, hf_logits)
    print(f"numba vs HF on {len(numba_logits)} clips: max rel err {err:.2e}")
    assert err <= 1e-5
    assert np.array_equal(numba_logits.argmax(-1), hf_logits.argmax(-1))


def test_rollout_looks_at_the_object(model, heldout):
    """CLS attention rollout (minivivit.explain) puts >= 3x the uniform share of its mass on the object's tubelets."""
    from minivivit import explain

    if not hasattr(explain, "rollout_cls") or not hasattr(explain, "tubelet_coverage"):
        pytest.xfail("minivivit.explain has no rollout_cls / tubelet_coverage yet (attention-maps issue)")
    x, _, masks = heldout
    tokens = explain.TokenMap.for_config(model.config)
    ratios = []
    for i in range(0, N_ATTENTION, 10):
        out = model(x[i:i + 10], output_attentions=True)
        mass = tokens.to_grid(explain.rollout_cls(out.attentions))  # [10, t, h, w] per tubelet, CLS left out
        for j in range(len(mass)):
            on_object = explain.tubelet_coverage(masks[i + j], tokens) > 0  # [t, h, w] tubelets the object touches
            share = mass[j][on_object].sum() / mass[j].sum()
            ratios.append(share / on_object.mean())
    print(f"rollout mass on the object / uniform share, {N_ATTENTION} clips: mean {np.mean(ratios):.2f}, "
          f"min {np.min(ratios):.2f}")
    assert np.mean(ratios) >= 3.0


def test_demo_command(tmp_path, monkeypatch, capsys):
    """`minivivit demo`, the README's first command: classifies, writes the GIF, never clobbers a file."""
    from PIL import Image

    from minivivit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "attention.gif").write_bytes(b"a user's file")
    assert main(["demo", "--seed", "5", "--label", "top-left"]) == 0
    printed = capsys.readouterr().out
    assert "prediction: top-left (correct" in printed and "<- true label" in printed
    assert (tmp_path / "attention.gif").read_bytes() == b"a user's file"  # default name taken: a fresh one
    with Image.open(tmp_path / "attention-2.gif") as gif:
        assert gif.n_frames == 16
    assert main(["demo", "--out", "attention.gif"]) == 2  # an explicit --out is not overwritten ...
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "attention.gif").read_bytes() == b"a user's file"
    assert main(["demo", "--out", "attention.gif", "--force", "--seed", "6"]) == 0  # ... unless asked
    with Image.open(tmp_path / "attention.gif") as gif:
        assert gif.n_frames == 16
    assert not list(tmp_path.glob(".*partial"))  # no temporary files left behind
