"""RandomNet (ssnas_tf.tuners.randomnet / search): sampled architectures build,
train and round-trip through JSON; sampling is seeded; the tuner resumes."""

import collections
import json
import os

import keras
import numpy as np
import pytest

from ssnas_tf.data.base import MultimodalDataset
from ssnas_tf.tuners import search as rn_search
from ssnas_tf.tuners.randomnet import (ACTIVATIONS, OPS, ArchitectureError,
                                       architecture_from_json, architecture_to_json,
                                       build_randomnet, sample_architecture,
                                       validate_architecture)

KINDS = {"img": "image", "seq": "sequence", "vec": "vector"}
SHAPES = {"img": (8, 8, 1), "seq": (6,), "vec": (5,)}
CONVS = {"image": (keras.layers.Conv2D, keras.layers.SeparableConv2D),
         "sequence": (keras.layers.Conv1D, keras.layers.SeparableConv1D)}


def _batch(rng, n=4):
    return {"img": rng.uniform(size=(n, 8, 8, 1)).astype("float32"),
            "seq": rng.integers(0, 12, size=(n, 6)).astype("int32"),
            "vec": rng.normal(size=(n, 5)).astype("float32")}


def _tiny_dataset(n=48, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    vec = rng.normal(size=(n, 5)).astype("float32") + labels[:, None]
    img = rng.integers(0, 256, size=(n, 8, 8, 1)).astype("uint8")
    return MultimodalDataset("tiny", {"img": img, "vec": vec},
                             {"img": "image", "vec": "vector"}, labels,
                             [str(c) for c in range(classes)])


@pytest.mark.parametrize("seed", [0, 1, pytest.param(2, marks=pytest.mark.slow),
                                  pytest.param(3, marks=pytest.mark.slow)])
def test_sampled_architecture_builds_trains_and_round_trips(seed):
    arch = sample_architecture(KINDS, seed)
    assert architecture_from_json(architecture_to_json(arch)) == arch
    model = build_randomnet(arch, SHAPES, 3, vocab_sizes={"seq": 12})
    rng = np.random.default_rng(seed)
    x, y = _batch(rng), rng.integers(0, 3, size=4)
    assert tuple(model(x).shape) == (4, 3)
    model.compile(keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(x, y)
    changed = [not np.allclose(a, w.numpy()) for a, w in zip(before, model.trainable_weights)]
    assert any(changed)
    # every modality is read; the model holds exactly the sampled convolutions,
    # once per stacked cell up to the deepest cell the fusion reads
    for m in ("img", "seq"):
        spec = arch["modalities"][m]
        deepest = max(c for layer in arch["fusion"] for n, c in layer["reads"] if n == m)
        convs = sum(not layer["op"].endswith("pool") for layer in spec["cell"])
        built = [l for l in model.layers if l.name.startswith(f"{m}_cell")
                 and isinstance(l, CONVS[spec["kind"]])]
        assert len(built) == convs * (deepest + 1)
    assert len([l for l in model.layers if l.name.startswith("fusion")
                and isinstance(l, keras.layers.Dense)]) == len(arch["fusion"])


def test_sampling_is_reproducible_from_the_seed():
    assert sample_architecture(KINDS, 11) == sample_architecture(KINDS, 11)
    draws = {architecture_to_json(sample_architecture(KINDS, s)) for s in range(5)}
    assert len(draws) == 5


def test_sampling_covers_the_space_with_bernoulli_skips():
    ops, acts, skips, possible = collections.Counter(), collections.Counter(), 0, 0
    reads, fusion_possible = 0, 0
    for s in range(150):
        arch = sample_architecture({"a": "image", "b": "vector"}, s)
        for spec in arch["modalities"].values():
            assert len(spec["cell"]) == 5 and spec["num_cells"] == 3
            for l, layer in enumerate(spec["cell"], start=1):
                ops[layer["op"]] += 1
                acts[layer["activation"]] += 1
                skips += len(layer["skips"])
                possible += l - 1
        for d, layer in enumerate(arch["fusion"], start=2):
            if d > 2:  # layer 1 is forced to read a cell when its draw reads none
                reads += len(layer["reads"])
                fusion_possible += 2 * min(d - 1, 3)
    assert set(ops) == set(OPS) and set(acts) == set(ACTIVATIONS)
    assert 0.4 < skips / possible < 0.6  # p = 0.5
    assert 0.4 < reads / fusion_possible < 0.6  # Bernoulli(0.5) connections


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a["fusion"][0].update(reads=[["img", 1]]), r"fusion\[0\].reads: no cell 1"),
    (lambda a: a["modalities"]["img"]["cell"][0].update(op="conv7x7"), r"cell\[0\].op"),
    (lambda a: a["modalities"]["img"]["cell"][1].update(skips=[1]), r"cell\[1\].skips"),
    (lambda a: a["modalities"]["vec"].update(kind="graph"), "RandomNet works on raw"),
    (lambda a: a.update(format="other"), "format"),
])
def test_bad_architectures_are_refused(mutate, message):
    arch = sample_architecture(KINDS, 0)
    mutate(arch)
    with pytest.raises(ArchitectureError, match=message):
        validate_architecture(arch)


