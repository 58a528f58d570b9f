"""Training losses over class probabilities: hard CE, label smoothing, OLS, Tf-KD.

All losses take integer class ids `y_true` of shape (batch,) (or (batch, 1)), int32 or
int64, and class probabilities `y_pred` of shape (batch, K), the softmax output of a
`radtl.heads` head. They work in log space on clipped probabilities,
log(clip(p, keras.config.epsilon(), 1)); since softmax(log p / T) == softmax(z / T) for
logits z, temperature-scaled distributions need no logits. Every loss returns one value
per sample (nats) and is reduced by Keras (`"sum_over_batch_size"` by default). They
compute in float32 whatever the dtype policy (Keras losses default to `floatx()`).

Losses are built by name through `REGISTRY` (a `radtl.registry.Registry` of kind
"loss"); `get(name, **params)` is the library shortcut. A loss that needs the run's
context declares it: `ols` needs `num_classes`, which the trainer passes as
`RunContext(num_classes=K)` and which is therefore not a `loss_options` key. Every loss
has `callbacks()`, the Keras callbacks `fit` must be given for it (empty except for
`ols`). Every class is registered with
`keras.saving.register_keras_serializable(package="radtl")`, so importing this module
(which `import radtl` does) lets `keras.models.load_model` rebuild a compiled loss.

| name | class | target |
|---|---|---|
| `hard` | `CrossEntropy` | one-hot |
| `label_smoothing` | `LabelSmoothing` | (1 - epsilon) * one-hot + epsilon / K |
| `ols` | `OnlineLabelSmoothing` | alpha * one-hot + (1 - alpha) * S[y], S learned per epoch |
| `tf_kd` | `TeacherFreeKD` | CE plus KL to a hand-made "virtual teacher" |

Example:

```python
import numpy as np
from radtl import losses

loss = losses.get("label_smoothing", epsilon=0.1)
loss(np.array([0, 1]), np.array([[0.9, 0.1], [0.3, 0.7]]))  # scalar, nats
ols = losses.get("ols", num_classes=2)  # or losses.get("ols", context=RunContext(num_classes=2))
ols.callbacks()  # [OnlineLabelSmoothingCallback]: pass them to fit
```
"""
import dataclasses

import keras
import numpy as np
from keras import ops

from radtl._checks import check_number
from radtl.registry import Registry
from radtl.registry import RunContext

__all__ = [
    "REGISTRY",
    "names",
    "get",
    "CrossEntropy",
    "LabelSmoothing",
    "OnlineLabelSmoothing",
    "OnlineLabelSmoothingCallback",
    "TeacherFreeKD",
]

#: The loss registry: name -> loss class (kind "loss", config keys `loss`/`loss_options`).
REGISTRY = Registry("loss")

# `keras.losses.Loss`'s default reduction. radtl losses take `name`, `reduction` and
# `dtype` as explicit arguments (no **kwargs), so that `REGISTRY.option_names` lists
# every option a loss accepts and `REGISTRY.check_options` can refuse the others.
_REDUCTION = "sum_over_batch_size"


def _labels(y_true):
    """Integer class ids of shape (batch,) from (batch,) or (batch, 1) labels."""
    shape = tuple(y_true.shape)
    if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
        raise ValueError(
            "radtl losses expect integer class ids of shape (batch,) or (batch, 1). "
            f"Received: y_true with shape {shape}. Pass `np.argmax(one_hot, -1)` "
            "instead of one-hot labels."
        )
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def _num_classes(y_pred):
    num_classes = y_pred.shape[-1]
    if num_classes is None or len(y_pred.shape) != 2:
        raise ValueError(
            "radtl losses expect probabilities of shape (batch, K) with a known K. "
            f"Received: y_pred with shape {tuple(y_pred.shape)}."
        )
    return int(num_classes)


