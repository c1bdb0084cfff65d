"""The explorer's data without a browser: what the page embeds equals minivivit's own arrays (computed
independently with capture / explain), the 8-bit full maps stay within their stated error bound, the
size budget holds, the CLI's errors are clear, and the widget's on-demand rows equal
explain.recompute_attention's. Run time: about 15 s (the demo model; one slow ViViT-B-shaped test)."""

import re
from pathlib import Path

import numpy as np
import pytest

import minivivit
from minivivit import cli, explain
from minivivit.explain.explore import budget, build_html, extract
from minivivit.explain.explore.maps import dequantise, quantise_rows

from .conftest import blob_array, read_page

ROLLOUT_ATOL = 2e-6  # float32: the page's forward product vs cls_rollout's backward vector (rounding order)


def _method(payload, name):
    return next(m for m in payload["methods"] if m["id"] == name)


# ---- what is embedded equals the arrays -------------------------------------------------------------------


def test_cls_rows_equal_capture_exactly(demo, demo_page):
    payload, blobs = read_page(demo_page[0])
    raw = _method(payload, "raw")
    assert raw["heads"] == ["0", "1", "2", "3", "mean", "max"]
    rows = blob_array(raw["cls"]["*"], blobs)  # [L, nh + 2, N]
    for layer, ref in enumerate(demo["cls"]):
        ref = ref[0]  # [nh, N] from the forward pass itself (output_attentions="cls")
        assert np.array_equal(rows[layer, :4], ref)
        assert np.array_equal(rows[layer, 4], explain.fuse_heads(ref, "mean", axis=-2))
        assert np.array_equal(rows[layer, 5], explain.fuse_heads(ref, "max", axis=-2))


def test_rollout_rows_equal_cls_rollout(demo, demo_page):
    payload, blobs = read_page(demo_page[0])
    roll = _method(payload, "rollout")
    rows = blob_array(roll["cls"]["*"], blobs)  # [L, 3, N]
    for layer in range(3):
        for i, fusion in enumerate(roll["heads"]):
            ref = explain.rollout(demo["full"][: layer + 1], head_fusion=fusion)[0, 0]  # from capture's full maps
            assert np.abs(rows[layer, i] - ref).max() < ROLLOUT_ATOL, (layer, fusion)
    v, _, _ = explain.cls_rollout(demo["model"], demo["x"], head_fusion="max", end_layer=1)  # what `attention` draws
    assert np.abs(rows[1, 1] - v[0]).max() < ROLLOUT_ATOL


def test_distances_equal_distance_by_layer(demo, demo_page):
    payload, _ = read_page(demo_page[0])
    tokens = explain.TokenMap.for_config(demo["model"].config)
    ref = explain.distance_by_layer(demo["full"], tokens)  # {k: [L, nh]}
    for k in ("space", "time", "cls_share"):
        assert np.allclose(payload["distance"][k], ref[k], atol=1e-6, rtol=0), k


def test_full_maps_within_the_stated_bound(demo, demo_page):
    """Every embedded full map: |page value - capture's map| <= row max / 510 (+ float32 rounding)."""
    payload, blobs = read_page(demo_page[0])
    worst = 0.0
    for m in payload["methods"]:
        assert len(m["full"]) == 3 * len(m["heads"])  # the demo's default budget holds every map
        for key, unit in m["full"].items():
            layer, head = map(int, key.split(":"))
            q, scale = blob_array(unit["q"], blobs), blob_array(unit["scale"], blobs)  # [N, N], [N]
            if m["id"] == "raw":
                ref = explain.fuse_heads(demo["full"][layer][0], _fusion(m["heads"][head]), axis=-3)  # [N, N]
            else:
                ref = explain.rollout(demo["full"][: layer + 1], head_fusion=m["heads"][head])[0]  # [N, N]
            err = np.abs(dequantise(q, scale) - ref)  # [N, N]
            bound = scale.astype(np.float64)[:, None] / 510 + 1e-6 * (m["id"] == "rollout") + 1e-9
            assert (err <= bound).all(), (m["id"], key, float((err - bound).max()))
            worst = max(worst, float((err / (scale[:, None] / 510 + 1e-30)).max()))
    assert 0.5 < worst <= 1.01  # the bound is reached (half a step), never passed


