"""Discriminative fine-tuning: a learning rate per block group (ULMFiT)."""

from radtl.schedules import rules
from radtl.schedules.base import REGISTRY
from radtl.schedules.base import FineTuningSchedule


@REGISTRY.register("discriminative-lr")
class DiscriminativeLR(FineTuningSchedule):
    """Everything trains; each block group's learning rate is the one above it / `factor`.

    The head trains at the optimizer's learning rate `lr`, the top backbone group at
    `lr / factor`, the next at `lr / factor**2`, ..., the stem at
    `lr / factor**num_groups`.

    Reference:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification", ACL 2018 (arXiv 1801.06146), Section 3.2 (factor 2.6).

    Args:
        factor: float >= 1, ratio between adjacent groups. Defaults to `2.6`.
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: Adam is invariant to gradient scaling, so the rates are real
    per-variable learning rates: multipliers in a non-trainable variable of a
    `radtl.schedules.optimizers` Adam/AdamW/SGD (a plain Keras one is swapped for it
    at `on_train_begin`), which scale each variable's update (and decoupled weight
    decay) exactly.

    Example:

    ```python
    schedule = radtl.schedules.DiscriminativeLR(factor=2.6, block_groups=groups)
    model.fit(x, y, epochs=2, callbacks=[schedule])
    ```
    """

    uses_block_groups = True

    def __init__(self, factor=2.6, **kwargs):
        rules.check_number("factor", factor, 1)
        super().__init__(**kwargs)
        self.factor = float(factor)

    def stage(self, epoch, num_groups):
        return rules.full_fine_tune(num_groups)

    def group_multipliers(self, epoch, num_groups):
        return rules.discriminative_multipliers(num_groups, self.factor)
