"""Study sweeps: expand a YAML grid into `TrainConfig`s and train every run, resumably.

`python cli.py sweep CONFIG.yaml [--runs-dir DIR] [--shard I/N] [--dry-run]` calls
`run_sweep`. Each run trains into `RUNS_DIR/<run name>/` with `radtl.train.run`; the
run-directory contract (`radtl.rundir.RunDir`) tells the sweep where each run
stands, so the same command, run again after a crash, a kill or a cluster
pre-emption, skips finished runs, resumes the unfinished one and starts the rest.

YAML format (examples in `configs/`, documented in `configs/README.md`):

```yaml
name: my_study                # optional; defaults to the file's stem
extends: other.yaml           # optional; a sweep file (relative to this one) to start from
base:                         # TrainConfig fields shared by every run
  dataset: radimagenet_acl
  epochs: 30
  head_options: {dropout: 0.5}
scenarios:                    # optional; named bundles of fields that vary together
  - {name: unfreezeall_lr1e-3, schedule: unfreezeall, learning_rate: 1.0e-3}
  - {name: freezeall_lr1e-2, schedule: freezeall, learning_rate: 1.0e-2}
grid:                         # field -> list of values; the runs are scenarios x grid
  backbone: [resnet50, densenet121]
  weights: [radimagenet, imagenet]
  fold: [1, 2, 3, 4, 5]
  seed: [0]
```

- Every run starts from `TrainConfig`'s defaults, then `base`, then its scenario, then
  its grid values. The dict fields (`head_options`, `schedule_options`,
  `loss_options`) merge key by key instead of being replaced. A field may be set by
  the scenarios or by the grid, not by both (for dict fields: not the same key).
- `extends`: the parent's `base` is merged with this file's (dict fields key by key),
  its `grid` is updated field by field, and its `scenarios` are replaced when this
  file gives its own.
- Numbers such as `1e-3` are read as floats (YAML 1.2), not as strings as PyYAML's
  YAML 1.1 reader would.
- Everything is validated before anything runs: each value's type (the
  `TrainConfig` annotation), registry names (`dataset`, `backbone`, `head`, `loss`,
  `schedule` must be in `radtl.<module>.names()`), and each run's complete
  `TrainConfig.from_dict`. Errors (`SweepConfigError`) name the YAML file, the entry
  (`base.fold`, `scenarios[2] 'lp-ft'.schedule`, `grid.backbone[1]`) and the valid
  keys or values.

Run names (`expand`): the parts that vary, in a fixed order that does not depend on
the order of the YAML keys: `dataset`, `backbone`, `weights`, the scenario name, the
other grid fields in `TrainConfig` order, then `fold` and `seed`, joined by `-` and
followed by the first 8 hex digits of the SHA-256 of the run's full config
(`TrainConfig.to_dict()`, sorted JSON), e.g.
`resnet50-radimagenet-unfreezeall_lr1e-3-fold1-seed0-1a2b3c4d`. Strings appear as
they are (a path as its file name), numbers after a short field name (`lr1e-05`
style: `fold1`, `seed0`, `lr0.001`, `bs64`), booleans as `augment_on`/`augment_off`,
dict values as their sorted `key value` pairs. Every grid field is named, even with a
single value, so a later grid that adds values keeps the existing names. The hash
makes names unique and ties a directory to one exact config: change any setting and
the run gets a new directory instead of clashing with the old one. Runs come in the
same order: itertools.product over the axes in the naming order.

Sharding (`shard`, `--shard I/N`, I from 1): round-robin, run k (0-based) belongs to
shard `k % N + 1`, so each job of an array gets a mix of backbones and folds rather
than all the slow ones. Every run belongs to exactly one shard; with a SLURM array
use `--shard $((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT`.

Provenance and mixing grids: the first sweep into `RUNS_DIR` writes
`RUNS_DIR/sweep.json` (the YAML texts, the resolved spec and every run's name and
config). A later sweep into the same `RUNS_DIR` compares its expanded grid with the
recorded one: the same grid (e.g. another shard, a resumed sweep) proceeds; a grid
that only adds runs (more seeds, another backbone) proceeds and rewrites
`sweep.json`, keeping the previous sources under `previous`; a grid that is a subset
of the recorded one proceeds and leaves `sweep.json` alone; anything else is an
error (`SweepMismatchError`) before any run starts, because two studies mixed in one
folder cannot be told apart by the analysis.

Data reuse: with the default runner, the runs of one sweep process run inside
`radtl.data.reuse()`, so runs with the same dataset, fold, data directory and image
size share one opened builder and its decoded images (`benchmarks/sweep_throughput.py`
measures the gain in runs per hour); `reuse_data=False` re-reads them per run.

Concurrency: while a run trains, its sweep holds an exclusive `flock` on
`RUNS_DIR/.locks/<run name>.lock` (released by the OS when the process ends, even on
SIGKILL). A second sweep into the same folder (a job relaunched while the first still
runs) skips a locked run as "busy" instead of training it twice into one directory.

Failures: a run that raises an `Exception` has its traceback written to
`RUN_DIR/error.txt`; the sweep goes on, and `SweepReport.exit_code` is 1 at the end.
`KeyboardInterrupt` and `SystemExit` stop the sweep at once (run it again to resume).
Multi-GPU training (`tf.distribute.MirroredStrategy`) is the runner's business.

Example:

```python
from radtl import sweep

runs = sweep.expand("configs/smoke.yaml")   # [(name, TrainConfig), ...]
report = sweep.run_sweep("configs/smoke.yaml", "runs/smoke", shard="1/2", dry_run=True)
report.planned                              # {name: "start" | "resume" | "skip"}
```
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import os
import re
import time
import traceback
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


from radtl.config import ConfigError, TrainConfig, load_yaml
from radtl._checks import did_you_mean
from radtl.rundir import RunDir, write_json

__all__ = [
    "SWEEP_FILE", "ERROR_FILE", "LOCK_DIR", "Sweep", "SweepConfigError", "SweepMismatchError", "SweepReport",
    "load", "expand", "config_hash", "shard", "parse_shard", "run_sweep",
]

#: Provenance file written into the runs directory.
SWEEP_FILE = "sweep.json"
#: Traceback of a failed run, in its run directory.
ERROR_FILE = RunDir.FILES["error"]
#: Folder of the runs directory holding one lock file per run being trained.
LOCK_DIR = ".locks"

_TOP_LEVEL_KEYS = ("name", "extends", "base", "scenarios", "grid")
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Fields whose values are dicts of options: they merge instead of being replaced.
_DICT_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig) if f.default_factory is dict)
# Naming and iteration order of the axes; the scenario axis comes after _NAME_FIRST.
_NAME_FIRST = ("dataset", "backbone", "weights")
_NAME_LAST = ("fold", "seed")
_SCENARIO_AXIS = "scenario"
# Short names of numeric fields (and common option keys) in run names.
_ABBREVIATIONS = {
    "learning_rate": "lr",
    "weight_decay": "wd",
    "batch_size": "bs",
    "image_size": "px",
    "min_lr_ratio": "minlr",
    "epochs": "ep",
    "momentum": "mom",
}
_HASH_DIGITS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


class SweepConfigError(ValueError):
    """A sweep YAML is malformed or holds an invalid field, value or name."""


class SweepMismatchError(RuntimeError):
    """The runs directory holds a sweep whose grid differs from the one requested."""


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A parsed sweep file (with `extends` resolved), before expansion.

    Attributes:
        name: str. Study name (`name:` or the file's stem).
        base: dict. TrainConfig fields shared by every run.
        scenarios: list of dicts. Named bundles (`name` plus fields); empty for none.
        grid: dict. Field -> list of values.
        source: str. The YAML file, for error messages.
        texts: tuple of (path, text). Every YAML file read, this one first.
    """

    name: str
    base: dict
    scenarios: list
    grid: dict
    source: str = "<sweep config>"
    texts: tuple = ()

    def spec(self) -> dict:
        """The resolved sweep as a plain dict (what `sweep.json` records)."""
        return {"name": self.name, "base": self.base, "scenarios": self.scenarios, "grid": self.grid}


