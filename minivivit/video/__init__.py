"""Video in: decoding, frame sampling, HF-identical preprocessing, multi-view classification.

    frames, meta = read_video("clip.mp4", num_frames=32)        # decode.py: uint8 [T, H, W, 3]
    minivivit.video.sampling.sample_indices("scenic", ...)       # sampling.py: which frames
    minivivit.preprocess_for(model.config, frames)               # preprocess.py: -> pixel_values [B, T, C, H, W]
    minivivit.classify(model, "clip.mp4", views="4x3")           # classify.py: the paper's multi-view evaluation
"""

from .decode import MAX_BYTES, VideoDependencyError, VideoMeta, read_video, video_info
from .sampling import STRATEGIES, ShortVideoWarning, sample_indices

__all__ = ["MAX_BYTES", "STRATEGIES", "ShortVideoWarning", "VideoDependencyError", "VideoMeta", "read_video",
           "sample_indices", "video_info"]
