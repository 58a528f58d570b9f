"""Optimizers with a real learning rate per variable, for the fine-tuning schedules.

Keras 3 has no parameter groups, and Adam is invariant to rescaling the gradient, so
"scale the gradient by m" is not "scale the learning rate by m". These optimizers
multiply the learning rate each variable's update uses by a multiplier read from a
non-trainable vector variable (`lr_multipliers`, one entry per variable the
optimizer was built on). A callback changes the multipliers with `assign`, which does
not retrace the train function (also under `jit_compile=True`).

They also keep, per variable, the step at which its optimizer state started
(`state_start_steps`), so that a variable that starts training in the middle of a
run gets Adam's bias correction of a fresh Adam (as PyTorch's per-parameter `step`
does) while the shared `iterations` counter, and so any learning-rate schedule, keeps
running.
"""

import keras
import numpy as np
from keras import ops

# Optimizer-state attributes that hold one slot variable per model variable.
_ADAM_SLOTS = ("_momentums", "_velocities", "_velocity_hats")
_SGD_SLOTS = ("momentums",)
_NO_STATE = -1.0


class LearningRateMultipliers:
    """Mixin: per-variable learning-rate multipliers for a Keras optimizer.

    Put it before a Keras optimizer class in the bases. The update of variable `i`
    uses `learning_rate * lr_multipliers[i]` (decoupled weight decay included), so
    a multiplier of 0.5 halves that variable's Adam step exactly; 0 stops it.
    """

    slot_attributes = ()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        count = len(variables)
        self._lr_multipliers = self.add_variable(
            shape=(count,), initializer="ones", dtype="float32", name="lr_multipliers"
        )
        self._state_start_steps = self.add_variable(
            shape=(count,),
            initializer=keras.initializers.Constant(_NO_STATE),
            dtype="float32",
            name="state_start_steps",
        )

    def knows(self, variables):
        """Whether the optimizer was built on every one of `variables`."""
        return self.built and all(
            self._var_key(v) in self._trainable_variables_indices for v in variables
        )

    def _indices(self, variables):
        return [self._get_variable_index(v) for v in variables]

    @property
    def lr_multipliers(self):
        """The multipliers as a numpy vector, in the order of the build variables."""
        return ops.convert_to_numpy(self._lr_multipliers)

    def multiplier_of(self, variable):
        """The current learning-rate multiplier of `variable` (a float)."""
        return float(self.lr_multipliers[self._get_variable_index(variable)])

    def set_lr_multipliers(self, pairs, default=0.0):
        """Sets every multiplier at once from `(variable, multiplier)` pairs.

        Variables not named get `default`. One `assign`, no retracing.
        """
        values = np.full(len(self._trainable_variables), default, dtype="float32")
        for variable, multiplier in pairs:
            values[self._get_variable_index(variable)] = multiplier
        self._lr_multipliers.assign(values)

    def activate(self, variables):
        """Marks `variables` as training from the next step.

        A variable without optimizer state yet gets its start step set to the
        current iteration, so its first update is a fresh optimizer's first update.
        A variable that already has state keeps it.
        """
        starts = ops.convert_to_numpy(self._state_start_steps).copy()
        indices = [i for i in self._indices(variables) if starts[i] == _NO_STATE]
        if indices:
            starts[indices] = float(ops.convert_to_numpy(self.iterations))
            self._state_start_steps.assign(starts)

    def reset_state(self, variables):
        """Zeroes the optimizer state (e.g. Adam moments) of `variables` and restarts
        their step count, as a freshly built optimizer would have it."""
        indices = self._indices(variables)
        for slots in self._slot_lists():
            for i in indices:
                slots[i].assign(ops.zeros_like(slots[i]))
        starts = ops.convert_to_numpy(self._state_start_steps).copy()
        starts[indices] = float(ops.convert_to_numpy(self.iterations))
        self._state_start_steps.assign(starts)

    def _slot_lists(self):
        """The per-variable slot lists this optimizer has (Adam: moments, ...)."""
        return [
            slots
            for slots in (getattr(self, name, None) for name in self.slot_attributes)
            if slots
        ]

    def _step_correction(self, index):
        """Factor that turns the shared step count into variable `index`'s own."""
        del index
        return 1.0

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        scale = self._lr_multipliers[index] * self._step_correction(index)
        super().update_step(
            gradient, variable, ops.multiply(ops.cast(learning_rate, "float32"), scale)
        )

    def _apply_weight_decay(self, variables):
        # The base class decays with the global learning rate; decoupled weight
        # decay (AdamW, PyTorch param groups) uses each variable's own rate.
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                rate = (
                    ops.cast(self.learning_rate, "float32")
                    * self.weight_decay
                    * self._lr_multipliers[self._get_variable_index(variable)]
                )
                self.assign_sub(variable, variable * ops.cast(rate, variable.dtype))


class _AdamStepCorrection(LearningRateMultipliers):
    """Per-variable Adam bias correction on top of the shared iteration counter."""

    slot_attributes = _ADAM_SLOTS

    def _step_correction(self, index):
        # Keras' Adam uses alpha = lr * sqrt(1 - b2^t) / (1 - b1^t) with the shared
        # step t. A variable whose state started at step s must use t' = t - s.
        t = ops.cast(self.iterations + 1, "float32")
        start = self._state_start_steps[index]
        local = t - ops.maximum(start, 0.0)
        beta_1 = ops.cast(self.beta_1, "float32")
        beta_2 = ops.cast(self.beta_2, "float32")

        def alpha(step):
            return ops.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)

        return ops.where(start > 0.0, alpha(local) / alpha(t), 1.0)