def _log_probs(y_pred):
    """log(clip(p, epsilon, 1)) in float32, shape (batch, K)."""
    probs = ops.cast(y_pred, "float32")
    return ops.log(ops.clip(probs, keras.config.epsilon(), 1.0))


def _cross_entropy(targets, log_probs):
    """-sum_k targets_k log p_k per sample, shape (batch,)."""
    return -ops.sum(targets * log_probs, axis=-1)


def _kl_divergence(log_targets, log_probs):
    """KL(targets || probs) = sum_k t_k (log t_k - log p_k) per sample, shape (batch,)."""
    return ops.sum(ops.exp(log_targets) * (log_targets - log_probs), axis=-1)


class _ProbabilityLoss(keras.losses.Loss):
    """Shared plumbing: labels and log-probabilities in, per-sample loss out."""

    def callbacks(self):
        """The Keras callbacks `fit` needs for this loss (none for a stateless loss).

        Returns:
            list of `keras.callbacks.Callback`; pass them to `fit(callbacks=...)`.
        """
        return []

    def state_variables(self):
        """The loss's own state a resumed run must restore at an epoch boundary (none here).

        Keras saves no loss variables with the model; `radtl.train` keeps these in its
        backup, so a killed and resumed run continues with the same state.
        """
        return []

    def call(self, y_true, y_pred):
        num_classes = _num_classes(y_pred)
        labels = _labels(y_true)
        return self._per_sample(labels, y_pred, _log_probs(y_pred), num_classes)

    def _per_sample(self, labels, y_pred, log_probs, num_classes):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="radtl")
