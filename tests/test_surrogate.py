"""The MFAS-style surrogate search (ssnas_tf.tuners.surrogate): the declared
space is the genotype space, every point of it is a valid genotype, and a
tiny search on mfeat finishes, resumes and keeps the best trial's genotype."""

import json
import os

import keras_tuner
import numpy as np
import pytest

from ssnas_tf.nas.genotypes import Genotype
from ssnas_tf.tuners.surrogate import declare_genotype_space, genotype_from_values

NAMES = ("a_1", "a_2", "b_1", "b_2")


def test_space_holds_every_cell_pair_and_inner_edge():
    hp = keras_tuner.HyperParameters()
    declare_genotype_space(hp, 4, num_cells=2, num_steps=2,
                           primitives=("zero", "sum", "attention"))
    space = {p.name: p.values for p in hp.space}
    assert len(space["cell1_inputs"]) == 6   # C(4, 2)
    assert len(space["cell2_inputs"]) == 10  # C(5, 2): cell 2 may read cell 1
    assert space["cell1_step1_inputs"] == ["0,1", "1,0"]  # ordered: x or y as query
    assert len(space["cell1_step2_inputs"]) == 6  # ordered pairs of x, y, Step_1
    assert space["cell2_step2_op"] == ["sum", "attention"]  # Zero is never derived
    with pytest.raises(ValueError, match="besides 'zero'"):
        declare_genotype_space(keras_tuner.HyperParameters(), 4, 1, 1, ("zero",))


def test_every_sampled_point_is_a_valid_genotype():
    rng = np.random.default_rng(0)
    hp = keras_tuner.HyperParameters()
    declare_genotype_space(hp, 4, 3, 2, ("sum", "attention", "linear_glu", "concat_fc"))
    for _ in range(30):
        values = {p.name: p.values[rng.integers(len(p.values))] for p in hp.space}
        g = genotype_from_values(values, NAMES, 3, 2, multiplier=2, node_multiplier=1)
        assert Genotype.from_json(g.to_json()) == g
        assert g.cell_inputs(2) == tuple(int(i) for i in values["cell3_inputs"].split(","))
        assert g.steps[1].inner_steps == (values["cell2_step1_op"], values["cell2_step2_op"])
        assert g.concat == (5, 6) and g.steps[0].inner_concat == (3,)


@pytest.mark.slow
def test_cli_surrogate_search_resumes_and_keeps_the_best_trial(tmp_path):
    from ssnas_tf.cli import main
    d = str(tmp_path / "run")
    flags = ["--method", "surrogate", "--output", d, "--epochs", "1",
             "--backbone-epochs", "0", "--finetune-epochs", "1", "--backbone-width", "8",
             "--channels", "8", "--length", "4", "--num-cells", "2", "--num-steps", "1",
             "--label-fraction", "0.3"]
    assert main(["search", "--trials", "2", *flags]) == 0
    assert main(["run", "--trials", "3", "--overwrite", *flags]) == 0
    project = os.path.join(d, "surrogate_tuner")
    trials = []
    for name in sorted(os.listdir(project)):
        if name.startswith("trial_"):
            with open(os.path.join(project, name, "trial.json")) as f:
                trials.append(json.load(f))
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    best = max(trials, key=lambda t: t["score"])
    with open(os.path.join(d, "results.json")) as f:
        results = json.load(f)
    genotype = Genotype.load(os.path.join(d, "genotype.json"))
    names = list(genotype.inputs)
    assert genotype == genotype_from_values(best["hyperparameters"]["values"], names,
                                            2, 1, 2, 1)
    assert results["search_best_trial"] == best["trial_id"]
    assert results["search_trials"] == 3 and results["method"] == "surrogate"
    assert results["genotype"] == genotype.to_dict()
    assert os.path.isdir(results["export_dir"])


def test_surrogate_trials_log_hparams_with_tensorboard(tmp_path):
    """Run(..., tensorboard=True): each surrogate trial gets TensorBoard logs
    with its HParams and the objective the oracle recorded."""
    from ssnas_tf.workflow.baselines import open_run
    from ssnas_tf.workflow.config import RunConfig
    from test_randomnet import _event_records
    config = RunConfig(method="surrogate", trials=1, search_epochs=1, backbone_epochs=0,
                       backbone_width=8, channels=8, num_cells=1, num_steps=1,
                       multiplier=1, label_fraction=0.3,
                       dataset_options={"views": ["fou", "mor"]})
    run = open_run(str(tmp_path / "run"), config, verbose=0, tensorboard=True)
    run.start()
    results = run.search()
    records = _event_records(os.path.join(run.directory, "tensorboard", "search"))
    trial = results["search_best_trial"]
    mine = [r for r in records if r[0].split(os.sep)[0] == trial]
    assert any(plugin == "hparams" for _, _, plugin, _ in mine)
    assert [s for _, tag, _, s in mine if tag == "val_weighted_f1"] == [
        pytest.approx(results["search_best_score"], abs=1e-6)]
