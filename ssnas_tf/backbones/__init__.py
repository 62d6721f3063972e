"""Per-modality backbones: models from raw modality input to named feature taps.

The fusion network (`SearchNetwork`, `DerivedNetwork`) reads a dict feature
name -> tensor of shape (N, D), (N, T, D) or (N, H, W, D). A backbone turns one
modality's raw input into such "taps", intermediate features of a per-modality
network (BM-NAS taps four VGG19 layers as Image_1..Image_4 and the two hidden
layers of a Maxout MLP as Text_1, Text_2).

What is here:

- `tap_model`: any built functional Keras model + layer names -> a model whose
  output is the dict of those layers' outputs, frozen or trainable.
- The MM-IMDB reference backbones: `vgg19_taps` (ImageNet VGG19, taps relu4_1,
  relu4_4, relu5_3, pool5) and `maxout_mlp_taps` (the Maxout MLP on the 300-d
  mean word2vec vector, taps = the two Maxout outputs).
- Small backbones for every modality kind (`build_backbone`) and
  `build_backbones`, which joins one backbone per modality of a
  `MultimodalDataset` into ONE model: dict input (modality name -> raw tensor)
  -> dict output (all taps, in modality order). User models plug in per
  modality through `custom=`.
- `pretrain_backbones`: unimodal SimCLR pretraining of each backbone on
  unlabeled training samples.

Inputs follow `ssnas_tf.data.base`, except that images and spectrograms enter
the models as float32 in [0, 1] (what `ssnas_tf.ssl.augment` returns; use
`ssnas_tf.data.pipelines.to_model_inputs` to convert uint8 arrays; the TF
Serving export does it for uint8 inputs). Sequences are int token ids (0 = padding, 1 = mask/OOV) and
text is raw strings, vectorised inside the model with core TensorFlow ops only,
so exported SavedModels load without tensorflow-text.

Reference: Yin, Huang & Zhang, "BM-NAS", AAAI 2022 (feature taps);
Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR-W 2017
(MM-IMDB, Maxout MLP); Simonyan & Zisserman, "Very Deep Convolutional Networks",
ICLR 2015 (VGG19); Goodfellow et al., "Maxout Networks", ICML 2013;
Chen et al., "SimCLR", ICML 2020.
"""

from ssnas_tf.backbones.layers import (ImagePreprocess, MaskedTokenMean, Maxout, fold_width,
                                       standardize_text)
from ssnas_tf.backbones.pretrain import pretrain_backbones
from ssnas_tf.backbones.reference import (VGG19_TAP_LAYERS, maxout_mlp_taps,
                                          reference_backbones, vgg19_taps)
from ssnas_tf.backbones.small import backbones_by_modality, build_backbone, build_backbones
from ssnas_tf.backbones.taps import tap_model

__all__ = [
    "ImagePreprocess",
    "MaskedTokenMean",
    "Maxout",
    "fold_width",
    "VGG19_TAP_LAYERS",
    "backbones_by_modality",
    "build_backbone",
    "build_backbones",
    "maxout_mlp_taps",
    "pretrain_backbones",
    "reference_backbones",
    "standardize_text",
    "tap_model",
    "vgg19_taps",
]
