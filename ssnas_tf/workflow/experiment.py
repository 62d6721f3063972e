"""The paper's experiments: methods x label fractions x trials, resumable.

    ssnas experiment --methods ssl,supervised --fractions 0.01,0.1,1.0 \\
                     --trials 10 --output DIR [--jobs N] [any `ssnas run` setting]

The experiment directory:

    experiment.json                     the plan: methods, fractions, trials,
                                        protocol and the base RunConfig
    <method>/r<fraction>/t<trial>/      one run directory per trial (`Run`)
    .locks/                             a lock file per trial being run
    .tuner/                             keras-tuner's oracle state (several machines)
    results.csv, summary.csv, choices.csv, label_fraction.png/.svg,
    table3.md (--protocol exp2)         written by `ssnas_tf.workflow.report`

Paired design: trial t of every method gets the same split seed, hence the
same test split and the same labeled set, so the methods can be compared trial
by trial. Trial t's seeds are drawn from child t of
`numpy.random.SeedSequence(base_seed).spawn(trials)`: its first grandchild
seeds the splits, its second the training (the same for every method). Child t
does not depend on the number of trials, so raising --trials keeps the trials
already run.

Protocols:
* `exp1` (Experiment 1 of the paper): at label fraction r, `ssl` searches and
  pretrains on the unlabeled 1 - r and trains the classifier on the labeled r;
  `supervised` (BM-NAS) searches and trains on the labeled r only.
* `exp2` (Experiment 2): r = 1 only. `ssl` searches on all non-test samples
  with their labels unused, then trains the derived network on all labels with
  no contrastive pretraining (`contrastive_pretraining=False`); `supervised` is
  BM-NAS on all labels.

Rerunning the command skips finished trials (results.json holds a test score
and config.json matches the plan) and resumes unfinished ones like `ssnas run`
does: finished steps are kept and the interrupted step continues from its last
finished epoch (`Run.run_all`). Trial t of every method and fraction shares
its backbones, trained once (`ssnas_tf.workflow.shared_backbones`). A trial
whose config.json differs from the plan is an error naming the fields, unless
--overwrite, which reruns every trial.

Parallelism: `--jobs N` runs N trials at a time, each in its own process
(`python -m ssnas_tf.workflow.experiment TRIAL_DIR`, logging to
TRIAL_DIR/trial.log). Several machines sharing DIR use keras-tuner's
distributed oracle: a GridSearch oracle over the trial keys
(`ssl/r0.1/t3`, ...) served by the process whose KERASTUNER_TUNER_ID is
`chief`, every other process (KERASTUNER_TUNER_ID=worker0, ...) asks it for
the next trial. All set KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT to the
chief's address. The chief writes the reports once every trial has ended.
Without an oracle, the per-trial lock files (created with O_EXCL) still keep
two processes from running one trial at once.
"""

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from typing import Tuple

import numpy as np

from ssnas_tf.atomic import atomic_write_text
from ssnas_tf.workflow.config import METHODS, RunConfig
from ssnas_tf.errors import ConfigError, ExperimentError

PROTOCOLS = ("exp1", "exp2")
PAPER_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.3, 1.0)


