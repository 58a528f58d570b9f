"""Run configuration: one dataclass that parses, types and validates every run setting.

`TrainConfig` is the one owner of what a run's settings may be. The command line
(`radtl train`, `--config FILE`), sweeps (`radtl sweep`) and the library all build it
through `TrainConfig.from_dict` (or `from_yaml`), so a bad setting gets the same message
everywhere, before any data or weight file is touched:

* unknown keys (with the valid ones);
* types (`batch_size: 16.5`, `augment: "yes please"`), with ints accepted for floats;
* ranges (`learning_rate` > 0, `fold` >= 1, ...) and fixed choices (`optimizer`, ...);
* registry names (`backbone`, `head`, `loss`, `schedule`), read from the registries of
  the modules that own them; `dataset` is a registered dataset or one imported into
  `data_dir` (`radtl data import`), and `fold` one of its folds;
* component options (`head_options`, `loss_options`, `schedule_options`): names the
  component does not take, and values it refuses when it is built.

YAML is read with one loader (`load_yaml`) that reads `1e-3` as a number (YAML 1.2),
for config files and sweep files alike.

A run is reproducible from its `TrainConfig` (and the package versions recorded next
to it): `radtl.train.run(config, run_dir)` writes `config.json` with both.

Defaults follow the official RadImageNet Keras scripts where they define one
(binary task, 30 epochs, Adam, their augmentation, GAP -> Dropout(0.5) -> Dense(2)
head, caffe-then-/255 preprocessing) with two exceptions, stated here so nobody is
surprised: `image_size` 224 (the scripts default to 256; the weights were pre-trained
at 224) and `batch_size` 32 (the scripts default to 256, which needs a large GPU), and
one that keeps results comparable with earlier radtl runs: `resize_method` "bilinear"
(the scripts' `flow_from_dataframe` resizes with "nearest"; set it to reproduce them).
Study configs in `configs/` set the paper values explicitly.
"""
from __future__ import annotations

import contextvars
import dataclasses
import importlib
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from radtl._checks import did_you_mean

__all__ = ["TrainConfig", "ConfigError", "load_yaml", "CHOICES", "REGISTRY_FIELDS", "OPTION_FIELDS"]


class ConfigError(ValueError):
    """A run setting is unknown, of the wrong type, out of range or not a registered name."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.2) instead of a string (YAML 1.1)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(path=None, *, text: str | None = None) -> Any:
    """Parses a YAML file (or `text`) with radtl's loader: `1e-3` is a float.

    Raises:
        ConfigError: the file cannot be read or is not valid YAML (with the line).
    """
    source = "<text>" if text is not None else str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"Cannot read {path}: {err.strerror or err}. Check the path.") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}. Fix the file's syntax "
                          "(indentation, `key: value` pairs, quotes).") from None


#: Fields with a fixed set of values (each the same as its owner's constant, which a test
#: checks; spelled out here so that reading a config imports no other module).
CHOICES = {
    "preprocessing": ("official", "native"),
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_decay": ("constant", "cosine"),
    "precision": ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
    "xla": ("auto", True, False),
    "monitor": ("val_auc", "val_loss", "val_accuracy"),
    "resize_method": ("bilinear", "nearest"),
    "augment_on": ("auto", "cpu", "device"),  # radtl.data.AUGMENT_ON
}

#: Fields whose value is a registered name: field -> module owning the registry.
REGISTRY_FIELDS = {
    "backbone": "radtl.backbones",
    "head": "radtl.heads",
    "loss": "radtl.losses",
    "schedule": "radtl.schedules",
}

#: Option dicts and the field naming their component.
OPTION_FIELDS = {"head_options": "head", "loss_options": "loss", "schedule_options": "schedule"}

# Numeric fields: (low, high, include_low).
_RANGES = {
    "fold": (1, None, True),  # and <= the dataset's folds: checked with the dataset
    "epochs": (1, None, True),
    "batch_size": (1, None, True),
    "image_size": (1, None, True),
    "learning_rate": (0, None, False),
    "min_lr_ratio": (0, 1, True),
    "weight_decay": (0, None, True),
    "momentum": (0, 1, True),
    "seed": (0, None, True),
}


# False while `TrainConfig.recorded` builds a config read back from a run.
_CHECK_DATASET = contextvars.ContextVar("radtl_config_check_dataset", default=True)


def _matches(value, hint) -> bool:
    """Whether `value` fits the type annotation `hint` (ints pass for floats, bools never for numbers)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return str(hint).replace("typing.", "") if typing.get_origin(hint) else hint.__name__


