"""Patient-grouped, stratified train/val/test folds, and the split CSVs that hold them.

An imported image collection is split once, deterministically for a seed, and the split is
written as plain CSV files beside the dataset, so it can be reviewed, shared and rebuilt
exactly. The same files are the input of `radtl data import --splits DIR`, which also reads
the RadImageNet `dataframe/` format of the official downstream tasks.

Folds (`make_folds`):

* test fold k (k = 1..K) is fold k of scikit-learn's `StratifiedGroupKFold(n_splits=K,
  shuffle=True, random_state=seed)` over the labels and groups: every group (patient or exam)
  lies in exactly one test fold, and each test fold holds about 1/K of every class;
* validation is taken from the other K - 1 folds by group: fold 1 of a second
  `StratifiedGroupKFold(n_splits=n_val, shuffle=True, random_state=seed + k)` on those items,
  with n_val = round(1 / val_fraction). So `val_fraction` is rounded to 1/n of the non-test
  part (0.15 -> n_val = 7 -> val is 1/7 = 14.3 % of the rest, about 11 % of all images);
* train is the rest. Groups with different labels on their images are allowed (each image
  keeps its own label; the group stays in one split); `mixed_label_groups` finds them so the
  caller can warn.

Split files (`write_split_csvs`, `read_split_csvs`): `train_fold{k}.csv`, `val_fold{k}.csv`,
`test_fold{k}.csv` with the columns `filename,label,group` (RadImageNet's columns plus the
group), one row per image sorted by filename, UTF-8 with '\\n' line endings. The reader also
accepts a name prefix (`breast_test_fold1.csv`), RadImageNet's column names (`img_dir`,
`acl_label`) and single `train.csv`/`val.csv`/`test.csv` files (one fold).

Pure Python + numpy/pandas/scikit-learn: no TensorFlow import.

Example:

>>> items = [Item(f"p{p:02d}_{i}.png", "tear" if p % 3 == 0 else "normal", f"p{p:02d}")
...          for p in range(30) for i in range(2)]
>>> folds = make_folds(items, folds=3, val_fraction=0.25, seed=0)
>>> len(folds), sum(len(f["test"]) for f in folds)
(3, 60)
>>> {item.group for item in folds[0]["test"]} & {item.group for item in folds[0]["train"]}
set()
"""
from __future__ import annotations

import collections
import dataclasses
import os
import posixpath
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from radtl import _checks

__all__ = ["SplitError", "SPLITS", "Item", "Fold", "make_folds", "mixed_label_groups",
           "write_split_csvs", "read_split_csvs", "read_list", "split_sizes", "normalise_path",
           "default_group"]

SPLITS = ("train", "val", "test")
"""The splits of one fold, in file and metadata order."""

COLUMNS = ("filename", "label", "group")
"""The columns `write_split_csvs` writes, in order."""

PATH_COLUMNS = ("filename", "img_dir", "path", "image")
"""Path column names `read_split_csvs` recognises, the first present wins."""

_FOLD_FILE = re.compile(r"^(?:(?P<prefix>.+)_)?(?P<split>train|val|test)_fold(?P<fold>\d+)\.csv$")
_SINGLE_FILE = re.compile(r"^(?:(?P<prefix>.+)_)?(?P<split>train|val|test)\.csv$")


class SplitError(ValueError):
    """A split cannot be made or read; the message names the file, row or class and the fix."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a collection.

    Attributes:
        filename: str, the path relative to the image root, '/'-separated, as written in the
            split CSV (e.g. `images/0001_sagittal_3.000000.png`).
        label: str, the class name.
        group: str, the grouping unit (patient or exam id); all images of a group share a split.
    """
    filename: str
    label: str
    group: str


Fold = dict[str, list[Item]]
"""One fold: `{"train": [Item, ...], "val": [...], "test": [...]}`, each list sorted by filename."""


# ---------------------------------------------------------------------------------------------
# Making folds
# ---------------------------------------------------------------------------------------------

