"""The steps of a run, as objects that `Run` composes.

    backbones -> search -> pretrain -> finetune -> evaluate -> export

A step is an object called with the `Run` whose directory it fills
(`step(run, **arguments)`); it reads what the earlier steps wrote through the
run (`run.splits`, `run.load_genotype()`, ...) and records its results with
`run._record`. `Run.STEPS` maps each step name to its class; a method supplies
its own steps by its own map (the baselines in `ssnas_tf.workflow.baselines`:
the fixed fusion and surrogate searches, RandomNet's steps), instead of
overriding `Run`'s methods.

A step class says whether it trains under the run's precision policy
(`in_precision`) and in the scope of its `tf.distribute` strategy
(`under_strategy`); `Run` enters both around the call.
"""

import dataclasses
import math
import os
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from ssnas_tf import backbones as backbones_lib
from ssnas_tf.atomic import atomic_write_text
from ssnas_tf.data.pipelines import (labeled_batches, model_inputs, steps_per_epoch,
                                     view_pairs)
from ssnas_tf.errors import RunError
from ssnas_tf.nas.architect import SearchModel, reference_optimizers
from ssnas_tf.nas.callbacks import GenotypeTracker, HeldOutLoss
from ssnas_tf.nas.model_search import SearchNetwork
from ssnas_tf.optimizers import Adam
from ssnas_tf.ssl.contrastive_model import ContrastiveModel
from ssnas_tf.ssl.heads import ProjectionHead, classifier_head
from ssnas_tf.workflow.resume import BackboneCheckpoint, StepCheckpoint

# The supervised search takes at least this many steps per epoch when its
# labeled half allows batches of MIN_SEARCH_BATCH.
MIN_SEARCH_STEPS = 4
MIN_SEARCH_BATCH = 4


