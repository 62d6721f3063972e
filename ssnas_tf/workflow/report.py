"""The tables and figures of an experiment directory (`ssnas experiment`).

    results.csv        one row per finished trial
    (With --labels-per-class K1,K2,... the "fraction" column is
    "labels_per_class" and holds K.)

    summary.csv        per (method, fraction): n, mean, sd, standard error and a
                       95% t-interval; per fraction and method m != supervised:
                       the paired difference m - supervised over the trials both
                       finished, its 95% t-interval and the Wilcoxon signed-rank
                       p-value. For weighted F1, and accuracy where there is one.
    choices.csv        how often each backbone feature and each fusion primitive
                       was chosen (the analysis of the paper's Fig. 4)
    label_fraction.png/.svg   mean +- standard error against r (log axis), one
                       line per method (the paper's Fig. 3); needs matplotlib
    table3.md          --protocol exp2: the paper's Table 3 (method, weighted F1)

Everything is recomputed from the trial directories each time, and written
atomically, so the reports of an interrupted experiment are those of its
finished trials.
"""

import csv
import io
import json
import math
import os

from ssnas_tf.atomic import atomic_write_text
from ssnas_tf.nas.genotypes import Genotype
from ssnas_tf.stats import paired_difference, summarize
from ssnas_tf.workflow.plan import trial_dir

REFERENCE_METHOD = "supervised"
METRICS = ("weighted_f1", "accuracy")
RESULT_FIELDS = ("method", "fraction", "trial", "seed", "split_seed", "weighted_f1",
                 "accuracy", "seconds", "inputs", "primitives", "run_dir")
SUMMARY_FIELDS = ("metric", "fraction", "method", "n", "mean", "sd", "se", "ci_low",
                  "ci_high", "wilcoxon_p")
# The budget column's header when the experiment varies --labels-per-class.
BUDGET_COLUMN = "labels_per_class"
CHOICE_FIELDS = ("method", "fraction", "kind", "name", "trials_chosen", "trials",
                 "share_of_trials", "occurrences")


def _live_primitives(genotype):
    """The primitives of the inner steps of the live cells, in cell order."""
    return [p for c in genotype.live_cells for p in genotype.steps[c].inner_steps]


def _input_reads(genotype):
    """Feature names, once per live cell input that reads one."""
    k = len(genotype.inputs)
    return [genotype.inputs[i] for c in genotype.live_cells
            for i in genotype.cell_inputs(c) if i < k]


def collect_rows(root, experiment):
    """One dict per finished trial of the plan (results.json with a score)."""
    rows = []
    for spec in experiment.plan():
        directory = trial_dir(root, spec)
        try:
            with open(os.path.join(directory, "results.json")) as f:
                results = json.load(f)
            with open(os.path.join(directory, "config.json")) as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue
        if "weighted_f1" not in results:
            continue
        # randomnet has no BM-NAS genotype: its inputs/primitives stay empty.
        genotype = (Genotype.from_dict(results["genotype"]) if results.get("genotype")
                    else None)
        rows.append({
            "method": spec.method, "fraction": spec.fraction, "trial": spec.trial,
            "seed": config.get("seed"), "split_seed": config.get("split_seed"),
            "weighted_f1": results["weighted_f1"], "accuracy": results.get("accuracy"),
            "seconds": round(sum(results.get("seconds", {}).values()), 1),
            "inputs": "|".join(genotype.used_inputs) if genotype else "",
            "primitives": "|".join(_live_primitives(genotype)) if genotype else "",
            "genotype": genotype, "run_dir": os.path.relpath(directory, root)})
    return rows


