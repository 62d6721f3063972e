"""Bad input to the `ssnas` CLI: exit code 2, a clear message on stderr, and
earlier results left exactly as they were (same bytes, same mtimes).

Most cases point `--output` (with `--overwrite`) at a copy of a finished tiny
run, so a check that came too late would damage real results.
"""

import hashlib
import json
import os

import numpy as np
import pytest

from ssnas_tf.cli import main
from ssnas_tf.data import DATASETS
from ssnas_tf.version import __version__
from test_pipeline import TINY_FLAGS, copy_run, finished_tiny_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return finished_tiny_run(tmp_path_factory)[0]


@pytest.fixture
def run_copy(finished, tmp_path):
    return copy_run(finished, tmp_path / "run")


def snapshot(directory):
    """Relative path -> (sha256, mtime_ns) of every file; folders -> None."""
    out = {}
    for folder, dirs, files in os.walk(directory):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), directory)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, directory)] = (digest, os.stat(path).st_mtime_ns)
    return out


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's own errors
        return stop.code


def fails(argv, capsys, *needles):
    """Runs the CLI; asserts exit code 2 and an error naming all `needles`."""
    code = exit_code(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip(), "no message on stderr"
    if argv[0] in ("run", "search", "pretrain", "finetune", "evaluate", "export"):
        assert f"ssnas {argv[0]}: error: " in err, err
        assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: ssnas" in capsys.readouterr().out


# -- inputs of a new run: --output is a finished run, with --overwrite --------

@pytest.mark.parametrize("command", ["run", "search"])
def test_unknown_dataset_lists_the_known_ones(command, run_copy, capsys):
    before = snapshot(run_copy)
    fails([command, "--dataset", "nosuchdata", "--output", run_copy, "--overwrite"],
          capsys, "unknown dataset 'nosuchdata'", *sorted(DATASETS))
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("dataset, data_dir", [
    ("avmnist", "/nonexistent/avmnist_data"),
    ("mfeat", "/nonexistent/mfeat_csv"),
    ("csv", "/nonexistent/table.csv"),
])
def test_missing_data_directory_names_the_path(dataset, data_dir, run_copy, capsys):
    before = snapshot(run_copy)
    fails(["run", "--dataset", dataset, "--data-dir", data_dir, "--output", run_copy,
           "--overwrite"], capsys, data_dir)
    assert snapshot(run_copy) == before


def test_dataset_that_needs_a_data_dir(run_copy, capsys):
    before = snapshot(run_copy)
    fails(["run", "--dataset", "avmnist", "--output", run_copy, "--overwrite"],
          capsys, "avmnist", "data_dir")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("fraction", ["0", "-0.1", "1.5"])
@pytest.mark.parametrize("command", ["run", "search"])
def test_label_fraction_outside_unit_interval(command, fraction, run_copy, capsys):
    before = snapshot(run_copy)
    fails([command, "--label-fraction", fraction, "--output", run_copy, "--overwrite"],
          capsys, "--label-fraction", "(0, 1]")
    assert snapshot(run_copy) == before


def test_labels_per_class_below_one(run_copy, capsys):
    before = snapshot(run_copy)
    fails(["run", "--labels-per-class", "0", "--output", run_copy, "--overwrite"],
          capsys, "--labels-per-class must be >= 1")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("argv, needles", [
    (["--label-fraction", "0"], ["--label-fraction"]),
    (["--labels-per-class", "0"], ["--labels-per-class"]),
    (["--dataset", "nosuchdata"], ["unknown dataset"]),
    (["--dataset", "avmnist", "--data-dir", "/nonexistent/av"], ["/nonexistent/av"]),
])
def test_bad_new_run_creates_nothing(argv, needles, tmp_path, capsys):
    output = str(tmp_path / "fresh")
    fails(["run", "--output", output, *argv], capsys, *needles)
    assert not os.path.exists(output)


@pytest.mark.parametrize("argv, needles", [
    (["--primitives", "sum,conv_3x3"], ["conv_3x3"]),
    (["--dataset-option", "views"], ["--dataset-option", "KEY=JSON"]),
    (["--dataset-option", "colour=1"], ["colour"]),
    (["--batch-size", "1"], ["batch_size"]),
    (["--epochs", "-1"], ["search_epochs", "--epochs", ">= 1"]),
    (["--epochs", "0"], ["search_epochs", "--epochs", ">= 1", "derives no architecture"]),
    (["--finetune-epochs", "0"], ["--finetune-epochs", ">= 1"]),
    (["--pretrain-epochs", "0"], ["--pretrain-epochs", ">= 1"]),
    (["--backbone-epochs", "-1"], ["--backbone-epochs", ">= 0"]),
    (["--backbones", "reference"], ["--image-weights", "imagenet", "random"]),
    (["--image-weights", "imagenet"], ["--image-weights imagenet", "--backbones reference"]),
])
def test_other_bad_settings(argv, needles, run_copy, capsys):
    before = snapshot(run_copy)
    fails(["run", "--output", run_copy, "--overwrite", *argv], capsys, *needles)
    assert snapshot(run_copy) == before


def test_bad_choice_is_an_argparse_error(run_copy, capsys):
    before = snapshot(run_copy)
    fails(["run", "--method", "unsupervised", "--output", run_copy], capsys,
          "invalid choice", "unsupervised")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("command", ["run", "search"])
def test_output_holding_results_needs_overwrite(command, run_copy, finished, capsys):
    before = snapshot(run_copy)
    fails([command, "--output", run_copy, *TINY_FLAGS], capsys, "--overwrite", run_copy)
    assert snapshot(run_copy) == before
    for name in ("results.json", "classifier.keras", "genotype.json"):
        assert _bytes(os.path.join(run_copy, name)) == _bytes(os.path.join(finished, name))


# -- corrupt genotypes given to a later step ----------------------------------

def _corrupt(kind, genotype):
    """(file text, needles naming the field) for one kind of corruption."""
    g = json.loads(json.dumps(genotype))
    if kind == "invalid_json":
        return '{"inputs": ["fou_1", ', ["malformed JSON"]
    if kind == "not_an_object":
        return "[1, 2, 3]", ["expected a JSON object"]
    if kind == "missing_field":
        del g["steps"]
        return json.dumps(g), ["steps: missing field"]
    if kind == "unknown_primitive":
        g["steps"][0]["inner_steps"][0] = "conv_3x3"
        return json.dumps(g), ["steps[0].inner_steps[0]", "conv_3x3"]
    if kind == "unknown_edge_op":
        g["edges"][1][0] = "skip"
        return json.dumps(g), ["edges[1]", "skip"]
    if kind == "edge_index_out_of_range":
        g["edges"][0][1] = 99
        return json.dumps(g), ["edges[0]", "99", "out of range"]
    if kind == "inner_index_out_of_range":
        g["steps"][1]["inner_edges"][1][1] = 7
        return json.dumps(g), ["steps[1].inner_edges[1]", "out of range"]
    if kind == "concat_out_of_range":
        g["concat"] = [g["concat"][0], 40]
        return json.dumps(g), ["concat", "40", "out of range"]
    if kind == "index_not_an_integer":
        g["edges"][2][1] = "three"
        return json.dumps(g), ["edges[2]", "integer"]
    raise AssertionError(kind)


CORRUPTIONS = ["invalid_json", "not_an_object", "missing_field", "unknown_primitive",
               "unknown_edge_op", "edge_index_out_of_range", "inner_index_out_of_range",
               "concat_out_of_range", "index_not_an_integer"]


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_corrupt_genotype_json_in_the_run(command, kind, run_copy, finished, capsys):
    path = os.path.join(run_copy, "genotype.json")
    with open(path) as f:
        text, needles = _corrupt(kind, json.load(f))
    with open(path, "w") as f:
        f.write(text)
    before = snapshot(run_copy)
    fails([command, "--output", run_copy], capsys, path, *needles)
    assert snapshot(run_copy) == before
    for name in ("classifier.keras", "results.json", "encoder.keras"):
        assert _bytes(os.path.join(run_copy, name)) == _bytes(os.path.join(finished, name))


@pytest.mark.parametrize("kind", ["invalid_json", "unknown_primitive",
                                  "edge_index_out_of_range", "concat_out_of_range"])
@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_corrupt_genotype_flag(command, kind, run_copy, finished, tmp_path, capsys):
    with open(os.path.join(finished, "genotype.json")) as f:
        text, needles = _corrupt(kind, json.load(f))
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    before = snapshot(run_copy)
    fails([command, "--output", run_copy, "--genotype", str(bad)], capsys, str(bad),
          *needles)
    assert snapshot(run_copy) == before
    for name in ("classifier.keras", "results.json"):
        assert _bytes(os.path.join(run_copy, name)) == _bytes(os.path.join(finished, name))


def test_missing_genotype_flag_file(run_copy, tmp_path, capsys):
    before = snapshot(run_copy)
    missing = str(tmp_path / "nowhere" / "genotype.json")
    fails(["finetune", "--output", run_copy, "--genotype", missing], capsys, missing)
    assert snapshot(run_copy) == before


def test_genotype_with_features_the_backbones_lack(run_copy, finished, tmp_path, capsys):
    with open(os.path.join(finished, "genotype.json")) as f:
        g = json.load(f)
    g["inputs"] = [f"feature_{i}" for i in range(len(g["inputs"]))]
    bad = tmp_path / "renamed.json"
    bad.write_text(json.dumps(g))
    before = snapshot(run_copy)
    fails(["finetune", "--output", run_copy, "--genotype", str(bad)], capsys,
          "inputs", "feature_")
    assert snapshot(run_copy) == before


# -- steps out of order -----------------------------------------------------

@pytest.mark.parametrize("command", ["pretrain", "finetune", "evaluate", "export"])
def test_step_on_an_empty_directory(command, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    fails([command, "--output", str(empty)], capsys, "config.json", "not found",
          "ssnas run", "ssnas search")
    assert os.listdir(empty) == []
    missing = str(tmp_path / "missing")
    fails([command, "--output", missing], capsys, "ssnas search")
    assert not os.path.exists(missing)


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_step_before_finetune(command, finished, tmp_path, capsys):
    d = copy_run(finished, tmp_path / "run", skip=("classifier.keras", "export"))
    before = snapshot(d)
    fails([command, "--output", d], capsys, "classifier.keras", "ssnas finetune")
    assert snapshot(d) == before


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_step_before_search(command, finished, tmp_path, capsys):
    d = copy_run(finished, tmp_path / "run", skip=("genotype.json",))
    before = snapshot(d)
    fails([command, "--output", d], capsys, "genotype.json", "ssnas search")
    assert snapshot(d) == before


@pytest.mark.parametrize("text, needles", [
    ("{not json", ["config.json", "malformed JSON"]),
    ('{"dataset": "mfeat", "colour": 3}', ["config.json", "colour"]),
    ('{"label_fraction": 0}', ["--label-fraction"]),
])
def test_corrupt_config_json(text, needles, run_copy, capsys):
    with open(os.path.join(run_copy, "config.json"), "w") as f:
        f.write(text)
    before = snapshot(run_copy)
    fails(["evaluate", "--output", run_copy], capsys, *needles)
    assert snapshot(run_copy) == before


# -- settings checked before a run touches anything -------------------------

@pytest.mark.parametrize("flags, needle", [
    (["--num-cells", "0"], "num_cells"),
    (["--num-cells", "2", "--multiplier", "3"], "multiplier"),
    (["--num-steps", "0"], "num_steps"),
    (["--channels", "0"], "channels"),
    (["--length", "0"], "length"),
    (["--length", "5"], "--length 5"),  # pix maps need a square grid
    (["--backbone-width", "0"], "backbone_width"),
    (["--finetune-batch-size", "0"], "finetune_batch_size"),
    (["--temperature", "0"], "temperature"),
])
def test_bad_search_space_settings_leave_a_finished_run_untouched(
        flags, needle, run_copy, capsys):
    before = snapshot(run_copy)
    fails(["run", "--output", run_copy, "--overwrite", *TINY_FLAGS, *flags], capsys, needle)
    assert snapshot(run_copy) == before


def test_results_record_the_genotype_the_classifier_was_built_from(run_copy, finished, tmp_path):
    with open(os.path.join(finished, "genotype.json")) as f:
        g = json.load(f)
    for step in g["steps"]:
        step["inner_steps"] = ["sum"] * len(step["inner_steps"])
    other = tmp_path / "other.json"
    other.write_text(json.dumps(g))
    os.remove(os.path.join(run_copy, "encoder.keras"))  # pretrained for genotype.json
    assert exit_code(["finetune", "--output", run_copy, "--genotype", str(other)]) == 0
    assert exit_code(["evaluate", "--output", run_copy]) == 0
    with open(os.path.join(run_copy, "results.json")) as f:
        recorded = json.load(f)["genotype"]
    assert [s["inner_steps"] for s in recorded["steps"]] == [s["inner_steps"] for s in g["steps"]]


def test_run_files_are_readable_like_plainly_written_files(finished):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "results.json", "genotype.json", "classifier.keras"):
        mode = os.stat(os.path.join(finished, name)).st_mode & 0o777
        assert mode == 0o666 & ~umask, (name, oct(mode))


def test_overwrite_clears_the_previous_runs_artifacts(run_copy):
    from ssnas_tf.workflow.config import RunConfig
    from ssnas_tf.workflow.run import STEP_ARTIFACTS, Run
    assert os.path.exists(os.path.join(run_copy, "encoder.keras"))
    Run(run_copy, RunConfig(seed=5)).start(overwrite=True)
    left = [name for name in STEP_ARTIFACTS if os.path.exists(os.path.join(run_copy, name))]
    assert left == []
    with open(os.path.join(run_copy, "config.json")) as f:
        assert json.load(f)["seed"] == 5


@pytest.mark.parametrize("failing", ["splits.json", "config.json"])
def test_interrupted_start_never_pairs_a_new_config_with_old_artifacts(
        failing, run_copy, monkeypatch):
    """`start` removes the previous run's artifacts before it writes anything:
    interrupted at any write, the directory holds no old artifact beside a new
    config.json."""
    from ssnas_tf.workflow import run as run_module
    from ssnas_tf.workflow.config import RunConfig
    from ssnas_tf.workflow.run import STEP_ARTIFACTS, Run
    real = run_module.atomic_write_text

    def crash_on(path, text):
        if os.path.basename(path) == failing:
            raise KeyboardInterrupt
        return real(path, text)
    monkeypatch.setattr(run_module, "atomic_write_text", crash_on)
    old_config = _bytes(os.path.join(run_copy, "config.json"))
    with pytest.raises(KeyboardInterrupt):
        Run(run_copy, RunConfig(seed=5)).start(overwrite=True)
    config = os.path.join(run_copy, "config.json")
    left = [n for n in STEP_ARTIFACTS if os.path.exists(os.path.join(run_copy, n))]
    if left:
        assert os.path.exists(config) and _bytes(config) == old_config, left
    assert not os.path.exists(config) or _bytes(config) == old_config


# -- the data must be the data the run's splits were drawn from ---------------

def _swap_two_labels(ds):
    import dataclasses
    labels = ds.labels.copy()
    a = 0
    b = int(np.flatnonzero(labels != labels[a])[0])
    labels[[a, b]] = labels[[b, a]]
    return dataclasses.replace(ds, labels=labels)


@pytest.mark.parametrize("change, needles", [
    (_swap_two_labels, ["labels changed"]),
    (lambda ds: ds.subset(np.arange(1, ds.num_samples)), ["number of samples 2000 -> 1999"]),
])
@pytest.mark.parametrize("command", ["finetune", "evaluate", "export"])
def test_changed_data_stops_a_later_step(command, change, needles, run_copy, monkeypatch,
                                         capsys):
    from ssnas_tf.workflow import run as run_module
    real = run_module.load_dataset
    monkeypatch.setattr(run_module, "load_dataset", lambda *a, **k: change(real(*a, **k)))
    before = snapshot(run_copy)
    fails([command, "--output", run_copy], capsys, os.path.join(run_copy, "splits.json"),
          "not the data this run's splits were drawn from", *needles)
    assert snapshot(run_copy) == before


def test_later_steps_read_splits_json(run_copy):
    """evaluate scores the test samples splits.json lists, not recomputed ones."""
    path = os.path.join(run_copy, "splits.json")
    with open(path) as f:
        splits = json.load(f)
    splits["test"] = splits["test"][:120]
    with open(path, "w") as f:
        json.dump(splits, f)
    assert exit_code(["evaluate", "--output", run_copy]) == 0
    with open(os.path.join(run_copy, "results.json")) as f:
        assert json.load(f)["splits"]["test"] == 120


def test_splits_json_moving_test_samples_into_training(run_copy, capsys):
    path = os.path.join(run_copy, "splits.json")
    with open(path) as f:
        splits = json.load(f)
    splits["labeled"].append(splits["test"][0])
    with open(path, "w") as f:
        json.dump(splits, f)
    before = snapshot(run_copy)
    fails(["finetune", "--output", run_copy], capsys, path,
          "labeled shares samples with test")
    assert snapshot(run_copy) == before


def test_zero_epoch_settings_that_still_mean_something():
    from ssnas_tf.workflow.config import RunConfig
    assert RunConfig(method="supervised", pretrain_epochs=0).pretrain_epochs == 0
    assert RunConfig(contrastive_pretraining=False, pretrain_epochs=0).pretrain_epochs == 0
    assert RunConfig(backbone_epochs=0).backbone_epochs == 0
    config = RunConfig(backbones="reference", image_weights="random")
    assert config.image_weights == "random"


def test_export_onto_an_existing_version(run_copy, capsys):
    before = snapshot(run_copy)
    version_dir = os.path.join(run_copy, "export", "ssnas_mfeat", "1")
    fails(["export", "--output", run_copy, "--model-version", "1"], capsys,
          version_dir, "already exists")
    assert snapshot(run_copy) == before


# -- a bug is not a user error ------------------------------------------------

@pytest.mark.parametrize("error", [ValueError("internal shape mismatch"),
                                   KeyError("weights"), FileNotFoundError("tmp.bin")])
def test_internal_error_in_a_step_keeps_its_traceback(error, run_copy, monkeypatch, capsys):
    """An exception that is not the library's own (here raised inside
    `Run.evaluate`) is a bug: traceback kept, exit code 70, not 2."""
    from ssnas_tf.errors import INTERNAL_ERROR, USER_ERROR
    from ssnas_tf.workflow.run import Run

    def broken(self):
        raise error
    monkeypatch.setattr(Run, "evaluate", broken)
    code = exit_code(["evaluate", "--output", run_copy])
    err = capsys.readouterr().err
    assert code == INTERNAL_ERROR != USER_ERROR, err
    assert "Traceback (most recent call last)" in err and "in broken" in err, err
    assert type(error).__name__ in err and "internal error" in err
    assert "ssnas evaluate: error:" not in err


def test_library_errors_keep_their_old_names_and_bases():
    from ssnas_tf import errors
    from ssnas_tf.data import DataError
    from ssnas_tf.nas.genotypes import GenotypeError
    from ssnas_tf.serving.prune import PruneError
    from ssnas_tf.tuners.randomnet import ArchitectureError
    from ssnas_tf.workflow.checkpoint import CheckpointError
    from ssnas_tf.devices import DeviceError
    from ssnas_tf.workflow.experiment import ExperimentError
    from ssnas_tf.workflow.lock import RunLockedError
    from ssnas_tf.workflow.run import RunError
    for cls in (DataError, GenotypeError, PruneError, ArchitectureError, DeviceError,
                errors.ConfigError):
        assert issubclass(cls, errors.SsnasError) and issubclass(cls, ValueError)
    for cls in (RunError, RunLockedError, CheckpointError, ExperimentError):
        assert issubclass(cls, errors.SsnasError) and issubclass(cls, RuntimeError)
