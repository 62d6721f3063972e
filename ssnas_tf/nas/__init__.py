"""The BM-NAS bilevel search space, DARTS's split by role.

operations (fusion primitives), feature_reshape, model_search (the search-time
network with alpha/beta/gamma), genotypes, derive, model (the fixed network
rebuilt from a genotype), architect (the alternating update), callbacks.
"""

from ssnas_tf.nas.architect import SearchModel, reference_optimizers
from ssnas_tf.nas.callbacks import GenotypeTracker
from ssnas_tf.nas.derive import derive_genotype
from ssnas_tf.nas.feature_reshape import FeatureReshape
from ssnas_tf.nas.genotypes import Genotype, GenotypeError, StepGenotype
from ssnas_tf.nas.model import DerivedCell, DerivedNetwork
from ssnas_tf.nas.model_search import MixedStep, SearchCell, SearchNetwork
from ssnas_tf.nas.operations import PAPER_PRIMITIVES, PRIMITIVES, REFERENCE_PRIMITIVES
