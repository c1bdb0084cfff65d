"""The explorer in a real browser: headless Debian Chromium driven by Playwright opens the exported file from
file://, switches layer (keyboard) and head (a click), clicks a tubelet, and the values the page drew — read
back from the page, and as pixel colours on the canvas — equal minivivit's arrays at that token. Also: no
console errors, no network request, a screenshot that is not blank, and the notebook widget's script
answering a click with the Python kernel's row. Run time: about 10 s.

Needs (see tests/explore/README.md):  apt-get install -y chromium  &&  python -m pip install playwright
(never `playwright install`: nothing may download a browser; the test uses /usr/bin/chromium, or
$MINIVIVIT_CHROMIUM).
"""

import io
import json
import os
import re
import tempfile

import numpy as np
import pytest

from minivivit import explain
from minivivit.explain.explore import build_html, write_html
from minivivit.explain.explore.page import script_text, static_text

CHROMIUM = os.environ.get("MINIVIVIT_CHROMIUM", "/usr/bin/chromium")
INSTALL = ("apt-get install -y chromium && python -m pip install playwright "
           "(do not run `playwright install`; the test drives Debian's chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
READY = "document.getElementById('mv-root').dataset.status !== 'pending'"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"the browser test needs Playwright from PyPI and Debian's chromium; install them with: {INSTALL}")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (set $MINIVIVIT_CHROMIUM to another one); install it with: {INSTALL}")
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={"width": 1200, "height": 1000})
        yield ctx
        ctx.close()


class Watched:
    """A page with its console errors and every request it made."""

    def __init__(self, ctx):
        self.page = ctx.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def api(self, js):
        return self.page.evaluate(f"(() => {{ const api = window.minivivitExplorer; return {js}; }})()")

    def settle(self):
        self.page.wait_for_function(READY)
        return self.api("api.drawn()")


@pytest.fixture(scope="module")
def tokens(demo):
    return explain.TokenMap.for_config(demo["model"].config)


@pytest.fixture(scope="module")
def opened(browser, demo, demo_page, tmp_path_factory):
    path = tmp_path_factory.mktemp("explore") / "view.html"
    write_html(path, demo_page[0])
    w = Watched(browser)
    w.page.goto(path.as_uri())
    w.page.wait_for_function("window.minivivitExplorer && document.getElementById('mv-root').dataset.status === 'ready'")
    yield w, path
    w.page.close()


def _viridis():
    hex_ = re.search(r'viridis: "([0-9a-f]+)"', static_text("explorer-data.js")).group(1)
    return np.frombuffer(bytes.fromhex(hex_), np.uint8).reshape(256, 3)


