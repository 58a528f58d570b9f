"""Where a model looks: Grad-CAM / Grad-CAM++ maps and their localisation scores.

`grad_cam(model, images)` returns one heat map per image, `(batch, H, W)` float32 in
[0, 1] at the input resolution, for a radtl model (`radtl.models.build_model`: a
preprocessing layer, the backbone nested as a sub-model named by its registry name, a
head) or any functional Keras model whose target layer is named. The default target is
the backbone's last spatial stage (`radtl.activations.stage_layers(backbone)[-1]`:
`conv5_block3_out` for ResNet50), found inside the nested backbone: the outer model is
re-wired (`keras.models.clone_model` sharing every layer, with a `call_function` that
calls the backbone through a model returning the stage's activation as well), so one
forward pass gives the activation and the class score, and one gradient connects them.

Class scores are the logits, before the softmax, wherever the model exposes them: a
radtl head (its float32 `Dense(softmax)` output layer, applied without its activation),
a final `Dense` whose activation is softmax, or a final `Softmax` /
`Activation("softmax")` layer (its input). Otherwise (e.g. a sigmoid output) the
model's output is the score. Selvaraju et al. take the score before the softmax: the
gradient of a probability is scaled by p_c (1 - p_c) and mixes in the other classes'
evidence, so a confident model gives vanishing, off-target maps.

A map is computed in float32 whatever the dtype policy (activations and gradients of a
`mixed_bfloat16` / `mixed_float16` model are cast), as ReLU(sum_k w_k A_k), upsampled
bilinearly (`tf.image.resize`, half-pixel centres) to the input's (H, W) and divided by
its maximum, so its peak is 1 and a map with no positive evidence stays all zero (not
min-max scaled: 0 keeps meaning "no evidence", and thresholds are fractions of the peak).

The localisation scores compare maps with binary lesion masks, per image (`dice`, `iou`,
`energy_pointing_game`, `pointing_game`, all four at once with `score_images`) and
averaged over the images that have a non-empty mask, overall and per class
(`localisation_scores`). An empty mask (e.g. BUSI's "normal" images) has nothing to
localise: every score is NaN for it and it is left out of the means, counted apart.

References:
    Selvaraju et al. "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization." ICCV 2017.
    Chattopadhay et al. "Grad-CAM++: Generalized Gradient-Based Visual Explanations for
    Deep Convolutional Networks." WACV 2018.
    Wang et al. "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks." CVPR Workshops 2020 (the energy-based pointing game).
    Zhang et al. "Top-Down Neural Attention by Excitation Backprop." IJCV 126, 2018
    (the pointing game).

Example:

```python
import numpy as np
from radtl import interpret, models

model = models.build_model("mobilenet_v2", None, input_shape=(96, 96, 3))
images = np.random.default_rng(0).uniform(0, 255, (4, 96, 96, 3)).astype("float32")
cams = interpret.grad_cam(model, images)         # (4, 96, 96) in [0, 1], layer "out_relu"
masks = np.zeros((4, 96, 96), bool)
masks[:, 30:60, 30:60] = True
interpret.localisation_scores(cams, masks, has_mask=[True, True, True, False],
                              labels=[0, 1, 1, 0])
# {"threshold": 0.5, "tolerance": 0.0, "n": 3, "n_without_mask": 1, "n_empty_mask": 0,
#  "dice": ..., "iou": ..., "energy_pointing_game": ..., "pointing_game": ...,
#  "per_class": {0: {"n": 1, "dice": ..., ...}, 1: {"n": 2, ...}}}
```
"""
import keras
import numpy as np

from radtl import activations as activations_lib
from radtl import backbones
from radtl import heads as heads_lib
from radtl import models as models_lib
from radtl._checks import check_choice
from radtl._checks import check_int
from radtl._checks import check_number

__all__ = [
    "METHODS",
    "explain_run",
    "SCORES",
    "grad_cam",
    "grad_cam_plus_plus",
    "target_layer",
    "dice",
    "iou",
    "energy_pointing_game",
    "pointing_game",
    "score_images",
    "localisation_scores",
]

#: The map methods `grad_cam`'s machinery computes.
METHODS = ("grad_cam", "grad_cam_plus_plus")
#: The per-image localisation scores, in `score_images` / `localisation_scores` order.
SCORES = ("dice", "iou", "energy_pointing_game", "pointing_game")