@dataclasses.dataclass
class SweepReport:
    """What a sweep did (or, with `dry_run`, would do) with the runs of its shard.

    Attributes:
        runs_dir: Path. Where the run directories are.
        planned: dict. Run name -> "start", "resume" or "skip", in run order.
        done: list of str. Runs started and finished now.
        resumed: list of str. Unfinished runs resumed and finished now.
        skipped: list of str. Runs already finished.
        busy: list of str. Runs being trained by another process (locked).
        failed: dict. Run name -> one-line error (traceback in `RUN_DIR/error.txt`).
        dry_run: bool. Nothing was run.
    """

    runs_dir: Path
    planned: dict = dataclasses.field(default_factory=dict)
    done: list = dataclasses.field(default_factory=list)
    resumed: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    busy: list = dataclasses.field(default_factory=list)
    failed: dict = dataclasses.field(default_factory=dict)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """1 when a run failed, else 0: the CLI's exit status."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """A few lines: the counts, then each failed run and its error."""
        if self.dry_run:
            counts = {action: list(self.planned.values()).count(action)
                      for action in ("start", "resume", "skip", "skip (failed)")}
            return (f"Dry run, {len(self.planned)} runs in {self.runs_dir}: would start {counts['start']}, "
                    f"resume {counts['resume']}, skip {counts['skip']} finished and {counts['skip (failed)']} "
                    "failed.")
        lines = [f"Sweep into {self.runs_dir}: {len(self.done)} done, {len(self.resumed)} resumed, "
                 f"{len(self.skipped)} skipped, {len(self.busy)} busy elsewhere, {len(self.failed)} failed."]
        lines += [f"  FAILED {name}: {error}" for name, error in self.failed.items()]
        return "\n".join(lines)


# --- Loading and validation -------------------------------------------------------------------

def _fail(source, where, message) -> typing.NoReturn:
    raise SweepConfigError(f"{source}: {where}: {message}")


def _check_keys(keys, valid, source, where):
    for key in keys:
        if key not in valid:
            _fail(source, where, f"unknown key {key!r}.{did_you_mean(key, valid)} Valid keys: {sorted(valid)}")


def _check_value(field, value, source, where):
    """Validates one field value with `TrainConfig.check_field`; returns it normalised."""
    try:
        return TrainConfig.check_field(field, value)
    except ConfigError as err:
        _fail(source, where, str(err))


def _check_fields(mapping, source, where, extra_keys=()):
    """Validates a mapping of TrainConfig fields; returns it normalised."""
    if not isinstance(mapping, Mapping):
        _fail(source, where, f"must be a mapping of TrainConfig fields. Received: {mapping!r}")
    _check_keys(mapping, (*_FIELDS, *extra_keys), source, where)
    return {key: value if key in extra_keys else _check_value(key, value, source, f"{where}.{key}")
            for key, value in mapping.items()}


def _merge(into, changes):
    """`into` updated with `changes`; the dict fields merge key by key (an empty dict `{}`
    clears one, e.g. `confounder: {}` in a scenario), and a dotted key
    (`confounder.fraction`) sets one key of its dict field."""
    merged = dict(into)
    for key, value in changes.items():
        if "." in key:
            field, sub = key.split(".", 1)
            merged[field] = {**(merged.get(field) or {}), sub: value}
        else:
            merge = key in _DICT_FIELDS and key in merged and value != {}
            merged[key] = {**merged[key], **value} if merge else value
    return merged


def _read_yaml(path, seen):
    path = Path(path)
    if path.resolve() in seen:
        raise SweepConfigError(f"{path}: `extends` forms a cycle: {[str(p) for p in seen]}")
    try:
        text = path.read_text()
    except OSError as err:
        raise SweepConfigError(f"Cannot read sweep file {path}: {err.strerror or err}. Check the path.") from None
    try:
        raw = load_yaml(text=text)
    except ConfigError as err:
        raise SweepConfigError(f"{path}: {err}".replace("<text> ", "")) from None
    if not isinstance(raw, Mapping):
        raise SweepConfigError(f"{path}: a sweep file must be a mapping with keys {list(_TOP_LEVEL_KEYS)}. "
                               f"Received: {type(raw).__name__}")
    return path, text, raw


def _parse(raw, source, parent=None):
    """Builds a `Sweep` from a raw mapping (and the `Sweep` it extends)."""
    _check_keys(raw, _TOP_LEVEL_KEYS, source, "top level")
    base = _check_fields(raw.get("base") or {}, source, "base")
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        _fail(source, "grid", f"must be a mapping of field -> list of values. Received: {grid_raw!r}")
    _check_keys([key.split(".", 1)[0] for key in grid_raw], _FIELDS, source, "grid")
    grid = {}
    for field, values in grid_raw.items():
        if not isinstance(values, list) or not values:
            _fail(source, f"grid.{field}", f"must be a non-empty list of values. Received: {values!r}. "
                                           f"Write e.g. `{field}: [{values!r}]`")
        if "." in field:  # one key of a dict field, e.g. `confounder.fraction`: checked with the whole config
            if field.split(".", 1)[0] not in _DICT_FIELDS:
                _fail(source, f"grid.{field}", f"only the dict fields {sorted(_DICT_FIELDS)} take a dotted key "
                                               f"(field.key). Received: {field!r}")
            grid[field] = list(values)
            continue
        grid[field] = [_check_value(field, v, source, f"grid.{field}[{j}]") for j, v in enumerate(values)]
    scenarios_raw = raw.get("scenarios")
    scenarios = None
    if scenarios_raw is not None:
        if not isinstance(scenarios_raw, list) or not scenarios_raw:
            _fail(source, "scenarios", f"must be a non-empty list of mappings. Received: {scenarios_raw!r}")
        scenarios = []
        for i, entry in enumerate(scenarios_raw):
            label = entry.get("name") if isinstance(entry, Mapping) else None
            where = f"scenarios[{i}]" + (f" {label!r}" if label else "")
            if not isinstance(label, str) or not label:
                _fail(source, where, f"each scenario needs a `name` (a non-empty string). Received: {entry!r}")
            scenarios.append(_check_fields(entry, source, where, extra_keys=("name",)))
    if parent is not None:
        base = _merge(parent.base, base)
        grid = {**parent.grid, **grid}
        scenarios = parent.scenarios if scenarios is None else scenarios
    name = raw.get("name") or Path(source).stem
    if not isinstance(name, str):
        _fail(source, "name", f"must be a string. Received: {name!r}")
    sweep = Sweep(name=name, base=base, scenarios=scenarios or [], grid=grid, source=str(source))
    _check_axes(sweep)
    return sweep


def _check_axes(sweep):
    """Duplicate values or scenario names, and fields set by both scenarios and grid."""
    names = [s["name"] for s in sweep.scenarios]
    for label in names:
        if names.count(label) > 1:
            _fail(sweep.source, "scenarios", f"duplicate scenario name {label!r}: names must be unique.")
    for field, values in sweep.grid.items():
        canonical = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(canonical)) < len(canonical):
            _fail(sweep.source, f"grid.{field}", f"duplicate values in {values!r}: each run would appear twice.")
    for scenario in sweep.scenarios:
        for dotted in (key for key in sweep.grid if "." in key):
            field, sub = dotted.split(".", 1)
            if isinstance(scenario.get(field), Mapping) and sub in scenario[field]:
                _fail(sweep.source, f"scenarios {scenario['name']!r} and grid.{dotted}",
                      f"both set `{field}.{sub}`; set it in one place (a scenario field, or a grid axis).")
        for field in set(scenario) & set(sweep.grid):
            if field in _DICT_FIELDS:
                shared = set(scenario[field]) & set().union(*sweep.grid[field])
                if not shared:
                    continue
                detail = f"the keys {sorted(shared)} of `{field}`"
            else:
                detail = f"`{field}`"
            _fail(sweep.source, f"scenarios {scenario['name']!r} and grid.{field}",
                  f"both set {detail}; set it in one place (a scenario field, or a grid axis).")


def load(path) -> Sweep:
    """Reads and validates a sweep YAML file (following `extends`).

    Args:
        path: str or Path. The YAML file.

    Returns:
        A `Sweep`.

    Raises:
        SweepConfigError: a malformed file, unknown key or invalid value; the message
            names the file, the entry and the valid keys or values.
    """
    chain, seen = [], []
    current = Path(path)
    while True:
        file, text, raw = _read_yaml(current, seen)
        seen.append(file.resolve())
        chain.append((file, text, raw))
        parent = raw.get("extends")
        if parent is None:
            break
        if not isinstance(parent, str):
            _fail(file, "extends", f"must be the path of another sweep file. Received: {parent!r}")
        current = file.parent / parent
    sweep = None
    for file, _, raw in reversed(chain):  # the root ancestor first
        sweep = _parse(raw, file, parent=sweep)
    return dataclasses.replace(sweep, texts=tuple((str(f), t) for f, t, _ in chain))


def _as_sweep(sweep_config) -> Sweep:
    if isinstance(sweep_config, Sweep):
        return sweep_config
    if isinstance(sweep_config, (str, os.PathLike)):
        return load(sweep_config)
    if isinstance(sweep_config, Mapping):
        if "extends" in sweep_config:
            raise SweepConfigError("`extends` needs a file to resolve the path against: pass the YAML path "
                                   "to `expand`/`load` instead of a mapping.")
        return _parse(sweep_config, "<sweep config>")
    raise SweepConfigError(f"A sweep config must be a YAML path, a mapping or a `Sweep`. "
                           f"Received: {type(sweep_config).__name__}")


# --- Expansion --------------------------------------------------------------------------------

def _format_number(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2), text)


def _name_part(field, value) -> str:
    """The readable piece of a run name for one field value."""
    short = _ABBREVIATIONS.get(field, field)
    if isinstance(value, Mapping):
        return "_".join(_name_part(k, v) for k, v in sorted(value.items())) or f"{field}_default"
    if isinstance(value, bool):
        return f"{short}_{'on' if value else 'off'}"
    if isinstance(value, (int, float)):
        return f"{short}{_format_number(value)}"
    if value is None:
        return "none"
    return _UNSAFE.sub("_", str(value).replace("\\", "/").rsplit("/", 1)[-1])


def config_hash(config: TrainConfig) -> str:
    """First 8 hex digits of the SHA-256 of the config's sorted JSON."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_DIGITS]


