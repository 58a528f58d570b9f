"""radtl.preprocessing: schemes match keras.applications numerically; layer serialises."""
import importlib
import json

import keras
import numpy as np
import pytest
from keras.applications import imagenet_utils

from radtl import backbones
from radtl import preprocessing

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
IMAGES[0, 0, 0] = (0.0, 255.0, 10.0)  # range ends and distinct channels


def _apply(layer):
    return keras.ops.convert_to_numpy(layer(IMAGES))


@pytest.mark.parametrize("name", backbones.names())
def test_native_matches_keras_preprocess_input(name):
    spec = backbones.get(name)
    module = importlib.import_module(f"keras.applications.{spec.preprocess_module}")
    expected = module.preprocess_input(IMAGES.copy())
    layer = preprocessing.get(name, "imagenet", "native")
    assert layer.scheme == spec.preprocessing
    np.testing.assert_allclose(_apply(layer), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in backbones.names()
                                  if backbones.get(n).preprocessing != "none"])
def test_official_is_caffe_then_divide_by_255(name):
    # ImageDataGenerator(rescale=1/255, preprocessing_function=preprocess_input):
    # the function (caffe) runs first, the rescale second.
    expected = imagenet_utils.preprocess_input(IMAGES.copy(), mode="caffe") / 255.0
    for source in backbones.get(name).sources:
        layer = preprocessing.get(name, source, "official")
        assert layer.scheme == "caffe_rescaled"
        np.testing.assert_allclose(_apply(layer), expected, rtol=1e-5, atol=1e-6)
    # Channel 0 of the output is the input's blue channel, minus its mean, / 255.
    out = _apply(preprocessing.get(name, None, "official"))
    np.testing.assert_allclose(out[0, 0, 0], [(10 - 103.939) / 255,
                                              (255 - 116.779) / 255,
                                              (0 - 123.68) / 255], rtol=1e-5)


@pytest.mark.parametrize("scheme", sorted(preprocessing.SCHEMES))
def test_normalise_is_the_schemes_steps_in_order(scheme):
    """One 1x1 convolution equals BGR, then scale, then (x - mean) / std, then rescale."""
    s = preprocessing.SCHEMES[scheme]
    x = IMAGES[..., ::-1] if s.bgr else IMAGES
    expected = (x * s.scale - np.array(s.mean)) / np.array(s.std) * s.rescale
    batch = keras.ops.convert_to_numpy(preprocessing.normalise(IMAGES, scheme))
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-6)
    one = keras.ops.convert_to_numpy(preprocessing.function(scheme)(IMAGES[1]))
    np.testing.assert_allclose(one, expected[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`scheme` must be one of"):
        preprocessing.function("cafe")


def test_errors():
    with pytest.raises(ValueError, match=r"use mode='native'.*Received: backbone='convnext_tiny', mode='official'"):
        preprocessing.get("convnext_tiny", "imagenet", "official")
    with pytest.raises(ValueError, match=r"\['official', 'native'\]. Received: mode='caffe'$"):
        preprocessing.get("resnet50", "radimagenet", "caffe")
    with pytest.raises(ValueError, match="Received: backbone='resnet'"):
        preprocessing.get("resnet", "radimagenet", "official")
    with pytest.raises(ValueError, match="not available for `vgg16`"):
        preprocessing.get("vgg16", "radimagenet", "native")


def test_layer_config_records_the_choice_and_round_trips():
    layer = preprocessing.get("densenet121", "radimagenet", "native")
    config = layer.get_config()
    assert {k: config[k] for k in ("backbone", "source", "mode")} == {
        "backbone": "densenet121", "source": "radimagenet", "mode": "native"}
    clone = preprocessing.Preprocessing.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True)
    assert clone.scheme == "torch"
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(restored) is preprocessing.Preprocessing
    assert keras.saving.get_registered_name(preprocessing.Preprocessing) == (
        "radtl>Preprocessing")
    np.testing.assert_array_equal(_apply(restored), _apply(layer))
