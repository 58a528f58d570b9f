"""radtl.backbones: registry, construction per source, canonical names, block groups."""
import dataclasses
import warnings

import keras
import numpy as np
import pytest

import keras2_h5
from keras2_h5 import isolated_weights  # noqa: F401  (fixture)
from radtl import backbones
from radtl import weights

EXPECTED = {  # name -> pooled feature width
    "resnet50": 2048, "densenet121": 1024, "inception_v3": 2048,
    "inception_resnet_v2": 1536, "vgg16": 512, "vgg19": 512, "mobilenet_v2": 1280,
    "efficientnet_b0": 1280, "convnext_tiny": 768,
}


def _shape(name):
    size = backbones.get(name).min_input_size
    return (size, size, 3)


@pytest.fixture(scope="module")
def built():
    """Every registered backbone, random init, at its minimum input size (built once)."""
    return {name: backbones.load_backbone(name, None, input_shape=_shape(name))
            for name in backbones.names()}


def test_registry():
    assert backbones.names() == list(EXPECTED)
    assert backbones.radimagenet_names() == [
        "resnet50", "densenet121", "inception_v3", "inception_resnet_v2"]
    spec = backbones.get("inception_resnet_v2")
    assert spec.radimagenet_file == "RadImageNet-IRV2_notop.h5"
    assert spec.sources == ("radimagenet", "imagenet")
    assert backbones.get("vgg16").sources == ("imagenet",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.min_input_size = 1
    for name in backbones.names():
        spec = backbones.get(name)
        assert spec.preprocessing in backbones.NATIVE_PREPROCESSING
        assert hasattr(keras.applications, spec.constructor)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"resnet50.*Received: backbone='resnet51'. Did you mean 'resnet50'\?$"):
        backbones.load_backbone("resnet51", None)


@pytest.mark.parametrize("name, weights_arg, match", [
    ("resnet50", "imagenet21k", r"\['radimagenet', 'imagenet'\].*Received: weights='imagenet21k'$"),
    ("vgg16", "radimagenet", r"not available for `vgg16`.*Received: name='vgg16', weights='radimagenet'$"),
    ("resnet50", 3, r"Received: weights=3 \(of type int\)$"),
])
def test_bad_sources(name, weights_arg, match):
    with pytest.raises(ValueError, match=match):
        backbones.load_backbone(name, weights_arg, input_shape=(32, 32, 3))


def test_bad_input_shape_and_pooling():
    with pytest.raises(ValueError, match=r">= 75 px.*Received: input_shape=\(32, 32, 3\)"):
        backbones.load_backbone("inception_v3", None, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="3 input channels"):
        backbones.load_backbone("resnet50", "imagenet", input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match="Received: pooling='mean'"):
        backbones.load_backbone("vgg16", None, input_shape=(32, 32, 3), pooling="mean")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builds_random_init_and_groups_cover_weighted_layers_once(built, name):
    backbone = built[name]
    assert backbone.name == name
    assert backbone.output_shape == (None, EXPECTED[name])
    groups = backbones.block_groups(backbone)
    assert [g for g, _ in groups] == [g for g, _ in backbones.get(name).block_groups]
    assert all(layers for _, layers in groups), "empty group"
    grouped = [layer.name for _, layers in groups for layer in layers]
    weighted = [layer.name for layer in backbone.layers if layer.weights]
    # Every weighted layer exactly once, and groups follow the graph input -> output.
    assert grouped == weighted


def test_block_groups_reject_uncovered_and_overlapping_layers(built):
    backbone = built["resnet50"]
    spec = backbones.get("resnet50")
    missing = dataclasses.replace(spec, block_groups=spec.block_groups[:-1])
    with pytest.raises(ValueError, match=r"In no group \(20\): conv5_block1_1_conv, conv5_block1_1_bn, .*several groups \(0\): none"):
        backbones.block_groups(backbone, missing)
    overlap = dataclasses.replace(
        spec, block_groups=spec.block_groups + (("all", r".*"),))
    with pytest.raises(ValueError, match=r"In no group \(0\): none; in several groups \(106\): conv1_conv \(stem, all\), "):
        backbones.block_groups(backbone, overlap)