class CrossEntropy(_ProbabilityLoss):
    """Cross-entropy against hard (one-hot) labels: -log p[y].

    Args:
        name: str. Defaults to "cross_entropy".
        reduction: str or None. As `keras.losses.Loss`. Defaults to
            "sum_over_batch_size".
        dtype: str or None. As `keras.losses.Loss`. Defaults to None (floatx).

    Shapes: y_true (batch,) int class ids; y_pred (batch, K) probabilities.
    """

    def __init__(self, name="cross_entropy", reduction=_REDUCTION, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _targets(self, labels, num_classes):
        return ops.one_hot(labels, num_classes, dtype="float32")

    def _per_sample(self, labels, y_pred, log_probs, num_classes):
        return _cross_entropy(self._targets(labels, num_classes), log_probs)


@keras.saving.register_keras_serializable(package="radtl")
class LabelSmoothing(CrossEntropy):
    """Cross-entropy against uniformly smoothed labels (1 - epsilon) one-hot + epsilon/K.

    The label-smoothing baseline as in Keras' `label_smoothing` and in the LS baseline of
    the OLS paper's code.

    Reference:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
        CVPR 2016.

    Args:
        epsilon: float in [0, 1]. Mass moved from the true class to the uniform
            distribution; 0 is hard cross-entropy. Defaults to 0.1.
        name: str. Defaults to "label_smoothing".
        reduction: str or None. As `keras.losses.Loss`.
        dtype: str or None. As `keras.losses.Loss`.
    """

    def __init__(self, epsilon=0.1, name="label_smoothing", reduction=_REDUCTION, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_number("epsilon", epsilon, 0.0, 1.0)
        self.epsilon = epsilon

    def _targets(self, labels, num_classes):
        one_hot = super()._targets(labels, num_classes)
        return (1.0 - self.epsilon) * one_hot + self.epsilon / num_classes

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="radtl")
class OnlineLabelSmoothing(_ProbabilityLoss):
    """Online label smoothing: soft labels from the model's own correct predictions.

    Per sample, `loss = alpha * CE(one_hot(y), p) + (1 - alpha) * CE(S[y], p)` where S is
    a K x K soft-label matrix (row c: the target distribution for class c). S starts
    uniform (1/K). During an epoch, every *training* sample whose prediction is correct
    (argmax p == y) adds its probability vector p (the training-mode forward pass, as the
    loss sees it; no gradient) to row `accumulated[y]` and 1 to `counts[y]`. At the end
    of the epoch `end_epoch()` sets each row of S to `accumulated[c] / counts[c]`, the
    mean predicted distribution of that class's correct samples, or back to uniform when
    the class had no correct sample, and clears the accumulators. The new S is used for
    the whole next epoch.

    The official code (`zhangchbin/OnlineLabelSmoothing`, `fine-grained/solver.py`)
    minimises `CE(S[y]) + CE(hard)`, which is this loss with `alpha=0.5` times 2 (with
    SGD, equivalent to doubling the learning rate). Its fine-grained-only hack (keep a
    row once its max reaches 0.88) is not implemented.

    How the state updates inside `fit` only: Keras calls `Loss.call(y_true, y_pred)`
    from both the train step and the test step and tells the loss nothing about which
    one. The state therefore lives in non-trainable float32 `keras.Variable`s
    (`soft_labels`, `accumulated`, `counts` and a 0/1 flag `accumulating`), and each
    call adds `accumulating * update` with branch-free one-hot matmuls. The traced
    train function (graph or XLA) reads the variables at run time, so changing them
    from Python needs no retracing. The flag is 0 by default and is switched by the
    companion callback returned by `callbacks()`: on at `on_epoch_begin` (which also
    clears the accumulators), off from `on_test_begin` to `on_test_end` (the
    validation pass that `fit` runs, or an `evaluate` given the callback), and off at
    `on_epoch_end`, where it calls `end_epoch()` and writes the mean of diag(S) to the
    logs as `ols_true_class_prob`, and at `on_train_end`. So `evaluate`/`predict`
    outside `fit` never touch S. Pass `callbacks()` to `fit`: without them the flag
    stays 0, S stays uniform and the loss silently reduces to label smoothing with
    epsilon = 1 - alpha.

    Several replicas (`tf.distribute.MirroredStrategy`): `accumulated` and `counts` are
    sync-on-read variables with aggregation "sum" (as Keras metrics keep their
    totals): each replica adds its own share of every batch to its local copy, and
    `end_epoch()`, which the callback runs outside the replicas, reads their sum. So S
    is built from the whole global batch, the same matrix as on one device. `soft_labels`
    and `accumulating` are only assigned outside the replicas (mirrored to every
    replica). Create the loss inside `strategy.scope()`, as the model.

    The state is not saved with the model (Keras does not save a loss's variables);
    `get_config` rebuilds a loss with uniform S. `radtl.train` keeps S in its backup
    (`state_variables`), so a killed and resumed run continues with the S it had learnt.
    Stateful updates need the TensorFlow backend (radtl's backend).

    Registered as "ols" with the run context `num_classes`: the trainer builds it with
    `REGISTRY.build("ols", loss_options, RunContext(num_classes=K))`, so `num_classes`
    is not a `loss_options` key; `get("ols", num_classes=K)` is the library shortcut.

    Reference:
        Zhang, Jiang, Hou, Wei, Han, Li, Cheng, "Delving Deep into Label Smoothing",
        IEEE Transactions on Image Processing 30, 2021 (arXiv 2011.12562).

    Args:
        num_classes: int >= 2. K, the number of classes (sizes the state).
        alpha: float in [0, 1]. Weight of the hard-label term. Defaults to 0.5 (the
            official code, up to its factor 2).
        name: str. Defaults to "online_label_smoothing".
        reduction: str or None. As `keras.losses.Loss`.
        dtype: str or None. As `keras.losses.Loss`.

    Example:

    ```python
    loss = OnlineLabelSmoothing(num_classes=2)
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=3, validation_data=(xv, yv), callbacks=loss.callbacks())
    loss.soft_labels.numpy()  # (2, 2), rows sum to 1
    ```
    """

    def __init__(self, num_classes, alpha=0.5, name="online_label_smoothing",
                 reduction=_REDUCTION, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or (
            num_classes < 2
        ):
            raise ValueError(
                "`num_classes` must be an integer >= 2 (the head's output width). "
                f"Received: num_classes={num_classes!r}"
            )
        check_number("alpha", alpha, 0.0, 1.0)
        self.num_classes = num_classes
        self.alpha = alpha
        square = (num_classes, num_classes)
        # Assigned outside the replicas only: mirrored.
        self.soft_labels = self._state(self._uniform(), "soft_labels")
        self.accumulating = self._state(np.zeros(()), "accumulating")
        # Added to by every replica: per-replica copies, summed when read.
        self.accumulated = self._state(np.zeros(square), "accumulated", per_replica_sum=True)
        self.counts = self._state(np.zeros(num_classes), "counts", per_replica_sum=True)

    @staticmethod
    def _state(value, name, per_replica_sum=False):
        """A non-trainable float32 state variable.

        With `per_replica_sum`, a sync-on-read variable with aggregation "sum": under a
        distribution strategy every replica updates its own copy and a read outside the
        replicas returns their sum (on one device, a plain variable).
        """
        distributed = {"synchronization": "on_read", "aggregation": "sum"} if per_replica_sum else {}
        return keras.Variable(
            np.asarray(value, dtype="float32"), trainable=False, dtype="float32",
            name=name, **distributed,
        )

    def _uniform(self):
        k = self.num_classes
        return np.full((k, k), 1.0 / k, dtype="float32")

    def _per_sample(self, labels, y_pred, log_probs, num_classes):
        if num_classes != self.num_classes:
            raise ValueError(
                f"OnlineLabelSmoothing was built for num_classes={self.num_classes} "
                f"but received y_pred with {num_classes} classes. Pass the head's "
                "`num_classes`."
            )
        one_hot = ops.one_hot(labels, num_classes, dtype="float32")
        self._accumulate(one_hot, labels, y_pred)
        soft_targets = ops.take(ops.convert_to_tensor(self.soft_labels), labels, axis=0)
        hard = _cross_entropy(one_hot, log_probs)
        soft = _cross_entropy(soft_targets, log_probs)
        return self.alpha * hard + (1.0 - self.alpha) * soft

    def _accumulate(self, one_hot, labels, y_pred):
        probs = ops.stop_gradient(ops.cast(y_pred, "float32"))
        correct = ops.cast(ops.equal(ops.argmax(probs, axis=-1), labels), "float32")
        weights = one_hot * ops.expand_dims(
            correct * ops.convert_to_tensor(self.accumulating), -1
        )
        self.accumulated.assign_add(ops.matmul(ops.transpose(weights), probs))
        self.counts.assign_add(ops.sum(weights, axis=0))

    def set_accumulating(self, on):
        """Switch accumulation of correct training predictions on (True) or off."""
        self.accumulating.assign(1.0 if on else 0.0)

    def start_epoch(self):
        """Clear the per-epoch accumulators (S is kept)."""
        self.accumulated.assign(ops.zeros_like(self.accumulated))
        self.counts.assign(ops.zeros_like(self.counts))

    def end_epoch(self):
        """Swap in the new soft-label matrix and clear the accumulators.

        Returns:
            np.ndarray (K, K) float32, the new S; row c is the mean predicted distribution
            of class c's correctly classified training samples, or uniform if none.
        """
        counts = ops.expand_dims(ops.convert_to_tensor(self.counts), -1)
        means = ops.convert_to_tensor(self.accumulated) / ops.maximum(counts, 1.0)
        self.soft_labels.assign(ops.where(counts > 0, means, self._uniform()))
        self.start_epoch()
        return ops.convert_to_numpy(self.soft_labels)

    def reset_state(self):
        """Back to the initial state: uniform S, empty accumulators, accumulation off."""
        self.soft_labels.assign(self._uniform())
        self.start_epoch()
        self.set_accumulating(False)

    def callbacks(self):
        """`[OnlineLabelSmoothingCallback(self)]`, which drives the state during `fit`."""
        return [OnlineLabelSmoothingCallback(self)]

    def state_variables(self):
        """`[soft_labels]`: S, learnt over the epochs so far (the accumulators restart each epoch)."""
        return [self.soft_labels]

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "alpha": self.alpha})
        return config


