"""read_video: round trips through real encoders, pixel-format conversion, seeking, and clear errors.

Clips are generated here (a red square moving over a colour gradient), encoded with PyAV (h264 in mp4,
vp9 in webm, ffv1 in mkv) or Pillow (GIF, APNG, WebP, PNG folders), then decoded with read_video.
Lossy codecs: mean |decoded - original| <= MAX_MEAN_ABS_ERR levels (of 255); measured on this clip:
h264 (crf 18, yuv420p) 2.88, vp9 (crf 20, yuv420p) 2.89, GIF (Pillow's 256-colour palette) 2.55.
The maximum error is large only on the square's red edges (4:2:0 chroma is stored at half resolution).
"""

import sys
import warnings

import numpy as np
import pytest

from minivivit.video import VideoDependencyError, read_video, video_info

av = pytest.importorskip("av", reason="round trips need PyAV (the video extra)")
from PIL import Image

MAX_MEAN_ABS_ERR = 4.0
T, H, W = 16, 48, 64


def make_clip(T=T, H=H, W=W):
    """uint8 [T, H, W, 3]: a 12x12 red square moving 3 px right and 1 px down per frame over a gradient."""
    yy, xx = np.mgrid[0:H, 0:W]
    background = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), np.full_like(xx, 160)], -1)  # [H, W, 3]
    clip = np.repeat(background[None], T, axis=0).astype(np.uint8)  # [T, H, W, 3]
    for t in range(T):
        clip[t, 8 + t:20 + t, 4 + 3 * t:16 + 3 * t] = (240, 40, 40)
    return clip


def square_centres(frames):
    """(y, x) centroid of the red square in each frame: [T, 2]."""
    red = (frames[..., 0] > 180) & (frames[..., 1] < 100) & (frames[..., 2] < 100)  # [T, H, W]
    ys, xs = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    n = red.sum(axis=(1, 2))
    return np.stack([(red * ys).sum(axis=(1, 2)) / n, (red * xs).sum(axis=(1, 2)) / n], -1)


