"""Decoding videos to uint8 RGB frames [T, H, W, 3].

    frames, meta = read_video("clip.mp4")                              every frame
    frames, meta = read_video("clip.mp4", num_frames=16)               16 frames, uniform (minivivit.video.sampling)
    frames, meta = read_video("clip.mp4", num_frames=32, sampling="hf", frame_sample_rate=2, seed=0)
    frames, meta = read_video("clip.mp4", indices=[0, 2, 4])           exactly these frames
    meta.indices, meta.num_frames, meta.fps, meta.duration, meta.height, meta.width

Readers, chosen by the file's first bytes (then its extension):
  - PyAV (the `video` extra, imported only here) for mp4 / webm / mkv / avi / mov and anything FFmpeg reads;
  - Pillow for GIF, APNG, WebP (animated or not) and single images;
  - a folder of frame images, sorted naturally (frame2.png before frame10.png).
Every frame becomes RGB uint8: grayscale is repeated, palette expanded, alpha composited over black,
16-bit scaled to 8 bits (v * 255 / 65535, rounded).

Frames are counted, never taken from the container header (WebM usually says 0, AVI may be wrong):
PyAV demuxes the packets (no decoding) to count frames and find keyframes, then seeks to the last
keyframe before each wanted frame instead of decoding the whole file.
"""

from __future__ import annotations

import bisect
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..memory import check_budget, limit
from .images import (
    PILLOW_ERRORS,
    PILLOW_SUFFIXES,
    _check_same_size,
    _frame_files,
    _gif_without_trailer,
    _open_image,
    _pil_fps,
    _pillow_frames,
    _read_image_file,
)
from .sampling import sample_indices

MAX_BYTES = 4 * 2**30  # every frame of a video (no num_frames / indices): refused above 4 GiB ($MINIVIVIT_MAX_BYTES)
# FFmpeg demuxers that read other files or the network (playlists, lists, streams): not a video file, refused
REFUSED_FORMATS = {"concat": "an ffconcat list of other files", "hls": "an HLS playlist", "applehttp": "an HLS playlist",
                   "dash": "a DASH manifest", "sdp": "an SDP session description", "rtsp": "an RTSP stream",
                   "rtp": "an RTP stream", "image2": "an image sequence pattern", "lavfi": "a filter graph",
                   "tee": "a tee list", "tty": "a text file"}


@dataclass(frozen=True)
class VideoMeta:
    """What read_video / video_info report about a video."""

    path: str
    num_frames: int  # frames in the file, counted (not the container's claim)
    fps: float | None  # frames per second (None for a folder of images)
    duration: float | None  # seconds, num_frames / fps
    height: int  # frame height in pixels
    width: int  # frame width in pixels
    reader: str  # "pyav", "pillow" or "folder"
    codec: str | None = None  # e.g. "h264", "vp9", "gif"
    indices: np.ndarray | None = None  # which frames read_video returned (frames[i] is frame indices[i])
    frames_decoded: int | None = None  # frames read_video actually decoded (PyAV: shows the keyframe seeking)


class VideoDependencyError(ImportError):
    """PyAV (the `video` extra) is needed for this file but is not installed."""


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def video_info(path) -> VideoMeta:
    """Count the frames and read fps / size without decoding pixels (PyAV: demux only)."""
    path, kind = _locate(path)
    if kind == "folder":
        files = _frame_files(path)
        h, w = _read_image_file(files[0]).shape[:2]
        return VideoMeta(str(path), len(files), None, None, h, w, "folder", "images")
    if kind == "pillow":
        with _open_image(path) as im:
            try:
                im.load()  # WebP reports the first frame's duration only once it is loaded
                n = getattr(im, "n_frames", 1)
                if n > 1 and im.format == "GIF" and _gif_without_trailer(path):  # cut short: does the last frame decode?
                    im.seek(n - 1)
                    im.load()
                    im.seek(0)
            except PILLOW_ERRORS as e:
                raise ValueError(f"{path}: the image could not be decoded ({type(e).__name__}: {e}); the file is "
                                 f"truncated or corrupt") from e
            fps = _pil_fps(im)
            return VideoMeta(str(path), n, fps, n / fps if fps else None, im.height, im.width, "pillow",
                             (im.format or "image").lower())
    with _open_av(path) as container:
        return _av_index(container, path)[0]


