"""ssnas_tf: self-supervised multimodal neural architecture search in Keras 3.

The BM-NAS bilevel fusion search space searched DARTS-style with the SimCLR
contrastive loss (Suzuki & Ono, IEICE Trans. Inf. & Syst. E108-D(6), 2025),
then contrastive pretraining of the derived network and a classifier trained
on a few labels. Supervised BM-NAS search is the baseline on the same code.

Layout, by role: `nas` (search space, genotypes, derived model, architect),
`ssl` (NT-Xent, heads, contrastive model, augmentation), `backbones`, `data`
(loaders, splits, pipelines), `workflow` (run settings and steps), `serving`
(TF Serving export), `viz` (pictures of genotypes).

The public names below are imported on first use, so that `import ssnas_tf`
(and the `ssnas` command line) can configure TensorFlow's logging before
TensorFlow itself is imported.
"""

import importlib

from ssnas_tf.version import __version__

# public name -> module that defines it
_EXPORTS = {
    "AugmentConfig": "ssnas_tf.ssl.augment",
    "ContrastiveModel": "ssnas_tf.ssl.contrastive_model",
    "DataError": "ssnas_tf.data.base",
    "DerivedCell": "ssnas_tf.nas.model",
    "DerivedNetwork": "ssnas_tf.nas.model",
    "FeatureReshape": "ssnas_tf.nas.feature_reshape",
    "Genotype": "ssnas_tf.nas.genotypes",
    "GenotypeError": "ssnas_tf.nas.genotypes",
    "GenotypeTracker": "ssnas_tf.nas.callbacks",
    "JointContrastiveModel": "ssnas_tf.ssl.contrastive_model",
    "LogMelSpectrogram": "ssnas_tf.data.audio",
    "MixedStep": "ssnas_tf.nas.model_search",
    "MultimodalDataset": "ssnas_tf.data.base",
    "NTXent": "ssnas_tf.ssl.losses",
    "PAPER_PRIMITIVES": "ssnas_tf.nas.operations",
    "PRIMITIVES": "ssnas_tf.nas.operations",
    "ProjectionHead": "ssnas_tf.ssl.heads",
    "REFERENCE_PRIMITIVES": "ssnas_tf.nas.operations",
    "Run": "ssnas_tf.workflow.run",
    "RunConfig": "ssnas_tf.workflow.config",
    "RunError": "ssnas_tf.workflow.run",
    "SearchCell": "ssnas_tf.nas.model_search",
    "SearchModel": "ssnas_tf.nas.architect",
    "SearchNetwork": "ssnas_tf.nas.model_search",
    "StepGenotype": "ssnas_tf.nas.genotypes",
    "TabularColumns": "ssnas_tf.data.tabular",
    "TabularEncoder": "ssnas_tf.data.tabular",
    "Task": "ssnas_tf.tasks",
    "as_dataset": "ssnas_tf.data.in_memory",
    "build_backbones": "ssnas_tf.backbones.small",
    "classifier_head": "ssnas_tf.ssl.heads",
    "derive_genotype": "ssnas_tf.nas.derive",
    "export_classifier": "ssnas_tf.serving.export",
    "load_dataset": "ssnas_tf.data",
    "nt_xent": "ssnas_tf.ssl.losses",
    "positive_retrieval_accuracy": "ssnas_tf.ssl.losses",
    "precision_scope": "ssnas_tf.precision",
    "predict": "ssnas_tf.serving.predict",
    "pretrain_backbones": "ssnas_tf.backbones.pretrain",
    "read_wav": "ssnas_tf.data.audio",
    "reference_optimizers": "ssnas_tf.nas.architect",
    "simclr_loss": "ssnas_tf.ssl.contrastive_model",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ssnas_tf' has no attribute {name!r}")


def __dir__():
    return __all__