def trial_seeds(base_seed, trials):
    """(split_seed, train_seed) per trial, from SeedSequence(base_seed).spawn(trials).

    Args:
        base_seed: the experiment's seed (`--seed`).
        trials: the number of trials.

    Returns:
        list of (split_seed, train_seed) pairs of ints in [0, 2**31).
    """
    seeds = []
    for child in np.random.SeedSequence(base_seed).spawn(trials):
        split, train = (int(s.generate_state(1)[0] >> 1) for s in child.spawn(2))
        seeds.append((split, train))
    return seeds


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One cell of the plan: a method at a label fraction, trial number t."""

    method: str
    fraction: float  # K labeled samples per class when `per_class`
    trial: int
    per_class: bool = False

    @property
    def budget(self):
        """The label budget as a directory name: r<fraction> or k<K>."""
        return f"{'k' if self.per_class else 'r'}{self.fraction:g}"

    @property
    def key(self):
        return f"{self.method}/{self.budget}/t{self.trial}"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The plan of an experiment.

    Args:
        base: the RunConfig every trial starts from; its `seed` is the base
            seed of the seed tree, its method and label fraction are replaced.
        methods: e.g. ("ssl", "supervised").
        fractions: label fractions r, each in (0, 1]; exp2 needs (1.0,).
        trials: trials per (method, fraction).
        protocol: "exp1" or "exp2". Defaults to "exp1".
        per_class: `fractions` are numbers K of labeled samples per class
            (`--labels-per-class`), not fractions. Defaults to False.
    """

    base: RunConfig
    methods: Tuple[str, ...]
    fractions: Tuple[float, ...]
    trials: int
    protocol: str = "exp1"
    per_class: bool = False

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.per_class:
            self._check_per_class()
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol must be one of {PROTOCOLS}, got '{self.protocol}'")
        bad = [m for m in self.methods if m not in METHODS]
        if not self.methods or bad or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"--methods: need distinct names from {METHODS}, "
                             f"got {list(self.methods)}")
        bad = [f for f in self.fractions if not 0 < f <= 1 and not self.per_class]
        if not self.fractions or bad or len(set(self.fractions)) != len(self.fractions):
            raise ValueError(f"--fractions: need distinct values in (0, 1], "
                             f"got {list(self.fractions)}")
        if self.protocol == "exp2" and self.fractions != (1.0,):
            raise ConfigError(f"--protocol exp2 uses every label (--fractions 1.0), "
                             f"got {list(self.fractions)}")
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")

    def _check_per_class(self):
        bad = [k for k in self.fractions if not (float(k).is_integer() and k >= 1)]
        if bad or not self.fractions or len(set(self.fractions)) != len(self.fractions):
            raise ValueError(f"--labels-per-class: need distinct whole numbers >= 1, "
                             f"got {list(self.fractions)}")
        if self.protocol == "exp2":
            raise ConfigError("--protocol exp2 uses every label: --labels-per-class "
                             "does not apply")

    def plan(self):
        """Every TrialSpec, trial-major so that early trials pair up first."""
        return [TrialSpec(m, f, t, self.per_class) for t in range(self.trials)
                for f in self.fractions for m in self.methods]

    def config_for(self, spec):
        """The RunConfig of one trial (see the module docstring for the seeds)."""
        split_seed, train_seed = trial_seeds(self.base.seed, self.trials)[spec.trial]
        budget = (dict(labels_per_class=int(spec.fraction)) if spec.per_class
                  else dict(label_fraction=spec.fraction, labels_per_class=None))
        changes = dict(method=spec.method, seed=train_seed, split_seed=split_seed,
                       **budget)
        if self.protocol == "exp2" and spec.method == "ssl":
            changes["contrastive_pretraining"] = False
        return self.base.replace(**changes)

    def to_dict(self):
        budget = "labels_per_class" if self.per_class else "fractions"
        return {"protocol": self.protocol, "methods": list(self.methods),
                budget: list(self.fractions), "trials": self.trials,
                "base_config": json.loads(self.base.to_json())}


def trial_dir(root, spec):
    """DIR/<method>/r<fraction>/t<trial> (k<K> with labels per class)."""
    return os.path.join(root, spec.method, spec.budget, f"t{spec.trial}")


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _differing_keys(a, b):
    """The keys, sorted, whose values differ between two JSON objects."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def trial_status(directory, config):
    """"done", "unfinished" or "new".

    Raises:
        ExperimentError: the directory's config.json differs from `config`;
            the message names the fields.
    """
    saved = _read_json(os.path.join(directory, "config.json"))
    if saved is None:
        return "new"
    differ = _differing_keys(saved, json.loads(config.to_json()))
    if differ:
        raise ExperimentError(
            f"{directory}/config.json differs from the experiment's plan in "
            f"{differ}; use another --output, or --overwrite to rerun every trial")
    results = _read_json(os.path.join(directory, "results.json")) or {}
    return "done" if "weighted_f1" in results else "unfinished"


def run_trial(directory, config=None, verbose=0):
    """Runs one trial in this process; returns its results.json content.

    The backbones are shared with the experiment's other trials of the same
    trial number (`ssnas_tf.workflow.shared_backbones`): copied in when they
    were trained already, put into the cache after training otherwise.

    Args:
        directory: the trial's run directory, DIR/<method>/r<r>/t<t>.
        config: its RunConfig; None reads directory/config.json.
        verbose: Keras progress output. Defaults to 0.
    """
    import keras

    from ssnas_tf.workflow.baselines import open_run
    from ssnas_tf.workflow import shared_backbones
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(directory))))
    run = open_run(directory, config, verbose=verbose)
    with run.lock():
        # splits.json is written by Run.start, before config.json: without it
        # the trial never started (the experiment wrote config.json for the
        # child process), so it starts afresh; with it, it resumes like
        # `ssnas run`.
        run.start(overwrite=not os.path.exists(os.path.join(directory, "splits.json")))
        shared_backbones.reuse_backbones(root, run)
        results = run.run_all(export=False)
        shared_backbones.share_backbones(root, run)
    keras.backend.clear_session()
    return results


def _run_in_subprocess(directory, config):
    """Runs one trial in its own Python process, logging to trial.log."""
    del config  # the child reads directory/config.json, written by the parent
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(os.path.join(directory, "trial.log"), "a") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "ssnas_tf.workflow.experiment", directory],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise ExperimentError(f"trial {directory} failed (exit {proc.returncode}); "
                              f"see {directory}/trial.log")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def trial_lock(root, spec):
    """Holds DIR/.locks/<key>.lock; yields None when another live process has it.

    A lock left by a dead process of this host is taken over. One from another
    host cannot be checked: delete it by hand if that host's process died.
    """
    path = os.path.join(root, ".locks", spec.key.replace("/", "_") + ".lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = _read_json(path) or {}
            if holder.get("host") == host and not _pid_alive(holder.get("pid", -1)):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            yield None
            return
    else:
        yield None
        return
    with os.fdopen(fd, "w") as f:
        json.dump({"host": host, "pid": os.getpid(), "since": time.time()}, f)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


_OUTPUT_LOCK = threading.Lock()


def _say(line):
    """Prints one whole line: --jobs runs trials from several threads, and
    print's separate write of the newline lets their lines run together."""
    with _OUTPUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _execute(root, experiment, spec, runner, overwrite):
    """Runs one trial unless it is done or locked; returns its status word."""
    config = experiment.config_for(spec)
    directory = trial_dir(root, spec)
    status = "new" if overwrite else trial_status(directory, config)
    if status == "done":
        return "skipped"
    with trial_lock(root, spec) as lock:
        if lock is None:
            return "locked"
        os.makedirs(directory, exist_ok=True)
        atomic_write_text(os.path.join(directory, "config.json"), config.to_json())
        _say(f"[ssnas experiment] {spec.key}: {status} -> running")
        runner(directory, config)
    return "ran"


