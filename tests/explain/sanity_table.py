"""The table of docs/explanations.md "Sanity checks": every method on test_sanity.py's 6 clips, the same measures.

    python tests/explain/sanity_table.py       # ~1 min on 2 cores; prints one line per method
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sanity import CLIPS, last_visit_tubelets, object_tubelets, spearman  # noqa: E402

import minivivit  # noqa: E402
from minivivit.checkpoint import default_weights  # noqa: E402
from minivivit.data import make_visit_clip  # noqa: E402
from minivivit.explain import explain  # noqa: E402
from minivivit.video.preprocess import preprocess_for  # noqa: E402
from minivivit.weights import init_params  # noqa: E402

METHODS = ("raw", "rollout", "gae", "grad-rollout", "transformer-attribution", "inputxgrad", "ig")


def main():
    model = minivivit.load(default_weights())
    c = model.config
    clips = [make_visit_clip(1, i, num_frames=c.num_frames, size=c.image_hw[0]) for i in range(CLIPS)]
    rand = minivivit.Model(init_params(c, 0), c)
    print("method | randomisation corr | last-visit share (min, base) | object share (min, base) | class corr")
    for m in METHODS:
        rows = []
        for k in clips:
            x = preprocess_for(c, k.frames)
            e = explain(model, x, m)
            obj, last = object_tubelets(c, k.masks), last_visit_tubelets(c, k.masks)  # bool [P] each
            pos = np.maximum(e.relevance[0], 0)
            other = (int(e.target[0]) + 1) % c.num_labels
            rows.append((spearman(e.relevance[0], explain(rand, x, m, target=int(e.target[0])).relevance[0]),
                         pos[last].sum() / pos.sum(), last.mean(), pos[obj].sum() / pos.sum(), obj.mean(),
                         spearman(e.relevance[0], explain(model, x, m, target=other).relevance[0])))
        r = np.array(rows)
        print(f"{m} | {r[:, 0].mean():.2f} | {r[:, 1].mean():.2f} ({r[:, 1].min():.2f}, {r[:, 2].mean():.3f}) | "
              f"{r[:, 3].mean():.2f} ({r[:, 3].min():.2f}, {r[:, 4].mean():.3f}) | {r[:, 5].mean():.2f}")


if __name__ == "__main__":
    main()
