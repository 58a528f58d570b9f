"""radtl.probing: the head trained on cached features equals the end-to-end frozen run."""
import keras
import numpy as np
import pytest

import radtl
import radtl.data
from radtl import probing
from radtl import schedules
from radtl.config import TrainConfig

SIZE = 32


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    return radtl.data.open("synthetic_lesions", 1, data_dir=tmp_path_factory.mktemp("tfds"))


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return radtl.build_model("resnet50", None, head="linear", dropout=0.0, input_shape=(SIZE, SIZE, 3))


def _compile(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy())


def test_split_model_reuses_the_layers_and_gives_the_models_output():
    model = _model()
    features, head = probing.split_model(model)
    images = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    assert features.output.shape[1:] == (2048,)
    np.testing.assert_allclose(head(features(images)), model(images), atol=1e-6)
    assert all(any(w is v for v in model.weights) for w in head.weights + features.weights)


def test_split_model_rejects_a_model_that_is_not_one_chain():
    base = radtl.models.get_backbone(_model())
    inputs = keras.Input((SIZE, SIZE, 3))
    pooled = base(inputs)
    branched = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Concatenate()([pooled, pooled])))
    with pytest.raises(ValueError, match="one chain"):
        probing.split_model(branched)


def test_cached_probing_trains_the_same_head_as_the_end_to_end_frozen_run(fold):
    """`lp` on the whole model vs the head on cached features: same seed, same head weights."""
    end_to_end, cached = _model(), _model()
    cached.set_weights(end_to_end.get_weights())
    head_init = [w.copy() for w in end_to_end.layers[-1].get_weights()]
    backbone_init = [w.copy() for w in radtl.models.get_backbone(end_to_end).get_weights()]

    _compile(end_to_end)
    train = fold.load("train", image_size=SIZE, batch_size=32, seed=3)
    end_to_end.fit(train, epochs=2, callbacks=[schedules.get("lp")], verbose=0)

    features, head = probing.split_model(cached)
    _compile(head)
    cached_train = probing.feature_dataset(
        features, fold.load("train", image_size=SIZE, batch_size=32, shuffle=False), shuffle_seed=3)
    head.fit(cached_train, epochs=2, verbose=0)

    trained = end_to_end.layers[-1].get_weights()
    assert np.abs(trained[0] - head_init[0]).max() > 1e-3  # the head did train
    for ours, theirs in zip(cached.layers[-1].get_weights(), trained):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # The frozen backbone, BatchNorm moving statistics included, did not change.
    for before, after in zip(backbone_init, radtl.models.get_backbone(end_to_end).get_weights()):
        np.testing.assert_array_equal(before, after)


def test_feature_dataset_keeps_order_and_batch_size_without_a_seed(fold):
    model = _model()
    val = fold.load("val", image_size=SIZE, batch_size=16)
    cached = list(probing.feature_dataset(model, val))
    features, labels = probing.extract_features(probing.split_model(model)[0], val)
    assert [len(x) for x, _ in cached][0] == 16
    np.testing.assert_array_equal(np.concatenate([y for _, y in cached]), labels)
    np.testing.assert_allclose(np.concatenate([x for x, _ in cached]), features)
    assert features.shape == (fold.split_sizes["val"], 2048)


def _config(**overrides):
    return TrainConfig.from_dict({"backbone": "mobilenet_v2", "weights": None, "epochs": 3, **overrides})


@pytest.mark.parametrize("overrides, expected", [
    ({"schedule": "lp", "augment": False}, True),
    ({"schedule": "freezeall", "augment": False}, True),
    ({"schedule": "partial-unfreeze", "schedule_options": {"top": 0}, "augment": False}, True),
    ({"schedule": "lp", "augment": True}, False),
    ({"schedule": "freezeall", "augment": True}, False),
    ({"schedule": "lp-ft", "augment": False}, False),
    ({"schedule": "unfreezetop10", "augment": False}, False),
    ({"schedule": "ft", "augment": False}, False),
    ({"schedule": "partial-unfreeze", "schedule_options": {"top": 1}, "augment": False}, False),
])
def test_can_cache_asks_the_schedule_whether_the_backbone_ever_trains(overrides, expected):
    assert probing.can_cache(_config(**overrides)) is expected


def test_random_layers_that_draw_in_training_are_found():
    import keras

    def model(*layers):
        inputs = keras.Input((4,))
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x)

    assert probing.random_in_training(model(keras.layers.Dense(2), keras.layers.Dropout(0.1)))
    assert probing.random_in_training(model(keras.layers.GaussianNoise(0.1)))
    assert not probing.random_in_training(model(keras.layers.Dense(2), keras.layers.Dropout(0.0)))
    assert not probing.random_in_training(model(keras.layers.Dense(2)))


@pytest.mark.parametrize("overrides, expected", [
    ({"schedule": "lp", "augment": False}, 3),
    ({"schedule": "lp-ft", "augment": False}, 1),
    ({"schedule": "lp-ft", "schedule_options": {"probe_epochs": 2}, "augment": False}, 2),
    ({"schedule": "lp-ft", "schedule_options": {"probe_epochs": 0}, "augment": False}, 0),
    ({"schedule": "lp-ft", "schedule_options": {"probe_epochs": 2}, "augment": True}, 0),
    ({"schedule": "g-lf", "augment": False}, 1),
    ({"schedule": "ft", "augment": False}, 0),
])
def test_cached_epochs_counts_the_leading_frozen_unaugmented_epochs(overrides, expected):
    assert probing.cached_epochs(_config(**overrides)) == expected
