"""RandomNet's random search on keras-tuner.

The hyperparameter space is one integer, `architecture_seed`, from which
`randomnet.sample_architecture` draws the whole network. Drawing the ops,
skips and fusion connections from the seed (instead of declaring each as a
`hp.Choice`) keeps the draw uniform over RandomNet's conditional space:
keras-tuner gives a conditional hyperparameter its default value in the first
trial that meets it, which would bias a random search.

Each trial trains its model for S steps with Adam and is scored by weighted
F1 on the validation samples. S shows a `trial_fraction` of the training
samples (the paper's 10%), but is at least `MIN_TRIAL_STEPS`: on a few hundred
samples 10% is one or two steps, after which every network is still at chance
and the scores rank nothing (`trial_steps`). Trials live under `<directory>/<project_name>` and a
rerun resumes there (`overwrite=False`): finished trials are not trained
again, and a larger `trials` adds only the missing ones. With keras-tuner's
`KERASTUNER_TUNER_ID` / `KERASTUNER_ORACLE_IP` / `KERASTUNER_ORACLE_PORT`
set, the same call runs as the chief (serving the oracle) or as a worker.

Reference: Alletto et al., RandomNet (`docs/fidelity.md`).
"""

import math

import keras
import keras_tuner
import numpy as np

from ssnas_tf.data.pipelines import labeled_batches, model_inputs
from ssnas_tf.optimizers import Adam, build_optimizer
from ssnas_tf.tasks import Task
from ssnas_tf.tuners.randomnet import build_randomnet, precise_batch_norm, sample_architecture
from ssnas_tf.tuners.trial_logs import fit_callbacks, log_objective

OBJECTIVE = keras_tuner.Objective("val_weighted_f1", direction="max")
# Fewest steps a trial trains: enough for a normalised network to leave chance
# on the suite's datasets at Adam 1e-3 (docs: RandomNet).
MIN_TRIAL_STEPS = 30
MAX_SEED = 2**31 - 2
PROJECT = "randomnet_tuner"


def score_f1(model, x, y, task):
    """Weighted F1 of `model`'s predictions (inference mode).

    `x`: model inputs, arrays or (to stream them) a batched `tf.data.Dataset`
    such as `ssnas_tf.data.pipelines.model_inputs(dataset, index)`.
    """
    import tensorflow as tf
    batching = {} if isinstance(x, tf.data.Dataset) else {"batch_size": 256}
    return float(task.weighted_f1(y, task.probabilities(
        model.predict(x, verbose=0, **batching))))


def model_inputs_info(dataset, train_index):
    """Per-modality input shapes, statistics of the training rows (per feature
    of a vector, per channel of an image or spectrogram, on the model's [0, 1]
    scale) and vocabulary sizes (raw text: the training rows' vocabulary):
    what `build_randomnet` needs besides the architecture."""
    shapes, stats, vocab = {}, {}, {}
    for name, array in dataset.inputs.items():
        shapes[name] = tuple(array.shape[1:])
        kind = dataset.kinds[name]
        if kind in ("vector", "image", "spectrogram"):
            mean, var = _streamed_moments(array, train_index, kind)
            stats[name] = (mean.astype("float32"), np.maximum(var, 1e-12).astype("float32"))
        elif kind == "sequence":
            vocabulary = dataset.extras.get("vocabulary")
            largest = max(int(np.max(array[start:start + _CHUNK]))
                          for start in range(0, len(array), _CHUNK))
            vocab[name] = max(len(vocabulary) if vocabulary is not None else 0,
                              largest + 1)
        elif kind == "text":
            vocab[name] = text_vocabulary(array, train_index)
    return shapes, stats, vocab


_CHUNK = 256  # rows read at a time (the data may be on disk)


def _streamed_moments(array, index, kind="vector"):
    """Mean and (population) variance per last-axis entry of `array[index]`
    (per feature of a vector, per channel of an image or spectrogram on the
    model's [0, 1] scale), read `_CHUNK` rows at a time and merged with Chan
    et al.'s pairwise update."""
    count, mean, m2 = 0, 0.0, 0.0
    for start in range(0, len(index), _CHUNK):
        rows = np.asarray(array[index[start:start + _CHUNK]], dtype=np.float64)
        if kind != "vector" and array.dtype == np.uint8:
            rows = rows / 255.0  # the model's input scale (to_model_inputs)
        rows = rows.reshape(-1, rows.shape[-1])
        n, chunk_mean = len(rows), rows.mean(axis=0)
        chunk_m2 = ((rows - chunk_mean) ** 2).sum(axis=0)
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + chunk_m2 + delta ** 2 * count * n / total
        count = total
    return np.asarray(mean), np.asarray(m2 / count)


def text_vocabulary(texts, train_index):
    """The tokens of the training rows' text (at most
    `randomnet.TEXT_MAX_TOKENS`, most frequent first), standardised like the
    backbones' text."""
    import tensorflow as tf
    from ssnas_tf.backbones.layers import standardize_text
    from ssnas_tf.tuners.randomnet import TEXT_MAX_TOKENS
    vectorize = keras.layers.TextVectorization(max_tokens=TEXT_MAX_TOKENS,
                                               standardize=standardize_text)
    vectorize.adapt(tf.constant(np.asarray(texts)[train_index].astype(str)))
    return [t for t in vectorize.get_vocabulary() if t not in ("", "[UNK]")]