def _checked(check, *args, fix: str, **kwargs) -> None:
    """Runs a `radtl._checks` function and re-raises its message as a `SplitError` with `fix`."""
    try:
        check(*args, **kwargs)
    except ValueError as error:
        raise SplitError(f"{error}. {fix}") from None


def _groups_per_class(labels: np.ndarray, groups: np.ndarray) -> dict[str, int]:
    """Number of distinct groups holding at least one image of each class, by class name."""
    pairs = set(zip(labels.tolist(), groups.tolist()))
    counts = collections.Counter(label for label, _ in pairs)
    return {label: counts[label] for label in sorted(counts)}


def _val_fraction_for(groups: int) -> float | None:
    """The smallest `val_fraction` (two decimals, < 0.5) whose n_val is at most `groups`."""
    for hundredths in range(1, 50):
        if max(2, round(100 / hundredths)) <= groups:
            return hundredths / 100
    return None


def _group_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    """The test index arrays of `StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)`."""
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros((len(labels), 1)), labels, groups)]


def _require_every_class(classes, labels: np.ndarray, where: str, seed: int) -> None:
    missing = sorted(set(classes) - set(labels.tolist()))
    if missing:
        raise SplitError(
            f"{where} has no image of class {', '.join(map(repr, missing))}: the group-wise "
            f"stratification could not spread that class over every split with seed={seed}. "
            "Fix: try another --seed, fewer --folds or a larger --val-fraction, or add data.")


def make_folds(items: Sequence[Item], *, folds: int = 5, val_fraction: float = 0.15,
               seed: int = 0) -> list[Fold]:
    """Splits items into `folds` patient-grouped, stratified train/val/test folds.

    Test fold k (k = 1..folds) is fold k of `StratifiedGroupKFold(n_splits=folds,
    shuffle=True, random_state=seed)`; the val split of fold k is the first fold of
    `StratifiedGroupKFold(n_splits=n_val, shuffle=True, random_state=seed + k)` over the
    items outside test fold k, with n_val = round(1 / val_fraction); train is the rest. So
    `val_fraction` is rounded to 1/n_val of the non-test part (0.15 -> 1/7 of it).

    The items are sorted by filename first, so the folds depend only on the set of items
    and the seed, not on the input order. A group never spans two splits of a fold, and
    the K test folds partition the items. Groups whose images carry different labels are
    split like any other group (see `mixed_label_groups`).

    Args:
        items: the images, one `Item` each; filenames must be unique.
        folds: int >= 2, the number of folds K (default 5). A single given split is read
            with `read_split_csvs` (`--splits DIR`) instead.
        val_fraction: float in (0, 0.5), the approximate fraction of the non-test part
            used for validation (default 0.15).
        seed: int >= 0, the random state (default 0).

    Returns:
        `folds` dicts `{"train": [...], "val": [...], "test": [...]}` of `Item`s, each
        list sorted by filename.

    Raises:
        SplitError: bad arguments, duplicate filenames, fewer than 2 classes, a class with
            fewer groups than `folds` (or, outside a test fold, than n_val), or a split
            left without some class.
    """
    _checked(_checks.check_int, "folds", folds, 2,
             fix="Fix: use --folds 2 or more; for a single given train/val/test split, "
                 "pass --splits DIR with train.csv, val.csv and test.csv.")
    _checked(_checks.check_number, "val_fraction", val_fraction, 0.0, 0.5,
             include_low=False, include_high=False,
             fix="Fix: radtl needs a validation split; pass e.g. --val-fraction 0.15.")
    _checked(_checks.check_int, "seed", seed, 0, fix="Fix: pass a non-negative --seed.")
    n_val = max(2, round(1 / val_fraction))

    for item in items:
        if not isinstance(item, Item):
            raise SplitError(f"make_folds needs radtl.splits.Item objects. Received: {item!r}")
    items = sorted(items, key=lambda item: item.filename)
    counts = collections.Counter(item.filename for item in items)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise SplitError(
            f"{len(duplicates)} filename(s) occur more than once, e.g. {duplicates[0]!r} "
            f"({counts[duplicates[0]]} times). Fix: list each image once.")

    labels = np.array([item.label for item in items], dtype=object)
    groups = np.array([item.group for item in items], dtype=object)
    per_class = _groups_per_class(labels, groups)
    classes = list(per_class)
    if len(classes) < 2:
        raise SplitError(
            f"A classification split needs at least 2 classes. Received: {len(items)} images "
            f"with labels {classes}. Fix: check the label column or the class folders.")
    for label, count in per_class.items():
        if count < folds:
            raise SplitError(
                f"Class {label!r} has images from {count} group(s), fewer than the {folds} "
                "folds: every test fold needs a group of every class. Fix: "
                + (f"use --folds {count} or fewer, or add data of that class." if count >= 2
                   else "add data of that class (at least 2 groups), or drop the class."))

    tests = _group_folds(labels, groups, folds, seed)
    rests = []
    for k, test in enumerate(tests, start=1):
        _require_every_class(classes, labels[test], f"Test fold {k}", seed)
        rest = np.setdiff1d(np.arange(len(items)), test)
        rests.append(rest)
    worst = min((_groups_per_class(labels[rest], groups[rest]).get(label, 0), label, k)
                for k, rest in enumerate(rests, start=1) for label in classes)
    if worst[0] < n_val:
        count, label, k = worst
        suggestion = _val_fraction_for(count)
        fix = (f"a larger --val-fraction (--val-fraction {suggestion} gives n_val <= {count}), "
               if suggestion is not None else "")
        raise SplitError(
            f"Outside test fold {k}, class {label!r} has images from {count} group(s), fewer "
            f"than the n_val = {n_val} validation folds that val_fraction={val_fraction} "
            f"implies (val = 1/{n_val} of the non-test groups). Fix: {fix}fewer --folds, or "
            "add data of that class.")

    result = []
    for k, (test, rest) in enumerate(zip(tests, rests), start=1):
        val = rest[_group_folds(labels[rest], groups[rest], n_val, seed + k)[0]]
        train = np.setdiff1d(rest, val)
        _require_every_class(classes, labels[val], f"The val split of fold {k}", seed)
        _require_every_class(classes, labels[train], f"The train split of fold {k}", seed)
        indices = {"train": train, "val": np.sort(val), "test": np.sort(test)}
        result.append({split: [items[i] for i in indices[split]] for split in SPLITS})
    return result


