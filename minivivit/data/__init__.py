"""Synthetic labelled videos for tests, notebooks and the bundled demo model.

    from minivivit.data import make_clip, LABELS
    clip = make_clip(seed=0, index=3)          # a small object moving over a textured background
    clip.frames   # uint8 [16, 64, 64, 3]      clip.label_name  # "left" | "right" | "up" | "down"
    clip.masks    # bool [16, 64, 64], the object's pixels in each frame (for "where does it look")

See synthetic.py for the task and why a single frame cannot solve it.
"""

from .synthetic import DIRECTIONS, LABELS, Clip, make_batch, make_clip

__all__ = ["DIRECTIONS", "LABELS", "Clip", "make_batch", "make_clip"]
