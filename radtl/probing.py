"""Cached-feature probing: train the head on backbone features computed once.

When the backbone stays frozen and the training images are not augmented (for the
whole run: `lp`, `freezeall` with `augment: false`; or for its first epochs: the probe
of `lp-ft`), the backbone's pooled output for an image never changes, yet an
end-to-end `fit()` recomputes it every step of every epoch. This module computes it
once per split and trains the head on it:

    features, head = split_model(model)          # preprocessing -> backbone | head
    train = feature_dataset(features, fold.load("train", shuffle=False, ...),
                            batch_size=32, shuffle_seed=seed)
    head.compile(...); head.fit(train, ...)      # trains the head layers of `model`

The head model shares its layers (and so its weights) with `model`, so after
training `model` predicts with the trained head. With `shuffle_seed` the cached
features are shuffled exactly as `radtl.data.DatasetFold.load(shuffle=True,
seed=shuffle_seed)` shuffles the images (same op, same seed, a new order every
epoch), so the head sees the same batches in the same order as an end-to-end
frozen run, and, for a head without dropout, ends with the same weights (tested
to 1e-5). Frozen BatchNorm runs in inference mode in both: features are computed
with `training=False`, as a frozen Keras layer runs inside `fit()`.

Reference:
    Kornblith, Shlens, Le, "Do Better ImageNet Models Transfer Better?", CVPR 2019
    (logistic regression on fixed pooled features, computed once); Kumar et al.,
    "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution", ICLR 2022 (linear probing).
"""
from __future__ import annotations

import keras
import numpy as np

__all__ = ["can_cache", "cached_epochs", "random_in_training", "split_model", "extract_features", "feature_dataset"]

# Group counts at which a schedule's rule is asked whether any backbone group trains.
# Rules are stated for any number of groups (block groups, or Keras layers for the
# RadImageNet scenarios); a rule that freezes the backbone at all of these does so
# whatever the backbone.
_PROBE_GROUP_COUNTS = (1, 2, 5, 1000)


def cached_epochs(config) -> int:
    """How many leading epochs of a run may train the head on cached features.

    The epochs from the first on in which the training images are not augmented and
    every backbone group stays frozen. The schedule is asked, not named: it is built
    from the schedule registry with the run's options and its rule
    (`stage(epoch, num_groups)`) is evaluated for each epoch. Schedules that need run
    context (Auto-RGN) adapt the backbone and never qualify. `radtl.train` fits the head
    on features for these epochs, then the whole model on images for the rest, with one
    optimizer and the run's schedule throughout: the same run as end to end (tested).

    Args:
        config: `radtl.config.TrainConfig` (uses `augment`, `schedule`,
            `schedule_options`, `epochs`).

    Returns:
        int in [0, config.epochs]: `config.epochs` for `lp` and `freezeall` without
        augmentation, `probe_epochs` for `lp-ft`, `epochs_per_stage` for gradual
        unfreezing (`g-lf`, `g-fl`: the head alone first), 0 for `ft` or any run with
        `augment: true`.
    """
    from radtl import schedules

    if config.augment or schedules.REGISTRY.context_fields(config.schedule):
        return 0
    schedule = schedules.get(config.schedule, **dict(config.schedule_options))
    for epoch in range(config.epochs):
        if any(any(schedule.stage(epoch, groups).backbone) for groups in _PROBE_GROUP_COUNTS):
            return epoch
    return config.epochs


def random_in_training(layer) -> bool:
    """Whether a layer (e.g. a backbone) holds random layers that draw in training mode.

    Keras runs a frozen layer's `Dropout` in training mode inside `fit()` (only
    BatchNormalization follows `trainable`), so a frozen backbone with dropout
    (EfficientNet's stochastic depth) gives other features at every step: caching them
    would change the run. True when any sublayer has a seed generator and a non-zero
    `rate` (or no `rate`).
    """
    return any(getattr(sub, "seed_generator", None) is not None and getattr(sub, "rate", 1.0) != 0
               for sub in layer._flatten_layers())


def can_cache(config) -> bool:
    """Whether the whole run may train its head on cached features (`cached_epochs` is every epoch).

    E.g. True for `lp` and `freezeall` with `augment: false`; False for `lp-ft`, `ft`,
    `unfreezetop10`, or any schedule with `augment: true`.
    """
    return cached_epochs(config) == config.epochs


