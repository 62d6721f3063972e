"""The fusion network's norms against Keras's, in one process.

Builds the search step of `search_step.py` twice: once as shipped, once with
every `BatchNorm`/`LayerNorm` of the network calling Keras's own layer code
(autodiff gradients) instead of `ssnas_tf.nas.normalization`. Timing the two
alternately in one process keeps machine noise (±30% between separate runs
here) out of the comparison.

    python benchmarks/norms.py --batch 32
    python benchmarks/norms.py --batch 128 --threads 2

Prints one JSON line per version: norms (ssnas_tf or keras), batch,
cpu_ms_median and wall_ms_median over the rounds (each round times `--steps`
steps of each version, the order alternating), and how many layers were
switched to Keras's code.
"""

import argparse
import json
import os
import sys
import time
import types


def keras_norm_calls(model):
    """Switches the model's own norms back to Keras's call; returns how many."""
    import keras

    from ssnas_tf.nas.layers import BatchNorm, LayerNorm, UnbiasedVarianceBatchNorm

    switched = 0
    for layer in model._flatten_layers():
        if isinstance(layer, UnbiasedVarianceBatchNorm):
            continue  # its unbiased update needs its own call (not in the benchmark's network)
        for ours, theirs in ((BatchNorm, keras.layers.BatchNormalization),
                             (LayerNorm, keras.layers.LayerNormalization)):
            if isinstance(layer, ours):
                layer.call = types.MethodType(theirs.call, layer)
                switched += 1
    return switched


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mmimdb")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per op, as `ssnas run --threads` (default: as "
                             "`ssnas run`, 1 on at most 2 cores, else one per core)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    from search_step import build_step

    ours, _, batches = build_step(args.preset, args.batch, threads=args.threads)
    theirs, model, _ = build_step(args.preset, args.batch, threads=args.threads)
    switched = keras_norm_calls(model)
    steps = {"ssnas_tf": ours, "keras": theirs}
    for step in steps.values():
        for _ in range(3):  # trace and warm up
            step(batches)
    times = {name: [] for name in steps}
    for round_ in range(args.rounds):
        order = list(steps) if round_ % 2 == 0 else list(reversed(steps))
        for name in order:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.steps):
                float(steps[name](batches)["loss"])  # wait for the step to finish
            times[name].append(((time.process_time() - cpu) / args.steps,
                                (time.perf_counter() - wall) / args.steps))
    for name, rows in times.items():
        cpu, wall = np.median(np.array(rows), axis=0)
        print(json.dumps({"norms": name, "preset": args.preset, "batch": args.batch,
                          "threads": tf.config.threading.get_intra_op_parallelism_threads()
                          or None, "rounds": args.rounds,
                          "cpu_ms_median": round(1000 * cpu, 1),
                          "wall_ms_median": round(1000 * wall, 1),
                          "layers_switched": switched}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
