"""Shared fixtures of the explorer tests: the bundled demo model on one generated clip, its extraction,
the offline page built from it, and independent references computed with minivivit.explain."""

import base64
import json
import re

import numpy as np
import pytest

import minivivit
from minivivit import explain
from minivivit.data import make_visit_clip
from minivivit.video.preprocess import preprocess_for


@pytest.fixture(scope="session")
def demo():
    """model, clip, pixel_values, and the reference maps: capture's CLS rows and full maps of every layer."""
    model = minivivit.load()
    clip = make_visit_clip(3, 0, num_frames=model.config.num_frames, size=model.config.image_hw[0])
    x = preprocess_for(model.config, clip.frames)  # [1, T, C, H, W]
    cls = explain.capture(model, x, output_attentions="cls").attentions  # L x [1, nh, N]
    full = explain.capture(model, x, output_attentions="full").attentions  # L x [1, nh, N, N]
    out = model(x, output_hidden_states=True)
    return {"model": model, "clip": clip, "x": x, "cls": cls, "full": full, "hidden": out.hidden_states}


@pytest.fixture(scope="session")
def demo_page(demo):
    """(html, info) of the demo clip's page with the default budget (every full map fits)."""
    from minivivit.explain.explore import build_html

    return build_html(demo["model"], demo["clip"])


def read_page(html: str):
    """An explorer page -> (payload dict, {blob id: bytes}) as the browser reads them."""
    data = json.loads(re.search(r'<script type="application/json" id="mv-data">(.*?)</script>', html, re.DOTALL).group(1))
    blobs = {i: base64.b64decode(t) for i, t in
             re.findall(r'<script type="application/octet-stream" id="(mv-b\d+)">([^<]*)</script>', html)}
    return data, blobs


def blob_array(ref, blobs):
    """A blob reference of the payload -> the NumPy array it holds."""
    dtype = {"f32": np.float32, "u8": np.uint8, "i32": np.int32}[ref["dtype"]]
    raw = base64.b64decode(ref["b64"]) if "b64" in ref else blobs[ref["blob"]]
    return np.frombuffer(raw, dtype=dtype).reshape(ref["shape"])
