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

The steps themselves are objects in `ssnas_tf.workflow.steps`; `Run` holds
what they share (config, data, splits, seeds, results.json, checkpoints).
"""

import contextlib
import json
import math
import os
import shutil

import keras
import tensorflow as tf

from ssnas_tf import devices
from ssnas_tf.atomic import atomic_output, atomic_write_text
from ssnas_tf.data import as_dataset, load_dataset
from ssnas_tf.data.splits import RunSplits, make_splits
from ssnas_tf.errors import ConfigError, GenotypeError, RunError
from ssnas_tf.graph_options import skip_idle_grappler_passes
from ssnas_tf.nas import presets
from ssnas_tf.nas.genotypes import Genotype
from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.precision import precision_scope
from ssnas_tf.seeds import SeedTree
from ssnas_tf.tasks import Task
from ssnas_tf.ssl.augment import AugmentConfig
from ssnas_tf.workflow import reproducibility
from ssnas_tf.workflow import steps as steps_lib
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.fingerprint import (dataset_fingerprint, read_run_splits,
                                           source_files)
from ssnas_tf.workflow.lock import RunLock
from ssnas_tf.workflow.model_files import ModelFiles
from ssnas_tf.workflow.resume import CHECKPOINT_DIR, config_differences, finished_steps
# Importable from here as before (the baselines and tests use them).
from ssnas_tf.workflow.steps import (_log, _summary, built_genotype,  # noqa: F401
                                     search_batch_size)

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


# The `Run` method of each step name.
_METHODS = {"backbones": "train_backbones"}


class Run:
    """One run directory and the steps that fill it.

    The steps are objects (`ssnas_tf.workflow.steps`) that the methods
    `train_backbones`, `search`, `pretrain`, `finetune`, `evaluate` and
    `export` run; `STEPS` maps each step name to its class, and a baseline
    method supplies its own map (`ssnas_tf.workflow.baselines`).

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
        dataset: data to use instead of loading `config.dataset`: a
            `MultimodalDataset` (e.g. `ssnas_tf.data.validation.validation_view`
            of one), or a dict of NumPy arrays, a pandas DataFrame or a
            `tf.data.Dataset` that `ssnas_tf.data.as_dataset` converts. Its
            fingerprint is checked against splits.json like any loaded data.
            Defaults to None.

    Example:
    >>> run = Run("runs/demo", RunConfig(label_fraction=0.1))
    >>> run.run_all()["weighted_f1"]
    """

    STEPS = steps_lib.STEPS
    # Files a method's own steps write besides STEP_ARTIFACTS; `start`
    # clears them too when a run directory is reused.
    EXTRA_ARTIFACTS = ()

    def __init__(self, directory, config=None, verbose=2, callbacks=None,
                 tensorboard=False, dataset=None):
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
        # Every random source's seed comes from this tree (docs/reproducibility.md).
        self.seeds = SeedTree(config.seed)
        # None: loaded from config.dataset on first use
        self._dataset = None if dataset is None else as_dataset(dataset, name=config.dataset)
        self._splits = None
        self._feature_names = None
        self._models = ModelFiles(directory)
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
        return read_run_splits(self.path("splits.json"), self.dataset, self._fingerprint,
                               self.config.dataset)

    @property
    def task(self):
        """The dataset's `Task`: loss, probabilities, decision rule, metrics."""
        return Task.for_dataset(self.dataset, self.config.threshold)

    @property
    def augment_config(self):
        overrides = dict(DATASET_AUGMENT.get(self.config.dataset, {}))
        overrides.update(self.config.augment_overrides or {})
        try:  # checked now, not when a step first builds a pipeline
            config = AugmentConfig(overrides=overrides)
            for name, kind in self.dataset.kinds.items():
                config.settings_for(name, kind)
            return config
        except (ValueError, TypeError) as err:  # the ssl layer's own check
            raise ConfigError(f"augment_overrides: {err}") from None

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
        maps = [m for m, k in self.dataset.kinds.items()
                if k in ("image", "spectrogram", "audio")]
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
        for stale in STEP_ARTIFACTS + self.EXTRA_ARTIFACTS + ("splits.json", "config.json"):
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

    def _save_model(self, model, name):
        self._models.save(model, name)

    def _load(self, name, step, reuse=False, release=False):
        """`ModelFiles.load` of the run directory's file `name`."""
        return self._models.load(name, step, reuse=reuse, release=release)

    def configure_tensorflow(self):
        """Op determinism and thread count of `config` for this process (each
        step calls it; the CLI calls it first, before TensorFlow runs an op)."""
        self._determinism = reproducibility.configure_determinism(
            self.config.deterministic, self.config.threads)
        skip_idle_grappler_passes()

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
        return devices.strategy_record(self._strategy or tf.distribute.get_strategy(),
                                       self.config.distribute, self.config.sync_batch_norm)

    def _dataset_fingerprint(self):
        # The fingerprint `start` stored with the splits (what they were drawn from).
        if self._recorded_fingerprint is None:
            path = self.path("splits.json")
            if os.path.exists(path):
                with open(path) as f:
                    self._recorded_fingerprint = json.load(f).get("fingerprint")
        return self._recorded_fingerprint

    def _frozen_backbones(self, reuse=False):
        backbones = self._load("backbones.keras", "search", reuse=reuse)
        backbones.trainable = False
        return backbones

    def _draw(self, genotype):
        try:
            from ssnas_tf.viz.architecture import draw_genotype
        except ImportError:  # pragma: no cover - visualize is part of the package
            return
        for ext in ("svg", "png"):
            with atomic_output(self.path(f"architecture.{ext}"), f".{ext}") as tmp:
                draw_genotype(genotype, tmp, title=f"{self.config.dataset} / {self.config.method}")

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
            backbones = self._load("backbones.keras", "search", reuse=True)
            self._feature_names = list(backbones.output)
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

    # -- the steps -----------------------------------------------------------

    def step(self, name):
        """The step object this run's method uses for `name` (`STEPS`)."""
        return self.STEPS[name]()

    def _run_step(self, name, **arguments):
        """Runs step `name` under the run's precision policy and strategy
        scope, as the step asks."""
        step = self.step(name)
        with contextlib.ExitStack() as scopes:
            if step.in_precision:
                scopes.enter_context(precision_scope(self.config.precision))
            if step.under_strategy and self.config.distribute != "none":
                scopes.enter_context(self.strategy.scope())
            return step(self, **arguments)

    def train_backbones(self):
        """Step 0: the per-modality backbones (`backbones.keras`)."""
        return self._run_step("backbones")

    def search(self):
        """Step 1: the architecture (`genotype.json` and its picture)."""
        return self._run_step("search")

    def pretrain(self, genotype_path=None):
        """Step 2: contrastive pretraining of the derived network (`encoder.keras`)."""
        return self._run_step("pretrain", genotype_path=genotype_path)

    def finetune(self, genotype_path=None):
        """Step 3: the classifier on the labeled split (`classifier.keras`)."""
        return self._run_step("finetune", genotype_path=genotype_path)

    def evaluate(self):
        """Scores the classifier on the held-out test split."""
        return self._run_step("evaluate")

    def export(self, export_root=None, model_name=None, version=None):
        """Exports the classifier for TF Serving; returns results.json's content."""
        return self._run_step("export", export_root=export_root, model_name=model_name,
                              version=version)

    def predict(self, data, output=None, **kwargs):
        """`ssnas_tf.serving.predict.predict` of this run's newest export, with
        the run's dataset and loader options: `data` is an `.npz`, a `.csv` or
        a dataset folder, `output` an optional CSV, `kwargs` its other
        arguments (batch_size, on_bad_rows, progress). Returns `Predictions`."""
        from ssnas_tf.serving.predict import predict
        c = self.config
        kwargs.setdefault("dataset_options", c.dataset_options)
        return predict(self.directory, data, dataset=c.dataset, output=output, **kwargs)

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
                    getattr(self, _METHODS.get(step, step))()
        with open(self.path("results.json")) as f:
            return json.load(f)
