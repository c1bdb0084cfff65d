"""preprocess == transformers.VivitImageProcessor (max abs <= 1e-6), and clear errors on bad frames.

HF infers the channel axis of each frame; a 1x1 (or 3-row) RGB frame [H, W, 3] looks channels-first
to it, so the HF side is told `input_data_format="channels_last"` (minivivit always takes channels last).
"""

import warnings

import conftest
import numpy as np
import pytest

from minivivit.config import ViViTConfig
from minivivit.video.preprocess import HF_DEFAULTS, covering_shortest_edge, model_options, preprocess, preprocess_for

transformers = pytest.importorskip("transformers", reason="parity tests need the dev extra (transformers)")
VivitImageProcessor = transformers.VivitImageProcessor

TOL = 1e-6
SIZES = [(240, 320), (320, 240), (100, 100), (1, 1)]  # (height, width): 320x240 landscape, portrait, square, 1x1
SETTINGS = {
    "defaults": {},
    "height-width": {"size": {"height": 120, "width": 200}, "crop_size": {"height": 96, "width": 160}},
    "no-crop": {"do_center_crop": False, "size": {"height": 50, "width": 70}},
    "no-normalize": {"do_normalize": False},
    "custom-mean-std": {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
    "bicubic-odd-sizes": {"resample": 3, "size": {"shortest_edge": 97}, "crop_size": {"height": 61, "width": 83}},
    "crop-larger-than-frame": {"size": {"shortest_edge": 40}, "crop_size": {"height": 64, "width": 57}},
    "no-resize-pad": {"do_resize": False, "crop_size": {"height": 120, "width": 101}},
    "no-offset-0-1": {"offset": False, "rescale_factor": 1 / 255},
    "no-rescale": {"do_rescale": False, "offset": False},
    "nearest": {"resample": 0}, "lanczos": {"resample": 1}, "box": {"resample": 4}, "hamming": {"resample": 5},
}


def frames(T, H, W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def hf_pixels(clips, **kwargs):
    """HF's output for a list of clips [T, H, W, 3] -> [B, T, C, H', W']."""
    out = VivitImageProcessor(**kwargs)([list(c) for c in clips], return_tensors="np",
                                         input_data_format="channels_last")
    return out["pixel_values"]


def assert_parity(ours, ref):
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape, f"shape {ours.shape} vs HF {ref.shape}"
    err = float(np.abs(ours.astype(np.float64) - ref).max())
    assert err <= TOL, f"max |ours - HF| = {err:.3g} > {TOL}"


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("hw", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_parity_with_vivit_image_processor(hw, setting):
    x = frames(2, *hw, seed=list(SETTINGS).index(setting))
    kwargs = SETTINGS[setting]
    assert_parity(preprocess(x, **kwargs), hf_pixels([x], **kwargs))


def test_parity_detects_a_one_level_difference():
    """The 1e-6 check must be able to fail: one pixel one level brighter moves the output by 2/127.5."""
    x = frames(2, 240, 320)
    y = x.copy()
    y[1, 120, 160, 0] = y[1, 120, 160, 0] ^ 1
    with pytest.raises(AssertionError, match="max"):
        assert_parity(preprocess(y, do_resize=False), hf_pixels([x], do_resize=False))


def test_parity_batch_and_list_of_clips_of_different_sizes():
    a, b = frames(3, 240, 320, seed=1), frames(3, 180, 100, seed=2)
    assert_parity(preprocess([a, b]), hf_pixels([a, b]))
    assert_parity(preprocess(np.stack([a, a[::-1]])), hf_pixels([a, a[::-1]]))
    assert_parity(preprocess(list(a)), hf_pixels([a]))  # a list of frames is one clip, as in HF's doc example


def test_integer_valued_float_frames_equal_uint8_and_hf():
    x = frames(2, 100, 140, seed=3)
    ours = preprocess(x.astype(np.float32))
    np.testing.assert_array_equal(ours, preprocess(x))
    assert_parity(ours, hf_pixels([x.astype(np.float32)]))


def test_fractional_float_frames_are_resized_in_float():
    """HF refuses these (fractional values above 1); minivivit resizes them in Pillow's float mode, keeping +0.25."""
    x = frames(2, 90, 120, seed=7)
    shifted = preprocess(x.astype(np.float32) + 0.25)
    plain = preprocess(x)
    step = 2 / 127.5  # one uint8 level after rescale (1/127.5) and normalise (/0.5)
    diff = shifted - plain - 0.25 * step  # left: the uint8 path rounds after each of Pillow's 2 passes, <= 1 level
    assert np.abs(diff).max() <= step + 1e-6
    assert abs(diff.mean()) < 0.05 * step


def test_reads_hf_preprocessor_config_json(tmp_path):
    kwargs = {"size": {"shortest_edge": 80}, "crop_size": {"height": 64, "width": 72}, "resample": 3,
              "image_mean": [0.3, 0.4, 0.5], "image_std": [0.2, 0.3, 0.4], "rescale_factor": 1 / 200}
    VivitImageProcessor(**kwargs).save_pretrained(tmp_path)
    x = frames(2, 120, 90, seed=4)
    ref = VivitImageProcessor.from_pretrained(tmp_path)(list(x), return_tensors="np")["pixel_values"]
    assert_parity(preprocess(x, processor_config=tmp_path), ref)
    assert_parity(preprocess(x, processor_config=tmp_path / "preprocessor_config.json"), ref)
    # keyword arguments win over the file
    assert_parity(preprocess(x, processor_config=tmp_path, do_normalize=False), hf_pixels([x], **kwargs,
                                                                                          do_normalize=False))


def test_hf_default_range_is_minus3_to_1_and_scenic_preset_is_minus1_to_1():
    x = np.array([0, 128, 255], np.uint8).reshape(1, 1, 3, 1).repeat(3, axis=3)  # [T=1, H=1, W=3, 3]
    hf = preprocess(x, do_resize=False, do_center_crop=False)[0, 0, 0, 0]  # channel 0, row 0: [3]
    scenic = preprocess(x, do_resize=False, do_center_crop=False, preset="scenic")[0, 0, 0, 0]
    np.testing.assert_allclose(hf, [-3.0, 2 * (128 / 127.5 - 1) - 1, 1.0], atol=1e-6)  # 128 -> -0.99216
    np.testing.assert_allclose(scenic, [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)  # 128 -> 0.00392
    assert_parity(preprocess(frames(2, 240, 320), preset="scenic"), hf_pixels([frames(2, 240, 320)],
                                                                               do_normalize=False))


def test_defaults_are_hf_defaults():
    hf = VivitImageProcessor()
    for name, value in HF_DEFAULTS.items():
        assert getattr(hf, name) == value, name


# ---- model-sized defaults ----------------------------------------------------------------------


def test_preprocess_for_a_64x64_16_frame_model_resizes_crops_and_samples():
    config = ViViTConfig(image_size=64, num_frames=16, tubelet_size=(2, 8, 8), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64, num_labels=4)
    clip = frames(40, 120, 200, seed=5)
    ours = preprocess_for(config, clip)
    assert ours.shape == (1, 16, 3, 64, 64)
    taken = clip[(2 * np.arange(16) + 1) * 40 // 32]  # uniform: centre of each of 16 segments of 2.5 frames
    assert_parity(ours, hf_pixels([taken], size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}))
    exact = frames(16, 64, 64, seed=6)  # a clip already at the model's size passes through unchanged
    assert_parity(preprocess_for(config, exact), hf_pixels([exact], do_resize=False, do_center_crop=False))


def test_preprocess_for_non_square_model_covers_the_frame():
    config = conftest.tiny_config(image_size=(32, 48), num_hidden_layers=1)
    for H, W in [(100, 100), (60, 200), (200, 60)]:
        s = covering_shortest_edge(H, W, (32, 48))
        opts = model_options(config, frames(1, H, W))
        assert opts["size"] == {"shortest_edge": s}
        assert preprocess_for(config, frames(4, H, W)).shape == (1, 4, 3, 32, 48)
        smaller = VivitImageProcessor(size={"shortest_edge": s - 1}).resize(frames(1, H, W)[0], {"shortest_edge": s - 1})
        assert smaller.shape[0] < 32 or smaller.shape[1] < 48  # s is the smallest edge that covers 32x48
    with pytest.raises(ValueError, match="model takes 32x48"):
        preprocess_for(config, frames(4, 100, 100), crop_size={"height": 40, "width": 40})


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((2, 8, 8, 3), np.int64), TypeError, "expected uint8 frames .* got dtype int64"),
    (np.zeros((2, 8, 8, 3), np.uint16), TypeError, "16-bit frames use"),
    (np.zeros((2, 8, 8, 3), bool), TypeError, "got dtype bool"),
    (np.zeros((8, 8, 3), np.uint8), ValueError, "one-frame clip: pass frame\\[None\\]"),
    (np.zeros((2, 3, 8, 8), np.uint8), ValueError, "channels-first"),
    (np.zeros((2, 8, 8, 1), np.uint8), ValueError, "Grayscale"),
    (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "empty clip"),
    ([], ValueError, "empty list"),
    ("clip.mp4", TypeError, "NumPy array"),
])
def test_bad_frames_get_clear_errors(bad, error, match):
    with pytest.raises(error, match=match):
        preprocess(bad)


def test_nan_and_inf_in_float_frames_are_refused():
    x = frames(3, 16, 16).astype(np.float32)
    x[2, 4, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity .* first in frame 2"):
        preprocess(x)
    x[2, 4, 5, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        preprocess(x)


def test_bad_options_get_clear_errors():
    x = frames(1, 8, 8)
    with pytest.raises(TypeError, match="unknown preprocessing option.*'crop'"):
        preprocess(x, crop=5)
    with pytest.raises(ValueError, match="offset=True needs do_rescale=True"):
        preprocess(x, do_rescale=False)
    with pytest.raises(ValueError, match="crop_size must have the keys"):
        preprocess(x, crop_size={"shortest_edge": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        preprocess(x, preset="imagenet")
    with pytest.raises(ValueError, match="not a Pillow filter"):
        preprocess(x, resample=9)


def test_frames_already_in_0_1_warn():
    with pytest.warns(UserWarning, match="already scaled to \\[0, 1\\]"):
        preprocess(np.full((1, 8, 8, 3), 0.5, np.float32), do_resize=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preprocess(np.full((1, 8, 8, 3), 0.5, np.float32), do_resize=False, do_rescale=False, offset=False)
