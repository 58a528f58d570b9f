"""Tests for radtl.schedules: pure rules, per-variable-rate optimizers, callbacks in fit()."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from radtl import backbones
from radtl import models
from radtl import schedules
from radtl.registry import RunContext
from radtl.schedules import groups as groups_lib
from radtl.schedules import optimizers as lr_optimizers
from radtl.schedules import rules

GROUPS = [("stem", "stem_.*"), ("block1", "b1_.*"), ("block2", "b2_.*"),
          ("block3", "b3_.*")]
GROUP_NAMES = [name for name, _ in GROUPS]

# (execution, dtype policy): the graph and XLA paths, in float32 and mixed_bfloat16.
CONFIGS = [
    ("eager", "float32"),
    ("graph", "float32"),
    ("jit", "float32"),
    ("graph", "mixed_bfloat16"),
    ("jit", "mixed_bfloat16"),
]
CONFIG_IDS = [f"{e}-{p}" for e, p in CONFIGS]


@pytest.fixture
def policy(request):
    """Sets the global dtype policy for the test and restores it afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy(previous)


def tiny_model(num_classes=3):
    """Outer model: a 4-group conv/BN backbone (`tinynet`, 14 Keras layers) + Dense head."""
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for prefix, filters, strides in (("stem", 4, 1), ("b1", 4, 2), ("b2", 8, 2),
                                     ("b3", 8, 1)):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same",
                                use_bias=False, name=f"{prefix}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    backbone = keras.Model(inputs, x, name="tinynet")
    outer = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="predictions")(backbone(outer))
    return keras.Model(outer, outputs, name="classifier")


def compile_model(model, execution, optimizer=None,
                  loss="sparse_categorical_crossentropy"):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-2),
        loss=loss,
        run_eagerly=execution == "eager",
        jit_compile=execution == "jit",
    )


def tiny_data(count=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (count, 16, 16, 3)).astype("float32")
    y = (np.arange(count) % 3).astype("int32")
    return x, y


class ChangeRecorder(keras.callbacks.Callback):
    """Records, per epoch, which model weights (moving statistics included) changed."""

    def on_train_begin(self, logs=None):
        self.changed = []

    def on_epoch_begin(self, epoch, logs=None):
        self._before = {w.path: np.array(w.numpy()) for w in self.model.weights}

    def on_epoch_end(self, epoch, logs=None):
        self.changed.append({
            w.path for w in self.model.weights
            if not np.array_equal(self._before[w.path], w.numpy())
        })

    def first_change(self, path):
        return next((e for e, paths in enumerate(self.changed) if path in paths), None)


def group_of(path):
    """The block group (or "head") a weight path of `tiny_model` belongs to."""
    prefixes = dict(zip(("stem", "b1", "b2", "b3"), GROUP_NAMES))
    return prefixes.get(path.split("/")[-2].split("_")[0], "head")


def fit_and_record(schedule, epochs, execution="eager"):
    keras.utils.set_random_seed(1)
    model = tiny_model()
    compile_model(model, execution)
    recorder = ChangeRecorder()
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0,
                        callbacks=[schedule, recorder])
    return model, recorder, history


def assert_first_changes(model, recorder, expected, bn_never=False):
    """`expected[group]` = epoch its weights first change (None: never)."""
    for weight in model.weights:
        group = group_of(weight.path)
        want = expected[group]
        if bn_never and "_bn/" in weight.path:
            want = None
        got = recorder.first_change(weight.path)
        assert got == want, f"{weight.path}: first changed at {got}, expected {want}"


# ---------------------------------------------------------------- pure rules


def test_gradual_unfreeze_rule_both_orders():
    last = [rules.gradual_unfreeze(e, 3, 2, "last_to_first").backbone for e in range(8)]
    assert last == [(False, False, False)] * 2 + [(False, False, True)] * 2 + [
        (False, True, True)] * 2 + [(True, True, True)] * 2
    first = [rules.gradual_unfreeze(e, 3, 1, "first_to_last") for e in range(5)]
    assert [s.backbone for s in first] == [
        (False, False, False), (True, False, False), (True, True, False),
        (True, True, True), (True, True, True)]
    assert [s.index for s in first] == [0, 1, 2, 3, 3]
    assert all(s.head for s in first)


