"""Peak memory of a short `ssnas run --dataset mmimdb` as the dataset grows.

Generates MM-IMDB files in the published HDF5 layout (DATA.md: int32 Caffe BGR
posters (N, 3, 256, 160), vlen int32 word-id sequences, int32 multi-hot genres,
a Fuel split table 60/10/30) of N rows, then runs one short `ssnas run` on each
in a fresh subprocess (so every N gets its own peak RSS) and prints one JSON
line per N:

    {"n": 2000, "peak_rss_mb": ..., "prepare_s": ..., "seconds": ...}

`prepare_s` is the one-time conversion of the posters into the prepared file
(`ssnas_tf.data.prepared`), `seconds` the whole run after it. The bar of
issue 8: peak RSS grows by less than 30% from N = 2,000 to 25,959 and stays
under 6 GB at 25,959 on 2 CPU cores.

    PYTHONPATH=. python benchmarks/memory_scaling.py --sizes 2000,8000,25959

The 25,959-row file takes about 13 GB of disk (plus 3.2 GB prepared).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Few steps per step: the run's memory, not its result, is measured.
RUN_FLAGS = ["--dataset", "mmimdb", "--epochs", "1", "--backbone-epochs", "1",
             "--pretrain-epochs", "1", "--finetune-epochs", "1", "--batch-size", "64",
             "--finetune-batch-size", "32", "--max-steps-per-epoch", "3",
             "--channels", "16", "--backbone-width", "16", "--num-steps", "1"]


def write_mmimdb(path, n, chunk=512, seed=0):
    """An MM-IMDB HDF5 file of `n` random rows in the published layout."""
    import h5py

    from ssnas_tf.data.mmimdb import CAFFE_MEAN_BGR, GENRES
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", (n, 3, 256, 160), dtype="int32")
        mean = np.asarray(CAFFE_MEAN_BGR, np.int32)[None, :, None, None]
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            pixels = rng.integers(0, 256, (stop - start, 3, 256, 160), dtype=np.int32)
            images[start:stop] = pixels - mean
        sequences = f.create_dataset("sequences", (n,), dtype=h5py.vlen_dtype(np.int32))
        for i in range(n):
            sequences[i] = rng.integers(0, 500, rng.integers(5, 120), dtype=np.int32)
        genres = (rng.random((n, len(GENRES))) < 0.25).astype(np.int32)
        genres[np.arange(n), np.arange(n) % len(GENRES)] = 1  # every genre occurs
        f.create_dataset("genres", data=genres).attrs["target_names"] = json.dumps(GENRES)
        f.create_dataset("imdb_ids", data=np.array([f"{i:07d}" for i in range(n)], "S7"))
        f.attrs["split"] = _split_table(n)


def _split_table(n):
    """Fuel's split table: train 60%, dev 10%, test 30% of the rows."""
    a, b = int(0.6 * n), int(0.7 * n)
    dtype = np.dtype([("split", "S5"), ("source", "S12"), ("start", np.int64),
                      ("stop", np.int64), ("available", np.bool_), ("comment", "S1")])
    rows = [(s, src, lo, hi, True, b".") for s, (lo, hi) in
            {b"train": (0, a), b"dev": (a, b), b"test": (b, n)}.items()
            for src in (b"genres", b"images", b"sequences")]
    return np.array(rows, dtype=dtype)


def child(data_dir, output):
    """One measured run (in its own process): prepare, then `ssnas run`."""
    from ssnas_tf.cli import main
    from ssnas_tf.data import load_dataset
    start = time.perf_counter()
    load_dataset("mmimdb", data_dir=data_dir)  # prepares the posters once
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    code = main(["run", "--data-dir", data_dir, "--output", output, *RUN_FLAGS])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rc": code, "peak_rss_mb": round(peak), "prepare_s": round(prepare_s, 1),
                      "seconds": round(seconds, 1)}), flush=True)


def measure(n, workdir):
    """Generates the N-row file and measures one run; returns the JSON record."""
    data_dir = os.path.join(workdir, f"mmimdb-{n}")
    path = os.path.join(data_dir, "multimodal_imdb.hdf5")
    if not os.path.exists(path):
        os.makedirs(data_dir, exist_ok=True)
        start = time.perf_counter()
        write_mmimdb(path + ".tmp", n)
        os.replace(path + ".tmp", path)
        print(f"generated {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    output = os.path.join(workdir, f"run-{n}")
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(os.path.join(data_dir, ".ssnas_prepared"), ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", data_dir, output],
        env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"rc"')]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"the run on N = {n} failed")
    record = json.loads(lines[-1])
    if record.pop("rc"):
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"ssnas run on N = {n} failed")
    return {"n": n, **record}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,8000,25959")
    parser.add_argument("--workdir", default="/tmp/ssnas_memory_scaling")
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "OUTPUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    os.makedirs(args.workdir, exist_ok=True)
    for n in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(measure(n, args.workdir)), flush=True)


if __name__ == "__main__":
    main()
