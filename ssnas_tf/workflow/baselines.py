"""The baseline methods as `Run` subclasses over the same run directory.

* `fixed` (`FixedFusionRun`): no search; the `--fusion` preset genotype
  (`ssnas_tf.nas.presets`) over the run's backbone features is written as
  genotype.json, then the classifier is trained on the labeled split as in
  `supervised`.
* `surrogate` (`SurrogateRun`): MFAS-style model-based search, keras-tuner's
  Bayesian optimisation over BM-NAS genotypes (`ssnas_tf.tuners.surrogate`);
  the same artifacts as `supervised`.
* `randomnet` (`RandomNetRun`): RandomNet's random search over whole networks
  on raw inputs (`ssnas_tf.tuners.randomnet`); no backbones, no genotype.

Each method supplies its own step objects (`Run.STEPS`, see
`ssnas_tf.workflow.steps`) rather than overriding `Run`'s methods. Use
`open_run` to get the right class for a run directory's method.
"""

import json
import os
import time

import keras

from ssnas_tf.atomic import atomic_output, atomic_write_text
from ssnas_tf.data.pipelines import labeled_batches, model_inputs, steps_per_epoch
from ssnas_tf.nas.presets import preset_genotype
from ssnas_tf.optimizers import Adam, build_optimizer
from ssnas_tf.errors import RunError
from ssnas_tf.workflow.run import Run
from ssnas_tf.workflow.steps import Export, Step, _log, _summary

# RunConfig fields a tuner's finished trials depend on: a rerun that changes
# one of them must not resume the old trials.
TUNER_FIELDS = ("dataset", "data_dir", "dataset_options", "label_fraction", "seed",
                "test_fraction", "batch_size", "trial_fraction", "trial_min_steps",
                "randomnet_learning_rate", "randomnet_normalization", "threshold",
                "backbones", "backbone_width", "backbone_epochs", "image_weights",
                "channels", "length", "num_cells", "num_steps", "multiplier",
                "node_multiplier", "dropout", "primitives",
                "search_epochs", "learning_rate", "attention_dropout", "torch_defaults")


class PresetSearch(Step):
    """`fixed`'s search: writes the `config.fusion` preset genotype."""

    name = "search"

    def __call__(self, run):
        c = run.config
        start = time.perf_counter()
        if not os.path.exists(run.path("backbones.keras")):
            run.train_backbones()
        genotype = preset_genotype(c.fusion, run._backbone_features(),
                                   seed=run.seeds.child("search").seed("preset"))
        atomic_write_text(run.path("genotype.json"), genotype.to_json() + "\n")
        run._draw(genotype)
        _log(f"[ssnas] fixed fusion '{c.fusion}' (no search)\n" + _summary(genotype))
        return run._record(genotype=genotype.to_dict(), fusion=c.fusion,
                           search_criterion=f"none (preset '{c.fusion}')",
                           seconds={"search": round(time.perf_counter() - start, 1)})


class FixedFusionRun(Run):
    """A run whose "search" writes the `config.fusion` preset genotype."""

    STEPS = {**Run.STEPS, "search": PresetSearch}


def run_class(method):
    """The `Run` class of a method."""
    return {"fixed": FixedFusionRun, "surrogate": SurrogateRun,
            "randomnet": RandomNetRun}.get(method, Run)


def open_run(directory, config=None, verbose=2, **options):
    """A `Run` (or baseline subclass) for `directory`.

    Args:
        directory: the run directory.
        config: a `RunConfig` for a new run; None to read config.json.
        verbose: Keras progress output. Defaults to 2.
        **options: other `Run` arguments (`callbacks`, `tensorboard`).
    """
    if config is None:
        config = Run(directory, verbose=verbose).config
    return run_class(config.method)(directory, config, verbose=verbose, **options)



def check_tuner_settings(run, project_dir, write=True):
    """Refuses to resume a tuner project started with other settings.

    Called by `start` (before anything is cleared) and by `search`, which
    records the settings of a new project.
    """
    path = os.path.join(project_dir, "ssnas_settings.json")
    settings = json.loads(json.dumps({f: getattr(run.config, f) for f in TUNER_FIELDS}))
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        changed = sorted(k for k in set(saved) | set(settings)
                         if saved.get(k) != settings.get(k))
        if changed:
            raise RunError(
                f"{project_dir} holds the trials of a search with other settings "
                f"({', '.join(changed)}); delete it or choose another --output")
        return
    if write:
        os.makedirs(project_dir, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=2))


