"""Times the default run (`ssnas run`, README's first command) and each step.

    python benchmarks/whole_run.py                 # median of 3 fresh processes
    python benchmarks/whole_run.py --repeats 5 -- --seed 1   # extra `ssnas run` flags
    python benchmarks/whole_run.py --profile       # where one run's time goes

Each repeat is a fresh `python -m ssnas_tf.cli run --output TMP` process (the
installed package, as a user runs it) in its own temporary folder. Prints one
JSON line per repeat (wall_s, cpu_s: user + system of the child, peak_rss_mb,
weighted_f1, seconds per step from results.json) and a last line
`{"summary": ...}` with the medians. On a machine shared with other work,
cpu_s is the steadier figure: wall time counts the waits for a core.

`--profile` runs once in this process and splits each step's wall time by
what the time was spent on, innermost first: tracing (building a tf.function's
graph), iterators (creating a tf.data iterator: graph optimisation of the
input pipeline), graph (running traced functions), eager (single ops outside
graphs), writes (checkpoints and saved models), and other (Python: Keras
fit/evaluate set-up, callbacks, genotype derivation, data reads). Prints one
JSON line per step and a total line.
"""

import argparse
import collections
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

STEPS = ("backbones", "search", "pretrain", "finetune", "evaluate", "export")


def one_process(extra):
    """One fresh `ssnas run`; its figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ssnas_tf.cli", "run", "--output", out,
                               *extra], capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"ssnas run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(os.path.join(out, "results.json")) as f:
            results = json.load(f)
    return {"wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime
                           - before.ru_utime - before.ru_stime, 2),
            # ru_maxrss of children is the largest child so far (KiB on Linux).
            "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
            "weighted_f1": round(results["weighted_f1"], 4),
            "seconds": results["seconds"]}


class _CategoryClock:
    """Charges wall time to the innermost wrapped call's category.

    A category entered inside writes, tracing or iterators stays charged to
    the outer one (an iterator's set-up runs eager ops; that is its cost)."""

    STICKY = ("writes", "tracing", "iterators")

    def __init__(self):
        self.totals = collections.Counter()
        self.calls = collections.Counter()  # calls per category
        self.traced = collections.Counter()  # traces per function name
        self.stack = ["other"]
        self.since = time.perf_counter()

    def _switch(self, category):
        now = time.perf_counter()
        self.totals[self.stack[-1]] += now - self.since
        self.since = now
        self.stack.append(category)

    def _leave(self):
        now = time.perf_counter()
        self.totals[self.stack.pop()] += now - self.since
        self.since = now

    def wrap(self, owner, name, category):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            self.calls[category] += 1
            if category == "tracing":
                self.traced[str(args[0] if args else kwargs.get("name"))] += 1
            outer = self.stack[-1]
            self._switch(outer if outer in self.STICKY else category)
            try:
                return original(*args, **kwargs)
            finally:
                self._leave()
        setattr(owner, name, timed)

    def take(self):
        """The totals since the last take (seconds per category)."""
        self._switch(self.stack[-1])
        self._leave()
        taken = {k: round(v, 2) for k, v in self.totals.items() if v >= 0.005}
        taken["calls"] = dict(self.calls)
        taken["traced"] = dict(self.traced)
        for counter in (self.totals, self.calls, self.traced):
            counter.clear()
        return taken


def profile(extra):
    """One in-process default run, each step's time split by category."""
    from tensorflow.python import pywrap_tfe
    from tensorflow.python.data.ops import iterator_ops
    from tensorflow.python.eager import execute
    from tensorflow.python.framework import func_graph

    from ssnas_tf import atomic
    from ssnas_tf.cli import _config_from_args, build_parser
    from ssnas_tf.quiet import quiet_tensorflow
    from ssnas_tf.workflow import checkpoint, steps as steps_lib
    from ssnas_tf.workflow.baselines import open_run
    from ssnas_tf.workflow.run import _METHODS

    clock = _CategoryClock()
    clock.wrap(func_graph, "func_graph_from_py_func", "tracing")
    clock.wrap(iterator_ops.OwnedIterator, "_create_iterator", "iterators")
    clock.wrap(execute, "execute", "graph")  # context.call_function runs graphs by it
    clock.wrap(pywrap_tfe, "TFE_Py_FastPathExecute", "eager")
    for module in (atomic, steps_lib, checkpoint):
        for name in ("atomic_save_model", "save_checkpoint"):
            if hasattr(module, name):
                clock.wrap(module, name, "writes")
    with tempfile.TemporaryDirectory() as tmp:
        quiet_tensorflow()
        args = build_parser().parse_args(["run", "--output", os.path.join(tmp, "run"),
                                          *extra])
        run = open_run(args.output, _config_from_args(args))
        run.strategy
        run.configure_tensorflow()
        run.start()
        total = collections.Counter()
        for step in STEPS:
            clock.take()
            start, cpu = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(sys.stderr):
                getattr(run, _METHODS.get(step, step))()
            line = {"step": step, "wall_s": round(time.perf_counter() - start, 2),
                    "cpu_s": round(time.process_time() - cpu, 2), **clock.take()}
            total.update({k: v for k, v in line.items() if isinstance(v, float)})
            print(json.dumps(line), flush=True)
        print(json.dumps({"step": "total", **{k: round(v, 2) for k, v in total.items()}}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("extra", nargs="*", help="flags for `ssnas run`, after --")
    args = parser.parse_args()
    if args.profile:
        return profile(args.extra)
    runs = []
    for repeat in range(args.repeats):
        runs.append(one_process(args.extra))
        print(json.dumps({"repeat": repeat, **runs[-1]}), flush=True)
    median = lambda values: round(statistics.median(values), 2)  # noqa: E731
    print(json.dumps({"summary": {
        "repeats": len(runs), "cores": os.cpu_count(), "extra": args.extra,
        **{k: median([r[k] for r in runs]) for k in ("wall_s", "cpu_s", "peak_rss_mb",
                                                    "weighted_f1")},
        "seconds": {s: median([r["seconds"].get(s, 0.0) for r in runs]) for s in STEPS}}}))


if __name__ == "__main__":
    main()