def test_layer_names_are_canonical_across_builds(built):
    # Keras' process-wide counter would name the second InceptionV3's layers
    # conv2d_94, ...; load_backbone renames them as in a fresh process.
    raw = keras.applications.InceptionV3(include_top=False, weights=None,
                                         input_shape=(75, 75, 3))
    assert "conv2d" not in [layer.name for layer in raw.layers]
    again = backbones.load_backbone("inception_v3", None, input_shape=(75, 75, 3))
    names = [layer.name for layer in again.layers]
    assert names == [layer.name for layer in built["inception_v3"].layers]
    assert names[1:3] == ["conv2d", "batch_normalization"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_pretrained_sources_without_files_fail_fast(isolated_weights, name):
    # No file anywhere: RadImageNet is an error naming the file; ImageNet tries the
    # download (here a closed local port standing in for an offline machine).
    spec = backbones.get(name)
    folder = keras2_h5.write_manifest_override(isolated_weights / "mirror", {
        spec.imagenet_file: {"url": keras2_h5.unreachable_url(spec.imagenet_file)}})
    expected = {"radimagenet": weights.WeightsNotFoundError,
                "imagenet": weights.WeightsDownloadError}
    for source in spec.sources:
        with pytest.raises(expected[source], match=spec.weight_file(source)):
            backbones.load_backbone(name, source, input_shape=_shape(name),
                                    weights_dir=folder)


def _write_and_load(tmp_path, name, source, model, arrays, layout="full-model"):
    folder = tmp_path / name
    folder.mkdir()
    keras2_h5.write(folder / backbones.get(name).weight_file(source), model, arrays,
                    layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' hashes do not match written files
        return backbones.load_backbone(name, source, input_shape=_shape(name),
                                       weights_dir=folder)


def _holds(backbone, arrays):
    weighted = [layer for layer in backbone.layers if layer.weights]
    assert len(weighted) == len(arrays)
    for layer, expected in zip(weighted, arrays.values()):
        values = [v.numpy() for v in layer.trainable_weights + layer.non_trainable_weights]
        for value, array in zip(values, expected, strict=True):
            np.testing.assert_array_equal(value, array)


@pytest.mark.parametrize("name, source", [
    ("densenet121", "radimagenet"),
    ("mobilenet_v2", "imagenet"),
])
def test_pretrained_sources_load_written_files(built, isolated_weights, name, source):
    arrays = keras2_h5.random_arrays(built[name], seed=3)
    backbone = _write_and_load(isolated_weights, name, source, built[name], arrays,
                               layout="weights-only")
    _holds(backbone, arrays)


def test_inception_file_with_session_dependent_names_loads_by_order(
        built, isolated_weights):
    # Keras-2 files of InceptionV3 carry whatever auto names the saving session gave
    # (conv2d_94, ...): layers pair up in topological order, as in Keras.
    raw = keras.applications.InceptionV3(include_top=False, weights=None,
                                         input_shape=(75, 75, 3))
    arrays = keras2_h5.random_arrays(raw, seed=4)
    assert "conv2d" not in arrays
    backbone = _write_and_load(isolated_weights, "inception_v3", "radimagenet", raw,
                               arrays)
    _holds(backbone, arrays)


def test_efficientnet_imagenet_adds_keras_imagenet_rescaling(built, isolated_weights):
    spec = backbones.get("efficientnet_b0")
    arrays = keras2_h5.random_arrays(built["efficientnet_b0"], seed=5)
    backbone = _write_and_load(isolated_weights, "efficientnet_b0", "imagenet",
                               built["efficientnet_b0"], arrays)
    _holds(backbone, arrays)
    scale = backbone.get_layer("normalization_imagenet_scale")
    np.testing.assert_allclose(scale.scale, spec.imagenet_extra_scale[1])
    names = [layer.name for layer in backbone.layers]
    assert names.index("normalization_imagenet_scale") == names.index("normalization") + 1
    assert "normalization_imagenet_scale" not in [l.name for l in built["efficientnet_b0"].layers]
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    assert np.all(np.isfinite(backbone.predict(x, verbose=0)))