def _check_pixels(w, tokens, frame, values, log=False):
    """At opacity 1, the canvas colour at the centre of every tubelet of `frame` is the colour map at the value of
    TokenMap's token there: floor(256 x) on [min, max] over patches (log: log10, from the smallest positive value;
    JS's and NumPy's log10 may round differently, so there an index may differ by one)."""
    lut = _viridis()
    v = np.asarray(values, dtype=np.float64)
    t = int(tokens.cell_at(frame, 0, 0)[0])
    rows, cols = [], []
    for y in range(tokens.grid[1]):
        for x in range(tokens.grid[2]):
            _, r, c = tokens.box(tokens.token(t, y, x))
            rows.append(r.start + len(r) // 2)
            cols.append(c.start + len(c) // 2)
    got = np.array(w.page.evaluate("([rows, cols]) => rows.map((r, i) => window.minivivitExplorer.pixel(r, cols[i]))",
                                   [rows, cols]))  # [cells, 4] RGBA
    assert (got[:, 3] == 255).all()
    match = (got[:, None, :3] == lut[None]).all(axis=-1)  # [cells, 256]
    assert match.any(axis=1).all(), "a drawn colour is not in the colour map"
    k = tokens.token_at(frame, np.array(rows), np.array(cols))  # [cells]
    if log:
        lo, hi = v[1:][v[1:] > 0].min(), v[1:].max()
        x = np.where(v[k] > 0, (np.log10(np.maximum(v[k], 1e-300)) - np.log10(lo)) / (np.log10(hi) - np.log10(lo)), 0)
    else:
        lo, hi = v[1:].min(), v[1:].max()
        x = (v[k] - lo) / (hi - lo)
    expected = np.clip(np.floor(x * 256), 0, 255).astype(int)
    assert len(np.unique(expected)) >= 10, "the probed map is too flat to check the mapping"
    # compare colours, not decoded indices: viridis repeats two 8-bit colours (indices 104/105 and 137/138)
    ok = (got[:, :3] == lut[expected]).all(axis=1)
    if log:  # JS's log10 may differ in the last bit: the neighbouring index is allowed
        ok |= (got[:, :3] == lut[np.maximum(expected - 1, 0)]).all(axis=1)
        ok |= (got[:, :3] == lut[np.minimum(expected + 1, 255)]).all(axis=1)
    assert ok.all(), f"the canvas colours are not the values at TokenMap's tokens: cells {np.flatnonzero(~ok)}"


def test_file_view_switch_layer_head_click_tubelet(opened, demo, tokens):
    w, path = opened
    model, cls, full = demo["model"], demo["cls"], demo["full"]
    d = w.api("api.drawn()")
    assert (d["method"], d["layer"], d["head"], d["query"]) == ("raw", 2, "mean", None)
    assert np.array_equal(np.float32(d["values"]), cls[2][0].mean(axis=0))  # exact float32 CLS row

    root = w.page.locator("#mv-root")
    root.focus()
    w.page.keyboard.press("ArrowDown")  # layer 2 -> 1
    w.page.locator(".mv-heads button", has_text="2").click()  # head 2
    d = w.settle()
    assert (d["layer"], d["head"]) == (1, "2")
    assert np.array_equal(np.float32(d["values"]), cls[1][0, 2])

    k = int(tokens.token(1, 5, 2))
    frames, rows, cols = tokens.box(k)
    for _ in range(frames.start):  # frame 0 -> the first frame of time slice t=1
        w.page.keyboard.press("ArrowRight")
    assert w.api("api.state().frame") == frames.start > 0
    at = w.api(f"api.screenPoint({rows.start + 3}, {cols.start + 4})")
    w.page.mouse.click(at["x"], at["y"])  # a real click on the tubelet
    d = w.settle()
    assert d["query"] == k and d["status"] == "ready" and d["source"] == "embedded 8-bit map"
    ref = full[1][0, 2, k].astype(np.float64)  # capture's full map, row k
    assert abs(d["bound"] - ref.max() / 510) < 1e-9
    assert np.abs(np.array(d["values"]) - ref).max() <= ref.max() / 510 + 1e-7
    text = w.page.locator(".mv-query").inner_text()
    assert f"token {k} (t=1, y=5, x=2): frames {frames.start}\u2013{frames.stop - 1}" in text

    w.page.keyboard.press("ArrowDown")  # layer 0, head 2: a query row spread over many tubelets (head 3's is peaked)
    w.page.keyboard.press("2")
    d = w.settle()
    ref = full[0][0, 2, k].astype(np.float64)
    assert (d["layer"], d["head"], d["query"]) == (0, "2", k)
    assert np.abs(np.array(d["values"]) - ref).max() <= ref.max() / 510 + 1e-7
    w.page.locator("input[aria-label='map opacity']").fill("1")  # the map alone: colours are readable
    _check_pixels(w, tokens, frames.start, d["values"])  # time slice 1
    root.focus()  # keys go to the explorer again (a focused range input keeps its arrows)
    for _ in range(frames.start):
        w.page.keyboard.press("ArrowLeft")
    _check_pixels(w, tokens, 0, d["values"])  # time slice 0

    w.page.select_option("select[aria-label='method']", "rollout")  # same query, rollout through layer 0
    w.page.select_option("select[aria-label='colour scale']", "log")
    d = w.settle()
    assert (d["method"], d["head"], d["query"], d["log"]) == ("rollout", "mean", k, True)
    ref = explain.rollout(full[:1], head_fusion="mean")[0, k]
    assert np.abs(np.array(d["values"]) - ref).max() <= ref.max() / 510 + 2e-6
    root.focus()
    w.page.keyboard.press("ArrowUp")
    w.page.keyboard.press("Escape")  # back to the CLS query, rollout through layer 1
    d = w.settle()
    ref = explain.cls_rollout(model, demo["x"], end_layer=1)[0][0]
    assert (d["query"], d["layer"]) == (None, 1) and np.abs(np.array(d["values"]) - ref).max() < 2e-6
    _check_pixels(w, tokens, 0, d["values"], log=True)

    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(w.page.screenshot(full_page=True))).convert("RGB"))
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 200, "the screenshot looks blank"
    assert w.errors == [], w.errors
    assert w.requests == [path.as_uri()], f"the page made requests: {w.requests}"
    print("\nbrowser timings (ms):", w.api("api.timings"))


