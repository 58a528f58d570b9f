"""One registry helper for every named component: backbones, heads, losses, schedules, datasets.

A `Registry` maps a name to an entry (a class, a factory or a spec). Entries that
are built from options can declare the run context they need (`context=`): the
trainer passes one `RunContext` and the registry hands each entry only the fields
it declared, so the trainer never tests names or sniffs constructors.

Pure Python: no TensorFlow import.

Example:

>>> losses = Registry("loss")
>>> @losses.register("hard")
... class Hard:
...     def __init__(self, weight=1.0):
...         self.weight = weight
>>> losses.names()
['hard']
>>> losses.build("hard", {"weight": 2.0}).weight
2.0
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Iterable

from radtl._checks import did_you_mean

__all__ = ["Registry", "RunContext"]


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a run knows that a component may need when it is built.

    Attributes:
        num_classes: int or None. K, the number of classes.
        class_names: tuple of str or None. The dataset's class names, index order.
        train_data: a `tf.data.Dataset` of (images, labels) training batches, or None.
        steps_per_epoch: int or None. Training batches per epoch.
        epochs: int or None. Planned training epochs.
    """

    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    train_data: Any = None
    steps_per_epoch: int | None = None
    epochs: int | None = None


_CONTEXT_FIELDS = tuple(f.name for f in dataclasses.fields(RunContext))


@dataclasses.dataclass(frozen=True)
class _Entry:
    value: Any
    fixed: dict  # options the name fixes (e.g. "g-lf" fixes order="last_to_first")
    context: tuple  # RunContext fields passed to the factory as keyword arguments


class Registry:
    """Names -> entries, with keras-style errors for unknown names and options.

    Args:
        kind: str. What the entries are, for messages and as the config key
            (e.g. "backbone", "schedule").
        case_sensitive: bool. If False, names are looked up in lower case.
            Defaults to True.
    """

    def __init__(self, kind: str, *, case_sensitive: bool = True):
        self.kind = kind
        self.case_sensitive = case_sensitive
        self._entries: dict[str, _Entry] = {}

    def _key(self, name) -> str:
        return str(name) if self.case_sensitive else str(name).lower()

    def register(self, name: str, value: Any = None, *, fixed: dict | None = None,
                 context: Iterable[str] = ()):
        """Registers `value` as `name`; without `value`, returns a decorator.

        Args:
            name: str. The registry name.
            value: the entry (class, factory or spec).
            fixed: dict. Options the name fixes; passing them again is an error.
            context: iterable of `RunContext` field names the factory takes as
                keyword arguments (e.g. ("train_data",) for Auto-RGN).
        """
        context = tuple(context)
        unknown = sorted(set(context) - set(_CONTEXT_FIELDS))
        if unknown:
            raise ValueError(f"`context` must name RunContext fields {list(_CONTEXT_FIELDS)}. Received: {unknown}")

        def add(entry):
            key = self._key(name)
            if key in self._entries:
                raise ValueError(f"A {self.kind} named {key!r} is already registered.")
            self._entries[key] = _Entry(entry, dict(fixed or {}), context)
            return entry

        return add if value is None else add(value)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name) -> bool:
        return self._key(name) in self._entries

    def __iter__(self):
        return iter(self._entries)

    def check_name(self, name) -> str:
        """Returns the lookup key of `name`; an unknown name raises, listing the valid ones."""
        key = self._key(name)
        if key not in self._entries:
            raise ValueError(f"`{self.kind}` must be one of {self.names()}. Received: {self.kind}={name!r}."
                             f"{did_you_mean(key, self._entries)}")
        return key

    def get(self, name) -> Any:
        """The entry registered as `name`."""
        return self._entries[self.check_name(name)].value

    def fixed(self, name) -> dict:
        """Options that the name `name` fixes."""
        return dict(self._entries[self.check_name(name)].fixed)

    def context_fields(self, name) -> tuple[str, ...]:
        """The `RunContext` fields the entry `name` needs."""
        return self._entries[self.check_name(name)].context

    def option_names(self, name) -> list[str] | None:
        """Keyword options the entry accepts (None: it takes any `**kwargs`).

        Context fields and the options the name fixes are not options.
        """
        entry = self._entries[self.check_name(name)]
        target = entry.value.__init__ if inspect.isclass(entry.value) else entry.value
        parameters = list(inspect.signature(target).parameters.values())
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        taken = {"self", *entry.context, *entry.fixed}
        return [p.name for p in parameters
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in taken]

    def check_options(self, name, options: dict | None, *, key: str | None = None) -> None:
        """Raises for options the entry `name` does not take (or that its name fixes).

        Args:
            name: str. The registry name.
            options: dict of keyword options.
            key: str. The config key the options come from, for the message
                (default: "<kind>_options").
        """
        key = key or f"{self.kind}_options"
        options = dict(options or {})
        if not isinstance(options, dict):
            raise ValueError(f"`{key}` must be a mapping of option names to values. Received: {key}={options!r}")
        reg_key = self.check_name(name)
        fixed = self._entries[reg_key].fixed
        clash = sorted(set(fixed) & set(options))
        if clash:
            raise ValueError(f"{self.kind.capitalize()} {reg_key!r} fixes {fixed}; remove {clash} from `{key}`.")
        from_run = sorted(set(options) & set(self._entries[reg_key].context))
        if from_run:
            raise ValueError(f"Unknown `{key}` {from_run} for {self.kind} {reg_key!r}: the run provides "
                             f"{from_run} (e.g. the dataset's number of classes); remove them from `{key}`. "
                             f"Received: {key}={options!r}")
        valid = self.option_names(name)
        if valid is None:
            return
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"Unknown `{key}` {unknown} for {self.kind} {reg_key!r}. Valid options: {sorted(valid)}. "
                             f"Received: {key}={options!r}")

    def build(self, name, options: dict | None = None, context: RunContext | None = None, **extra) -> Any:
        """Calls the entry `name` with its fixed options, `options`, `extra` and its context fields.

        Raises:
            ValueError: an unknown name, an option the name fixes, or a context
                field the entry needs that `context` does not have.
        """
        reg_key = self.check_name(name)
        entry = self._entries[reg_key]
        options = dict(options or {})
        clash = sorted(set(entry.fixed) & set(options))
        if clash:
            raise ValueError(f"{self.kind.capitalize()} {reg_key!r} fixes {entry.fixed}; do not pass {clash}. "
                             f"Received: {', '.join(f'{k}={options[k]!r}' for k in clash)}")
        needed = {}
        for field in entry.context:
            value = getattr(context, field, None) if context is not None else None
            if value is None:  # an empty stand-in (e.g. `train_data=()` to check options) is a value
                raise ValueError(f"{self.kind.capitalize()} {reg_key!r} needs the run context's `{field}`; "
                                 f"pass `context=RunContext({field}=...)`.")
            needed[field] = value
        factory: Callable = entry.value
        return factory(**entry.fixed, **extra, **options, **needed)