def _axes(sweep):
    """[(axis, [(scenario name or None, overrides), ...])] in naming and iteration order."""
    def grid_axis(field):
        return field, [(None, {field: value}) for value in sweep.grid[field]]

    first = [grid_axis(f) for f in _NAME_FIRST if f in sweep.grid]
    last = [grid_axis(f) for f in _NAME_LAST if f in sweep.grid]
    middle = [grid_axis(f) for f in _FIELDS if f in sweep.grid and f not in _NAME_FIRST + _NAME_LAST]
    middle += [grid_axis(f) for f in sorted(sweep.grid) if "." in f]
    scenario = []
    if sweep.scenarios:
        scenario = [(_SCENARIO_AXIS, [(s["name"], {k: v for k, v in s.items() if k != "name"})
                                      for s in sweep.scenarios])]
    return first + scenario + middle + last


def _axis_part(axis, label, overrides, config) -> str:
    """The name part of one axis entry; grid values are read back from the validated config,
    so `weights: none` and `weights: null` give the same name. Dict axes name the grid's own
    keys, not the options merged in from `base`."""
    if axis == _SCENARIO_AXIS:
        return _name_part(axis, label)
    if "." in axis:
        return _name_part(axis.split(".", 1)[1], overrides[axis])
    return _name_part(axis, overrides[axis] if axis in _DICT_FIELDS else getattr(config, axis))


