"""Video in: decoding, frame sampling, HF-identical preprocessing, multi-view classification.

    frames, meta = read_video("clip.mp4", num_frames=32)        # decode.py: uint8 [T, H, W, 3]
    minivivit.video.sampling.sample_indices("scenic", ...)       # sampling.py: which frames
    minivivit.preprocess_for(model.config, frames)               # preprocess.py: -> pixel_values [B, T, C, H, W]
    minivivit.classify(model, "clip.mp4", views="4x3")           # classify.py: the paper's multi-view evaluation
"""

from .decode import MAX_BYTES, VideoDependencyError, VideoMeta, read_video, video_info
from .sampling import STRATEGIES, ShortVideoWarning, sample_indices

__all__ = ["MAX_BYTES", "STRATEGIES", "ShortVideoWarning", "VideoDependencyError", "VideoMeta", "load_frames",
           "read_video", "sample_indices", "video_info"]


def load_frames(path, num_frames=None):
    """uint8 frames [T, H, W, 3] from a file: a .npy array as it is, anything else through read_video (num_frames
    sampled uniformly). What `minivivit attention` and `minivivit explore` accept as VIDEO."""
    from pathlib import Path

    import numpy as np

    if Path(path).suffix.lower() == ".npy":
        from ..fileio import read_npy

        frames = read_npy(path)  # the header's size is checked against the memory limit before reading
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"{path}: expected a uint8 array [T, H, W, 3]; got {frames.dtype} {frames.shape}")
        return frames
    try:
        return read_video(path, num_frames=num_frames)[0]
    except VideoDependencyError as e:
        raise RuntimeError(str(e)) from e