def mixed_label_groups(items: Sequence[Item]) -> dict[str, list[str]]:
    """Groups whose images carry more than one label.

    Args:
        items: `Item`s.

    Returns:
        `{group: sorted distinct labels}` for the groups with more than one label only,
        ordered by group.
    """
    labels = collections.defaultdict(set)
    for item in items:
        labels[item.group].add(item.label)
    return {group: sorted(labels[group]) for group in sorted(labels) if len(labels[group]) > 1}


def split_sizes(folds: Sequence[Fold]) -> list[dict[str, int]]:
    """Number of images per split of each fold: `[{"train": n, "val": n, "test": n}, ...]`."""
    return [{split: len(fold[split]) for split in SPLITS} for fold in folds]


# ---------------------------------------------------------------------------------------------
# Split CSV files
# ---------------------------------------------------------------------------------------------

def _split_files(directory: Path) -> dict[str, dict]:
    """The split files in `directory`: `{name: regex match groupdict}` per kind (fold/single)."""
    found = {"fold": {}, "single": {}}
    for path in sorted(directory.iterdir()):
        for kind, pattern in (("fold", _FOLD_FILE), ("single", _SINGLE_FILE)):
            match = pattern.match(path.name)
            if match and path.is_file():
                found[kind][path.name] = match.groupdict()
    return found


