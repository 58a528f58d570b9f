"""Shared machinery of the fine-tuning schedules: the registry, trainable state, rates."""

import inspect

import keras
from keras import ops

from radtl.registry import Registry
from radtl.schedules import groups as groups_lib
from radtl.schedules import optimizers
from radtl.schedules import rules

# Schedules by name. A schedule file registers its class with `@REGISTRY.register(name)`
# (names that fix arguments: `fixed={...}`; run context: `context=("train_data",)`).
REGISTRY = Registry("schedule", case_sensitive=False)


class FineTuningSchedule(keras.callbacks.Callback):
    """Base class: a fine-tuning schedule run inside one `model.fit()`.

    A subclass supplies the rule (`stage(epoch, num_groups)` and, optionally,
    `group_multipliers(epoch, num_groups)`, normally thin wrappers over
    `radtl.schedules.rules`). This class turns it into Keras state:

    - Trainable state. At every epoch whose stage differs from the previous one, it
      sets `layer.trainable` on every block group and head layer, then calls
      `model.make_train_function(force=True)`: `fit()` builds its train function
      once and a traced function keeps the variable list and BatchNorm mode it saw
      (changing `trainable` without this is silently ignored, measured in Keras
      3.15). Frozen BatchNormalization layers therefore run in inference mode and
      keep their moving statistics. `model.compile()` is never called inside
      `fit()` (it sets `train_function = None` and `fit()` then fails); its record of
      trainable state (`_compiled_trainable_state`) is refreshed instead.
    - Optimizer. Optimizers record their variables when built, and a variable
      unknown at build time raises "Unknown variable". In `on_train_begin` the
      optimizer is built once on every variable any stage of this `fit()` will train
      (a plain Keras Adam/AdamW/SGD is swapped for the `radtl.schedules.optimizers`
      class with the same config; state already there is copied). Variables that stay
      trainable across a stage change keep their Adam moments; variables that start
      training begin with fresh moments and their own bias-correction step, while
      `iterations`, and so any learning-rate schedule, keep counting.
    - Learning rates. Per-group rates are real per-variable rates (Adam is invariant
      to gradient scaling): multipliers held in a non-trainable variable of the
      optimizer, assigned without retracing, also under `jit_compile=True`.
    - Logs. `on_epoch_end` writes `stage` and `lr_<group>` (the effective learning
      rate of each group, 0 when frozen; `lr_head` for the head) into `logs`, so
      `History` and `CSVLogger` record them.

    The schedule owns the `trainable` flag of every layer of the model while it runs.
    State is reset in `on_train_begin`, so an instance can be reused across fits.

    Backbone. Found automatically in a model from `radtl.build_model`, in one that
    nests a `keras.applications` backbone under any name (`head(base(inputs))`,
    recognised by its layer names), and in one with the backbone flattened into it
    (`keras.Model(base.input, head(base.output))`); see `radtl.schedules.groups`.
    On a flattened model the backbone's layers end at its last layer with weights.

    Constructor arguments. A subclass's `__init__(self, <own arguments>, **kwargs)`
    passes `**kwargs` on to this class; its signature is completed with these
    arguments (`__init_subclass__`), so `REGISTRY.check_options` can name every
    valid option of a schedule.

    Args:
        backbone: `None` (found automatically, see above), a layer of the model or
            its name, or a registered backbone name (`radtl.backbones.names()`)
            whose layers the model holds, nested under another name or flattened
            (e.g. `"mobilenet_v2"`). Everything else in the model is the head.
            Defaults to `None`.
        block_groups: `None` (from `radtl.backbones.block_groups`), or a list of
            `(name, regex)` or `(name, [layers])` pairs ordered input -> output; on
            a flattened model they are matched over the model's layers and define
            the backbone. Defaults to `None`.
        freeze_batchnorm: keep every BatchNormalization layer frozen (inference mode,
            not in the optimizer) whatever the stage. Defaults to `False`.
        verbose: 1 prints a message when the stage changes. Defaults to `0`.
    """

    # Whether the rule needs the backbone split into block groups.
    uses_block_groups = False
    # Passes the schedule starts over its `train_data` each epoch (Auto-RGN: 1). Each
    # draws the pipeline's next shuffle/augmentation seeds; `radtl.train` skips as many
    # when it resumes, so a resumed run sees the uninterrupted run's batches.
    train_data_passes_per_epoch = 0

    def __init__(self, backbone=None, block_groups=None, freeze_batchnorm=False,
                 verbose=0):
        super().__init__()
        if backbone is not None and not isinstance(
            backbone, (str, keras.layers.Layer)
        ):
            raise ValueError(
                "`backbone` must be None, a layer name or a layer. "
                f"Received: backbone={backbone!r}"
            )
        if block_groups is not None and not isinstance(block_groups, (list, tuple)):
            raise ValueError(
                "`block_groups` must be None or a list of (name, regex) or "
                f"(name, [layers]) pairs. Received: block_groups={block_groups!r}"
            )
        self.backbone = backbone
        self.block_groups = block_groups
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.verbose = verbose
        self._reset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        own = list(inspect.signature(init).parameters.values())
        if not own or own[-1].kind is not inspect.Parameter.VAR_KEYWORD:
            return
        taken = {p.name for p in own}
        inherited = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(super(cls, cls).__init__).parameters.values()
            if p.name not in taken and p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        positional = [p for p in own[:-1] if p.kind is not p.KEYWORD_ONLY]
        keyword = [p for p in own[:-1] if p.kind is p.KEYWORD_ONLY]
        init.__signature__ = inspect.Signature(positional + keyword + inherited)

    # The rule: overridden by subclasses.
    def stage(self, epoch, num_groups):
        """The `rules.Stage` of `epoch` for a backbone of `num_groups` groups."""
        raise NotImplementedError

    def group_multipliers(self, epoch, num_groups):
        """`(backbone_multipliers, head_multiplier)` of `epoch`; 1 everywhere here."""
        del epoch
        return (1.0,) * num_groups, 1.0

    def _groups_of(self, split):
        """The `[(name, [layers])]` units the rule's stages switch (the block groups)."""
        return split.groups

    def _reset(self):
        self._groups = None
        self._head = None
        self._current_stage = None
        self._optimizer = None
        self._learning_rates = {}

    @property
    def groups(self):
        """The resolved `[(name, [layers])]` block groups (set in `on_train_begin`)."""
        return self._groups

    @property
    def current_stage(self):
        """The `rules.Stage` applied at the current epoch, or None before training."""
        return self._current_stage

    def _apply_trainable(self, stage):
        self.model.trainable = True  # containers on; every unit is set just below
        for (_, layers), flag in zip(self._groups, stage.backbone):
            for layer in layers:
                layer.trainable = flag
        for layer in self._head:
            layer.trainable = stage.head
        if self.freeze_batchnorm:
            for layer in self.model._flatten_layers():
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
        if hasattr(self.model, "_compiled_trainable_state"):
            self.model._compiled_trainable_state = {
                layer: layer.trainable for layer in self.model._flatten_layers()
            }

    def _planned_stages(self):
        epochs = (self.params or {}).get("epochs")
        count = len(self._groups)
        if not epochs:
            return [rules.full_fine_tune(count)]
        return [self.stage(epoch, count) for epoch in range(epochs)]

    def on_train_begin(self, logs=None):
        self._reset()
        split = groups_lib.split_model(self.model, self.backbone, self.block_groups,
                                       required=self.uses_block_groups)
        self._groups = self._groups_of(split)
        self._head = split.head
        self._apply_trainable(rules.union(self._planned_stages()))
        self._optimizer = optimizers.prepare(
            self.model, list(self.model.trainable_variables)
        )

    def _group_variables(self):
        """`[(name, [variables])]` of the currently trainable groups and head."""
        named = [
            (name, [v for layer in layers for v in layer.trainable_weights])
            for name, layers in self._groups
        ]
        named.append(
            ("head", [v for layer in self._head for v in layer.trainable_weights])
        )
        return named

    def variable_multipliers(self, epoch):
        """`[(variable, multiplier)]` for the trainable variables at `epoch`."""
        backbone, head = self.group_multipliers(epoch, len(self._groups))
        pairs = []
        for (_, variables), multiplier in zip(
            self._group_variables(), (*backbone, head)
        ):
            pairs.extend((v, multiplier) for v in variables)
        return pairs

    def on_epoch_begin(self, epoch, logs=None):
        stage = self.stage(epoch, len(self._groups))
        previous = self._current_stage
        if previous is None or stage.trainable != previous.trainable:
            self._apply_trainable(stage)
            self._on_stage_change(previous, stage)
            self._optimizer.activate(self.model.trainable_variables)
            self.model.make_train_function(force=True)
            if self.verbose > 0:
                trained = [n for (n, _), f in zip(self._groups, stage.backbone) if f]
                print(
                    f"\nEpoch {epoch + 1}: {type(self).__name__} stage {stage.index}, "
                    f"backbone groups training: {trained}"
                )
        self._current_stage = stage
        self._optimizer.set_lr_multipliers(self.variable_multipliers(epoch))

    def _on_stage_change(self, previous, stage):
        """Hook run after the trainable flags change (e.g. to set a new base rate)."""

    def _base_learning_rate(self):
        return float(ops.convert_to_numpy(self._optimizer.learning_rate))

    def _log_learning_rates(self):
        base = self._base_learning_rate()
        rates = {}
        for name, variables in self._group_variables():
            rates[f"lr_{name}"] = (
                base * max(self._optimizer.multiplier_of(v) for v in variables)
                if variables
                else 0.0
            )
        return rates

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["stage"] = self._current_stage.index
        logs.update(self._log_learning_rates())
