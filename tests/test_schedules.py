"""Tests for radtl.schedules: pure rules, per-variable-rate optimizers, callbacks in fit()."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from radtl import schedules
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
    with pytest.raises(ValueError, match=r"Received: name='bogus'") as info:
        schedules.get("bogus")
    assert "lp-ft" in str(info.value) and "auto-rgn" in str(info.value)
    with pytest.raises(ValueError, match="do not pass"):
        schedules.get("g-lf", order="first_to_last")


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
    (lambda: schedules.AutoRGN(None), "Received: data=None"),
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
    with pytest.raises(ValueError, match="in none: .*stem_conv"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[missing])
    unknown = schedules.LinearProbe(backbone="resnet50")
    with pytest.raises(ValueError, match="Received: backbone='resnet50'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[unknown])
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
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
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
        np.testing.assert_allclose(var.numpy(), expected, rtol=1e-4, atol=1e-6)


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
        lambda: schedules.get("auto-rgn", data=tf.data.Dataset.from_tensor_slices(
            tiny_data()).batch(8)), 2, [0] * 4, True),
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
    schedule = schedules.GradualUnfreeze(epochs_per_stage=1, block_groups=GROUPS)
    model, recorder, history = fit_and_record(schedule, 5, execution)
    # stem stays frozen for 4 epochs: its kernel, gamma/beta and moving statistics
    # are bitwise unchanged until epoch 4 (checked by first_change for every weight).
    assert_first_changes(model, recorder, dict(
        zip(GROUP_NAMES, [4, 3, 2, 1]), head=0))
    assert history.history["stage"] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(history.history["lr_block3"], [0, 1e-2, 1e-2, 1e-2, 1e-2])
    # One optimizer over the whole run: iterations kept counting across stages.
    assert int(model.optimizer.iterations.numpy()) == 10
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

    for norm, cls in (("l2", schedules.L2SP), ("l1", schedules.L1SP)):
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


def test_registered_backbone_groups_from_radtl_backbones():
    backbones = pytest.importorskip("radtl.backbones")
    keras.utils.set_random_seed(6)
    backbone = backbones.load_backbone("mobilenet_v2", weights=None,
                                       input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax",
                                                   name="predictions")(backbone(inputs)))
    compile_model(model, "eager")
    schedule = schedules.GradualUnfreeze()  # groups from radtl.backbones.block_groups
    recorder = ChangeRecorder()
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1, 0, 1]), batch_size=4, epochs=2, verbose=0,
              callbacks=[schedule, recorder])
    names = [name for name, _ in schedule.groups]
    assert names == [name for name, _ in backbones.block_groups(backbone)]
    top = {w.path for _, layers in schedule.groups[-1:] for l in layers for w in l.weights}
    backbone_paths = {w.path for w in backbone.weights}
    assert not recorder.changed[0] & backbone_paths  # epoch 0: head only
    # epoch 1: exactly the last registered group (weights and BN statistics) moves
    assert recorder.changed[1] & backbone_paths == top


def test_backbone_found_among_several_sub_models_by_registered_name():
    from radtl.schedules import groups as groups_lib
    pytest.importorskip("radtl.backbones")
    inputs = keras.Input((4,))
    backbone = keras.Model(inputs, keras.layers.Dense(3)(inputs), name="resnet50")
    head_in = keras.Input((3,))
    head = keras.Model(head_in, keras.layers.Dense(2)(head_in), name="linear_head")
    outer = keras.Input((4,))
    model = keras.Model(outer, head(backbone(outer)))
    assert groups_lib.resolve_backbone(model) is backbone
    assert groups_lib.head_layers(model, backbone) == [head]
