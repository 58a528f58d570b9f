"""Schedules that only choose what trains: FT, LP, LP-FT, partial unfreezing, RadImageNet.

All are `FineTuningSchedule`s: they set `layer.trainable`, rebuild the train function
when the trainable set changes, and build the optimizer once on every variable they
will train (see `radtl.schedules.base.FineTuningSchedule` for how the Keras 3 traps
are handled).
"""

import keras

from radtl.schedules import rules
from radtl.schedules.base import REGISTRY
from radtl.schedules.base import FineTuningSchedule


@REGISTRY.register("ft")
class FullFineTune(FineTuningSchedule):
    """FT: every layer of the backbone and the head trains at one learning rate.

    Reference:
        Davila et al., "Comparison of fine-tuning strategies for transfer learning in
        medical image classification", Image and Vision Computing 2024 (strategy FT).

    Args:
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: useful when the model arrives with a frozen backbone: the backbone is
    unfrozen, the train function rebuilt and the optimizer built on all variables
    in `on_train_begin`/`on_epoch_begin`, without a new `compile()`.

    Example:

    ```python
    model.fit(x, y, epochs=2, callbacks=[radtl.schedules.FullFineTune()])
    ```
    """

    def stage(self, epoch, num_groups):
        return rules.full_fine_tune(num_groups)


@REGISTRY.register("lp")
class LinearProbe(FineTuningSchedule):
    """LP: the backbone is frozen (BatchNorm in inference mode), only the head trains.

    Reference:
        Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
        Out-of-Distribution", ICLR 2022 (linear probing); Davila et al. 2024 (LP).

    Args:
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: the optimizer is built on the head's variables only, so no Adam state
    is allocated for the backbone.

    Example:

    ```python
    model.fit(x, y, epochs=2, callbacks=[radtl.schedules.LinearProbe()])
    ```
    """

    def stage(self, epoch, num_groups):
        return rules.linear_probe(num_groups)


@REGISTRY.register("lp-ft")
class LPFT(FineTuningSchedule):
    """LP-FT: linear probing for `probe_epochs` epochs, then full fine-tuning.

    Stage 0 trains the head on a frozen backbone; from epoch `probe_epochs` on
    (0-based) everything trains, optionally at a new base learning rate.

    Reference:
        Kumar, Raghunathan, Jones, Ma, Liang, "Fine-Tuning can Distort Pretrained
        Features and Underperform Out-of-Distribution", ICLR 2022 (arXiv 2202.10054).

    Args:
        probe_epochs: int >= 0, epochs of linear probing. Defaults to `1`.
        learning_rate: float or None, the base learning rate assigned to the
            optimizer when fine-tuning starts (the optimizer must then have a float
            learning rate, not a `LearningRateSchedule`). `None` keeps the current
            one. Defaults to `None`.
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: the switch happens in `on_epoch_begin` of epoch `probe_epochs`: the
    backbone is unfrozen and the train function rebuilt. The optimizer was built on
    all variables at `on_train_begin`, so the head keeps its Adam moments from the
    probe, the backbone starts with fresh moments (and its own bias-correction step),
    and `iterations` keeps counting.

    Example:

    ```python
    schedule = radtl.schedules.LPFT(probe_epochs=2, learning_rate=1e-5)
    model.fit(x, y, epochs=4, callbacks=[schedule])
    ```
    """

    def __init__(self, probe_epochs=1, learning_rate=None, **kwargs):
        rules.check_positive_int("probe_epochs", probe_epochs, minimum=0)
        if learning_rate is not None:
            rules.check_number("learning_rate", learning_rate)
        super().__init__(**kwargs)
        self.probe_epochs = probe_epochs
        self.learning_rate = learning_rate

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.learning_rate is not None and not isinstance(
            self._optimizer._learning_rate, keras.Variable
        ):
            raise ValueError(
                "LPFT(learning_rate=...) assigns the optimizer's learning rate, which "
                "needs a float learning rate. Received: optimizer learning_rate="
                f"{type(self._optimizer._learning_rate).__name__}. Pass "
                "learning_rate=None or compile with a float learning rate."
            )

    def stage(self, epoch, num_groups):
        return rules.lp_ft(epoch, num_groups, self.probe_epochs)

    def _on_stage_change(self, previous, stage):
        if stage.index == 1 and self.learning_rate is not None:
            self._optimizer.learning_rate = self.learning_rate