def expand(sweep_config) -> list[tuple[str, TrainConfig]]:
    """Expands a sweep into its runs: scenarios x grid, in a deterministic order.

    Args:
        sweep_config: a YAML path, a mapping in the sweep format, or a `Sweep`.

    Returns:
        list of (run name, TrainConfig); names as in the module docstring, unique.

    Raises:
        SweepConfigError: an invalid sweep, a run whose combined config is invalid, or
            two runs with identical configs.

    Example:

    >>> runs = expand({"base": {"epochs": 1}, "grid": {"fold": [1, 2], "seed": [0]}})
    >>> [name.rsplit("-", 1)[0] for name, _ in runs]
    ['fold1-seed0', 'fold2-seed0']
    """
    sweep = _as_sweep(sweep_config)
    axes = _axes(sweep)
    runs, by_hash = [], {}
    for combination in itertools.product(*[entries for _, entries in axes]):
        values = dict(sweep.base)
        for _, overrides in combination:
            values = _merge(values, overrides)
        where = ", ".join(f"{axis}={label if label is not None else overrides[axis]!r}"
                          for (axis, _), (label, overrides) in zip(axes, combination))
        try:
            config = TrainConfig.from_dict(values)
        except (TypeError, ValueError) as err:
            _fail(sweep.source, f"run ({where})", str(err))
        digest = config_hash(config)
        parts = [_axis_part(axis, label, overrides, config)
                 for (axis, _), (label, overrides) in zip(axes, combination)]
        name = "-".join([*parts, digest])
        if digest in by_hash:
            _fail(sweep.source, f"run ({where})", f"same config as run {by_hash[digest]}; remove the "
                                                  f"duplicate scenario or grid value.")
        by_hash[digest] = name
        runs.append((name, config))
    return runs


