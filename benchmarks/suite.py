"""The default pipeline on several real datasets, scored on validation data.

Every default of the pipeline is chosen by its mean rank across these
datasets, which mix modalities differently:

| name | modalities | source |
|---|---|---|
| mfeat | 1 image (16 x 15) + 5 vector views | embedded UCI data |
| avmnist | image (28 x 28 digits) + spectrogram (112 x 112 spoken digits) | `scripts/build_avmnist_like.py` (scikit-learn's handwritten digits, espeak-ng speech + noise) |
| clipart | image (64 x 64) + text (title, description) | Debian openclipart-png/-svg |
| debian | text (package description) + vector (sizes, dependency counts) | this machine's apt lists (`apt-cache dumpavail`), label = archive section |

Each run trains on the dataset's non-test samples only and is scored on a
seeded stratified 20% of them (`ssnas_tf.data.validation.validation_view`):
the test split is never read. One JSON line per run, then per variant the mean
validation weighted F1 per dataset, the rank among the variants on each
dataset (1 = best; equal means share their average rank) and the mean rank:

    python benchmarks/suite.py --output runs/suite --seeds 0,1,2 \\
        --variant simclr:search_cross_modal=0 --variant cross:search_cross_modal=0.5

A variant is `NAME:field=value,...` over `RunConfig` fields (values parsed as
JSON, else kept as strings); no variant means the defaults. Runs resume: a
finished run is read back, an interrupted one continues. Backbones are trained
once per dataset and seed and reused by every variant that leaves the backbone
settings unchanged.
"""

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
from scipy.stats import rankdata

from ssnas_tf.quiet import quiet_tensorflow

quiet_tensorflow()

from ssnas_tf.data import MultimodalDataset, load_dataset  # noqa: E402
from ssnas_tf.data.splits import make_splits  # noqa: E402
from ssnas_tf.data.validation import validation_view  # noqa: E402
from ssnas_tf.workflow.config import RunConfig  # noqa: E402
from ssnas_tf.workflow.resume import finished_steps  # noqa: E402
from ssnas_tf.workflow.baselines import run_class  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DATASETS = ("mfeat", "avmnist", "clipart", "debian")
# Fields that only change the steps after the backbones: variants differing in
# these alone share one backbone training per dataset and seed.
AFTER_BACKBONES = {
    "search_cross_modal", "pretrain_cross_modal", "search_epochs", "pretrain_epochs", "finetune_epochs",
    "temperature", "learning_rate", "arch_learning_rate", "weight_decay",
    "arch_weight_decay", "finetune_learning_rate", "channels", "length", "num_cells",
    "num_steps", "multiplier", "node_multiplier", "dropout", "primitives",
    "projection_dim", "finetune_batch_size", "arch_order", "attention_dropout",
    "torch_defaults", "contrastive_pretraining", "label_fraction", "labels_per_class",
    "trial_min_steps",
}
DEBIAN_SECTIONS = ("libs", "python", "devel", "utils", "net", "admin", "doc",
                   "science", "text", "games")


def avmnist_dataset(cache):
    folder = pathlib.Path(cache) / "avmnist-like"
    if not (folder / "test_labels.npy").exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_avmnist_like.py"),
                        str(folder)], check=True)
    return load_dataset("avmnist", data_dir=str(folder), valid_size=100), str(folder)


def debian_dataset(per_class=200, seed=0):
    """Package descriptions (text) + sizes and dependency counts (vector),
    labelled by archive section; from `apt-cache dumpavail`."""
    try:
        dump = subprocess.run(["apt-cache", "dumpavail"], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"suite: debian needs apt-cache and `apt-get update` "
                         f"({error})")
    by_section = collections.defaultdict(list)
    for record in dump.split("\n\n"):
        fields, last = {}, None
        for line in record.splitlines():
            if line.startswith(" ") and last:
                fields[last] += "\n" + line.strip()
            elif ":" in line:
                last, _, value = line.partition(":")
                fields[last] = value.strip()
        section = fields.get("Section", "").split("/")[-1]
        if section in DEBIAN_SECTIONS and "Description" in fields:
            by_section[section].append(fields)
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for label, section in enumerate(DEBIAN_SECTIONS):
        items = by_section[section]
        if len(items) < per_class:
            raise SystemExit(f"suite: debian section {section!r} has only "
                             f"{len(items)} packages; run `apt-get update`")
        for i in rng.choice(len(items), per_class, replace=False):
            rows.append(items[i])
            labels.append(label)

    def count(fields, key):
        return len([d for d in fields.get(key, "").split(",") if d.strip()])
    text = np.array([re.sub(r"\s+", " ", f["Description"].replace("\n.", " "))
                     for f in rows], dtype=object)
    vector = np.array([[np.log1p(float(f.get("Installed-Size", 0) or 0)),
                        np.log1p(float(f.get("Size", 0) or 0)),
                        count(f, "Depends"), count(f, "Recommends"),
                        count(f, "Suggests"), count(f, "Provides"),
                        float("Homepage" in f), float(f.get("Multi-Arch") == "same"),
                        float(f.get("Architecture") == "all")] for f in rows],
                      dtype=np.float32)
    return MultimodalDataset(
        name="debian", inputs={"description": text, "metadata": vector},
        kinds={"description": "text", "metadata": "vector"},
        labels=np.asarray(labels, np.int64), label_names=DEBIAN_SECTIONS)


def load(name, cache):
    """(dataset, data_dir) of a suite dataset."""
    if name == "avmnist":
        return avmnist_dataset(cache)
    if name == "debian":
        return debian_dataset(), None
    return load_dataset(name), None


