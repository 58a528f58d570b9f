"""radtl.activations: stage layers per backbone, stage activations, per-stage similarity."""
import logging
import tracemalloc

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from radtl import activations
from radtl import backbones
from radtl import models

# Juodelyte et al.'s ResNet50 layers: DovileDo/revisiting-transfer, src/CCA.py @ 33eace2.
JUODELYTE_RESNET50 = ["conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                      "conv5_block3_out"]
CHANNELS = {  # channel count of each stage, from the Keras architectures
    "resnet50": [64, 256, 512, 1024, 2048],
    "densenet121": [64, 128, 256, 512, 1024],
    "inception_v3": [192, 288, 768, 768, 1280, 2048],
}
ALL_METHODS = list(activations.METHODS)


def _canonical_operations(model):
    """`{canonical name: operation}`: layers and non-layer operations named apart."""
    layers = list(model.layers)
    ops = [op for op in model.operations if not isinstance(op, keras.layers.Layer)]
    return {name: op for group in (layers, ops)
            for name, op in zip(backbones.canonical_layer_names(group), group)}


def _size(name):
    return backbones.get(name).min_input_size


def _model(name, seed=0):
    keras.utils.set_random_seed(seed)
    size = _size(name)
    return models.build_model(name, None, input_shape=(size, size, 3))


def _batches(count, size, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 255, (batch, size, size, 3)).astype("float32") for _ in range(count)]


@pytest.fixture(scope="module")
def resnet():
    return _model("resnet50", seed=1)


@pytest.fixture(scope="module")
def resnet_other():
    return _model("resnet50", seed=2)


# --------------------------------------------------------------------------------------
# stage_layers
# --------------------------------------------------------------------------------------
def test_resnet50_stages_are_juodelyte_et_al_layers(resnet):
    assert activations.stage_layers(models.get_backbone(resnet)) == JUODELYTE_RESNET50
    assert activations.stage_layers(resnet) == JUODELYTE_RESNET50  # the whole model


@pytest.mark.parametrize("name", backbones.names())
def test_stage_layers_name_4d_outputs_one_per_block_group(name):
    size = _size(name)
    backbone = backbones.load_backbone(name, None, input_shape=(size, size, 3))
    names = activations.stage_layers(backbone)
    groups = backbones.block_groups(backbone)
    assert len(names) == len(groups) == len(backbones.get(name).stage_layers)
    named = _canonical_operations(backbone)
    position = {name: backbone.operations.index(op) for name, op in named.items()}
    sides = []
    for k, stage in enumerate(names):
        tensor = named[stage].output
        assert len(tensor.shape) == 4, (stage, tensor.shape)
        sides.append(tensor.shape[1])
        # After every weighted layer of its group, before every one of the next group.
        spatial = [layer for layer in groups[k][1] if len(layer.output.shape) == 4]
        assert position[stage] >= max(map(backbone.operations.index, spatial))
        if k + 1 < len(groups):
            assert position[stage] < min(map(backbone.operations.index, groups[k + 1][1]))
    assert sides == sorted(sides, reverse=True)  # resolution never grows with depth
    pooling = [layer for layer in backbone.layers  # EfficientNet's squeeze-excite pools first
               if isinstance(layer, keras.layers.GlobalAveragePooling2D)][-1]
    assert named[names[-1]].output is pooling.input  # the last stage is the map that is pooled


def test_convnext_stages_are_the_residual_sums_the_downsampling_blocks_consume():
    backbone = backbones.load_backbone("convnext_tiny", None, input_shape=(32, 32, 3))
    named = _canonical_operations(backbone)
    names = activations.stage_layers(backbone)
    for i, stage in enumerate(names[1:4]):
        consumer = backbone.get_layer(f"convnext_tiny_downsampling_block_{i}")
        assert named[stage].output is consumer.input


def test_stage_layers_are_canonical_names_in_a_keras_applications_model():
    # Built after another InceptionV3, its auto-named layers get process-wide numbers.
    keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    base = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    assert "activation_4" not in [layer.name for layer in base.layers]
    names = activations.stage_layers(base)
    assert names == ["activation_4", "mixed2", "mixed3", "mixed7", "mixed8", "mixed10"]
    acts = activations.stage_activations(base, _batches(1, 75, batch=2), max_datapoints=50)
    assert acts["activation_4"].shape == (50, 192)


def test_stage_layers_refuse_a_deeper_model_of_the_family():
    # ResNet101 follows the resnet50 block groups, but conv4_block6_out is not its conv4 end.
    base = keras.applications.ResNet101(weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"`conv4_block6_out` of `resnet50` is not the end of block "
                                         r"group `conv4`.*Pass `stages=`"):
        activations.stage_layers(base)
    acts = activations.stage_activations(base, _batches(1, 32), stages=["conv4_block23_out"])
    assert list(acts) == ["conv4_block23_out"]