def test_architecture_json_errors_name_the_source():
    with pytest.raises(ArchitectureError, match="arch.json: malformed JSON"):
        architecture_from_json("{", source="arch.json")
    with pytest.raises(ArchitectureError, match="arch.json: malformed architecture"):
        architecture_from_json(json.dumps({"format": "ssnas_tf.randomnet/1",
                                           "modalities": {"a": 3}}), source="arch.json")


def _trial_files(directory):
    project = os.path.join(directory, rn_search.PROJECT)
    out = {}
    for name in sorted(os.listdir(project)):
        path = os.path.join(project, name, "trial.json")
        if os.path.exists(path):
            with open(path) as f:
                out[name] = f.read()
    return out


@pytest.mark.slow
def test_tuner_resumes_without_repeating_trials(tmp_path, monkeypatch):
    fits = []
    original = rn_search.RandomNetHyperModel.fit

    def counting_fit(self, hp, *args, **kwargs):
        fits.append(hp.get("architecture_seed"))
        return original(self, hp, *args, **kwargs)

    monkeypatch.setattr(rn_search.RandomNetHyperModel, "fit", counting_fit)
    data = _tiny_dataset()
    train, valid = np.arange(0, 48, 2), np.arange(1, 48, 2)
    tuner = rn_search.randomnet_search(data, train, valid, str(tmp_path), trials=2,
                                       batch_size=8, trial_fraction=0.5,
                                       min_trial_steps=1)
    assert len(fits) == 2
    first = _trial_files(str(tmp_path))
    assert len(first) == 2
    tuner = rn_search.randomnet_search(data, train, valid, str(tmp_path), trials=3,
                                       batch_size=8, trial_fraction=0.5,
                                       min_trial_steps=1)
    assert len(fits) == 3 and fits[2] not in fits[:2]
    after = _trial_files(str(tmp_path))
    assert len(after) == 3
    assert all(after[name] == text for name, text in first.items())  # untouched
    best = rn_search.best_trial(tuner)
    scores = [t.score for t in tuner.oracle.trials.values()]
    assert best.score == max(scores)