# --------------------------------------------------------------------------------------
# Finding the target layer and the class score
# --------------------------------------------------------------------------------------


def _named(model):
    """`{name: operation}` of a model: canonical names for a registered backbone."""
    if backbones.identify(model) is not None:
        return activations_lib._named_operations(model)
    named = {layer.name: layer for layer in model.layers}
    for op in model.operations:
        named.setdefault(op.name, op)
    return named


def _find(model, name):
    """`[model, sub-model, ..., operation]`: the path to the operation named `name`."""
    named = _named(model)
    if name in named:
        return [model, named[name]]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            path = _find(layer, name)
            if path:
                return [model, *path]
    return None


def _default_layer(model):
    """The last stage of `model`'s backbone: `(backbone, name)`."""
    if backbones.identify(model) is not None:
        backbone = model
    else:
        try:
            backbone = models_lib.get_backbone(model)
        except ValueError as error:
            raise ValueError(
                f"`layer` must name the target layer of a model without a registered "
                f"backbone: {error} Pass `layer=` (`model.summary()` lists the layers). "
                "Received: layer=None"
            ) from None
    return backbone, activations_lib.stage_layers(backbone)[-1]


def target_layer(model, layer=None):
    """The name of the layer whose activations `grad_cam` weighs, and where it sits.

    Args:
        model: keras.Model. A radtl model, a model holding a registered backbone as a
            sub-model, a backbone, or any functional model.
        layer: str or None. A layer (or operation) name of `model` or of a sub-model
            nested in it, at any depth (a registered backbone's layers by their
            canonical names, `radtl.backbones.canonical_layer_names`). None: the
            backbone's last spatial stage, `radtl.activations.stage_layers(backbone)[-1]`.
            Defaults to None.

    Returns:
        tuple `(name, path)`: the layer name and the names of the models holding it,
        outermost first, e.g. `("out_relu", ["mobilenet_v2_linear", "mobilenet_v2"])`.

    Raises:
        ValueError: `model` is no keras.Model; `layer` is None and `model` holds no
            registered backbone; no layer is named `layer`; its output is not
            (batch, h, w, channels).
    """
    _check_model(model)
    if layer is None:
        _, layer = _default_layer(model)
    elif not isinstance(layer, str):
        raise ValueError(
            "`layer` must be None (the backbone's last stage) or a layer name, a str. "
            f"Received: layer={layer!r}"
        )
    path = _find(model, layer)
    if path is None:
        raise ValueError(
            f"`layer` must name a layer of `{model.name}` or of a model nested in it; none "
            f"is named {layer!r}. `model.summary()` (and `summary()` of its sub-models) "
            f"lists them. Received: layer={layer!r}"
        )
    output = path[-1].output
    if len(output.shape) != 4:
        raise ValueError(
            f"`layer` must have a spatial (batch, h, w, channels) output for Grad-CAM; "
            f"{layer!r} has shape {tuple(output.shape)}. Name a convolutional layer. "
            f"Received: layer={layer!r}"
        )
    return layer, [m.name for m in path[:-1]]


def _check_model(model):
    if not isinstance(model, keras.Model) or not hasattr(model, "operations"):
        raise ValueError(
            "`model` must be a functional keras.Model (a radtl model from "
            "`radtl.models.build_model`, or `keras.Model(inputs, outputs)`); rebuild a "
            "Sequential or subclassed model with the functional API, e.g. `inputs = "
            "keras.Input(shape); model = keras.Model(inputs, head(backbone(inputs)))`. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )


def _is_softmax(activation):
    return activation is keras.activations.get("softmax")


def _dense_logits(dense, x):
    """A Dense layer's output before its activation, in float32."""
    logits = keras.ops.matmul(keras.ops.cast(x, "float32"),
                              keras.ops.cast(dense.kernel, "float32"))
    if dense.use_bias:
        logits = logits + keras.ops.cast(dense.bias, "float32")
    return logits


def _score_function(layer):
    """Maps the input of the model's output layer to its float32 class scores."""
    if isinstance(layer, heads_lib._Head) and _is_softmax(layer.output_dense.activation):
        return lambda x: _dense_logits(layer.output_dense, layer._body(x, training=False))
    if isinstance(layer, keras.layers.Dense) and _is_softmax(layer.activation):
        return lambda x: _dense_logits(layer, x)
    if isinstance(layer, keras.layers.Softmax) or (
            isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)):
        return lambda x: keras.ops.cast(x, "float32")
    return lambda x: keras.ops.cast(layer(x, training=False), "float32")