def read_video(path, indices=None, *, num_frames: int | None = None, sampling: str = "uniform",
               frame_sample_rate: int = 1, stride: int = 1, num_clips: int = 1, seed: int | None = 0):
    """Decode a video to uint8 RGB frames. Returns (frames, meta).

    indices: frame numbers to return (any shape; frames has shape [*indices.shape, H, W, 3]; repeats allowed).
    num_frames: instead of indices, sample this many with `sampling` ("uniform" | "hf" | "scenic", see
        minivivit.video.sampling; scenic with num_clips > 1 gives frames [num_clips, num_frames, H, W, 3]).
    Neither: every frame ([T, H, W, 3]), refused above 4 GiB with a hint to pass num_frames.
    meta.indices holds the frame numbers returned.
    """
    path, kind = _locate(path)
    choose = (indices, num_frames, sampling, frame_sample_rate, stride, num_clips, seed)
    if kind == "pyav":  # one open: index the packets, choose the frames, decode them
        with _open_av(path) as container:
            info, order, keyframes = _av_index(container, path)
            indices, wanted = _choose_indices(info, *choose)
            decoded, count = _av_frames(container, path, order, keyframes, wanted)
    else:
        info = video_info(path)
        indices, wanted = _choose_indices(info, *choose)
        if kind == "folder":
            files = _frame_files(path)
            decoded, count = {i: _read_image_file(files[i]) for i in wanted}, len(wanted)
            _check_same_size(decoded, files)
        else:
            decoded, count = _pillow_frames(path, wanted), wanted[-1] + 1  # Pillow decodes forward
    first = decoded[wanted[0]]
    frames = np.stack([decoded[int(i)] for i in indices.ravel()])  # [prod(indices.shape), H, W, 3]
    frames = frames.reshape(*indices.shape, *first.shape)  # [*indices.shape, H, W, 3]
    return frames, replace(info, indices=indices, height=first.shape[0], width=first.shape[1], frames_decoded=count)


def _choose_indices(info: VideoMeta, indices, num_frames, sampling, frame_sample_rate, stride, num_clips, seed):
    """(indices as given or sampled, sorted unique frame numbers to decode); checks them against the video."""
    n, path = info.num_frames, info.path
    if n == 0:
        raise ValueError(f"{path} contains a video stream with no frames (zero-frame video); nothing to decode")
    if indices is not None and num_frames is not None:
        raise ValueError("pass either indices or num_frames (with sampling), not both")
    frame = info.height * info.width * 3  # bytes of one decoded frame
    if indices is not None:
        try:
            indices = np.asarray(indices)
        except (ValueError, TypeError) as e:
            raise ValueError(f"indices must be an array of frame numbers (ints); {e}") from None
        if indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be a non-empty array of ints; got {str(indices)[:80]}")
        _check_frames_budget(indices.size * frame, f"decoding {indices.size} frames of {info.height}x{info.width} "
                             f"from {path}", ["fewer indices"])
        if indices.min() < 0 or indices.max() >= n:
            raise ValueError(f"indices must lie in [0, {n - 1}] ({path} has {n} frames); got min {indices.min()}, "
                             f"max {indices.max()}. Use num_frames=... to sample a clip that fits the video.")
    elif num_frames is not None:
        clips = num_clips if sampling == "scenic" else 1
        if isinstance(num_frames, (int, np.integer)) and isinstance(clips, (int, np.integer)) and clips > 0:
            _check_frames_budget(int(num_frames) * int(clips) * frame,
                                 f"decoding {clips} clip(s) x {num_frames} frames of {info.height}x{info.width} "
                                 f"from {path}", ["fewer frames per clip (num_frames) or fewer clips (views)"])
        indices = sample_indices(sampling, n, num_frames, frame_sample_rate=frame_sample_rate, stride=stride,
                                 num_clips=num_clips, seed=seed)
    else:
        check_budget(n * frame, limit(MAX_BYTES), False, f"decoding every frame of {path} ({n} frames of "
                     f"{info.height}x{info.width}, uint8)", ["pass num_frames=... (or indices=...) to decode only "
                                                              "the frames you need"])
        indices = np.arange(n)
    return indices, sorted({int(i) for i in indices.ravel()})


