"""How much RandomNet's networks learn in one trial's steps, on validation data.

Samples architectures (`tuners.randomnet.sample_architecture`), trains each for
`--steps` steps at Adam `--learning-rate`, with or without `--normalization`,
on 480 samples of a suite dataset's validation view (`benchmarks/suite.py`;
the test split is never read) and prints one JSON line per architecture with
its weighted F1 on the other non-held-out samples:

    python benchmarks/randomnet_steps.py --dataset mfeat --learning-rate 1e-3 --steps 30
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402

import keras  # noqa: E402

from ssnas_tf.data.pipelines import labeled_batches, model_inputs  # noqa: E402
from ssnas_tf.tasks import Task  # noqa: E402
from ssnas_tf.tuners import randomnet  # noqa: E402
from ssnas_tf.tuners import search  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/suite", help="suite data folder")
    parser.add_argument("--dataset", default="mfeat", choices=suite.DATASETS)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=search.MIN_TRIAL_STEPS)
    parser.add_argument("--normalization", action="store_true")
    parser.add_argument("--precise-bn", action="store_true",
                        help="reset batch norm statistics after training "
                             "(randomnet.precise_batch_norm)")
    parser.add_argument("--architectures", default="1878380004,7,11")
    args = parser.parse_args(argv)
    full, _ = suite.load(args.dataset, args.output)
    view = suite.suite_view(full)
    pool = np.setdiff1d(np.arange(view.num_samples), view.splits["test"])
    order = np.random.default_rng(0).permutation(pool)
    train, valid = np.sort(order[:480]), np.sort(order[480:])
    task = Task.for_dataset(view, 0.3)
    shapes, stats, vocab = search.model_inputs_info(view, train)
    for seed in (int(s) for s in args.architectures.split(",")):
        arch = randomnet.sample_architecture(view.kinds, seed,
                                             normalization=args.normalization)
        keras.utils.set_random_seed(0)
        model = randomnet.build_randomnet(arch, shapes, view.num_classes, stats, vocab)
        model.compile(keras.optimizers.Adam(args.learning_rate), loss=task.keras_loss())
        batches = labeled_batches(view, train, 32, 0, shuffle=True, repeat=True)
        model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
        if args.precise_bn:
            randomnet.precise_batch_norm(model, batches)
        f1 = search.score_f1(model, model_inputs(view, valid), view.labels[valid], task)
        print(json.dumps({"dataset": args.dataset, "architecture_seed": seed,
                          "learning_rate": args.learning_rate, "steps": args.steps,
                          "normalization": args.normalization,
                          "precise_bn": args.precise_bn,
                          "val_weighted_f1": round(f1, 4)}), flush=True)


if __name__ == "__main__":
    main()