class RandomNetHyperModel(keras_tuner.HyperModel):
    """Builds and briefly trains one RandomNet architecture per trial.

    Args:
        kinds: modality -> kind.
        input_shapes, vector_stats, vocab_sizes: see `build_randomnet`.
        task: the `ssnas_tf.tasks.Task` (loss, probabilities, F1).
        learning_rate: Adam's rate. Defaults to 1e-3 (the paper's 1e-4 trains
            too slowly for a trial's few steps).
        normalization: sample architectures with normalisation
            (`sample_architecture`); their batch norm statistics are reset
            after training (`precise_batch_norm`). Defaults to True.
    """

    def __init__(self, kinds, input_shapes, task, learning_rate=1e-3,
                 vector_stats=None, vocab_sizes=None, normalization=True, **kwargs):
        super().__init__(**kwargs)
        self.kinds = dict(kinds)
        self.input_shapes = input_shapes
        self.task = task
        self.learning_rate = learning_rate
        self.vector_stats = vector_stats
        self.vocab_sizes = vocab_sizes
        self.normalization = normalization

    def declare_hyperparameters(self, hp):
        hp.Int("architecture_seed", 0, MAX_SEED)

    def architecture(self, hp):
        """The architecture of a trial's hyperparameters."""
        return sample_architecture(self.kinds, hp.Int("architecture_seed", 0, MAX_SEED),
                                   normalization=self.normalization)

    def build_model(self, arch):
        model = build_randomnet(arch, self.input_shapes, self.task.num_classes,
                                self.vector_stats, self.vocab_sizes)
        model.compile(Adam(self.learning_rate),
                      loss=self.task.keras_loss())
        build_optimizer(model)
        return model

    def build(self, hp):
        return self.build_model(self.architecture(hp))

    def fit(self, hp, model, train, steps, valid, callbacks=None, **kwargs):
        """Trains `steps` steps on `train`; returns {"val_weighted_f1": ...}.

        keras-tuner's checkpoint callbacks are not passed on: the best
        architecture is retrained from scratch afterwards, as in the paper.
        """
        model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
                  callbacks=fit_callbacks(callbacks))
        precise_batch_norm(model, train)  # no-op without batch norm
        x, y = valid
        score = score_f1(model, x, y, self.task)
        log_objective(callbacks, OBJECTIVE.name, score)
        return {OBJECTIVE.name: score}


def trial_steps(num_samples, batch_size, fraction, min_steps=MIN_TRIAL_STEPS):
    """S: steps that show `fraction` of `num_samples` samples, and at least
    `min_steps` (Defaults to `MIN_TRIAL_STEPS`)."""
    return max(min_steps, math.ceil(fraction * num_samples / min(batch_size, num_samples)))


def randomnet_tuner(hypermodel, directory, trials, seed, project_name=PROJECT):
    """A resuming `RandomSearch` over architecture seeds."""
    return keras_tuner.RandomSearch(
        hypermodel, objective=OBJECTIVE, max_trials=trials, seed=seed,
        directory=directory, project_name=project_name, overwrite=False)


def randomnet_search(dataset, train_index, valid_index, directory, trials, seed=0,
                     trial_fraction=0.1, batch_size=32, learning_rate=1e-3,
                     min_trial_steps=MIN_TRIAL_STEPS,
                     threshold=0.3, project_name=PROJECT, callbacks=None,
                     normalization=True):
    """Runs (or resumes) RandomNet's search; returns the tuner.

    Args:
        dataset: a `MultimodalDataset`.
        train_index, valid_index: rows each trial trains on and is scored on.
        directory: where the tuner's project folder goes.
        trials: E, the number of architectures in all (finished ones count).
        seed: seeds the draw of architecture seeds and the data order.
        trial_fraction: the share of `train_index` one trial sees.
        min_trial_steps: the fewest steps a trial trains. Defaults to
            `MIN_TRIAL_STEPS`.
        batch_size: Defaults to 32.
        learning_rate: Defaults to 1e-3.
        threshold: multi-label F1 threshold. Defaults to 0.3.
        project_name: Defaults to "randomnet_tuner".
        callbacks: Keras callbacks of every trial's training; a TensorBoard
            callback gets per-trial logs with HParams (`trial_logs`).
        normalization: see `RandomNetHyperModel`. Defaults to True.
    """
    shapes, stats, vocab = model_inputs_info(dataset, train_index)
    task = Task.for_dataset(dataset, threshold)
    hypermodel = RandomNetHyperModel(dataset.kinds, shapes, task, learning_rate,
                                     stats, vocab, normalization)
    tuner = randomnet_tuner(hypermodel, directory, trials, seed, project_name)
    train = labeled_batches(dataset, train_index, batch_size, seed, shuffle=True,
                            repeat=True)
    steps = trial_steps(len(train_index), batch_size, trial_fraction, min_trial_steps)
    # Validation inputs stream a batch at a time, like the main path's.
    x = model_inputs(dataset, valid_index)
    tuner.search(train, steps, (x, dataset.labels[valid_index]), verbose=0,
                 callbacks=list(callbacks or []))
    return tuner


def best_trial(tuner):
    """The finished trial with the highest validation weighted F1."""
    trials = tuner.oracle.get_best_trials(1)
    if not trials:
        raise RuntimeError(f"{tuner.project_dir}: no trial finished")
    return trials[0]
