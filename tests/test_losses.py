"""Tests for radtl.losses: numpy references, OLS state in eager/graph/XLA and in fit."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from radtl import losses

LABELS = np.array([0, 1, 2, 1, 0], dtype="int64")
PROBS = np.array(
    [
        [0.70, 0.20, 0.10],  # correct, class 0
        [0.20, 0.50, 0.30],  # correct, class 1
        [0.50, 0.30, 0.20],  # wrong, class 2
        [0.10, 0.80, 0.10],  # correct, class 1
        [0.00, 0.90, 0.10],  # wrong, class 0 (p = 0 on the label: clipping)
    ],
    dtype="float32",
)
EPS = 1e-7


def _np_log(p):
    return np.log(np.clip(p.astype("float64"), EPS, 1.0))


def _np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _np_one_hot(y, k):
    return np.eye(k)[y]


def _np_ce(targets, p):
    return -(targets * _np_log(p)).sum(axis=-1)


def _np_kl(t, s):
    return (t * (np.log(t) - np.log(s))).sum(axis=-1)


def _np_ols_matrix(batches, k):
    """Zhang et al.'s end-of-epoch rule, written as loops over samples."""
    acc, cnt = np.zeros((k, k)), np.zeros(k)
    for labels, probs in batches:
        for y, p in zip(labels, probs):
            if np.argmax(p) == y:
                acc[y] += p
                cnt[y] += 1
    return np.array([acc[c] / cnt[c] if cnt[c] else np.full(k, 1.0 / k)
                     for c in range(k)])


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def _run(mode, fn):
    """fn in eager mode, as a tf.function, or as an XLA-compiled tf.function."""
    if mode == "eager":
        return fn
    return tf.function(fn, jit_compile=(mode == "xla"))


MODES = ["eager", "function", "xla"]


# --- Values against numpy references -------------------------------------------------

def _reference(name, params):
    k = PROBS.shape[1]
    one_hot = _np_one_hot(LABELS, k)
    if name == "hard":
        return _np_ce(one_hot, PROBS)
    if name == "label_smoothing":
        eps = params["epsilon"]
        return _np_ce((1 - eps) * one_hot + eps / k, PROBS)
    if name == "tf_kd":
        a, t, alpha = params["correct_prob"], params["temperature"], params["alpha"]
        teacher = one_hot * a + (1 - one_hot) * (1 - a) / (k - 1)
        if params["variant"] == "paper":
            soft_t = _np_softmax(np.log(teacher) / t)
            soft_s = _np_softmax(_np_log(PROBS) / t)
            distill = t**2 * _np_kl(soft_t, soft_s)
        else:
            soft_t = _np_softmax(teacher / t)
            distill = _np_kl(soft_t, np.clip(PROBS, EPS, 1)) / k
        return (1 - alpha) * _np_ce(one_hot, PROBS) + alpha * distill
    raise AssertionError(name)


VALUE_CASES = [
    ("hard", {}),
    ("label_smoothing", {"epsilon": 0.1}),
    ("label_smoothing", {"epsilon": 0.3}),
    ("tf_kd", {"correct_prob": 0.9, "temperature": 4.0, "alpha": 0.7,
               "variant": "paper"}),
    ("tf_kd", {"correct_prob": 0.99, "temperature": 40.0, "alpha": 0.95,
               "variant": "official"}),
    ("tf_kd", {"correct_prob": 0.9, "temperature": 2.0, "alpha": 0.5,
               "variant": "official"}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,params", VALUE_CASES)
def test_loss_matches_numpy_reference(name, params, mode):
    loss = losses.get(name, **params)
    value = _run(mode, lambda y, p: loss(y, p))(LABELS, PROBS)
    np.testing.assert_allclose(float(value), _reference(name, params).mean(), rtol=1e-5)


def test_labels_of_shape_batch_by_one_and_int32_are_accepted():
    loss = losses.get("hard")
    value = loss(LABELS.astype("int32")[:, None], PROBS)
    np.testing.assert_allclose(float(value), _reference("hard", {}).mean(), rtol=1e-5)


def test_one_hot_labels_are_rejected():
    with pytest.raises(ValueError, match=r"Received: y_true with shape \(5, 3\)"):
        losses.get("hard")(np.eye(3)[LABELS], PROBS)


@pytest.mark.parametrize("mode", MODES)
def test_ols_loss_matches_numpy_reference_for_a_given_soft_label_matrix(mode):
    soft = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]], "float32")
    loss = losses.get("ols", num_classes=3, alpha=0.3)
    loss.soft_labels.assign(soft)
    value = _run(mode, lambda y, p: loss(y, p))(LABELS, PROBS)
    one_hot = _np_one_hot(LABELS, 3)
    expected = 0.3 * _np_ce(one_hot, PROBS) + 0.7 * _np_ce(soft[LABELS], PROBS)
    np.testing.assert_allclose(float(value), expected.mean(), rtol=1e-5)


