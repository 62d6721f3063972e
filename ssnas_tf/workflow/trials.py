"""Running an experiment's trials: one at a time, N at a time, or one per process.

`run_trial` runs one trial in this process; `run_in_subprocess` runs it in its
own Python process (`python -m ssnas_tf.workflow.trials TRIAL_DIR`, logging to
TRIAL_DIR/trial.log), for `--jobs N`. `trial_lock` keeps two processes from
running one trial at once; `trial_status` says whether a trial is done.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

from ssnas_tf.atomic import atomic_write_text
from ssnas_tf.errors import ExperimentError
from ssnas_tf.workflow.plan import differing_keys, read_json, trial_dir


def trial_status(directory, config):
    """"done", "unfinished" or "new".

    Raises:
        ExperimentError: the directory's config.json differs from `config`;
            the message names the fields.
    """
    saved = read_json(os.path.join(directory, "config.json"))
    if saved is None:
        return "new"
    differ = differing_keys(saved, json.loads(config.to_json()))
    if differ:
        raise ExperimentError(
            f"{directory}/config.json differs from the experiment's plan in "
            f"{differ}; use another --output, or --overwrite to rerun every trial")
    results = read_json(os.path.join(directory, "results.json")) or {}
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


def run_in_subprocess(directory, config):
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
            [sys.executable, "-m", "ssnas_tf.workflow.trials", directory],
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
            holder = read_json(path) or {}
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


def execute(root, experiment, spec, runner, overwrite):
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


def run_local(root, experiment, specs, runner, jobs, overwrite):
    """Runs `specs` here, `jobs` at a time; returns {key: status}."""
    done, failed = {}, {}
    if jobs <= 1:
        for spec in specs:
            done[spec.key] = execute(root, experiment, spec, runner, overwrite)
        return done
    with futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(execute, root, experiment, s, runner, overwrite): s
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


def main(argv=None):
    """`python -m ssnas_tf.workflow.trials TRIAL_DIR`: one trial, for --jobs."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ssnas_tf.workflow.trials TRIAL_DIR", file=sys.stderr)
        return 2
    run_trial(argv[0])
    return 0


__all__ = ["execute", "run_in_subprocess", "run_local", "run_trial", "trial_lock",
           "trial_status"]


if __name__ == "__main__":
    sys.exit(main())
