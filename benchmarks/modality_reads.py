"""How fast, and which way, the ssl search's architecture weights move per modality.

Runs the search step alone (backbones shared with `benchmarks/suite.py`'s
cache, the same validation view, so no test sample is read) for each variant
and seed, and prints one JSON line per run with, for every search epoch, the
features the derived genotype reads and the mean softmaxed identity weight of
each modality's edges into the first cell. Then, per variant: in how many
seeds each modality is read at the end, and the mean per-epoch margin of each
modality's weight over the others' (how fast the search moves toward it).

    python benchmarks/modality_reads.py --output runs/suite --dataset avmnist \\
        --seeds 0,1,2 --set search_epochs=3 \\
        --variant simclr:search_cross_modal=0 --variant cross:search_cross_modal=1
"""

import argparse
import collections
import json
import os
import pathlib
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402  (the suite's datasets, variants and backbone cache)

from ssnas_tf.workflow.config import RunConfig  # noqa: E402
from ssnas_tf.workflow.run import Run  # noqa: E402


def first_cell_weights(alpha, inputs, modalities):
    """Mean identity weight of each modality's edges into cell 1."""
    identity = np.asarray(alpha)[:len(inputs), 1]
    return {m: float(np.mean([w for f, w in zip(inputs, identity)
                              if f.rsplit("_", 1)[0] == m])) for m in modalities}


def search_only(directory, config, view, cache):
    run = Run(str(directory), config, verbose=0, dataset=view)
    with run.lock():
        if not (directory / "config.json").exists():
            run.start(overwrite=True)
        else:
            run.start()
        shared = cache / f"backbones-{suite.backbone_key(config)}.keras"
        if shared.exists() and not os.path.exists(run.path("backbones.keras")):
            shutil.copyfile(shared, run.path("backbones.keras"))
        if not os.path.exists(run.path("genotype.json")):
            run.search()
        if not shared.exists():
            shutil.copyfile(run.path("backbones.keras"), shared)
    with open(run.path("search_log.jsonl")) as f:
        return [json.loads(line) for line in f]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=pathlib.Path, default=pathlib.Path("runs/suite"))
    parser.add_argument("--dataset", default="avmnist", choices=suite.DATASETS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args(argv)
    variants = dict(suite.parse_variant(v) for v in args.variant) or {"default": {}}
    common = suite.parse_variant("common:" + ",".join(args.set))[1]
    cache = args.output / "_backbones"
    cache.mkdir(parents=True, exist_ok=True)
    full, data_dir = suite.load(args.dataset, args.output)
    view = suite.suite_view(full)
    modalities = list(view.inputs)
    summary = collections.defaultdict(list)
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant, changes in variants.items():
            config = RunConfig(dataset=args.dataset, data_dir=data_dir, seed=seed,
                               **{**common, **changes})
            # The suite's run directory: a finished suite run is read, not searched again.
            directory = args.output / args.dataset / variant / f"s{seed}"
            log = search_only(directory, config, view, cache)
            epochs = []
            for entry in log:
                genotype = entry["genotype"]
                weights = first_cell_weights(entry["arch_weights"]["alpha"],
                                             genotype["inputs"], modalities)
                epochs.append({"epoch": entry["epoch"],
                               **suite.features_read(genotype, modalities),
                               "cell1_identity_weight": weights})
            record = {"dataset": args.dataset, "variant": variant, "seed": seed,
                      "changes": changes, "common": common, "epochs": epochs}
            summary[variant].append(epochs)
            print(json.dumps(record), flush=True)
    print("| variant | " + " | ".join(f"{m} read (last epoch)" for m in modalities)
          + " | " + " | ".join(f"{m} margin / epoch" for m in modalities) + " |")
    print("|---" * (1 + 2 * len(modalities)) + "|")
    for variant, runs in summary.items():
        reads = [sum(m in r[-1].get("modalities_read", []) for r in runs)
                 for m in modalities]
        margins = []
        for m in modalities:
            per_run = []
            for r in runs:
                w = [e["cell1_identity_weight"] for e in r]
                gap = [x[m] - np.mean([x[o] for o in modalities if o != m]) for x in w]
                per_run.append(gap[-1] / len(gap))
            margins.append(np.mean(per_run))
        print(f"| {variant} | " + " | ".join(f"{n}/{len(runs)}" for n in reads) + " | "
              + " | ".join(f"{g:+.2e}" for g in margins) + " |")


if __name__ == "__main__":
    main()
