"""Measures the SSL search against supervised BM-NAS at several label fractions.

Runs `ssnas_tf.workflow.run.Run` for every (method, label fraction, seed) and prints
one JSON line per run (measured test weighted F1, accuracy, seconds, genotype
inputs), then one summary line per (method, fraction) with mean and standard
deviation over the seeds. Nothing here is asserted: these are measurements.

    python experiments/compare_methods.py --fractions 0.05,1.0 --seeds 0,1,2
    python experiments/compare_methods.py --dataset clipart --fractions 0.05,1.0
"""

import argparse
import json
import os
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mfeat")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--methods", default="ssl,supervised")
    parser.add_argument("--fractions", default="0.05,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", default=None,
                        help="parent folder of the run directories (default: a temp dir)")
    parser.add_argument("--config", default="{}",
                        help="JSON of extra RunConfig fields, e.g. '{\"search_epochs\": 5}'")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from ssnas_tf.workflow.config import RunConfig
    from ssnas_tf.workflow.run import Run

    parent = args.output or tempfile.mkdtemp(prefix="ssnas-compare-")
    extra = json.loads(args.config)
    rows = []
    for fraction in [float(f) for f in args.fractions.split(",")]:
        for method in args.methods.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                config = RunConfig(dataset=args.dataset, data_dir=args.data_dir,
                                   method=method, label_fraction=fraction, seed=seed,
                                   **extra)
                directory = os.path.join(parent, f"{args.dataset}-{method}-r{fraction:g}-s{seed}")
                start = time.perf_counter()
                results = Run(directory, config, verbose=0).run_all(overwrite=True)
                row = {"dataset": args.dataset, "method": method, "label_fraction": fraction,
                       "seed": seed, "weighted_f1": results["weighted_f1"],
                       "accuracy": results.get("accuracy"),
                       "wall_s": round(time.perf_counter() - start, 1),
                       "seconds": results["seconds"], "run_dir": directory,
                       "cells_read": _used(results["genotype"])}
                rows.append(row)
                print(json.dumps(row), flush=True)
                keras.backend.clear_session()
    for fraction in sorted({r["label_fraction"] for r in rows}):
        for method in args.methods.split(","):
            f1 = [r["weighted_f1"] for r in rows
                  if r["method"] == method and r["label_fraction"] == fraction]
            print(json.dumps({"summary": True, "dataset": args.dataset, "method": method,
                              "label_fraction": fraction, "seeds": args.seeds,
                              "weighted_f1_mean": round(float(np.mean(f1)), 4),
                              "weighted_f1_std": round(float(np.std(f1)), 4),
                              "runs": len(f1)}), flush=True)


def _used(genotype):
    from ssnas_tf.nas.genotypes import Genotype
    return list(Genotype.from_dict(genotype).used_inputs)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