def split_model(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Splits a `radtl.build_model` classifier into a feature extractor and its head.

    Args:
        model: keras.Model whose layers form one chain input -> ... -> backbone ->
            head layers (as `radtl.build_model` makes: preprocessing -> backbone ->
            head). The backbone is found by `radtl.models.get_backbone`.

    Returns:
        `(feature_extractor, head_model)`: `feature_extractor` maps (B, H, W, 3)
        float32 images in [0, 255] to (B, D) pooled backbone features (preprocessing
        included); `head_model` maps (B, D) features to the model's outputs. Both
        reuse `model`'s layers, so training `head_model` trains `model`'s head.

    Raises:
        ValueError: the model is not such a chain (a layer with several inputs or
            outputs, or a branch around the backbone).

    Example:

    ```python
    model = radtl.build_model("mobilenet_v2", None, input_shape=(32, 32, 3))
    features, head = split_model(model)
    head(features(images))  # == model(images)
    ```
    """
    from radtl import models

    backbone = models.get_backbone(model)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        node = layer._inbound_nodes[0]  # the call that built `model` (later calls add nodes)
        if len(node.input_tensors) != 1 or len(node.output_tensors) != 1:
            raise ValueError(
                "`model` must be one chain of single-input layers (preprocessing -> backbone -> head), "
                f"as `radtl.build_model` makes. Received: model={model.name!r}, whose layer {layer.name!r} "
                "takes several inputs or gives several outputs. Fix: build it with `radtl.build_model`.")
    position = layers.index(backbone)
    inputs = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype, name="image")
    x = inputs
    for layer in layers[: position + 1]:
        x = layer(x)
    feature_extractor = keras.Model(inputs, x, name=f"{model.name}_features")
    features = keras.Input(x.shape[1:], dtype=x.dtype, name="features")
    y = features
    for layer in layers[position + 1:]:
        y = layer(y)
    head_model = keras.Model(features, y, name=f"{model.name}_head")
    if tuple(head_model.output.shape[1:]) != tuple(model.output.shape[1:]):
        raise ValueError(
            "`model` must end in its head: the layers after the backbone must give the model's output. "
            f"Received: model={model.name!r}, output shape {model.output.shape}, head output "
            f"{head_model.output.shape}. Fix: build it with `radtl.build_model`.")
    return feature_extractor, head_model


def extract_features(feature_extractor: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Runs the frozen feature extractor once over a dataset (inference mode).

    Args:
        feature_extractor: keras.Model, e.g. the first result of `split_model`.
        dataset: `tf.data.Dataset` of `(images, labels)` or `(images, labels,
            extras)` batches, as `radtl.data.DatasetFold.load` yields; read once,
            in order.

    Returns:
        `(features, labels)`: float32 (N, D) and the labels (N,), in dataset order.
    """
    features, labels = [], []
    for batch in dataset:
        features.append(keras.ops.convert_to_numpy(feature_extractor(batch[0], training=False)))
        labels.append(keras.ops.convert_to_numpy(batch[1]))
    if not features:
        raise ValueError("`dataset` must hold at least one batch. Received: an empty dataset.")
    return np.concatenate(features).astype("float32"), np.concatenate(labels)


def feature_dataset(model: keras.Model, dataset, *, batch_size: int | None = None,
                    shuffle_seed: int | None = None):
    """The backbone's pooled features of a split, computed once and kept in memory.

    Args:
        model: keras.Model. A `radtl.build_model` classifier (split with
            `split_model`) or a feature extractor mapping images to (B, D).
        dataset: `tf.data.Dataset` of `(images, labels[, extras])` batches, not
            augmented. For training, pass the split UNshuffled
            (`fold.load("train", shuffle=False, augment=False, ...)`) and let
            `shuffle_seed` reproduce the shuffle.
        batch_size: int or None. Batch size of the result; None keeps the first
            batch's size of `dataset`. Defaults to None.
        shuffle_seed: int or None. Shuffle every epoch exactly as
            `DatasetFold.load(shuffle=True, seed=shuffle_seed)` shuffles images, so
            the batches match an end-to-end run with that seed. None keeps the
            dataset's order. Defaults to None.

    Returns:
        `tf.data.Dataset` of `(features, labels)` batches: float32 (B, D), labels as
        in `dataset`.

    Example:

    ```python
    fold = radtl.data.open("synthetic_lesions")
    ds = feature_dataset(model, fold.load("val", image_size=32, batch_size=8))
    ```
    """
    import tensorflow as tf

    from radtl import data
    from radtl._checks import check_int

    if _is_classifier(model):
        model = split_model(model)[0]
    features, labels = extract_features(model, dataset)
    if batch_size is None:
        batch_size = int(next(iter(dataset))[0].shape[0])
    check_int("batch_size", batch_size)
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle_seed is not None:
        check_int("shuffle_seed", shuffle_seed, 0)
        with data._only_seed_matters():  # the very shuffle `DatasetFold.load` applies
            ds = ds.shuffle(len(features), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _is_classifier(model) -> bool:
    """True when `model` holds a backbone with layers after it (a whole classifier)."""
    from radtl import models

    try:
        backbone = models.get_backbone(model)
    except ValueError:
        return False
    return model.layers[-1] is not backbone