class _TunerRun(Run):
    """A run whose search is a keras-tuner project under the run directory."""

    PROJECT = None

    def _trial_callbacks(self):
        """Every trial's callbacks: the Run's own, and with `tensorboard` a
        TensorBoard callback (keras-tuner makes it per trial, with HParams)."""
        board = ([keras.callbacks.TensorBoard(self.path(os.path.join("tensorboard", "search")))]
                 if self.tensorboard else [])
        return list(self.callbacks) + board

    def start(self, overwrite=False):
        # Before `start` clears anything: a rerun resumes the project's trials.
        check_tuner_settings(self, self.path(self.PROJECT), write=False)
        return super().start(overwrite=overwrite)


class SurrogateSearch(Step):
    """MFAS-style search: Bayesian optimisation over genotypes (keras-tuner)."""

    name = "search"

    def __call__(self, run):
        from ssnas_tf.tuners import surrogate
        c, s = run.config, run.splits
        start = time.perf_counter()
        if not os.path.exists(run.path("backbones.keras")):
            run.train_backbones()
        check_tuner_settings(run, run.path(SurrogateRun.PROJECT))
        run._begin("search")
        _log(f"[ssnas] surrogate search: {c.trials} genotypes (Bayesian optimisation), "
             f"each trained {c.search_epochs} epochs on {len(s.search_train)} labeled "
             f"samples, scored by weighted F1 on {len(s.search_valid)}")
        tuner, features = surrogate.surrogate_search(
            run.dataset, run._frozen_backbones(), s.search_train, s.search_valid,
            run.directory, c, run.task, project_name=SurrogateRun.PROJECT,
            callbacks=run._trial_callbacks())
        trial = surrogate.best_trial(tuner)
        genotype = surrogate.trial_genotype(trial.hyperparameters, features, c)
        atomic_write_text(run.path("genotype.json"), genotype.to_json() + "\n")
        run._draw(genotype)
        _log(f"[ssnas] surrogate: best genotype from trial {trial.trial_id} "
             f"(weighted F1 {trial.score:.4f})\n" + _summary(genotype))
        return run._record(
            genotype=genotype.to_dict(), search_best_trial=trial.trial_id,
            search_trials=len(tuner.oracle.trials), search_best_score=trial.score,
            search_criterion="validation weighted F1 (higher is better)",
            seconds={"search": round(time.perf_counter() - start, 1)})


class SurrogateRun(_TunerRun):
    """MFAS-style search: Bayesian optimisation over genotypes (keras-tuner)."""

    PROJECT = "surrogate_tuner"
    STEPS = {**Run.STEPS, "search": SurrogateSearch}


class NoBackbones(Step):
    """RandomNet designs its own extractors on raw inputs: nothing to train."""

    name = "backbones"

    def __call__(self, run):
        _log("[ssnas] backbones: none (RandomNet designs its own extractors on raw inputs)")
        return run._record(seconds={"backbones": 0.0})


class RandomNetSearch(Step):
    """RandomNet's random search over whole networks (keras-tuner)."""

    name = "search"

    def __call__(self, run):
        from ssnas_tf.tuners import search as rn_search
        from ssnas_tf.tuners.randomnet import architecture_to_json
        from ssnas_tf.viz.randomnet import draw_randomnet
        c, s = run.config, run.splits
        start = time.perf_counter()
        check_tuner_settings(run, run.path(RandomNetRun.PROJECT))
        seeds = run._begin("search")
        steps = rn_search.trial_steps(len(s.search_train), c.finetune_batch_size,
                                      c.trial_fraction, c.trial_min_steps)
        _log(f"[ssnas] randomnet search: {c.trials} architectures, each trained "
             f"{steps} steps on {len(s.search_train)} samples, scored by weighted F1 "
             f"on {len(s.search_valid)}")
        tuner = rn_search.randomnet_search(
            run.dataset, s.search_train, s.search_valid, run.directory, c.trials,
            seeds.seed("trials"), c.trial_fraction, c.finetune_batch_size,
            c.randomnet_learning_rate, c.trial_min_steps, threshold=c.threshold,
            normalization=c.randomnet_normalization,
            callbacks=run._trial_callbacks())
        trial = rn_search.best_trial(tuner)
        arch = tuner.hypermodel.architecture(trial.hyperparameters)
        atomic_write_text(run.path("randomnet_architecture.json"),
                          architecture_to_json(arch) + "\n")
        with atomic_output(run.path("randomnet_architecture.svg"), ".svg") as tmp:
            draw_randomnet(arch, tmp, title=f"{c.dataset} / randomnet")
        _log(f"[ssnas] randomnet: best architecture from trial {trial.trial_id} "
             f"(seed {arch['seed']}, weighted F1 {trial.score:.4f})")
        return run._record(
            architecture=arch, search_best_trial=trial.trial_id,
            search_trials=len(tuner.oracle.trials), search_best_score=trial.score,
            search_criterion="validation weighted F1 (higher is better)",
            seconds={"search": round(time.perf_counter() - start, 1)})


