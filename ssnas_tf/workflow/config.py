"""Run settings: one frozen dataclass, built only by the CLI and notebooks."""

import dataclasses
import json
from typing import Optional, Tuple

from ssnas_tf.devices import DISTRIBUTE
from ssnas_tf.seeds import derive_seed
from ssnas_tf.nas.operations import PAPER_PRIMITIVES, check_primitive_names
from ssnas_tf.nas.presets import PRESETS
from ssnas_tf.precision import check_precision
from ssnas_tf.errors import ConfigError

# ssl and supervised: workflow.run; the baselines: workflow.baselines.
METHODS = ("ssl", "supervised", "fixed", "surrogate", "randomnet")
BACKBONE_PRETRAINING = ("shared", "external", "none")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; saved as `config.json` in the run directory.

    Defaults are tuned for the embedded mfeat dataset on 2 CPU cores.

    Args:
        dataset: dataset name (`ssnas_tf.data.DATASETS`). Defaults to "mfeat".
        data_dir: where its files are. Defaults to None.
        method: "ssl" (the paper's method), "supervised" (BM-NAS), or a
            baseline (`ssnas_tf.workflow.baselines`): "fixed" (a preset
            fusion genotype, no search), "surrogate" (Bayesian optimisation
            over genotypes, MFAS-style) or "randomnet" (random search over
            whole networks on raw inputs). Defaults to "ssl".
        label_fraction: r, the labeled fraction of the non-test samples.
            Defaults to 0.1.
        seed: seeds splits, initialisation and augmentation. Defaults to 0.
        split_seed: seeds the splits alone, when given (the experiment
            runner gives every method of trial t the same splits, while
            `seed` seeds training). Defaults to None: derived from `seed`.
        test_fraction: test share when the dataset has no test split.
            Defaults to 0.25.
        backbone_epochs: unimodal contrastive pretraining of the backbones
            (0 keeps them as built). Defaults to 5.
        search_epochs: architecture search epochs (>= 1). Defaults to 5.
        pretrain_epochs: contrastive pretraining of the derived network
            (>= 1 for ssl; unused by supervised). Defaults to 5.
        finetune_epochs: classifier training epochs (>= 1). Defaults to 60.
            The four epoch defaults are the benchmark suite's best by mean
            validation rank over four datasets (docs/modalities.md); the
            paper's MM-IMDB runs used 30 search epochs.
        backbone_pretraining: how the backbones are pretrained (unimodal
            SimCLR, labels unused). "shared": on all non-test samples, which
            every method also searches/trains on. "external": on a seeded
            random `external_fraction` of the non-test samples that no
            method then uses for search, pretraining, classifier training or
            testing (the analogue of the paper's ImageNet / external text
            extractors; the experiment default). "none": random, frozen
            backbones. Defaults to "shared".
        external_fraction: the share set aside by "external". Defaults to 0.2.
        labels_per_class: K labeled samples per class (all of a smaller
            class) instead of the fraction `label_fraction`. Defaults to None.
        contrastive_pretraining: ssl only: False skips the contrastive
            pretraining of the derived network, so the classifier trains a
            freshly initialised fusion network (the paper's Experiment 2).
            Defaults to True.
        batch_size: batch size of the contrastive and search steps. Defaults
            to 128.
        finetune_batch_size: batch size of the classifier training (few
            labels need small batches). Defaults to 32.
        backbone_width: width of the small backbones. Defaults to 64.
        backbones: "small" (a small CNN / MLP per modality) or "reference"
            (BM-NAS's VGG19 taps for images and Maxout MLP for 300-d text;
            `backbones.reference_backbones`). Defaults to "small".
        image_weights: VGG19 weights, required by "reference": "imagenet", a
            local weights file, or "random" (random frozen VGG19 features, for
            tests). Defaults to None (for "small", which takes none).
        channels, length, num_cells, num_steps, multiplier, node_multiplier,
            dropout, primitives: the search space (`docs/fidelity.md`).
        temperature: NT-Xent tau. Defaults to 0.2.
        search_cross_modal: ssl search only: the share of samples whose two
            views are split across modalities (one view keeps a random subset
            of the modalities, the other the rest;
            `ssnas_tf.ssl.augment.cross_modal`), so the search cannot match
            views through one modality alone. 0 gives SimCLR's views.
            Defaults to 1 (chosen on validation data: docs/modalities.md).
        pretrain_cross_modal: the same share for the contrastive pretraining
            of the derived network. Defaults to 0 (SimCLR's views).
        projection_dim: projection head output size. Defaults to 64.
        learning_rate: weight learning rate (cosine warm restarts to
            1e-3 of it during search). Defaults to 1e-3.
        arch_learning_rate: Defaults to 3e-4 (reference).
        weight_decay, arch_weight_decay: coupled L2 (reference 1e-4, 1e-3).
        finetune_learning_rate: Defaults to 1e-3.
        threshold: multi-label decision threshold. Defaults to 0.3 (reference).
        augment_overrides: per-modality augmentation overrides, JSON-able
            {modality: {field: value}}. Defaults to None.
        dataset_options: extra loader options as a JSON-able dict.
        attention_dropout: the attention primitive's dropout; None means
            `dropout` (the BM-NAS code hard-codes 0.1). Defaults to None.
        torch_defaults: PyTorch's Dense initialisation and BN running
            variance in the fusion network, as in the BM-NAS code.
            Defaults to False.
        precision: "float32", "mixed_bfloat16" or "mixed_float16": the Keras
            dtype policy of the training steps (`ssnas_tf.precision`).
            Defaults to "float32".
        arch_order: 1 (first-order DARTS) or 2 (DARTS's unrolled step).
            Defaults to 1.
        jit_compile: XLA for the training steps (for GPUs). Defaults to False.
        trials: architectures tried by "surrogate" and "randomnet".
            Defaults to 100 (RandomNet's budget).
        fusion: the preset of "fixed" (`ssnas_tf.nas.presets.PRESETS`).
            Defaults to "late".
        trial_fraction: RandomNet trains each trial on this fraction of its
            training samples (S steps; above 1 means several epochs), and at
            least `trial_min_steps` steps. Defaults to 0.1 (the paper's 10%).
        trial_min_steps: the fewest steps a RandomNet trial trains (10% of a
            few hundred samples is one or two steps, which rank nothing).
            Defaults to 30.
        randomnet_learning_rate: Adam's rate for RandomNet's trials and
            (cosine-decayed to 0) its final training. Defaults to 1e-3; the
            paper's 1e-4 leaves its raw-input networks at chance after a
            few hundred steps.
        randomnet_normalization: RandomNet's sampled networks standardise
            image and spectrogram inputs and put batch normalisation after
            every conv or Dense op, its statistics reset after training
            (`ssnas_tf.tuners.randomnet.precise_batch_norm`). Defaults to
            True (docs/modalities.md#randomnet-that-learns); False gives the
            paper's networks.
        max_steps_per_epoch: cap on the batches of every epoch of every step
            (smoke tests, benchmarks on large data). Defaults to None (no cap).
        deterministic: TensorFlow op determinism, so a rerun with the same
            seed on the same kind of machine gives bit-identical results
            (docs/reproducibility.md). Defaults to True.
        threads: threads per op; they change results, so a run is reproduced
            on a machine with another core count by passing the `threads`
            its results.json records. Defaults to None: 1 on at most two
            cores (faster there), else one per core
            (`reproducibility.default_intra_op_threads`).
        distribute: "none", "mirrored" (this machine's GPUs) or
            "multi-worker" (the workers of TF_CONFIG); `ssnas_tf.devices`.
            Defaults to "none".
        sync_batch_norm: batch statistics over all replicas in every batch
            norm of the trained models. Defaults to False.
    """

    dataset: str = "mfeat"
    data_dir: Optional[str] = None
    method: str = "ssl"
    label_fraction: float = 0.1
    seed: int = 0
    test_fraction: float = 0.25
    # Chosen by mean validation rank on the benchmark suite (docs/modalities.md).
    backbone_epochs: int = 5
    search_epochs: int = 5
    pretrain_epochs: int = 5
    finetune_epochs: int = 60
    batch_size: int = 128
    finetune_batch_size: int = 32
    backbone_width: int = 64
    backbones: str = "small"
    image_weights: Optional[str] = None
    channels: int = 64
    length: int = 4
    num_cells: int = 2
    num_steps: int = 2
    multiplier: int = 2
    node_multiplier: int = 1
    dropout: float = 0.1
    primitives: Tuple[str, ...] = PAPER_PRIMITIVES
    temperature: float = 0.2
    search_cross_modal: float = 1.0
    pretrain_cross_modal: float = 0.0
    projection_dim: int = 64
    learning_rate: float = 1e-3
    arch_learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    arch_weight_decay: float = 1e-3
    finetune_learning_rate: float = 1e-3
    threshold: float = 0.3
    augment_overrides: Optional[dict] = None
    dataset_options: Optional[dict] = None
    jit_compile: bool = False
    max_steps_per_epoch: Optional[int] = None
    attention_dropout: Optional[float] = None
    torch_defaults: bool = False
    trials: int = 100
    fusion: str = "late"
    trial_fraction: float = 0.1
    trial_min_steps: int = 30
    randomnet_learning_rate: float = 1e-3
    randomnet_normalization: bool = True
    precision: str = "float32"
    arch_order: int = 1
    split_seed: Optional[int] = None
    backbone_pretraining: str = "shared"
    external_fraction: float = 0.2
    labels_per_class: Optional[int] = None
    contrastive_pretraining: bool = True
    deterministic: bool = True
    threads: Optional[int] = None
    distribute: str = "none"
    sync_batch_norm: bool = False

    def __post_init__(self):
        object.__setattr__(self, "primitives", tuple(self.primitives))
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {METHODS}, got '{self.method}'")
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(
                f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        try:
            check_primitive_names(self.primitives)
        except ValueError as err:  # nas's own check; here it is a setting
            raise ConfigError(str(err)) from None
        self._check_epochs()
        for name in ("backbone_width", "channels", "length", "num_cells", "num_steps",
                     "multiplier", "node_multiplier", "projection_dim",
                     "finetune_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.multiplier > self.num_cells:
            raise ConfigError(f"multiplier ({self.multiplier}) must be <= num_cells "
                             f"({self.num_cells})")
        if self.node_multiplier > self.num_steps:
            raise ConfigError(f"node_multiplier ({self.node_multiplier}) must be <= "
                             f"num_steps ({self.num_steps})")
        for name in ("temperature", "learning_rate", "arch_learning_rate",
                     "finetune_learning_rate"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("search_cross_modal", "pretrain_cross_modal"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1], "
                                  f"got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        check_precision(self.precision)
        if self.arch_order not in (1, 2):
            raise ConfigError(f"arch_order must be 1 or 2, got {self.arch_order}")
        if self.arch_order == 2 and self.precision == "mixed_float16":
            raise ConfigError("arch_order 2 needs precision float32 or mixed_bfloat16 "
                             "(its inner gradients are not loss-scaled)")
        if self.attention_dropout is not None and not 0 <= self.attention_dropout < 1:
            raise ConfigError(f"attention_dropout must be in [0, 1), got "
                             f"{self.attention_dropout}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        self._check_backbones()
        if self.backbone_pretraining not in BACKBONE_PRETRAINING:
            raise ConfigError(f"--backbone-pretraining must be one of "
                             f"{BACKBONE_PRETRAINING}, got '{self.backbone_pretraining}'")
        if not 0 < self.external_fraction < 1:
            raise ConfigError(f"--external-fraction must be in (0, 1), got "
                             f"{self.external_fraction}")
        if self.labels_per_class is not None and self.labels_per_class < 1:
            raise ConfigError(f"--labels-per-class must be >= 1, got {self.labels_per_class}")
        if self.split_seed is not None and not 0 <= self.split_seed < 2 ** 32:
            raise ConfigError(f"split_seed must be in [0, 2**32) or None, got {self.split_seed}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(f"max_steps_per_epoch must be >= 1, got "
                             f"{self.max_steps_per_epoch}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.distribute not in DISTRIBUTE:
            raise ConfigError(f"--distribute must be one of {DISTRIBUTE}, got "
                             f"'{self.distribute}'")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2, got {self.batch_size}")
        self._check_baseline_fields()

    def _check_baseline_fields(self):
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")
        if self.fusion not in PRESETS:
            raise ConfigError(f"--fusion must be one of {PRESETS}, got '{self.fusion}'")
        if not self.trial_fraction > 0:
            raise ConfigError(f"--trial-fraction must be > 0, got {self.trial_fraction}")
        if self.trial_min_steps < 1:
            raise ConfigError(f"--trial-min-steps must be >= 1, got {self.trial_min_steps}")
        if not self.randomnet_learning_rate > 0:
            raise ConfigError(f"randomnet_learning_rate must be > 0, got "
                             f"{self.randomnet_learning_rate}")

    def _check_epochs(self):
        """Zero epochs only where the step still means something."""
        if self.backbone_epochs < 0:  # 0: the backbones stay as built (e.g. imagenet)
            raise ConfigError(f"backbone_epochs (--backbone-epochs) must be >= 0, got "
                             f"{self.backbone_epochs}")
        needed = {"search_epochs": ("--epochs", "a search of 0 epochs derives no "
                                                "architecture"),
                  "finetune_epochs": ("--finetune-epochs", "0 epochs leave the "
                                                           "classifier untrained")}
        if self.method == "ssl" and self.contrastive_pretraining:
            needed["pretrain_epochs"] = ("--pretrain-epochs", "0 epochs would record a "
                                                              "random encoder as pretrained")
        for name, (flag, why) in needed.items():
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} ({flag}) must be >= 1, got "
                                 f"{getattr(self, name)}: {why}")

    def _check_backbones(self):
        if self.backbones not in ("small", "reference"):
            raise ConfigError(f"backbones must be 'small' or 'reference', got '{self.backbones}'")
        if self.backbones == "reference" and self.image_weights is None:
            raise ConfigError(
                "--backbones reference needs --image-weights: 'imagenet', a weights "
                "file, or 'random' to mean a randomly initialised, frozen VGG19")
        if self.backbones != "reference" and self.image_weights is not None:
            raise ConfigError(f"--image-weights {self.image_weights}: only "
                             f"--backbones reference uses image weights")

    @property
    def effective_split_seed(self):
        """The seed of the splits: `split_seed`, or when it is None the seed
        tree's "splits" seed below `seed` (`ssnas_tf.seeds`)."""
        if self.split_seed is None:
            return derive_seed(self.seed, "splits")
        return self.split_seed

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text, source="config.json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source}: malformed JSON ({err})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown fields {unknown}")
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