def test_missing_full_map_says_how_to_include_it(browser, demo, tokens, tmp_path):
    html, _ = build_html(demo["model"], demo["clip"], layers_full="none")
    path = write_html(tmp_path / "cls-only.html", html)
    w = Watched(browser)
    w.page.goto(path.as_uri())
    w.page.wait_for_function("window.minivivitExplorer && document.getElementById('mv-root').dataset.status === 'ready'")
    box = tokens.box(int(tokens.token(0, 2, 2)))
    at = w.api(f"api.screenPoint({box[1].start}, {box[2].start})")
    w.page.mouse.click(at["x"], at["y"])
    d = w.settle()
    assert d["status"] == "missing" and d["values"] is None
    status = w.page.locator(".mv-status").inner_text()
    assert "this file has no full map of raw attention, layer 2, head mean (it has no full maps)" in status
    assert "--layers-full" in status and "minivivit.explain.explore(model, clip)" in status
    assert w.errors == [] and w.requests == [path.as_uri()]
    w.page.close()


def test_widget_script_asks_the_python_kernel(browser, demo, tokens):
    """The anywidget module (the same script + static/widget.js) on a stand-in for anywidget's model whose
    send() goes to ExplorerWidget's message handler in this Python process."""
    pytest.importorskip("anywidget", reason="the notebook widget needs anywidget (pip install anywidget)")
    from minivivit.explain.explore import explore

    widget = explore(demo["model"], demo["clip"])
    replies = []
    widget.send = lambda content, buffers=None: replies.append(content)

    def kernel(msg):
        widget._on_message(widget, msg, [])
        return replies.pop()

    w = Watched(browser)
    w.page.expose_function("pyKernel", kernel)
    module = script_text() + "\n" + static_text("widget.js").replace("export default", "window.mvWidget =")
    w.page.set_content(f"<style>{static_text('explorer.css')}</style><div id='el'></div><script>{module}</script>")
    w.page.evaluate("""(payload) => {
        const listeners = [];
        const model = { get: () => payload, on: (e, cb) => listeners.push(cb), off: () => {},
                        send: async (msg) => { const reply = await window.pyKernel(msg); listeners.forEach((cb) => cb(reply)); } };
        const el = document.getElementById('el');
        window.mvWidget.render({ model, el });
        window.minivivitExplorer = el.minivivitExplorer;
    }""", widget.payload)
    w.page.wait_for_function("window.minivivitExplorer && document.getElementById('el').dataset.status === 'ready'")
    k = int(tokens.token(3, 1, 6))
    w.page.evaluate(f"window.minivivitExplorer.set({{ layer: 0, head: 3, frame: {tokens.box(k)[0].start} }})")
    _, rows, cols = tokens.box(k)
    at = w.api(f"api.screenPoint({rows.start}, {cols.stop - 1})")
    w.page.mouse.click(at["x"], at["y"])
    w.page.wait_for_function("document.getElementById('el').dataset.status === 'ready' && "
                             f"window.minivivitExplorer.drawn().query === {k}")
    d = w.api("api.drawn()")
    ref = explain.recompute_attention(demo["model"], demo["hidden"][0], 0)[0, 3, k]
    assert d["source"].startswith("computed by the kernel") and np.array_equal(np.float32(d["values"]), ref)
    assert w.errors == [] and all(u == "about:blank" for u in w.requests), (w.errors, w.requests)
    w.page.close()
    json.loads(widget.payload)  # still valid after the session