def _output_layer(model):
    """The layer producing the model's only output."""
    if len(model.outputs) != 1:
        raise ValueError(
            f"`model` must have one output (class scores); it has {len(model.outputs)}. "
            "Build a model with the output to explain. "
            f"Received: model.name={model.name!r}"
        )
    return model.outputs[0]._keras_history.operation


def _rewired(model, path, watch=None):
    """`model`'s graph called anew, exposing the activation of `path[-1]`.

    `path` is `[model, sub-model, ..., operation]` (`_find`). A nested operation is
    reached by re-calling the graph with every layer shared
    (`keras.models.clone_model(clone_function=identity, call_function=...)`) and the
    sub-model on the path swapped for a model that also returns the activation.

    Returns:
        `(inputs, activation, outputs, input of the layer `watch`, or None)`.
    """
    if len(path) == 2:
        return model.inputs, path[1].output, model.outputs, (
            None if watch is None else watch.input)
    recorded = {}

    def call_function(op, *args, **kwargs):
        if op is watch:
            recorded["watched"] = args[0]
        if op is not path[1]:
            return op(*args, **kwargs)
        inputs, activation, outputs, _ = _rewired(op, path[1:])
        inputs = inputs[0] if len(inputs) == 1 else inputs
        act, *outputs = keras.Model(inputs, [activation, *outputs])(*args, **kwargs)
        recorded["activation"] = act
        return outputs[0] if len(outputs) == 1 else outputs

    rewired = keras.models.clone_model(model, clone_function=lambda op: op,
                                       call_function=call_function)
    return rewired.inputs, recorded["activation"], rewired.outputs, recorded.get("watched")


class _GradModel:
    """images -> (target activation, class scores): one forward pass, one model."""

    def __init__(self, model, layer):
        self.layer, _ = target_layer(model, layer)
        path = _find(model, self.layer)
        output_layer = _output_layer(model)
        if path[1] is output_layer:
            raise ValueError(
                f"`layer` must come before the model's output layer {output_layer.name!r}, "
                f"not be or sit inside it. Name a convolutional layer of the backbone. "
                f"Received: layer={self.layer!r}"
            )
        watch = None if isinstance(output_layer, keras.Model) else output_layer
        inputs, activation, outputs, head_input = _rewired(model, path, watch)
        if watch is None:  # a nested output model: its output is the score
            self.score = _score_function(keras.layers.Identity())
            head_input = outputs[0]
        else:
            self.score = _score_function(output_layer)
        inputs = inputs[0] if len(inputs) == 1 else inputs
        self.model = keras.Model(inputs, [activation, head_input],
                                 name=f"{model.name}_grad_cam")

    def __call__(self, images):
        act, head_input = self.model(images, training=False)
        return act, self.score(head_input)


# --------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------


def _weights(method, act, grads):
    """Channel weights (batch, channels) from activations and gradients (b, h, w, c)."""
    import tensorflow as tf

    if method == "grad_cam":  # Selvaraju et al. eq. 1: global-average-pooled gradients
        return tf.reduce_mean(grads, axis=(1, 2))
    # Chattopadhay et al. eq. 19 with Y = exp(S): the exp(S) factors cancel in alpha
    # and scale all weights of an image by one positive number, which the final
    # normalisation removes.
    g2 = tf.square(grads)
    g3 = g2 * grads
    total = tf.reduce_sum(act, axis=(1, 2), keepdims=True)
    denominator = 2.0 * g2 + total * g3
    safe = tf.where(denominator != 0.0, denominator, tf.ones_like(denominator))
    alpha = tf.where(denominator != 0.0, g2 / safe, tf.zeros_like(g2))
    return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))