def _write_csv(path: Path, items: Sequence[Item]) -> None:
    """Writes `items` to `path` through a temporary file and a rename (mode 0644)."""
    frame = pd.DataFrame([dataclasses.astuple(item) for item in items], columns=list(COLUMNS))
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False, encoding="utf-8", newline="") as tmp:
        try:
            frame.to_csv(tmp, index=False, lineterminator="\n")
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def write_split_csvs(directory, folds: Sequence[Fold]) -> list[Path]:
    """Writes folds as `train_fold{k}.csv`, `val_fold{k}.csv`, `test_fold{k}.csv` (k = 1..K).

    Columns `filename,label,group`, one row per image sorted by filename, UTF-8, '\\n' line
    endings; each file is written through a temporary file and a rename. `read_split_csvs`
    reads them back into equal folds.

    Args:
        directory: str or path-like; created if missing. It must not hold other split files
            (`*train_fold3.csv`, `*val.csv`, ...) that would be read with these.
        folds: `Fold` dicts with the keys "train", "val" and "test".

    Returns:
        The written paths in (fold, split) order: train_fold1, val_fold1, test_fold1, ...

    Raises:
        SplitError: no folds, a fold without one of the splits, or stale split files.
    """
    directory = Path(directory)
    if not folds:
        raise SplitError("write_split_csvs needs at least one fold. Received: folds=[]")
    for k, fold in enumerate(folds, start=1):
        if set(fold) != set(SPLITS):
            raise SplitError(f"Fold {k} must have exactly the splits {list(SPLITS)}. "
                             f"Received: {sorted(fold)}")
    names = [f"{split}_fold{k}.csv" for k in range(1, len(folds) + 1) for split in SPLITS]
    directory.mkdir(parents=True, exist_ok=True)
    found = _split_files(directory)
    stale = sorted((set(found["fold"]) | set(found["single"])) - set(names))
    if stale:
        raise SplitError(
            f"{directory} already holds split files that would be read with the new ones: "
            f"{', '.join(stale)}. Fix: write into an empty directory or delete those files.")
    paths = []
    for k, fold in enumerate(folds, start=1):
        for split in SPLITS:
            path = directory / f"{split}_fold{k}.csv"
            _write_csv(path, sorted(fold[split], key=lambda item: item.filename))
            paths.append(path)
    return paths


def normalise_path(filename: str, where: str) -> str:
    """An image path as split lists hold it: relative, '/'-separated, normalised.

    `images\\a.png`, `./images/a.png` and `images//a.png` all become `images/a.png`, so one
    file is never listed under two names.

    Raises:
        SplitError: an absolute path, or one that leaves the image root (`..`); `where`
            (file and line) is named in the message.
    """
    path = filename.strip().replace("\\", "/")
    normal = posixpath.normpath(path) if path else path
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or normal == ".." or normal.startswith("../"):
        raise SplitError(f"{where}: {filename!r} is not a path inside the image root. Fix: write paths "
                         "relative to --image-root, without '..' or a leading '/'.")
    return normal


def default_group(filename: str) -> str:
    """The group of an image without a group column or regex: its path without the suffix.

    Every image is then its own group (`benign/P1/0.png` -> `benign/P1/0`): right only
    with one image per patient.
    """
    return PurePosixPath(filename).with_suffix("").as_posix()


def _locate(directory: Path) -> list[dict[str, Path]]:
    """The split files of each fold, `[{"train": path, "val": path, "test": path}, ...]`."""
    found = _split_files(directory)
    kind = "fold" if found["fold"] else "single"
    matches = found[kind]
    if not matches:
        raise SplitError(
            f"No split CSV files in {directory}. Looked for [prefix_]train_fold{{k}}.csv, "
            "[prefix_]val_fold{k}.csv, [prefix_]test_fold{k}.csv (k = 1, 2, ...) or single "
            "[prefix_]train.csv, [prefix_]val.csv, [prefix_]test.csv. Fix: point --splits at "
            "the directory holding them (RadImageNet's `dataframe/`).")
    prefixes = sorted({match["prefix"] or "" for match in matches.values()})
    if len(prefixes) > 1:
        shown = ", ".join(repr(prefix) if prefix else "(no prefix)" for prefix in prefixes)
        raise SplitError(
            f"{directory} holds split files with {len(prefixes)} name prefixes: {shown}. "
            "Fix: keep one dataset's split files per directory.")
    lead = f"{prefixes[0]}_" if prefixes[0] else ""
    if kind == "single":
        names = [{split: f"{lead}{split}.csv" for split in SPLITS}]
    else:
        numbers = sorted({int(match["fold"]) for match in matches.values()})
        if numbers[0] < 1:
            raise SplitError(f"Split files in {directory} must number folds from 1. Received: "
                             f"{', '.join(sorted(matches))}. Fix: rename fold0 files.")
        names = [{split: f"{lead}{split}_fold{k}.csv" for split in SPLITS}
                 for k in range(1, numbers[-1] + 1)]
    missing = [name for fold in names for name in fold.values() if name not in matches]
    if missing:
        raise SplitError(
            f"{directory} lacks split file(s) {', '.join(missing)}: every fold 1..{len(names)} "
            "needs a train, a val and a test file. Fix: add the missing files or remove the "
            "incomplete fold.")
    return [{split: directory / name for split, name in fold.items()} for fold in names]