def _fusion(name):
    return int(name) if name.isdigit() else name


def test_quantise_rows_bound_and_edge_cases():
    rng = np.random.default_rng(0)
    m = rng.dirichlet(np.ones(50) * 0.1, size=40)  # [40, 50] peaked rows like attention
    m[3] = 0.0  # an all-zero row (a masked head) stays zero
    q, scale = quantise_rows(m)
    assert q.dtype == np.uint8 and scale.dtype == np.float32 and scale[3] == 0 and not q[3].any()
    assert (q.max(axis=1)[scale > 0] == 255).all()  # each row's maximum gets the top code
    assert (np.abs(dequantise(q, scale) - m) <= scale[:, None].astype(np.float64) / 510 + 1e-9).all()
    with pytest.raises(ValueError, match="non-negative map"):
        quantise_rows(-m)


def test_token_tables_come_from_tokenmap(demo, demo_page):
    """The page's lookups agree with TokenMap at every pixel (the page draws with these alone)."""
    payload, _ = read_page(demo_page[0])
    tk = payload["tokens"]
    tokens = explain.TokenMap.for_config(demo["model"].config)
    t, h, w = tokens.grid
    f, r, c = np.meshgrid(np.arange(16), np.arange(64), np.arange(64), indexing="ij")
    page_token = np.asarray(tk["token_grid"]).reshape(t, h, w)[
        np.asarray(tk["frame_slice"])[f], np.asarray(tk["row_cell"])[r], np.asarray(tk["col_cell"])[c]]
    assert np.array_equal(page_token, tokens.token_at(f, r, c))
    boxes = np.asarray(tk["boxes"]).reshape(-1, 6)
    for k in (1, 77, tokens.num_tokens - 1):
        fr, rr, cc = tokens.box(k)
        assert list(boxes[k - 1]) == [fr.start, fr.stop, rr.start, rr.stop, cc.start, cc.stop]


def test_page_is_offline_and_says_what_it_holds(demo_page):
    html, info = demo_page
    assert re.search(r"https?://|//cdn|<link|src=\"(?!data:)", html) is None  # nothing to fetch
    assert "default-src 'none'" in html  # and the browser is told to refuse any request
    payload, _ = read_page(html)
    assert payload["budget"]["left_out"] == [] and payload["budget"]["limit"] == budget.DEFAULT_BUDGET
    assert payload["budget"]["included"][0] == "raw attention, head choices mean, max, 0, 1, 2, 3: layers 0-2"
    assert len(html.encode()) == info["bytes"] <= budget.DEFAULT_BUDGET


# ---- the size budget --------------------------------------------------------------------------------------


def test_small_budget_is_honoured_and_left_out_is_said(demo):
    html, info = build_html(demo["model"], demo["clip"], budget=500_000)
    assert len(html.encode()) == info["bytes"] <= 500_000
    payload, _ = read_page(html)
    kept = {(m["id"], k) for m in payload["methods"] for k in m["full"]}
    assert kept == {("raw", "2:4"), ("raw", "1:4")}  # head-mean maps, last layer first, as many as fit
    text = " ".join(payload["budget"]["left_out"])
    per_map = budget.unit_bytes(explain.TokenMap.for_config(demo["model"].config).num_tokens) / 1000  # kB of one embedded N x N map
    assert f"raw attention, head choice mean: full maps of layer 0 ({per_map:.2f} kB per layer" in text
    assert "--budget" in payload["budget"]["how"] and "minivivit.explain.explore(model, clip)" in payload["budget"]["how"]