@pytest.mark.slow
def test_cli_randomnet_run_resumes_and_exports(tmp_path, capsys):
    from ssnas_tf.cli import main
    from ssnas_tf.serving.export import load_exported
    d = str(tmp_path / "run")
    # Two of mfeat's six views (an image and a vector): a third of the layers
    # to trace in every trial; the CLI path is the same.
    flags = ["--method", "randomnet", "--output", d, "--finetune-epochs", "1",
             "--label-fraction", "0.2", "--trial-fraction", "0.5", "--trial-min-steps", "1",
             "--dataset-option", 'views=["fou", "pix"]']
    assert main(["run", "--trials", "2", *flags]) == 0
    with open(os.path.join(d, "results.json")) as f:
        results = json.load(f)
    project = os.path.join(d, rn_search.PROJECT)
    trials = {}
    for name in os.listdir(project):
        if name.startswith("trial_"):
            with open(os.path.join(project, name, "trial.json")) as f:
                trial = json.load(f)
            trials[trial["trial_id"]] = trial
    best = max(trials.values(), key=lambda t: t["score"])
    with open(os.path.join(d, "randomnet_architecture.json")) as f:
        arch = json.load(f)
    from ssnas_tf.data import load_dataset
    kinds = load_dataset("mfeat", views=("fou", "pix")).kinds
    assert list(kinds) == ["fou", "pix"]
    seed = best["hyperparameters"]["values"]["architecture_seed"]
    assert arch == sample_architecture(kinds, seed, normalization=True)  # the default
    assert results["search_best_trial"] == best["trial_id"] and results["search_trials"] == 2
    assert 0 <= results["weighted_f1"] <= 1 and results["architecture"] == arch
    assert os.path.getsize(os.path.join(d, "randomnet_architecture.svg")) > 0
    with open(os.path.join(results["export_dir"], "serving_info.json")) as f:
        assert json.load(f)["provenance"]["architecture"] == arch
    served = load_exported(results["export_dir"]).signatures["serving_default"]
    assert set(served.structured_input_signature[1]) == set(kinds)
    with open(os.path.join(results["export_dir"], "serving_info.json")) as f:
        provenance = json.load(f)["provenance"]
    assert provenance["architecture"] == arch and "genotype" not in provenance
    # a rerun with a larger budget trains only the new trial
    assert main(["run", "--trials", "3", "--overwrite", *flags]) == 0
    with open(os.path.join(d, "results.json")) as f:
        assert json.load(f)["search_trials"] == 3
    # other settings must not resume these trials; nothing is cleared
    capsys.readouterr()
    assert main(["run", "--trials", "3", "--overwrite", "--seed", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert "holds the trials of a search with other settings (seed)" in err
    assert os.path.exists(os.path.join(d, "results.json"))


def _event_records(directory):
    """(tag, plugin name, scalar or None) of every summary under `directory`."""
    import tensorflow as tf
    from tensorboard.util import tensor_util
    records = []
    for folder, _, files in os.walk(directory):
        for name in files:
            if not name.startswith("events.out.tfevents"):
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                for value in event.summary.value:
                    plugin = value.metadata.plugin_data.plugin_name
                    scalar = (float(tensor_util.make_ndarray(value.tensor))
                              if value.HasField("tensor") and plugin == "scalars" else None)
                    records.append((os.path.relpath(folder, directory), value.tag,
                                    plugin, scalar))
    return records


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_tuner_trials_log_hparams_and_their_score_to_tensorboard(tmp_path):
    """A TensorBoard callback gives each trial its own log folder with the
    HParams session (its architecture seed) and the trial's objective, equal
    to the score the oracle recorded."""
    import keras
    data = _tiny_dataset()
    train, valid = np.arange(0, 48, 2), np.arange(1, 48, 2)
    logs = str(tmp_path / "tb")
    tuner = rn_search.randomnet_search(
        data, train, valid, str(tmp_path), trials=2, batch_size=8, trial_fraction=0.5,
        min_trial_steps=1,
        callbacks=[keras.callbacks.TensorBoard(logs)])
    records = _event_records(logs)
    for trial_id, trial in tuner.oracle.trials.items():
        mine = [r for r in records if r[0].split(os.sep)[0] == trial_id]
        assert any(plugin == "hparams" for _, _, plugin, _ in mine), trial_id
        scores = [s for _, tag, _, s in mine if tag == "val_weighted_f1"]
        assert scores == [pytest.approx(trial.score, abs=1e-6)], (trial_id, mine)
        assert any(tag.startswith("epoch_loss") for _, tag, _, _ in mine)


def test_raw_text_becomes_a_token_sequence_from_the_training_vocabulary(tmp_path):
    """A raw-text modality (clipart's titles): the vocabulary comes from the
    training rows only, the model reads strings, trains a step, and a short
    RandomNet search runs on it."""
    rng = np.random.default_rng(0)
    n = 40
    labels = np.arange(n) % 2
    words = np.array(["red apple", "blue sky"])
    text = np.array([f"{words[y]} item{i}" for i, y in enumerate(labels)], dtype=object)
    text[-1] = "unseenword only here"  # not a training row
    data = MultimodalDataset("texty", {"title": text,
                                       "vec": rng.normal(size=(n, 3)).astype("float32")},
                             {"title": "text", "vec": "vector"}, labels, ["a", "b"])
    train, valid = np.arange(0, 30), np.arange(30, n)
    shapes, stats, vocab = rn_search.model_inputs_info(data, train)
    assert {"red", "apple", "blue", "sky"} <= set(vocab["title"])
    assert "unseenword" not in vocab["title"]  # from the training rows only
    arch = sample_architecture(data.kinds, 3)
    assert arch["modalities"]["title"]["kind"] == "text"
    model = build_randomnet(arch, shapes, 2, stats, vocab)
    x = {"title": np.asarray(text[:4], dtype=str), "vec": data.inputs["vec"][:4]}
    assert tuple(model(x).shape) == (4, 2)
    model.compile(keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.get_layer("title_embed").get_weights()[0].copy()
    model.train_on_batch(x, labels[:4])
    assert not np.allclose(before, model.get_layer("title_embed").get_weights()[0])
    tuner = rn_search.randomnet_search(data, train, valid, str(tmp_path), trials=1,
                                       batch_size=8, trial_fraction=1.0,
                                       min_trial_steps=1)
    assert rn_search.best_trial(tuner).score is not None


def test_precise_batch_norm_sets_the_mean_of_the_batch_statistics():
    """After `precise_batch_norm` every BN layer holds the average of its
    input's per-batch mean and variance (training mode); on one repeated
    batch, inference then equals the training-mode forward pass."""
    import tensorflow as tf
    from ssnas_tf.tuners.randomnet import precise_batch_norm
    arch = sample_architecture({"img": "image", "vec": "vector"}, 3, normalization=True)
    keras.utils.set_random_seed(0)
    model = build_randomnet(arch, {"img": (8, 8, 1), "vec": (5,)}, 3)
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) >= 2
    rng = np.random.default_rng(0)
    batches = [({"img": rng.uniform(size=(6, 8, 8, 1)).astype("float32") * (i + 1),
                 "vec": rng.normal(size=(6, 5)).astype("float32") + i},
                np.zeros(6, "int64")) for i in range(3)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches), output_signature=(
            {"img": tf.TensorSpec((6, 8, 8, 1)), "vec": tf.TensorSpec((6, 5))},
            tf.TensorSpec((6,), tf.int64)))
    assert precise_batch_norm(model, dataset, num_batches=5) == len(norms)
    # read before the training-mode probe below moves the averages again
    set_to = [(l.moving_mean.numpy(), l.moving_variance.numpy()) for l in norms]
    probe = keras.Model(model.inputs, [l.input for l in norms])
    outputs = [probe(x, training=True) for x, _ in batches]
    for k, (mean, variance) in enumerate(set_to):
        inputs = [np.asarray(out[k]) for out in outputs]
        axes = tuple(range(inputs[0].ndim - 1))
        np.testing.assert_allclose(mean,
                                   np.mean([h.mean(axes) for h in inputs], 0),
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(variance,
                                   np.mean([h.var(axes) for h in inputs], 0),
                                   rtol=1e-4, atol=1e-6)
    one = tf.data.Dataset.from_tensors(batches[0]).repeat()
    precise_batch_norm(model, one, num_batches=2)
    x = batches[0][0]
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               model(x, training=True).numpy(), rtol=1e-3, atol=1e-4)
    plain = build_randomnet(sample_architecture({"vec": "vector"}, 3), {"vec": (5,)}, 3)
    assert precise_batch_norm(plain, one) == 0
