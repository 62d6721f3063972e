"""The three steps of the method over one run directory.

    backbones -> search -> pretrain -> finetune -> evaluate -> export

Each step reads what the earlier ones wrote into the run directory and writes
its own artifacts atomically (a fsynced temporary file, then a rename), so a
failed or interrupted step never leaves a half-written file and never
overwrites an earlier result with a partial one. Later steps read the splits
from splits.json and refuse data whose fingerprint differs from the one
stored there.

Run directory:

    config.json          the RunConfig
    splits.json          sample indices of every split (reproducible from seed)
                         and the fingerprint of the data they index
    backbones.keras      per-modality backbones (unimodal contrastive pretraining)
    search_log.jsonl     per search epoch: alpha/beta/gamma, genotype, criterion
    genotype.json        the best derived genotype
    architecture.svg/png picture of the derived architecture
    encoder.keras        backbones + derived network after step 2 (ssl)
    encoder_genotype.json  the genotype the encoder was built from
    classifier.keras     the fine-tuned classifier (logits)
    classifier_genotype.json  the genotype the classifier was built from
    results.json         metrics, genotype, encoder_origin, seconds per step,
                         export_dir
    export/<model>/<version>/   TF Serving SavedModel
    checkpoints/<step>.npz  last finished epoch of an interrupted step (resume)
    tensorboard/<step>/  TensorBoard logs (with `tensorboard=True`)
    .lock                held by the process writing the directory

Backbones: no pretrained weights exist for the small mfeat backbones (nor, in
the BM-NAS reference, for its text MLP, which stays random). Both methods start
from the same backbones, trained once with unimodal SimCLR on the non-test pool
with labels unused: the analogue of the ImageNet-pretrained extractors the
paper gives both methods.

Length: over 500 lines because `Run` holds every step's reading and writing of
the run directory; the steps' bodies are being moved into their own objects.
"""

import functools
import json
import math
import os
import shutil
import time
import warnings

import keras
import tensorflow as tf
import numpy as np

from ssnas_tf import backbones as backbones_lib
from ssnas_tf.atomic import atomic_output, atomic_save_model, atomic_write_text
from ssnas_tf.ssl.augment import AugmentConfig
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.ssl.contrastive_model import ContrastiveModel
from ssnas_tf.data import DataError, load_dataset
from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.nas import presets
from ssnas_tf.nas.genotypes import Genotype, GenotypeError
from ssnas_tf.ssl.heads import ProjectionHead, classifier_head
from ssnas_tf.data.pipelines import (labeled_batches, model_inputs, steps_per_epoch,
                                     view_pairs)
from ssnas_tf.tasks import Task
from ssnas_tf.nas.architect import SearchModel, reference_optimizers
from ssnas_tf.nas.model_search import SearchNetwork
from ssnas_tf.data.splits import RunSplits, make_splits
from ssnas_tf.workflow.fingerprint import (dataset_fingerprint, fingerprint_changes,
                                           source_files)
from ssnas_tf.nas.callbacks import GenotypeTracker
from ssnas_tf.precision import precision_scope
from ssnas_tf.workflow.lock import RunLock
from ssnas_tf.workflow.resume import (CHECKPOINT_DIR, BackboneCheckpoints, StepCheckpoint,
                                      config_differences, finished_steps)
from ssnas_tf import devices
from ssnas_tf.workflow import reproducibility
from ssnas_tf.seeds import SeedTree
from ssnas_tf.errors import ConfigError, RunError

# Augmentations that suit a dataset better than the generic defaults.
DATASET_AUGMENT = {
    # 16x15 digits: no flips, mild crops, rotation, no blur (it erases them)
    "mfeat": {"pix": {"flip": False, "crop_scale": (0.6, 1.0), "rotation": 10.0,
                      "blur_p": 0.0, "jitter_strength": 0.3}},
    "avmnist": {"image": {"flip": False, "crop_scale": (0.6, 1.0)}},
}


RUN_STEPS = ("backbones", "search", "pretrain", "finetune", "evaluate", "export")

# Files the steps write; `start` clears them when a run directory is reused.
# (Exports are kept: TF Serving serves the newest version.)
STEP_ARTIFACTS = ("results.json", "search_log.jsonl", "backbones.keras", "genotype.json",
                  "architecture.svg", "architecture.png", "encoder.keras",
                  "encoder_genotype.json", "classifier.keras", "classifier_genotype.json")


