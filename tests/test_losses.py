"""Tests for radtl.losses: numpy references, OLS state in eager/graph/XLA, in fit and
across replicas, the registry and serialization."""
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from radtl import losses
from radtl.registry import RunContext

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


def _np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


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
        return (1 - alpha) * _np_ce(one_hot, PROBS) + alpha * params.get("multiplier", 1.0) * distill
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
    ("tf_kd", {"correct_prob": 0.9, "temperature": 4.0, "alpha": 0.7,
               "variant": "paper", "multiplier": 10.0}),
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


def _authors_tf_kd_reg(logits, labels, temperature, alpha, multiplier):
    """`loss_kd_regularization` of the Tf-KD authors, step by step in float64 numpy.

    Provenance: github.com/yuanli2333/Teacher-free-Knowledge-Distillation, file
    `my_loss_function.py` at commit d000ab3 (PyTorch 1.2):
        loss_CE = F.cross_entropy(outputs, labels)
        teacher_soft = (1 - correct_prob) / (K - 1), correct_prob = 0.99 on the label
        loss_soft_regu = nn.KLDivLoss()(F.log_softmax(outputs, dim=1),
                                        F.softmax(teacher_soft / T, dim=1)) * multiplier
        KD_loss = (1 - alpha) * loss_CE + alpha * loss_soft_regu
    `nn.KLDivLoss()` (reduction "mean") averages target * (log target - input) over all
    batch * K elements.
    """
    correct_prob = 0.99
    n, k = logits.shape
    log_p = _np_log_softmax(logits.astype("float64"))
    loss_ce = -log_p[np.arange(n), labels].mean()
    teacher_soft = np.full((n, k), (1 - correct_prob) / (k - 1))
    teacher_soft[np.arange(n), labels] = correct_prob
    target = _np_softmax(teacher_soft / temperature)
    loss_soft_regu = (target * (np.log(target) - log_p)).mean() * multiplier
    return (1 - alpha) * loss_ce + alpha * loss_soft_regu


# The README's Tf-KD_reg runs (`main.py --model_dir experiments/base_experiments/base_<net>/
# --regularization`) read T, alpha and the multiplier from that folder's params.json.
AUTHORS_CONFIGS = {
    "resnet18": {"temperature": 20.0, "alpha": 0.1, "multiplier": 100.0},
    "googlenet": {"temperature": 40.0, "alpha": 0.1, "multiplier": 50.0},
    "mobilenetv2": {"temperature": 40.0, "alpha": 0.95, "multiplier": 1.0},
}


@pytest.mark.parametrize("net", AUTHORS_CONFIGS)
def test_tf_kd_official_matches_the_authors_formula_with_multiplier(net):
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(6, 5))
    labels = rng.integers(0, 5, 6)
    params = AUTHORS_CONFIGS[net]
    loss = losses.get("tf_kd", variant="official", **params)
    value = float(loss(labels, _np_softmax(logits).astype("float32")))
    np.testing.assert_allclose(value, _authors_tf_kd_reg(logits, labels, **params), rtol=1e-5)


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_tf_kd_multiplier_scales_only_the_distillation_term(variant):
    # loss = (1 - alpha) CE + alpha * m * D: the part above (1 - alpha) CE is linear in m.
    alpha = 0.1
    hard = (1 - alpha) * float(losses.get("hard")(LABELS, PROBS))
    value = {m: float(losses.get("tf_kd", variant=variant, temperature=20.0, alpha=alpha,
                                 multiplier=m)(LABELS, PROBS)) for m in (1.0, 100.0)}
    assert value[100.0] - hard == pytest.approx(100.0 * (value[1.0] - hard), rel=1e-5)
    assert value[1.0] == pytest.approx(float(losses.get("tf_kd", variant=variant, temperature=20.0,
                                                        alpha=alpha)(LABELS, PROBS)), rel=1e-7)


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
    (callback,) = loss.callbacks()
    assert isinstance(callback, losses.OnlineLabelSmoothingCallback)

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


