"""RadImageNet ACL-tear task: sagittal knee-MRI slices from MRNet, official 5 folds."""

from __future__ import annotations

import collections
import io
import re
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import radimagenet_common as common

# The official RadImageNet split lists (`{train,val,test}_fold{1..5}.csv`) shipped with
# the builder. Tests may point this elsewhere.
SPLITS_DIR = epath.Path(__file__).parent / "splits"

_LABELS = ("no", "yes")
_HOMEPAGE = "https://stanfordmlgroup.github.io/competitions/mrnet/"
_MRNET_SUBSETS = ("train", "valid")

SPLIT_LISTS = common.SplitListSpec(
    file_pattern="{split}_fold{fold}.csv", label_column="acl_label", label_names=_LABELS
)

# `images/1046_sagittal_10.000000.png`: MRNet exam 1046, sagittal slice 10.
_FILENAME = re.compile(r"(?:.*/)?(?P<exam>\d{4})_sagittal_(?P<slice>\d+)\.0+\.png")


def parse_filename(filename: str) -> tuple[str, int]:
    """Returns `(exam_id, slice_index)` of a RadImageNet ACL file name.

    Args:
        filename: str, e.g. `"images/1046_sagittal_10.000000.png"`.

    Returns:
        `("1046", 10)`: the 4-digit MRNet exam number as text and the sagittal slice.

    Raises:
        ManualDataError: the name does not follow `NNNN_sagittal_S.000000.png`.
    """
    match = _FILENAME.fullmatch(filename)
    if match is None:
        raise common.ManualDataError(
            f"{filename!r}: expected `images/NNNN_sagittal_S.000000.png` (NNNN the "
            "4-digit MRNet exam, S the sagittal slice)"
        )
    return match["exam"], int(match["slice"])


def exam_id(filename: str) -> str:
    """The MRNet exam number (4 digits, as text) of a RadImageNet ACL file name."""
    return parse_filename(filename)[0]