# --- Sharding ---------------------------------------------------------------------------------

def parse_shard(text) -> tuple[int, int]:
    """Parses `"I/N"` (1-based) into `(i, n)`.

    Raises:
        ValueError: not two integers with 1 <= I <= N.

    Example:

    >>> parse_shard("2/8")
    (2, 8)
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"`shard` must be I/N with integers 1 <= I <= N, e.g. 2/8 for the second of 8 jobs. "
                         f"Received: shard={text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    _check_shard(i, n)
    return i, n


def _check_shard(i, n):
    if not (isinstance(i, int) and isinstance(n, int) and 1 <= i <= n):
        raise ValueError(f"`shard` must satisfy 1 <= i <= n (i counts from 1). Received: i={i!r}, n={n!r}. "
                         f"For a SLURM array use $((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT.")


def shard(runs, i, n) -> list:
    """The runs of shard `i` of `n` (1-based), round-robin: runs `i-1, i-1+n, i-1+2n, ...`.

    Every run lands in exactly one shard; with more shards than runs some are empty.

    Example:

    >>> shard(list("abcde"), 2, 2)
    ['b', 'd']
    """
    _check_shard(i, n)
    return list(runs)[i - 1::n]


_shard_runs = shard  # `run_sweep` has an argument named `shard`


# --- Running ----------------------------------------------------------------------------------

def _manifest(sweep, runs):
    from radtl import __version__

    return {
        "name": sweep.name,
        "radtl_version": __version__,
        "sources": [{"path": p, "text": t} for p, t in sweep.texts],
        "spec": sweep.spec(),
        "runs": [{"name": name, "config": config.to_dict()} for name, config in runs],
    }


def _reconcile_manifest(path, manifest):
    """Compares with a recorded sweep.json; returns the manifest to write, or None to keep it."""
    if not path.exists():
        return manifest
    recorded = json.loads(path.read_text())
    old = {r["name"]: r["config"] for r in recorded.get("runs", [])}
    new = {r["name"]: r["config"] for r in manifest["runs"]}
    only_old = [n for n in old if n not in new]
    only_new = [n for n in new if n not in old]
    if not only_old and not only_new:
        return manifest
    if not only_old:  # the new grid extends the recorded one
        print(f"{path}: the grid adds {len(only_new)} runs to the {len(old)} recorded; updating it.", flush=True)
        return {**manifest, "previous": [*recorded.get("previous", []),
                                         {"sources": recorded.get("sources"), "runs": len(old)}]}
    if not only_new:  # a subset of the recorded grid: keep the record of the whole study
        return None
    sources = [s["path"] for s in recorded.get("sources", [])]
    raise SweepMismatchError(
        f"{path} records a different sweep (from {sources}): {len(only_old)} of its runs are not in the new grid "
        f"(e.g. {only_old[:2]}) and {len(only_new)} new runs are not in it (e.g. {only_new[:2]}). Mixing two "
        f"studies in one runs directory would make the analysis ambiguous. Fix: pass another runs directory "
        f"(--runs-dir), or move {path} away to start a new study there (finished run directories whose "
        f"config is unchanged are still skipped).")


def _default_runner():
    try:
        from radtl import train
    except ImportError as err:
        raise ImportError(f"The default runner `radtl.train.run` cannot be imported ({err}). Install radtl with "
                          f"its training module, or pass `runner=` a function (config, run_dir, *, resume).") from err
    return train.run


def _clear_stale(run_dir):
    """Removes a previous attempt's error.txt; removes the directory if nothing else is left."""
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _format_seconds(seconds) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def run_sweep(config_path, runs_dir=None, *, shard=None, runner: Callable | None = None,
              dry_run=False, reuse_data: bool | None = None) -> SweepReport:
    """Trains every run of a sweep (or of one shard of it), skipping and resuming as needed.

    For each run of the shard, in order: a finished run directory (`metrics.json`) is
    skipped; an unfinished one (`config.json`, no `metrics.json`) is resumed with
    `runner(config, run_dir, resume=True)`; otherwise the run starts with
    `runner(config, run_dir, resume=False)`. Progress goes to stdout as
    `[k/K] name ... started|resumed|skipped|done|FAILED`.

    Args:
        config_path: str or Path. The sweep YAML (see the module docstring).
        runs_dir: str, Path or None. Parent of the run directories; `None` means
            `runs/<sweep name>`. Defaults to `None`.
        shard: None, "I/N" or (i, n). Only this shard's runs (see `shard`). Defaults to
            `None` (all runs).
        runner: callable or None. `runner(config, run_dir, *, resume)` trains one run
            and writes the run-directory files, `metrics.json` last. `None` uses
            `radtl.train.run`, imported when first needed. Defaults to `None`.
        dry_run: bool. Validate and print the plan; run and write nothing. Defaults to
            `False`.
        reuse_data: bool or None. True runs the runs inside `radtl.data.reuse()`: runs
            with the same dataset, fold, data directory and image size share one opened
            TFDS builder and its decoded images instead of re-reading them per run (the
            batches each run sees are unchanged). False opens and decodes afresh for
            every run (less memory held between runs). None: True with the default
            runner, False with a custom `runner` (which may not read through
            `radtl.data`; its sweep then never imports TensorFlow). Defaults to `None`.

    Returns:
        A `SweepReport`; its `exit_code` is 1 when a run failed.

    Raises:
        SweepConfigError: an invalid sweep file (before anything runs).
        SweepMismatchError: `runs_dir` holds a different study (before anything runs).
        ValueError: an invalid `shard`.
    """
    sweep = load(config_path)
    runs = expand(sweep)
    runs_dir = Path(runs_dir) if runs_dir is not None else Path("runs") / sweep.name
    i, n = parse_shard(shard) if isinstance(shard, str) else (shard or (1, 1))
    mine = _shard_runs(runs, i, n)
    manifest = _reconcile_manifest(runs_dir / SWEEP_FILE, _manifest(sweep, runs))
    report = SweepReport(runs_dir=runs_dir, dry_run=dry_run)
    actions = {"finished": "skip", "failed": "skip (failed)", "unfinished": "resume", "new": "start"}
    report.planned = {name: actions[RunDir(runs_dir / name).status] for name, _ in mine}
    print(f"Sweep {sweep.name!r} ({config_path}): {len(runs)} runs, shard {i}/{n}: {len(mine)} runs "
          f"-> {runs_dir}" + (" [dry run]" if dry_run else ""), flush=True)
    if dry_run:
        for k, (name, action) in enumerate(report.planned.items(), 1):
            print(f"[{k}/{len(mine)}] {name} ... would {action}", flush=True)
        print(report.summary(), flush=True)
        return report
    runs_dir.mkdir(parents=True, exist_ok=True)
    if manifest is not None:
        write_json(runs_dir / SWEEP_FILE, manifest)
    if reuse_data is None:
        reuse_data = runner is None
    to_run = any(a in ("start", "resume") for a in report.planned.values())
    if runner is None and to_run:
        runner = _default_runner()
    with _data_reuse(reuse_data and to_run):
        for k, (name, config) in enumerate(mine, 1):
            _run_one(f"[{k}/{len(mine)}] {name}", config, runs_dir / name, runner, report, name)
    print(report.summary(), flush=True)
    return report


