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
        weights: "radimagenet", "imagenet", None (random init) or a weight file path.
            Defaults to "radimagenet".
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
    preprocess = preprocessing_lib.get(backbone, weights, preprocessing)
    classifier = heads.build_head(head, num_classes=num_classes, **head_options)
    features = backbones.load_backbone(
        backbone, weights, input_shape=input_shape, pooling="avg",
        weights_dir=weights_dir, sha256=sha256,
    )
    inputs = keras.Input(tuple(input_shape), dtype="float32", name="image")
    outputs = classifier(features(preprocess(inputs)))
    return keras.Model(inputs, outputs, name=f"{backbone}_{head}")


def get_backbone(model):
    """The backbone sub-model of a model built by `build_model`.

    Args:
        model: keras.Model.

    Returns:
        The nested keras.Model whose name is a registered backbone name.

    Raises:
        ValueError: no such sub-model, or more than one.
    """
    found = [
        layer for layer in model.layers
        if isinstance(layer, keras.Model) and layer.name in backbones.names()
    ]
    if len(found) != 1:
        raise ValueError(
            "`model` must hold exactly one backbone sub-model named one of "
            f"{backbones.names()}; found {[layer.name for layer in found]}. Build it "
            f"with radtl.models.build_model. Received: model.name={model.name!r}"
        )
    return found[0]