class MrnetSource(common.ImageSource):
    """Slices of the MRNet release's sagittal volumes.

    `root/{train,valid}/sagittal/NNNN.npy` hold uint8 volumes (slices, H, W);
    `root/{train,valid}-acl.csv` hold `exam,label` rows (no header, label 0/1). The
    RadImageNet file `NNNN_sagittal_S.000000.png` is slice S of exam NNNN, returned
    as a 3-channel image (greyscale replicated), exactly what PIL's `convert("RGB")`
    gives for that slice saved as a greyscale PNG.

    Args:
        root: the folder holding `train/`, `valid/` and the label CSVs.
    """

    def __init__(self, root: epath.PathLike):
        self.root = epath.Path(root)
        self.labels = {}  # exam id -> (0 or 1, label file)
        for subset in _MRNET_SUBSETS:
            self._read_labels(self.root / f"{subset}-acl.csv")
        self._cached = (None, None)  # (volume path, volume): slices come in exam order.

    def _read_labels(self, path: epath.Path) -> None:
        with tf.io.gfile.GFile(str(path), "r") as f:
            lines = f.read().splitlines()
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split(",")]
            if len(fields) != 2 or not fields[0].isdigit() or fields[1] not in ("0", "1"):
                raise common.ManualDataError(
                    f"MRNet label file {path}, line {line_number}: expected "
                    f"`exam,label` with a numeric exam and label 0 or 1 (no header), "
                    f"found {line!r}. Fix: use the unmodified train-acl.csv / "
                    "valid-acl.csv of the MRNet release."
                )
            self.labels[f"{int(fields[0]):04d}"] = (int(fields[1]), path)

    def _volume_path(self, exam: str) -> str | None:
        for subset in _MRNET_SUBSETS:
            path = str(self.root / subset / "sagittal" / f"{exam}.npy")
            if tf.io.gfile.exists(path):
                return path
        return None

    def location(self, filename: str) -> str:
        exam, slice_index = parse_filename(filename)
        path = self._volume_path(exam) or str(
            self.root / "{train,valid}" / "sagittal" / f"{exam}.npy"
        )
        return f"{path} (slice {slice_index})"

    def _volume(self, path: str) -> np.ndarray:
        if self._cached[0] == path:
            return self._cached[1]
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                volume = np.load(io.BytesIO(f.read()), allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise common.UnreadableImageError(
                f"{path}: cannot be read as a .npy volume ({type(e).__name__}: {e})"
            ) from e
        if volume.ndim != 3 or volume.dtype != np.uint8:
            raise common.UnreadableImageError(
                f"{path}: expected a uint8 volume of shape (slices, H, W), found "
                f"dtype {volume.dtype} and shape {volume.shape}"
            )
        self._cached = (path, volume)
        return volume

    def read(self, filename: str) -> np.ndarray:
        exam, slice_index = parse_filename(filename)
        path = self._volume_path(exam)
        if path is None:
            raise common.MissingFileError(
                f"{filename}: volume {exam}.npy is in neither "
                f"{self.root / 'train' / 'sagittal'} nor {self.root / 'valid' / 'sagittal'}"
            )
        volume = self._volume(path)
        if slice_index >= volume.shape[0]:
            raise common.MissingFileError(
                f"{filename}: {path} has {volume.shape[0]} slices, so slice "
                f"{slice_index} does not exist"
            )
        return common.grey_to_rgb(volume[slice_index])

    def check_rows(self, lists: Mapping[str, Sequence[common.Row]]) -> None:
        """Checks that every exam has an MRNet label equal to the split-list label.

        Raises:
            ManualDataError: naming each exam without an MRNet label or whose MRNet
                label (yes = 1) disagrees with the split lists.
        """
        files_of = collections.defaultdict(list)  # (exam, split-list label) -> files
        for rows in lists.values():
            for row in rows:
                files_of[exam_id(row.filename), row.label].append(row.filename)
        unlabelled, disagree = set(), []
        for (exam, label), files in sorted(files_of.items()):
            if exam not in self.labels:
                unlabelled.add(f"exam {exam} ({files[0]})")
                continue
            mrnet_label, path = self.labels[exam]
            if (label == "yes") != (mrnet_label == 1):
                disagree.append(
                    f"exam {exam}: {path.name} says {mrnet_label}, the split lists "
                    f"say {label!r} for {len(files)} file(s): {', '.join(sorted(files))}"
                )
        if unlabelled:
            raise common.ManualDataError(
                f"{len(unlabelled)} exam(s) in the split lists have no row in "
                f"{self.root / 'train-acl.csv'} or {self.root / 'valid-acl.csv'}:\n"
                f"{common.listing(sorted(unlabelled))}\n"
                "Fix: use the complete label files of the MRNet release."
            )
        if disagree:
            raise common.ManualDataError(
                f"The MRNet ACL labels disagree with the split lists (yes = 1) for "
                f"{len(disagree)} exam(s):\n{common.listing(disagree)}\n"
                "Fix: check that manual_dir holds the MRNet v1.0 release and its "
                "train-acl.csv / valid-acl.csv unchanged."
            )


_MRNET_LAYOUT = common.Layout(
    name="mrnet",
    title=f"MRNet release layout ({_HOMEPAGE})",
    required=("train/sagittal/", "valid/sagittal/", "train-acl.csv", "valid-acl.csv"),
    instructions=(
        "Unzip MRNet-v1.0.zip: {train,valid}/sagittal/NNNN.npy are the sagittal "
        "volumes (slices, H, W) uint8;\n{train,valid}-acl.csv the labels (`exam,label`, "
        "no header). The official split lists shipped with the builder pick the slices."
    ),
    open=MrnetSource,
    roots=("", "MRNet-v1.0"),
)

TASK = common.TaskSpec(
    name="radimagenet_acl",
    split_lists=SPLIT_LISTS,
    layouts=(
        common.radimagenet_layout("acl", SPLIT_LISTS, "images/1046_sagittal_10.000000.png"),
        _MRNET_LAYOUT,
    ),
    exam_id=exam_id,
    group_noun="MRNet exam",
)


class Builder(common.TaskBuilder):
    """RadImageNet ACL-tear task (MRNet sagittal slices), official folds 1-5.

    Reference: Mei et al., "RadImageNet: An Open Radiologic Deep Learning Research
    Dataset for Effective Transfer Learning", Radiology: AI 2022 (doi 10.1148/ryai.210315).

    Example (on the builder's own dummy data; any layout in MANUAL_DOWNLOAD_INSTRUCTIONS works):
        tfds build tfds_builders/radimagenet_acl --config=fold1 \\
            --manual_dir=tfds_builders/radimagenet_acl/dummy_data --data_dir=/tmp/tfds
        ds = tfds.load("radimagenet_acl/fold1", split="test", data_dir="/tmp/tfds")
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: official RadImageNet folds 1-5, from the "
        "RadImageNet `acl/` folder or the MRNet release.",
    }
    BUILDER_CONFIGS = common.fold_configs("ACL tear, knee MRI (MRNet sagittal slices)")
    MANUAL_DOWNLOAD_INSTRUCTIONS = common.layouts_help(
        TASK.layouts,
        "Place the RadImageNet ACL data (the `acl/` folder of the RadImageNet "
        "downstream-task data) or the MRNet v1.0 release in manual_dir.",
    )

    TASK = TASK
    HOMEPAGE = _HOMEPAGE

    def shipped_splits_dir(self) -> epath.Path:
        return SPLITS_DIR
