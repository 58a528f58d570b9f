"""L2-SP and L1-SP: fine-tuning with a penalty towards the starting point."""

import keras
from keras import ops

from radtl.schedules import rules
from radtl.schedules.base import REGISTRY
from radtl.schedules.base import FineTuningSchedule


class StartingPointPenalty(keras.regularizers.Regularizer):
    """Penalty of one variable towards a fixed reference value.

    `"l2"`: `strength / 2 * sum((w - w0) ** 2)`; `"l1"`: `strength * sum(|w - w0|)`.
    With `reference=None`, w0 = 0 (a plain L2 / L1 penalty).

    Args:
        strength: float >= 0 (alpha or beta).
        norm: `"l1"` or `"l2"`.
        reference: a non-trainable variable holding w0, or None.
    """

    def __init__(self, strength, norm, reference=None):
        self.strength = strength
        self.norm = norm
        self.reference = reference

    def __call__(self, x):
        x = ops.cast(x, "float32")
        if self.reference is not None:
            x = x - self.reference
        if self.norm == "l2":
            return self.strength / 2 * ops.sum(ops.square(x))
        return self.strength * ops.sum(ops.abs(x))

    def get_config(self):
        return {"strength": self.strength, "norm": self.norm}


class _Sum(keras.regularizers.Regularizer):
    """The sum of a variable's own regularizer and the SP penalty."""

    def __init__(self, first, second):
        self.first = first
        self.second = second

    def __call__(self, x):
        return self.first(x) + self.second(x)


class StartingPointRegularization(FineTuningSchedule):
    """Full fine-tuning with an SP penalty: the base of `L2SP` and `L1SP`.

    The loss becomes `loss + alpha * P(w_S - w0_S) + beta / 2 * ||w_head||^2`, where
    S are the backbone's trainable variables, w0_S their values when `fit()`
    starts (the pretrained starting point), and P the squared L2 norm halved
    (`norm = "l2"`, `L2SP`) or the L1 norm (`norm = "l1"`, `L1SP`), a class
    attribute the subclass sets. Only trainable variables (kernels,
    biases, BatchNorm gamma/beta) are penalised; BatchNorm moving statistics are not.

    Reference:
        Li, Grandvalet, Davoine, "Explicit Inductive Bias for Transfer Learning with
        Convolutional Networks", ICML 2018 (arXiv 1802.01483).

    Args:
        alpha: float >= 0, strength towards the starting point. Defaults to `0.1`.
        beta: float >= 0, L2 strength on the head. Defaults to `0.01`.
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: the penalty is attached as each variable's `regularizer` (added to any
    regularizer it already has), which Keras adds to the loss for trainable weights
    only (`model.losses`); w0 lives in non-trainable variables, not graph constants.
    The train function is rebuilt so the trace includes the penalty, and the
    original regularizers are restored in `on_train_end`. With Adam this is the
    coupled penalty of the paper, not AdamW-style decay.

    Example:

    ```python
    model.fit(x, y, epochs=2, callbacks=[radtl.schedules.L2SP(alpha=0.1, beta=0.01)])
    ```
    """

    # "l2" or "l1": the norm of the backbone term.
    norm = "l2"

    def __init__(self, alpha=0.1, beta=0.01, **kwargs):
        rules.check_number("alpha", alpha)
        rules.check_number("beta", beta)
        rules.check_choice("norm", self.norm, ("l1", "l2"))
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self._original_regularizers = []

    def stage(self, epoch, num_groups):
        return rules.full_fine_tune(num_groups)

    def _attach(self, variable, penalty):
        self._original_regularizers.append((variable, variable.regularizer))
        if variable.regularizer is not None:
            penalty = _Sum(variable.regularizer, penalty)
        variable.regularizer = penalty

    def on_train_begin(self, logs=None):
        self._restore()
        super().on_train_begin(logs)
        named = self._group_variables()
        for _, variables in named[:-1]:
            for variable in variables:
                reference = keras.Variable(
                    ops.convert_to_numpy(variable),
                    trainable=False,
                    dtype=variable.dtype,
                    name=f"{variable.name}_start",
                )
                self._attach(
                    variable, StartingPointPenalty(self.alpha, self.norm, reference)
                )
        for variable in named[-1][1]:
            self._attach(variable, StartingPointPenalty(self.beta, "l2"))

    def _restore(self):
        for variable, regularizer in self._original_regularizers:
            variable.regularizer = regularizer
        self._original_regularizers = []

    def on_train_end(self, logs=None):
        self._restore()


@REGISTRY.register("l2-sp")
class L2SP(StartingPointRegularization):
    """L2-SP: `loss + alpha/2 ||w_S - w0_S||^2 + beta/2 ||w_head||^2` (Li et al. 2018).

    See `StartingPointRegularization` for the arguments and Keras 3 handling.

    Example:

    ```python
    model.fit(x, y, epochs=2, callbacks=[radtl.schedules.L2SP(alpha=0.1, beta=0.01)])
    ```
    """

    norm = "l2"


@REGISTRY.register("l1-sp")
class L1SP(StartingPointRegularization):
    """L1-SP: `loss + alpha ||w_S - w0_S||_1 + beta/2 ||w_head||^2` (Li et al. 2018).

    As in the paper's L1-SP variant, only the starting-point term uses the L1 norm;
    the head keeps the L2 penalty. See `StartingPointRegularization`.

    Example:

    ```python
    model.fit(x, y, epochs=2, callbacks=[radtl.schedules.L1SP(alpha=0.1, beta=0.01)])
    ```
    """

    norm = "l1"