def test_lp_ft_partial_and_radimagenet_rules():
    assert [rules.lp_ft(e, 2, 2).backbone for e in range(3)] == [
        (False, False), (False, False), (True, True)]
    assert rules.lp_ft(0, 2, 0).index == 1
    assert rules.partial_unfreeze(4, 1).backbone == (False, False, False, True)
    assert rules.partial_unfreeze(3, 5).backbone == (True, True, True)
    top10 = rules.radimagenet("unfreezetop10", 14).backbone
    assert top10 == (False,) * 4 + (True,) * 10
    assert rules.radimagenet("freezeall", 5).backbone == (False,) * 5
    assert rules.radimagenet("unfreezeall", 5).backbone == (True,) * 5
    stages = [rules.gradual_unfreeze(e, 3, 1) for e in range(2)]
    assert rules.union(stages).backbone == (False, False, True)


def test_discriminative_multipliers():
    backbone, head = rules.discriminative_multipliers(3, 2.6)
    assert head == 1.0
    np.testing.assert_allclose(backbone, [2.6 ** -3, 2.6 ** -2, 2.6 ** -1])


def test_relative_gradient_norm_multipliers_hand_case():
    # rgn = 1/2, 3/1, 2/4 -> max 3 -> 1/6, 1, 1/6; a zero-norm tensor gets 1.
    got = rules.relative_gradient_norm_multipliers([1, 3, 2, 5], [2, 1, 4, 0])
    np.testing.assert_allclose(got, [1 / 6, 1.0, 1 / 6, 1.0])
    # Averaged over two batches: tensor 0 rgn = (1+3)/2 / 2 = 1, tensor 1 = (1+1)/2/4.
    got = rules.mean_relative_gradient_norms([[1, 1], [3, 1]], [2, 4])
    np.testing.assert_allclose(got, [1.0, 0.25])
    assert rules.relative_gradient_norm_multipliers([0, 0], [1, 1]) == (0.0, 0.0)


def test_starting_point_penalty_formula():
    assert rules.starting_point_penalty([1.0, 3.0], [0.0, 1.0], "l2", 0.5) == 0.5 / 2 * 5
    assert rules.starting_point_penalty([1.0, -3.0], [0.0, 1.0], "l1", 0.5) == 0.5 * 5


# ---------------------------------------------------------------- registry and arguments


def test_registry_names_and_get():
    assert {"lp-ft", "g-lf", "g-fl", "l2-sp", "l1-sp", "auto-rgn", "unfreezetop10",
            "freezeall", "unfreezeall", "ft", "lp", "discriminative-lr",
            "partial-unfreeze", "gradual-unfreeze"} == set(schedules.names())
    schedule = schedules.get("LP-FT", probe_epochs=3)
    assert isinstance(schedule, schedules.LPFT) and schedule.probe_epochs == 3
    assert schedules.get("g-fl").order == "first_to_last"
    assert schedules.get("unfreezetop10").scenario == "unfreezetop10"


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Received: schedule='bogus'") as info:
        schedules.get("bogus")
    assert "lp-ft" in str(info.value) and "auto-rgn" in str(info.value)
    with pytest.raises(ValueError, match=r"'g-lf' fixes \{'order': 'last_to_first'\}"):
        schedules.get("g-lf", order="first_to_last")


def test_registry_checks_options_and_names_the_valid_ones():
    assert schedules.REGISTRY.kind == "schedule" and "LP-FT" in schedules.REGISTRY
    schedules.REGISTRY.check_options("lp-ft", {"probe_epochs": 2, "verbose": 1})
    with pytest.raises(ValueError, match=(
            r"Unknown `schedule_options` \['probe_epoch'\] for schedule 'lp-ft'\. "
            r"Valid options: \['backbone', 'block_groups', 'freeze_batchnorm', "
            r"'learning_rate', 'probe_epochs', 'verbose'\]")):
        schedules.REGISTRY.check_options("lp-ft", {"probe_epoch": 2})
    with pytest.raises(ValueError, match=r"Unknown `schedule_options` \['probe_epoch'\]"):
        schedules.get("lp-ft", probe_epoch=2)  # get() checks options the same way
    # The run context is not an option; the name's fixed arguments are not either.
    assert "train_data" not in schedules.REGISTRY.option_names("auto-rgn")
    assert "order" not in schedules.REGISTRY.option_names("g-fl")