def _check_frames_budget(nbytes: int, what: str, cheaper):
    """The memory guard of decoding (minivivit.memory): the frames returned, before any is decoded."""
    check_budget(nbytes, limit(), False, what, cheaper)


# ---------------------------------------------------------------------------------------------
# Which reader: the first bytes decide; the extension only when the bytes are not known
# ---------------------------------------------------------------------------------------------


def sniff(head: bytes) -> str | None:
    """"pillow" or "pyav" from a file's first 16 bytes, or None when they are not a format known here."""
    if (head[:6] in (b"GIF87a", b"GIF89a") or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff"
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[:2] == b"BM"
            or head[:4] in (b"II*\x00", b"MM\x00*")):
        return "pillow"
    if (head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:4] in (b"OggS", b"FLV\x01") or head[4:8] in (b"moov", b"mdat", b"wide", b"free")):
        return "pyav"  # mp4 / mov, mkv / webm (EBML), avi, ogg, flv
    return None


def _locate(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such video file or folder: {path}")
    if path.is_dir():
        return path, "folder"
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file (a FIFO, device or socket); expected a video file, an "
                         f"animation or a folder of frames")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes); expected a video file")
    kind = sniff(head) or ("pillow" if path.suffix.lower() in PILLOW_SUFFIXES else "pyav")
    return path, kind


# ---------------------------------------------------------------------------------------------
# PyAV: index by demuxing, then seek to keyframes and decode only what is needed
# ---------------------------------------------------------------------------------------------


def _import_av():
    try:
        import av
    except ImportError as e:
        raise VideoDependencyError(
            "reading mp4/webm/mkv/avi/mov needs PyAV, the `video` extra: pip install 'minivivit[video]' "
            "(or pip install av). GIF, APNG, WebP and folders of frame images work without it.") from e
    return av