class NoPretrain(Step):
    """RandomNet trains on labels only."""

    name = "pretrain"

    def __call__(self, run, genotype_path=None):
        _log("[ssnas] pretrain: skipped (randomnet trains on labels only)")
        return run._record(seconds={"pretrain": 0.0})


class RandomNetFinetune(Step):
    """Trains the best architecture from scratch on the labeled split."""

    name = "finetune"

    def __call__(self, run, genotype_path=None):
        from ssnas_tf.tuners import search as rn_search
        from ssnas_tf.tuners.randomnet import build_randomnet, precise_batch_norm
        c, ds, s = run.config, run.dataset, run.splits
        if genotype_path is not None:
            raise RunError("--genotype: a randomnet run has no genotype; it trains "
                           "randomnet_architecture.json")
        arch = run.load_architecture()
        start = time.perf_counter()
        seeds = run._begin("finetune")
        shapes, stats, vocab = rn_search.model_inputs_info(ds, s.labeled)
        model = build_randomnet(arch, shapes, ds.num_classes, stats, vocab, name="classifier")
        steps = steps_per_epoch(len(s.labeled), c.finetune_batch_size)
        # Cosine decay to 0 over the whole training: the full rate early, where
        # raw-input networks need it, and small steps at the end.
        schedule = keras.optimizers.schedules.CosineDecay(
            c.randomnet_learning_rate, decay_steps=max(1, steps * c.finetune_epochs))
        model.compile(Adam(schedule), loss=run.task.keras_loss())
        build_optimizer(model)
        train = labeled_batches(ds, s.labeled, c.finetune_batch_size, seeds.seed("data"),
                                shuffle=True, repeat=True, deterministic=c.deterministic)
        _log(f"[ssnas] finetune: the best RandomNet architecture from scratch, "
             f"{c.finetune_epochs} epochs x {steps} steps on {len(s.labeled)} samples")
        model.fit(train, epochs=c.finetune_epochs, steps_per_epoch=steps,
                  verbose=run.verbose, shuffle=False)
        precise_batch_norm(model, train)  # no-op without batch norm
        run._save_model(model, "classifier.keras")
        return run._record(seconds={"finetune": round(time.perf_counter() - start, 1)})


class RandomNetEvaluate(Step):
    """Scores the RandomNet classifier on the held-out test split."""

    name = "evaluate"

    def __call__(self, run):
        c, ds, s = run.config, run.dataset, run.splits
        start = time.perf_counter()
        classifier = run._load("classifier.keras", "finetune", reuse=True)
        probs = run.task.probabilities(
            classifier.predict(model_inputs(ds, s.test), verbose=0))
        metrics = run.task.metrics(ds.labels[s.test], probs)
        _log(f"[ssnas] evaluate on {len(s.test)} test samples: {metrics}")
        return run._record(dataset=c.dataset, method=c.method,
                           label_fraction=c.label_fraction, seed=c.seed,
                           splits=s.sizes(), architecture=run.load_architecture(),
                           **metrics, seconds={"evaluate": round(time.perf_counter() - start, 1)})


class RandomNetExport(Export):
    """Exports the whole classifier (no pruning: every modality feeds the
    fusion, the sampler sees to it), with its architecture as provenance."""

    def classifier(self, run):
        return run._load("classifier.keras", "finetune", reuse=True, release=True)

    def provenance(self, run, classifier):
        return {**super().provenance(run, classifier),
                "architecture": run.load_architecture()}


class RandomNetRun(_TunerRun):
    """RandomNet: random search over whole networks on raw inputs.

    Writes randomnet_architecture.json (and .svg) instead of genotype.json;
    no backbones, no pretraining. Its steps are its own (`STEPS`).
    """

    EXTRA_ARTIFACTS = ("randomnet_architecture.json", "randomnet_architecture.svg")
    PROJECT = "randomnet_tuner"
    STEPS = {**Run.STEPS, "backbones": NoBackbones, "search": RandomNetSearch,
             "pretrain": NoPretrain, "finetune": RandomNetFinetune,
             "evaluate": RandomNetEvaluate, "export": RandomNetExport}

    def load_architecture(self):
        """The searched architecture (randomnet_architecture.json), validated."""
        from ssnas_tf.tuners.randomnet import architecture_from_json
        path = self.path("randomnet_architecture.json")
        if not os.path.exists(path):
            raise RunError(f"{path} not found: run `ssnas search` first")
        with open(path) as f:
            return architecture_from_json(f.read(), source=path)
