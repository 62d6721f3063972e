"""Times the alternating search step of the search network.

One step = a weight update on a train batch, then an architecture update on a
valid batch (first order), Adam for both as in the BM-NAS reference, multi-label
BCE, on random backbone features. Each batch size runs in a fresh subprocess so
that `peak_rss_mb` is that batch size's own peak.

    python benchmarks/search_step.py --preset mmimdb --batch-sizes 8,32,128
    python benchmarks/search_step.py --batch-sizes 32,128 --precision mixed_bfloat16
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/search_step.py ...   # oneDNN off
    python benchmarks/search_step.py --threads 2   # TensorFlow's default on 2 cores
    python benchmarks/search_step.py --threads 1 --inter-threads 1   # ops one at a time

Prints one JSON line per batch size: impl, precision, batch, step_ms_median,
samples_per_s (train-batch samples per second), cpu_ms_median (process CPU
time per step, all threads) and samples_per_cpu_s, peak_rss_mb,
trainable_params, cores, intra_op_threads and inter_op_threads (null:
TensorFlow's default, one per core). TensorFlow starts as in the `ssnas` command line
(`ssnas_tf.quiet`), with its threads per op unless `--threads` is given (1 on at
most two cores, `reproducibility.default_intra_op_threads`). On a machine shared
with other work, the CPU-time figures are the steadier ones: wall time counts the
waits for a core.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

PRESETS = {
    # `docs/fidelity.md` (search space), MM-IMDB: 4 VGG19 maps + 2 Maxout MLP taps, 23 genres.
    "mmimdb": dict(
        features={"Image_1": (32, 20, 512), "Image_2": (32, 20, 512),
                  "Image_3": (16, 10, 512), "Image_4": (8, 5, 512),
                  "Text_1": (64,), "Text_2": (128,)},
        num_classes=23, channels=192, length=16, num_cells=2, num_steps=1,
        multiplier=2, node_multiplier=1, dropout=0.1, reference_primitives=True),
}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_step(preset, batch, jit_compile=False, precision="float32", threads=None,
               inter_threads=None):
    """(step, model, batch pair): the compiled alternating search step on random features."""
    from ssnas_tf.quiet import quiet_tensorflow
    quiet_tensorflow()  # TensorFlow starts as in the `ssnas` command line
    import keras
    import tensorflow as tf

    from ssnas_tf.ssl.heads import classifier_head
    from ssnas_tf.nas.operations import PAPER_PRIMITIVES, REFERENCE_PRIMITIVES
    from ssnas_tf.nas.architect import SearchModel, reference_optimizers
    from ssnas_tf.nas.model_search import SearchNetwork
    from ssnas_tf.workflow.reproducibility import default_intra_op_threads

    cfg = PRESETS[preset]
    threads = threads or default_intra_op_threads()  # as the CLI chooses
    if threads:  # threads per op, before the first op (the CLI's --threads)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    if inter_threads:  # how many ops run at once
        tf.config.threading.set_inter_op_parallelism_threads(inter_threads)
    tf.random.set_seed(0)
    keras.mixed_precision.set_global_policy(precision)  # a fresh process each
    network = SearchNetwork(
        list(cfg["features"]), num_cells=cfg["num_cells"], num_steps=cfg["num_steps"],
        multiplier=cfg["multiplier"], node_multiplier=cfg["node_multiplier"],
        channels=cfg["channels"], length=cfg["length"], dropout=cfg["dropout"],
        primitives=REFERENCE_PRIMITIVES if cfg["reference_primitives"] else PAPER_PRIMITIVES)
    model = SearchModel(network, classifier_head(cfg["num_classes"]),
                        objective="supervised", multilabel=True)

    def batch_of(n):
        x = {k: tf.random.uniform((n, *s)) for k, s in cfg["features"].items()}
        y = tf.cast(tf.random.uniform((n, cfg["num_classes"])) < 0.2, tf.float32)
        return x, y

    batches = (batch_of(batch), batch_of(batch))
    model(batches[0][0])
    model.compile(*reference_optimizers(steps_per_epoch=1000),
                  weight_decay=1e-4, arch_weight_decay=1e-3)
    model.build_optimizers()
    return tf.function(model.train_step, jit_compile=jit_compile), model, batches


def run_one(preset, batch, steps, warmup, jit_compile, precision="float32", threads=None,
            inter_threads=None):
    from ssnas_tf.quiet import quiet_tensorflow
    quiet_tensorflow()  # before any TensorFlow import, or its deferrals come too late
    import numpy as np
    import tensorflow as tf

    step, model, (train, valid) = build_step(preset, batch, jit_compile, precision, threads,
                                             inter_threads)
    for _ in range(warmup):
        step((train, valid))
    times, cpu_times = [], []
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        logs = step((train, valid))
        float(logs["loss"])  # wait for the step to finish
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    median, cpu_median = float(np.median(times)), float(np.median(cpu_times))
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"impl": "ssnas_tf" + ("+xla" if jit_compile else ""), "preset": preset,
            "precision": precision, "batch": batch, "step_ms_median": round(1000 * median, 2),
            "samples_per_s": round(batch / median, 1),
            "cpu_ms_median": round(1000 * cpu_median, 2),
            "samples_per_cpu_s": round(batch / cpu_median, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "trainable_params": params,
            "steps": steps, "cores": os.cpu_count(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or None,
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or None,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mmimdb")
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--jit-compile", action="store_true",
                        help="XLA (slower on CPU; for GPUs)")
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per op, as `ssnas run --threads` (default: as "
                             "`ssnas run`, 1 on at most 2 cores, else one per core)")
    parser.add_argument("--inter-threads", type=int, default=None,
                        help="ops run at once (default: TensorFlow's, one per core)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.preset, args.one, args.steps, args.warmup,
                                 args.jit_compile, args.precision, args.threads,
                                 args.inter_threads)), flush=True)
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        cmd = [sys.executable, __file__, "--preset", args.preset, "--one", str(batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--precision", args.precision]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.inter_threads:
            cmd += ["--inter-threads", str(args.inter_threads)]
        if args.jit_compile:
            cmd.append("--jit-compile")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"batch {batch} failed:\n{out.stderr[-3000:]}")
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