def encode_av(path, clip, codec="libx264", fps=8, pix_fmt="yuv420p", options=None, in_format="rgb24"):
    """Write frames with PyAV; returns path."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = clip.shape[2], clip.shape[1], pix_fmt
        stream.options = options or {}
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=in_format)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def save_animation(path, clip, **kwargs):
    images = [Image.fromarray(f) for f in clip]
    images[0].save(path, save_all=True, append_images=images[1:], duration=125, loop=0, **kwargs)
    return path


@pytest.fixture(scope="module")
def clip():
    return make_clip()


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix,codec,options", [
    (".mp4", "libx264", {"crf": "18"}),
    (".webm", "libvpx-vp9", {"crf": "20", "b": "0"}),
])
def test_round_trip_lossy_codecs(tmp_path, clip, suffix, codec, options):
    path = encode_av(tmp_path / f"clip{suffix}", clip, codec, options=options)
    frames, meta = read_video(path)
    assert frames.shape == clip.shape and frames.dtype == np.uint8
    assert (meta.num_frames, meta.height, meta.width, meta.fps) == (T, H, W, 8.0)
    assert meta.duration == pytest.approx(T / 8)
    err = np.abs(frames.astype(np.int16) - clip).mean()
    assert err <= MAX_MEAN_ABS_ERR, f"{codec}: mean abs error {err:.2f} > {MAX_MEAN_ABS_ERR}"
    np.testing.assert_allclose(square_centres(frames), square_centres(clip), atol=1.0)  # frames in order, none lost


def test_webm_frame_count_is_counted_not_read_from_the_header(tmp_path, clip):
    path = encode_av(tmp_path / "clip.webm", clip, "libvpx-vp9")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # what the container claims
    assert video_info(path).num_frames == T


def test_round_trip_gif(tmp_path, clip):
    frames, meta = read_video(save_animation(tmp_path / "clip.gif", clip))
    assert frames.shape == clip.shape and meta.num_frames == T and meta.reader == "pillow"
    assert meta.fps == pytest.approx(1000 / 120)  # GIF stores centiseconds: 125 ms becomes 120 ms
    err = np.abs(frames.astype(np.int16) - clip).mean()
    assert err <= MAX_MEAN_ABS_ERR, f"GIF: mean abs error {err:.2f} > {MAX_MEAN_ABS_ERR}"
    np.testing.assert_allclose(square_centres(frames), square_centres(clip), atol=1.0)


@pytest.mark.parametrize("name,kwargs", [("clip.png", {}), ("clip.webp", {"lossless": True})])
def test_round_trip_lossless_animations_are_exact(tmp_path, clip, name, kwargs):
    frames, meta = read_video(save_animation(tmp_path / name, clip, **kwargs))
    np.testing.assert_array_equal(frames, clip)
    assert meta.fps == pytest.approx(8.0)


def test_round_trip_lossless_video_is_exact_for_every_container(tmp_path, clip):
    for suffix, codec in [(".mkv", "ffv1"), (".avi", "ffv1"), (".mov", "png")]:
        pix = "rgb24" if codec == "png" else "bgr0"
        frames, _ = read_video(encode_av(tmp_path / f"clip{suffix}", clip, codec, pix_fmt=pix))
        np.testing.assert_array_equal(frames, clip, err_msg=suffix)


def test_folder_of_frames_is_sorted_naturally(tmp_path, clip):
    for t in range(12):  # frame2.png must come before frame10.png
        Image.fromarray(clip[t]).save(tmp_path / f"frame{t}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    frames, meta = read_video(tmp_path)
    np.testing.assert_array_equal(frames, clip[:12])
    assert (meta.reader, meta.num_frames, meta.fps) == ("folder", 12, None)
    sub, _ = read_video(tmp_path, indices=[10, 2])
    np.testing.assert_array_equal(sub, clip[[10, 2]])


# ---- pixel formats ---------------------------------------------------------------------------------


def test_gray_rgba_palette_and_16_bit_become_rgb_uint8(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (8, 10), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "a0.png")
    rgba = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a1.png")
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "a2.png")
    deep = rng.integers(0, 65536, (8, 10), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "a3.png")  # 16-bit grayscale PNG
    frames, _ = read_video(tmp_path)
    assert frames.dtype == np.uint8 and frames.shape == (4, 8, 10, 3)
    np.testing.assert_array_equal(frames[0], np.repeat(gray[..., None], 3, axis=2))
    over_black = rgba[..., :3].astype(float) * rgba[..., 3:] / 255  # alpha composited over black
    assert np.abs(frames[1] - over_black).max() <= 1.0
    palette = np.asarray(Image.open(tmp_path / "a2.png").convert("RGB"))
    np.testing.assert_array_equal(frames[2], palette)
    np.testing.assert_array_equal(frames[3], np.repeat(np.round(deep.astype(float) * 255 / 65535)[..., None], 3, 2))


def test_gray_16_bit_and_alpha_video_streams(tmp_path):
    rng = np.random.default_rng(1)
    deep = (rng.integers(0, 65536, (3, 16, 32), dtype=np.uint16))
    path = encode_av(tmp_path / "deep.mkv", deep, "ffv1", pix_fmt="gray16le", in_format="gray16le")
    frames, _ = read_video(path)
    np.testing.assert_array_equal(frames, np.repeat(np.round(deep.astype(float) * 255 / 65535)[..., None], 3, 3).astype(np.uint8))
    rgba = rng.integers(0, 256, (3, 16, 32, 4), dtype=np.uint8)
    frames, _ = read_video(encode_av(tmp_path / "alpha.mkv", rgba, "ffv1", pix_fmt="bgra", in_format="rgba"))
    assert np.abs(frames - rgba[..., :3].astype(float) * rgba[..., 3:] / 255).max() <= 1.0


# ---- sampling and seeking --------------------------------------------------------------------------


def test_indices_any_order_with_repeats_and_sampling_strategies(tmp_path, clip):
    path = encode_av(tmp_path / "clip.mkv", clip, "ffv1", pix_fmt="bgr0")  # lossless: exact comparisons
    idx = [9, 3, 3, 15, 0]
    frames, meta = read_video(path, indices=idx)
    np.testing.assert_array_equal(frames, clip[idx])
    np.testing.assert_array_equal(meta.indices, idx)
    frames, meta = read_video(path, num_frames=4)  # uniform: centres of 4 segments of 4 frames
    np.testing.assert_array_equal(meta.indices, [2, 6, 10, 14])
    np.testing.assert_array_equal(frames, clip[[2, 6, 10, 14]])
    frames, meta = read_video(path, num_frames=3, sampling="scenic", stride=2, num_clips=2)
    np.testing.assert_array_equal(meta.indices, [[0, 2, 4], [10, 12, 14]])  # max offset 16 - 6 = 10
    assert frames.shape == (2, 3, H, W, 3)
    np.testing.assert_array_equal(frames[1, 2], clip[14])
    with pytest.warns(UserWarning, match="repeats frames"):  # short video: documented, never an IndexError
        frames, meta = read_video(path, num_frames=32)
    np.testing.assert_array_equal(meta.indices, np.arange(32) // 2)


def test_seeks_to_the_keyframe_before_the_wanted_frame(tmp_path):
    long_clip = make_clip(T=120)
    path = encode_av(tmp_path / "long.mp4", long_clip, "libx264", options={"g": "10", "bf": "2", "crf": "18"})
    full, meta = read_video(path)
    assert meta.frames_decoded == 120
    for idx in ([115], [3, 64, 118], [57, 2]):
        frames, meta = read_video(path, indices=idx)
        np.testing.assert_array_equal(frames, full[idx])  # identical to decoding everything
        assert meta.frames_decoded <= 12 * len(idx), f"{idx}: decoded {meta.frames_decoded} frames"


# ---- bad input ------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video file"):
        read_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize("name", ["random.mp4", "random.bin", "random.gif"])
def test_random_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match="not a video|not an image|no video stream"):
        read_video(path)


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4"])
def test_text_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not a video\n" * 40)
    with pytest.raises(ValueError, match="text file|not a video"):
        read_video(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        read_video(tmp_path / "empty.mp4")


def test_truncated_mp4(tmp_path, clip):
    data = encode_av(tmp_path / "clip.mp4", clip).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a video FFmpeg can read.*truncated"):
        read_video(tmp_path / "cut.mp4")


def test_truncated_webm_warns_and_returns_what_is_there(tmp_path, clip):
    data = encode_av(tmp_path / "clip.webm", clip, "libvpx-vp9").read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="may be truncated"):
        frames, meta = read_video(tmp_path / "cut.webm")
    assert 0 < len(frames) == meta.num_frames < T


def test_truncated_gif(tmp_path, clip):
    data = save_animation(tmp_path / "clip.gif", clip).read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_video(tmp_path / "cut.gif")


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".avi", "mpeg4")])
def test_zero_frame_video(tmp_path, suffix, codec):
    path = tmp_path / f"zero{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(ValueError, match="no frames|no video stream"):
        read_video(path)


def test_bad_indices_and_empty_folder(tmp_path, clip):
    path = encode_av(tmp_path / "clip.mkv", clip, "ffv1", pix_fmt="bgr0")
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 15\]"):
        read_video(path, indices=[3, 16])
    with pytest.raises(ValueError, match="either indices or num_frames"):
        read_video(path, indices=[1], num_frames=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no frame images"):
        read_video(tmp_path / "empty")
    Image.fromarray(clip[0]).save(tmp_path / "f1.png")
    Image.fromarray(clip[0, :20]).save(tmp_path / "f2.png")
    with pytest.raises(ValueError, match="differ in size: f1.png"):
        read_video(tmp_path)


def test_missing_pyav_names_the_video_extra(tmp_path, clip, monkeypatch):
    path = encode_av(tmp_path / "clip.mp4", clip)
    gif = save_animation(tmp_path / "clip.gif", clip)
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    with pytest.raises(VideoDependencyError, match=r"pip install 'minivivit\[video\]'"):
        read_video(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_video(gif)[0].shape == clip.shape  # Pillow formats still work
