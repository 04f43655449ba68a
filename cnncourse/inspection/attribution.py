r"""Where does the network look? Attribution maps for one image and one class (notebook 09).

A saliency map (:func:`cnncourse.inspection.viz.saliency`) is the plain gradient of the
class score with respect to the pixels. It is noisy and hard to read, and four later
methods answer the same question differently:

* **Occlusion sensitivity** (Zeiler & Fergus, "Visualizing and Understanding Convolutional
  Networks", ECCV 2014, §4.2): slide a grey square over the image and record how much the
  probability of the class drops with the square at each place. No gradients at all — the
  most direct experiment, and the slowest (one forward pass per position).
* **Grad-CAM** (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual
  Explanations from Deep Networks via Gradient-based Localization", ICCV 2017): weight each
  channel :math:`A^k` of a late convolutional layer by the spatial mean of the score's
  gradient, :math:`\alpha_k^c = \frac{1}{Z}\sum_{ij} \partial y^c / \partial A^k_{ij}`, and
  keep the positive part, :math:`L^c = \mathrm{ReLU}(\sum_k \alpha_k^c A^k)`: a coarse map
  (the layer's resolution, upsampled) that is **class-discriminative** — the map for "dog"
  lights up the dog, the map for "cat" the cat. On a network that ends in global average
  pooling and one dense layer it is exactly the earlier CAM (Zhou et al., CVPR 2016).
* **Guided backpropagation** (Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for
  Simplicity: The All Convolutional Net", ICLR 2015 workshop, §3.4): the gradient, except
  that at every ReLU the backward signal is also zeroed where it is negative,
  :math:`R_l = R_{l+1} \cdot [x_l > 0] \cdot [R_{l+1} > 0]`. Sharp, fine-grained images of
  what excites the class or unit (but not class-discriminative: Adebayo et al. 2018 showed
  it changes little when the weights are randomised — worth telling students).
* **The Zeiler–Fergus "deconvnet"** (the lecture's "filters deconvolved back into pixel
  space"): project the strongest activation of one feature map back down through
  transposed convolutions, max-pooling "switches" and ReLUs. The transposed convolution and
  the switches are exactly the gradient's (see :mod:`cnncourse.reference.conv_forms`); what
  differs is the ReLU, which is applied to the backward signal itself,
  :math:`R_l = \mathrm{ReLU}(R_{l+1})`, ignoring the forward mask (Springenberg et al. §3.4
  lay the three rules side by side).

The two backward-pass methods run on a copy of the model whose ReLUs have a different
gradient (``keras.ops.custom_gradient``), so they work on any backend through
:mod:`cnncourse.autodiff`; the ReLUs found are those of layers built with
``activation="relu"``, ``keras.layers.ReLU()`` and ``keras.layers.Activation("relu")``
(a ReLU called inside a custom layer's ``call`` cannot be seen and keeps its gradient).
The **class score** is taken before the softmax (a model that ends in one is copied
without it), as all four papers do: the gradient of a probability mixes in the other classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from cnncourse import checks
from keras import ops

from cnncourse.autodiff import value_and_grad

__all__ = [
    "Occlusion",
    "as_image",
    "class_scores",
    "deconvnet",
    "grad_cam",
    "guided_backprop",
    "occlusion_sensitivity",
    "rewire_relus",
]

_RULES = ("guided", "deconvnet")


# ============================================================================ model copies
def _is_softmax(fn) -> bool:
    return fn is keras.activations.softmax


def _ends_in_softmax(model: keras.Model) -> bool:
    last = model.layers[-1]
    return isinstance(last, keras.layers.Softmax) or _is_softmax(getattr(last, "activation", None))


def _relu_with_backward(rule: str) -> Callable:
    """A ReLU whose forward pass is the ReLU and whose backward pass follows ``rule``."""

    @ops.custom_gradient
    def relu(x):
        def backward(*args, upstream=None):
            if upstream is None:  # JAX passes the upstream gradient positionally, TensorFlow by keyword
                (upstream,) = args
            if rule == "guided":
                return upstream * ops.cast(x > 0, upstream.dtype) * ops.cast(upstream > 0, upstream.dtype)
            return ops.relu(upstream)  # deconvnet: the ReLU acts on the backward signal

        return ops.relu(x), backward

    return relu


def _is_plain_relu_layer(layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
    return isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.relu


def _copy(model: keras.Model, relu_rule: str | None, drop_softmax: bool) -> tuple[keras.Model, int]:
    """A copy of ``model`` with the same weights, ReLUs rewired and/or the final softmax removed."""
    count = 0
    last = model.layers[-1]
    relu = _relu_with_backward(relu_rule) if relu_rule else None

    def clone(layer):
        nonlocal count
        if drop_softmax and layer is last:
            if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
                return keras.layers.Identity(name=layer.name)
            copy = layer.__class__.from_config(layer.get_config())
            copy.activation = keras.activations.linear
            return copy
        if relu is not None and _is_plain_relu_layer(layer):
            count += 1
            return keras.layers.Activation(relu, name=layer.name)
        copy = layer.__class__.from_config(layer.get_config())
        if relu is not None and getattr(layer, "activation", None) is keras.activations.relu:
            count += 1
            copy.activation = relu
        return copy

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy, count


def class_scores(model: keras.Model) -> keras.Model:
    """The model itself if it outputs scores (logits); a copy without its final softmax if it ends in one."""
    return _copy(model, None, drop_softmax=True)[0] if _ends_in_softmax(model) else model


def rewire_relus(model: keras.Model, rule: str) -> keras.Model:
    """A copy of ``model`` (same weights, scores before any final softmax) whose ReLUs backpropagate by ``rule``.

    ``"guided"``: :math:`R \\cdot [x > 0] \\cdot [R > 0]` (guided backpropagation);
    ``"deconvnet"``: :math:`\\mathrm{ReLU}(R)` (Zeiler & Fergus). The forward pass is unchanged.
    Raises ``ValueError`` if the model has no ReLU it can see.
    """
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
    copy, count = _copy(model, rule, drop_softmax=_ends_in_softmax(model))
    if count == 0:
        raise ValueError(
            f"{model.name} has no ReLU to rewire (looked for activation='relu', ReLU() and Activation('relu') layers)"
        )
    return copy


# ============================================================================ arguments
def _image(model: keras.Model, image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype="float32")
    expected = tuple(model.input_shape[1:])
    fits = len(x.shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
    if not fits:
        raise ValueError(f"image must have the model's input shape {expected} (one image, no batch axis), got {x.shape}")
    return x[None]


def _class(model: keras.Model, x: np.ndarray, class_index: int | None) -> int:
    num_classes = model.output_shape[-1]
    if class_index is None:
        return int(np.argmax(model.predict(x, verbose=0)[0]))
    return checks.integer("class_index", class_index, minimum=0, maximum=num_classes - 1)


def _output_rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # never called, or several outputs
        return None


def _layer(model: keras.Model, layer_name: str | None):
    if layer_name is None:
        maps = [layer for layer in model.layers if _output_rank(layer) == 4]
        if not maps:
            raise ValueError(f"{model.name} has no layer with a 4-D (batch, height, width, channels) output")
        return maps[-1]
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer {layer_name!r} in {model.name}; layers: {', '.join(names)}")
    return model.get_layer(layer_name)


# ============================================================================ Grad-CAM
def grad_cam(
    model: keras.Model, image: np.ndarray, class_index: int | None = None, layer_name: str | None = None, *, upsample: bool = True
) -> np.ndarray:
    r"""The Grad-CAM map of ``class_index`` (default: the predicted class) for one image ``(H, W, C)``.

    ``layer_name`` is the convolutional layer whose maps are weighted (default: the last layer
    with a 4-D output, as in the paper). Returns :math:`\mathrm{ReLU}(\sum_k \alpha_k A^k)`,
    bilinearly upsampled to ``(H, W)`` (``upsample=False``: at the layer's resolution), not
    normalised — divide by its maximum to display it.

    The gradient with respect to the layer's output is taken by splitting the model there
    into a head (input → :math:`A`) and a tail (:math:`A` → scores); a layer that a skip
    connection bypasses cannot be split, and is refused with a ``ValueError``.
    """
    scores = class_scores(model)
    x = _image(scores, image)
    c = _class(scores, x, class_index)
    layer = _layer(scores, layer_name)
    if len(layer.output.shape) != 4:
        raise ValueError(f"layer {layer.name!r} has output shape {layer.output.shape}; Grad-CAM needs a 4-D feature map")
    head = keras.Model(scores.inputs, layer.output)
    try:
        tail = keras.Model(layer.output, scores.outputs[0])
    except ValueError as error:
        raise ValueError(
            f"cannot split {model.name} at {layer.name!r}: the output depends on more than that layer's maps "
            f"(a skip connection bypasses it?); choose a layer every path goes through ({error})"
        ) from None
    maps = np.asarray(head.predict(x, verbose=0))
    _, g = value_and_grad(lambda a: tail(a, training=False)[0, c], maps)
    alpha = g[0].mean(axis=(0, 1))  # one weight per channel: the spatial mean of the gradient
    cam = np.maximum(maps[0] @ alpha, 0.0)
    if not upsample:
        return cam
    size = x.shape[1:3]
    batch = cam[None, :, :, None].astype("float32")
    resized = ops.image.resize(batch, size, interpolation="bilinear", data_format="channels_last")
    return np.asarray(ops.convert_to_numpy(resized))[0, :, :, 0]


# ============================================================================ occlusion
@dataclasses.dataclass(frozen=True)
class Occlusion:
    """Result of :func:`occlusion_sensitivity`.

    ``probability[i, j]``: the class probability with the grey square centred on pixel
    ``(rows[i], cols[j])``; ``drop = baseline − probability`` (positive where hiding that
    part hurts the prediction); ``pixels``: ``drop`` at the image's resolution (every pixel
    takes the value of the nearest square centre), the map to overlay on the image.
    :meth:`centre` is the drop-weighted centre of the map: where the evidence is.
    """

    class_index: int
    baseline: float
    rows: np.ndarray
    cols: np.ndarray
    size: int
    probability: np.ndarray
    drop: np.ndarray
    pixels: np.ndarray

    def centre(self) -> tuple[float, float]:
        """The centre of mass ``(row, col)`` of the positive drops: a peak that a plateau of equal values cannot hide."""
        weights = np.maximum(self.drop, 0.0)
        if weights.sum() == 0:
            raise ValueError("hiding no part of the image lowers the probability: the map has no centre")
        return float((weights.sum(axis=1) @ self.rows) / weights.sum()), float((weights.sum(axis=0) @ self.cols) / weights.sum())


def occlusion_sensitivity(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    *,
    size: int = 5,
    stride: int = 1,
    fill: float | None = None,
    batch_size: int = 256,
) -> Occlusion:
    """Slide a ``size × size`` grey square over one image and record the class probability.

    Zeiler & Fergus' experiment (their Fig. 7): the probability of the class as a function
    of where the square is; if the network recognises the object and not its context, the
    probability falls when the object is hidden. The square is centred on every
    ``stride``-th pixel and cut off at the border. Their grey is the data's mean value
    (zero after mean subtraction), so it adds no pattern of its own; ``fill=None`` (the
    default) uses the image's mean per channel as that neutral value, a number fills with
    that value. The square should be large enough to hide the object (a partly hidden
    object is still recognised). Every occluded image goes through the model in batches;
    probabilities are the model's output if it ends in a softmax, else the softmax of its
    scores.
    """
    x = _image(model, image)
    c = _class(model, x, class_index)
    h, w = x.shape[1:3]
    size, stride = checks.positive_int("size", size), checks.positive_int("stride", stride)
    batch_size = checks.positive_int("batch_size", batch_size)
    if size > min(h, w):
        raise ValueError(f"size must be at most the image size {min(h, w)}, got {size}")
    rows, cols = np.arange(0, h, stride), np.arange(0, w, stride)

    def probabilities(batch: np.ndarray) -> np.ndarray:
        out = np.asarray(model.predict(batch, batch_size=batch_size, verbose=0), np.float64)
        if not _ends_in_softmax(model):
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        return out[:, c]

    grey = x[0].mean(axis=(0, 1)) if fill is None else np.float32(fill)
    occluded = np.repeat(x, len(rows) * len(cols), axis=0)
    half = size // 2
    for k, (r, col) in enumerate((r, col) for r in rows for col in cols):
        occluded[k, max(r - half, 0) : r - half + size, max(col - half, 0) : col - half + size, :] = grey
    baseline = float(probabilities(x)[0])
    probability = probabilities(occluded).reshape(len(rows), len(cols))
    drop = baseline - probability
    nearest_row = np.minimum((np.arange(h) + stride // 2) // stride, len(rows) - 1)
    nearest_col = np.minimum((np.arange(w) + stride // 2) // stride, len(cols) - 1)
    pixels = drop[nearest_row][:, nearest_col]
    return Occlusion(c, baseline, rows, cols, int(size), probability, drop, pixels)


# ============================================================================ guided backprop / deconvnet
def _backward_view(
    model: keras.Model, image: np.ndarray, class_index: int | None, layer_name: str | None, unit: int | None, rule: str
) -> np.ndarray:
    rewired = rewire_relus(model, rule)
    x = _image(rewired, image)
    if layer_name is None:
        if unit is not None:
            raise ValueError("unit needs layer_name (the layer whose channel to project)")
        c = _class(rewired, x, class_index)

        def target(inp):
            return rewired(inp, training=False)[0, c]

    else:
        if class_index is not None:
            raise ValueError("give either class_index (a class score) or layer_name and unit (a feature map), not both")
        layer = _layer(rewired, layer_name)
        channels = layer.output.shape[-1]
        unit = checks.integer(f"unit (a channel of {layer_name!r})", unit, minimum=0, maximum=channels - 1)
        probe = keras.Model(rewired.inputs, layer.output)

        def target(inp):  # the strongest activation of the map; every other activation set to zero
            return ops.max(probe(inp, training=False)[0, ..., unit])

    _, g = value_and_grad(target, x)
    return g[0]


def guided_backprop(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    *,
    layer_name: str | None = None,
    unit: int | None = None,
) -> np.ndarray:
    """Guided backpropagation of a class score (default: the predicted class) or of one feature map, ``(H, W, C)``.

    With ``layer_name`` and ``unit``, the target is the strongest activation of channel
    ``unit`` of that layer (Zeiler & Fergus' choice: all other activations of the layer set
    to zero); otherwise the class score before the softmax. The result is signed; use
    :func:`as_image` to display it.
    """
    return _backward_view(model, image, class_index, layer_name, unit, "guided")


def deconvnet(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    *,
    layer_name: str | None = None,
    unit: int | None = None,
) -> np.ndarray:
    """The Zeiler–Fergus deconvnet projection of a feature map's strongest activation (or a class score), ``(H, W, C)``.

    Same targets as :func:`guided_backprop`; the backward pass applies the ReLU to the
    backward signal instead of the forward mask.
    """
    return _backward_view(model, image, class_index, layer_name, unit, "deconvnet")


def as_image(attribution: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """A signed attribution map as a displayable image in [0, 1]: 0.5 is zero, the ``percentile`` of |value| is the full scale.

    Clipping at a high percentile instead of the maximum keeps one extreme pixel from turning
    the rest of the map grey (the usual way these figures are drawn).
    """
    a = np.asarray(attribution, np.float64)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    scale = np.percentile(np.abs(a), percentile)
    if scale == 0:
        return np.full(a.shape, 0.5)
    return 0.5 + 0.5 * np.clip(a / scale, -1.0, 1.0)