def test_stage_layers_refuse_an_unregistered_model():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs))
    with pytest.raises(ValueError, match="must hold exactly one backbone sub-model"):
        activations.stage_layers(model)
    # A sub-model named like a registered backbone, without its layers.
    outer = keras.Model(inputs, keras.Model(inputs, model(inputs), name="vgg16")(inputs))
    with pytest.raises(ValueError, match=r"The stage layers registered for `vgg16` \(\['block1_pool', .*"
                                         r"missing: \['block1_pool', .*Received: backbone.name='vgg16'"):
        activations.stage_layers(outer)


# --------------------------------------------------------------------------------------
# stage_activations
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "inception_v3"])
def test_one_array_per_stage_with_its_channels(name):
    model = _model(name)
    size = _size(name)
    acts = activations.stage_activations(model, _batches(2, size, batch=3), max_datapoints=100)
    assert list(acts) == list(backbones.get(name).stage_layers)
    assert [a.shape[1] for a in acts.values()] == CHANNELS[name]
    backbone = models.get_backbone(model)
    for stage, array in acts.items():
        _, h, w, _ = backbone.get_layer(stage).output.shape
        assert array.shape[0] == min(100, 6 * h * w), stage  # 6 images x h x w positions
        assert array.dtype == np.float32 and np.isfinite(array).all()
    # A channel subsample keeps `channels` columns (all of a stage that has fewer).
    acts = activations.stage_activations(model, _batches(1, size, batch=2), channels=100,
                                         max_datapoints=20)
    assert [a.shape[1] for a in acts.values()] == [min(100, c) for c in CHANNELS[name]]


def test_datapoints_are_capped_and_memory_bounded(resnet):
    small = activations.stage_activations(resnet, _batches(2, 32), max_datapoints=64, channels=8)
    large = activations.stage_activations(resnet, _batches(20, 32), max_datapoints=64, channels=8)
    assert {k: a.shape for k, a in small.items()} == {
        "conv1_relu": (64, 8), "conv2_block3_out": (64, 8), "conv3_block4_out": (64, 8),
        "conv4_block6_out": (32, 8), "conv5_block3_out": (8, 8)}  # 8 images x 2 x 2, x 1 x 1
    assert {k: a.shape for k, a in large.items()} == {k: (64, 8) for k in small}

    def peak(count):
        """Peak traced memory after the first batch (which builds and traces the model)."""
        def batches():
            for i, batch in enumerate(_batches(count, 32)):
                if i == 1:
                    tracemalloc.start()
                yield batch

        try:
            activations.stage_activations(resnet, batches(), max_datapoints=64, channels=8)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Keeping even the sampled 8 channels of every position would grow the peak 2.5x.
    assert peak(30) < 1.3 * peak(3)


def test_two_models_get_the_same_positions_and_channels(resnet):
    # At initialisation (zero biases, BatchNorm as identity) ResNet50 is positively
    # homogeneous in its first kernel: doubling it doubles every stage's activations.
    # Rows or columns of other positions or channels would not be twice the first's.
    doubled = keras.models.clone_model(resnet)
    doubled.set_weights(resnet.get_weights())
    kernel = models.get_backbone(doubled).get_layer("conv1_conv").kernel
    kernel.assign(2 * kernel)
    data = _batches(3, 32)
    a = activations.stage_activations(resnet, data, max_datapoints=100, channels=16, seed=3)
    b = activations.stage_activations(doubled, data, max_datapoints=100, channels=16, seed=3)
    for stage in a:
        assert np.abs(a[stage]).max() > 0
        np.testing.assert_allclose(b[stage], 2 * a[stage], rtol=1e-4, atol=1e-5 * np.abs(a[stage]).max())
    c = activations.stage_activations(resnet, data, max_datapoints=100, channels=16, seed=4)
    assert not np.array_equal(a["conv1_relu"], c["conv1_relu"])  # another seed, other samples


def test_positions_do_not_depend_on_how_the_images_are_batched(resnet):
    images = np.concatenate(_batches(3, 32))
    by_four = activations.stage_activations(resnet, [images[:4], images[4:8], images[8:]],
                                            max_datapoints=150, channels=8, seed=1)
    by_six = activations.stage_activations(resnet, [images[:6], images[6:]],
                                           max_datapoints=150, channels=8, seed=1)
    for stage in by_four:
        np.testing.assert_allclose(by_four[stage], by_six[stage], rtol=1e-5, atol=1e-5)