def registry(field: str):
    """The `Registry` behind a name field (imports the owning module, which imports Keras)."""
    return importlib.import_module(REGISTRY_FIELDS[field]).REGISTRY


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines one training run.

    Attributes:
        dataset: str. Dataset name (`radtl.data.names(data_dir)`: registered, or imported
            into `data_dir` with `radtl data import`).
        fold: int. Fold, 1..5 for the RadImageNet tasks (1..K for an imported dataset).
        data_dir: str or None. Where the dataset is built (None: `$RADTL_DATA_DIR`
            or ~/tensorflow_datasets).
        backbone: str. Backbone registry name (`radtl.backbones.names()`).
        weights: str or None. "radimagenet", "imagenet", None/"none" (random init) or a
            path to a weight file.
        weights_dir: str or None. Extra folder searched for weight files.
        preprocessing: str. "official" (caffe then x1/255, the RadImageNet scripts)
            or "native" (the Keras application's own).
        head: str. Head name (`radtl.heads.names()`).
        head_options: dict. Keyword arguments of the head.
        schedule: str. Fine-tuning schedule (`radtl.schedules.names()`).
        schedule_options: dict. Keyword arguments of the schedule.
        loss: str. Loss name (`radtl.losses.names()`).
        loss_options: dict. Keyword arguments of the loss.
        optimizer: str. "adam", "adamw" or "sgd".
        learning_rate: float. Base learning rate (> 0).
        lr_decay: str. "constant" or "cosine" (to `learning_rate * min_lr_ratio` at the
            last epoch).
        min_lr_ratio: float. Final / initial learning rate for "cosine", in [0, 1].
        weight_decay: float. Decoupled weight decay (AdamW/SGD); 0 for none.
        momentum: float. SGD momentum (Nesterov), in [0, 1].
        epochs: int. Training epochs (>= 1).
        batch_size: int. Images per batch (>= 1).
        image_size: int. Square input size in pixels (>= 1).
        resize_method: str. "bilinear" (default) or "nearest" (what the official
            scripts' `flow_from_dataframe` does).
        augment: bool. The official RadImageNet augmentation on the training split.
        augment_on: str. How it runs, with the same pixels (to float32 rounding): "auto"
            (on a GPU host "device", else one warp per image in the parallel tf.data map,
            the fastest on a CPU; the run records which), "cpu" (per-image parameters,
            one warp per batch in tf.data) or "device" (one warp per batch inside the
            train step, on the accelerator, XLA-compatible).
        confounder: dict. Empty for none, else a synthetic confounder of "Source
            Matters" (Juodelyte et al. 2024) injected into a fraction of the positive
            training images: `{"kind": "tag"|"lowpass"|"noise", "fraction": 0..1, ...options}`
            (`radtl.confounders`); the run is then also tested with the confounder on
            every negative (the inverted, out-of-distribution test) and every positive image.
        seed: int. Seeds weights, shuffling, augmentation and dropout (>= 0).
        precision: str. "auto", "float32", "mixed_float16" or "mixed_bfloat16".
        xla: str or bool. "auto", True or False.
        monitor: str. Metric that picks the best checkpoint: "val_auc" or
            "val_accuracy" (highest) or "val_loss" (lowest; what the official scripts keep).

    Raises:
        ConfigError: on construction, for any invalid field (see the module docstring).
    """

    dataset: str = "synthetic_lesions"
    fold: int = 1
    data_dir: str | None = None
    backbone: str = "resnet50"
    weights: str | None = "radimagenet"
    weights_dir: str | None = None
    preprocessing: str = "official"
    head: str = "linear"
    head_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    schedule: str = "unfreezeall"
    schedule_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: str = "hard"
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float = 1e-4
    lr_decay: str = "constant"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 32
    image_size: int = 224
    resize_method: str = "bilinear"
    augment: bool = True
    augment_on: str = "auto"
    confounder: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    precision: str = "auto"
    xla: str | bool = "auto"
    monitor: str = "val_auc"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            setattr(self, field.name, self.check_field(field.name, getattr(self, field.name)))
        self._check_components()

    @classmethod
    def check_field(cls, name: str, value):
        """Validates one field on its own (type, range, choice, registry name); returns it normalised.

        Ints given for float fields become floats, "none" weights become None. Option
        dicts are checked against their component by the whole config.

        Raises:
            ConfigError: the value is invalid (the message names the field and the value).
        """
        if name not in _FIELD_HINTS:
            cls.check_keys({name: value})
        value = cls._check_type(name, value, _FIELD_HINTS[name])
        if name == "weights" and isinstance(value, str) and value.lower() == "none":
            value = None
        if name in _RANGES:
            cls._check_range(name, value, *_RANGES[name])
        if name in CHOICES and value not in CHOICES[name]:  # types first: `xla: 1` never gets here
            raise ConfigError(f"`{name}` must be one of {list(CHOICES[name])}. Received: {name}={value!r}."
                              f"{did_you_mean(value, CHOICES[name])}")
        if name in REGISTRY_FIELDS:
            try:
                registry(name).check_name(value)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        return value

    @staticmethod
    def _check_type(name, value, hint):
        if not _matches(value, hint):
            raise ConfigError(f"`{name}` must be {_type_name(hint)}. Received: {name}={value!r} "
                              f"({type(value).__name__}).")
        accepted = set(typing.get_args(hint)) if typing.get_origin(hint) else {hint}
        if float in accepted and int not in accepted and type(value) is int:
            return float(value)  # `learning_rate: 1` and `1.0` are one config
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise ConfigError(f"`{name}` keys must be strings. Received: {name}={value!r}.")
            return dict(value)
        return value

    @staticmethod
    def _check_range(name, value, low, high, include_low):
        ok = (value >= low if include_low else value > low) and (high is None or value <= high)
        if not ok:
            interval = f"{'>=' if include_low else '>'} {low}" + (f" and <= {high}" if high is not None else "")
            raise ConfigError(f"`{name}` must be {interval}. Received: {name}={value!r}.")

    def _check_components(self):
        """Settings that hold together: the backbone's weights, input size and
        preprocessing, unknown option names, then the values each component refuses
        when built."""
        from radtl import models
        from radtl.registry import RunContext

        if _CHECK_DATASET.get():
            self._check_dataset()
        if self.confounder:
            from radtl import confounders

            try:
                self.confounder = confounders.check(self.confounder)
            except ValueError as err:
                raise ConfigError(f"`confounder`: {err}") from None

        try:  # backbone x weights x image size x preprocessing
            models.check_build_arguments(self.backbone, self.weights, image_size=self.image_size,
                                         preprocessing=self.preprocessing)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        for field, name_field in OPTION_FIELDS.items():
            try:
                registry(name_field).check_options(getattr(self, name_field), getattr(self, field), key=field)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        # Build the cheap components once to let them check their option values (a head is
        # an unbuilt layer, a loss a small object, a schedule a callback); a component that
        # needs training data gets an empty stand-in (it reads the data only in `fit`).
        context = RunContext(num_classes=2, class_names=("a", "b"), train_data=(), steps_per_epoch=1,
                             epochs=self.epochs)
        for field, name_field in OPTION_FIELDS.items():
            reg = registry(name_field)
            name = getattr(self, name_field)
            try:
                reg.build(name, getattr(self, field), context)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"`{field}` of {name_field} {name!r}: {err}") from None

    def _check_dataset(self):
        """`dataset` is registered or imported into `data_dir`, and `fold` is one of its folds."""
        from radtl import data

        try:
            spec = data.get(self.dataset, self.data_dir)
            data.check_fold(self.fold, spec.num_folds, spec.name)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        except data.DataError as err:  # an unreadable import record
            raise ConfigError(f"`dataset` {self.dataset!r}: {err}") from None

    # ------------------------------------------------------------------ building
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def check_keys(cls, values, where: str = "config") -> None:
        """Raises `ConfigError` for keys that are not fields (listing the valid ones)."""
        if not isinstance(values, dict):
            raise ConfigError(f"A {where} must be a mapping of TrainConfig fields. Received: "
                              f"{type(values).__name__} {values!r}.")
        fields = cls.field_names()
        unknown = [k for k in values if k not in fields]
        if unknown:
            hint = "".join(did_you_mean(k, fields) for k in unknown)
            raise ConfigError(f"Unknown {where} keys {unknown}.{hint} Valid keys: {sorted(fields)}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Builds and validates a config from a dict of fields (unknown keys are an error)."""
        cls.check_keys(values)
        return cls(**values)

    @classmethod
    def recorded(cls, values: dict[str, Any]) -> "TrainConfig":
        """A config read back from a run directory: every check but the dataset's presence.

        A finished run predicts, and its predictions are analysed, where its dataset is
        not (an imported dataset lives in one data directory); commands that read the
        data open it and say so when it is missing.
        """
        token = _CHECK_DATASET.set(False)
        try:
            return cls.from_dict(values)
        finally:
            _CHECK_DATASET.reset(token)

    @classmethod
    def from_yaml(cls, path, overrides: dict | None = None) -> "TrainConfig":
        """Reads a YAML (or JSON) file of fields, applies `overrides` and validates.

        An override of a dict field (`head_options`, ...) updates the file's keys.

        Raises:
            ConfigError: the file is unreadable, not YAML, not a mapping, or holds an
                invalid setting; the message names the file.
        """
        values = load_yaml(path) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of TrainConfig fields (`key: value` lines). "
                              f"Received: {type(values).__name__}.")
        merged = dict(values)
        for key, value in (overrides or {}).items():  # dict fields merge key by key, as in sweeps
            both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = {**merged[key], **value} if both_dicts else value
        try:
            return cls.from_dict(merged)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated like a new config)."""
        return self.from_dict({**self.to_dict(), **changes})

    def differences(self, other: "TrainConfig") -> dict[str, tuple]:
        """Fields whose values differ: name -> (this value, other value)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (v, theirs[k]) for k, v in mine.items() if theirs[k] != v}


_FIELD_HINTS = typing.get_type_hints(TrainConfig)
