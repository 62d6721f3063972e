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
(`python -m ssnas_tf.workflow.trials TRIAL_DIR`, logging to
TRIAL_DIR/trial.log). Several machines sharing DIR use keras-tuner's
distributed oracle: a GridSearch oracle over the trial keys
(`ssl/r0.1/t3`, ...) served by the process whose KERASTUNER_TUNER_ID is
`chief`, every other process (KERASTUNER_TUNER_ID=worker0, ...) asks it for
the next trial. All set KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT to the
chief's address. The chief writes the reports once every trial has ended.
Without an oracle, the per-trial lock files (created with O_EXCL) still keep
two processes from running one trial at once.

The jobs live in their own modules: the plan and the seeds in
`ssnas_tf.workflow.plan`, running trials in `ssnas_tf.workflow.trials`, the
distributed oracle in `ssnas_tf.workflow.distributed`, the tables and figure in
`ssnas_tf.workflow.report`; this module composes them.
"""

import os
import sys

from ssnas_tf.errors import ConfigError, ExperimentError
from ssnas_tf.workflow import distributed
from ssnas_tf.workflow.plan import (PAPER_FRACTIONS, PROTOCOLS, Experiment, TrialSpec,
                                    plan_differences, read_json, trial_dir, trial_seeds,
                                    write_plan)
from ssnas_tf.workflow.report import write_reports
from ssnas_tf.workflow.trials import (execute, main, run_in_subprocess, run_local,
                                      run_trial, trial_lock, trial_status)


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
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if runner is None:
        runner = run_trial if jobs == 1 else run_in_subprocess
    write_plan(root, experiment)
    if distributed.has_chief_oracle():
        statuses = distributed.run_with_oracle(
            root, experiment,
            lambda spec: execute(root, experiment, spec, runner, overwrite))
        if not distributed.is_chief():
            print("[ssnas experiment] worker done; the chief writes the reports",
                  flush=True)
            return statuses
    else:
        statuses = run_local(root, experiment, experiment.plan(), runner, jobs, overwrite)
    if report:
        write_reports(root, experiment)
    return statuses


def report_experiment(experiment, root):
    """Writes the reports of the finished trials; runs nothing.

    For a grid that is still running (here or on other machines) or was
    stopped: the tables and figure cover the trials finished so far.

    Raises:
        ExperimentError: `root` holds no experiment.json, or one whose plan
            differs from `experiment` (the fields are named).
    """
    path = os.path.join(root, "experiment.json")
    stored = read_json(path)
    if stored is None:
        raise ExperimentError(f"{path} not found: no experiment to report on")
    differences = plan_differences(experiment.to_dict(), stored)
    if differences:
        raise ExperimentError(
            f"{path} holds another plan ({', '.join(differences)} differ): pass the "
            "flags the experiment was started with")
    return write_reports(root, experiment)


__all__ = ["Experiment", "ExperimentError", "PAPER_FRACTIONS", "PROTOCOLS", "TrialSpec",
           "report_experiment", "run_experiment", "run_trial", "trial_dir", "trial_lock",
           "trial_seeds", "trial_status"]


if __name__ == "__main__":  # python -m ssnas_tf.workflow.experiment TRIAL_DIR: one trial
    sys.exit(main())
