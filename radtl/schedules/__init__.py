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

import inspect

from radtl.schedules import optimizers
from radtl.schedules import rules
from radtl.schedules.auto_rgn import AutoRGN
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

# name -> (class, parameters fixed by the name). Names are lower case.
_REGISTRY = {
    "ft": (FullFineTune, {}),
    "lp": (LinearProbe, {}),
    "lp-ft": (LPFT, {}),
    "gradual-unfreeze": (GradualUnfreeze, {}),
    "g-lf": (GradualUnfreeze, {"order": "last_to_first"}),
    "g-fl": (GradualUnfreeze, {"order": "first_to_last"}),
    "partial-unfreeze": (PartialUnfreeze, {}),
    "freezeall": (RadImageNetScenario, {"scenario": "freezeall"}),
    "unfreezeall": (RadImageNetScenario, {"scenario": "unfreezeall"}),
    "unfreezetop10": (RadImageNetScenario, {"scenario": "unfreezetop10"}),
    "discriminative-lr": (DiscriminativeLR, {}),
    "l2-sp": (L2SP, {}),
    "l1-sp": (L1SP, {}),
    "auto-rgn": (AutoRGN, {}),
}


def _lookup(name):
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown schedule. Expected one of {names()}. Received: name={name!r}"
        )
    return _REGISTRY[key]


def needs_training_data(name):
    """Whether the schedule `name` takes the training batches (`data=`), as Auto-RGN does."""
    cls, _ = _lookup(name)
    return "data" in inspect.signature(cls.__init__).parameters


def names():
    """The registered schedule names, sorted."""
    return sorted(_REGISTRY)


def get(name, **params):
    """Builds a schedule callback by name.

    Args:
        name: a registered name (see `names()`), case-insensitive.
        **params: constructor arguments of the schedule's class.

    Returns:
        A new `FineTuningSchedule`.

    Raises:
        ValueError: for an unknown name (listing the valid ones), or a parameter
            that the name already fixes.

    Example:

    >>> get("g-fl", block_groups=[("stem", "stem_.*"), ("top", "top_.*")]).order
    'first_to_last'
    """
    cls, fixed = _lookup(name)
    key = str(name).lower()
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise ValueError(
            f"Schedule {key!r} fixes {fixed}; do not pass {clash}. "
            f"Received: {', '.join(f'{k}={params[k]!r}' for k in clash)}"
        )
    return cls(**fixed, **params)


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
    "RadImageNetScenario",
    "get",
    "names",
    "needs_training_data",
    "optimizers",
    "rules",
]
