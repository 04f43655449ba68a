"""Layers the course needs that Keras 3 does not ship, one module per kind.

Keras 3.15 already has every augmentation layer of the modern recipe book (``RandomFlip``,
``RandomCrop``, ``RandomTranslation``, ``RandomRotation``, ``RandomZoom``, ``RandomContrast``,
``RandomBrightness``, ``RandomColorJitter``, ``RandomErasing``, ``RandomGaussianBlur``,
``MixUp``, ``CutMix``, ``RandAugment``, ``AugMix``, ``GaussianNoise`` ...), and the course uses
those. What is missing are the pieces of the classic papers the course re-builds:

* ``LocalResponseNormalization``: AlexNet (Krizhevsky, Sutskever & Hinton, 2012), §3.3;
* ``DropConnect``: Wan et al., "Regularization of Neural Networks using DropConnect",
  ICML 2013;
* ``L2Pooling2D``: the lecture's third pooling variant, the square root of the *mean* of
  the squares (Sermanet, Chintala & LeCun used L2 pooling on house numbers, ICPR 2012);
* ``RandomLighting`` (+ ``fit_pca_lighting``): AlexNet's "PCA colour augmentation", §4.1;
* ``RandomShift``: pad-and-crop with one offset per image that compiles under XLA; Keras'
  ``RandomCrop`` inside a model uses one offset per batch and turns XLA off for the whole
  model (see its docstring and ``benchmarks/augmentation.py``);
* ``Cutout``: DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks
  with Cutout", 2017 (Keras' ``RandomErasing`` is a different recipe; see the docstring);
* ``SobelEdges``: the Sobel-filtering view of SimCLR's augmentation gallery (Chen,
  Kornblith, Norouzi & Hinton, ICML 2020);
* ``StochasticDepth`` (+ ``stochastic_depth_rates``): drop a residual branch per example,
  Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016 (the lecture's "stochastic
  depth"; ``Dropout`` with a per-example ``noise_shape`` computes the same, see the docstring);
* ``FractionalMaxPooling2D``: Graham, "Fractional Max-Pooling", 2014 (the lecture's
  "fractional pooling"; TensorFlow's ``tf.nn.fractional_max_pool`` has no Keras layer).

All of them are channels-last, use ``keras.ops`` / ``keras.random`` only (the unit tests run them
on TensorFlow and JAX, inside a compiled ``train_step`` too), serialize through
``get_config`` and are registered under the ``cnncourse`` package name, so a saved
``.keras`` file that contains them loads again once ``cnncourse.layers`` is imported.
The random layers are identity at inference (``training`` false or not given), as Keras'
own augmentation layers are, and draw from a ``keras.random.SeedGenerator`` so a ``seed``
makes a run repeatable.
"""

from cnncourse.layers.activations import (
    GELU_SWISH_BETA,
    REFERENCE,
    Dice,
    Swish,
    derivative,
    swish,
)
from cnncourse.layers.augmentation import (
    Cutout,
    RandomLighting,
    RandomShift,
    fit_pca_lighting,
)
from cnncourse.layers.filters import SOBEL_MAX_MAGNITUDE, SOBEL_X, SOBEL_Y, SobelEdges
from cnncourse.layers.normalization import LocalResponseNormalization
from cnncourse.layers.pooling import FractionalMaxPooling2D, L2Pooling2D
from cnncourse.layers.regularization import DropConnect, StochasticDepth, stochastic_depth_rates

__all__ = [
    "GELU_SWISH_BETA",
    "REFERENCE",
    "SOBEL_MAX_MAGNITUDE",
    "SOBEL_X",
    "SOBEL_Y",
    "Cutout",
    "Dice",
    "DropConnect",
    "FractionalMaxPooling2D",
    "L2Pooling2D",
    "LocalResponseNormalization",
    "RandomLighting",
    "RandomShift",
    "SobelEdges",
    "StochasticDepth",
    "Swish",
    "derivative",
    "fit_pca_lighting",
    "stochastic_depth_rates",
    "swish",
]