def test_tf_kd_official_teacher_is_nearly_uniform_at_t40():
    # The quirk the docstring describes: softmax(p_d / 40) with a = 0.99, K = 3.
    loss = losses.get("tf_kd", temperature=40.0, variant="official")
    teacher = keras.ops.convert_to_numpy(loss.teacher(np.array([0]), 3))
    softened = _np_softmax(teacher / 40.0)
    true_class = np.exp(0.99 / 40)
    assert softened[0, 0] == pytest.approx(true_class / (true_class
                                                         + 2 * np.exp(0.005 / 40)))
    assert softened[0, 0] < 0.35


def test_gradients_flow_and_are_finite_at_zero_probabilities():
    loss = losses.get("tf_kd", variant="paper")
    probs = tf.Variable(PROBS)
    with tf.GradientTape() as tape:
        value = loss(LABELS, probs)
    grad = tape.gradient(value, probs).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


# --- OLS state -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_ols_soft_labels_after_an_epoch_match_numpy_reference(mode):
    loss = losses.get("ols", num_classes=3)
    step = _run(mode, lambda y, p: loss(y, p))
    batches = [(LABELS[:3], PROBS[:3]), (LABELS[3:], PROBS[3:])]
    loss.set_accumulating(True)
    for labels, probs in batches:
        step(labels, probs)
    loss.set_accumulating(False)
    step(np.array([2, 2]), np.array([[0.1, 0.1, 0.8], [0, 0, 1]], "float32"))
    soft = loss.end_epoch()
    expected = _np_ols_matrix(batches, 3)
    np.testing.assert_allclose(soft, expected, rtol=1e-6)
    np.testing.assert_allclose(soft[2], 1 / 3)  # no correct sample of class 2: uniform
    np.testing.assert_allclose(soft[1], (PROBS[1] + PROBS[3]) / 2, rtol=1e-6)
    # A second epoch starts from empty accumulators and keeps S until it ends.
    loss.set_accumulating(True)
    step(np.array([2]), np.array([[0.2, 0.2, 0.6]], "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.soft_labels), expected,
                               rtol=1e-6)
    soft = loss.end_epoch()
    np.testing.assert_allclose(soft, [[1 / 3] * 3, [1 / 3] * 3, [0.2, 0.2, 0.6]],
                               rtol=1e-6)


def test_ols_callback_hooks_switch_accumulation():
    loss = losses.get("ols", num_classes=3)
    callback = loss.callback()

    def flag():
        return float(keras.ops.convert_to_numpy(loss.accumulating))

    loss.accumulated.assign(np.ones((3, 3)))
    callback.on_epoch_begin(0)
    assert flag() == 1.0
    assert not keras.ops.convert_to_numpy(loss.accumulated).any()
    loss(LABELS, PROBS)
    callback.on_test_begin()
    assert flag() == 0.0
    loss(np.array([2]), np.array([[0.0, 0.0, 1.0]], "float32"))
    callback.on_test_end()
    assert flag() == 1.0
    logs = {}
    callback.on_epoch_end(0, logs)
    assert flag() == 0.0
    expected = _np_ols_matrix([(LABELS, PROBS)], 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.soft_labels), expected,
                               rtol=1e-6)
    assert logs["ols_true_class_prob"] == pytest.approx(np.mean(np.diag(expected)))
    callback.on_test_begin()
    callback.on_test_end()
    assert flag() == 0.0  # evaluate outside an epoch stays off


def test_ols_callback_rejects_other_losses():
    with pytest.raises(ValueError, match="Received: loss="):
        losses.OnlineLabelSmoothingCallback(losses.get("hard"))


class _BatchProbabilities(keras.callbacks.Callback):
    """Records, per epoch, the probabilities the train step sees and S after the swap."""

    def __init__(self, x, batch_size, loss):
        super().__init__()
        self.x, self.batch_size, self.loss = x, batch_size, loss
        self.probs, self.soft_labels = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.probs.append([])

    def on_train_batch_begin(self, batch, logs=None):
        kernel, bias = self.model.get_weights()
        xb = self.x[batch * self.batch_size:(batch + 1) * self.batch_size]
        self.probs[-1].append(_np_softmax(xb.astype("float64") @ kernel + bias))

    def on_epoch_end(self, epoch, logs=None):
        self.soft_labels.append(keras.ops.convert_to_numpy(self.loss.soft_labels))


