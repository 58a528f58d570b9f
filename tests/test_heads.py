"""Tests for radtl.heads: registry, structure, parameter counts, precision, serialization."""
import logging

import keras
import numpy as np
import pytest

from radtl import heads
from radtl.registry import RunContext

# Small options that keep every head tiny but exercise each hyper-parameter.
SMALL = {
    "linear": {"dropout": 0.3},
    "mlp": {"hidden_ratio": 0.75, "dropout": 0.2},
    "conv1d": {"num_filters": 3, "kernel_size": 3, "strides": 2, "hidden_ratio": 0.25},
    "conv1d_skip": {"num_filters": 2, "kernel_size": 5, "strides": 1, "hidden_units": 7},
}

# For each head, each structural option and a second value that must change the count.
STRUCTURAL = {
    "linear": {"num_classes": 5},
    "mlp": {
        "num_classes": 5,
        "hidden_ratio": 0.25,
        "hidden_units": 3,
        "max_hidden_units": 4,
    },
    "conv1d": {
        "num_classes": 5,
        "num_filters": 5,
        "kernel_size": 6,
        "strides": 3,
        "hidden_ratio": 0.1,
        "hidden_units": 3,
        "max_hidden_units": 4,
    },
}
STRUCTURAL["conv1d_skip"] = STRUCTURAL["conv1d"]
CASES = [(name, option, value) for name in heads.names()
         for option, value in STRUCTURAL[name].items()]


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def _model(head, in_features):
    inputs = keras.Input((in_features,))
    return keras.Model(inputs, head(inputs))


def _features(batch, in_features, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, in_features)).astype("float32")


def test_registry_lists_the_four_heads():
    assert heads.names() == heads.REGISTRY.names() == ["linear", "mlp", "conv1d", "conv1d_skip"]
    assert heads.REGISTRY.kind == "head"
    assert set(SMALL) == set(STRUCTURAL) == set(heads.names())


def test_bogus_name_raises_and_lists_valid_names():
    with pytest.raises(ValueError, match=r"conv1d_skip.*Received: head='clowntown'"):
        heads.build_head("clowntown")
    with pytest.raises(ValueError, match="Received: head='clowntown'"):
        heads.head_param_count("clowntown", 16)
    with pytest.raises(ValueError, match="Did you mean 'conv1d_skip'"):
        heads.REGISTRY.check_name("conv1d-skip")


@pytest.mark.parametrize("name", heads.names())
def test_registry_builds_heads_from_the_run_context(name):
    assert heads.REGISTRY.context_fields(name) == ("num_classes",)
    options = {**SMALL[name], "name": "head"}
    head = heads.REGISTRY.build(name, options, RunContext(num_classes=5))
    assert head.num_classes == 5
    assert head.get_config() == heads.build_head(name, num_classes=5, **options).get_config()


@pytest.mark.parametrize("name", heads.names())
def test_option_names_are_the_constructor_arguments(name):
    options = heads.REGISTRY.option_names(name)
    assert set(SMALL[name]) | set(STRUCTURAL[name]) - {"num_classes"} <= set(options)
    assert {"name", "dtype", "trainable"} <= set(options)
    assert "num_classes" not in options  # comes from the run context
    heads.REGISTRY.check_options(name, SMALL[name])


def test_check_options_rejects_num_classes_in_head_options():
    with pytest.raises(ValueError) as info:
        heads.REGISTRY.check_options("mlp", {"num_classes": 3})
    message = str(info.value)
    assert "`head_options`" in message and "'num_classes'" in message and "'mlp'" in message


def test_layer_arguments_are_options():
    head = heads.build_head("mlp", name="my_head", dtype="bfloat16", trainable=False)
    assert (head.name, head.dtype_policy.name, head.trainable) == ("my_head", "bfloat16", False)


@pytest.mark.parametrize("name", heads.names())
def test_every_head_is_registered_with_keras_under_radtl(name):
    cls = heads.REGISTRY.get(name)
    assert keras.saving.get_registered_name(cls) == f"radtl>{cls.__name__}"
    assert keras.saving.get_registered_object(f"radtl>{cls.__name__}") is cls


@pytest.mark.parametrize("name", heads.names())
@pytest.mark.parametrize("in_features", [9, 16, 37])
def test_param_count_formula_matches_built_layer(name, in_features):
    head = heads.build_head(name, num_classes=3, **SMALL[name])
    head.build((None, in_features))
    assert head.count_params() == heads.head_param_count(
        name, in_features, num_classes=3, **SMALL[name]
    )


@pytest.mark.parametrize("name", heads.names())
def test_output_is_a_probability_distribution(name):
    head = heads.build_head(name, num_classes=4, **SMALL[name])
    probs = keras.ops.convert_to_numpy(head(_features(5, 24), training=False))
    assert probs.shape == (5, 4)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", heads.names())
