"""Logic shared by the RadImageNet downstream-task builders (`radimagenet_acl`, `radimagenet_breast`).

Both builders turn a manually placed dataset into the official RadImageNet 5-fold
train/val/test partitions (Mei et al., "RadImageNet: An Open Radiologic Deep Learning
Research Dataset for Effective Transfer Learning", Radiology: AI 2022). The data can sit in
`manual_dir` in one of several *layouts* (the RadImageNet repository's `images/` +
`dataframe/` folders, or the original download of the source dataset); each builder
declares its layouts as data (`Layout`) and its task as data (`TaskSpec`), and this module
does the rest:

* `detect_layout` finds which layout `manual_dir` holds (or lists every expected file);
* `read_split_list` / `read_fold` read and validate the split CSVs
  (`filename,<label column>`, header checked, labels checked, a file or an exam in two
  splits of one fold is an error);
* `PngFolderSource` reads PNGs the way the official Keras scripts do
  (PIL, `.convert("RGB")`, greyscale replicated to 3 channels);
* `prepare_fold` validates *everything* (every image is decoded once) before a single
  example is generated, warns about images with identical content, and returns the
  records that `generate_examples` turns into TFDS examples.

All file access goes through `tf.io.gfile`, so any filesystem TFDS supports works.
Every problem raises `ManualDataError` (a `ValueError`) whose message names the file,
the problem, the value received and the fix.
"""

from __future__ import annotations

import abc
import collections
import csv
import dataclasses
import hashlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import PIL.Image
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

# `listing` (at most MAX_LISTED offending items in a message) and `grey_to_rgb` are the
# base modules' own, re-exported for the task builders.
from radtl._checks import MAX_LISTED
from radtl._checks import listing  # noqa: F401
from radtl.imaging import grey_to_rgb  # noqa: F401

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
NUM_FOLDS = 5

RADIMAGENET_URL = "https://github.com/BMEII-AI/RadImageNet"


class ManualDataError(ValueError):
    """The content of `manual_dir` (or a split list) cannot be turned into the dataset."""


class MissingFileError(ManualDataError):
    """A file the build needs (an image, a split list, a layout folder) is missing."""


class UnreadableImageError(ManualDataError):
    """An image exists but cannot be decoded."""


# --------------------------------------------------------------------------- configs


@dataclasses.dataclass(eq=False)
class FoldConfig(tfds.core.BuilderConfig):
    """One of the five official RadImageNet folds.

    Attributes:
        fold: int, 1 to 5: which `*_fold{fold}.csv` split lists define the
            `train`, `val` and `test` splits.
    """

    fold: int = 1


def fold_configs(task_title: str) -> list[FoldConfig]:
    """Returns the configs `fold1`..`fold5` of one task.

    Args:
        task_title: str, what the task is called in the config descriptions,
            e.g. `"ACL tear (MRNet sagittal slices)"`.
    """
    return [
        FoldConfig(
            name=f"fold{k}",
            fold=k,
            description=(
                f"{task_title}: official RadImageNet fold {k} of {NUM_FOLDS} "
                f"(train/val/test as listed in the *_fold{k}.csv split lists)."
            ),
        )
        for k in range(1, NUM_FOLDS + 1)
    ]


def features(label_names: Sequence[str]) -> tfds.features.FeaturesDict:
    """The feature dictionary shared by the RadImageNet task datasets.

    Args:
        label_names: the `ClassLabel` names, in index order (e.g. `("no", "yes")`).

    Returns:
        `image` (uint8, (None, None, 3), stored as PNG), `label` (ClassLabel),
        `filename` (as written in the split CSV) and `exam_id` (the grouping unit).
    """
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(
            shape=(None, None, 3), dtype=np.uint8, encoding_format="png"
        ),
        "label": tfds.features.ClassLabel(names=list(label_names)),
        "filename": tfds.features.Text(),
        "exam_id": tfds.features.Text(),
    })


# ----------------------------------------------------------------------- split lists