def test_auto_rgn_takes_train_data_from_the_run_context():
    data = tf.data.Dataset.from_tensor_slices(tiny_data(4)).batch(2)
    assert schedules.REGISTRY.context_fields("auto-rgn") == ("train_data",)
    built = schedules.get("auto-rgn", context=RunContext(train_data=data), num_batches=2)
    assert built.train_data is data and built.num_batches == 2
    assert schedules.get("auto-rgn", train_data=data).train_data is data
    with pytest.raises(ValueError, match="needs the run context's `train_data`"):
        schedules.get("auto-rgn")
    # Other schedules ignore the context.
    assert isinstance(schedules.get("lp", context=RunContext(train_data=data)),
                      schedules.LinearProbe)


@pytest.mark.parametrize("factory, message", [
    (lambda: schedules.GradualUnfreeze(order="middle"),
     r"`order` must be one of \['last_to_first', 'first_to_last'\]\. "
     r"Received: order='middle'"),
    (lambda: schedules.GradualUnfreeze(epochs_per_stage=0), "Received: epochs_per_stage=0"),
    (lambda: schedules.PartialUnfreeze(top=-1), "Received: top=-1"),
    (lambda: schedules.LPFT(probe_epochs=1.5), "Received: probe_epochs=1.5"),
    (lambda: schedules.DiscriminativeLR(factor=0.5), "Received: factor=0.5"),
    (lambda: schedules.RadImageNetScenario("unfreezetop5"), "Received: scenario="),
    (lambda: schedules.L2SP(alpha=-1), "Received: alpha=-1"),
    (lambda: schedules.AutoRGN(None), "Received: train_data=None"),
    (lambda: schedules.FullFineTune(backbone=3), "Received: backbone=3"),
])
def test_argument_errors(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_bad_block_groups_and_backbone_are_reported():
    model = tiny_model()
    compile_model(model, "eager")
    x, y = tiny_data(8)
    missing = schedules.PartialUnfreeze(top=1, block_groups=GROUPS[1:])
    with pytest.raises(ValueError, match=r"In no group \(2\): stem_conv, stem_bn;"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[missing])
    unknown = schedules.LinearProbe(backbone="bogus")
    with pytest.raises(ValueError, match=r"a registered backbone \(\[.*'mobilenet_v2'.*"
                                         r"Received: backbone='bogus'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[unknown])
    absent = schedules.LinearProbe(backbone="resnet50")  # registered, not in the model
    with pytest.raises(ValueError, match="neither a sub-model nor the model's own layers"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[absent])
    no_groups = schedules.GradualUnfreeze()
    with pytest.raises(ValueError, match="No block groups are registered"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[no_groups])


# ---------------------------------------------------------------- optimizers


def _manual_adam(grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Numpy Adam (Keras form) from zero state, in float64; returns the total change."""
    grads = [np.asarray(g, "float64") for g in grads]
    m = np.zeros_like(grads[0])
    v = np.zeros_like(grads[0])
    total = np.zeros_like(grads[0])
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        total -= alpha * m / (np.sqrt(v) + epsilon)
    return total


@pytest.mark.parametrize("optimizer_class", ["Adam", "AdamW", "SGD"])
def test_multipliers_scale_updates(optimizer_class):
    keras_opt = getattr(keras.optimizers, optimizer_class)
    kwargs = {"learning_rate": 0.1}
    if optimizer_class == "AdamW":
        kwargs["weight_decay"] = 0.5
    if optimizer_class == "SGD":
        kwargs["momentum"] = 0.9
    # Fixed starting weights: with a random init an element of w0 - 0.2 could land near
    # zero, where float32 rounding of Adam's bias correction (about 1e-5 of the step)
    # exceeds any absolute tolerance. The updates are compared, not the positions.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
        2, kernel_initializer=keras.initializers.Constant([[0.5, -0.7], [0.9, 0.3]]),
        bias_initializer=keras.initializers.Constant([0.1, -0.4]))])
    model.compile(keras_opt(**kwargs), loss="mse")
    kernel, bias = model.weights
    opt = lr_optimizers.prepare(model, [kernel, bias])
    assert type(opt).__name__ == optimizer_class and isinstance(opt, keras_opt)
    opt.set_lr_multipliers([(kernel, 1.0), (bias, 0.25)])
    grads = [np.full((2, 2), 0.3, "float32"), np.array([0.2, -0.1], "float32")]
    start = [kernel.numpy().copy(), bias.numpy().copy()]
    for _ in range(2):
        opt.apply_gradients(zip([tf.constant(g) for g in grads], [kernel, bias]))
    for var, g, w0, mult in zip([kernel, bias], grads, start, [1.0, 0.25]):
        lr = 0.1 * mult
        if optimizer_class == "SGD":
            # m1 = -lr g; m2 = 0.9 m1 - lr g; total = m1 + m2
            expected = w0 - lr * g - (0.9 * lr * g + lr * g)
        else:
            expected = w0.copy()
            for t in (1, 2):  # decoupled decay, then the Adam step, as Keras does
                if optimizer_class == "AdamW":
                    expected = expected - expected * 0.5 * lr
                previous = _manual_adam([g] * (t - 1), lr) if t > 1 else 0.0
                expected = expected + _manual_adam([g] * t, lr) - previous
        np.testing.assert_allclose(var.numpy() - w0, expected - w0, rtol=1e-4, atol=1e-8)


def test_adam_state_of_late_variable_starts_fresh_and_old_state_is_kept():
    a = keras.Variable(np.ones(3, "float32"), name="a")
    b = keras.Variable(np.ones(3, "float32"), name="b")
    opt = lr_optimizers.Adam(learning_rate=0.01)
    opt.build([a, b])
    opt.activate([a])
    ga = tf.constant([0.1, -0.2, 0.3])
    for _ in range(5):  # b frozen: only a trains
        opt.apply_gradients([(ga, a)])
    momentum_a = opt._momentums[0].numpy().copy()
    opt.activate([a, b])  # b starts training at step 5; a keeps its moments
    np.testing.assert_array_equal(opt._momentums[0].numpy(), momentum_a)
    gb = np.array([0.5, -0.05, 0.01], "float32")
    opt.apply_gradients([(ga, a), (tf.constant(gb), b)])
    # b's first update is a fresh Adam's first step, not one with step-6 bias correction.
    np.testing.assert_allclose(b.numpy() - 1.0, _manual_adam([gb], 0.01), rtol=1e-5)
    np.testing.assert_allclose(a.numpy() - 1.0, _manual_adam([ga.numpy()] * 6, 0.01),
                               rtol=1e-5)
    opt.reset_state([a])
    assert not opt._momentums[0].numpy().any() and not opt._velocities[0].numpy().any()


def test_unsupported_optimizer_is_rejected():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.RMSprop(), loss="mse")
    with pytest.raises(ValueError, match="Received: optimizer=RMSprop"):
        lr_optimizers.prepare(model, model.trainable_variables)


# ---------------------------------------------------------------- callbacks in fit()

# schedule factory, epochs, first-change epoch per group (None = never), BN never trains
SCHEDULE_CASES = {
    "ft": (lambda: schedules.get("ft"), 1, [0, 0, 0, 0], False),
    "lp": (lambda: schedules.get("lp"), 2, [None] * 4, False),
    "lp-ft": (lambda: schedules.get("lp-ft", probe_epochs=1, learning_rate=1e-3), 3,
              [1, 1, 1, 1], False),
    "g-lf": (lambda: schedules.get("g-lf", block_groups=GROUPS), 5, [4, 3, 2, 1], False),
    "g-fl": (lambda: schedules.get("g-fl", block_groups=GROUPS, epochs_per_stage=1), 5,
             [1, 2, 3, 4], False),
    "partial-unfreeze": (
        lambda: schedules.get("partial-unfreeze", top=2, block_groups=GROUPS), 2,
        [None, None, 0, 0], False),
    "freezeall": (lambda: schedules.get("freezeall"), 1, [None] * 4, False),
    "unfreezeall": (lambda: schedules.get("unfreezeall"), 1, [0] * 4, False),
    # tinynet has 14 Keras layers: layers[:-10] = input + the 3 stem layers.
    "unfreezetop10": (lambda: schedules.get("unfreezetop10"), 2, [None, 0, 0, 0], False),
    "discriminative-lr": (
        lambda: schedules.get("discriminative-lr", block_groups=GROUPS), 1, [0] * 4,
        False),
    "l2-sp": (lambda: schedules.get("l2-sp"), 1, [0] * 4, False),
    "l1-sp": (lambda: schedules.get("l1-sp"), 1, [0] * 4, False),
    "auto-rgn": (
        lambda: schedules.get("auto-rgn", context=RunContext(
            train_data=tf.data.Dataset.from_tensor_slices(tiny_data()).batch(8))),
        2, [0] * 4, True),
}


@pytest.mark.parametrize("name", list(SCHEDULE_CASES))
def test_each_schedule_unfreezes_exactly_when_planned(name):
    factory, epochs, firsts, bn_never = SCHEDULE_CASES[name]
    model, recorder, history = fit_and_record(factory(), epochs)
    expected = dict(zip(GROUP_NAMES, firsts), head=0)
    assert_first_changes(model, recorder, expected, bn_never=bn_never)
    assert len(history.history["stage"]) == epochs
    assert "lr_head" in history.history


@pytest.mark.parametrize("execution, policy", CONFIGS, ids=CONFIG_IDS,
                         indirect=["policy"])
def test_gradual_unfreeze_frozen_weights_and_bn_statistics_fixed(execution, policy):
    # Two groups (three stages, so three traces under XLA) keep this test cheap.
    halves = [("lower", "(?:stem|b1)_.*"), ("upper", "(?:b2|b3)_.*")]
    schedule = schedules.GradualUnfreeze(epochs_per_stage=1, block_groups=halves)
    model, recorder, history = fit_and_record(schedule, 3, execution)
    # the lower half stays frozen for 2 epochs: its kernels, gamma/beta and moving
    # statistics are bitwise unchanged until epoch 2 (first_change, every weight).
    assert_first_changes(model, recorder, dict(
        zip(GROUP_NAMES, [2, 2, 1, 1]), head=0))
    assert history.history["stage"] == [0, 1, 2]
    np.testing.assert_allclose(history.history["lr_upper"], [0, 1e-2, 1e-2])
    np.testing.assert_allclose(history.history["lr_lower"], [0, 0, 1e-2])
    # One optimizer over the whole run: iterations kept counting across stages.
    assert int(model.optimizer.iterations.numpy()) == 6
    assert isinstance(model.optimizer, lr_optimizers.Adam)


@pytest.mark.parametrize("execution, policy", CONFIGS, ids=CONFIG_IDS,
                         indirect=["policy"])
def test_discriminative_rates_scale_actual_adam_updates(execution, policy):
    lr, epsilon, factor = 1e-2, 1e-3, 2.0
    x, y = tiny_data(8)

    def one_step(schedule):
        """One Adam step of `schedule` from the same initial weights (seed 2)."""
        keras.utils.set_random_seed(2)
        model = tiny_model()
        compile_model(model, execution, keras.optimizers.Adam(lr, epsilon=epsilon))
        with tf.GradientTape() as tape:  # the gradient fit() uses (training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        grads = {v.path: g.numpy() for v, g in zip(model.trainable_variables, grads)}
        before = {v.path: v.numpy().copy() for v in model.trainable_variables}
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                            callbacks=[schedule])
        deltas = {v.path: v.numpy() - before[v.path] for v in model.trainable_variables}
        return grads, deltas, history

    grads, deltas, history = one_step(
        schedules.DiscriminativeLR(factor=factor, block_groups=GROUPS))
    _, full_deltas, _ = one_step(schedules.FullFineTune())
    multipliers = dict(zip(GROUP_NAMES, rules.discriminative_multipliers(4, factor)[0]))
    multipliers["head"] = 1.0
    for path in deltas:
        multiplier = multipliers[group_of(path)]
        # Same path, same gradient: the group's step is exactly its multiplier times
        # the step of the same fit at the base rate (float32 weights near 1 resolve
        # differences to ~1e-7).
        np.testing.assert_allclose(deltas[path], multiplier * full_deltas[path],
                                   rtol=1e-3, atol=3e-7, err_msg=path)
        if policy == "float32":
            # Against a manual Adam step in numpy from the same gradient. (Under
            # bfloat16 the eager gradient here differs from the XLA one by ~1-20%.)
            want = _manual_adam([grads[path]], lr * multiplier, epsilon=epsilon)
            np.testing.assert_allclose(deltas[path], want, rtol=1e-3, atol=3e-7,
                                       err_msg=path)
    assert history.history["lr_stem"][0] == pytest.approx(lr / 16)


@pytest.mark.parametrize("execution, policy", CONFIGS, ids=CONFIG_IDS,
                         indirect=["policy"])
def test_sp_penalty_in_model_losses_equals_formula(execution, policy):
    keras.utils.set_random_seed(3)
    model = tiny_model()
    compile_model(model, execution)
    start = {v.path: v.numpy().astype("float64") for v in model.trainable_variables}
    alpha, beta = 0.3, 0.05
    measured = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            measured.append(float(np.sum([np.asarray(l) for l in self.model.losses])))

    penalties = (("l2", schedules.L2SP), ("l1", schedules.L1SP))
    if execution == "jit":  # the norm is plain arithmetic: one XLA compile suffices
        penalties = penalties[:1] if policy == "float32" else penalties[1:]
    for norm, cls in penalties:
        measured.clear()
        x, y = tiny_data()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[cls(alpha=alpha, beta=beta), Probe()])
        want = 0.0
        for v in model.trainable_variables:
            w = v.numpy().astype("float64").ravel()
            if group_of(v.path) == "head":
                want += rules.starting_point_penalty(w, np.zeros_like(w), "l2", beta)
            else:
                want += rules.starting_point_penalty(w, start[v.path].ravel(), norm, alpha)
        assert want > 0
        assert measured[0] == pytest.approx(want, rel=1e-4)
        assert model.losses == []  # regularizers restored at on_train_end
        start = {v.path: v.numpy().astype("float64") for v in model.trainable_variables}


@pytest.mark.parametrize("execution, policy", CONFIGS, ids=CONFIG_IDS,
                         indirect=["policy"])
def test_auto_rgn_multipliers_equal_hand_computed(execution, policy):
    keras.utils.set_random_seed(4)
    inner = keras.Input((2,))
    backbone = keras.Model(
        inner, keras.layers.Dense(2, use_bias=False, name="hidden")(inner), name="bb")
    outer = keras.Input((2,))
    out = keras.layers.Dense(1, use_bias=False, dtype="float32", name="out")(
        backbone(outer))
    model = keras.Model(outer, out)
    compile_model(model, execution, keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    w1 = model.get_layer("bb").get_layer("hidden").kernel.numpy().astype("float64")
    w2 = model.get_layer("out").kernel.numpy().astype("float64")
    rgn = np.zeros(2)
    for xb, yb in ((x[:4], y[:4]), (x[4:], y[4:])):
        h = xb @ w1
        residual = h @ w2 - yb
        d_out = 2 * residual / residual.size  # d mean((yhat - y)^2) / d yhat
        g2 = h.T @ d_out
        g1 = xb.T @ (d_out @ w2.T)
        rgn += np.array([np.linalg.norm(g1) / np.linalg.norm(w1),
                         np.linalg.norm(g2) / np.linalg.norm(w2)]) / 2
    want = rgn / rgn.max()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    schedule = schedules.AutoRGN(data, num_batches=2)
    model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[schedule])
    rtol = 1e-4 if policy == "float32" else 3e-2
    kernels = [model.get_layer("bb").get_layer("hidden").kernel,
               model.get_layer("out").kernel]
    got = [schedule.last_multipliers[k.path] for k in kernels]
    np.testing.assert_allclose(got, want, rtol=rtol)
    assert max(got) == 1.0
    np.testing.assert_allclose([model.optimizer.multiplier_of(k) for k in kernels],
                               got, rtol=1e-6)


def test_schedule_reused_across_fits_and_composes_with_keras_callbacks(tmp_path):
    keras.utils.set_random_seed(5)
    model = tiny_model()
    compile_model(model, "graph")
    x, y = tiny_data()
    schedule = schedules.LPFT(probe_epochs=1, learning_rate=1e-3)
    csv = tmp_path / "log.csv"
    callbacks = [schedule,
                 keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0,
                                                   factor=0.5, min_delta=1e9),
                 keras.callbacks.CSVLogger(str(csv))]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    header = csv.read_text().splitlines()[0].split(",")
    assert {"stage", "lr_head", "lr_backbone", "learning_rate"} <= set(header)
    # LP-FT's new rate at epoch 1, then ReduceLROnPlateau halves it: both act.
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    # A second fit restarts the schedule: probe again (backbone frozen at epoch 0).
    recorder = ChangeRecorder()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[schedule, recorder])
    assert not any(group_of(p) != "head" for p in recorder.changed[0])
    assert schedule.current_stage.index == 0


# ---------------------------------------------------------------- finding the backbone


def mobilenet(pooling="avg"):
    """keras.applications.MobileNetV2 at its smallest (alpha 0.35, 32 px), default name."""
    return keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3),
                                          include_top=False, weights=None,
                                          pooling=pooling)


MOBILENET_GROUPS = [name for name, _ in backbones.get("mobilenet_v2").block_groups]


def begin(schedule, model, epochs=2):
    """Drives the hooks fit() calls first: the split and the stage of epoch 0."""
    schedule.set_model(model)
    schedule.set_params({"epochs": epochs})
    schedule.on_train_begin()
    schedule.on_epoch_begin(0)
    return schedule


def test_keras_applications_sub_model_under_its_own_name():
    keras.utils.set_random_seed(6)
    base = mobilenet()
    assert base.name == "mobilenetv2_0.35_32"  # not a registry name
    inputs = keras.Input((32, 32, 3))
    head = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, head(base(inputs)))
    assert models.get_backbone(model) is base
    compile_model(model, "eager")
    schedule = schedules.get("g-lf")  # groups found from the layer names
    recorder = ChangeRecorder()
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1]), batch_size=2, epochs=2, verbose=0,
              callbacks=[schedule, recorder])
    assert [name for name, _ in schedule.groups] == MOBILENET_GROUPS
    top = {w.path for _, layers in schedule.groups[-1:] for l in layers for w in l.weights}
    backbone_paths = {w.path for w in base.weights}
    assert not recorder.changed[0] & backbone_paths  # epoch 0: head only
    # epoch 1: only the last registered group moves, every kernel of it (a BN beta
    # before another BN on a 1 x 1 map can have a zero gradient)
    assert recorder.changed[1] & backbone_paths <= top
    assert {p for p in top if p.endswith("kernel")} <= recorder.changed[1]
    # discriminative-lr on the same model: the stem's rate is lr / 2.6 ** 5.
    compile_model(model, "eager")
    begin(schedules.get("discriminative-lr"), model)
    stem_kernel = base.get_layer("Conv1").kernel
    assert model.optimizer.multiplier_of(stem_kernel) == pytest.approx(2.6 ** -5)


@pytest.mark.parametrize("backbone", [None, "mobilenet_v2"])
def test_flattened_keras_applications_model(backbone):
    keras.utils.set_random_seed(7)
    base = mobilenet()
    head = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(base.input, head(base.output))  # backbone layers in the model
    compile_model(model, "graph")
    schedule = begin(schedules.get("g-lf", backbone=backbone), model)
    assert [name for name, _ in schedule.groups] == MOBILENET_GROUPS
    assert [layer.name for layer in schedule._head] == ["predictions"]
    grouped = [l.name for _, layers in schedule.groups for l in layers]
    assert grouped == [l.name for l in base.layers if l.weights]
    # Stage 0 of G-LF: every backbone layer frozen, the head trains.
    assert not any(l.trainable for _, layers in schedule.groups for l in layers)
    assert head.trainable and len(model.trainable_weights) == 2
    schedule.on_epoch_begin(1)  # stage 1: the top group joins
    assert [l.trainable for l in schedule.groups[-1][1]] == [True] * len(
        schedule.groups[-1][1])
    with pytest.raises(ValueError, match="has no sub-model; its own layers follow "
                                         "`mobilenet_v2`.*head\\(base\\(inputs\\)\\)"):
        models.get_backbone(model)


def test_flattened_model_runs_in_fit_and_unfreezetop10_counts_its_layers():
    keras.utils.set_random_seed(8)
    base = mobilenet(pooling=None)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base.output)
    model = keras.Model(base.input, keras.layers.Dense(2, name="predictions")(x))
    compile_model(model, "eager", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    schedule = schedules.get("unfreezetop10")
    recorder = ChangeRecorder()
    images = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    model.fit(images, np.array([0, 1]), batch_size=2, epochs=1, verbose=0,
              callbacks=[schedule, recorder])
    # The backbone's layers end at its last weighted one, Conv_1_bn.
    units = [name for name, _ in schedule.groups]
    assert units[-1] == "Conv_1_bn" and units[0] == "Conv1"
    trained = {l.name for l in model.layers for w in l.weights if w.path in recorder.changed[0]}
    assert trained == {"predictions", *[n for n in units[-10:] if model.get_layer(n).weights]}


def test_flattened_custom_model_with_block_groups_and_the_error_without():
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for prefix in ("stem", "b1"):
        x = keras.layers.Conv2D(4, 3, name=f"{prefix}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="predictions")(x), name="flat")
    compile_model(model, "eager")
    groups = [("stem", "stem_.*"), ("b1", "b1_.*")]
    schedule = begin(schedules.get("g-fl", block_groups=groups), model)
    assert [[l.name for l in layers] for _, layers in schedule.groups] == [
        ["stem_conv", "stem_bn"], ["b1_conv", "b1_bn"]]
    assert [l.name for l in schedule._head] == ["predictions"]
    with pytest.raises(ValueError) as info:
        begin(schedules.get("lp"), model)
    message = str(info.value)
    assert "Cannot find the backbone of model 'flat': it has no sub-model" in message
    for fix in ("backbone=<registered name>", "backbone='mobilenet_v2'",
                "block_groups=[(name, regex), ...]", "head(base(inputs))"):
        assert fix in message


def two_sub_models(trunk_name):
    """A (4,) -> Dense sub-model `trunk_name` -> Dense sub-model "mlp" model."""
    inputs = keras.Input((4,))
    trunk = keras.Model(inputs, keras.layers.Dense(3)(inputs), name=trunk_name)
    head_in = keras.Input((3,))
    head = keras.Model(head_in, keras.layers.Dense(2)(head_in), name="mlp")
    outer = keras.Input((4,))
    return keras.Model(outer, head(trunk(outer))), trunk, head


def test_backbone_among_several_sub_models():
    # Named after a registered backbone: found (its groups are not needed here).
    model, trunk, head = two_sub_models("resnet50")
    split = groups_lib.split_model(model, required=False)
    assert split.container is trunk and split.head == [head]
    # Unknown: the error lists the sub-models; `backbone=<layer name>` fixes it.
    model, trunk, head = two_sub_models("trunk")
    with pytest.raises(ValueError, match=r"sub-models \['trunk', 'mlp'\], none a "
                                         r"registered backbone.*backbone=<layer name>"):
        groups_lib.split_model(model, required=False)
    split = groups_lib.split_model(model, backbone="trunk", required=False)
    assert split.container is trunk and split.head == [head]


@pytest.mark.parametrize("constructor, size", [
    ("EfficientNetB0", 32),  # Keras names it "efficientnetb0"
    ("InceptionV3", 75),     # auto-named layers (conv2d_94, ...) after other layers
])
def test_identify_keras_applications_by_layers(constructor, size):
    keras.layers.Conv2D(1, 1), keras.layers.BatchNormalization()  # advance the counter
    model = getattr(keras.applications, constructor)(
        include_top=False, weights=None, input_shape=(size, size, 3))
    if constructor == "InceptionV3":  # auto-named layers are no longer canonical
        assert model.layers[1].name != "conv2d"
    spec = backbones.identify(model)
    assert spec is not None and spec.constructor == constructor
    groups = backbones.block_groups(model)
    assert [l.name for _, ls in groups for l in ls] == [l.name for l in model.layers
                                                       if l.weights]
    assert backbones.identify(keras.Sequential([keras.Input((2,)),
                                                keras.layers.Dense(2)])) is None