def _pick_column(path: Path, columns: list[str], given: str | None, defaults, what: str,
                 option: str) -> str:
    """The column named `given`, else the first of `defaults` present; else a `SplitError`."""
    if given is not None:
        if given not in columns:
            raise SplitError(f"{path} has no {what} column {given!r}; its columns are {columns}. "
                             f"Fix: pass {option} with one of them.")
        return given
    for name in defaults:
        if name in columns:
            return name
    raise SplitError(f"{path} has none of the {what} columns {list(defaults)}; its columns are "
                     f"{columns}. Fix: pass {option} with the right one.")


def _label_column(path: Path, columns: list[str], given: str | None) -> str:
    if given is not None or "label" in columns:
        return _pick_column(path, columns, given, ("label",), "label", "--label-col")
    suffixed = [name for name in columns if name.endswith("_label")]
    if len(suffixed) == 1:
        return suffixed[0]
    found = f"several: {suffixed}" if suffixed else "none"
    raise SplitError(f"{path} has no `label` column and {found} ending in `_label`; its columns "
                     f"are {columns}. Fix: pass --label-col with the label column.")


def _read_file(path: Path, *, path_col, label_col, group_col, group_of) -> tuple[list, bool]:
    """The rows of one split CSV as `(Item, line number)`, checked, in file order.

    Returns:
        The rows, and whether the groups are real (a column or `group_of`, not file stems).
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False,
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SplitError(f"Cannot read split file {path} as UTF-8 CSV: {error}. Fix: save it as "
                         "a comma-separated UTF-8 file with a header row.") from None
    columns = [str(name) for name in frame.columns]
    file_col = _pick_column(path, columns, path_col, PATH_COLUMNS, "path", "--path-col")
    class_col = _label_column(path, columns, label_col)
    group_column = None
    if group_col is not None:
        group_column = _pick_column(path, columns, group_col, (), "group", "--group-col")
    elif group_of is None and "group" in columns:
        group_column = "group"  # the files write_split_csvs writes
    frame = frame[(frame != "").any(axis=1)]  # blank lines; the index keeps the line numbers
    if frame.empty:
        raise SplitError(f"Split file {path} has no rows. Fix: list the split's images in it.")
    rows = []
    seen: dict[str, int] = {}
    for index, row in frame.iterrows():
        line = int(index) + 2  # header = line 1
        cells = [(file_col, row[file_col]), (class_col, row[class_col])]
        if group_column is not None:
            cells.append((group_column, row[group_column]))
        for column, value in cells:
            if not value.strip():
                raise SplitError(f"{path}, line {line}: the {column!r} cell is empty. Fix: fill "
                                 "it in or delete the row.")
        filename = normalise_path(row[file_col], f"{path}, line {line}")
        if filename in seen:
            raise SplitError(f"{path} lists {filename!r} twice, on lines {seen[filename]} and "
                             f"{line}. Fix: delete one of the rows.")
        seen[filename] = line
        if group_column is not None:
            group = row[group_column].strip()
        elif group_of is not None:
            group = str(group_of(filename) or "").strip()
            if not group:
                raise SplitError(f"{path}, line {line}: no group found for {filename!r}. Fix: check "
                                 "--group-regex against this name.")
        else:
            group = default_group(filename)
        rows.append((Item(filename, row[class_col].strip(), group), line))
    return rows, group_column is not None or group_of is not None


def read_list(path, *, path_col: str | None = None, label_col: str | None = None,
              group_col: str | None = None, group_of: Callable[[str], str] | None = None) -> list[Item]:
    """The images of one list CSV (a split file, or the `--csv` of `radtl data import`), in file order.

    Columns, paths, groups and checks as in `read_split_csvs` (the path column defaults to
    the first of `PATH_COLUMNS`, so `path` works).

    Raises:
        SplitError: the file, line and fix of the first problem (empty cell, a path listed
            twice, an absolute or `..` path, a missing column).
    """
    rows, _ = _read_file(Path(path), path_col=path_col, label_col=label_col, group_col=group_col,
                         group_of=group_of)
    return [item for item, _ in rows]


def read_split_csvs(directory, *, path_col: str | None = None, label_col: str | None = None,
                    group_col: str | None = None,
                    group_of: Callable[[str], str] | None = None) -> list[Fold]:
    """Reads given split CSVs (`--splits DIR`, RadImageNet's `dataframe/` format) verbatim.

    Files: `[prefix_]{train,val,test}_fold{k}.csv` for k = 1..K (`breast_test_fold1.csv`,
    `train_fold3.csv`), or, when there are none, single `[prefix_]{train,val,test}.csv`
    (pneumonia, covid19), read as one fold. One prefix per directory.

    Columns: the path is `path_col`, else the first of `filename`, `img_dir`, `path`,
    `image`; the label is `label_col`, else `label`, else the one column ending in `_label`
    (`acl_label`); other columns (an unnamed index, pneumonia's `Target`) are ignored.
    Cells are read as strings, as written. The group is the `group_col` cell, else
    `group_of(filename)`, else the `group` cell if there is such a column (the files
    `write_split_csvs` writes), else the path without its suffix (`images/normal (9).png` ->
    `images/normal (9)`): then there is no patient grouping, and the group leak check is
    skipped. Paths are normalised (`normalise_path`: `\\` -> `/`, `./` dropped; absolute and
    `..` paths refused); labels and groups are stripped of surrounding spaces.

    Args:
        directory: str or path-like, the directory holding the split files.
        path_col: str or None, the image path column.
        label_col: str or None, the label column.
        group_col: str or None, the group (patient / exam id) column.
        group_of: callable `filename -> group` (e.g. from `--group-regex`), used when
            `group_col` is None.

    Returns:
        K `Fold` dicts with the items of each split sorted by filename.

    Raises:
        SplitError: missing or ambiguous files or columns, empty cells (the file and line,
            header = line 1), a filename twice in one file or in two splits of a fold, or a
            group in two splits of a fold.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SplitError(f"Split directory {directory} does not exist or is not a directory. "
                         "Fix: pass --splits with the directory holding the split CSV files.")
    folds = []
    for k, paths in enumerate(_locate(directory), start=1):
        fold, where, grouped = {}, {}, False
        group_files = collections.defaultdict(dict)  # group -> {split: (path, filename)}
        for split in SPLITS:
            path = paths[split]
            rows, real_groups = _read_file(path, path_col=path_col, label_col=label_col,
                                           group_col=group_col, group_of=group_of)
            grouped = grouped or real_groups
            for item, line in rows:
                if item.filename in where:
                    other, other_line = where[item.filename]
                    raise SplitError(
                        f"{item.filename!r} is in two splits of fold {k}: {other} line "
                        f"{other_line} and {path} line {line}. Fix: keep it in one split.")
                where[item.filename] = (path, line)
                group_files[item.group].setdefault(split, (path, item.filename))
            fold[split] = sorted((item for item, _ in rows), key=lambda item: item.filename)
        if grouped:
            for group in sorted(group_files):
                places = group_files[group]
                if len(places) > 1:
                    shown = "; ".join(f"{filename!r} in {path}" for path, filename in places.values())
                    raise SplitError(
                        f"Group {group!r} is in {len(places)} splits of fold {k} (a leak): "
                        f"{shown}. Fix: move all of the group's images into one split.")
        folds.append(fold)
    return folds