@keras.saving.register_keras_serializable(package="radtl")
class Adam(_AdamStepCorrection, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with per-variable learning-rate multipliers.

    Same arguments as `keras.optimizers.Adam`; see `LearningRateMultipliers`.

    Example:

    >>> opt = Adam(learning_rate=1e-3)
    """


@keras.saving.register_keras_serializable(package="radtl")
class AdamW(_AdamStepCorrection, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with per-variable learning-rate multipliers.

    The decoupled weight decay of variable `i` also uses `lr * lr_multipliers[i]`.

    Example:

    >>> opt = AdamW(learning_rate=1e-3, weight_decay=1e-4)
    """


@keras.saving.register_keras_serializable(package="radtl")
class SGD(LearningRateMultipliers, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with per-variable learning-rate multipliers.

    Example:

    >>> opt = SGD(learning_rate=1e-2, momentum=0.9)
    """

    slot_attributes = _SGD_SLOTS


# Keras optimizer class -> its per-variable-rate counterpart (exact type match).
SUPPORTED = {
    keras.optimizers.Adam: Adam,
    keras.optimizers.AdamW: AdamW,
    keras.optimizers.SGD: SGD,
}


def _convert(optimizer):
    """A new, unbuilt per-variable-rate optimizer with `optimizer`'s configuration."""
    if isinstance(optimizer, LearningRateMultipliers):
        cls = type(optimizer)
    elif type(optimizer) in SUPPORTED:
        cls = SUPPORTED[type(optimizer)]
    else:
        raise ValueError(
            "Fine-tuning schedules need an optimizer with per-variable learning "
            f"rates; supported: {[c.__name__ for c in SUPPORTED]} (keras.optimizers "
            "or radtl.schedules.optimizers). Received: "
            f"optimizer={type(optimizer).__name__}. Compile the model with one of them."
        )
    converted = cls.from_config(optimizer.get_config())
    for name in ("_exclude_from_weight_decay", "_exclude_from_weight_decay_pattern"):
        if hasattr(optimizer, name):
            setattr(converted, name, getattr(optimizer, name))
    return converted


def _transfer_state(source, target):
    """Copies iterations and per-variable state of `source` into `target`."""
    target._iterations.assign(source._iterations)
    multipliers = target.lr_multipliers.copy()
    starts = ops.convert_to_numpy(target._state_start_steps).copy()
    own = isinstance(source, LearningRateMultipliers)
    if own:
        source_multipliers = source.lr_multipliers
        source_starts = ops.convert_to_numpy(source._state_start_steps)
    for i, variable in enumerate(source._trainable_variables):
        j = target._get_variable_index(variable)
        for name in target.slot_attributes:
            source_slots = getattr(source, name, None)
            target_slots = getattr(target, name, None)
            if source_slots and target_slots:
                target_slots[j].assign(source_slots[i])
        # A plain Keras optimizer was built on, and so trained, its variables
        # from step 0.
        multipliers[j] = source_multipliers[i] if own else 1.0
        starts[j] = source_starts[i] if own else 0.0
    target._lr_multipliers.assign(multipliers)
    target._state_start_steps.assign(starts)


def prepare(model, variables):
    """Makes `model.optimizer` a per-variable-rate optimizer built on `variables`.

    Keras optimizers record their variables when built, and applying a gradient to
    any other variable raises "Unknown variable". A schedule therefore builds the
    optimizer once on every variable it will ever train, and later passes only the
    currently trainable ones (a subset is accepted). If the model's optimizer is a
    plain `keras.optimizers.Adam`/`AdamW`/`SGD`, or was built on fewer variables, it is
    replaced by a `radtl.schedules.optimizers` instance with the same configuration,
    and its iteration count and slot variables (Adam moments) are copied over.

    Args:
        model: a compiled `keras.Model`.
        variables: list of variables the schedule may train.

    Returns:
        The optimizer now set on the model.
    """
    current = model.optimizer
    if isinstance(current, keras.optimizers.LossScaleOptimizer):
        inner = current.inner_optimizer
        if isinstance(inner, LearningRateMultipliers) and not current.built:
            current.build(variables)
            return inner
        if isinstance(inner, LearningRateMultipliers) and inner.knows(variables):
            return inner
        raise ValueError(
            "Under the `mixed_float16` policy, compile the model with an unbuilt "
            "`radtl.schedules.optimizers.Adam` (or `AdamW`, `SGD`) before the first "
            "fit() with a schedule. Received: "
            f"inner_optimizer={type(inner).__name__} (built={inner.built})."
        )
    if isinstance(current, LearningRateMultipliers):
        if not current.built:
            current.build(variables)
            return current
        if current.knows(variables):
            return current
    replacement = _convert(current)
    known = list(current._trainable_variables) if current.built else []
    keys = {replacement._var_key(v) for v in variables}
    extra = [v for v in known if replacement._var_key(v) not in keys]
    replacement.build(list(variables) + extra)
    if current.built:
        _transfer_state(current, replacement)
    model.optimizer = replacement
    return replacement