# Runs in a fresh interpreter: the 2 logical CPUs must be configured before TensorFlow
# initialises its devices, which this test process has long done.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from radtl import losses
    from radtl.registry import RunContext

    data = np.load(sys.argv[1])

    def soft_labels(strategy):
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
            model.set_weights([data["kernel"], data["bias"]])
            loss = losses.REGISTRY.build("ols", {}, RunContext(num_classes=3))
            # Learning rate 0: every step sees the same weights on one device or two.
            model.compile(keras.optimizers.SGD(0.0), loss=loss, jit_compile=False)
        model.fit(data["x"], data["y"], batch_size=8, epochs=1, shuffle=False, verbose=0,
                  callbacks=loss.callbacks())
        return keras.ops.convert_to_numpy(loss.soft_labels).tolist()

    def created_outside_the_scope(strategy):
        loss = losses.get("ols", num_classes=3)
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
            model.compile(keras.optimizers.SGD(0.0), loss=loss, jit_compile=False)
        try:
            model.fit(data["x"], data["y"], batch_size=8, epochs=1, verbose=0, callbacks=loss.callbacks())
        except ValueError as err:
            return str(err)

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps({"replicas": mirrored.num_replicas_in_sync,
                      "single": soft_labels(tf.distribute.get_strategy()),
                      "mirrored": soft_labels(mirrored),
                      "outside_error": created_outside_the_scope(mirrored)}))
