"""The serving latency cost of the input checks (`ssnas_tf.serving.checks`).

Exports one mfeat classifier twice, with and without the checks
(`export_classifier(..., check_inputs=False)`): the six small backbones
(`pix` uint8 16x15x1 and five float32 vectors, so six inputs to check) and a
dense layer over their final features. Loads both SavedModels with
`tf.saved_model.load` and times their `serving_default` signature on real
mfeat rows, batch 1 and 64, the two exports alternating call by call so that
machine load hits both alike. Prints one JSON line per (batch, checks) with the
median and quartiles in milliseconds, then one line per batch with the
difference of the medians.

    python benchmarks/serving_checks.py                 # 300 calls per case
    python benchmarks/serving_checks.py --calls 1000 --threads 1
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_classifier(data):
    """mfeat backbones (all six modalities) and a dense layer: logits (N, 10)."""
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    from ssnas_tf.backbones import build_backbones  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    backbones = build_backbones(data, np.arange(200))
    inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name)
              for name, t in backbones.input.items()}
    features = backbones(inputs, training=False)
    flat = [keras.layers.Flatten()(features[name]) for name in features
            if name.endswith("_2")]
    logits = keras.layers.Dense(data.num_classes)(keras.layers.Concatenate()(flat))
    return keras.Model(inputs, logits)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per case")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra/inter-op threads (default: TF's)")
    args = parser.parse_args(argv)

    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from ssnas_tf.data import load_dataset  # pylint: disable=import-outside-toplevel
    from ssnas_tf.serving.export import export_classifier  # pylint: disable=import-outside-toplevel

    data = load_dataset("mfeat")
    model = build_classifier(data)
    specs = {name: (data.inputs[name].shape[1:], data.inputs[name].dtype.name)
             for name in model.input}
    serve = {}
    with tempfile.TemporaryDirectory() as root:
        for checked in (True, False):
            path = export_classifier(model, specs, data.label_names, root,
                                     f"mfeat_{'checked' if checked else 'plain'}",
                                     check_inputs=checked)
            serve[checked] = tf.saved_model.load(path).signatures["serving_default"]
        summary = {}
        for batch in (1, 64):
            rows = np.arange(batch) + 100
            inputs = {name: tf.constant(data.inputs[name][rows]) for name in specs}
            times = {True: [], False: []}
            for i in range(args.warmup + args.calls):
                for checked in ((True, False) if i % 2 else (False, True)):
                    start = time.perf_counter()
                    serve[checked](**inputs)["probabilities"].numpy()
                    if i >= args.warmup:
                        times[checked].append((time.perf_counter() - start) * 1e3)
            for checked in (True, False):
                q1, median, q3 = statistics.quantiles(times[checked], n=4)
                summary[(batch, checked)] = median
                print(json.dumps({"batch": batch, "checks": checked, "calls": args.calls,
                                  "median_ms": round(median, 4), "q1_ms": round(q1, 4),
                                  "q3_ms": round(q3, 4)}))
        for batch in (1, 64):
            cost = summary[(batch, True)] - summary[(batch, False)]
            print(json.dumps({"batch": batch, "inputs": len(specs),
                              "checks_cost_ms": round(cost, 4),
                              "checks_cost_percent": round(
                                  100 * cost / summary[(batch, False)], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