@REGISTRY.register("partial-unfreeze")
class PartialUnfreeze(FineTuningSchedule):
    """Trains the top `top` block groups of the backbone and the head; freezes the rest.

    Frees et al.'s `unfreezetopN` unfreezes the last N children of the torchvision
    ResNet trunk; here the unit is a block group of `radtl.backbones.block_groups`.
    Unlike PyTorch, frozen BatchNorm layers run in inference mode (Keras semantics).

    Reference:
        Frees et al., "Towards Optimal Convolutional Transfer Learning Architectures
        for Breast Lesion Classification and ACL Tear Detection", arXiv 2508.17567.

    Args:
        top: int >= 0, number of block groups (from the output side) that train.
        backbone, block_groups, freeze_batchnorm, verbose: see `FineTuningSchedule`.

    Keras 3: see `FineTuningSchedule`; the optimizer holds state only for the
    variables of the top groups and the head.

    Example:

    ```python
    schedule = radtl.schedules.PartialUnfreeze(top=2, block_groups=groups)
    model.fit(x, y, epochs=2, callbacks=[schedule])
    ```
    """

    uses_block_groups = True

    def __init__(self, top, **kwargs):
        rules.check_positive_int("top", top, minimum=0)
        super().__init__(**kwargs)
        self.top = top

    def stage(self, epoch, num_groups):
        return rules.partial_unfreeze(num_groups, self.top)


@REGISTRY.register("unfreezetop10", fixed={"scenario": "unfreezetop10"})
@REGISTRY.register("unfreezeall", fixed={"scenario": "unfreezeall"})
@REGISTRY.register("freezeall", fixed={"scenario": "freezeall"})
class RadImageNetScenario(FineTuningSchedule):
    """The RadImageNet fine-tuning scenarios, as the official Keras scripts define them.

    `freezeall`: every backbone layer frozen; `unfreezeall`: every layer trains;
    `unfreezetop10`: `base_model.layers[:-10]` frozen, i.e. the last 10 Keras layers
    of the backbone (weightless layers such as activations and `Add` count) train.
    The head always trains.

    Reference:
        Mei et al., "RadImageNet: An Open Radiologic Deep Learning Research Dataset
        for Effective Transfer Learning", Radiology: AI 2022
        (github.com/BMEII-AI/RadImageNet).

    Args:
        scenario: one of `"freezeall"`, `"unfreezeall"`, `"unfreezetop10"`.
        backbone, freeze_batchnorm, verbose: see `FineTuningSchedule`. The units are
            the backbone's own Keras layers, so `block_groups` is not used.

    Keras 3: see `FineTuningSchedule`. Frozen BatchNorm layers run in inference mode,
    as in the official scripts (TF 2 Keras semantics).

    Example:

    ```python
    model.fit(x, y, epochs=2,
              callbacks=[radtl.schedules.RadImageNetScenario("unfreezetop10")])
    ```
    """

    def __init__(self, scenario, **kwargs):
        rules.check_choice("scenario", scenario, rules.RADIMAGENET_SCENARIOS)
        super().__init__(**kwargs)
        self.scenario = scenario

    def _groups_of(self, split):
        return [(layer.name, [layer]) for layer in split.layers]

    def stage(self, epoch, num_groups):
        return rules.radimagenet(self.scenario, num_groups)

    def _log_learning_rates(self):
        # One entry per Keras layer would flood the logs: report backbone and head.
        rates = super()._log_learning_rates()
        head = rates.pop("lr_head")
        return {"lr_backbone": max(rates.values(), default=0.0), "lr_head": head}