class _open_av:
    """Context manager: open with PyAV, turning FFmpeg's errors into messages that say what is wrong."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        av = _import_av()
        try:
            self.container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise ValueError(f"{self.path} is not a video FFmpeg can read: it may be another kind of file, "
                             f"random bytes or a truncated download (FFmpeg: {e})") from e
        names = set(self.container.format.name.split(","))
        refused = sorted(names & set(REFUSED_FORMATS))
        if refused:  # a text file (FFmpeg's ANSI-art "video"), or a list / playlist naming other files or streams
            self.container.close()
            raise ValueError(f"{self.path} is {REFUSED_FORMATS[refused[0]]} (FFmpeg format {refused[0]!r}), not a video "
                             f"file; minivivit reads single video files and does not follow references to other "
                             f"files or streams")
        if not self.container.streams.video:
            kinds = sorted({s.type for s in self.container.streams}) or ["none"]
            self.container.close()
            raise ValueError(f"{self.path} has no video stream (streams: {', '.join(kinds)}); "
                             f"it holds no frames to decode (zero-frame or audio-only file)")
        return self.container

    def __exit__(self, *exc):
        self.container.close()


def _av_index(container, path):
    """Demux (no decoding): (meta, sorted frame pts or None, keyframe positions)."""
    av = _import_av()
    stream = container.streams.video[0]
    pts, key_pts = [], set()
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or getattr(packet, "is_discard", False):  # flush packets / edit-list drops
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.add(packet.pts)
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: reading packets failed after {len(pts)} frames ({e}); it is not a video FFmpeg "
                         f"can read, or it is truncated or corrupt") from e
    n = len(pts)
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    duration = n / fps if fps else None
    if duration and container.duration and duration < 0.9 * container.duration / 1e6 - 1.0 / fps:
        warnings.warn(f"{path}: the container says {container.duration / 1e6:.2f} s but only {n} frames "
                      f"({duration:.2f} s) are present; the file may be truncated", stacklevel=3)
    meta = VideoMeta(str(path), n, fps, duration, cc.height, cc.width, "pyav", cc.name)
    if any(p is None for p in pts) or len(set(pts)) != n:
        return meta, None, []  # no usable timestamps: decode sequentially
    order = sorted(pts)
    keyframes = [i for i, p in enumerate(order) if p in key_pts] or [0]
    return meta, order, keyframes


def _av_frames(container, path, order, keyframes, wanted):
    """Decode the wanted frames: ({frame number: [H, W, 3] uint8}, frames decoded)."""
    av = _import_av()
    stream = container.streams.video[0]
    stream.codec_context.thread_type = "AUTO"
    try:
        if order is not None:
            try:
                return _av_seek_decode(container, stream, order, keyframes, wanted)
            except _NeedSequential:
                pass
        container.seek(0)
        return _av_sequential_decode(container, stream, wanted, path)
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: decoding failed ({e}); the file may be truncated or corrupt") from e


class _NeedSequential(Exception):
    """Decoded timestamps do not match the packet index; fall back to counting frames from the start."""


def _av_seek_decode(container, stream, order, keyframes, wanted):
    """Decode each wanted frame, seeking to the last keyframe before it whenever that skips work.

    Returns ({frame number: [H, W, 3] uint8}, number of frames decoded)."""
    index_of = {p: i for i, p in enumerate(order)}  # pts -> frame number
    out, pos, frames, count = {}, None, None, 0  # pos: frame number last decoded
    for w in wanted:
        k = keyframes[bisect.bisect_right(keyframes, w) - 1]  # last keyframe at or before w
        if frames is None or pos is None or w <= pos or k > pos + 1:
            container.seek(order[k], stream=stream, backward=True, any_frame=False)
            frames, pos = container.decode(stream), None
        for frame in frames:
            count += 1
            i = index_of.get(frame.pts)
            if i is None:
                raise _NeedSequential
            pos = i
            if i >= w:
                break
        if pos != w:
            raise _NeedSequential
        out[w] = _av_rgb(frame)  # [H, W, 3] uint8
    return out, count


def _av_rgb(frame) -> np.ndarray:
    """A decoded PyAV frame -> uint8 [H, W, 3]: FFmpeg converts YUV / gray / palette to RGB; deeper than 8 bits
    is scaled v * 255 / 65535 (rounded) here, and alpha is composited over black, as in the Pillow path."""
    components = frame.format.components
    alpha = any(c.is_alpha for c in components)
    deep = max(c.bits for c in components) > 8
    if not alpha and not deep:
        return frame.to_ndarray(format="rgb24")  # [H, W, 3]
    if deep:
        a = frame.to_ndarray(format="rgba64le").astype(np.int64)  # [H, W, 4] in 0..65535
        a = (a * 255 + 32767) // 65535  # [H, W, 4] in 0..255
    else:
        a = frame.to_ndarray(format="rgba").astype(np.int64)  # [H, W, 4]
    return ((a[..., :3] * a[..., 3:] + 127) // 255).astype(np.uint8)  # [H, W, 3] over black


def _av_sequential_decode(container, stream, wanted, path):
    out, need, last = {}, set(wanted), max(wanted)
    i = -1
    for i, frame in enumerate(container.decode(stream)):
        if i in need:
            out[i] = _av_rgb(frame)  # [H, W, 3] uint8
        if i >= last:
            break
    count = i + 1
    missing = sorted(need - set(out))
    if missing:
        raise ValueError(f"{path}: frames {missing[:5]}{'...' if len(missing) > 5 else ''} could not be decoded "
                         f"(decoding stopped after frame {i}); the file may be truncated or corrupt")
    return out, count
