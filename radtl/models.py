"""Model assembly: raw image -> preprocessing -> backbone -> head -> probabilities.

`build_model` returns a functional `keras.Model`:

    Input "image" (batch, H, W, 3) float32 RGB in [0, 255]
      -> `radtl.preprocessing.Preprocessing` (backbone, source, mode in its config)
      -> backbone sub-model named by its registry name (`get_backbone(model)`)
      -> head from `radtl.heads.build_head` (pooled (batch, F) -> probabilities)
      -> (batch, num_classes) float32 softmax probabilities.

The model saves to `.keras` and loads back (all radtl layers are registered
serialisable), predicting on raw images.

Example:

```python
import numpy as np
from radtl import models

model = models.build_model("resnet50", None, head="linear", num_classes=2,
                           input_shape=(32, 32, 3), preprocessing="official")
model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape  # (2, 2)
models.get_backbone(model).name  # "resnet50"
```
"""
import keras

from radtl import backbones
from radtl import heads
from radtl import preprocessing as preprocessing_lib
from radtl import weights as weights_lib


def build_from_config(config, num_classes: int) -> keras.Model:
    """A run's model as it starts: Keras seeded with `config.seed`, then `build_model`.

    `radtl.train` builds every run this way, so the model a run started from can be
    rebuilt exactly from its recorded config (the pre-trained backbone, or the same
    random initialisation), e.g. for `radtl.activations.compare_runs(at_init=True)`.

    Args:
        config: a `radtl.config.TrainConfig` (its backbone, weights, head and
            head_options, image_size, preprocessing, weights_dir and seed are used).
        num_classes: int. The dataset's number of classes.
    """
    keras.utils.set_random_seed(config.seed)
    return build_model(
        config.backbone, config.weights, head=config.head, num_classes=num_classes,
        input_shape=(config.image_size, config.image_size, 3), preprocessing=config.preprocessing,
        weights_dir=config.weights_dir, **config.head_options)


def build_model(
    backbone,
    weights="radimagenet",
    *,
    head="linear",
    num_classes=2,
    input_shape=(224, 224, 3),
    preprocessing="official",
    weights_dir=None,
    sha256=None,
    **head_options,
):
    """Build a classifier on a registered backbone.

    Args:
        backbone: str. Registry name (`radtl.backbones.names()`).
        weights: "radimagenet", "imagenet", None or "none" (any case; random init,
            as in `TrainConfig` and the CLI) or a weight file path. Defaults to
            "radimagenet".
        head: str. Head name (`radtl.heads.names()`). Defaults to "linear".
        num_classes: int. Defaults to 2.
        input_shape: (H, W, 3) ints. Defaults to (224, 224, 3).
        preprocessing: str. Preprocessing mode, "official" (RadImageNet scripts: caffe
            then /255) or "native" (the Keras application's own); recorded in the
            model config. Defaults to "official".
        weights_dir: str or Path, searched first for weight files. Defaults to None.
        sha256: str. Pin the weight file's sha256. Defaults to None.
        **head_options: passed to `radtl.heads.build_head` (e.g. `dropout`).

    Returns:
        keras.Model mapping (batch, H, W, 3) float32 in [0, 255] to (batch,
        num_classes) float32 probabilities, named "<backbone>_<head>".

    Raises:
        ValueError: unknown backbone, head, source or preprocessing mode.
        radtl.weights.WeightsError: missing or invalid weight file.
    """
    weights = weights_lib.normalize_weights(weights)
    preprocess = preprocessing_lib.get(backbone, weights, preprocessing)
    classifier = heads.build_head(head, num_classes=num_classes, **head_options)
    features = backbones.load_backbone(
        backbone, weights, input_shape=input_shape, pooling="avg",
        weights_dir=weights_dir, sha256=sha256,
    )
    inputs = keras.Input(tuple(input_shape), dtype="float32", name="image")
    outputs = classifier(features(preprocess(inputs)))
    return keras.Model(inputs, outputs, name=f"{backbone}_{head}")


def check_build_arguments(backbone, weights, *, image_size, preprocessing="official"):
    """Checks what `build_model` would refuse, without building anything.

    Args:
        backbone: str. Registry name.
        weights: "radimagenet", "imagenet", None/"none" or a weight file path.
        image_size: int. Square input size in pixels.
        preprocessing: str. "official" or "native".

    Raises:
        ValueError: unknown backbone, weights the backbone has no file for, an input
            smaller than the backbone takes, or a preprocessing mode it cannot use.
    """
    weights = weights_lib.normalize_weights(weights)
    preprocessing_lib.scheme_name(backbone, weights, preprocessing)
    backbones.check_input_shape(backbones.get(backbone), (image_size, image_size, 3), weights is not None)


def get_backbone(model):
    """The backbone sub-model of `model`: a registered backbone nested as one layer.

    The sub-model is found by its name (a registry name, as `build_model` names it)
    or else by its layers (`radtl.backbones.identify`): a `keras.applications` model
    under its own name (`mobilenetv2_0.35_32`, `efficientnetb0`, `resnet50`, ...)
    whose layers follow a registered backbone's block groups.

    Args:
        model: keras.Model.

    Returns:
        The nested keras.Model that is a registered backbone.

    Raises:
        ValueError: no such sub-model, or more than one; the message lists the
            sub-models found and says how to fix it (also for a backbone flattened
            into `model`, which has no sub-model to return).

    Example:

    ```python
    base = keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3),
                                          include_top=False, weights=None, pooling="avg")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(base(inputs)))
    get_backbone(model).name  # "mobilenetv2_0.35_32"
    ```
    """
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    found = [layer for layer in nested if layer.name in backbones.names()]
    if not found:
        found = [layer for layer in nested if backbones.identify(layer) is not None]
    if len(found) == 1:
        return found[0]
    if found:
        problem = f"several sub-models are registered backbones: {[l.name for l in found]}"
    elif nested:
        problem = (f"no sub-model is a registered backbone or follows one's layer names; "
                   f"sub-models: {[layer.name for layer in nested]}")
    else:
        flat = backbones.identify(model, outer=True)
        problem = "it has no sub-model" + (
            f"; its own layers follow `{flat.name}` (a backbone flattened into the "
            "model, `keras.Model(base.input, head(base.output))`): nest it instead, "
            "`outputs = head(base(inputs))`" if flat else "")
    raise ValueError(
        f"`model` must hold exactly one backbone sub-model (one of {backbones.names()}, "
        f"or a keras.applications model of one); {problem}. Build it with "
        "`radtl.models.build_model`, or nest the backbone as one layer. "
        f"Received: model.name={model.name!r}"
    )
