"""ssnas_tf: self-supervised multimodal neural architecture search in Keras 3.

The BM-NAS bilevel fusion search space searched DARTS-style with the SimCLR
contrastive loss (Suzuki & Ono, IEICE Trans. Inf. & Syst. E108-D(6), 2025),
then contrastive pretraining of the derived network and a classifier trained
on a few labels. Supervised BM-NAS search is the baseline on the same code.
"""

from ssnas_tf.version import __version__
from ssnas_tf.config import RunConfig
from ssnas_tf.contrastive_model import ContrastiveModel
from ssnas_tf.derived import DerivedCell, DerivedNetwork
from ssnas_tf.genotype import Genotype, GenotypeError, StepGenotype, derive_genotype
from ssnas_tf.heads import ProjectionHead, classifier_head
from ssnas_tf.losses import NTXent, nt_xent, positive_retrieval_accuracy
from ssnas_tf.primitives import PAPER_PRIMITIVES, PRIMITIVES, REFERENCE_PRIMITIVES
from ssnas_tf.reshape import FeatureReshape
from ssnas_tf.search_model import SearchModel, reference_optimizers
from ssnas_tf.search_space import MixedStep, SearchCell, SearchNetwork

__all__ = [
    "__version__", "ContrastiveModel", "DerivedCell", "DerivedNetwork", "FeatureReshape",
    "Genotype", "GenotypeError", "MixedStep", "NTXent", "PAPER_PRIMITIVES", "PRIMITIVES",
    "ProjectionHead", "REFERENCE_PRIMITIVES", "RunConfig", "SearchCell", "SearchModel",
    "SearchNetwork", "StepGenotype", "classifier_head", "derive_genotype", "nt_xent",
    "positive_retrieval_accuracy", "reference_optimizers",
]
