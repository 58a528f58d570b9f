"""Import a user's labelled image collection as a radtl dataset (`radtl data import`).

    record = radtl.importing.import_dataset(
        "thyroid_us", csv="labels.csv", image_root="images/", group_col="patient",
        folds=5, val_fraction=0.15, seed=0)
    fold = radtl.data.open("thyroid_us", fold=1)      # like the built-in datasets

The list of images comes from one of:

* `csv` + `image_root`: one row per image, a path column (relative to `image_root`), a
  label column and optionally a group column (the patient: every image of one group goes
  to the same split);
* `folders`: one sub-folder per class holding the images (sub-folders of those too);
* `splits_dir` + `image_root`: given split lists in the RadImageNet `dataframe/` format
  (`[prefix_]{train,val,test}_fold{k}.csv`, or single `{train,val,test}.csv`), used
  verbatim.

Without a group column the group is taken from the file name by `group_regex` (its
named group `group`, else its first group, searched in the file's stem), else it is the
file's stem (every image its own group: only right when there is one image per patient).

Folds (unless given): the test fold k is fold k of a stratified, group-aware k-fold
(scikit-learn `StratifiedGroupKFold`, seeded) and validation is taken by group from the
rest (`radtl.splits.make_folds`). The split lists are written as
`<data_dir>/<name>/splits/{train,val,test}_fold{k}.csv` (filename,label,group) and
recorded with their SHA-256 in `<data_dir>/<name>/import.json`
(`tfds_builders.imported.import_record`); every fold is then built as a TFDS dataset by
the generic builder `tfds_builders.imported`, images converted to 8-bit RGB by
`radtl.imaging.read_image` (16-bit PNG and DICOM windowed; the choice is counted in the
record).

Everything is checked before anything is written: the name, the files (missing,
unreadable, listed twice), the labels, the groups (a class with fewer groups than
folds is an error; a group whose images carry different labels is a warning with the
count) and every image (decoded once). The import is written into a hidden folder of
the data directory and renamed into place when every fold is built, so a failed or
interrupted import leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import radtl
from radtl import imaging
from radtl import splits as splits_lib
from radtl._checks import MAX_LISTED
from radtl._checks import listing
from radtl.data import DataError

__all__ = ["import_dataset", "DatasetImportError", "ImportOptions", "collect_items"]

logger = logging.getLogger(__name__)

#: progress(stage, done, total): stage is "check" (decoding every image) or "build fold K".
Progress = Callable[[str, int, int], None]


class DatasetImportError(DataError):
    """The collection cannot be imported; the message names the file or row and the fix.

    Nothing is written to the data directory when it is raised.
    """


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    """Where the image list comes from and how to read it (see the module docstring).

    Exactly one of `csv`, `folders` or `splits_dir` is set; `image_root` goes with
    `csv` and `splits_dir`.
    """

    csv: str | None = None
    image_root: str | None = None
    folders: str | None = None
    splits_dir: str | None = None
    path_col: str | None = None
    label_col: str | None = None
    group_col: str | None = None
    group_regex: str | None = None

    @property
    def kind(self) -> str:
        return "csv" if self.csv else "folders" if self.folders else "splits"

    def check(self) -> None:
        given = [k for k in ("csv", "folders", "splits_dir") if getattr(self, k)]
        if len(given) != 1:
            raise DatasetImportError(
                "Give exactly one source of images: --csv FILE --image-root DIR, --folders DIR, or "
                f"--splits DIR --image-root DIR. Received: {given or 'none'}.")
        if self.folders and self.image_root:
            raise DatasetImportError("--image-root goes with --csv or --splits; with --folders the images are "
                                     "found under the folders. Fix: leave out --image-root.")
        if not self.folders and not self.image_root:
            raise DatasetImportError(f"--{'csv' if self.csv else 'splits'} needs --image-root DIR, the folder "
                                     "the listed paths are relative to.")
        if self.folders and (self.path_col or self.label_col or self.group_col):
            raise DatasetImportError("--path-col, --label-col and --group-col go with --csv or --splits; with "
                                     "--folders the label is the sub-folder. Fix: leave them out.")
        for option, path, want_dir in (("--csv", self.csv, False), ("--image-root", self.image_root, True),
                                       ("--folders", self.folders, True), ("--splits", self.splits_dir, True)):
            if path is None:
                continue
            if not os.path.exists(path):
                raise DatasetImportError(f"{option} {path}: no such {'folder' if want_dir else 'file'}.")
            if want_dir != os.path.isdir(path):
                raise DatasetImportError(f"{option} {path}: expected a {'folder' if want_dir else 'file'}.")
        if self.group_regex is not None:
            self.group_function()  # compiles it

    def group_function(self) -> Callable[[str], str]:
        """filename -> group: `group_regex` searched in the file's stem ("" where it does not
        match), else `splits.default_group` (the path without its suffix)."""
        if self.group_regex is None:
            return splits_lib.default_group
        try:
            pattern = re.compile(self.group_regex)
        except re.error as err:
            raise DatasetImportError(f"--group-regex {self.group_regex!r} is not a regular expression: {err}."
                                     ) from None
        if pattern.groups == 0:
            raise DatasetImportError(f"--group-regex {self.group_regex!r} has no group: put the patient id in "
                                     r"parentheses, e.g. '^(\w+)_' or '(?P<group>P\d+)'.")
        index = "group" if "group" in pattern.groupindex else 1

        def group_of(filename: str) -> str:
            match = pattern.search(Path(filename).stem)
            return match[index] if match and match[index] else ""

        return group_of

    def to_record(self) -> dict:
        """The options as stored in the import record (absolute paths)."""
        values = {"kind": self.kind}
        for key, value in dataclasses.asdict(self).items():
            if value is not None:
                values[key] = os.path.abspath(value) if key in ("csv", "image_root", "folders", "splits_dir") \
                    else value
        return values


# ---------------------------------------------------------------- collecting

def _items_from_csv(options: ImportOptions) -> list[splits_lib.Item]:
    """The rows of `--csv`, read like a split list (`splits.read_list`: line numbers, paths
    normalised and kept inside the image root, a path listed twice refused)."""
    try:
        items = splits_lib.read_list(options.csv, path_col=options.path_col, label_col=options.label_col,
                                     group_col=options.group_col,
                                     group_of=None if options.group_col else options.group_function())
    except splits_lib.SplitError as err:
        raise DatasetImportError(f"--csv {err}") from None
    return items


def _items_from_folders(options: ImportOptions) -> list[splits_lib.Item]:
    root = Path(options.folders)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetImportError(f"--folders {root} has no sub-folders. Expected one sub-folder per class "
                                 f"(e.g. {root}/benign/, {root}/malignant/) holding the images.")
    group_of = options.group_function()
    items, empty, unmatched, skipped = [], [], [], []
    for folder in classes:
        files = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            image = path.suffix.lower() in imaging.SUFFIXES or (not path.suffix and imaging.is_dicom(path))
            (files if image else skipped).append(path)
        if not files:
            empty.append(str(folder))
        for path in files:
            filename = path.relative_to(root).as_posix()
            group = group_of(filename)
            if not group:
                unmatched.append(filename)
            else:
                items.append(splits_lib.Item(filename, folder.name, group))
    if skipped:
        logger.warning("Skipped %d file(s) under %s that are not PNG, JPEG or DICOM: %s", len(skipped), root,
                       ", ".join(p.relative_to(root).as_posix() for p in skipped[:MAX_LISTED]))
    if empty:
        raise DatasetImportError(
            f"--folders {root}: {len(empty)} class folder(s) hold no image ({', '.join(imaging.SUFFIXES)} or "
            f"DICOM):\n{listing(empty)}\nFix: add the images, or remove the folder.")
    if unmatched:
        raise DatasetImportError(f"--group-regex {options.group_regex!r} matches no group in {len(unmatched)} "
                                 f"file name(s):\n{listing(unmatched)}\nFix: correct the expression.")
    return items


def collect_items(options: ImportOptions) -> tuple[list[splits_lib.Item], list[splits_lib.Fold] | None]:
    """The images to import and, for `splits_dir`, the given folds.

    Returns:
        (items sorted by filename, one per image; the given folds or None).

    Raises:
        DatasetImportError: a bad option, file, row or split list (nothing is written).
    """
    options.check()
    given = None
    if options.kind == "csv":
        items = _items_from_csv(options)
    elif options.kind == "folders":
        items = _items_from_folders(options)
    else:
        group_of = options.group_function() if options.group_regex else None
        try:
            given = splits_lib.read_split_csvs(options.splits_dir, path_col=options.path_col,
                                               label_col=options.label_col, group_col=options.group_col,
                                               group_of=group_of)
        except splits_lib.SplitError as err:
            raise DatasetImportError(str(err)) from None
        _warn_missing_classes(given)
        unique = {}
        for fold in given:
            for split_items in fold.values():
                for item in split_items:
                    previous = unique.setdefault(item.filename, item)
                    if previous != item:
                        raise DatasetImportError(
                            f"--splits {options.splits_dir}: {item.filename} has label/group "
                            f"{previous.label}/{previous.group} in one split list and {item.label}/{item.group} "
                            "in another. Fix: make the lists agree.")
        items = list(unique.values())
    return sorted(items, key=lambda item: item.filename), given


def _warn_missing_classes(folds) -> None:
    """Warns about given splits without some class (their AUC is undefined)."""
    classes = {item.label for fold in folds for items in fold.values() for item in items}
    lacking = {(k, split): sorted(classes - {item.label for item in items})
               for k, fold in enumerate(folds, start=1) for split, items in fold.items()}
    gaps = [f"fold {k} {split}: no {absent}" for (k, split), absent in lacking.items() if absent]
    if gaps:
        logger.warning("%d given split(s) lack a class (AUC is undefined there): %s", len(gaps), "; ".join(gaps))


def _class_names(items, classes: Sequence[str] | None) -> list[str]:
    present = sorted({item.label for item in items})
    if classes is None:
        if len(present) < 2:
            raise DatasetImportError(f"Found one class only ({present}); a classifier needs at least two. Fix: "
                                     "check the label column or the class folders.")
        return present
    classes = list(classes)
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise DatasetImportError(f"--classes must name two or more distinct classes. Received: {classes}.")
    unknown = sorted(set(present) - set(classes))
    if unknown:
        counts = Counter(item.label for item in items)
        raise DatasetImportError(
            f"{len(unknown)} label value(s) are not among --classes {classes}: "
            + ", ".join(f"{u!r} ({counts[u]} image(s))" for u in unknown)
            + ". Fix: add them to --classes, or correct or drop those rows.")
    absent = [c for c in classes if c not in present]
    if absent:
        raise DatasetImportError(f"--classes {absent} have no image. Fix: remove them from --classes or add their "
                                 "images.")
    return classes


def _check_images(items, image_root: Path, percentiles, progress: Progress | None) -> dict[str, int]:
    """Decodes every image once; returns images per conversion method. Lists every failure."""
    counts, missing, unreadable = Counter(), [], []
    for done, item in enumerate(items, start=1):
        path = image_root / item.filename
        if not path.is_file():
            missing.append(str(path))
        else:
            try:
                _, conversion = imaging.read_image(path, percentiles=percentiles)
                counts[conversion.method] += 1
            except imaging.ImageReadError as err:
                unreadable.append(str(err))
        if progress:
            progress("check", done, len(items))
    if missing:
        raise DatasetImportError(f"{len(missing)} listed image(s) do not exist:\n{listing(missing)}\nFix: "
                                 "correct the paths (relative to --image-root) or place the files.")
    if unreadable:
        raise DatasetImportError(f"{len(unreadable)} image(s) cannot be read:\n{listing(unreadable)}\nFix: "
                                 "replace them with intact files, or drop their rows.")
    return dict(sorted(counts.items()))


def _check_name(name: str, root: Path) -> None:
    from radtl import data
    from tfds_builders.imported import import_record

    if not isinstance(name, str) or not import_record.NAME_PATTERN.fullmatch(name):
        raise DatasetImportError(f"The dataset name must be lower case letters, digits and underscores, starting "
                                 f"with a letter (a TFDS name). Received: {name!r}.")
    if name in data.REGISTRY.names():
        raise DatasetImportError(f"{name!r} is a dataset radtl ships (registered). Fix: choose another name.")
    if (root / name).exists():
        what = "an imported dataset" if import_record.is_import_dir(root / name) else "a folder"
        raise DatasetImportError(f"{root / name} already exists ({what}); an import never overwrites. Fix: choose "
                                 f"another name, or delete that folder first.")


# ------------------------------------------------------------------ importing

def import_dataset(
    name: str,
    *,
    csv=None,
    image_root=None,
    folders=None,
    splits_dir=None,
    path_col: str | None = None,
    label_col: str | None = None,
    group_col: str | None = None,
    group_regex: str | None = None,
    classes: Sequence[str] | None = None,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    data_dir=None,
    percentiles: tuple[float, float] = imaging.DEFAULT_PERCENTILES,
    progress: Progress | None = None,
):
    """Imports an image collection as dataset `name` in the data directory and builds every fold.

    Args:
        name: str. The new dataset's name (lower case, digits, underscores).
        csv, image_root, folders, splits_dir, path_col, label_col, group_col,
            group_regex: where the images and labels come from (module docstring).
            `path_col` and `label_col` are detected when not given (the first of
            `splits.PATH_COLUMNS`; `label`, else the one column ending in `_label`).
        classes: class names in label order (the last is the positive class of a
            binary task), or None for the sorted label values. Every label must be one.
        folds: int >= 2. Number of folds to make (ignored with `splits_dir`).
        val_fraction: float in (0, 0.5). Share of each fold's non-test groups used for
            validation (rounded to 1/n, see `radtl.splits.make_folds`).
        seed: int. Seed of the fold assignment.
        data_dir: path or None. Where the dataset goes (`$RADTL_DATA_DIR` or
            ~/tensorflow_datasets).
        percentiles: (low, high) percentiles of the window of 16-bit PNG and DICOM
            files that have none.
        progress: optional callback `progress(stage, done, total)`.

    Returns:
        The `ImportRecord` written to `<data_dir>/<name>/import.json`; warnings (groups
        with mixed labels) are logged and counted in it.

    Raises:
        DatasetImportError: bad input (nothing is written).
    """
    from radtl import data
    from tfds_builders.imported import import_record

    root = data.data_root(data_dir)
    _check_name(name, root)
    options = ImportOptions(csv=csv, image_root=image_root, folders=folders, splits_dir=splits_dir,
                            path_col=path_col, label_col=label_col, group_col=group_col, group_regex=group_regex)
    items, given = collect_items(options)
    class_names = _class_names(items, classes)
    mixed = splits_lib.mixed_label_groups(items)
    if mixed:
        logger.warning("%d group(s) have images with different labels (each group stays in one split): %s",
                       len(mixed), ", ".join(f"{g} {labels}" for g, labels in list(mixed.items())[:MAX_LISTED]))
    if given is None:
        try:
            fold_list = splits_lib.make_folds(items, folds=folds, val_fraction=val_fraction, seed=seed)
        except splits_lib.SplitError as err:
            raise DatasetImportError(str(err)) from None
        split = {"method": "stratified-group-kfold", "seed": seed, "val_fraction": val_fraction}
    else:
        fold_list, split = given, {"method": "given"}
    split["sizes"] = splits_lib.split_sizes(fold_list)
    image_root = Path(options.folders or options.image_root).resolve()
    conversions = _check_images(items, image_root, percentiles, progress)

    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp_root = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=root))
    except OSError as err:
        raise DatasetImportError(f"Could not write in the data directory {root}: {err}. Fix: pass a writable "
                                 "--data-dir.") from None
    try:
        tmp_dir = tmp_root / name
        split_paths = splits_lib.write_split_csvs(tmp_dir / import_record.SPLITS_DIR, fold_list)
        record = import_record.ImportRecord(
            name=name, class_names=class_names, num_folds=len(fold_list), image_root=str(image_root),
            source=options.to_record(), split=split,
            conversion={"percentiles": list(percentiles), "counts": conversions},
            images=len(items), groups=len({item.group for item in items}), mixed_label_groups=len(mixed),
            split_files={p.name: import_record.file_sha256(p) for p in split_paths},
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            radtl_version=radtl.__version__)
        import_record.write(tmp_dir, record)
        _build_folds(tmp_root, record, progress)
        try:
            os.rename(tmp_dir, root / name)  # the one step that makes the dataset visible
        except OSError:
            if (root / name).exists():
                raise DatasetImportError(f"{root / name} appeared while this import ran (another import of "
                                         f"{name}?); it was left as it is. Fix: choose another name.") from None
            raise
    except OSError as err:
        raise DatasetImportError(f"Could not write the dataset in {root}: {err}. Fix: pass a writable --data-dir "
                                 "with free space.") from err
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    logger.info("Imported %s: %d images, %d groups, %d folds into %s", name, record.images, record.groups,
                record.num_folds, root / name)
    return record


def _build_folds(tmp_root: Path, record, progress: Progress | None) -> None:
    """Builds every fold of the import written under `tmp_root` (`radtl.data.build`)."""
    from radtl import data

    for k in range(1, record.num_folds + 1):
        if progress:
            progress(f"build fold {k}", k - 1, record.num_folds)
        try:
            data.build(record.name, k, data_dir=tmp_root)
        except data.DatasetBuildError as err:
            raise DatasetImportError(f"Could not build {record.name}/fold{k}: {err.__cause__ or err}") from None
    if progress:
        progress("build", record.num_folds, record.num_folds)