def search_batch_size(num_samples, batch_size):
    """The supervised search batch: `batch_size`, or smaller when that would
    give fewer than MIN_SEARCH_STEPS steps per epoch (few labels), but no
    smaller than MIN_SEARCH_BATCH (or the half itself)."""
    if math.ceil(num_samples / batch_size) >= MIN_SEARCH_STEPS:
        return batch_size
    return max(min(MIN_SEARCH_BATCH, num_samples), num_samples // MIN_SEARCH_STEPS)


def _log(message):
    print(message, flush=True)


def _summary(genotype):
    try:
        from ssnas_tf.viz.architecture import genotype_summary
        return genotype_summary(genotype)
    except ImportError:  # pragma: no cover
        return genotype.to_json()


def built_genotype(model, path):
    """The genotype `model` (an encoder or classifier) was built from.

    Read from the model's own "fusion" layer, so it cannot disagree with the
    weights.

    Raises:
        RunError: the model has no fusion network.
    """
    try:
        return model.get_layer("fusion").genotype
    except ValueError:
        raise RunError(f"{path}: no 'fusion' layer; not an ssnas encoder or "
                       f"classifier") from None


def fit_resumable(run, step, model, make_data, epochs, steps, optimizers, identity,
                  tracker=None, **fit_kwargs):
    """`model.fit` from the step's last checkpointed epoch in `run`'s
    directory, checkpointing each epoch.

    `make_data(start_epoch)` gives the training data from that epoch on.
    """
    for optimizer_ in optimizers.values():  # before a restore, and out of the trace
        if not optimizer_.built:
            optimizer_.build(model.trainable_variables)
    checkpoint = StepCheckpoint(run.directory, step, model, optimizers,
                                list(_frozen_layers(model)), identity, tracker)
    initial_epoch = checkpoint.restore()
    callbacks = [tracker] if tracker is not None else []
    callbacks += run.callbacks + _tensorboard(run, step) + [checkpoint.callback()]
    model.fit(make_data(initial_epoch), epochs=epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, callbacks=callbacks, verbose=run.verbose,
              shuffle=False, **fit_kwargs)
    return checkpoint


def _tensorboard(run, step):
    if not run.tensorboard:
        return []
    from ssnas_tf.workflow.tensorboard import step_callbacks
    return step_callbacks(os.path.join(run.directory, "tensorboard", step), step)


def _frozen_layers(layer):
    """The outermost non-trainable sublayers (frozen backbones): never updated."""
    for sub in getattr(layer, "layers", []):
        if not sub.trainable:
            yield sub
        else:
            yield from _frozen_layers(sub)


class Step:
    """One step of a run: `step(run, **arguments)` returns results.json's content.

    Attributes:
        name: the step's name in results.json's `seconds` and in `RUN_STEPS`.
        in_precision: run under the run's precision policy.
        under_strategy: run in the scope of the run's `tf.distribute` strategy.
    """

    name = None
    in_precision = False
    under_strategy = False

    def __call__(self, run, **arguments):
        raise RunError(f"step {self.name!r} is not defined for this method")


class TrainBackbones(Step):
    """Per-modality backbones, pretrained with unimodal SimCLR (labels unused)."""

    name = "backbones"
    in_precision = under_strategy = True

    def __call__(self, run):
        c = run.config
        start = time.perf_counter()
        seeds = run._begin("backbones")
        pool = np.union1d(run.splits.labeled, run.splits.unlabeled)
        if c.backbone_pretraining == "external":
            pool = run.splits.external  # no method sees these samples again
        weights = None if c.image_weights == "random" else c.image_weights
        custom = (backbones_lib.reference_backbones(run.dataset, weights)
                  if c.backbones == "reference" else None)
        backbones = run._distributed(backbones_lib.build_backbones(
            run.dataset, pool, width=c.backbone_width, custom=custom))
        checkpoint = BackboneCheckpoint(run.directory, _frozen_layers)
        if c.backbone_pretraining == "none":
            _log("[ssnas] backbones: random and frozen (--backbone-pretraining none)")
        elif c.backbone_epochs:
            _log(f"[ssnas] backbones: unimodal contrastive pretraining, "
                 f"{c.backbone_epochs} epochs on {len(pool)} {c.backbone_pretraining} "
                 f"samples (labels unused)")
            backbones_lib.pretrain_backbones(
                backbones, run.dataset, pool, run.augment_config,
                epochs=c.backbone_epochs, batch_size=c.batch_size, seed=seeds.seed("data"),
                max_steps_per_epoch=c.max_steps_per_epoch,
                verbose=0 if run.verbose < 2 else 1, checkpoint=checkpoint)
        run._save_model(backbones, "backbones.keras")
        results = run._record(seconds={"backbones": round(time.perf_counter() - start, 1)})
        checkpoint.finish()
        return results


class DartsSearch(Step):
    """The BM-NAS search (bilevel, DARTS-style) with the method's objective:
    contrastive (ssl) or supervised; writes genotype.json and its picture."""

    name = "search"
    in_precision = under_strategy = True

    def __call__(self, run):
        """Searches the architecture; writes genotype.json and its picture."""
        c, s = run.config, run.splits
        start = time.perf_counter()
        if not os.path.exists(run.path("backbones.keras")):
            run.train_backbones()
        backbones = run._frozen_backbones(reuse=True)  # before the seeds: see _load
        seeds = run._begin("search")
        model = self._search_model(run, backbones)
        network = model.network
        pipeline, steps, tracker, validation, criterion = self._search_data(run, seeds)

        def data(epoch):
            return tf.data.Dataset.zip((
                pipeline(s.search_train, seeds.seed("train_data"), epoch),
                pipeline(s.search_valid, seeds.seed("valid_data"), epoch)))
        first = data(0)  # built once (its map functions are traced), read twice
        run._distributed(model)(next(iter(first))[0][0])
        model.compile(*reference_optimizers(steps, c.learning_rate, c.learning_rate * 1e-3,
                                            c.arch_learning_rate),
                      weight_decay=c.weight_decay, arch_weight_decay=c.arch_weight_decay,
                      jit_compile=c.jit_compile)
        model.build_optimizers()  # both, before a checkpoint is restored into them
        if os.path.exists(run.path("search_log.jsonl")):
            os.remove(run.path("search_log.jsonl"))
        _log(f"[ssnas] search ({c.method}): {len(network.input_names)} backbone "
             f"features, {c.search_epochs} epochs x {steps} steps on "
             f"{len(s.search_train)} (weights) + {len(s.search_valid)} (architecture) "
             f"samples; genotype kept by {criterion}")
        checkpoint = fit_resumable(
            run, "search", model, lambda epoch: first if epoch == 0 else data(epoch),
            c.search_epochs, steps, {"optimizer": model.optimizer,
                                     "arch_optimizer": model.arch_optimizer},
            identity=None, tracker=tracker, **validation)
        genotype = tracker.best_genotype
        atomic_write_text(run.path("genotype.json"), genotype.to_json() + "\n")
        run._draw(genotype)
        seconds = round(time.perf_counter() - start, 1)
        _log(f"[ssnas] search: best genotype from epoch {tracker.best_epoch}\n"
             + _summary(genotype))
        results = run._record(
            genotype=genotype.to_dict(), search_best_epoch=tracker.best_epoch,
            search_criterion=criterion, search_best_score=tracker.best_score,
            seconds={"search": seconds})
        checkpoint.finish()
        return results

    def _search_model(self, run, backbones):
        """The search network over the backbones' features, with the method's head."""
        c = run.config
        network = SearchNetwork(
            list(backbones.output), num_cells=c.num_cells, num_steps=c.num_steps,
            multiplier=c.multiplier, node_multiplier=c.node_multiplier,
            channels=c.channels, length=c.length, dropout=c.dropout,
            primitives=c.primitives, attention_dropout=c.attention_dropout,
            torch_defaults=c.torch_defaults)
        head = (ProjectionHead(c.projection_dim) if c.method == "ssl"
                else classifier_head(run.dataset.num_classes))
        return SearchModel(network, head, objective=c.method, backbone=backbones,
                           temperature=c.temperature, multilabel=run.task.multilabel,
                           arch_order=c.arch_order)

    def _search_data(self, run, seeds):
        """The method's batches, steps per epoch and genotype criterion.

        Returns:
            (pipeline(index, seed, epoch), steps, tracker, fit validation
            kwargs, criterion description).
        """
        c, ds, s = run.config, run.dataset, run.splits
        cap = c.max_steps_per_epoch
        ssl = c.method == "ssl"
        batch = c.batch_size if ssl else search_batch_size(len(s.search_train), c.batch_size)
        steps = steps_per_epoch(len(s.search_train), batch, cap)
        log_path = run.path("search_log.jsonl")
        selection, where = s.search_select, f"{len(s.search_select)} held-out samples"
        if not len(selection):  # a splits.json written before the select part
            selection, where = s.search_valid, "the architecture step's samples"
            _log("[ssnas] warning: splits.json has no search_select part (written by "
                 "an older version): the genotype is selected on the samples that "
                 "train the architecture; start afresh with --overwrite to hold "
                 "out a selection part")
        if ssl:
            augment = dataclasses.replace(run.augment_config,
                                          cross_modal=c.search_cross_modal)

            def pipeline(index, seed, epoch=0):
                return view_pairs(ds, index, c.batch_size, augment, seed, epoch,
                                  cap, deterministic=c.deterministic)
            # Fixed views of the held-out select part score each epoch's
            # architecture: the pipeline is seeded per batch, so each pass
            # recomputes the same views (a .cache() would hold them in memory).
            select_steps = steps_per_epoch(len(selection), c.batch_size, cap)
            scorer = HeldOutLoss(pipeline(selection, seeds.seed("select_data")).take(
                select_steps), select_steps)
            tracker = GenotypeTracker(scorer.criterion, mode="min", log_path=log_path)
            return (pipeline, steps, tracker, {},
                    f"contrastive loss on {where} (lower is better)")

        def pipeline(index, seed, epoch=0):
            return labeled_batches(ds, index, batch, seed, True, True,
                                   start_epoch=epoch, max_steps=cap,
                                   deterministic=c.deterministic)
        scorer = self._f1_scorer(run, selection)
        tracker = GenotypeTracker(lambda m, logs: scorer(m), mode="max", log_path=log_path)
        return pipeline, steps, tracker, {}, f"weighted F1 on {where} (higher is better)"

    def _f1_scorer(self, run, index):
        ds, task = run.dataset, run.task
        y = ds.labels[index]

        def score(model):
            logits = model.predict(model_inputs(ds, index), verbose=0)
            return task.weighted_f1(y, task.probabilities(logits))
        return score


class ContrastivePretrain(Step):
    """Contrastive pretraining of the derived network (ssl only)."""

    name = "pretrain"
    in_precision = under_strategy = True

    def __call__(self, run, genotype_path=None):
        c, ds, s = run.config, run.dataset, run.splits
        genotype = run.load_genotype(genotype_path)
        start = time.perf_counter()
        if c.method != "ssl":
            _log(f"[ssnas] pretrain: skipped (method {c.method} trains on labels only)")
            return run._record(seconds={"pretrain": 0.0})
        if not c.contrastive_pretraining:
            _log("[ssnas] pretrain: skipped (--no-contrastive-pretraining)")
            return run._record(seconds={"pretrain": 0.0})
        seeds = run._begin("pretrain")
        encoder = run.build_encoder(genotype, run._frozen_backbones())
        model = run._distributed(ContrastiveModel(
            encoder, ProjectionHead(c.projection_dim), temperature=c.temperature))
        steps = steps_per_epoch(len(s.unlabeled), c.batch_size, c.max_steps_per_epoch)

        augment = dataclasses.replace(run.augment_config,
                                      cross_modal=c.pretrain_cross_modal)

        def pairs(epoch):
            return view_pairs(ds, s.unlabeled, c.batch_size, augment,
                              seeds.seed("data"), epoch, c.max_steps_per_epoch,
                              deterministic=c.deterministic)
        first = pairs(0)  # built once (its map functions are traced), read twice
        model(next(iter(first))[0])
        model.compile(Adam(c.learning_rate), jit_compile=c.jit_compile)
        _log(f"[ssnas] pretrain: contrastive, {c.pretrain_epochs} epochs x {steps} "
             f"steps on {len(s.unlabeled)} unlabeled samples")
        checkpoint = fit_resumable(run, "pretrain", model,
                                   lambda epoch: first if epoch == 0 else pairs(epoch),
                                   c.pretrain_epochs, steps,
                                   {"optimizer": model.optimizer}, genotype.to_dict())
        run._save_model(encoder, "encoder.keras")
        # The genotype the encoder was built from (it may come from --genotype);
        # `finetune` checks it against the encoder itself.
        atomic_write_text(run.path("encoder_genotype.json"), genotype.to_json() + "\n")
        results = run._record(seconds={"pretrain": round(time.perf_counter() - start, 1)})
        checkpoint.finish()
        return results


class Finetune(Step):
    """The classifier: the (pretrained or random) fusion network and a head,
    trained on the labeled split."""

    name = "finetune"
    in_precision = under_strategy = True

    def __call__(self, run, genotype_path=None):
        c, ds, s = run.config, run.dataset, run.splits
        # Validate everything before any training or writing.
        genotype = run.load_genotype(genotype_path)
        start = time.perf_counter()
        seeds = run._begin("finetune")
        encoder, origin = self._finetune_encoder(run, genotype, genotype_path)
        logits = classifier_head(ds.num_classes)(encoder.output)
        classifier = run._distributed(keras.Model(encoder.input, logits, name="classifier"))
        classifier.compile(Adam(c.finetune_learning_rate),
                           loss=run.task.keras_loss(),
                           jit_compile=c.jit_compile)
        steps = steps_per_epoch(len(s.labeled), c.finetune_batch_size, c.max_steps_per_epoch)

        def train(epoch):
            return labeled_batches(ds, s.labeled, c.finetune_batch_size, seeds.seed("data"),
                                   shuffle=True, repeat=True, start_epoch=epoch,
                                   max_steps=c.max_steps_per_epoch,
                                   deterministic=c.deterministic)
        _log(f"[ssnas] finetune: classifier on the {origin} fusion network, "
             f"{c.finetune_epochs} epochs x {steps} steps on {len(s.labeled)} "
             f"labeled samples")
        checkpoint = fit_resumable(run, "finetune", classifier, train, c.finetune_epochs,
                                   steps, {"optimizer": classifier.optimizer},
                                   {"genotype": genotype.to_dict(), "origin": origin})
        run._save_model(classifier, "classifier.keras")
        # The genotype this classifier was built from (it may come from --genotype).
        atomic_write_text(run.path("classifier_genotype.json"), genotype.to_json() + "\n")
        results = run._record(encoder_origin=origin,
                               seconds={"finetune": round(time.perf_counter() - start, 1)})
        checkpoint.finish()
        return results

    def _finetune_encoder(self, run, genotype, genotype_path):
        """The encoder to fine-tune and its origin, "pretrained" or "random".

        An ssl run uses encoder.keras when it exists, and refuses it when it
        was built from another genotype than the one asked for.
        """
        path = run.path("encoder.keras")
        wanted = run.config.method == "ssl" and run.config.contrastive_pretraining
        if wanted and os.path.exists(path):
            encoder = keras.models.load_model(path)
            built_from = built_genotype(encoder, path)
            if built_from.to_dict() != genotype.to_dict():
                asked = genotype_path or run.path("genotype.json")
                flag = f" --genotype {genotype_path}" if genotype_path else ""
                raise RunError(
                    f"{path} was pretrained from another genotype than {asked} "
                    f"(its genotype: {run.path('encoder_genotype.json')}); run "
                    f"`ssnas pretrain --output {run.directory}{flag}` first, or "
                    f"delete {path} to fine-tune a randomly initialised fusion network")
            return encoder, "pretrained"
        if wanted:
            warnings.warn(
                f"{path} not found: fine-tuning a randomly initialised fusion network "
                f"(run `ssnas pretrain` first for the method's pretrained encoder); "
                f"results.json records encoder_origin 'random'", RuntimeWarning,
                stacklevel=5)
        return run.build_encoder(genotype, run._frozen_backbones()), "random"


class Evaluate(Step):
    """Scores the classifier on the held-out test split."""

    name = "evaluate"
    under_strategy = True

    def __call__(self, run):
        """Scores the classifier on the held-out test split."""
        c, ds, s = run.config, run.dataset, run.splits
        start = time.perf_counter()
        run.configure_tensorflow()
        classifier = run._distributed(run._load("classifier.keras", "finetune", reuse=True))
        probs = run.task.probabilities(
            classifier.predict(model_inputs(ds, s.test), verbose=0))
        metrics = run.task.metrics(ds.labels[s.test], probs)
        _log(f"[ssnas] evaluate on {len(s.test)} test samples: {metrics}")
        # The classifier's own fusion layer holds the genotype it was built from.
        genotype = built_genotype(classifier, run.path("classifier.keras"))
        return run._record(dataset=c.dataset, method=c.method,
                            label_fraction=c.label_fraction, seed=c.seed,
                            splits=s.sizes(), genotype=genotype.to_dict(),
                            **metrics, seconds={"evaluate": round(time.perf_counter() - start, 1)})


class Export(Step):
    """The classifier as a TF Serving SavedModel; `classifier` and
    `provenance` say what is exported (a method may supply its own)."""

    name = "export"

    def __call__(self, run, export_root=None, model_name=None, version=None):
        """Exports the classifier for TF Serving; returns the version dir."""
        from ssnas_tf.serving.export import export_classifier
        from ssnas_tf.serving.raw_inputs import serving_inputs
        c, ds = run.config, run.dataset
        run.splits  # the data must be the run's: labels and inputs go into the export
        start = time.perf_counter()
        classifier = self.classifier(run)
        export_root = export_root or run.path("export")
        model_name = model_name or f"ssnas_{c.dataset}"
        if version is not None and os.path.exists(
                os.path.join(export_root, model_name, str(version))):
            raise RunError(
                f"{os.path.join(export_root, model_name, str(version))}: version "
                f"{version} of '{model_name}' already exists; versions are never "
                f"overwritten (pass another version, or None for the next one)")
        # Table columns are served one by one, raw (ssnas_tf.serving.raw_inputs).
        served = serving_inputs(classifier, ds, run.splits.test)
        model = served.pop("model")
        version_dir = export_classifier(
            model, served.pop("input_specs"), ds.label_names, export_root, model_name,
            version=version, multilabel=run.task.multilabel,
            threshold=run.task.threshold, provenance=self.provenance(run, classifier),
            **served)
        _log(f"[ssnas] export: {version_dir}")
        return run._record(export_dir=os.path.abspath(str(version_dir)),
                            seconds={"export": round(time.perf_counter() - start, 1)})

    def classifier(self, run):
        """classifier.keras, taking only the modalities the genotype reads."""
        from ssnas_tf.serving.prune import prune_classifier
        return prune_classifier(run._load("classifier.keras", "finetune", reuse=True,
                                          release=True))

    def provenance(self, run, classifier):
        """What the export records about its origin: the run's settings and,
        for a classifier with a fusion network, the genotype it was built from."""
        c = run.config
        out = {"dataset": c.dataset, "method": c.method,
               "label_fraction": c.label_fraction, "seed": c.seed}
        try:
            out["genotype"] = classifier.get_layer("fusion").genotype.to_dict()
        except (ValueError, AttributeError):  # e.g. RandomNet: no genotype
            pass
        return out


STEPS = {step.name: step for step in (TrainBackbones, DartsSearch, ContrastivePretrain,
                                      Finetune, Evaluate, Export)}

__all__ = ["ContrastivePretrain", "DartsSearch", "Evaluate", "Export", "Finetune", "STEPS",
           "Step", "TrainBackbones", "built_genotype", "search_batch_size"]
