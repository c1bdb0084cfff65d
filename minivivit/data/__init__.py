"""Synthetic labelled videos for tests, notebooks and the bundled demo model.

    from minivivit.data import make_clip, LABELS
    clip = make_clip(seed=0, index=3)          # a small object moving over a textured background
    clip.frames   # uint8 [16, 64, 64, 3]      clip.label_name  # "left" | "right" | "up" | "down"
    clip.masks    # bool [16, 64, 64], the object's pixels in each frame (for "where does it look")

    from minivivit.data import make_visit_clip, VISIT_LABELS   # the bundled demo model's task
    clip = make_visit_clip(seed=0, index=3)    # the object visits the 4 quadrants; label = where it ends
    clip.label_name  # "top-left" | "top-right" | "bottom-left" | "bottom-right"

synthetic.py: direction of motion (solvable inside one 2-frame tubelet; the task of the first demo model, kept for
the notebooks that train live). visits.py: where and when (needs the position embeddings and the frame order; the
bundled model's task since its retraining). Each file says why.
"""

from .synthetic import DIRECTIONS, LABELS, Clip, make_batch, make_clip
from .visits import VISIT_LABELS, VisitClip, make_visit_batch, make_visit_clip

__all__ = ["DIRECTIONS", "LABELS", "VISIT_LABELS", "Clip", "VisitClip", "make_batch", "make_clip",
           "make_visit_batch", "make_visit_clip"]
