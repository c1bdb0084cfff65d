"""The files `minivivit explain-eval` writes (from explain.faithfulness.evaluate's result): the table (CSV, Markdown), every curve point (CSV), the plot."""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = ("positive_auc_logit", "positive_auc_accuracy", "negative_auc_logit", "negative_auc_accuracy")


def markdown_table(result, what: str, weights) -> str:
    rows = result.table()
    intro = (f"Perturbation test over {result.clips} clips of {what}, model {Path(str(weights)).name}: area under "
             f"the curve of the predicted class's logit and of the accuracy as tubelets are removed (fractions "
             f"{', '.join(f'{f:g}' for f in result.fractions)}). Positive test (most relevant first): lower is "
             f"better; negative test (least relevant first): higher is better.")
    header = ("| method | positive AUC logit (lower better) | positive AUC accuracy (lower better) | "
              "negative AUC logit (higher better) | negative AUC accuracy (higher better) |")
    lines = [intro, "", header, "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_report(result, out: Path, what: str, weights, overwrite: bool) -> str:
    from ..fileio import atomic_output
    from . import viz

    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "faithfulness.csv", overwrite) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("method", *COLUMNS))
        for r in result.table():
            w.writerow((r["method"], *(f"{r[c]:.6f}" for c in COLUMNS)))
    with atomic_output(out / "curves.csv", overwrite) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("method", "test", "fraction", "target_logit", "accuracy"))
        for (method, test), (lg, acc) in result.curves.items():
            for fr, a, b in zip(result.fractions, lg, acc):
                w.writerow((method, test, f"{fr:g}", f"{a:.6f}", f"{b:.6f}"))
    table = markdown_table(result, what, weights)
    with atomic_output(out / "faithfulness.md", overwrite) as tmp:
        Path(tmp).write_text(table)
    viz.save_figure(plot_curves(result), out / "faithfulness.png", overwrite=overwrite)
    return table


def plot_curves(result):
    """Two rows (target logit, accuracy) x two columns (positive, negative test), one line per method + random."""
    from .viz import _figure

    fig = _figure((9.5, 6.5))
    axes = fig.subplots(2, 2, sharex=True)
    methods = list(dict.fromkeys(m for m, _ in result.curves if m != "random"))
    for j, test in enumerate(("positive", "negative")):
        for i, ylabel in enumerate(("predicted class's logit", "accuracy")):
            ax = axes[i, j]
            for m in methods:
                ax.plot(result.fractions, result.curves[m, test][i], marker="o", ms=3, label=m)
            ax.plot(result.fractions, result.curves["random", "random"][i], "k--", label="random order")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if i == 0:
                first = "most" if test == "positive" else "least"
                ax.set_title(f"{test} test: {first} relevant tubelets removed first", fontsize=10)
            else:
                ax.set_xlabel("fraction of tubelets removed")
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(f"Perturbation test, {result.clips} clips (lower is better on the left, higher on the right)",
                 fontsize=11)
    return fig