""")


def test_ols_soft_labels_under_two_replica_mirrored_strategy_match_one_device(tmp_path):
    # Each replica sees half of every global batch of 8; the old state variables
    # (aggregation "none") kept replica 0's half only, so S differed from one device's.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.integers(0, 3, 32)
    kernel, bias = rng.normal(size=(4, 3)).astype("float32"), np.zeros(3, "float32")
    probs = _np_softmax(x.astype("float64") @ kernel + bias)
    # Both replicas' halves hold correct predictions of every class: dropping either
    # half changes every row of S.
    correct = probs.argmax(axis=1) == y
    halves = np.arange(32) % 8 < 4
    for half in (halves, ~halves):
        assert set(y[correct & half]) == {0, 1, 2}
    np.savez(tmp_path / "data.npz", x=x, y=y, kernel=kernel, bias=bias)
    result = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, str(tmp_path / "data.npz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    np.testing.assert_allclose(out["mirrored"], out["single"], atol=1e-6, rtol=0)
    batches = [(y[i:i + 8], probs[i:i + 8]) for i in range(0, 32, 8)]
    np.testing.assert_allclose(out["single"], _np_ols_matrix(batches, 3), atol=1e-6)
    # A loss created outside the scope has one copy of its state: refused, with the fix.
    assert "Create the loss inside `strategy.scope()`" in out["outside_error"]
    assert "MirroredStrategy, 2 replicas" in out["outside_error"]


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
                        callbacks=[*loss.callbacks(), recorder])
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
    model.evaluate(x_val, y_val, verbose=0, callbacks=loss.callbacks())
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
                        callbacks=loss.callbacks())
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


# --- Registry, context, callbacks, config, argument errors -------------------------

# Options of every registered loss for the round-trip tests; its keys must be the registry.
ROUND_TRIP = {
    "hard": {},
    "label_smoothing": {"epsilon": 0.2},
    "ols": {"num_classes": 4, "alpha": 0.25},
    "tf_kd": {"correct_prob": 0.9, "temperature": 3.0, "alpha": 0.4, "variant": "official",
              "multiplier": 50.0},
}


def test_registry_and_bogus_name():
    assert losses.names() == losses.REGISTRY.names() == ["hard", "label_smoothing", "ols", "tf_kd"]
    assert losses.REGISTRY.kind == "loss"
    with pytest.raises(ValueError, match=r"'tf_kd'.*Received: loss='clowntown'"):
        losses.get("clowntown")
    with pytest.raises(ValueError, match="Did you mean 'tf_kd'"):
        losses.REGISTRY.check_name("tf-kd")


def test_only_ols_declares_num_classes_as_run_context():
    assert {name: losses.REGISTRY.context_fields(name) for name in losses.names()} == {
        "hard": (), "label_smoothing": (), "ols": ("num_classes",), "tf_kd": ()}


def test_trainer_builds_ols_from_a_run_context():
    context = RunContext(num_classes=3, epochs=2)
    loss = losses.REGISTRY.build("ols", {"alpha": 0.3}, context)
    assert (loss.num_classes, loss.alpha) == (3, 0.3)
    assert loss.soft_labels.shape == (3, 3)
    # The same loss through `get`, with the context or with num_classes as a keyword.
    for loss in (losses.get("ols", context=context, alpha=0.3),
                 losses.get("ols", num_classes=3, alpha=0.3),
                 losses.get("ols", num_classes=3, context=context, alpha=0.3)):
        assert loss.get_config() == losses.REGISTRY.build("ols", {"alpha": 0.3}, context).get_config()
    # Context the loss does not declare is ignored.
    assert type(losses.get("hard", context=context)) is losses.CrossEntropy


def test_ols_without_num_classes_says_how_to_pass_it():
    with pytest.raises(ValueError, match=r"needs the run context's `num_classes`.*RunContext\(num_classes="):
        losses.get("ols")


def test_num_classes_given_twice_with_two_values_raises():
    with pytest.raises(ValueError, match=r"Received: num_classes=3 and context.num_classes=4"):
        losses.get("ols", num_classes=3, context=RunContext(num_classes=4))


def test_check_options_rejects_num_classes_in_loss_options():
    # The trainer passes num_classes in the run context, so a config's loss_options must
    # not carry it (it would clash with the dataset's class count).
    with pytest.raises(ValueError) as info:
        losses.REGISTRY.check_options("ols", {"num_classes": 3, "alpha": 0.2})
    message = str(info.value)
    assert "`loss_options`" in message and "'num_classes'" in message and "'ols'" in message
    assert "Received: loss_options={'num_classes': 3, 'alpha': 0.2}" in message
    losses.REGISTRY.check_options("ols", {"alpha": 0.2})  # a real option passes


@pytest.mark.parametrize("name,option", [("hard", "epsilon"), ("label_smoothing", "alpha"),
                                         ("ols", "smoothing"), ("tf_kd", "num_classes")])
def test_unknown_options_are_refused_with_the_valid_ones(name, option):
    valid = losses.REGISTRY.option_names(name)
    assert valid is not None and option not in valid
    with pytest.raises(ValueError, match=rf"Unknown `loss_options` \['{option}'\] for loss '{name}'\. "
                                         rf"Valid options: \[.*'reduction'"):
        losses.REGISTRY.check_options(name, {option: 1})
    with pytest.raises(ValueError, match=rf"Unknown `loss_options` \['{option}'\]"):
        losses.get(name, **{option: 1}, **({"num_classes": 2} if name == "ols" else {}))


def test_tf_kd_options_include_the_authors_multiplier():
    assert losses.REGISTRY.option_names("tf_kd")[:5] == [
        "correct_prob", "temperature", "alpha", "variant", "multiplier"]


@pytest.mark.parametrize("name", ["hard", "label_smoothing", "tf_kd"])
def test_stateless_losses_need_no_callbacks(name):
    assert losses.get(name).callbacks() == []
    assert not hasattr(losses.get(name), "callback")


def test_ols_callbacks_are_fresh_and_drive_this_loss():
    loss = losses.get("ols", num_classes=2)
    first, second = loss.callbacks(), loss.callbacks()
    assert len(first) == 1 and first[0] is not second[0] and first[0].loss is loss
    assert not hasattr(loss, "callback")  # the one method is callbacks()


@pytest.mark.parametrize("name", losses.names())
def test_every_loss_is_registered_with_keras_under_radtl(name):
    assert set(ROUND_TRIP) == set(losses.names())
    cls = losses.REGISTRY.get(name)
    assert keras.saving.get_registered_name(cls) == f"radtl>{cls.__name__}"
    assert keras.saving.get_registered_object(f"radtl>{cls.__name__}") is cls


@pytest.mark.parametrize("name", losses.names())
def test_config_round_trip_keeps_every_argument(name):
    params = ROUND_TRIP[name]
    loss = losses.get(name, **params)
    config = loss.get_config()
    for key, value in params.items():
        assert config[key] == value
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == config
    assert type(loss).from_config(config).get_config() == config


def test_saved_model_reloads_its_compiled_loss(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="softmax")])
    loss = losses.get("tf_kd", **ROUND_TRIP["tf_kd"])
    model.compile("sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is losses.TeacherFreeKD
    assert loaded.loss.get_config() == loss.get_config()


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("label_smoothing", {"epsilon": 1.5}, "Received: epsilon=1.5"),
        ("ols", {"num_classes": 1}, "Received: num_classes=1"),
        ("ols", {"num_classes": 3, "alpha": -0.1}, "Received: alpha=-0.1"),
        ("tf_kd", {"correct_prob": 1.0}, "Received: correct_prob=1.0"),
        ("tf_kd", {"temperature": 0}, "Received: temperature=0"),
        ("tf_kd", {"variant": "pytorch"}, "Received: variant='pytorch'"),
        ("tf_kd", {"multiplier": -1.0}, "Received: multiplier=-1.0"),
        ("tf_kd", {"multiplier": "100"}, "Received: multiplier='100'"),
    ],
)
def test_invalid_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        losses.get(name, **params)


def test_ols_rejects_predictions_of_another_width():
    with pytest.raises(ValueError, match="num_classes=4"):
        losses.get("ols", num_classes=4)(LABELS, PROBS)
