"""radtl.models: build_model assembly, get_backbone, .keras round trip."""
import warnings

import keras
import numpy as np
import pytest

import keras2_h5
from keras2_h5 import isolated_weights  # noqa: F401  (fixture)
from radtl import backbones
from radtl import models
from radtl.preprocessing import Preprocessing

SHAPE = (32, 32, 3)
IMAGES = np.random.default_rng(0).uniform(0, 255, (3, *SHAPE)).astype("float32")


@pytest.fixture(scope="module")
def model():
    return models.build_model("resnet50", None, head="linear", num_classes=2,
                              input_shape=SHAPE, preprocessing="official")


def test_structure(model):
    assert model.name == "resnet50_linear"
    assert model.input_shape == (None, *SHAPE)
    pre = model.layers[1]
    assert isinstance(pre, Preprocessing)
    assert (pre.backbone, pre.source, pre.mode, pre.scheme) == (
        "resnet50", None, "official", "caffe_rescaled")
    backbone = models.get_backbone(model)
    assert backbone is model.layers[2] and backbone.name == "resnet50"
    assert [g for g, _ in backbones.block_groups(backbone)][-1] == "conv5"


def test_outputs_are_float32_probabilities(model):
    probs = model.predict(IMAGES, verbose=0)
    assert probs.dtype == np.float32 and probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_round_trip_predicts_identically(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(IMAGES, verbose=0),
                                  model.predict(IMAGES, verbose=0))
    assert restored.layers[1].get_config()["mode"] == "official"
    assert models.get_backbone(restored).name == "resnet50"


def test_head_options_preprocessing_mode_and_pretrained_file(isolated_weights):
    # ImageNet weights through a written file; native preprocessing; an MLP head.
    spec = backbones.get("mobilenet_v2")
    folder = isolated_weights / "w"
    folder.mkdir()
    reference = backbones.build(spec, SHAPE)
    arrays = keras2_h5.random_arrays(reference, seed=7)
    keras2_h5.write(folder / spec.imagenet_file, reference, arrays, "weights-only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = models.build_model("mobilenet_v2", "imagenet", head="mlp",
                                   num_classes=3, input_shape=SHAPE,
                                   preprocessing="native", weights_dir=folder,
                                   dropout=0.2)
    assert built.layers[1].scheme == "tf"
    assert built.layers[-1].get_config()["dropout"] == 0.2
    kernel = models.get_backbone(built).get_layer("Conv1").kernel.numpy()
    np.testing.assert_array_equal(kernel, arrays["Conv1"][0])
    assert built.predict(IMAGES, verbose=0).shape == (3, 3)


def test_weights_none_string_is_random_init():
    # The CLI and TrainConfig accept "none" (any case); so does the library.
    built = models.build_model("mobilenet_v2", "NONE", input_shape=SHAPE,
                               preprocessing="native")
    assert built.layers[1].source is None
    assert built.predict(IMAGES[:1], verbose=0).shape == (1, 2)


def test_argument_errors_come_before_building():
    with pytest.raises(ValueError, match="Received: mode='imagenet'"):
        models.build_model("resnet50", None, preprocessing="imagenet")
    with pytest.raises(ValueError, match="Received: .*'transformer'"):
        models.build_model("resnet50", None, head="transformer")


def test_get_backbone_requires_one_backbone():
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    with pytest.raises(ValueError, match="Received: model.name='plain'"):
        models.get_backbone(plain)