def _in_precision(step):
    """Runs a training step under the run's `precision` policy (restored after)."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        with precision_scope(self.config.precision):
            return step(self, *args, **kwargs)
    return wrapper

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


def _under_strategy(step):
    """Runs a step in the scope of the run's tf.distribute strategy, so its
    models and optimizers are created there (nothing changes for "none")."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        if self.config.distribute == "none":
            return step(self, *args, **kwargs)
        with self.strategy.scope():
            return step(self, *args, **kwargs)
    return wrapper


def _log(message):
    print(message, flush=True)


class Run:
    """One run directory and the steps that fill it.

    Args:
        directory: the run directory (created if needed).
        config: a `RunConfig` for a new run; None to read `config.json`.
        verbose: Keras progress output (0, 1 or 2). Defaults to 2 (one line
            per epoch).
        callbacks: extra Keras callbacks for every training step (search,
            pretrain, finetune); they run after the genotype tracker, so the
            search's `logs["genotype_criterion"]` is visible to them.
            Defaults to None.
        tensorboard: write TensorBoard logs under `DIR/tensorboard/<step>`.
            Defaults to False.

    Example:
    >>> run = Run("runs/demo", RunConfig(label_fraction=0.1))
    >>> run.run_all()["weighted_f1"]
    """

    def __init__(self, directory, config=None, verbose=2, callbacks=None,
                 tensorboard=False):
        self.directory = directory
        self.verbose = verbose
        self.callbacks = list(callbacks or [])
        self.tensorboard = tensorboard
        self._lock = None
        config_path = self.path("config.json")
        if config is None:
            if not os.path.exists(config_path):
                raise RunError(
                    f"{config_path} not found: start the run with `ssnas run` "
                    f"or `ssnas search`")
            with open(config_path) as f:
                config = RunConfig.from_json(f.read(), source=config_path)
        self.config = config
        # Every random source's seed comes from this tree (README: Reproducibility).
        self.seeds = SeedTree(config.seed)
        self._dataset = None
        self._splits = None
        self._feature_names = None
        self._determinism = None  # the settings in force, once a step set them
        self._recorded_fingerprint = None
        self._strategy = None

    @property
    def strategy(self):
        """The `tf.distribute` strategy of `config.distribute`, created on first
        use (a multi-worker one must exist before TensorFlow runs any op)."""
        if self._strategy is None:
            self._strategy = devices.make_strategy(self.config.distribute)
        return self._strategy

    def _distributed(self, model):
        """`model` prepared for the run's strategy (synchronised batch norm
        when asked for); returns it."""
        if self.config.distribute == "none":
            return model
        if self.config.sync_batch_norm:
            devices.synchronize_batch_norm(model)
        return devices.follow_scope_strategy(model)

    def path(self, name):
        return os.path.join(self.directory, name)

    # -- shared state ------------------------------------------------------

    @property
    def dataset(self):
        if self._dataset is None:
            c = self.config
            self._dataset = load_dataset(c.dataset, data_dir=c.data_dir,
                                         **(c.dataset_options or {}))
        return self._dataset

    @property
    def splits(self) -> RunSplits:
        """The splits `start` drew, read from splits.json and checked against
        the data that loads now (never recomputed: changed data must not move
        test samples into training)."""
        if self._splits is None:
            self._splits = self._read_splits()
        return self._splits

    def _fingerprint(self):
        c = self.config
        embedded = None
        if c.dataset == "mfeat" and c.data_dir is None:
            from ssnas_tf.data.mfeat import EMBEDDED_PATH as embedded
        return dataset_fingerprint(self.dataset, source_files(c.data_dir, embedded))

    def _read_splits(self):
        path = self.path("splits.json")
        if not os.path.exists(path):
            raise RunError(f"{path} not found: start the run with `ssnas run` or "
                           f"`ssnas search`")
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise RunError(f"{path}: malformed JSON ({err})") from None
        recorded = data.get("fingerprint") if isinstance(data, dict) else None
        if recorded is None:
            warnings.warn(f"{path} has no dataset fingerprint (an older run): the "
                          f"data cannot be checked against the splits", RuntimeWarning)
        else:
            changes = fingerprint_changes(recorded, self._fingerprint())
            if changes:
                raise RunError(
                    f"{path}: the {self.config.dataset} data that loads now is not the "
                    f"data this run's splits were drawn from: {'; '.join(changes)}. "
                    f"Restore the data, or start a new run (--overwrite)")
        return RunSplits.from_dict(data, self.dataset.num_samples, source=path)

    @property
    def task(self):
        """The dataset's `Task`: loss, probabilities, decision rule, metrics."""
        return Task.for_dataset(self.dataset, self.config.threshold)

    @property
    def augment_config(self):
        overrides = dict(DATASET_AUGMENT.get(self.config.dataset, {}))
        overrides.update(self.config.augment_overrides or {})
        return AugmentConfig(overrides=overrides)

    def lock(self):
        """Context manager: this process is the only writer of the directory.

        Re-entrant within one `Run`. Raises `RunLockedError` (naming the
        holder's pid) when another live process holds it.
        """
        run = self

        class _Held:
            def __enter__(self):
                self.outer = run._lock is None
                if self.outer:
                    run._lock = RunLock(run.directory).acquire()

            def __exit__(self, *exc):
                if self.outer:
                    run._lock.release()
                    run._lock = None
        return _Held()

    def start(self, overwrite=False):
        """Checks the inputs and writes config.json and splits.json.

        Everything that can be checked before training is checked here, so bad
        input fails fast and leaves an existing run untouched. A directory
        holding a run with the same config is resumed (returns True); one with
        another config needs `overwrite`.
        """
        results = self.path("results.json")
        if not overwrite and os.path.exists(self.path("config.json")):
            return self._resume()
        if os.path.exists(results) and not overwrite:
            raise RunError(
                f"{self.directory} already holds the results of a run; choose "
                f"another --output or pass --overwrite")
        c = self.config  # loads the data and checks the label fraction:
        splits = make_splits(
            self.dataset, c.method, c.label_fraction, c.effective_split_seed,
            c.test_fraction,
            c.external_fraction if c.backbone_pretraining == "external" else 0.0,
            c.labels_per_class)
        fingerprint = self._recorded_fingerprint = self._fingerprint()
        maps = [m for m, k in self.dataset.kinds.items() if k in ("image", "spectrogram")]
        if maps and math.isqrt(self.config.length) ** 2 != self.config.length:
            raise ConfigError(
                f"--length {self.config.length}: the {maps} backbones give spatial "
                f"maps, which are pooled to a sqrt(L) x sqrt(L) grid; use a square "
                f"length such as 4, 9 or 16")
        os.makedirs(self.directory, exist_ok=True)
        # Only now, with every check passed, and before anything new is
        # written: a restarted run must never pick up an artifact of the
        # previous one (e.g. its encoder with a new genotype), even if it is
        # interrupted here. config.json goes last: it marks a started run.
        for stale in STEP_ARTIFACTS + ("splits.json", "config.json"):
            if os.path.exists(self.path(stale)):
                os.remove(self.path(stale))
        shutil.rmtree(self.path(CHECKPOINT_DIR), ignore_errors=True)
        atomic_write_text(self.path("splits.json"), json.dumps(
            {"sizes": splits.sizes(), **splits.to_dict(), "fingerprint": fingerprint}))
        atomic_write_text(self.path("config.json"), self.config.to_json())
        self._splits = splits
        _log(f"[ssnas] {self.config.dataset}: {self.dataset.num_samples} samples, "
             f"modalities {dict(self.dataset.kinds)}; method {self.config.method}, "
             f"label fraction {self.config.label_fraction}, seed {self.config.seed}; "
             f"splits {self.splits.sizes()}")
        return False

    def _resume(self):
        path = self.path("config.json")
        with open(path) as f:
            old = RunConfig.from_json(f.read(), source=path)
        changed = config_differences(old, self.config)
        if changed:
            raise RunError(
                f"{self.directory} holds a run with other settings ({', '.join(changed)} "
                f"differ); choose another --output, or pass --overwrite to start afresh")
        self.splits  # loads the data
        done = [s for s in RUN_STEPS if s in finished_steps(self.path("results.json"))]
        _log(f"[ssnas] resuming {self.directory}: finished steps {done}")
        return True

    def _fit(self, step, model, make_data, epochs, steps, optimizers, identity,
             tracker=None, **fit_kwargs):
        """`model.fit` from the step's last checkpointed epoch, checkpointing each epoch.

        `make_data(start_epoch)` gives the training data from that epoch on.
        """
        for optimizer_ in optimizers.values():
            if not optimizer_.built:
                optimizer_.build(model.trainable_variables)
        checkpoint = StepCheckpoint(self.directory, step, model, optimizers,
                                    list(_frozen_layers(model)), identity, tracker)
        initial_epoch = checkpoint.restore()
        callbacks = [tracker] if tracker is not None else []
        callbacks += self.callbacks + self._tensorboard(step) + [checkpoint.callback()]
        model.fit(make_data(initial_epoch), epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps, callbacks=callbacks, verbose=self.verbose,
                  shuffle=False, **fit_kwargs)
        return checkpoint

    def _tensorboard(self, step):
        if not self.tensorboard:
            return []
        from ssnas_tf.workflow.tensorboard import step_callbacks
        return step_callbacks(os.path.join(self.directory, "tensorboard", step), step)

    def _record(self, **entries):
        """Merges `entries` into results.json (seconds are merged per step),
        with what reproducing it needs (`reproducibility`)."""
        path = self.path("results.json")
        results = {}
        if os.path.exists(path):
            with open(path) as f:
                results = json.load(f)
        seconds = results.get("seconds", {})
        seconds.update(entries.pop("seconds", {}))
        record = self._reproducibility(results.get("reproducibility", {}))
        results.update(entries, seconds=seconds, reproducibility=record)
        atomic_write_text(path, json.dumps(results, indent=2))
        return results

    def _load(self, name, step):
        path = self.path(name)
        if not os.path.exists(path):
            raise RunError(f"{path} not found: run `ssnas {step}` first")
        return keras.models.load_model(path)

    def configure_tensorflow(self):
        """Op determinism and thread count of `config` for this process (each
        step calls it; the CLI calls it first, before TensorFlow runs an op)."""
        self._determinism = reproducibility.configure_determinism(
            self.config.deterministic, self.config.threads)

    def _begin(self, step):
        """Determinism settings and the step's own initialisation seed; returns
        the step's seed subtree (its data seeds come from it)."""
        self.configure_tensorflow()
        seeds = self.seeds.child(step)
        keras.utils.set_random_seed(seeds.seed("init"))
        return seeds

    def _reproducibility(self, recorded):
        """results.json's `reproducibility`: the seeds drawn by every step so
        far (merged with `recorded`), determinism, versions, CPU, data."""
        seeds = self.seeds.to_dict()
        seeds["seeds"] = {**recorded.get("seed_tree", {}).get("seeds", {}),
                          **seeds["seeds"], "splits": self.config.effective_split_seed}
        determinism = self._determinism or recorded.get("determinism")
        return {"seed_tree": seeds, "determinism": determinism,
                "distribute": self._devices_record(recorded),
                "dataset_fingerprint": self._dataset_fingerprint(),
                **reproducibility.environment_record()}

    def _devices_record(self, recorded):
        if self._strategy is None and self.config.distribute != "none":
            return recorded.get("distribute")
        strategy = self._strategy or tf.distribute.get_strategy()
        resolver = getattr(strategy, "cluster_resolver", None)
        workers = (resolver.cluster_spec().num_tasks("worker") or 1
                   if resolver is not None and resolver.cluster_spec().as_dict() else 1)
        return {"strategy": self.config.distribute,
                "replicas": strategy.num_replicas_in_sync, "workers": workers,
                "sync_batch_norm": self.config.sync_batch_norm}

    def _dataset_fingerprint(self):
        # The fingerprint `start` stored with the splits (what they were drawn from).
        if self._recorded_fingerprint is None:
            path = self.path("splits.json")
            if os.path.exists(path):
                with open(path) as f:
                    self._recorded_fingerprint = json.load(f).get("fingerprint")
        return self._recorded_fingerprint

    # -- step 0: backbones -------------------------------------------------

    @_in_precision
    @_under_strategy
    def train_backbones(self):
        c = self.config
        start = time.perf_counter()
        seeds = self._begin("backbones")
        pool = np.union1d(self.splits.labeled, self.splits.unlabeled)
        if c.backbone_pretraining == "external":
            pool = self.splits.external  # no method sees these samples again
        weights = None if c.image_weights == "random" else c.image_weights
        custom = (backbones_lib.reference_backbones(self.dataset, weights)
                  if c.backbones == "reference" else None)
        backbones = self._distributed(backbones_lib.build_backbones(
            self.dataset, pool, width=c.backbone_width, custom=custom))
        checkpoints = None
        if c.backbone_pretraining == "none":
            _log("[ssnas] backbones: random and frozen (--backbone-pretraining none)")
        elif c.backbone_epochs:
            _log(f"[ssnas] backbones: unimodal contrastive pretraining, "
                 f"{c.backbone_epochs} epochs on {len(pool)} {c.backbone_pretraining} "
                 f"samples (labels unused)")
            checkpoints = BackboneCheckpoints(self.directory, backbones)
            backbones_lib.pretrain_backbones(
                backbones, self.dataset, pool, self.augment_config,
                epochs=c.backbone_epochs, batch_size=c.batch_size, seed=seeds.seed("data"),
                max_steps_per_epoch=c.max_steps_per_epoch,
                verbose=0 if self.verbose < 2 else 1, checkpoints=checkpoints)
        atomic_save_model(backbones, self.path("backbones.keras"))
        if checkpoints is not None:
            checkpoints.clear()
        return self._record(seconds={"backbones": round(time.perf_counter() - start, 1)})

    def _frozen_backbones(self):
        backbones = self._load("backbones.keras", "search")
        backbones.trainable = False
        return backbones

    # -- step 1: search ----------------------------------------------------

    @_in_precision
    @_under_strategy
    def search(self):
        """Searches the architecture; writes genotype.json and its picture."""
        c, s = self.config, self.splits
        start = time.perf_counter()
        if not os.path.exists(self.path("backbones.keras")):
            self.train_backbones()
        backbones = self._frozen_backbones()
        seeds = self._begin("search")
        model = self._search_model(backbones)
        network = model.network
        pipeline, steps, tracker, validation, criterion = self._search_data(seeds)
        self._distributed(model)(
            next(iter(pipeline(s.search_train, seeds.seed("train_data"))))[0])
        model.compile(*reference_optimizers(steps, c.learning_rate, c.learning_rate * 1e-3,
                                            c.arch_learning_rate),
                      weight_decay=c.weight_decay, arch_weight_decay=c.arch_weight_decay,
                      jit_compile=c.jit_compile)
        model.build_optimizers()  # both, before a checkpoint is restored into them
        if os.path.exists(self.path("search_log.jsonl")):
            os.remove(self.path("search_log.jsonl"))
        _log(f"[ssnas] search ({c.method}): {len(network.input_names)} backbone "
             f"features, {c.search_epochs} epochs x {steps} steps on "
             f"{len(s.search_train)} (weights) + {len(s.search_valid)} (architecture) "
             f"samples; genotype kept by {criterion}")
        checkpoint = self._fit(
            "search", model, lambda epoch: tf.data.Dataset.zip((
                pipeline(s.search_train, seeds.seed("train_data"), epoch),
                pipeline(s.search_valid, seeds.seed("valid_data"), epoch))),
            c.search_epochs, steps, {"optimizer": model.optimizer,
                                     "arch_optimizer": model.arch_optimizer},
            identity=None, tracker=tracker, **validation)
        genotype = tracker.best_genotype
        atomic_write_text(self.path("genotype.json"), genotype.to_json() + "\n")
        self._draw(genotype)
        seconds = round(time.perf_counter() - start, 1)
        _log(f"[ssnas] search: best genotype from epoch {tracker.best_epoch}\n"
             + _summary(genotype))
        results = self._record(
            genotype=genotype.to_dict(), search_best_epoch=tracker.best_epoch,
            search_criterion=criterion, search_best_score=tracker.best_score,
            seconds={"search": seconds})
        checkpoint.finish()
        return results

    def _search_model(self, backbones):
        """The search network over the backbones' features, with the method's head."""
        c = self.config
        network = SearchNetwork(
            list(backbones.output), num_cells=c.num_cells, num_steps=c.num_steps,
            multiplier=c.multiplier, node_multiplier=c.node_multiplier,
            channels=c.channels, length=c.length, dropout=c.dropout,
            primitives=c.primitives, attention_dropout=c.attention_dropout,
            torch_defaults=c.torch_defaults)
        head = (ProjectionHead(c.projection_dim) if c.method == "ssl"
                else classifier_head(self.dataset.num_classes))
        return SearchModel(network, head, objective=c.method, backbone=backbones,
                           temperature=c.temperature, multilabel=self.task.multilabel,
                           arch_order=c.arch_order)

    def _search_data(self, seeds):
        """The method's batches, steps per epoch and genotype criterion.

        Returns:
            (pipeline(index, seed, epoch), steps, tracker, fit validation
            kwargs, criterion description).
        """
        c, ds, s = self.config, self.dataset, self.splits
        cap = c.max_steps_per_epoch
        ssl = c.method == "ssl"
        batch = c.batch_size if ssl else search_batch_size(len(s.search_train), c.batch_size)
        steps = steps_per_epoch(len(s.search_train), batch, cap)
        log_path = self.path("search_log.jsonl")
        selection, where = s.search_select, f"{len(s.search_select)} held-out samples"
        if not len(selection):  # a splits.json written before the select part
            selection, where = s.search_valid, "the architecture step's samples"
            _log("[ssnas] warning: splits.json has no search_select part (written by "
                 "an older version): the genotype is selected on the samples that "
                 "train the architecture; start afresh with --overwrite to hold "
                 "out a selection part")
        if ssl:
            def pipeline(index, seed, epoch=0):
                return view_pairs(ds, index, c.batch_size, self.augment_config, seed, epoch,
                                  cap, deterministic=c.deterministic)
            # Fixed views of the held-out select part score each epoch's
            # architecture: the pipeline is deterministic, so each epoch
            # recomputes the same views (a .cache() would hold them in memory).
            held_out = pipeline(selection, seeds.seed("select_data")).take(
                steps_per_epoch(len(selection), c.batch_size, cap))
            tracker = GenotypeTracker(lambda m, logs: logs["val_loss"], mode="min",
                                      log_path=log_path)
            return (pipeline, steps, tracker, dict(validation_data=held_out),
                    f"contrastive loss on {where} (lower is better)")

        def pipeline(index, seed, epoch=0):
            return labeled_batches(ds, index, batch, seed, True, True,
                                   start_epoch=epoch, max_steps=cap,
                                   deterministic=c.deterministic)
        scorer = self._f1_scorer(selection)
        tracker = GenotypeTracker(lambda m, logs: scorer(m), mode="max", log_path=log_path)
        return pipeline, steps, tracker, {}, f"weighted F1 on {where} (higher is better)"

    def _f1_scorer(self, index):
        ds, task = self.dataset, self.task
        y = ds.labels[index]

        def score(model):
            logits = model.predict(model_inputs(ds, index), verbose=0)
            return task.weighted_f1(y, task.probabilities(logits))
        return score

    def _draw(self, genotype):
        try:
            from ssnas_tf.viz.architecture import draw_genotype
        except ImportError:  # pragma: no cover - visualize is part of the package
            return
        for ext in ("svg", "png"):
            with atomic_output(self.path(f"architecture.{ext}"), f".{ext}") as tmp:
                draw_genotype(genotype, tmp, title=f"{self.config.dataset} / {self.config.method}")

    # -- the fixed network ---------------------------------------------------

    def load_genotype(self, path=None):
        """The run's genotype.json, the file at `path`, or a fusion preset
        ("preset:NAME[:SEED]", `ssnas_tf.nas.presets`); validated."""
        if presets.is_preset_spec(path):
            # Without a SEED, the seed `--method fixed` uses (workflow.baselines).
            name, seed = presets.parse_preset_spec(
                path, self.seeds.child("search").seed("preset"))
            return presets.preset_genotype(name, self._backbone_features(), seed)
        if path is not None and not os.path.exists(path):
            raise RunError(f"genotype file {path} not found")
        path = path or self.path("genotype.json")
        if not os.path.exists(path):
            raise RunError(f"{path} not found: run `ssnas search` first")
        genotype = Genotype.load(path)
        self._check_features(genotype, path)
        return genotype

    def _check_features(self, genotype, path):
        """The genotype's features must be ones the run's backbones produce."""
        if not os.path.exists(self.path("backbones.keras")):
            return
        names = self._backbone_features()
        missing = [n for n in genotype.used_inputs if n not in names]
        if missing:
            raise GenotypeError(
                f"{path}: inputs: the genotype uses features {missing} that the "
                f"run's backbones do not produce ({names})")

    def _backbone_features(self):
        if self._feature_names is None:
            self._feature_names = list(self._load("backbones.keras", "search").output)
        return self._feature_names

    def build_encoder(self, genotype, backbones):
        """Raw inputs -> frozen backbones -> derived fusion network -> feature."""
        c = self.config
        inputs = {name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=name)
                  for name, t in backbones.input.items()}
        features = backbones(inputs, training=False)
        fused = DerivedNetwork(genotype, channels=c.channels, length=c.length,
                               dropout=c.dropout, attention_dropout=c.attention_dropout,
                               torch_defaults=c.torch_defaults, name="fusion")(features)
        return keras.Model(inputs, fused, name="encoder")

    # -- step 2: contrastive pretraining of the derived network -------------

    @_in_precision
    @_under_strategy
    def pretrain(self, genotype_path=None):
        c, ds, s = self.config, self.dataset, self.splits
        genotype = self.load_genotype(genotype_path)
        start = time.perf_counter()
        if c.method != "ssl":
            _log(f"[ssnas] pretrain: skipped (method {c.method} trains on labels only)")
            return self._record(seconds={"pretrain": 0.0})
        if not c.contrastive_pretraining:
            _log("[ssnas] pretrain: skipped (--no-contrastive-pretraining)")
            return self._record(seconds={"pretrain": 0.0})
        seeds = self._begin("pretrain")
        encoder = self.build_encoder(genotype, self._frozen_backbones())
        model = self._distributed(ContrastiveModel(
            encoder, ProjectionHead(c.projection_dim), temperature=c.temperature))
        steps = steps_per_epoch(len(s.unlabeled), c.batch_size, c.max_steps_per_epoch)

        def pairs(epoch):
            return view_pairs(ds, s.unlabeled, c.batch_size, self.augment_config,
                              seeds.seed("data"), epoch, c.max_steps_per_epoch,
                              deterministic=c.deterministic)
        model(next(iter(pairs(0)))[0])
        model.compile(keras.optimizers.Adam(c.learning_rate), jit_compile=c.jit_compile)
        _log(f"[ssnas] pretrain: contrastive, {c.pretrain_epochs} epochs x {steps} "
             f"steps on {len(s.unlabeled)} unlabeled samples")
        checkpoint = self._fit("pretrain", model, pairs, c.pretrain_epochs, steps,
                               {"optimizer": model.optimizer}, genotype.to_dict())
        atomic_save_model(encoder, self.path("encoder.keras"))
        # The genotype the encoder was built from (it may come from --genotype);
        # `finetune` checks it against the encoder itself.
        atomic_write_text(self.path("encoder_genotype.json"), genotype.to_json() + "\n")
        results = self._record(seconds={"pretrain": round(time.perf_counter() - start, 1)})
        checkpoint.finish()
        return results

    # -- step 3: classifier ---------------------------------------------------

    @_in_precision
    @_under_strategy
    def finetune(self, genotype_path=None):
        c, ds, s = self.config, self.dataset, self.splits
        # Validate everything before any training or writing.
        genotype = self.load_genotype(genotype_path)
        start = time.perf_counter()
        seeds = self._begin("finetune")
        encoder, origin = self._finetune_encoder(genotype, genotype_path)
        logits = classifier_head(ds.num_classes)(encoder.output)
        classifier = self._distributed(keras.Model(encoder.input, logits, name="classifier"))
        classifier.compile(keras.optimizers.Adam(c.finetune_learning_rate),
                           loss=self.task.keras_loss(),
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
        checkpoint = self._fit("finetune", classifier, train, c.finetune_epochs, steps,
                               {"optimizer": classifier.optimizer},
                               {"genotype": genotype.to_dict(), "origin": origin})
        atomic_save_model(classifier, self.path("classifier.keras"))
        # The genotype this classifier was built from (it may come from --genotype).
        atomic_write_text(self.path("classifier_genotype.json"), genotype.to_json() + "\n")
        results = self._record(encoder_origin=origin,
                               seconds={"finetune": round(time.perf_counter() - start, 1)})
        checkpoint.finish()
        return results

    def _finetune_encoder(self, genotype, genotype_path):
        """The encoder to fine-tune and its origin, "pretrained" or "random".

        An ssl run uses encoder.keras when it exists, and refuses it when it
        was built from another genotype than the one asked for.
        """
        path = self.path("encoder.keras")
        wanted = self.config.method == "ssl" and self.config.contrastive_pretraining
        if wanted and os.path.exists(path):
            encoder = keras.models.load_model(path)
            built_from = built_genotype(encoder, path)
            if built_from.to_dict() != genotype.to_dict():
                asked = genotype_path or self.path("genotype.json")
                flag = f" --genotype {genotype_path}" if genotype_path else ""
                raise RunError(
                    f"{path} was pretrained from another genotype than {asked} "
                    f"(its genotype: {self.path('encoder_genotype.json')}); run "
                    f"`ssnas pretrain --output {self.directory}{flag}` first, or "
                    f"delete {path} to fine-tune a randomly initialised fusion network")
            return encoder, "pretrained"
        if wanted:
            warnings.warn(
                f"{path} not found: fine-tuning a randomly initialised fusion network "
                f"(run `ssnas pretrain` first for the method's pretrained encoder); "
                f"results.json records encoder_origin 'random'", RuntimeWarning,
                stacklevel=3)
        return self.build_encoder(genotype, self._frozen_backbones()), "random"

    @_under_strategy
    def evaluate(self):
        """Scores the classifier on the held-out test split."""
        c, ds, s = self.config, self.dataset, self.splits
        start = time.perf_counter()
        self.configure_tensorflow()
        classifier = self._distributed(self._load("classifier.keras", "finetune"))
        probs = self.task.probabilities(
            classifier.predict(model_inputs(ds, s.test), verbose=0))
        metrics = self.task.metrics(ds.labels[s.test], probs)
        _log(f"[ssnas] evaluate on {len(s.test)} test samples: {metrics}")
        # The classifier's own fusion layer holds the genotype it was built from.
        genotype = built_genotype(classifier, self.path("classifier.keras"))
        return self._record(dataset=c.dataset, method=c.method,
                            label_fraction=c.label_fraction, seed=c.seed,
                            splits=s.sizes(), genotype=genotype.to_dict(),
                            **metrics, seconds={"evaluate": round(time.perf_counter() - start, 1)})

    def _serving_classifier(self):
        """classifier.keras, taking only the modalities the genotype reads."""
        from ssnas_tf.serving.prune import prune_classifier
        return prune_classifier(self._load("classifier.keras", "finetune"))

    def export(self, export_root=None, model_name=None, version=None):
        """Exports the classifier for TF Serving; returns the version dir."""
        from ssnas_tf.serving.export import export_classifier
        from ssnas_tf.serving.preprocessing import describe_inputs, vocabulary_files
        c, ds = self.config, self.dataset
        self.splits  # the data must be the run's: labels and inputs go into the export
        start = time.perf_counter()
        classifier = self._serving_classifier()
        export_root = export_root or self.path("export")
        model_name = model_name or f"ssnas_{c.dataset}"
        specs = {name: (ds.inputs[name].shape[1:],
                        _serving_dtype(ds.inputs[name], ds.kinds[name]))
                 for name in classifier.input}
        if version is not None and os.path.exists(
                os.path.join(export_root, model_name, str(version))):
            raise RunError(
                f"{os.path.join(export_root, model_name, str(version))}: version "
                f"{version} of '{model_name}' already exists; versions are never "
                f"overwritten (pass another version, or None for the next one)")
        version_dir = export_classifier(
            classifier, specs, ds.label_names, export_root, model_name, version=version,
            multilabel=self.task.multilabel, threshold=self.task.threshold,
            preprocessing=describe_inputs(ds, specs), extra_files=vocabulary_files(ds, specs),
            provenance=self._provenance(classifier))
        _log(f"[ssnas] export: {version_dir}")
        return self._record(export_dir=os.path.abspath(str(version_dir)),
                            seconds={"export": round(time.perf_counter() - start, 1)})

    def _provenance(self, classifier):
        """What the export records about its origin: the run's settings and,
        for a classifier with a fusion network, the genotype it was built from."""
        c = self.config
        out = {"dataset": c.dataset, "method": c.method,
               "label_fraction": c.label_fraction, "seed": c.seed}
        try:
            out["genotype"] = classifier.get_layer("fusion").genotype.to_dict()
        except (ValueError, AttributeError):  # e.g. RandomNet: no genotype
            pass
        return out

    def run_all(self, overwrite=False, export=True):
        """All steps; returns results.json's content.

        On a directory holding an interrupted run with the same config, the
        finished steps are skipped and the interrupted one continues from its
        last finished epoch; `overwrite` starts afresh instead. `export=False`
        stops after `evaluate` (experiment trials).
        """
        with self.lock():
            resumed = self.start(overwrite=overwrite)
            done = finished_steps(self.path("results.json")) if resumed else set()
            for step in RUN_STEPS if export else RUN_STEPS[:-1]:
                if step not in done:
                    getattr(self, "train_backbones" if step == "backbones" else step)()
        with open(self.path("results.json")) as f:
            return json.load(f)


def _frozen_layers(layer):
    """The outermost non-trainable sublayers (frozen backbones): never updated."""
    for sub in getattr(layer, "layers", []):
        if not sub.trainable:
            yield sub
        else:
            yield from _frozen_layers(sub)


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


def _serving_dtype(array, kind):
    if kind == "text":
        return "string"
    if kind in ("image", "spectrogram") and array.dtype == np.uint8:
        return "uint8"
    if kind == "sequence":
        return "int32"
    return "float32"


def _summary(genotype):
    try:
        from ssnas_tf.viz.architecture import genotype_summary
        return genotype_summary(genotype)
    except ImportError:  # pragma: no cover
        return genotype.to_json()


__all__ = ["Run", "RunError", "DataError", "DATASET_AUGMENT"]
