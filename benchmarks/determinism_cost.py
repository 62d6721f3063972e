"""The time cost of deterministic runs: `ssnas run` with and without it.

Runs the default `ssnas run` (or the one given by extra flags) in fresh
processes, `--deterministic` and `--no-deterministic` alternately, `--repeats`
times each, and prints one JSON line: the seconds of every run of each mode
(wall time of the process, and the per-step seconds summed from
results.json), their medians, the ratio of the medians, and whether the
deterministic repeats gave identical weighted F1s.

    python benchmarks/determinism_cost.py                     # default run
    python benchmarks/determinism_cost.py --repeats 2 -- \
        --method supervised --label-fraction 0.05
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/determinism_cost.py   # oneDNN off
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(flags, deterministic, workdir, index):
    """One `ssnas run` process; returns (wall seconds, results.json)."""
    output = os.path.join(workdir, f"{'det' if deterministic else 'nondet'}-{index}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    mode = "--deterministic" if deterministic else "--no-deterministic"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ssnas_tf.cli", "run", "--output", output, mode, *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"ssnas run {mode} failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(output, "results.json")) as f:
        return wall, json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each mode. Defaults to 1")
    parser.add_argument("flags", nargs="*", help="extra `ssnas run` flags (after --)")
    args = parser.parse_args(argv)
    seconds = {True: [], False: []}
    steps = {True: [], False: []}
    f1 = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="ssnas-determinism-") as workdir:
        for index in range(args.repeats):
            for deterministic in (True, False):  # alternate: load drifts
                wall, results = run_once(args.flags, deterministic, workdir, index)
                seconds[deterministic].append(round(wall, 1))
                steps[deterministic].append(round(sum(results["seconds"].values()), 1))
                f1[deterministic].append(results["weighted_f1"])
    det, nondet = (statistics.median(steps[m]) for m in (True, False))
    print(json.dumps({
        "benchmark": "determinism_cost", "flags": args.flags, "repeats": args.repeats,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "deterministic_wall_s": seconds[True], "nondeterministic_wall_s": seconds[False],
        "deterministic_steps_s": steps[True], "nondeterministic_steps_s": steps[False],
        "median_steps_ratio": round(det / nondet, 3),
        "deterministic_weighted_f1": f1[True], "nondeterministic_weighted_f1": f1[False],
        "deterministic_reruns_identical": len(set(f1[True])) == 1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
