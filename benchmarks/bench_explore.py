"""The attention explorer at scale: file size and build time, then in headless Chromium the time to open the
page, to switch layer / head, and to answer a click on a tubelet.

    python benchmarks/bench_explore.py                   # demo model + a ViViT-B-shaped model (random weights)
    python benchmarks/bench_explore.py --skip-vivit-b    # the demo model only (seconds)
    python benchmarks/bench_explore.py --layers 2        # a 2-layer ViViT-B shape (quicker)

ViViT-B here: minivivit.Model with random weights (std 1/sqrt(D); no download) on a random 32x224x224 clip,
N = 3137 tokens, 12 heads. Needs Debian's chromium and Playwright (tests/explore/README.md); without them
only the build is measured. Results measured on the project machine are in docs/explorer.md.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import minivivit
from minivivit.data import make_visit_clip
from minivivit.explain import format_bytes
from minivivit.explain.explore import build_html, write_html

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def vivit_b(layers: int, seed: int = 0):
    from minivivit.weights import expected_shapes, unflatten_params

    config = minivivit.ViViTConfig(num_hidden_layers=layers)  # ViViT-B defaults: 32x224x224, 12 heads, D = 768
    rng = np.random.default_rng(seed)
    flat = {k: (rng.standard_normal(s) * config.hidden_size**-0.5 + k.endswith(".g")).astype(np.float32)
            for k, s in expected_shapes(config, head=True, pooler=False).items()}
    frames = rng.integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    return minivivit.Model(unflatten_params(flat), config), frames


def measure_page(path: Path, chromium: str, repeats: int = 5) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True, args=FLAGS,
                                                   viewport={"width": 1200, "height": 1000})
        page = ctx.new_page()
        t0 = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("window.minivivitExplorer && document.getElementById('mv-root').dataset.status === 'ready'",
                               timeout=120_000)
        opened = time.perf_counter() - t0
        timed = """async (changes) => { const t = performance.now(); await window.minivivitExplorer.set(changes);
                     return performance.now() - t; }"""
        L = page.evaluate("window.minivivitExplorer.drawn().layer") + 1
        layer_ms = [page.evaluate(timed, {"layer": (i % L)}) for i in range(repeats)]
        head_ms = [page.evaluate(timed, {"head": i % 3}) for i in range(repeats)]
        frame_ms = [page.evaluate(timed, {"frame": i}) for i in range(repeats)]
        page.evaluate(f"window.minivivitExplorer.set({{layer: {L - 1}, head: 0}})")
        heads = page.evaluate("document.querySelectorAll('.mv-heads button').length")
        page.evaluate(f"window.minivivitExplorer.set({{head: {heads - 2}}})")  # mean: embedded by default
        click_ms, click_page_ms = [], []
        for i in range(repeats):
            at = page.evaluate(f"window.minivivitExplorer.screenPoint({20 + 30 * i}, {40 + 25 * i})")
            t = time.perf_counter()
            page.mouse.click(at["x"], at["y"])
            page.wait_for_function("document.getElementById('mv-root').dataset.status !== 'pending'")
            click_ms.append(1000 * (time.perf_counter() - t))
            click_page_ms.append(page.evaluate("window.minivivitExplorer.timings.update"))
        status = page.evaluate("window.minivivitExplorer.drawn().status")
        ctx.close()
    med = statistics.median
    return {"open_s": opened, "layer_ms": med(layer_ms), "head_ms": med(head_ms), "frame_ms": med(frame_ms),
            "click_ms": med(click_ms), "click_page_ms": med(click_page_ms), "click_status": status}


def report(name, model, clip, out_dir, chromium, backend):
    t0 = time.perf_counter()
    html, info = build_html(model, clip, backend=backend, progress=True)
    built = time.perf_counter() - t0
    path = Path(out_dir) / f"{name}.html"
    write_html(path, html, overwrite=True)
    print(f"{name}: {format_bytes(info['bytes'])} ({info['bytes']} bytes), built in {built:.1f} s ({backend}); "
          f"{len(info['units'])} full maps; left out: {len(info['left_out'])} lines")
    if chromium:
        m = measure_page(path, chromium)
        print(f"  browser: open {m['open_s']:.2f} s; switch layer {m['layer_ms']:.1f} ms, head {m['head_ms']:.1f} ms, "
              f"frame {m['frame_ms']:.1f} ms; click a tubelet -> its row drawn {m['click_page_ms']:.1f} ms in the page, "
              f"{m['click_ms']:.1f} ms from the mouse event through Playwright ({m['click_status']}) (medians of 5)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-vivit-b", action="store_true")
    ap.add_argument("--layers", type=int, default=12, help="layers of the ViViT-B-shaped model (default: 12)")
    ap.add_argument("--backend", default="numba", choices=["numpy", "numba"])
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--out-dir", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    chromium = args.chromium if Path(args.chromium).exists() else None
    try:
        import playwright  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        print("no chromium/playwright: measuring the build only", file=sys.stderr)
    model = minivivit.load()
    report("demo", model, make_visit_clip(0, 0), args.out_dir, chromium, "numpy")
    if not args.skip_vivit_b:
        model, frames = vivit_b(args.layers)
        report(f"vivit-b-{args.layers}layers", model, frames, args.out_dir, chromium, args.backend)


if __name__ == "__main__":
    main()