class OnlineLabelSmoothingCallback(keras.callbacks.Callback):
    """Drives an `OnlineLabelSmoothing` loss: accumulate while training, swap per epoch.

    Hooks: `on_train_begin` refuses a loss whose state was created outside the model's
    distribution strategy (its statistics would not be summed across replicas);
    `on_epoch_begin` clears the accumulators and turns accumulation on;
    `on_test_begin`/`on_test_end` turn it off for the validation pass and restore it;
    `on_epoch_end` turns it off, calls `loss.end_epoch()` and writes the mean true-class
    soft-label probability (mean of diag(S)) to `logs["ols_true_class_prob"]`;
    `on_train_end` turns it off. See `OnlineLabelSmoothing` for why.

    Args:
        loss: OnlineLabelSmoothing. The loss instance passed to `compile`.
    """

    def __init__(self, loss):
        super().__init__()
        if not isinstance(loss, OnlineLabelSmoothing):
            raise ValueError(
                "`loss` must be the OnlineLabelSmoothing instance given to compile(). "
                f"Received: loss={loss!r}"
            )
        self.loss = loss
        self._resume = False

    def on_train_begin(self, logs=None):
        strategy = getattr(self.model, "distribute_strategy", None)
        replicas = getattr(strategy, "num_replicas_in_sync", 1)
        if replicas > 1 and not _is_distributed(self.loss.counts):
            raise ValueError(
                "The OnlineLabelSmoothing loss was created outside the model's distribution "
                f"strategy ({type(strategy).__name__}, {replicas} replicas), so its soft-label "
                "statistics would not be summed across replicas. Create the loss inside "
                "`strategy.scope()`, where the model is built and compiled. Received: loss "
                f"state variable {self.loss.counts.path!r} on one device."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.start_epoch()
        self.loss.set_accumulating(True)

    def on_test_begin(self, logs=None):
        self._resume = bool(ops.convert_to_numpy(self.loss.accumulating))
        self.loss.set_accumulating(False)

    def on_test_end(self, logs=None):
        self.loss.set_accumulating(self._resume)

    def on_epoch_end(self, epoch, logs=None):
        self.loss.set_accumulating(False)
        soft_labels = self.loss.end_epoch()
        if logs is not None:
            logs["ols_true_class_prob"] = float(np.mean(np.diag(soft_labels)))

    def on_train_end(self, logs=None):
        self.loss.set_accumulating(False)


def _is_distributed(variable):
    """Whether a Keras variable is a `tf.distribute` variable (one copy per replica)."""
    import tensorflow as tf  # only TensorFlow's strategies replicate Keras variables so

    return isinstance(getattr(variable, "value", variable), tf.distribute.DistributedValues)


def _tf_kd_paper(teacher_probs, log_probs, temperature, num_classes):
    """T^2 KL(softmax(log p_d / T) || softmax(log p / T)) per sample."""
    log_teacher = ops.log_softmax(ops.log(teacher_probs) / temperature, axis=-1)
    log_student = ops.log_softmax(log_probs / temperature, axis=-1)
    return temperature**2 * _kl_divergence(log_teacher, log_student)


def _tf_kd_official(teacher_probs, log_probs, temperature, num_classes):
    """KL(softmax(p_d / T) || p) / K per sample, as the official PyTorch code computes."""
    log_teacher = ops.log_softmax(teacher_probs / temperature, axis=-1)
    return _kl_divergence(log_teacher, log_probs) / num_classes


# Tf-KD variant name -> per-sample distillation term.
_TF_KD_VARIANTS = {"paper": _tf_kd_paper, "official": _tf_kd_official}


@keras.saving.register_keras_serializable(package="radtl")
class TeacherFreeKD(_ProbabilityLoss):
    """Teacher-free knowledge distillation with a virtual teacher (Tf-KD_reg).

    The virtual teacher puts `correct_prob` = a on the true class and (1 - a)/(K - 1) on
    each other class: p_d. Per sample, with m = `multiplier`:

        loss = (1 - alpha) * CE(one_hot(y), p) + alpha * m * D

    `variant="paper"` (default, standard temperature-scaled KD):
        D = T^2 * KL(softmax(log p_d / T) || softmax(log p / T)),
    both distributions softened by T as logits would be (softmax(log p / T) equals
    softmax(z / T) for the student's logits z), with Hinton's T^2 gradient scale.

    `variant="official"` reproduces `my_loss_function.py` of
    yuanli2333/Teacher-free-Knowledge-Distillation (`loss_kd_regularization`) exactly:
        D = KL(softmax(p_d / T) || p) / K.
    Its quirks: the teacher is a softmax over the *probability* vector divided by T (with
    T = 40, a = 0.99 the target is nearly uniform: a label-smoothing-like regulariser);
    the student is not softened; there is no T^2; and `nn.KLDivLoss()`'s default
    reduction "mean" averages over batch * K elements, hence the 1/K once Keras averages
    over the batch.

    `multiplier` is the authors' `params.multiplier`: their `loss_kd_regularization`
    multiplies the KL term by it before weighting with alpha,
    `(1 - alpha) * CE + alpha * (KLDivLoss()(...) * multiplier)`; it applies to both
    variants here. The README's Tf-KD_reg commands
    (`python main.py --model_dir experiments/base_experiments/base_<net>/
    --regularization`) read it with T and alpha from that folder's `params.json`
    (CIFAR-100, at commit d000ab3):

    | README command | T (`reg_temperature`) | alpha (`reg_alpha`) | multiplier |
    |---|---|---|---|
    | ResNet18 (`base_resnet18`) | 20 | 0.1 | 100 |
    | GoogLeNet (`base_googlenet`) | 40 | 0.1 | 50 |
    | MobileNetV2 (`base_mobilenetv2`) | 40 | 0.95 | 1 |
    | ShuffleNetV2 (`base_shufflenetv2`) | 10 | 0.95 | 1 |

    so e.g. their ResNet18 run is
    `TeacherFreeKD(variant="official", temperature=20.0, alpha=0.1, multiplier=100.0)`
    (their a is fixed at 0.99, the default here).

    Reference:
        Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label
        Smoothing Regularization", CVPR 2020.

    Args:
        correct_prob: float in (0, 1). a, the teacher's true-class probability.
            Defaults to 0.99 (official code; the paper suggests a >= 0.9).
        temperature: float > 0. T. Defaults to 6.0 (the authors' ResNet-50
            self-training config; their Tf-KD_reg configs use 10 to 40, see above).
        alpha: float in [0, 1]. Weight of the distillation term. Defaults to 0.95
            (the MobileNetV2 and ShuffleNetV2 configs).
        variant: str. "paper" or "official", see above. Defaults to "paper".
        multiplier: float >= 0. m, scales the distillation term. Defaults to 1.0.
        name: str. Defaults to "teacher_free_kd".
        reduction: str or None. As `keras.losses.Loss`.
        dtype: str or None. As `keras.losses.Loss`.
    """

    def __init__(
        self,
        correct_prob=0.99,
        temperature=6.0,
        alpha=0.95,
        variant="paper",
        multiplier=1.0,
        name="teacher_free_kd",
        reduction=_REDUCTION,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_number("correct_prob", correct_prob, 0.0, 1.0,
                      include_low=False, include_high=False)
        check_number("temperature", temperature, 0.0, float("inf"),
                      include_low=False, include_high=False)
        check_number("alpha", alpha, 0.0, 1.0)
        check_number("multiplier", multiplier, 0.0, float("inf"), include_high=False)
        if variant not in _TF_KD_VARIANTS:
            raise ValueError(
                f"`variant` must be one of {sorted(_TF_KD_VARIANTS)}. "
                f"Received: variant={variant!r}"
            )
        self.correct_prob = correct_prob
        self.temperature = temperature
        self.alpha = alpha
        self.variant = variant
        self.multiplier = multiplier

    def teacher(self, labels, num_classes):
        """The virtual teacher's distribution p_d, shape (batch, K)."""
        if num_classes < 2:
            raise ValueError(
                "TeacherFreeKD needs K >= 2 classes. "
                f"Received: y_pred with K={num_classes}."
            )
        one_hot = ops.one_hot(labels, num_classes, dtype="float32")
        other = (1.0 - self.correct_prob) / (num_classes - 1)
        return one_hot * self.correct_prob + (1.0 - one_hot) * other

    def _per_sample(self, labels, y_pred, log_probs, num_classes):
        one_hot = ops.one_hot(labels, num_classes, dtype="float32")
        hard = _cross_entropy(one_hot, log_probs)
        distill = _TF_KD_VARIANTS[self.variant](
            self.teacher(labels, num_classes), log_probs, self.temperature, num_classes
        )
        return (1.0 - self.alpha) * hard + self.alpha * self.multiplier * distill

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "correct_prob": self.correct_prob,
                "temperature": self.temperature,
                "alpha": self.alpha,
                "variant": self.variant,
                "multiplier": self.multiplier,
            }
        )
        return config


