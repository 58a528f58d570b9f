"""Auto-RGN: per-tensor learning rates from the relative gradient norm."""

import itertools

import numpy as np
import tensorflow as tf
from keras import ops

from radtl.schedules import rules
from radtl.schedules.base import REGISTRY
from radtl.schedules.base import FineTuningSchedule


@REGISTRY.register("auto-rgn", context=("train_data",))
class AutoRGN(FineTuningSchedule):
    """Per-tensor learning rate = base rate x RGN / max RGN, recomputed every epoch.

    At the start of every epoch, the gradients of the compiled loss on the first
    `num_batches` batches of `train_data` give each trainable tensor its relative
    gradient norm `rgn = ||g||_2 / ||theta||_2`, averaged over those batches; the
    tensor's learning-rate multiplier for the epoch is `rgn / max(rgn)`. As in the
    official code, BatchNorm parameters are left out of training (their layers are
    frozen, so they also run in inference mode, the official `train_mode: eval`), and
    the Adam state is reset every epoch (the official code builds a new Adam).

    Reference:
        Lee, Chen, Tajwar, Kumar, Yao, Liang, Finn, "Surgical Fine-Tuning Improves
        Adaptation to Distribution Shifts", ICLR 2023 (arXiv 2210.11466);
        github.com/anniesch/surgical-finetuning (`main.py`, `auto_tune=RGN`).

    Args:
        train_data: a `tf.data.Dataset` (or any iterable) of `(x, y)` or
            `(x, y, sample_weight)` batches, typically the training data; a fresh
            pass is started every epoch and its first `num_batches` batches are used.
            By name (`radtl.schedules.get("auto-rgn", context=...)`) it comes from
            the run context, `radtl.registry.RunContext.train_data`.
        num_batches: int >= 1, batches averaged per epoch. Defaults to `5`.
        reset_optimizer_state: zero the Adam moments (and restart the bias-correction
            step) of every variable each epoch, as the official code does.
            Defaults to `True`.
        backbone, block_groups, verbose: see `FineTuningSchedule`.
            `freeze_batchnorm` defaults to `True` here.

    Keras 3: the gradients are taken in a `tf.function` of this callback (graph
    mode, separate from `fit()`'s train function), from `model(x, training=False)`
    and `model.compute_loss`, in float32 norms (also under `mixed_bfloat16`). The
    multipliers are real per-variable learning rates held in a non-trainable
    variable of the optimizer, so changing them each epoch does not retrace the
    train function. A tensor with zero norm (e.g. a zero-initialised bias) gets
    multiplier 1 (see `rules.relative_gradient_norm_multipliers`).

    Example:

    ```python
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(dataset, epochs=3, callbacks=[radtl.schedules.AutoRGN(dataset)])
    # by name, as the trainer builds it:
    radtl.schedules.get("auto-rgn", context=radtl.registry.RunContext(
        train_data=dataset), num_batches=2)
    ```
    """

    train_data_passes_per_epoch = 1  # `variable_multipliers`: one `iter(train_data)` per epoch

    def __init__(self, train_data, num_batches=5, reset_optimizer_state=True,
                 freeze_batchnorm=True, **kwargs):
        if train_data is None:
            raise ValueError(
                "`train_data` must be a dataset of (x, y) batches for the gradient "
                "norms. Received: train_data=None"
            )
        rules.check_positive_int("num_batches", num_batches)
        super().__init__(freeze_batchnorm=freeze_batchnorm, **kwargs)
        self.train_data = train_data
        self.num_batches = num_batches
        self.reset_optimizer_state = bool(reset_optimizer_state)
        self._gradient_norms = None
        self.last_multipliers = None

    def stage(self, epoch, num_groups):
        return rules.full_fine_tune(num_groups)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._gradient_norms = None
        self.last_multipliers = None

    def _make_gradient_norms(self):
        model = self.model
        variables = list(model.trainable_variables)

        @tf.function
        def gradient_norms(x, y, sample_weight):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                loss = model.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                    training=False,
                )
            gradients = tape.gradient(loss, variables)
            return [
                tf.zeros(()) if g is None else tf.norm(tf.cast(g, "float32"))
                for g in gradients
            ]

        return variables, gradient_norms

    def variable_multipliers(self, epoch):
        if self._gradient_norms is None:
            self._gradient_norms = self._make_gradient_norms()
        variables, gradient_norms = self._gradient_norms
        per_batch = []
        for batch in itertools.islice(iter(self.train_data), self.num_batches):
            x, y, sample_weight = _unpack(batch)
            per_batch.append(
                [float(n) for n in gradient_norms(x, y, sample_weight)]
            )
        parameter_norms = [
            float(np.linalg.norm(ops.convert_to_numpy(v).astype("float64")))
            for v in variables
        ]
        multipliers = rules.mean_relative_gradient_norms(per_batch, parameter_norms)
        if self.reset_optimizer_state:
            self._optimizer.reset_state(variables)
        self.last_multipliers = dict(
            zip((v.path for v in variables), multipliers)
        )
        return list(zip(variables, multipliers))


def _unpack(batch):
    if isinstance(batch, dict) or not isinstance(batch, (tuple, list)):
        raise ValueError(
            "AutoRGN `train_data` must yield (x, y) or (x, y, sample_weight) batches. "
            f"Received a batch of type {type(batch).__name__}."
        )
    x, y, *rest = batch
    return x, y, (rest[0] if rest else None)
