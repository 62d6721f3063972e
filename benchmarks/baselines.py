"""Weighted F1 and wall time of the methods on one dataset; one JSON line per run.

    python benchmarks/baselines.py --seeds 0 1 2 --label-fraction 1.0 \\
        --methods ssl supervised fixed:late fixed:aoa surrogate randomnet --output /tmp/bench
    python benchmarks/baselines.py --dataset clipart ...

Each seed trains its backbones once and every backbone-based method of that
seed starts from a copy of them (they depend on the seed only), so the
`seconds` of a run count its search, fine-tuning and evaluation, not the
backbones; the backbones' own time is printed as method "backbones".
RandomNet has no backbones. Settings are small on purpose (see --help) and
printed with every line.
"""

import argparse
import json
import os
import shutil
import time

from ssnas_tf.workflow.baselines import open_run
from ssnas_tf.workflow.config import RunConfig


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mfeat")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--label-fraction", type=float, default=1.0)
    p.add_argument("--methods", nargs="+", default=[
        "fixed:late", "fixed:sum", "fixed:concat_fc", "fixed:mha", "fixed:aoa",
        "fixed:random", "surrogate", "randomnet"])
    p.add_argument("--backbone-epochs", type=int, default=5)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--search-epochs", type=int, default=3,
                   help="ssl/supervised: search epochs; surrogate: epochs per trial")
    p.add_argument("--pretrain-epochs", type=int, default=10,
                   help="ssl: contrastive pretraining epochs")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--trial-fraction", type=float, default=1.0,
                   help="randomnet: share of the training samples per trial")
    p.add_argument("--output", default="runs/bench-baselines")
    p.add_argument("--reuse-backbones", action="store_true",
                   help="keep OUTPUT/backbones-s<seed>/backbones.keras when it exists "
                   "(a rerun with the same settings, e.g. for more methods)")
    return p.parse_args(argv)


def _config(args, method, seed):
    name, _, fusion = method.partition(":")
    return RunConfig(dataset=args.dataset, data_dir=args.data_dir, method=name,
                     fusion=fusion or "late", seed=seed,
                     label_fraction=args.label_fraction,
                     backbone_epochs=args.backbone_epochs,
                     finetune_epochs=args.finetune_epochs,
                     search_epochs=args.search_epochs,
                     pretrain_epochs=args.pretrain_epochs, trials=args.trials,
                     trial_fraction=args.trial_fraction)


def run_one(args, method, seed, backbones):
    """Runs one method; returns its JSON line (dict)."""
    config = _config(args, method, seed)
    run = open_run(os.path.join(args.output, f"{method.replace(':', '-')}-s{seed}"),
                   config, verbose=0)
    start = time.perf_counter()
    run.start(overwrite=True)
    if config.method == "randomnet":
        run.train_backbones()
    else:
        shutil.copyfile(backbones, run.path("backbones.keras"))
    run.search()
    run.pretrain()
    run.finetune()
    results = run.evaluate()
    return {"dataset": args.dataset, "method": method, "seed": seed,
            "label_fraction": args.label_fraction,
            "weighted_f1": results["weighted_f1"], "accuracy": results.get("accuracy"),
            "seconds": round(time.perf_counter() - start, 1),
            "settings": {k: getattr(config, k) for k in (
                "backbone_epochs", "finetune_epochs", "search_epochs", "pretrain_epochs",
                "trials", "trial_fraction")}}


def main(argv=None):
    args = parse_args(argv)
    for seed in args.seeds:
        config = _config(args, "fixed:late", seed)
        base = open_run(os.path.join(args.output, f"backbones-s{seed}"), config, verbose=0)
        start = time.perf_counter()
        if not (args.reuse_backbones and os.path.exists(base.path("backbones.keras"))):
            base.start(overwrite=True)
            base.train_backbones()
        print(json.dumps({"method": "backbones", "seed": seed,
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
        for method in args.methods:
            print(json.dumps(run_one(args, method, seed, base.path("backbones.keras"))),
                  flush=True)


if __name__ == "__main__":
    main()