REGISTRY.register("hard", CrossEntropy)
REGISTRY.register("label_smoothing", LabelSmoothing)
REGISTRY.register("ols", OnlineLabelSmoothing, context=("num_classes",))
REGISTRY.register("tf_kd", TeacherFreeKD)


def names():
    """Registered loss names, in registration order (`REGISTRY.names()`)."""
    return REGISTRY.names()


def get(name, /, *, context=None, **params):
    """Build a loss by registry name (library shortcut over `REGISTRY.build`).

    A loss that needs run context (`ols`: `num_classes`) takes it from `context`; for
    direct use, a context field may also be passed as a keyword (`get("ols",
    num_classes=3)`) and is moved into the context. The trainer passes
    `context=RunContext(num_classes=K)` and the config's `loss_options` as `params`.

    Args:
        name: str. One of `names()`: "hard", "label_smoothing", "ols", "tf_kd".
        context: `radtl.registry.RunContext` or None. The run's context.
        **params: the loss's options (e.g. `epsilon` for "label_smoothing", `alpha` for
            "ols", `correct_prob`, `temperature`, `alpha`, `variant`, `multiplier` for
            "tf_kd"), plus the context fields the loss declares; others raise.

    Returns:
        A `keras.losses.Loss` taking (batch,) integer labels and (batch, K)
        probabilities. Pass `loss.callbacks()` to `fit`.

    Raises:
        ValueError: an unknown `name` or option, an invalid option value, a missing
            context field, or a context field given twice with two values.

    Example:

    >>> get("ols", num_classes=3).num_classes
    3
    >>> get("ols", context=RunContext(num_classes=3), alpha=0.3).alpha
    0.3
    """
    moved = {field: params.pop(field) for field in REGISTRY.context_fields(name) if field in params}
    context = _merge_context(context, moved)
    REGISTRY.check_options(name, params)
    return REGISTRY.build(name, params, context)


def _merge_context(context, fields):
    """`context` (or an empty `RunContext`) with `fields` set; a conflicting value raises."""
    context = context if context is not None else RunContext()
    for field, value in fields.items():
        held = getattr(context, field)
        if held is not None and held != value:
            raise ValueError(
                f"`{field}` was given twice with different values. Received: {field}={value!r} "
                f"and context.{field}={held!r}. Pass it once, as a keyword or in `context`."
            )
    return dataclasses.replace(context, **fields)