def test_budget_below_the_fixed_part_and_explicit_layers_that_do_not_fit(demo):
    with pytest.raises(ValueError, match=r"alone take .* above the budget of 100.00 kB; raise it"):
        build_html(demo["model"], demo["clip"], budget=100_000)
    with pytest.raises(ValueError, match=r"--layers-full 0,1,2: .* layers \[2\] do not fit .* --budget 1 \(MB\)"):
        build_html(demo["model"], demo["clip"], layers_full="0,1,2", budget=500_000)


def test_vivit_b_plan_fits_25_mb_with_the_last_layer_mean():
    """The planner at ViViT-B's sizes: N = 3137, 12 layers, 12 heads; 4 MB of frames + CLS rows."""
    class Menu:
        def __init__(self, heads, label):
            self.heads, self.label = heads, label

    menus = {"raw": Menu([str(h) for h in range(12)] + ["mean", "max"], "raw attention"),
             "rollout": Menu(["mean", "max", "min"], "attention rollout")}
    plan = budget.plan(menus, 3137, 12, "auto", budget.DEFAULT_BUDGET, fixed_bytes=4_000_000)
    assert budget.unit_bytes(3137) == 4 * -(-3137**2 // 3) + 4 * -(-4 * 3137 // 3) + budget.UNIT_OVERHEAD
    assert plan.units == [("raw", 11, 12)] and plan.total_bytes <= 25_000_000
    assert "raw attention, head choice mean: full maps of layers 0-10 (13.14 MB per layer" in plan.left_out[0]


@pytest.mark.parametrize("spec, expected", [("auto", "auto"), ("all", [2, 1, 0]), ("none", []), ("-1", [2]),
                                            ("0, 2,0", [0, 2]), ([1], [1])])
def test_parse_layers(spec, expected):
    assert budget.parse_layers(spec, 3) == expected


# ---- the CLI ----------------------------------------------------------------------------------------------


def _cli(capsys, *argv):
    code = cli.main(["explore", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, message", [
    (["--layers-full", "2,x"], "--layers-full takes auto, all, none or comma-separated layer indices"),
    (["--layers-full", "5"], "--layers-full: layer 5 does not exist; the model has layers 0..2"),
    (["--budget", "0"], "--budget must be a positive number of MB"),
    (["--budget", "0.05"], "alone take"),
    (["--out", "view.gif"], "--out must end in .html"),
    (["no-such-video.mp4"], "no such video: no-such-video.mp4"),
    (["clip.npy", "--demo"], "give either VIDEO or --demo"),
    (["--weights", "w.safetensors"], "--weights needs a VIDEO"),
])
def test_cli_errors_are_clear(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.npy").write_bytes(b"")
    code, _, err = _cli(capsys, *argv, "--no-progress")
    assert code == 2 and message in err, err
    assert not list(tmp_path.glob("*.html"))


def test_cli_writes_atomically_and_never_overwrites(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _cli(capsys, "--no-progress")  # no VIDEO: the demo model on a generated clip
    assert code == 0 and "wrote explorer.html" in out and "full maps: raw attention" in out
    first = (tmp_path / "explorer.html").read_bytes()
    code, out, _ = _cli(capsys, "--no-progress", "--seed", "1")  # the default name is never reused
    assert code == 0 and "wrote explorer-2.html" in out and (tmp_path / "explorer.html").read_bytes() == first
    code, _, err = _cli(capsys, "--out", "explorer.html", "--no-progress")
    assert code == 2 and "explorer.html already exists; pass --force" in err
    code, out, _ = _cli(capsys, "--out", "explorer.html", "--force", "--layers-full", "none", "--no-progress")
    assert code == 0 and "full maps: none (CLS rows only)" in out and "left out: full maps of layers 0-2" in out
    assert len((tmp_path / "explorer.html").read_bytes()) < len(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explorer-2.html", "explorer.html"]  # no partial files


def test_cli_reads_a_video_array(capsys, tmp_path, demo):
    np.save(tmp_path / "clip.npy", demo["clip"].frames)
    code, out, _ = _cli(capsys, str(tmp_path / "clip.npy"), "--out", str(tmp_path / "v.html"), "--layers-full", "-1",
                        "--no-progress")
    assert code == 0 and "prediction:" in out
    payload, _ = read_page((tmp_path / "v.html").read_text())
    assert sorted(_method(payload, "raw")["full"]) == ["2:0", "2:1", "2:2", "2:3", "2:4", "2:5"]


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["explore", "--help"])
    text = capsys.readouterr().out
    for part in ("--layers-full", "--budget", "examples:", "minivivit explore clip.mp4 --out view.html", "13.1 MB"):
        assert part in text


# ---- inputs -----------------------------------------------------------------------------------------------


def test_pixel_values_input_and_errors(demo):
    data = extract(demo["model"], demo["x"])  # already preprocessed
    assert data.frames.shape == (16, 64, 64, 3) and "rescaled" in data.frames_note
    assert np.array_equal(data.cls["raw"]["*"][2, :4], demo["cls"][2][0])
    with pytest.raises(ValueError, match=r"shows one clip; got a batch of 2. Pass pixel_values\[:1\]"):
        extract(demo["model"], np.concatenate([demo["x"]] * 2))
    with pytest.raises(ValueError, match=r"Add a batch axis"):
        extract(demo["model"], demo["x"][0])
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T, H, W, 3\]"):
        extract(demo["model"], demo["x"], frames=demo["clip"].frames[:3])


# ---- the notebook widget: rows on demand ------------------------------------------------------------------


@pytest.fixture(scope="module")
def widget(demo):
    pytest.importorskip("anywidget", reason="the notebook widget needs anywidget (pip install anywidget)")
    from minivivit.explain.explore import explore

    return explore(demo["model"], demo["clip"])


def test_widget_rows_equal_recompute_attention(demo, widget):
    model, hidden = demo["model"], demo["hidden"]
    for layer, head, query in [(0, 1, 5), (2, 3, 200), (1, 0, 0)]:
        ref = explain.recompute_attention(model, hidden[layer], layer)[0, head, query]  # [N]
        assert np.array_equal(widget.row("raw", layer, head, query), ref)
    ref = explain.recompute_attention(model, hidden[1], 1)[0, :, 40].mean(axis=0)  # head-mean row
    assert np.allclose(widget.row("raw", 1, 4, 40), ref, atol=1e-8, rtol=0)
    roll = explain.rollout(demo["full"][:2], head_fusion="max")[0, 40]  # rollout through layer 1, heads max
    assert np.abs(widget.row("rollout", 1, 1, 40) - roll).max() < ROLLOUT_ATOL


def test_widget_answers_messages_and_ships_no_full_maps(demo, widget):
    sent = []
    widget.send = lambda content, buffers=None: sent.append(content)
    widget._on_message(widget, {"type": "row", "id": 7, "method": "raw", "layer": 2, "head": 0, "query": 9}, [])
    ref = explain.recompute_attention(demo["model"], demo["hidden"][2], 2)[0, 0, 9]
    assert sent[-1]["id"] == 7 and np.array_equal(np.float32(sent[-1]["values"]), ref)
    widget._on_message(widget, {"type": "row", "id": 8, "method": "raw", "layer": 3, "head": 0, "query": 9}, [])
    assert sent[-1] == {"type": "row", "id": 8, "error": "the kernel could not compute that row: layer 3 does not "
                                                          "exist; the model has layers 0..2"}
    import json

    payload = json.loads(widget.payload)
    assert payload["provider"] == "kernel" and all(m["full"] == {} for m in payload["methods"])
    assert len(widget.payload) < 400_000  # CLS rows + frames only


def test_widget_save_writes_the_same_page(demo, widget, tmp_path, demo_page):
    info = widget.save(tmp_path / "w.html", budget=500_000)
    payload, blobs = read_page((tmp_path / "w.html").read_text())
    assert info["bytes"] <= 500_000 and sorted(_method(payload, "raw")["full"]) == ["1:4", "2:4"]
    ref_payload, ref_blobs = read_page(demo_page[0])
    got = blob_array(_method(payload, "raw")["full"]["2:4"]["q"], blobs)
    assert np.array_equal(got, blob_array(_method(ref_payload, "raw")["full"]["2:4"]["q"], ref_blobs))
    with pytest.raises(FileExistsError):
        widget.save(tmp_path / "w.html")


def test_colour_maps_are_matplotlibs():
    mpl = pytest.importorskip("matplotlib")
    js = (Path(minivivit.__file__).parent / "explain" / "explore" / "static" / "explorer-data.js").read_text()
    for name in ("viridis", "cividis"):
        hex_ = re.search(rf'{name}: "([0-9a-f]+)"', js).group(1)
        lut = np.frombuffer(bytes.fromhex(hex_), np.uint8).reshape(256, 3)
        assert np.array_equal(lut, mpl.colormaps[name](np.arange(256), bytes=True)[:, :3])


# ---- scale: a ViViT-B-shaped model (random weights, N = 3137) ---------------------------------------------


@pytest.mark.slow
def test_vivit_b_shaped_file_stays_within_25_mb():
    """2 layers of ViViT-B's shape (32x224x224, 12 heads, D = 768): the real file, not only the plan."""
    from minivivit.weights import expected_shapes, unflatten_params

    config = minivivit.ViViTConfig(num_hidden_layers=2, num_labels=3, id2label={0: "a", 1: "b", 2: "c"})
    rng = np.random.default_rng(0)
    flat = {k: (rng.standard_normal(s) * 768**-0.5 + k.endswith(".g")).astype(np.float32)
            for k, s in expected_shapes(config, head=True, pooler=False).items()}
    model = minivivit.Model(unflatten_params(flat), config)
    frames = rng.integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    html, info = build_html(model, frames, backend="numba")
    assert len(html.encode()) == info["bytes"] <= 25_000_000
    assert info["units"] == [("raw", 1, 12)]  # the last layer's head-mean map (13.1 MB); nothing else fits
    payload, blobs = read_page(html)
    assert blob_array(_method(payload, "raw")["cls"]["*"], blobs).shape == (2, 14, 3137)


def test_base_model_without_a_head_has_no_prediction():
    """A VivitModel-like base model (no classifier): the page still builds; the class menu says nothing."""
    from minivivit.weights import expected_shapes, unflatten_params

    config = minivivit.ViViTConfig(image_size=32, num_frames=4, tubelet_size=(2, 16, 16), hidden_size=16,
                                   num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    rng = np.random.default_rng(1)
    flat = {k: (rng.standard_normal(s) * 0.25 + k.endswith(".g")).astype(np.float32)
            for k, s in expected_shapes(config, head=False, pooler=False).items()}
    model = minivivit.Model(unflatten_params(flat), config)
    frames = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    html, _ = build_html(model, frames)
    payload, blobs = read_page(html)
    assert payload["prediction"] is None and payload["tokens"]["grid"] == [2, 2, 2]
    from minivivit.video.preprocess import preprocess_for

    ref = explain.capture(model, preprocess_for(config, frames), output_attentions="cls").attentions
    assert np.array_equal(blob_array(_method(payload, "raw")["cls"]["*"], blobs)[1, :2], ref[1][0])


def test_explore_without_anywidget_says_what_to_install(demo, monkeypatch):
    import sys

    from minivivit.explain.explore import explore

    monkeypatch.setitem(sys.modules, "anywidget", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "minivivit.explain.explore.widget", raising=False)
    with pytest.raises(ImportError, match=r"needs anywidget: python -m pip install anywidget .* `minivivit explore`"):
        explore(demo["model"], demo["clip"])