@dataclasses.dataclass(frozen=True)
class SplitListSpec:
    """How one task's split lists are named and what they contain.

    Attributes:
        file_pattern: str, file name of one list with `{split}` and `{fold}`
            placeholders, e.g. `"breast_{split}_fold{fold}.csv"`.
        label_column: str, header of the label column (`acl_label` or `label`).
        label_names: the allowed label values, in `ClassLabel` index order.
    """

    file_pattern: str
    label_column: str
    label_names: tuple[str, ...]

    @property
    def header(self) -> list[str]:
        return ["filename", self.label_column]

    def file_name(self, split: str, fold: int) -> str:
        return self.file_pattern.format(split=split, fold=fold)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a split list: `filename` exactly as written and its `label`."""

    filename: str
    label: str


def read_split_list(path: epath.PathLike, spec: SplitListSpec) -> list[Row]:
    """Reads and validates one split CSV (`filename,<label column>`).

    Args:
        path: path of the CSV file (any `tf.io.gfile` path).
        spec: the task's `SplitListSpec` (header and allowed labels).

    Returns:
        The rows in file order.

    Raises:
        ManualDataError: the file is missing, its header is not
            `filename,<label column>`, a row has the wrong number of fields or an
            empty filename, a label is not one of `spec.label_names`, or a filename
            appears twice.
    """
    path = str(path)
    if not tf.io.gfile.exists(path):
        raise MissingFileError(
            f"Split list {path} does not exist. Expected the file "
            f"{spec.file_pattern} (header `{','.join(spec.header)}`) for every split "
            f"{SPLIT_NAMES} and fold 1..{NUM_FOLDS}. Fix: copy the `dataframe/` folder "
            f"of the RadImageNet repository ({RADIMAGENET_URL}) completely, or remove "
            "the folder to use the split lists shipped with the builder."
        )
    with tf.io.gfile.GFile(path, "r") as f:
        lines = list(csv.reader(f.read().lstrip("\ufeff").splitlines()))
    if not lines:
        raise ManualDataError(
            f"Split list {path} is empty; expected the header "
            f"`{','.join(spec.header)}` and one row per image. Fix: restore the file."
        )
    header = [column.strip() for column in lines[0]]
    if header != spec.header:
        raise ManualDataError(
            f"Split list {path} has the wrong header: expected columns "
            f"{spec.header}, found {header}. Fix: use the RadImageNet split CSVs "
            f"unchanged (first line `{','.join(spec.header)}`)."
        )
    rows, seen, bad_labels, bad_lines = [], set(), [], []
    duplicates = []
    for line_number, fields in enumerate(lines[1:], start=2):
        if not fields or all(not field.strip() for field in fields):
            continue  # Blank line.
        if len(fields) != 2 or not fields[0].strip():
            bad_lines.append(f"line {line_number}: {fields!r}")
            continue
        filename, label = fields[0].strip(), fields[1].strip()
        if label not in spec.label_names:
            bad_labels.append(f"line {line_number}: {filename!r} has label {label!r}")
        if filename in seen:
            duplicates.append(f"line {line_number}: {filename!r}")
        seen.add(filename)
        rows.append(Row(filename, label))
    if bad_lines:
        raise ManualDataError(
            f"Split list {path} has {len(bad_lines)} malformed row(s); every row must "
            f"be `filename,{spec.label_column}` with a non-empty filename:\n"
            f"{listing(bad_lines)}\nFix: correct or delete these rows."
        )
    if bad_labels:
        raise ManualDataError(
            f"Split list {path} has {len(bad_labels)} unknown label(s) in column "
            f"`{spec.label_column}`; allowed: {list(spec.label_names)}:\n"
            f"{listing(bad_labels)}\nFix: use one of the allowed labels."
        )
    if duplicates:
        raise ManualDataError(
            f"Split list {path} lists {len(duplicates)} file(s) more than once:\n"
            f"{listing(duplicates)}\nFix: keep one row per file."
        )
    return rows


def read_fold(
    directory: epath.PathLike, spec: SplitListSpec, fold: int
) -> dict[str, list[Row]]:
    """Reads the `train`, `val` and `test` lists of one fold and checks they are disjoint.

    Args:
        directory: folder holding the split CSVs.
        spec: the task's `SplitListSpec`.
        fold: int, 1 to `NUM_FOLDS`.

    Returns:
        `{split: rows}` for `train`, `val`, `test`.

    Raises:
        ManualDataError: a list is invalid (see `read_split_list`) or a file is
            listed in two splits of the fold.
    """
    directory = epath.Path(directory)
    lists = {
        split: read_split_list(directory / spec.file_name(split, fold), spec)
        for split in SPLIT_NAMES
    }
    where = collections.defaultdict(list)
    for split, rows in lists.items():
        for row in rows:
            where[row.filename].append(split)
    in_two = [
        f"{filename}: in {' and '.join(spec.file_name(s, fold) for s in splits)}"
        for filename, splits in sorted(where.items())
        if len(splits) > 1
    ]
    if in_two:
        raise ManualDataError(
            f"Fold {fold} in {directory} lists {len(in_two)} file(s) in two splits, "
            f"which would leak test images into training:\n{listing(in_two)}\n"
            "Fix: keep each file in exactly one of the train, val and test lists of "
            "a fold."
        )
    return lists


def check_groups_disjoint(
    lists: Mapping[str, Sequence[Row]],
    group_of: Callable[[str], str],
    *,
    group_noun: str,
    source: str,
) -> None:
    """Raises if one group (an exam, a patient) has files in two splits of a fold.

    Args:
        lists: `{split: rows}` of one fold.
        group_of: maps a filename to its group id (e.g. the MRNet exam number).
        group_noun: str, what a group is called in the message (e.g. `"MRNet exam"`).
        source: str, where the lists come from (named in the message).

    Raises:
        ManualDataError: naming each group, its splits and one file per split.
    """
    where = collections.defaultdict(dict)
    for split, rows in lists.items():
        for row in rows:
            where[group_of(row.filename)].setdefault(split, row.filename)
    in_two = [
        f"{group_noun} {group}: "
        + ", ".join(f"{split} ({filename})" for split, filename in splits.items())
        for group, splits in sorted(where.items())
        if len(splits) > 1
    ]
    if in_two:
        raise ManualDataError(
            f"The split lists in {source} put {len(in_two)} {group_noun}(s) in two "
            f"splits of one fold (slices of one {group_noun} are correlated, so this "
            f"leaks information between splits):\n{listing(in_two)}\n"
            f"Fix: move all files of each {group_noun} into the same split."
        )


def compare_membership(
    found: Mapping[str, Sequence[Row]],
    shipped: Mapping[str, Sequence[Row]],
    *,
    found_source: str,
    fold: int,
) -> list[str]:
    """Logs a warning if the split lists in `manual_dir` differ from the shipped ones.

    Users may have their own folds, so a difference is not an error.

    Args:
        found: `{split: rows}` read from `manual_dir`.
        shipped: `{split: rows}` of the official lists shipped with the builder.
        found_source: str, the folder `found` was read from (named in the warning).
        fold: int, the fold (named in the warning).

    Returns:
        One line per split that differs (empty if all splits agree).
    """
    differences = []
    for split in SPLIT_NAMES:
        mine = {row.filename: row.label for row in found[split]}
        official = {row.filename: row.label for row in shipped[split]}
        only_mine = len(mine.keys() - official.keys())
        only_official = len(official.keys() - mine.keys())
        relabelled = sum(
            mine[name] != official[name] for name in mine.keys() & official.keys()
        )
        if only_mine or only_official or relabelled:
            differences.append(
                f"{split}: {len(mine)} files in {found_source} vs {len(official)} in "
                f"the official list; {only_mine} only in {found_source}, "
                f"{only_official} only in the official list, {relabelled} with a "
                "different label"
            )
    if differences:
        logging.warning(
            "The fold %d split lists in %s differ from the official RadImageNet lists "
            "shipped with the builder; building from %s (custom folds?):\n%s",
            fold,
            found_source,
            found_source,
            "\n".join(differences),
        )
    return differences


# ----------------------------------------------------------------------------- images


def decode_png_rgb(data: bytes, location: str) -> np.ndarray:
    """Decodes an encoded image as the official Keras scripts do (PIL, `.convert("RGB")`).

    Args:
        data: the file's bytes.
        location: str, where the bytes come from (named in the error).

    Returns:
        uint8 array (H, W, 3); greyscale images are replicated to 3 channels.

    Raises:
        UnreadableImageError: PIL cannot decode the bytes.
    """
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise UnreadableImageError(
            f"{location}: cannot be decoded as an image ({type(e).__name__}: {e})"
        ) from e


def content_digest(image: np.ndarray) -> str:
    """SHA-256 of a decoded image's shape and pixels (equal iff the pixels are equal)."""
    digest = hashlib.sha256(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class ImageSource(abc.ABC):
    """Where the images named in the split lists come from in one layout."""

    @abc.abstractmethod
    def location(self, filename: str) -> str:
        """Where `filename` (as written in the split list) is read from."""

    @abc.abstractmethod
    def read(self, filename: str) -> np.ndarray:
        """Returns the image as uint8 (H, W, 3).

        Raises:
            MissingFileError: the image is not there.
            UnreadableImageError: the image cannot be decoded.
        """

    def check_rows(self, lists: Mapping[str, Sequence[Row]]) -> None:
        """Extra checks of the split rows against the source (e.g. label files).

        Raises:
            ManualDataError: the rows contradict the source.
        """
        del lists


class PngFolderSource(ImageSource):
    """Images stored as files under `root`.

    Args:
        root: folder the relative paths are resolved against.
        relative_path: maps a split-list filename to its path under `root`
            (default: unchanged, as in the RadImageNet layout). It may raise
            `ManualDataError` for a filename the layout cannot hold.
        fix: str, how to fix a missing file (appended to the error).
    """

    def __init__(
        self,
        root: epath.PathLike,
        relative_path: Callable[[str], str] = lambda filename: filename,
        *,
        fix: str = "place the file there",
    ):
        self.root = epath.Path(root)
        self.relative_path = relative_path
        self.fix = fix

    def location(self, filename: str) -> str:
        return str(self.root / self.relative_path(filename))

    def read(self, filename: str) -> np.ndarray:
        path = self.location(filename)
        if not tf.io.gfile.exists(path):
            raise MissingFileError(f"{path}: missing")
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                data = f.read()
        except tf.errors.OpError as e:
            raise UnreadableImageError(f"{path}: cannot be read ({e.message})") from e
        return decode_png_rgb(data, path)


# ---------------------------------------------------------------------------- layouts


@dataclasses.dataclass(frozen=True)
class Layout:
    """One way the data can sit in `manual_dir`.

    Attributes:
        name: str, short id (`radimagenet`, `busi`, `mrnet`).
        title: str, one-line description used in messages.
        required: paths relative to the layout root that must exist; a trailing
            `/` marks a folder.
        instructions: str, where the files come from and where they go.
        open: builds the `ImageSource` for a detected root (`epath.Path`).
        roots: candidate roots relative to `manual_dir` (`""` is `manual_dir`
            itself), tried in order.
        has_split_lists: bool, whether the layout may carry its own split lists
            in `<root>/dataframe/` (otherwise the shipped lists are used).
    """

    name: str
    title: str
    required: tuple[str, ...]
    instructions: str
    open: Callable[[epath.Path], ImageSource]
    roots: tuple[str, ...] = ("",)
    has_split_lists: bool = False

    def missing(self, root: epath.Path) -> list[str]:
        """The required paths that `root` lacks."""
        missing = []
        for relative in self.required:
            path = str(root / relative.rstrip("/"))
            present = (
                tf.io.gfile.isdir(path)
                if relative.endswith("/")
                else tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
            )
            if not present:
                missing.append(relative)
        return missing


def radimagenet_layout(
    task_folder: str, spec: SplitListSpec, image_example: str
) -> Layout:
    """The layout of one task folder of the RadImageNet repository (`acl/`, `breast/`).

    `images/*.png` plus optional `dataframe/` split lists; filenames in the lists
    are paths relative to the folder.

    Args:
        task_folder: str, the folder's name in the repository (also accepted as a
            sub-folder of `manual_dir`).
        spec: the task's `SplitListSpec` (names the CSVs in the instructions).
        image_example: str, an example image path (`images/...png`).
    """
    csv_names = spec.file_pattern.format(
        split="{" + ",".join(SPLIT_NAMES) + "}", fold="{1..5}"
    )
    return Layout(
        name="radimagenet",
        title=f"RadImageNet layout (the {task_folder}/ folder of {RADIMAGENET_URL})",
        required=("images/",),
        instructions=(
            f"images/ holds the PNGs named in the split lists (e.g. {image_example}).\n"
            f"dataframe/{csv_names} (optional): split lists with header "
            f"`{','.join(spec.header)}`; without dataframe/ the official lists "
            "shipped with the builder are used; lists that differ from them are "
            "used with a warning (custom folds)."
        ),
        open=PngFolderSource,
        roots=("", task_folder),
        has_split_lists=True,
    )


def layouts_help(layouts: Sequence[Layout], intro: str) -> str:
    """Text for `MANUAL_DOWNLOAD_INSTRUCTIONS`: every layout, its files and where they go."""
    parts = [intro.strip(), "", "manual_dir may hold any one of these layouts:"]
    for number, layout in enumerate(layouts, start=1):
        roots = " or ".join(
            "<manual_dir>/" + root if root else "<manual_dir>" for root in layout.roots
        )
        parts += [
            "",
            f"{number}. {layout.title}, in {roots}:",
            *(f"     {path}" for path in layout.required),
            *(f"   {line}" for line in layout.instructions.strip().splitlines()),
        ]
    return "\n".join(parts) + "\n"


def detect_layout(
    manual_dir: epath.PathLike, layouts: Sequence[Layout]
) -> tuple[Layout, epath.Path]:
    """Finds the first layout (in the given order) whose required files `manual_dir` holds.

    Args:
        manual_dir: the builder's `dl_manager.manual_dir`.
        layouts: candidate layouts, in order of preference.

    Returns:
        `(layout, root)` where `root` is the folder the layout's paths are relative to.

    Raises:
        MissingFileError: no layout is complete; the message lists, for every
            layout and root, the expected files, which of them are missing, and
            where they go.
    """
    manual_dir = epath.Path(manual_dir)
    report = []
    for layout in layouts:
        for root_name in layout.roots:
            root = manual_dir / root_name if root_name else manual_dir
            missing = layout.missing(root)
            if not missing:
                logging.info("Using the %s in %s.", layout.title, root)
                return layout, root
            report.append(
                f"- {layout.title} in {root}: expected "
                f"{', '.join(layout.required)}; missing {', '.join(missing)}."
            )
    found = sorted(tf.io.gfile.listdir(str(manual_dir))) if tf.io.gfile.isdir(
        str(manual_dir)
    ) else []
    raise MissingFileError(
        f"manual_dir {manual_dir} holds none of the supported layouts "
        f"(it contains: {found[:MAX_LISTED] or 'nothing'}).\n" + "\n".join(report)
        + "\nFix: place the files of one layout as described:\n\n"
        + layouts_help(layouts, "")
    )


# ------------------------------------------------------------------------ the builder


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything that distinguishes one RadImageNet task builder from another.

    Attributes:
        name: str, the dataset name (`radimagenet_acl`).
        split_lists: the task's `SplitListSpec`.
        layouts: the supported `Layout`s, in order of preference.
        exam_id: maps a split-list filename to its grouping unit; may raise
            `ManualDataError` for a filename that does not follow the naming scheme.
        group_noun: str, what an exam is called in messages (`"MRNet exam"`).
    """

    name: str
    split_lists: SplitListSpec
    layouts: tuple[Layout, ...]
    exam_id: Callable[[str], str]
    group_noun: str


@dataclasses.dataclass(frozen=True)
class Record:
    """One example to generate: the split-list row plus its exam."""

    filename: str
    label: str
    exam_id: str


def _read_all(
    source: ImageSource, lists: Mapping[str, Sequence[Row]]
) -> dict[str, list[tuple[str, str]]]:
    """Decodes every listed image once; returns `{digest: [(filename, split), ...]}`.

    Raises:
        MissingFileError / UnreadableImageError: listing every missing or
            undecodable image (missing ones first).
    """
    by_digest = collections.defaultdict(list)
    missing, unreadable = [], []
    for split, rows in lists.items():
        for row in sorted(rows, key=lambda r: r.filename):
            try:
                image = source.read(row.filename)
            except MissingFileError as e:
                missing.append(str(e))
                continue
            except UnreadableImageError as e:
                unreadable.append(str(e))
                continue
            by_digest[content_digest(image)].append((row.filename, split))
    if missing:
        raise MissingFileError(
            f"{len(missing)} image(s) named in the split lists are missing:\n"
            f"{listing(missing)}\nFix: place every listed image where the layout "
            "expects it (see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS), build from "
            "the original release instead (MRNet or BUSI: another layout of "
            "MANUAL_DOWNLOAD_INSTRUCTIONS, which holds every listed image; the "
            "RadImageNet repository's folders lack a few), or remove its row from the "
            "split lists (your folds then differ from the official ones)."
        )
    if unreadable:
        raise UnreadableImageError(
            f"{len(unreadable)} image(s) named in the split lists cannot be read:\n"
            f"{listing(unreadable)}\nFix: replace these files with intact copies "
            "from the original download."
        )
    return by_digest


def duplicate_groups(
    by_digest: Mapping[str, Sequence[tuple[str, str]]],
) -> list[list[tuple[str, str]]]:
    """Groups of two or more `(filename, split)` with identical pixel content, sorted."""
    return sorted(sorted(group) for group in by_digest.values() if len(group) > 1)


def prepare_fold(
    manual_dir: epath.PathLike,
    task: TaskSpec,
    fold: int,
    *,
    shipped_splits_dir: epath.PathLike,
) -> tuple[dict[str, list[Record]], ImageSource]:
    """Validates `manual_dir` for one fold and returns what to generate.

    Nothing is generated before everything has been checked: the layout, the split
    lists (header, labels, a file or an exam in two splits), the source's own
    checks (e.g. MRNet labels) and every image (each is decoded once). Images with
    identical pixels only log a warning that lists the groups.

    Args:
        manual_dir: the builder's `dl_manager.manual_dir`.
        task: the task's `TaskSpec`.
        fold: int, 1 to `NUM_FOLDS`.
        shipped_splits_dir: folder of the official split lists shipped with the
            builder; used unless the detected layout brings its own `dataframe/`.

    Returns:
        `({split: records sorted by filename}, image source)`.

    Raises:
        ManualDataError: the first problem found, naming the file and the fix.
    """
    layout, root = detect_layout(manual_dir, task.layouts)
    spec = task.split_lists
    shipped = read_fold(shipped_splits_dir, spec, fold)
    dataframe = root / "dataframe"
    if layout.has_split_lists and tf.io.gfile.isdir(str(dataframe)):
        lists = read_fold(dataframe, spec, fold)
        compare_membership(lists, shipped, found_source=str(dataframe), fold=fold)
        lists_source = str(dataframe)
    else:
        lists, lists_source = shipped, str(shipped_splits_dir)

    exam_ids, bad_names = {}, []
    for rows in lists.values():
        for row in rows:
            try:
                exam_ids[row.filename] = task.exam_id(row.filename)
            except ManualDataError as e:
                bad_names.append(str(e))
    if bad_names:
        raise ManualDataError(
            f"{len(bad_names)} filename(s) in the split lists in {lists_source} do "
            f"not follow the {task.name} naming scheme:\n{listing(bad_names)}\n"
            "Fix: use the file names of the official split lists."
        )
    check_groups_disjoint(
        lists, exam_ids.__getitem__, group_noun=task.group_noun, source=lists_source
    )
    source = layout.open(root)
    source.check_rows(lists)
    groups = duplicate_groups(_read_all(source, lists))
    if groups:
        logging.warning(
            "%s fold %d: %d group(s) of images have identical pixel content (kept; "
            "a group spanning two splits leaks an image from training into "
            "evaluation):\n%s",
            task.name,
            fold,
            len(groups),
            listing(
                [", ".join(f"{name} ({split})" for name, split in g) for g in groups],
                limit=len(groups),
            ),
        )
    records = {
        split: [
            Record(row.filename, row.label, exam_ids[row.filename])
            for row in sorted(rows, key=lambda r: r.filename)
        ]
        for split, rows in lists.items()
    }
    return records, source


def generate_examples(
    records: Sequence[Record], source: ImageSource
) -> Iterator[tuple[str, dict]]:
    """Yields `(key, example)` for TFDS; the key is the split-list filename."""
    for record in records:
        yield record.filename, {
            "image": source.read(record.filename),
            "label": record.label,
            "filename": record.filename,
            "exam_id": record.exam_id,
        }


class TaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the RadImageNet task builders: folds as configs, validated manual data.

    A subclass (named `Builder`, in `<name>_dataset_builder.py`) sets `VERSION`,
    `RELEASE_NOTES`, `BUILDER_CONFIGS` (`fold_configs(...)`),
    `MANUAL_DOWNLOAD_INSTRUCTIONS` (`layouts_help(...)`), `TASK` (its `TaskSpec`),
    `HOMEPAGE`, and `shipped_splits_dir()` (returning its module's `SPLITS_DIR`, read
    at build time so tests can point it elsewhere).
    """

    TASK: TaskSpec
    HOMEPAGE: str

    @abc.abstractmethod
    def shipped_splits_dir(self) -> epath.Path:
        """Folder of the official split lists shipped with the builder."""

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features(self.TASK.split_lists.label_names),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        records, source = prepare_fold(
            dl_manager.manual_dir,
            self.TASK,
            self.builder_config.fold,
            shipped_splits_dir=self.shipped_splits_dir(),
        )
        return {
            split: self._generate_examples(split_records, source)
            for split, split_records in records.items()
        }

    def _generate_examples(self, records: Sequence[Record], source: ImageSource):
        yield from generate_examples(records, source)