@contextlib.contextmanager
def _data_reuse(enabled):
    """`radtl.data.reuse()` around the runs when `enabled` (radtl.data, and so
    TensorFlow, is imported only then)."""
    if not enabled:
        yield
        return
    from radtl import data

    with data.reuse():
        yield


@contextlib.contextmanager
def _lock(runs_dir, name):
    """Yields True while this process holds the run's lock, False if another one does."""
    path = runs_dir / LOCK_DIR / f"{name}.lock"
    path.parent.mkdir(exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _run_one(label, config, run_dir, runner, report, name):
    """Skips, resumes or starts one run (under its lock) and records the outcome in `report`."""
    with _lock(run_dir.parent, name) as acquired:
        if not acquired:
            print(f"{label} ... busy (another process is training it)", flush=True)
            report.busy.append(name)
            return
        _run_locked(label, config, run_dir, runner, report, name)


def _run_locked(label, config, run_dir, runner, report, name):
    run = RunDir(run_dir)
    state = run.status  # again: another process may have finished it meanwhile
    if state == "finished":
        print(f"{label} ... skipped (finished)", flush=True)
        report.skipped.append(name)
        return
    if state == "failed":  # diverged or collapsed: deterministic, so not retried
        reason = run.read_failure()["reason"]
        print(f"{label} ... FAILED earlier, not retried: {reason} (delete {run_dir} to retry)", flush=True)
        report.failed[name] = reason
        return
    resume = state == "unfinished"
    if run_dir.exists():
        _clear_stale(run_dir)
    print(f"{label} ... {'resumed' if resume else 'started'}", flush=True)
    start = time.monotonic()
    try:
        runner(config, run_dir, resume=resume)
        if run.status != "finished":
            raise RuntimeError(f"the runner returned without writing {run.file('metrics')}; "
                               f"a runner must write the run-directory files, metrics.json last.")
    except Exception as err:  # noqa: BLE001 - record it, go on with the next run
        run.write_error(traceback.format_exc())
        failure = run.read_failure()
        message = failure["reason"] if failure else f"{type(err).__name__}: {err}".splitlines()[0]
        report.failed[name] = message
        print(f"{label} ... FAILED after {_format_seconds(time.monotonic() - start)}: {message} "
              f"(traceback in {run_dir / ERROR_FILE})", flush=True)
        return
    (report.resumed if resume else report.done).append(name)
    print(f"{label} ... done in {_format_seconds(time.monotonic() - start)}", flush=True)
