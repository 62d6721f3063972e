"""The experiment runner's plan, seeds, skip/resume, locks and reports, with a
fake trial runner (no training); the real runs are in test_slow_experiment.py."""

import csv
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from ssnas_tf.nas.genotypes import Genotype, StepGenotype
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.errors import ExperimentError
from ssnas_tf.workflow.experiment import run_experiment
from ssnas_tf.workflow.plan import Experiment, TrialSpec, trial_dir, trial_seeds
from ssnas_tf.workflow.trials import trial_lock
from ssnas_tf.workflow.report import choice_rows, summary_rows

# Two features, two cells; cell 0 is dead (concat is cell 1 only, reading a, b).
GENOTYPE = Genotype(
    inputs=("a", "b"), edges=(("identity", 0), ("identity", 1), ("identity", 0),
                              ("identity", 1)),
    steps=(StepGenotype((("identity", 0), ("identity", 1)), ("attention",), (2,)),
           StepGenotype((("identity", 0), ("identity", 1)), ("concat_fc",), (2,))),
    concat=(3,))


def fake_score(config):
    """A known score per trial: ssl beats supervised by 0.01 * (trial + 1)."""
    base = 0.5 + 0.1 * config.label_fraction
    return base + (0.01 * (config.seed % 7 + 1) if config.method == "ssl" else 0.0)


class FakeRunner:
    """Writes a finished trial's results.json; counts the calls (thread-safe)."""

    def __init__(self):
        self.calls, self.lock = [], threading.Lock()

    def __call__(self, directory, config):
        with self.lock:
            self.calls.append(os.path.relpath(directory))
        results = {"weighted_f1": fake_score(config), "accuracy": 0.7,
                   "genotype": GENOTYPE.to_dict(), "seconds": {"search": 1.5, "finetune": 2}}
        with open(os.path.join(directory, "results.json"), "w") as f:
            json.dump(results, f)


def experiment(**changes):
    fields = dict(base=RunConfig(seed=3), methods=("ssl", "supervised"),
                  fractions=(0.1, 1.0), trials=2)
    fields.update(changes)
    return Experiment(**fields)


def test_trial_t_of_every_method_shares_the_split_seed():
    exp = experiment(trials=3)
    configs = {(s.method, s.fraction, s.trial): exp.config_for(s) for s in exp.plan()}
    assert len(configs) == 12
    for (method, fraction, t), config in configs.items():
        other = configs[("supervised" if method == "ssl" else "ssl", fraction, t)]
        assert (config.split_seed, config.seed) == (other.split_seed, other.seed)
        assert config.method == method and config.label_fraction == fraction
    assert len({c.split_seed for c in configs.values()}) == 3  # one per trial
    assert len({c.seed for c in configs.values()}) == 3


def test_seeds_come_from_seed_sequence_and_do_not_depend_on_the_trial_count():
    children = np.random.SeedSequence(3).spawn(4)
    expected = [tuple(int(g.generate_state(1)[0] >> 1) for g in c.spawn(2)) for c in children]
    assert trial_seeds(3, 4) == expected
    assert trial_seeds(3, 2) == expected[:2]
    assert trial_seeds(4, 2) != expected[:2]
    # Not the seed + k pattern: neighbouring trials' seeds are unrelated.
    assert all(s[0] != s[1] for s in expected)


def _splits(tmp_path, name, config):
    from ssnas_tf.workflow.run import Run
    run = Run(str(tmp_path / name), config, verbose=0)
    run.start()
    return run.splits


def test_split_seed_drives_the_splits_and_seed_the_training(tmp_path):
    exp = experiment()
    ssl, sup, ssl_t1 = (exp.config_for(TrialSpec(m, 0.1, t))
                        for m, t in (("ssl", 0), ("supervised", 0), ("ssl", 1)))
    splits = {name: _splits(tmp_path, name, c)
              for name, c in (("ssl", ssl), ("sup", sup), ("ssl_t1", ssl_t1))}
    np.testing.assert_array_equal(splits["ssl"].test, splits["sup"].test)
    np.testing.assert_array_equal(splits["ssl"].labeled, splits["sup"].labeled)
    assert not np.array_equal(splits["ssl"].labeled, splits["ssl_t1"].labeled)
    # The split seed alone decides the splits: another training seed keeps them.
    same = _splits(tmp_path, "x", ssl.replace(seed=ssl.seed + 1))
    np.testing.assert_array_equal(same.labeled, splits["ssl"].labeled)


