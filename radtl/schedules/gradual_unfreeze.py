"""Gradual unfreezing (ULMFiT), optionally with discriminative learning rates."""

from radtl.schedules import rules
from radtl.schedules.base import REGISTRY
from radtl.schedules.base import FineTuningSchedule


@REGISTRY.register("g-fl", fixed={"order": "first_to_last"})
@REGISTRY.register("g-lf", fixed={"order": "last_to_first"})
@REGISTRY.register("gradual-unfreeze")
class GradualUnfreeze(FineTuningSchedule):
    """Unfreezes one block group per stage, every `epochs_per_stage` epochs.

    Stage 0 trains the head only; stage s (s >= 1) also trains s block groups,
    taken from the output side (`order="last_to_first"`, ULMFiT's G-LF) or from the
    stem (`order="first_to_last"`, G-FL). From stage `num_groups` on everything
    trains. With `lr_factor > 1` each group also gets ULMFiT's discriminative rate
    (see `DiscriminativeLR`).

    Reference:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification", ACL 2018 (arXiv 1801.06146); Davila et al. 2024 (G-LF, G-FL).

    Args:
        epochs_per_stage: int >= 1, epochs per stage. Defaults to `1`.
        order: `"last_to_first"` or `"first_to_last"`. Defaults to `"last_to_first"`.
        lr_factor: float >= 1, discriminative factor between adjacent groups; 1
            means one rate for all. Defaults to `1.0`.
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: at each stage change (in `on_epoch_begin`) the newly unfrozen group's
    layers are set trainable and the train function rebuilt; the optimizer was built
    on every variable at `on_train_begin`, so groups already training keep their Adam
    moments and the new group starts fresh. A group frozen so far has never been
    updated: its weights and BatchNorm statistics are bitwise unchanged.

    Example:

    ```python
    groups = [("stem", "stem_.*"), ("block1", "b1_.*"), ("block2", "b2_.*")]
    schedule = radtl.schedules.GradualUnfreeze(order="last_to_first",
                                               block_groups=groups)
    model.fit(x, y, epochs=4, callbacks=[schedule])
    ```
    """

    uses_block_groups = True

    def __init__(self, epochs_per_stage=1, order="last_to_first", lr_factor=1.0,
                 **kwargs):
        rules.check_positive_int("epochs_per_stage", epochs_per_stage)
        rules.check_choice("order", order, rules.ORDERS)
        rules.check_number("lr_factor", lr_factor, 1)
        super().__init__(**kwargs)
        self.epochs_per_stage = epochs_per_stage
        self.order = order
        self.lr_factor = float(lr_factor)

    def stage(self, epoch, num_groups):
        return rules.gradual_unfreeze(
            epoch, num_groups, self.epochs_per_stage, self.order
        )

    def group_multipliers(self, epoch, num_groups):
        return rules.discriminative_multipliers(num_groups, self.lr_factor)
