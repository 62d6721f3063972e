"""Fixed fusion baselines (ssnas_tf.nas.presets): every preset validates and
builds, has the structure its name promises, and the CLI runs `--method fixed`
and `finetune --genotype preset:NAME`."""

import json
import os

import numpy as np
import pytest

from ssnas_tf.backbones import build_backbones
from ssnas_tf.cli import main
from ssnas_tf.data import load_dataset
from ssnas_tf.nas.genotypes import Genotype, GenotypeError
from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.nas.presets import (PRESETS, modality_groups, parse_preset_spec,
                                  preset_genotype)

C, L = 8, 4
TWO = ("image_1", "image_2", "text_1", "text_2")


@pytest.fixture(scope="module")
def mfeat_features():
    """The small backbones' mfeat features of four samples."""
    data = load_dataset("mfeat")
    backbones = build_backbones(data, np.arange(40), width=8)
    from ssnas_tf.data.pipelines import to_model_inputs
    x = to_model_inputs({k: v[:4] for k, v in data.inputs.items()}, data.kinds)
    return {k: np.asarray(v) for k, v in backbones(x).items()}


def _two_modality_features(rng):
    return {"image_1": rng.normal(size=(4, 6, 6, 3)).astype("float32"),
            "image_2": rng.normal(size=(4, 3, 3, 5)).astype("float32"),
            "text_1": rng.normal(size=(4, 7)).astype("float32"),
            "text_2": rng.normal(size=(4, 9)).astype("float32")}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_on_mfeat(name, mfeat_features):
    genotype = preset_genotype(name, list(mfeat_features))
    genotype.validate()
    assert Genotype.from_json(genotype.to_json()) == genotype
    out = DerivedNetwork(genotype, channels=C, length=L)(mfeat_features)
    assert tuple(out.shape) == (4, L * len(genotype.concat) * C)
    assert np.all(np.isfinite(np.asarray(out)))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_on_two_modalities(name):
    features = _two_modality_features(np.random.default_rng(0))
    genotype = preset_genotype(name, TWO)
    out = DerivedNetwork(genotype, channels=C, length=L)(features)
    assert tuple(out.shape) == (4, L * len(genotype.concat) * C)


def test_late_fusion_pairs_the_last_feature_of_each_modality():
    names = ["fou_1", "fou_2", "fac_1", "fac_2", "pix_1", "pix_2"]
    g = preset_genotype("late", names)
    # odd modality count: the third pairs with the first; all cells are output
    assert [g.cell_inputs(c) for c in range(g.num_cells)] == [(1, 3), (5, 1)]
    assert g.concat == (6, 7)
    assert set(g.used_inputs) == {"fou_2", "fac_2", "pix_2"}
    assert all(s.inner_steps == ("concat_fc",) for s in g.steps)


def test_chain_presets_read_every_modality_once():
    names = ["a_1", "a_2", "b_1", "c_1", "c_2"]
    for name in ("sum", "concat_fc", "mha", "aoa"):
        g = preset_genotype(name, names)
        # cell 1 fuses a_2 and b_1; cell 2 fuses cell 1 and c_2; cell 2 is the output
        assert [g.cell_inputs(c) for c in range(g.num_cells)] == [(1, 2), (5, 4)]
        assert g.concat == (6,)
        assert g.live_cells == (0, 1)


def test_cell_insides_match_bm_nas_figure_2():
    mha = preset_genotype("mha", TWO).steps[0]
    assert mha.inner_steps == ("attention", "attention")
    assert [e[1] for e in mha.inner_edges] == [0, 1, 0, 1]  # both heads on (x, y)
    assert mha.inner_concat == (2, 3)
    aoa = preset_genotype("aoa", TWO).steps[0]
    assert aoa.inner_steps == ("attention", "linear_glu")
    # step 2 gates the attention output (node 2) with the query x (node 0)
    assert [e[1] for e in aoa.inner_edges] == [0, 1, 2, 0]
    assert aoa.inner_concat == (3,)
    assert preset_genotype("sum", TWO).steps[0].inner_steps == ("sum",)