def suite_view(full):
    """The validation view: the test split the default `ssnas run` reports
    (the dataset's own, else the one drawn for seed 0) is left out."""
    defaults = RunConfig()
    test = full.splits.get("test")
    if test is None:
        test = make_splits(full, defaults.method, defaults.label_fraction,
                           defaults.effective_split_seed, defaults.test_fraction).test
    return validation_view(full, test=test)


def parse_variant(text):
    name, _, fields = text.partition(":")
    changes = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition("=")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    return name, changes


def backbone_key(config):
    fields = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in AFTER_BACKBONES}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str)
                          .encode()).hexdigest()[:12]


def run_one(directory, config, dataset, cache):
    """Runs (or resumes) search..evaluate; returns results.json's content."""
    run = run_class(config.method)(str(directory), config, verbose=0, dataset=dataset)
    with run.lock():
        resumed = run.start() if (directory / "config.json").exists() else run.start(
            overwrite=True)
        done = finished_steps(run.path("results.json")) if resumed else set()
        shared = cache / f"backbones-{backbone_key(config)}.keras"
        if "backbones" not in done and shared.exists():
            shutil.copyfile(shared, run.path("backbones.keras"))
        for step in ("search", "pretrain", "finetune", "evaluate"):
            if step not in done:
                getattr(run, step)()
        if not shared.exists() and os.path.exists(run.path("backbones.keras")):
            shutil.copyfile(run.path("backbones.keras"), shared)
    with open(run.path("results.json")) as f:
        return json.load(f)


def features_read(genotype, modalities):
    """The backbone features and modalities a genotype's cells read (none
    for methods without a genotype)."""
    if genotype is None:
        return {}
    inputs = genotype["inputs"]
    used = sorted({inputs[i] for _, i in genotype["edges"] if i < len(inputs)})
    return {"features_read": used,
            "modalities_read": sorted({m for m in modalities for f in used
                                       if f.rsplit("_", 1)[0] == m}),
            "modalities_present": sorted(modalities)}


def summarize(records, datasets, variants):
    """Mean validation F1 per (variant, dataset), ranks, mean rank."""
    means = {(v, d): float(np.mean([r["val_weighted_f1"] for r in records
                                    if r["variant"] == v and r["dataset"] == d]))
             for v in variants for d in datasets
             if any(r["variant"] == v and r["dataset"] == d for r in records)}
    ranks = {}
    for d in datasets:
        present = [v for v in variants if (v, d) in means]
        # Tied means share the average of their positions (scipy's "average").
        for v, rank in zip(present, rankdata([-means[(v, d)] for v in present])):
            ranks[(v, d)] = float(rank)
    lines = ["| variant | " + " | ".join(datasets) + " | mean rank |",
             "|---" * (len(datasets) + 2) + "|"]
    for v in variants:
        cells = [f"{means[(v, d)]:.3f} ({ranks[(v, d)]:g}){_reads(records, v, d)}"
                 if (v, d) in means else "-" for d in datasets]
        mine = [ranks[(v, d)] for d in datasets if (v, d) in ranks]
        mean_rank = f"{np.mean(mine):.2f}" if mine else "-"
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {mean_rank} |")
    return "\n".join(lines)


def _finished(directory):
    """results.json of a finished run (None if it has not been evaluated)."""
    try:
        with open(directory / "results.json") as f:
            results = json.load(f)
    except FileNotFoundError:
        return None
    return results if "weighted_f1" in results else None


def _reads(records, variant, dataset):
    """How many of the runs' genotypes read each modality, e.g. " image 3/3"."""
    runs = [r for r in records if r["variant"] == variant and r["dataset"] == dataset
            and "modalities_read" in r]
    if not runs:
        return ""
    counts = collections.Counter(m for r in runs for m in r["modalities_read"])
    modalities = sorted({m for r in runs for m in r["modalities_present"]})
    return "; reads " + ", ".join(f"{m} {counts[m]}/{len(runs)}" for m in modalities)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=pathlib.Path, default=pathlib.Path("runs/suite"))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:field=value,... (repeatable); none: the defaults")
    parser.add_argument("--summary-only", action="store_true",
                        help="print the table of the finished runs; train nothing")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a RunConfig field set in every variant (repeatable)")
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {DATASETS}")
    variants = dict(parse_variant(v) for v in args.variant) or {"default": {}}
    common = parse_variant("common:" + ",".join(args.set))[1]
    cache = args.output / "_backbones"
    cache.mkdir(parents=True, exist_ok=True)
    records = []
    for name in datasets:
        full, data_dir = load(name, args.output)
        view = suite_view(full)
        for seed in (int(s) for s in args.seeds.split(",")):
            for variant, changes in variants.items():
                config = RunConfig(dataset=name, data_dir=data_dir, seed=seed,
                                   **{**common, **changes})
                directory = args.output / name / variant / f"s{seed}"
                start = time.perf_counter()
                if args.summary_only:
                    results = _finished(directory)
                    if results is None:
                        continue
                else:
                    results = run_one(directory, config, view, cache)
                record = {
                    "dataset": name, "variant": variant, "seed": seed,
                    "val_weighted_f1": results["weighted_f1"],
                    "val_accuracy": results.get("accuracy"),
                    **features_read(results.get("genotype"), list(view.inputs)),
                    "search_best_epoch": results.get("search_best_epoch"),
                    "seconds": round(time.perf_counter() - start, 1),
                    "changes": changes, "common": common,
                }
                records.append(record)
                print(json.dumps(record), flush=True)
    print(summarize(records, datasets, list(variants)))


if __name__ == "__main__":
    main()