def summary_rows(rows, methods, fractions):
    """The summary.csv rows (see the module docstring)."""
    out = []
    for metric in METRICS:
        for fraction in fractions:
            scores = {}
            for method in methods:
                by_trial = {r["trial"]: r[metric] for r in rows
                            if r["method"] == method and r["fraction"] == fraction
                            and r[metric] is not None}
                scores[method] = by_trial
                if by_trial:
                    out.append({"metric": metric, "fraction": fraction, "method": method,
                                **summarize(list(by_trial.values())), "wilcoxon_p": ""})
            reference = scores.get(REFERENCE_METHOD, {})
            for method in methods:
                if method == REFERENCE_METHOD or not reference:
                    continue
                common = sorted(set(scores[method]) & set(reference))
                if not common:
                    continue
                diff = paired_difference([scores[method][t] for t in common],
                                         [reference[t] for t in common])
                out.append({"metric": metric, "fraction": fraction,
                            "method": f"{method}-{REFERENCE_METHOD}", **diff})
    return out


def choice_rows(rows, methods, fractions):
    """The choices.csv rows: per (method, fraction), each feature and primitive."""
    out = []
    for method in methods:
        for fraction in fractions:
            group = [r["genotype"] for r in rows if r["method"] == method
                     and r["fraction"] == fraction and r["genotype"] is not None]
            if not group:
                continue
            for kind, names_of in (("feature", _input_reads), ("primitive", _live_primitives)):
                per_trial = [names_of(g) for g in group]
                for name in sorted({n for names in per_trial for n in names}):
                    chosen = sum(name in names for names in per_trial)
                    out.append({"method": method, "fraction": fraction, "kind": kind,
                                "name": name, "trials_chosen": chosen, "trials": len(group),
                                "share_of_trials": round(chosen / len(group), 4),
                                "occurrences": sum(names.count(name) for names in per_trial)})
    return out


def _csv_text(fields, rows, per_class=False):
    """CSV of `rows`; with `per_class` the "fraction" column (K labeled samples
    per class, then) is headed "labels_per_class"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([BUDGET_COLUMN if per_class and k == "fraction" else k
                     for k in fields])
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in fields])
    return buffer.getvalue()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def table3_markdown(summary, methods):
    """The paper's Table 3: weighted F1 (mean +- s.e., 95% CI) per method at r = 1."""
    lines = ["| Method | Weighted F1 (mean ± s.e.) | 95% CI | trials |",
             "|---|---|---|---|"]
    names = {"ssl": "SSL search (no labels), then supervised training",
             "supervised": "BM-NAS (supervised search)"}
    rows = [s for s in summary if s["metric"] == "weighted_f1" and s["fraction"] == 1.0]
    for s in rows:
        name = names.get(s["method"], s["method"])
        if "-" in s["method"]:
            name = f"paired difference {s['method']} (Wilcoxon p = {_cell(s['wilcoxon_p'])})"
        lines.append(f"| {name} | {100 * s['mean']:.2f} ± {_pct(s['se'])} | "
                     f"[{_pct(s['ci_low'])}, {_pct(s['ci_high'])}] | {s['n']} |")
    return "\n".join(lines) + "\n"


def _pct(value):
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def write_reports(root, experiment):
    """Writes every report of the module docstring; returns their paths."""
    rows = collect_rows(root, experiment)
    methods, fractions = experiment.methods, experiment.fractions
    summary = summary_rows(rows, methods, fractions)
    written = {}
    for name, fields, table in (("results.csv", RESULT_FIELDS, rows),
                                ("summary.csv", SUMMARY_FIELDS, summary),
                                ("choices.csv", CHOICE_FIELDS,
                                 choice_rows(rows, methods, fractions))):
        written[name] = os.path.join(root, name)
        atomic_write_text(written[name], _csv_text(fields, table, experiment.per_class))
    if experiment.protocol == "exp2":
        written["table3.md"] = os.path.join(root, "table3.md")
        atomic_write_text(written["table3.md"], table3_markdown(summary, methods))
    try:
        from ssnas_tf.viz.plots import plot_label_fraction
        for ext in ("png", "svg"):
            path = os.path.join(root, f"label_fraction.{ext}")
            plot_label_fraction(summary, path, xlabel=(
                "labeled samples per class K" if experiment.per_class else None))
            written[f"label_fraction.{ext}"] = path
    except ImportError as err:
        print(f"[ssnas experiment] no figure: {err}", flush=True)
    print(f"[ssnas experiment] {len(rows)} finished trial(s); wrote "
          + ", ".join(sorted(written)), flush=True)
    return written
