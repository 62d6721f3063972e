"""Figures of an experiment: test score against the label fraction.

`plot_label_fraction` draws the paper's Fig. 3: the mean test weighted F1 over
the trials, with the standard error as error bars, against the label fraction r
on a log axis, one line per method.

matplotlib is an optional extra: `pip install -e ".[plots]"`.

Reference: Suzuki & Ono, 2025, Fig. 3.
"""

import math
import os

from ssnas_tf.atomic import atomic_output

LABELS = {"weighted_f1": "weighted F1", "accuracy": "accuracy"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('the figures need matplotlib: pip install -e ".[plots]" '
                          '(or pip install matplotlib)') from None
    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt
    return plt


def plot_label_fraction(summary, path, metric="weighted_f1", xlabel=None):
    """Writes mean +- s.e. of `metric` against r (log axis) to `path`.

    Args:
        summary: rows of summary.csv as dicts with `metric`, `method`,
            `fraction`, `mean`, `se` (`ssnas_tf.workflow.report.summary_rows`);
            paired-difference rows (method "a-b") are left out.
        path: the figure file; the format follows its extension (.png, .svg).
        metric: which metric. Defaults to "weighted_f1".
        xlabel: the x axis' label; None for "label fraction r".

    Raises:
        ImportError: matplotlib is missing (the message says how to install it).
        ValueError: no row of `summary` holds `metric`.
    """
    plt = _pyplot()
    lines = {}
    for row in summary:
        if row["metric"] == metric and "-" not in row["method"]:
            lines.setdefault(row["method"], []).append(row)
    if not lines:
        raise ValueError(f"plot_label_fraction: no '{metric}' rows to plot")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, rows in lines.items():
        rows = sorted(rows, key=lambda r: r["fraction"])
        se = [0.0 if math.isnan(r["se"]) else r["se"] for r in rows]
        ax.errorbar([r["fraction"] for r in rows], [r["mean"] for r in rows], yerr=se,
                    marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel or "label fraction r")
    ax.set_ylabel(f"test {LABELS.get(metric, metric)} (mean ± s.e.)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    ext = os.path.splitext(path)[1]
    with atomic_output(path, suffix=ext) as tmp:
        fig.savefig(tmp, format=ext.lstrip(".") or None)
    plt.close(fig)
    return path