def test_exp2_has_no_pretraining_and_only_r_equal_one():
    exp = experiment(fractions=(1.0,), protocol="exp2")
    configs = {s.method: exp.config_for(s) for s in exp.plan()}
    assert not configs["ssl"].contrastive_pretraining
    assert configs["ssl"].label_fraction == 1.0
    assert configs["supervised"].contrastive_pretraining
    with pytest.raises(ValueError, match="exp2 uses every label"):
        experiment(protocol="exp2")


@pytest.mark.parametrize("changes, message", [
    (dict(methods=("ssl", "bogus")), "--methods"),
    (dict(methods=("ssl", "ssl")), "--methods"),
    (dict(fractions=(0.0, 1.0)), "--fractions"),
    (dict(trials=0), "--trials"),
    (dict(protocol="exp3"), "--protocol"),
])
def test_bad_plans_name_the_flag(changes, message):
    with pytest.raises(ValueError, match=message):
        experiment(**changes)


def test_rerun_skips_finished_trials_and_reruns_unfinished_ones(tmp_path):
    root, exp, runner = str(tmp_path / "exp"), experiment(), FakeRunner()
    statuses = run_experiment(exp, root, runner=runner)
    assert set(statuses.values()) == {"ran"} and len(runner.calls) == 8
    assert os.path.isdir(os.path.join(root, "ssl", "r0.1", "t1"))
    again = FakeRunner()
    assert set(run_experiment(exp, root, runner=again).values()) == {"skipped"}
    assert again.calls == []
    # An interrupted trial: config.json written, results.json not yet.
    os.remove(os.path.join(trial_dir(root, TrialSpec("supervised", 1.0, 1)), "results.json"))
    statuses = run_experiment(exp, root, runner=again)
    assert [k for k, v in statuses.items() if v == "ran"] == ["supervised/r1/t1"]
    # --overwrite reruns everything.
    run_experiment(exp, root, runner=again, overwrite=True)
    assert len(again.calls) == 1 + 8


def test_a_changed_setting_is_an_error_naming_the_field(tmp_path):
    root = str(tmp_path / "exp")
    run_experiment(experiment(), root, runner=FakeRunner(), report=False)
    changed = experiment(base=RunConfig(seed=3, finetune_epochs=7))
    with pytest.raises(ExperimentError, match=r"\['finetune_epochs'\].*--overwrite"):
        run_experiment(changed, root, runner=FakeRunner())


def test_parallel_jobs_run_every_trial_once(tmp_path):
    runner = FakeRunner()
    run_experiment(experiment(trials=3), str(tmp_path / "exp"), jobs=2, runner=runner)
    assert len(runner.calls) == 12 and len(set(runner.calls)) == 12


def test_locked_trials_are_left_to_their_holder_and_stale_locks_taken_over(tmp_path):
    root, exp = str(tmp_path / "exp"), experiment(trials=1, fractions=(1.0,))
    spec = TrialSpec("ssl", 1.0, 0)
    with trial_lock(root, spec) as held:  # this (live) process holds it
        assert held is not None
        statuses = run_experiment(exp, root, runner=FakeRunner(), report=False)
        assert statuses == {"ssl/r1/t0": "locked", "supervised/r1/t0": "ran"}
        with trial_lock(root, spec) as second:
            assert second is None
    # A lock left by a dead process of this host is taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    with open(held, "w") as f:
        json.dump({"host": __import__("socket").gethostname(),
                   "pid": int(dead.stdout)}, f)
    statuses = run_experiment(exp, root, runner=FakeRunner(), report=False)
    assert statuses["ssl/r1/t0"] == "ran" and not os.path.exists(held)


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_reports_hold_one_row_per_trial_and_paired_statistics(tmp_path):
    root, exp = str(tmp_path / "exp"), experiment(trials=3)
    run_experiment(exp, root, runner=FakeRunner())
    results = _csv(os.path.join(root, "results.csv"))
    assert len(results) == 12
    row = next(r for r in results if (r["method"], r["fraction"], r["trial"])
               == ("ssl", "0.1", "2"))
    config = exp.config_for(TrialSpec("ssl", 0.1, 2))
    assert float(row["weighted_f1"]) == pytest.approx(fake_score(config))
    assert (row["seed"], row["split_seed"]) == (str(config.seed), str(config.split_seed))
    assert (row["inputs"], row["primitives"], row["seconds"]) == ("a|b", "concat_fc", "3.5")
    summary = _csv(os.path.join(root, "summary.csv"))
    diff = next(r for r in summary if r["method"] == "ssl-supervised"
                and r["fraction"] == "1" and r["metric"] == "weighted_f1")
    gains = [0.01 * (exp.config_for(TrialSpec("ssl", 1.0, t)).seed % 7 + 1) for t in range(3)]
    assert float(diff["mean"]) == pytest.approx(np.mean(gains), abs=1e-6)
    assert float(diff["n"]) == 3 and diff["wilcoxon_p"] != ""
    for name in ("choices.csv", "label_fraction.png", "label_fraction.svg"):
        assert os.path.getsize(os.path.join(root, name)) > 0