def test_rows_are_positions_of_the_full_activations_in_dataset_order(resnet):
    data, stage = _batches(2, 32), ["conv2_block3_out"]
    full = activations.stage_activations(resnet, data, stages=stage, max_datapoints=10**6)[stage[0]]
    backbone = models.get_backbone(resnet)
    maps = keras.Model(backbone.input, backbone.get_layer(stage[0]).output)
    expected = np.concatenate([maps(resnet.get_layer("preprocessing")(x)) for x in data])
    np.testing.assert_allclose(full, expected.reshape(-1, 256), rtol=1e-5, atol=1e-5)  # all of them

    sample = activations.stage_activations(resnet, data, stages=stage, max_datapoints=50)[stage[0]]
    row_of = {row.tobytes(): i for i, row in enumerate(full)}
    rows = [row_of[row.tobytes()] for row in sample]  # KeyError: not a position's activations
    assert len(sample) == 50 and rows == sorted(set(rows))  # distinct, in dataset order
    narrow = activations.stage_activations(resnet, data, stages=stage, max_datapoints=50,
                                           channels=10)[stage[0]]
    column_of = {column.tobytes(): j for j, column in enumerate(sample.T)}
    columns = [column_of[column.tobytes()] for column in narrow.T]  # the same 50 positions
    assert len(columns) == 10 and columns == sorted(set(columns))


def test_the_model_s_preprocessing_is_applied(resnet):
    data = _batches(1, 32)
    backbone = models.get_backbone(resnet)
    raw = activations.stage_activations(resnet, data, max_datapoints=40, channels=4)
    preprocessed = [np.asarray(resnet.get_layer("preprocessing")(x)) for x in data]
    direct = activations.stage_activations(backbone, preprocessed, max_datapoints=40, channels=4)
    unprocessed = activations.stage_activations(backbone, data, max_datapoints=40, channels=4)
    for stage in raw:
        np.testing.assert_allclose(raw[stage], direct[stage], rtol=1e-4, atol=1e-5)
    assert not np.allclose(raw["conv1_relu"], unprocessed["conv1_relu"])


def test_dataset_elements_may_be_tuples_dicts_and_tf_data(resnet):
    images = np.round(_batches(1, 32)[0])  # whole numbers, so uint8 loses nothing
    labels = np.zeros(4, "int32")
    expected = activations.stage_activations(resnet, [images], max_datapoints=30, channels=4)
    for dataset in ([(images, labels)], [(images, labels, {"filename": labels})], [{"image": images}],
                    tf.data.Dataset.from_tensor_slices((images, labels)).batch(2),
                    [images.astype("uint8")]):
        got = activations.stage_activations(resnet, dataset, max_datapoints=30, channels=4)
        for stage in expected:
            np.testing.assert_allclose(got[stage], expected[stage], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_datapoints": 0}, r"`max_datapoints` must be an integer >= 1. Received: max_datapoints=0"),
    ({"channels": 0}, r"`channels` must be an integer >= 1 or None. Received: channels=0"),
    ({"seed": -1}, r"`seed` must be an integer >= 0. Received: seed=-1"),
    ({"stages": "conv1_relu"}, r"`stages` must be None .* or a non-empty list of layer names"),
    ({"stages": ["conv9_out"]},
     r"`stages` must name layers of the backbone `resnet50`; unknown: \['conv9_out'\]"),
    ({"stages": ["avg_pool"]}, r"Stage `avg_pool` must have a spatial \(batch, h, w, channels\) output"),
])
def test_bad_arguments(resnet, kwargs, match):
    with pytest.raises(ValueError, match=match):
        activations.stage_activations(resnet, _batches(1, 32), **kwargs)


@pytest.mark.parametrize("dataset, match", [
    ([np.zeros((2, 64, 64, 3), "float32")],
     r"image batches \(batch, 32, 32, 3\).*Received: a batch of shape \(2, 64, 64, 3\)"),
    ([np.zeros((32, 32, 3), "float32")], r"batch a dataset of single images"),
    ([], r"`dataset` must yield at least one batch"),
])
def test_bad_datasets(resnet, dataset, match):
    with pytest.raises(ValueError, match=match):
        activations.stage_activations(resnet, dataset)