def test_output_stays_float32_under_mixed_bfloat16(name, restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    head = heads.build_head(name, **SMALL[name])
    model = _model(head, 20)
    assert model.output.dtype == "float32"
    assert head.output_dense.compute_dtype == "float32"
    assert head.compute_dtype == "bfloat16"
    probs = model(_features(3, 20), training=False)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    if name != "linear":
        assert head.hidden_dense.compute_dtype == "bfloat16"


@pytest.mark.parametrize("name,option,value", CASES)
def test_every_structural_option_changes_the_structure(name, option, value):
    in_features = 30
    base = dict(SMALL[name])
    base.pop("hidden_units", None)  # an explicit width would mask ratio and cap
    changed = {**base, option: value}
    count = {}
    for key, options in (("base", base), ("changed", changed)):
        head = heads.build_head(name, **options)
        head.build((None, in_features))
        count[key] = head.count_params()
    assert count["base"] != count["changed"]


@pytest.mark.parametrize("name", heads.names())
def test_dropout_and_slope_reach_every_sublayer(name):
    options = {"dropout": 0.37}
    if name != "linear":
        options["negative_slope"] = 0.2
    head = heads.build_head(name, **options)
    head.build((None, 12))
    sublayers = head._flatten_layers(include_self=False)
    dropouts = [layer.rate for layer in sublayers
                if isinstance(layer, keras.layers.Dropout)]
    slopes = [layer.negative_slope for layer in sublayers
              if isinstance(layer, keras.layers.LeakyReLU)]
    expected = {"linear": (1, 0), "mlp": (1, 1)}.get(name, (2, 2))
    assert dropouts == [0.37] * expected[0]
    assert slopes == pytest.approx([0.2] * expected[1])


@pytest.mark.parametrize("name", heads.names())
def test_keras_file_round_trip_gives_identical_predictions(name, tmp_path):
    model = _model(heads.build_head(name, num_classes=3, **SMALL[name]), 16)
    x = _features(4, 16, seed=1)
    before = model.predict(x, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    head = loaded.layers[-1]
    assert type(head) is type(model.layers[-1])
    assert head.get_config() == model.layers[-1].get_config()


@pytest.mark.parametrize("name", heads.names())
def test_get_config_round_trip_keeps_every_argument(name):
    head = heads.build_head(name, num_classes=3, **SMALL[name])
    config = head.get_config()
    for option, value in {"num_classes": 3, **SMALL[name]}.items():
        assert config[option] == value
    assert type(head).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert type(restored) is type(head) and restored.get_config() == config


def test_frees_configuration_count_and_warning(caplog):
    # Frees et al. ConvSkip over ResNet50 features, counted by hand: conv + BN, skip
    # Dense + BN over C = 16 * 2047, hidden Dense + BN to H = C / 2, output Dense.
    width, hidden = 16 * 2047, 16 * 2047 // 2
    expected = (16 * 2 + 4 * 16) + (2048 * width + 4 * width)
    expected += (width * hidden + 4 * hidden) + (hidden * 2 + 2)
    count = heads.head_param_count("conv1d_skip", 2048, **heads.FREES_CONV_OPTIONS)
    assert count == expected
    assert 603e6 < count < 604e6
    # The defaults are modest.
    assert heads.head_param_count("conv1d_skip", 2048) < 20e6
    assert heads.head_param_count("conv1d", 2048) < 5e6


def test_building_a_large_head_logs_count_and_memory(caplog, monkeypatch):
    monkeypatch.setattr(heads, "LARGE_HEAD_PARAMS", 1000)
    options = {"num_filters": 2, "kernel_size": 2, "strides": 1,
               "max_hidden_units": None}
    small = heads.build_head("conv1d_skip", **options, name="small_head")
    large = heads.build_head("conv1d_skip", **options, name="large_head")
    with caplog.at_level(logging.WARNING, logger="radtl.heads"):
        small.build((None, 8))
        assert caplog.records == []
        large.build((None, 40))
    count = large.count_params()
    assert count > 1000
    (record,) = caplog.records
    assert "large_head" in record.getMessage()
    assert f"{count:,} parameters" in record.getMessage()
    assert f"{count * 4 / 1e9:.2f} GB" in record.getMessage()


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("linear", {"dropout": 1.0}, "Received: dropout=1.0"),
        ("mlp", {"hidden_ratio": 0}, "Received: hidden_ratio=0"),
        ("mlp", {"hidden_units": 0}, "Received: hidden_units=0"),
        ("conv1d", {"kernel_size": 0}, "Received: kernel_size=0"),
        ("conv1d_skip", {"num_filters": 2.5}, "Received: num_filters=2.5"),
        ("conv1d", {"strides": None}, "Received: strides=None"),
        ("linear", {"num_classes": 0}, "Received: num_classes=0"),
    ],
)
def test_invalid_option_values_raise(name, options, match):
    with pytest.raises(ValueError, match=match):
        heads.build_head(name, **options)


def test_options_a_head_does_not_take_are_not_ignored():
    with pytest.raises(ValueError, match=r"Unknown `head_options` \['kernel_size'\] for head 'linear'\. "
                                         r"Valid options: \['dropout', 'dtype', 'name', 'trainable'\]"):
        heads.build_head("linear", kernel_size=3)


def test_kernel_longer_than_features_raises_at_build():
    head = heads.build_head("conv1d", kernel_size=9)
    with pytest.raises(ValueError, match="Received: kernel_size=9"):
        head.build((None, 8))


def test_unpooled_input_raises():
    with pytest.raises(ValueError, match="GlobalAveragePooling2D"):
        heads.build_head("mlp").build((None, 7, 7, 16))
