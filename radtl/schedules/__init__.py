"""Fine-tuning schedules as Keras callbacks, each run inside one `model.fit()`.

Every schedule is a `keras.callbacks.Callback` (subclass of `FineTuningSchedule`)
that composes with Keras' own callbacks. It handles the Keras 3 traps itself: it
rebuilds the train function when what trains changes, builds the optimizer once on
every variable it will train (keeping Adam state across stages), keeps frozen
BatchNorm in inference mode, and gives per-group learning rates as real
per-variable rates (`radtl.schedules.optimizers`). The rules (which groups train
at epoch k, with which multiplier) are pure functions in `radtl.schedules.rules`.

Schedules by name, for configs and the CLI:

| name | class | paper |
|---|---|---|
| `ft` | `FullFineTune` | Davila et al. 2024 |
| `lp` | `LinearProbe` | Kumar et al. 2022 |
| `lp-ft` | `LPFT` | Kumar et al. 2022 |
| `gradual-unfreeze`, `g-lf`, `g-fl` | `GradualUnfreeze` | Howard & Ruder 2018 |
| `partial-unfreeze` | `PartialUnfreeze` | Frees et al. 2025 |
| `freezeall`, `unfreezeall`, `unfreezetop10` | `RadImageNetScenario` | Mei et al. 2022 |
| `discriminative-lr` | `DiscriminativeLR` | Howard & Ruder 2018 |
| `l2-sp`, `l1-sp` | `L2SP`, `L1SP` | Li et al. 2018 |
| `auto-rgn` | `AutoRGN` | Lee et al. 2023 |

`freezeall` and `unfreezeall` train the same parts as `lp` and `ft`.

The backbone is found automatically in a model from `radtl.build_model`, in a model
that nests a `keras.applications` backbone under its own name (`mobilenetv2_1.00_224`,
`efficientnetb0`, ...; recognised by its layer names), and in one with the backbone
flattened into it (`keras.Model(base.input, head(base.output))`). Otherwise pass
`backbone=` (a layer, its name, or a registered backbone name such as
`"mobilenet_v2"`) and, for schedules that split the backbone, `block_groups=`.

Registry. `REGISTRY` (a `radtl.registry.Registry`, case-insensitive) maps names to
classes; `names()` and `get()` are the short forms. `REGISTRY.check_options(name,
options)` rejects an option the schedule does not take, naming the valid ones. A
schedule that needs run context declares it: Auto-RGN is registered with
`context=("train_data",)` and receives `RunContext.train_data` as its `train_data`
argument.

Adding a schedule: one file, `radtl/schedules/<name>.py`, with a
`FineTuningSchedule` subclass (its rule a pure function in `rules.py`, or inline)
and one registration line above the class, `@REGISTRY.register("<name>")` (from
`radtl.schedules.base`); plus its tests in `tests/test_schedules.py`. This package
imports every module in its folder, so nothing else changes: configs, sweeps and
the CLI take their choices from `names()`.

Example:

```python
import keras, numpy as np, radtl.schedules

inputs = keras.Input((16, 16, 3))
x = keras.layers.Conv2D(4, 3, name="b1_conv")(inputs)
x = keras.layers.BatchNormalization(name="b1_bn")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
backbone = keras.Model(inputs, x, name="tiny")
outer_in = keras.Input((16, 16, 3))
model = keras.Model(outer_in, keras.layers.Dense(2, activation="softmax")(backbone(outer_in)))
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
schedule = radtl.schedules.get("lp-ft", probe_epochs=1, learning_rate=1e-4)
history = model.fit(np.random.rand(8, 16, 16, 3), np.arange(8) % 2, epochs=2,
                    callbacks=[schedule], verbose=0)
history.history["stage"]  # [0, 1]
```
"""

import dataclasses
import importlib
import pkgutil

from radtl.registry import RunContext
from radtl.schedules import optimizers
from radtl.schedules import rules
from radtl.schedules.auto_rgn import AutoRGN
from radtl.schedules.base import REGISTRY
from radtl.schedules.base import FineTuningSchedule
from radtl.schedules.discriminative_lr import DiscriminativeLR
from radtl.schedules.freezing import FullFineTune
from radtl.schedules.freezing import LinearProbe
from radtl.schedules.freezing import LPFT
from radtl.schedules.freezing import PartialUnfreeze
from radtl.schedules.freezing import RadImageNetScenario
from radtl.schedules.gradual_unfreeze import GradualUnfreeze
from radtl.schedules.sp_regularization import L1SP
from radtl.schedules.sp_regularization import L2SP

# Every schedule file registers itself on import: import them all.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module


def names():
    """The registered schedule names, sorted."""
    return sorted(REGISTRY.names())


def get(name, *, context=None, **params):
    """Builds a schedule callback by name.

    Args:
        name: str. A registered name (see `names()`), case-insensitive.
        context: `radtl.registry.RunContext` or None. The run context; a schedule
            that declares context fields (Auto-RGN: `train_data`) takes them from
            here. Defaults to None.
        **params: the schedule's options (constructor arguments). A context field
            may also be passed here by name (`train_data=dataset`).

    Returns:
        A new `FineTuningSchedule`.

    Raises:
        ValueError: an unknown name (listing the valid ones), an option the schedule
            does not take (listing the valid ones) or that its name fixes, or a
            context field it needs and did not get.

    Example:

    >>> get("g-fl", block_groups=[("stem", "stem_.*"), ("top", "top_.*")]).order
    'first_to_last'
    """
    fields = REGISTRY.context_fields(name)
    given = {field: params.pop(field) for field in fields if field in params}
    if given:
        context = dataclasses.replace(context or RunContext(), **given)
    REGISTRY.check_options(name, params)
    return REGISTRY.build(name, params, context)


__all__ = [
    "AutoRGN",
    "DiscriminativeLR",
    "FineTuningSchedule",
    "FullFineTune",
    "GradualUnfreeze",
    "L1SP",
    "L2SP",
    "LPFT",
    "LinearProbe",
    "PartialUnfreeze",
    "REGISTRY",
    "RadImageNetScenario",
    "get",
    "names",
    "optimizers",
    "rules",
]