def _run_local(root, experiment, specs, runner, jobs, overwrite):
    """Runs `specs` here, `jobs` at a time; returns {key: status}."""
    done, failed = {}, {}
    if jobs <= 1:
        for spec in specs:
            done[spec.key] = _execute(root, experiment, spec, runner, overwrite)
        return done
    with futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(_execute, root, experiment, s, runner, overwrite): s
                   for s in specs}
        for future in futures.as_completed(running):
            spec = running[future]
            try:
                done[spec.key] = future.result()
            except ExperimentError as err:
                failed[spec.key] = str(err)
    if failed:
        raise ExperimentError(f"{len(failed)} trial(s) failed: "
                              + "; ".join(failed.values()))
    return done


def _write_plan(root, experiment):
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, "experiment.json"),
                      json.dumps(experiment.to_dict(), indent=2))


def run_experiment(experiment, root, jobs=1, overwrite=False, runner=None, report=True):
    """Runs every unfinished trial of `experiment` under `root`, then the reports.

    Args:
        experiment: the `Experiment` plan.
        root: the experiment directory.
        jobs: trials run at once (each in its own process when > 1).
            Defaults to 1 (in this process).
        overwrite: rerun finished trials too. Defaults to False.
        runner: `runner(directory, config)` runs one trial; for tests.
            Defaults to `run_trial` (jobs=1) or a subprocess per trial.
        report: write the reports at the end. Defaults to True.

    Returns:
        {trial key: "ran" | "skipped" | "locked"} for the trials this process
        handled (empty for a distributed chief).
    """
    from ssnas_tf.workflow import distributed
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if runner is None:
        runner = run_trial if jobs == 1 else _run_in_subprocess
    _write_plan(root, experiment)
    if distributed.has_chief_oracle():
        statuses = distributed.run_with_oracle(
            root, experiment,
            lambda spec: _execute(root, experiment, spec, runner, overwrite))
        if not distributed.is_chief():
            print("[ssnas experiment] worker done; the chief writes the reports",
                  flush=True)
            return statuses
    else:
        statuses = _run_local(root, experiment, experiment.plan(), runner, jobs, overwrite)
    if report:
        from ssnas_tf.workflow.report import write_reports
        write_reports(root, experiment)
    return statuses


def _plan_differences(planned, stored):
    """Names of the plan fields (base_config.<field> for run settings) that differ."""
    names = [k for k in _differing_keys(planned, stored) if k != "base_config"]
    names += [f"base_config.{k}" for k in
              _differing_keys(planned["base_config"], stored.get("base_config", {}))]
    return sorted(names)


def report_experiment(experiment, root):
    """Writes the reports of the finished trials; runs nothing.

    For a grid that is still running (here or on other machines) or was
    stopped: the tables and figure cover the trials finished so far.

    Raises:
        ExperimentError: `root` holds no experiment.json, or one whose plan
            differs from `experiment` (the fields are named).
    """
    path = os.path.join(root, "experiment.json")
    stored = _read_json(path)
    if stored is None:
        raise ExperimentError(f"{path} not found: no experiment to report on")
    differences = _plan_differences(experiment.to_dict(), stored)
    if differences:
        raise ExperimentError(
            f"{path} holds another plan ({', '.join(differences)} differ): pass the "
            "flags the experiment was started with")
    from ssnas_tf.workflow.report import write_reports
    return write_reports(root, experiment)


def main(argv=None):
    """`python -m ssnas_tf.workflow.experiment TRIAL_DIR`: one trial, for --jobs."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ssnas_tf.workflow.experiment TRIAL_DIR", file=sys.stderr)
        return 2
    run_trial(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