def test_paired_difference_uses_only_trials_both_methods_finished():
    rows = [{"method": m, "fraction": 0.1, "trial": t, "weighted_f1": f1, "accuracy": None}
            for m, t, f1 in (("ssl", 0, 0.9), ("ssl", 1, 0.8), ("ssl", 2, 0.7),
                             ("supervised", 0, 0.85), ("supervised", 2, 0.72))]
    summary = summary_rows(rows, ("ssl", "supervised"), (0.1,))
    by_method = {s["method"]: s for s in summary}
    assert by_method["ssl"]["n"] == 3 and by_method["supervised"]["n"] == 2
    assert by_method["ssl-supervised"]["n"] == 2
    assert by_method["ssl-supervised"]["mean"] == pytest.approx((0.05 - 0.02) / 2)
    assert all(s["metric"] == "weighted_f1" for s in summary)  # no accuracy values


def test_choices_count_live_cells_only():
    rows = [{"method": "ssl", "fraction": 1.0, "genotype": GENOTYPE}] * 2
    out = {(r["kind"], r["name"]): r for r in choice_rows(rows, ("ssl",), (1.0,))}
    assert set(out) == {("feature", "a"), ("feature", "b"), ("primitive", "concat_fc")}
    assert out[("primitive", "concat_fc")]["share_of_trials"] == 1.0
    assert out[("feature", "a")]["occurrences"] == 2


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_keras_tuner_chief_hands_each_trial_to_a_worker_once(tmp_path, monkeypatch):
    """A chief process serves the oracle; this process is a worker."""
    root, port = str(tmp_path / "exp"), str(_free_port())
    env = dict(os.environ, KERASTUNER_TUNER_ID="chief", KERASTUNER_ORACLE_IP="127.0.0.1",
               KERASTUNER_ORACLE_PORT=port, TF_CPP_MIN_LOG_LEVEL="2")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    chief = subprocess.Popen(
        [sys.executable, "-m", "ssnas_tf.cli", "experiment", "--output", root,
         "--methods", "ssl,supervised", "--fractions", "0.1,1", "--trials", "2",
         "--seed", "3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            monkeypatch.setenv(name, env[name])
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
        runner = FakeRunner()
        statuses = run_experiment(experiment(), root, runner=runner)
        output, _ = chief.communicate(timeout=120)
    finally:
        chief.kill()
    assert chief.returncode == 0, output
    assert sorted(statuses) == sorted(s.key for s in experiment().plan())
    assert len(runner.calls) == 8 and len(set(runner.calls)) == 8
    # The chief wrote the reports once the worker had finished every trial.
    assert len(_csv(os.path.join(root, "results.csv"))) == 8


def test_missing_matplotlib_is_a_clear_message_and_the_tables_are_still_written(
        tmp_path, monkeypatch, capsys):
    from ssnas_tf.viz import plots
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails
    with pytest.raises(ImportError, match=r'pip install -e "\.\[plots\]"'):
        plots.plot_label_fraction([], str(tmp_path / "x.png"))
    root = str(tmp_path / "exp")
    run_experiment(experiment(trials=1), root, runner=FakeRunner())
    assert "no figure" in capsys.readouterr().out
    assert os.path.exists(os.path.join(root, "summary.csv"))
    assert not os.path.exists(os.path.join(root, "label_fraction.png"))


def test_cli_experiment_rejects_bad_fractions_before_running(tmp_path, capsys):
    from ssnas_tf.cli import main
    output = str(tmp_path / "exp")
    assert main(["experiment", "--output", output, "--fractions", "0.1,x"]) == 2
    assert "--fractions expects comma-separated numbers" in capsys.readouterr().err
    assert main(["experiment", "--output", output, "--protocol", "exp2",
                 "--fractions", "0.5"]) == 2
    assert "exp2 uses every label" in capsys.readouterr().err
    assert not os.path.exists(output)


def test_exp2_writes_table3_with_percentages(tmp_path):
    root = str(tmp_path / "exp")
    exp = experiment(fractions=(1.0,), protocol="exp2", trials=3)
    run_experiment(exp, root, runner=FakeRunner())
    with open(os.path.join(root, "table3.md")) as f:
        table = f.read().splitlines()
    assert table[0].startswith("| Method | Weighted F1 (mean ± s.e.)")
    supervised = next(line for line in table if line.startswith("| BM-NAS"))
    assert "| 60.00 ± 0.00 | [60.00, 60.00] | 3 |" in supervised  # fake_score at r = 1
    assert any("no labels" in line for line in table)
    assert any(line.startswith("| paired difference ssl-supervised") for line in table)


def test_no_contrastive_pretraining_skips_the_step(tmp_path):
    from ssnas_tf.workflow.run import Run
    run = Run(str(tmp_path / "run"),
              RunConfig(label_fraction=1.0, contrastive_pretraining=False), verbose=0)
    run.start()
    GENOTYPE.save(run.path("genotype.json"))
    results = run.pretrain()
    assert results["seconds"]["pretrain"] == 0.0
    assert not os.path.exists(run.path("encoder.keras"))


def _mfeat():
    from ssnas_tf.data import load_dataset
    return load_dataset("mfeat")


def test_external_backbone_data_is_disjoint_from_every_other_split():
    from ssnas_tf.data.splits import RunSplits, make_splits
    data = _mfeat()
    shared = make_splits(data, "ssl", 0.1, seed=5)
    ext = make_splits(data, "ssl", 0.1, seed=5, external_fraction=0.2)
    np.testing.assert_array_equal(ext.test, shared.test)  # same test split
    pool = np.setdiff1d(np.arange(data.num_samples), ext.test)
    assert len(ext.external) == round(0.2 * len(pool))
    for name in ("test", "labeled", "unlabeled", "search_train", "search_valid"):
        assert not np.intersect1d(ext.external, getattr(ext, name)).size, name
    assert len(ext.labeled) + len(ext.unlabeled) + len(ext.external) == len(pool)
    # Seeded, and round-trips through splits.json; shared runs write no "external".
    again = make_splits(data, "supervised", 0.1, seed=5, external_fraction=0.2)
    np.testing.assert_array_equal(again.external, ext.external)
    assert "external" not in shared.to_dict() and "external" in ext.sizes()
    back = RunSplits.from_dict(ext.to_dict(), data.num_samples)
    np.testing.assert_array_equal(back.external, ext.external)
    bad = ext.to_dict()
    bad["external"] = bad["external"][:-1] + bad["labeled"][:1]
    with pytest.raises(ValueError, match="labeled shares samples with external"):
        RunSplits.from_dict(bad, data.num_samples)


def test_backbone_pretraining_modes_pick_their_samples(tmp_path, monkeypatch):
    from ssnas_tf import backbones as backbones_lib
    from ssnas_tf.workflow.run import Run
    seen = {}
    monkeypatch.setattr(backbones_lib, "pretrain_backbones",
                        lambda b, d, index, *a, **k: seen.setdefault("index", index))
    for mode in ("external", "none", "shared"):
        seen.clear()
        run = Run(str(tmp_path / mode), RunConfig(
            backbone_pretraining=mode, backbone_epochs=1, backbone_width=4,
            dataset_options={"views": ["fou", "mor"]}), verbose=0)
        run.start()
        run.train_backbones()
        s = run.splits
        if mode == "external":
            np.testing.assert_array_equal(seen["index"], s.external)
        elif mode == "shared":
            np.testing.assert_array_equal(seen["index"], np.union1d(s.labeled, s.unlabeled))
        else:
            assert seen == {}  # random, frozen backbones: no pretraining


def test_the_experiment_defaults_to_external_backbones():
    from ssnas_tf.cli import _experiment_from_args, build_parser
    args = build_parser().parse_args(["experiment", "--output", "x"])
    assert _experiment_from_args(args).base.backbone_pretraining == "external"
    assert build_parser().parse_args(["run"]).backbone_pretraining == "shared"
    with pytest.raises(ValueError, match="--backbone-pretraining must be one of"):
        RunConfig(backbone_pretraining="imagenet")


def test_labels_per_class_is_an_axis_of_its_own(tmp_path):
    """--labels-per-class 1,5: trials under k1/k5, each config with its K, the
    reports headed labels_per_class, and real splits with K labels per class."""
    from ssnas_tf.data.splits import make_splits
    root = str(tmp_path / "exp")
    exp = experiment(fractions=(1, 5), per_class=True)
    specs = exp.plan()
    assert {s.key.split("/")[1] for s in specs} == {"k1", "k5"}
    for spec in specs:
        config = exp.config_for(spec)
        assert config.labels_per_class == int(spec.fraction)
        assert trial_dir(root, spec).endswith(os.path.join(spec.method, spec.budget,
                                                           f"t{spec.trial}"))
    config = exp.config_for(specs[-1])
    splits = make_splits(_mfeat(), config.method, config.label_fraction,
                         config.effective_split_seed, labels_per_class=config.labels_per_class)
    np.testing.assert_array_equal(np.bincount(_mfeat().labels[splits.labeled]), [5] * 10)
    run_experiment(exp, root, runner=FakeRunner())
    for name in ("results.csv", "summary.csv", "choices.csv"):
        with open(os.path.join(root, name)) as f:
            header = f.readline().strip().split(",")
        assert "labels_per_class" in header and "fraction" not in header, name
    with open(os.path.join(root, "experiment.json")) as f:
        assert json.load(f)["labels_per_class"] == [1.0, 5.0]
    # Fractions keep their own directories and an explicit "no K".
    assert experiment().config_for(experiment().plan()[0]).labels_per_class is None


@pytest.mark.parametrize("args, message", [
    (["--labels-per-class", "1,2.5"], "need distinct whole numbers >= 1"),
    (["--labels-per-class", "0"], "need distinct whole numbers >= 1"),
    (["--labels-per-class", "1,x"], "--labels-per-class expects comma-separated numbers"),
    (["--labels-per-class", "1", "--fractions", "0.1"], "alternatives"),
    (["--labels-per-class", "1", "--protocol", "exp2"], "does not apply"),
])
def test_cli_labels_per_class_errors(tmp_path, capsys, args, message):
    from ssnas_tf.cli import main
    output = str(tmp_path / "exp")
    assert main(["experiment", "--output", output, *args]) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(output)


def test_report_only_reports_finished_trials_and_runs_nothing(tmp_path, capsys):
    from ssnas_tf.cli import main
    root = str(tmp_path / "exp")
    flags = ["experiment", "--output", root, "--fractions", "0.1,1", "--trials", "2",
             "--seed", "3", "--epochs", "1"]
    exp = experiment(base=RunConfig(seed=3, search_epochs=1,
                                    backbone_pretraining="external"))
    run_experiment(exp, root, runner=FakeRunner(), report=False)
    unfinished = trial_dir(root, exp.plan()[-1])
    os.remove(os.path.join(unfinished, "results.json"))  # as if still running
    assert main(flags + ["--report-only"]) == 0
    rows = _csv(os.path.join(root, "results.csv"))
    assert len(rows) == len(exp.plan()) - 1
    assert not os.path.exists(os.path.join(unfinished, "results.json"))  # not run
    # Other flags than the experiment's: an error naming the field, no report.
    os.remove(os.path.join(root, "results.csv"))
    assert main(flags[:-1] + ["2", "--report-only"]) == 2
    assert "base_config.search_epochs" in capsys.readouterr().err
    assert main(["experiment", "--output", str(tmp_path / "none"), "--report-only"]) == 2
    assert "experiment.json not found" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(root, "results.csv"))


def test_oracle_scores_a_trial_held_elsewhere_by_its_results(tmp_path, monkeypatch):
    """A trial another process holds is waited for and scored by the
    results.json that process wrote, not by a made-up 0.0."""
    from ssnas_tf.workflow import distributed
    monkeypatch.setattr(distributed, "LOCKED_POLL_SECONDS", 0.01)
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)
    root = str(tmp_path / "exp")
    exp = experiment(trials=1, fractions=(1.0,))
    held = "ssl/r1/t0"
    calls = []

    def execute(spec):
        calls.append(spec.key)
        directory = trial_dir(root, spec)
        os.makedirs(directory, exist_ok=True)
        if spec.key == held and calls.count(held) < 3:
            if calls.count(held) == 2:  # the other process finishes meanwhile
                with open(os.path.join(directory, "results.json"), "w") as f:
                    json.dump({"weighted_f1": 0.625}, f)
            return "locked"
        if spec.key == held:
            return "skipped"
        with open(os.path.join(directory, "results.json"), "w") as f:
            json.dump({"weighted_f1": 0.5}, f)
        return "ran"

    statuses = distributed.run_with_oracle(root, exp, execute)
    assert statuses == {held: "skipped", "supervised/r1/t0": "ran"}
    scores = {}
    for name in os.listdir(os.path.join(root, ".tuner")):
        path = os.path.join(root, ".tuner", name, "trial.json")
        if os.path.exists(path):
            with open(path) as f:
                trial = json.load(f)
            scores[trial["hyperparameters"]["values"]["trial"]] = trial["score"]
    assert scores == {held: 0.625, "supervised/r1/t0": 0.5}