# --------------------------------------------------------------------------------------
# compare_stages
# --------------------------------------------------------------------------------------
def test_a_model_compared_with_itself_is_1_for_every_method(resnet):
    table = activations.compare_stages(resnet, resnet, _batches(4, 32), methods=ALL_METHODS,
                                       repeats=2, channels=8, max_datapoints=200)
    assert list(table.columns) == ["stage", "stage_index", "method", "similarity", "std",
                                   "n_datapoints", "n_channels"]
    assert len(table) == 5 * len(ALL_METHODS)
    assert list(table["stage"].unique()) == JUODELYTE_RESNET50
    assert list(table["stage_index"].unique()) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(table["similarity"], 1.0, atol=1e-6)
    np.testing.assert_allclose(table["std"], 0.0, atol=1e-6)
    assert table.groupby("stage", sort=False)["n_datapoints"].first().tolist() == [200, 200, 200, 64, 16]
    assert (table["n_channels"] == 8).all()


def test_a_different_initialisation_is_less_similar(resnet, resnet_other):
    lines = []
    table = activations.compare_stages(resnet, resnet_other, _batches(4, 32), repeats=2, channels=8,
                                       max_datapoints=200, progress=lines.append)
    assert list(table["method"].unique()) == ["pwcca", "svcca", "linear_cka"]
    assert (table["similarity"] < 0.99).all() and (table["similarity"] > 0).all()
    assert (table["std"] > 0).all()  # the repeats differ
    assert len(lines) == 5 and lines[0].startswith("stage 1/5 conv1_relu: pwcca ")
    assert "200 datapoints x 8 channels, 2 repeats" in lines[0]
    # The mean over repeats is the mean of single-seed comparisons (seed, seed + 1, ...).
    singles = [activations.compare_stages(resnet, resnet_other, _batches(4, 32), methods=["linear_cka"],
                                          repeats=1, channels=8, max_datapoints=200, seed=s,
                                          progress=lambda line: None) for s in (0, 1)]
    means = np.mean([s["similarity"].to_numpy() for s in singles], axis=0)
    np.testing.assert_allclose(table.loc[table["method"] == "linear_cka", "similarity"], means, atol=1e-9)


def test_progress_defaults_to_logging(resnet, caplog):
    with caplog.at_level(logging.INFO, logger="radtl.activations"):
        activations.compare_stages(resnet, resnet, _batches(1, 32), methods=["linear_cka"], repeats=1,
                                   channels=4, max_datapoints=50, stages=["conv1_relu", "conv2_block3_out"])
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "stage 1/2 conv1_relu", "stage 2/2 conv2_block3_out"]


def test_compare_stages_refuses_different_architectures_and_sizes(resnet):
    with pytest.raises(ValueError, match=r"same backbone architecture and input size.*model_a: resnet50 "
                                         r".*model_b: densenet121"):
        activations.compare_stages(resnet, _model("densenet121"), _batches(1, 32))
    resnet64 = models.build_model("resnet50", None, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match=r"at input \(32, 32, 3\), model_b: resnet50 .* "
                                         r"at input \(64, 64, 3\)"):
        activations.compare_stages(resnet, resnet64, _batches(1, 32))


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": "pwcca"}, r"`methods` must be a non-empty list of names from \['mean_cca'"),
    ({"methods": ["cca"]}, r"`methods` must hold names from .*Received: methods=\['cca'\]"),
    ({"repeats": 0}, r"`repeats` must be an integer >= 1. Received: repeats=0"),
    ({"progress": "log"}, r"`progress` must be a callable"),
])
def test_compare_stages_bad_arguments(resnet, kwargs, match):
    with pytest.raises(ValueError, match=match):
        activations.compare_stages(resnet, resnet, _batches(1, 32), **kwargs)


def test_too_few_datapoints_for_cca_names_the_stage(resnet):
    # conv5 is 1 x 1 at 32 px: 4 images give 4 datapoints for 8 channels.
    with pytest.raises(ValueError, match=r"Stage `conv5_block3_out` \(4 datapoints x 8 channels\), method "
                                         r"'pwcca': .*more datapoints than features.*fewer `channels`"):
        activations.compare_stages(resnet, resnet, _batches(1, 32), channels=8, repeats=1,
                                   stages=["conv5_block3_out"])


def test_compare_stages_returns_a_dataframe_of_plain_types(resnet):
    table = activations.compare_stages(resnet, resnet, _batches(1, 32), methods=["linear_cka"], repeats=1,
                                       channels=4, max_datapoints=50, stages=["conv1_relu"],
                                       progress=lambda line: None)
    assert isinstance(table, pd.DataFrame)
    assert table.to_dict("records") == [{"stage": "conv1_relu", "stage_index": 0, "method": "linear_cka",
                                         "similarity": pytest.approx(1.0, abs=1e-6), "std": 0.0,
                                         "n_datapoints": 50, "n_channels": 4}]