def _maps(grad_model, method, images, class_index):
    """(batch, H, W) float32 maps and (batch,) classes for one batch (tensors)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(images)  # records the graph even with frozen (non-trainable) weights
        act, scores = grad_model(images)
        predicted = tf.argmax(scores, axis=-1, output_type=tf.int32)
        classes = tf.where(class_index < 0, predicted, class_index)
        score = tf.reduce_sum(tf.gather(scores, classes, axis=1, batch_dims=1))
    grads = tf.cast(tape.gradient(score, act), tf.float32)
    act = tf.cast(act, tf.float32)
    weights = _weights(method, act, grads)
    cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", act, weights))
    cam = tf.image.resize(cam[..., None], tf.shape(images)[1:3], method="bilinear")[..., 0]
    cam = tf.nn.relu(cam)  # bilinear weights are convex: only float rounding below 0
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    cam = tf.where(peak > 0.0, cam / tf.where(peak > 0.0, peak, 1.0), 0.0)
    return cam, classes


def _class_indices(class_index, batch, num_classes):
    """(batch,) int32 class per image; -1 = the predicted class."""
    if class_index is None:
        return np.full(batch, -1, dtype="int32")
    values = np.asarray(class_index)
    if (values.dtype.kind not in "iu" or values.ndim > 1
            or (values.ndim == 1 and len(values) != batch)
            or np.any(values < 0) or np.any(values >= num_classes)):
        raise ValueError(
            f"`class_index` must be None (the predicted class), an int in [0, "
            f"{num_classes}) or one such int per image ({batch}). "
            f"Received: class_index={class_index!r}"
        )
    return np.broadcast_to(values.astype("int32"), (batch,)).copy()


def _compute(method, model, images, class_index, layer, batch_size, jit_compile,
             return_classes):
    import tensorflow as tf

    check_choice("method", method, METHODS)
    check_int("batch_size", batch_size, 1)
    _check_model(model)
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or len(model.inputs) != 1 or (
            tuple(images.shape[1:]) != tuple(
                d if d is not None else s
                for d, s in zip(model.inputs[0].shape[1:], images.shape[1:]))):
        raise ValueError(
            f"`images` must be a (batch, {', '.join(map(str, model.inputs[0].shape[1:]))}) "
            "array of raw model inputs (radtl models: RGB floats in [0, 255]), for a model "
            "with one input. Resize the images to the model's input size. "
            f"Received: images.shape={images.shape}"
        )
    grad_model = _GradModel(model, layer)
    num_classes = int(model.outputs[0].shape[-1])
    classes = _class_indices(class_index, len(images), num_classes)

    def step(x, c):
        return _maps(grad_model, method, x, c)

    if jit_compile:
        step = tf.function(step, jit_compile=True, reduce_retracing=True)
    maps, chosen = [], []
    for start in range(0, len(images), batch_size):
        cam, cls = step(tf.constant(images[start:start + batch_size]),
                        tf.constant(classes[start:start + batch_size]))
        maps.append(np.asarray(cam, dtype="float32"))
        chosen.append(np.asarray(cls, dtype="int64"))
    shape = (0, *images.shape[1:3])
    maps = np.concatenate(maps) if maps else np.zeros(shape, "float32")
    chosen = np.concatenate(chosen) if chosen else np.zeros(0, "int64")
    return (maps, chosen) if return_classes else maps


def grad_cam(model, images, class_index=None, layer=None, *, batch_size=32,
             jit_compile=False, return_classes=False):
    """Grad-CAM maps: where the target layer holds evidence for a class.

    Channel k of the target layer's activation A (batch, h, w, c) is weighted by the
    spatial mean of dS_c / dA_k, S_c the class score before the softmax (see the
    module docstring for which scores are reachable); the map is
    ReLU(sum_k w_k A_k). For a model whose target layer is followed only by global
    average pooling and a linear softmax layer, this is the CAM of Zhou et al. (2016):
    ReLU(sum_k W[k, c] A_k), up to scale.

    Reference:
        Selvaraju et al. "Grad-CAM: Visual Explanations from Deep Networks via
        Gradient-based Localization." ICCV 2017.

    Args:
        model: keras.Model. A radtl model (`radtl.models.build_model`), any model
            holding a registered backbone as a sub-model, a backbone, or any functional
            model with one (batch, H, W, C) input and one (batch, K) output when
            `layer` is named.
        images: array (batch, H, W, C) of the model's raw inputs (radtl models: float
            RGB in [0, 255]; the model's own preprocessing layer applies).
        class_index: None, int or int array (batch,). The class whose evidence is
            mapped; None: each image's predicted class (argmax of the scores).
            Defaults to None.
        layer: str or None. The target layer, in `model` or in a model nested in it
            (`target_layer`); None: the backbone's last spatial stage,
            `radtl.activations.stage_layers(backbone)[-1]`. Defaults to None.
        batch_size: int. Images per forward/backward pass. Defaults to 32.
        jit_compile: bool. Compile each pass with XLA (`tf.function(jit_compile=True)`).
            Defaults to False.
        return_classes: bool. Also return the (batch,) int64 classes mapped.
            Defaults to False.

    Returns:
        np.ndarray (batch, H, W) float32 in [0, 1]: per image, ReLU of the weighted
        sum of the target layer's channels, bilinearly upsampled to the input's (H, W)
        and divided by its maximum (all zero where no position has positive evidence).
        With `return_classes`, the tuple `(maps, classes)`.

    Raises:
        ValueError: an invalid argument (see `target_layer` for `layer`).

    Example:

    ```python
    model = radtl.models.build_model("mobilenet_v2", None, input_shape=(96, 96, 3))
    cams = grad_cam(model, np.zeros((2, 96, 96, 3), "float32"))  # (2, 96, 96)
    ```
    """
    return _compute("grad_cam", model, images, class_index, layer, batch_size,
                    jit_compile, return_classes)


def grad_cam_plus_plus(model, images, class_index=None, layer=None, *, batch_size=32,
                       jit_compile=False, return_classes=False):
    """Grad-CAM++ maps: Grad-CAM with per-position weights on the positive gradients.

    w_k = sum_ij alpha_ij^k ReLU(dS_c / dA_k,ij), with alpha_ij^k = g^2 / (2 g^2 +
    sum_ab A_k,ab g^3) (g = dS_c / dA_k,ij; alpha = 0 where the denominator is 0),
    the closed form Chattopadhay et al. derive for Y_c = exp(S_c) (their eq. 19; the
    exp(S_c) factors cancel or only scale the map, which is then normalised). As in
    their reference code, higher derivatives are taken as powers of the first
    (exact for a piecewise-linear network).

    Reference:
        Chattopadhay et al. "Grad-CAM++: Generalized Gradient-Based Visual
        Explanations for Deep Convolutional Networks." WACV 2018.

    Args:
        model, images, class_index, layer, batch_size, jit_compile, return_classes:
            as `grad_cam`.

    Returns:
        np.ndarray (batch, H, W) float32 in [0, 1], as `grad_cam` (and the classes
        with `return_classes`).

    Raises:
        ValueError: an invalid argument, as `grad_cam`.
    """
    return _compute("grad_cam_plus_plus", model, images, class_index, layer, batch_size,
                    jit_compile, return_classes)


# --------------------------------------------------------------------------------------
# Localisation scores (numpy)
# --------------------------------------------------------------------------------------


def _pair(cam, mask):
    """`(cam float64 (b, H, W), mask bool (b, H, W), empty (b,) bool)`, checked."""
    cam = np.asarray(cam, dtype="float64")
    mask = np.asarray(mask)
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if cam.ndim != 3 or mask.shape != cam.shape:
        raise ValueError(
            "`cam` and `mask` must have the same shape (batch, H, W) (a mask may carry a "
            "trailing channel of 1). Resize the masks to the maps' resolution (nearest). "
            f"Received: cam.shape={cam.shape}, mask.shape={mask.shape}"
        )
    if not np.all(np.isfinite(cam)) or np.any(cam < 0):
        raise ValueError(
            "`cam` must hold finite values >= 0 (maps from `grad_cam` are in [0, 1]). "
            f"Received: values in [{np.nanmin(cam) if cam.size else 0}, "
            f"{np.nanmax(cam) if cam.size else 0}]"
        )
    mask = mask > 0
    return cam, mask, ~mask.any(axis=(1, 2))


def _check_threshold(threshold):
    check_number("threshold", threshold, 0.0, 1.0, include_low=False)


def _overlap(cam, mask, threshold):
    cam, mask, empty = _pair(cam, mask)
    _check_threshold(threshold)
    region = cam >= threshold
    intersection = np.sum(region & mask, axis=(1, 2)).astype("float64")
    return intersection, region.sum(axis=(1, 2)), mask.sum(axis=(1, 2)), empty


def dice(cam, mask, threshold=0.5):
    """Dice overlap of the map's region `cam >= threshold` with the mask, per image.

    Dice = 2 |R & M| / (|R| + |M|). An all-zero map has an empty region: Dice 0.

    Reference:
        Mei et al., Radiology: Artificial Intelligence 4(5), 2022, score Grad-CAM maps
        against lesion masks with Dice.

    Args:
        cam: array (batch, H, W) of maps, values >= 0 (`grad_cam`: in [0, 1]).
        mask: array (batch, H, W) (or (batch, H, W, 1)); non-zero = lesion.
        threshold: float in (0, 1]. Map values at or above it form the region.
            Defaults to 0.5.

    Returns:
        np.ndarray (batch,) float64 in [0, 1]; NaN where the mask is empty.
    """
    intersection, region, lesion, empty = _overlap(cam, mask, threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 2.0 * intersection / (region + lesion)
    return np.where(empty, np.nan, value)


def iou(cam, mask, threshold=0.5):
    """Intersection over union of the region `cam >= threshold` and the mask, per image.

    IoU = |R & M| / |R | M| = Dice / (2 - Dice). An all-zero map scores 0.

    Args:
        cam, mask, threshold: as `dice`.

    Returns:
        np.ndarray (batch,) float64 in [0, 1]; NaN where the mask is empty.
    """
    intersection, region, lesion, empty = _overlap(cam, mask, threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = intersection / (region + lesion - intersection)
    return np.where(empty, np.nan, value)


def energy_pointing_game(cam, mask):
    """Share of the map's total energy (sum of values) inside the mask, per image.

    Threshold-free: sum(cam * mask) / sum(cam). An all-zero map has no energy to place
    and scores 0.

    Reference:
        Wang et al. "Score-CAM: Score-Weighted Visual Explanations for Convolutional
        Neural Networks." CVPR Workshops 2020, section 4.2 (with bounding boxes there).

    Args:
        cam: array (batch, H, W), values >= 0.
        mask: array (batch, H, W) (or (batch, H, W, 1)); non-zero = lesion.

    Returns:
        np.ndarray (batch,) float64 in [0, 1]; NaN where the mask is empty.
    """
    cam, mask, empty = _pair(cam, mask)
    total = cam.sum(axis=(1, 2))
    inside = np.where(mask, cam, 0.0).sum(axis=(1, 2))
    value = np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)
    return np.where(empty, np.nan, value)


def pointing_game(cam, mask, tolerance=0):
    """Hit (1) or miss (0): is the map's maximum inside the mask, per image.

    The maximum is the first maximal pixel in row-major order (`np.argmax`); it hits
    when a mask pixel lies within `tolerance` pixels (Euclidean) of it. Zhang et al.
    allow 15 pixels at 224 px; the default 0 asks for the pixel itself. An all-zero map
    points nowhere: a miss.

    Reference:
        Zhang et al. "Top-Down Neural Attention by Excitation Backprop." IJCV 126,
        2018.

    Args:
        cam: array (batch, H, W), values >= 0.
        mask: array (batch, H, W) (or (batch, H, W, 1)); non-zero = lesion.
        tolerance: float >= 0. Pixels. Defaults to 0.

    Returns:
        np.ndarray (batch,) float64 of 0.0 and 1.0; NaN where the mask is empty.
    """
    cam, mask, empty = _pair(cam, mask)
    check_number("tolerance", tolerance, 0.0)
    value = np.zeros(len(cam))
    for i, (image_map, image_mask) in enumerate(zip(cam, mask)):
        if empty[i] or not image_map.max() > 0:
            continue
        row, col = np.unravel_index(np.argmax(image_map), image_map.shape)
        rows, cols = np.nonzero(image_mask)
        value[i] = float(np.min((rows - row) ** 2 + (cols - col) ** 2) <= tolerance ** 2)
    return np.where(empty, np.nan, value)


def score_images(cams, masks, threshold=0.5, tolerance=0):
    """All four localisation scores per image.

    Args:
        cams: array (batch, H, W) of maps, values >= 0.
        masks: array (batch, H, W) (or (batch, H, W, 1)); non-zero = lesion.
        threshold: float in (0, 1], for Dice and IoU. Defaults to 0.5.
        tolerance: float >= 0, pixels, for the pointing game. Defaults to 0.

    Returns:
        dict `{name: np.ndarray (batch,) float64}` for the names in `SCORES`
        ("dice", "iou", "energy_pointing_game", "pointing_game"); NaN for images
        whose mask is empty.
    """
    return {
        "dice": dice(cams, masks, threshold),
        "iou": iou(cams, masks, threshold),
        "energy_pointing_game": energy_pointing_game(cams, masks),
        "pointing_game": pointing_game(cams, masks, tolerance),
    }


def _means(scores, select):
    count = int(select.sum())
    out = {"n": count}
    for name in SCORES:
        out[name] = float(np.mean(scores[name][select])) if count else None
    return out


def localisation_scores(cams, masks, has_mask, labels, threshold=0.5, tolerance=0):
    """Localisation scores averaged over the images with a lesion mask, overall and per class.

    An image counts when `has_mask` is True and its mask is not empty; images without a
    mask (`n_without_mask`) and with an empty one (`n_empty_mask`, e.g. BUSI's normal
    images) are left out.

    Args:
        cams: array (batch, H, W) of maps, values >= 0 (`grad_cam`).
        masks: array (batch, H, W) (or (batch, H, W, 1)); non-zero = lesion. Entries of
            images without a mask are ignored (any values).
        has_mask: bool array (batch,). Whether the image has a mask.
        labels: int array (batch,) of class indices (or one-hot (batch, K)): the
            grouping for `per_class` (usually the true labels).
        threshold: float in (0, 1], for Dice and IoU. Defaults to 0.5.
        tolerance: float >= 0, pixels, for the pointing game. Defaults to 0.

    Returns:
        dict, JSON-serialisable: `threshold`, `tolerance`, `n` (images scored),
        `n_without_mask`, `n_empty_mask`, the mean of each score in `SCORES` over the
        scored images (None when none is), and `per_class`: `{class index (int): {"n":
        count, score: mean or None, ...}}` for every class present in `labels`.
    """
    cams = np.asarray(cams, dtype="float64")
    masks = np.asarray(masks)
    has_mask = np.asarray(has_mask)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    batch = len(cams)
    if has_mask.dtype != bool or has_mask.shape != (batch,):
        raise ValueError(
            f"`has_mask` must be a bool array of shape ({batch},), one per map. "
            f"Received: has_mask with dtype {has_mask.dtype} and shape {has_mask.shape}"
        )
    if labels.dtype.kind not in "iu" or labels.shape != (batch,):
        raise ValueError(
            f"`labels` must be class indices of shape ({batch},) (or one-hot ({batch}, "
            f"K)). Received: labels with dtype {labels.dtype} and shape {labels.shape}"
        )
    masks = np.where(has_mask.reshape((-1,) + (1,) * (masks.ndim - 1)), masks, 0)
    scores = score_images(cams, masks, threshold, tolerance)
    empty = np.isnan(scores["dice"])
    scored = has_mask & ~empty
    result = {
        "threshold": float(threshold),
        "tolerance": float(tolerance),
        "n_without_mask": int((~has_mask).sum()),
        "n_empty_mask": int((has_mask & empty).sum()),
        **_means(scores, scored),
        "per_class": {int(c): _means(scores, scored & (labels == c))
                      for c in np.unique(labels)},
    }
    return result


# --------------------------------------------------------------------------- a run

def explain_run(run_dir, *, split="test", n=16, layer=None, method="grad_cam", threshold=0.5,
                n_resamples=2000, seed=0, progress=None) -> dict:
    """Grad-CAM of a finished run on one split, scored against the lesion masks.

    Writes into the run directory: `localisation_{split}.csv` (one row per image:
    filename, label, predicted probability of each class, `has_mask` and the four
    scores, NaN without a mask), `plots/explain_{split}.png` (the first `n` images with a
    mask, else the first `n`, with the map overlaid and the mask outlined), and
    `metrics.json["localisation"][split]` (the means over the images that have a non-empty
    mask, overall and per class, with bootstrap 95% CIs of the overall means).

    Reference:
        Mei et al., Radiology: AI 2022 (RadImageNet: Grad-CAM Dice against lesion masks).

    Args:
        run_dir: path or `RunDir` of a finished run.
        split: str. Defaults to "test".
        n: int >= 1. Images in the grid. Defaults to 16.
        layer: str or None. Target layer (default: the backbone's last stage).
        method: "grad_cam" or "grad_cam_plus_plus". Defaults to "grad_cam".
        threshold: float. Map threshold of Dice and IoU. Defaults to 0.5.
        n_resamples, seed: the bootstrap of the CIs.
        progress: callable(str) or None.

    Returns:
        The dict written to `metrics.json["localisation"][split]`.
    """
    import pandas as pd

    from radtl import data as data_lib
    from radtl import plots
    from radtl import stats
    from radtl.rundir import RunDir

    check_choice("method", method, METHODS)
    check_int("n", n)
    progress = progress or (lambda line: None)
    run = RunDir(run_dir)
    run.require_finished()
    config = run.read_config()
    fold = data_lib.open(config.dataset, config.fold, config.data_dir)
    with_masks = "mask" in fold.builder.info.features
    ds = fold.load(split, image_size=config.image_size, batch_size=32, resize_method=config.resize_method,
                   with_metadata=True, with_masks=with_masks)
    model = run.load_model()
    explain = grad_cam if method == "grad_cam" else grad_cam_plus_plus
    images, labels, masks, has_mask, filenames, probs, cams = [], [], [], [], [], [], []
    for batch_images, batch_labels, extras in ds:
        progress(f"{method} on {split}: {sum(len(x) for x in labels) + len(batch_labels)} images ...")
        cams.append(explain(model, batch_images, class_index=None, layer=layer))
        probs.append(np.asarray(model(batch_images, training=False), dtype=np.float64))
        images.append(batch_images.numpy().astype(np.uint8))
        labels.append(batch_labels.numpy())
        filenames += [f.decode() for f in extras["filename"].numpy()]
        size = batch_images.shape[1:3]
        masks.append(extras["mask"].numpy() if with_masks else np.zeros((len(batch_labels), *size), np.uint8))
        has_mask.append(extras["has_mask"].numpy() if with_masks else np.zeros(len(batch_labels), bool))
    cams, probs, images = np.concatenate(cams), np.concatenate(probs), np.concatenate(images)
    labels, masks, has_mask = np.concatenate(labels), np.concatenate(masks), np.concatenate(has_mask)

    scores = score_images(cams, masks, threshold=threshold)
    table = pd.DataFrame({"filename": filenames, "label": labels,
                          **{f"prob_{c}": probs[:, k] for k, c in enumerate(run.class_names)},
                          "has_mask": has_mask})
    for name, values in scores.items():
        table[name] = np.where(has_mask, values, np.nan)
    path = run.file("localisation", split=split)
    table.to_csv(path, index=False)

    summary = localisation_scores(cams, masks, has_mask, labels, threshold=threshold)
    scored = table.dropna(subset=list(scores))
    ci = {}
    for name in scores:
        values = scored[name].to_numpy()
        if len(values) >= 2 and np.ptp(values) > 0:
            result = stats.bootstrap_ci(np.mean, values, n_resamples=n_resamples, method="percentile", seed=seed)
            ci[name] = [float(result.lower), float(result.upper)]
        else:
            ci[name] = None
    localisation = {"split": split, "method": method, "layer": layer or target_layer(model)[0],
                    "mean": {name: summary[name] for name in scores}, "ci95": ci, **summary}
    metrics = run.read_metrics()
    metrics["localisation"] = {**metrics.get("localisation", {}), split: localisation}
    run.write_metrics(metrics)

    order = np.argsort(~has_mask, kind="stable")[:n]  # images with masks first
    positive = probs[:, -1]
    titles = [f"{run.class_names[labels[i]]}, p({run.class_names[-1]})={positive[i]:.2f}" for i in order]
    plots.plot_explanations(images[order], cams[order], masks[order] * has_mask[order, None, None], titles,
                            run.file("plots") / f"explain_{split}.png")
    return localisation