def test_random_preset_is_seeded():
    names = [f"m{m}_{i}" for m in range(5) for i in (1, 2)]
    draws = {preset_genotype("random", names, seed=s).to_json() for s in range(6)}
    assert len(draws) > 1  # the seed changes the selection
    assert (preset_genotype("random", names, seed=3)
            == preset_genotype("random", names, seed=3))
    g = preset_genotype("random", names, seed=3)
    pairs = [g.cell_inputs(c) for c in range(g.num_cells)]
    assert len(set(pairs)) == len(pairs)  # no pair twice
    read = {i for p in pairs for i in p}
    assert set(g.concat) == {len(names) + c for c in range(g.num_cells)} - read


def test_single_modality_and_single_feature():
    assert preset_genotype("late", ["x_1", "x_2"]).cell_inputs(0) == (0, 1)
    assert preset_genotype("aoa", ["x"]).cell_inputs(0) == (0, 0)
    assert preset_genotype("random", ["x"]).cell_inputs(0) == (0, 0)


def test_explicit_modalities_override_the_name_rule():
    names = ["rgb", "depth", "audio"]
    assert modality_groups(names) == [[0], [1], [2]]
    groups = modality_groups(names, {"rgb": "video", "depth": "video", "audio": "audio"})
    assert groups == [[0, 1], [2]]
    with pytest.raises(GenotypeError, match="'audio' has no modality"):
        modality_groups(names, {"rgb": "v", "depth": "v"})


@pytest.mark.parametrize("spec, message", [
    ("preset:nope", "unknown fusion preset 'nope'; known: late, sum"),
    ("preset:random:x", "must be an integer, got 'x'"),
    ("aoa", "a preset is written 'preset:NAME'"),
])
def test_preset_spec_errors(spec, message):
    with pytest.raises(GenotypeError, match=message):
        parse_preset_spec(spec)


def test_preset_spec_parsing():
    assert parse_preset_spec("preset:aoa", default_seed=7) == ("aoa", 7)
    assert parse_preset_spec("preset:random:3") == ("random", 3)
    with pytest.raises(GenotypeError, match="unknown fusion preset 'zzz'"):
        preset_genotype("zzz", TWO)
    with pytest.raises(GenotypeError, match="no backbone features"):
        preset_genotype("late", [])


TINY = ["--backbone-epochs", "0", "--finetune-epochs", "1", "--backbone-width", "8",
        "--channels", "8", "--length", "4", "--label-fraction", "0.2"]


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_cli_fixed_method_and_finetune_preset(tmp_path, capsys):
    d = str(tmp_path / "run")
    assert main(["run", "--method", "fixed", "--fusion", "aoa", "--output", d, *TINY]) == 0
    with open(os.path.join(d, "results.json")) as f:
        results = json.load(f)
    features = ["fou_1", "fou_2", "fac_1", "fac_2", "kar_1", "kar_2", "pix_1", "pix_2",
                "zer_1", "zer_2", "mor_1", "mor_2"]
    assert Genotype.load(os.path.join(d, "genotype.json")) == preset_genotype("aoa", features)
    assert results["method"] == "fixed" and results["fusion"] == "aoa"
    assert results["genotype"] == preset_genotype("aoa", features).to_dict()
    assert os.path.isdir(results["export_dir"])
    # any run can fine-tune a preset instead of its own genotype
    assert main(["finetune", "--output", d, "--genotype", "preset:sum"]) == 0
    built = Genotype.load(os.path.join(d, "classifier_genotype.json"))
    assert built == preset_genotype("sum", features)
    capsys.readouterr()
    assert main(["finetune", "--output", d, "--genotype", "preset:best"]) == 2
    err = capsys.readouterr().err
    assert "ssnas finetune: error: --genotype 'preset:best': unknown fusion preset" in err
    # the failed call left the earlier classifier's genotype alone
    assert Genotype.load(os.path.join(d, "classifier_genotype.json")) == built