def _data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_ols_accumulates_during_fit_but_not_during_validation(jit_compile):
    keras.utils.set_random_seed(3)
    x, y = _data(8, seed=0)
    x_val, y_val = _data(30, seed=1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
    loss = losses.get("ols", num_classes=3)
    model.compile(keras.optimizers.SGD(0.5), loss=loss, metrics=["accuracy"],
                  jit_compile=jit_compile)
    recorder = _BatchProbabilities(x, 4, loss)
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                        validation_data=(x_val, y_val),
                        callbacks=[loss.callback(), recorder])
    # Validation had correct predictions, so accumulating them would have changed S.
    assert min(history.history["val_accuracy"]) > 0
    for epoch in range(2):
        batches = [(y[i * 4:(i + 1) * 4], probs)
                   for i, probs in enumerate(recorder.probs[epoch])]
        np.testing.assert_allclose(recorder.soft_labels[epoch],
                                   _np_ols_matrix(batches, 3), rtol=1e-4, atol=1e-6)
        assert history.history["ols_true_class_prob"][epoch] == pytest.approx(
            np.mean(np.diag(recorder.soft_labels[epoch])), rel=1e-6)
    # The second epoch really learned from the first one's S (not uniform any more).
    assert not np.allclose(recorder.soft_labels[0], 1 / 3)
    # evaluate() after fit, with or without the callback, leaves the state alone.
    model.evaluate(x_val, y_val, verbose=0)
    model.evaluate(x_val, y_val, verbose=0, callbacks=[loss.callback()])
    assert not keras.ops.convert_to_numpy(loss.counts).any()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loss.soft_labels),
                                  recorder.soft_labels[-1])


def test_ols_state_updates_under_mixed_bfloat16(restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    loss = losses.get("ols", num_classes=3)
    probs = keras.ops.cast(PROBS, "bfloat16")
    loss.set_accumulating(True)
    value = _run("xla", lambda y, p: loss(y, p))(LABELS, probs)
    assert value.dtype == tf.float32
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(probs, "float32"))
    np.testing.assert_allclose(loss.end_epoch(), _np_ols_matrix([(LABELS, rounded)], 3),
                               rtol=1e-6)
    # A tiny mixed-precision model trains with OLS and its S stays row-stochastic.
    keras.utils.set_random_seed(0)
    x, y = _data(8, seed=2)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(3, activation="softmax", dtype="float32"),
    ])
    model.compile(keras.optimizers.SGD(0.5), loss=loss, jit_compile=True)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[loss.callback()])
    assert np.all(np.isfinite(history.history["loss"]))
    soft = keras.ops.convert_to_numpy(loss.soft_labels)
    assert soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(soft, 1 / 3)


@pytest.mark.parametrize("name", ["hard", "label_smoothing", "tf_kd"])
def test_losses_compute_float32_from_bfloat16_probabilities(name, restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    params = dict(VALUE_CASES[[n for n, _ in VALUE_CASES].index(name)][1])
    value = losses.get(name, **params)(LABELS, keras.ops.cast(PROBS, "bfloat16"))
    assert value.dtype == tf.float32
    np.testing.assert_allclose(float(value), _reference(name, params).mean(), rtol=2e-2)


# --- Registry, config, argument errors ---------------------------------------------

def test_registry_and_bogus_name():
    assert losses.names() == ["hard", "label_smoothing", "ols", "tf_kd"]
    with pytest.raises(ValueError, match=r"'tf_kd'.*Received: name='clowntown'"):
        losses.get("clowntown")


@pytest.mark.parametrize(
    "name,params",
    [
        ("hard", {}),
        ("label_smoothing", {"epsilon": 0.2}),
        ("ols", {"num_classes": 4, "alpha": 0.25}),
        ("tf_kd", {"correct_prob": 0.9, "temperature": 3.0, "alpha": 0.4,
                   "variant": "official"}),
    ],
)
def test_config_round_trip_keeps_every_argument(name, params):
    loss = losses.get(name, **params)
    config = loss.get_config()
    for key, value in params.items():
        assert config[key] == value
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == config


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("label_smoothing", {"epsilon": 1.5}, "Received: epsilon=1.5"),
        ("ols", {"num_classes": 1}, "Received: num_classes=1"),
        ("ols", {"num_classes": 3, "alpha": -0.1}, "Received: alpha=-0.1"),
        ("tf_kd", {"correct_prob": 1.0}, "Received: correct_prob=1.0"),
        ("tf_kd", {"temperature": 0}, "Received: temperature=0"),
        ("tf_kd", {"variant": "pytorch"}, "Received: variant='pytorch'"),
    ],
)
def test_invalid_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        losses.get(name, **params)


def test_ols_rejects_predictions_of_another_width():
    with pytest.raises(ValueError, match="num_classes=4"):
        losses.get("ols", num_classes=4)(LABELS, PROBS)
