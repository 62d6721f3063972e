"""Trials spread over several machines with keras-tuner's distributed oracle.

keras-tuner runs one oracle in the process whose KERASTUNER_TUNER_ID contains
"chief" and serves it over gRPC at KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT;
every other process (a worker) asks it for trials, runs them and reports back
(https://keras.io/guides/keras_tuner/distributed_tuning/). Here each oracle
trial is one experiment trial, named by its key (`ssl/r0.1/t3`).

The oracle hands out the keys in plan order. keras-tuner's GridSearchOracle
would do that too, but it derives the next grid point only from finished
trials, so after the first two trials a second worker waits for the first
(it answers IDLE): `PlanOracle` is a small `keras_tuner.Oracle` subclass that
gives every idle worker the next key nobody holds.

The oracle only schedules: whether a trial is finished is read from its run
directory, so the chief starts with a fresh oracle each time and a worker
skips (in milliseconds) the trials whose results.json is complete. A trial
that fails in a worker is marked failed by keras-tuner and not retried in
that session; rerunning the experiment retries it. A trial that a process
outside the oracle holds (its lock in DIR/.locks) is waited for, and scored by
the results.json that process writes: the oracle never records a score that
no run produced.
"""

import os
import time

from ssnas_tf.errors import ConfigError, ExperimentError
from ssnas_tf.workflow.plan import trial_dir

CHIEF = "chief"
# How often a worker looks whether a trial held by a process outside the oracle
# has ended.
LOCKED_POLL_SECONDS = 5.0


def has_chief_oracle():
    """True when the KERASTUNER_* variables ask for distributed trials."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return False
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
               if v not in os.environ]
    if missing:
        raise ConfigError(f"KERASTUNER_ORACLE_IP is set but {missing} not; set both "
                         f"(KERASTUNER_TUNER_ID=chief on one machine, worker0, "
                         f"worker1, ... on the others)")
    return True


def is_chief():
    return has_chief_oracle() and CHIEF in os.environ["KERASTUNER_TUNER_ID"]


def _classes():
    """The keras-tuner subclasses, defined lazily (keras_tuner imports TF)."""
    import keras_tuner as kt
    from keras_tuner.engine import base_tuner
    from keras_tuner.engine import trial as trial_module
    Status = trial_module.TrialStatus

    class PlanOracle(kt.Oracle):
        """Hands out `keys` (the values of hyperparameter `trial`) in order."""

        def __init__(self, keys, **kwargs):
            super().__init__(**kwargs)
            self.keys = list(keys)

        def populate_space(self, trial_id):
            held = {t.hyperparameters.values.get("trial") for t in self.trials.values()}
            for key in self.keys:
                if key not in held:
                    return {"status": Status.RUNNING, "values": {"trial": key}}
            return {"status": Status.IDLE if self.ongoing_trials else Status.STOPPED,
                    "values": None}

    class TrialTuner(base_tuner.BaseTuner):
        """Runs `execute(key)` for each trial the oracle hands out."""

        def __init__(self, execute, **kwargs):
            self._execute_key = execute
            self._idle = False
            super().__init__(**kwargs)

        def pre_create_trial(self):
            if self._idle:  # the last answer was IDLE: do not spin on the chief
                time.sleep(2)
            self._idle = True

        def on_trial_begin(self, trial):
            self._idle = False

        def run_trial(self, trial, *args, **kwargs):
            return {"weighted_f1": self._execute_key(trial.hyperparameters.get("trial"))}

    return kt, PlanOracle, TrialTuner


def run_with_oracle(root, experiment, execute):
    """Serves the oracle (chief) or runs the trials it hands out (worker).

    Args:
        root: the experiment directory (the oracle state goes in root/.tuner).
        experiment: the `Experiment` plan.
        execute: `execute(spec)` runs one trial and returns its status word.

    Returns:
        {trial key: status} of the trials this worker handled; {} for the chief.
    """
    kt, PlanOracle, TrialTuner = _classes()
    specs = {spec.key: spec for spec in experiment.plan()}
    hp = kt.HyperParameters()
    hp.Choice("trial", list(specs))
    oracle = PlanOracle(list(specs), objective=kt.Objective("weighted_f1", "max"), max_trials=len(specs),
                        hyperparameters=hp, allow_new_entries=False,
                        tune_new_entries=False)
    statuses = {}

    def execute_key(key):
        statuses[key] = execute(specs[key])
        if statuses[key] == "locked":
            # Held by a process outside the oracle: wait for it, then score
            # the trial by what it wrote (or run it, if the holder gave up).
            # A made-up score would stand in the oracle as the trial's.
            print(f"[ssnas experiment] {key}: run by another process; waiting for "
                  f"its lock in {os.path.join(root, '.locks')}", flush=True)
            while statuses[key] == "locked":
                time.sleep(LOCKED_POLL_SECONDS)
                statuses[key] = execute(specs[key])
        results = _results(os.path.join(trial_dir(root, specs[key]), "results.json"))
        if results is None:
            raise ExperimentError(f"trial {key} left no results.json")
        return float(results["weighted_f1"])

    tuner = TrialTuner(execute_key, oracle=oracle, directory=root, project_name=".tuner",
                       overwrite=is_chief())
    tuner.search(verbose=0)
    return statuses


def _results(path):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
