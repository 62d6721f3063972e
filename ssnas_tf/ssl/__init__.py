"""SimCLR pieces: NT-Xent, the projection head, the contrastive model, augmentation."""

from ssnas_tf.ssl.augment import AugmentConfig
from ssnas_tf.ssl.contrastive_model import ContrastiveModel
from ssnas_tf.ssl.heads import ProjectionHead, classifier_head
from ssnas_tf.ssl.losses import NTXent, nt_xent, positive_retrieval_accuracy
