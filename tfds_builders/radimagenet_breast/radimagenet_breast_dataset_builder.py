"""RadImageNet breast-lesion task: BUSI ultrasound images, official 5 folds."""

from __future__ import annotations

import pathlib
import re

import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import radimagenet_common as common

# The official RadImageNet split lists (`breast_{train,val,test}_fold{1..5}.csv`)
# shipped with the builder. Tests may point this elsewhere.
SPLITS_DIR = epath.Path(__file__).parent / "splits"

_LABELS = ("benign", "malignant")
_HOMEPAGE = "https://scholar.cu.edu.eg/?q=afahmy/pages/dataset"
_BUSI_FOLDER = "Dataset_BUSI_with_GT"

SPLIT_LISTS = common.SplitListSpec(
    file_pattern="breast_{split}_fold{fold}.csv",
    label_column="label",
    label_names=_LABELS,
)

# `images/benign (12).png`; BUSI keeps it as `benign/benign (12).png`.
_BUSI_NAME = re.compile(r"(?P<cls>benign|malignant|normal) \(\d+\)\.png")


def exam_id(filename: str) -> str:
    """The image's stem (`images/benign (12).png` -> `benign (12)`): BUSI has no patient IDs."""
    return pathlib.PurePosixPath(filename).stem


def busi_path(filename: str) -> str:
    """Where a RadImageNet breast file sits in the BUSI download, relative to its root.

    Args:
        filename: str, e.g. `"images/benign (12).png"`.

    Returns:
        e.g. `"benign/benign (12).png"`.

    Raises:
        ManualDataError: the name is not `<benign|malignant|normal> (n).png`.
    """
    name = pathlib.PurePosixPath(filename).name
    match = _BUSI_NAME.fullmatch(name)
    if match is None:
        raise common.ManualDataError(
            f"{filename!r} cannot be located in {_BUSI_FOLDER}/: expected a name "
            "`<benign|malignant|normal> (n).png` as in the official split lists. Fix: "
            "build from the RadImageNet layout (images/ + dataframe/) for custom files."
        )
    return f"{match['cls']}/{name}"


_BUSI_LAYOUT = common.Layout(
    name="busi",
    title=f"BUSI download layout ({_BUSI_FOLDER}/ as its authors distribute it)",
    required=("benign/", "malignant/", "normal/"),
    instructions=(
        f"Unzip the BUSI archive ({_HOMEPAGE}, or Kaggle "
        "aryashah2k/breast-ultrasound-images-dataset):\n"
        "<class>/<class> (n).png are the images; the `_mask.png` / `_mask_1.png` files "
        "beside them are ignored.\nmanual_dir may be the folder containing "
        f"{_BUSI_FOLDER}/ or that folder itself. The official split lists shipped with "
        "the builder pick the images (normal images are labelled benign)."
    ),
    open=lambda root: common.PngFolderSource(root, busi_path),
    roots=(_BUSI_FOLDER, ""),
)

TASK = common.TaskSpec(
    name="radimagenet_breast",
    split_lists=SPLIT_LISTS,
    layouts=(
        common.radimagenet_layout("breast", SPLIT_LISTS, "images/benign (12).png"),
        _BUSI_LAYOUT,
    ),
    exam_id=exam_id,
    group_noun="image",
)


class Builder(common.TaskBuilder):
    """RadImageNet breast-lesion task (BUSI ultrasound), official folds 1-5.

    Reference: Mei et al., "RadImageNet: An Open Radiologic Deep Learning Research
    Dataset for Effective Transfer Learning", Radiology: AI 2022 (doi 10.1148/ryai.210315).

    Example (on the builder's own dummy data; any layout in MANUAL_DOWNLOAD_INSTRUCTIONS works):
        tfds build tfds_builders/radimagenet_breast --config=fold1 \\
            --manual_dir=tfds_builders/radimagenet_breast/dummy_data --data_dir=/tmp/tfds
        ds = tfds.load("radimagenet_breast/fold1", split="test", data_dir="/tmp/tfds")
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: official RadImageNet folds 1-5, from the "
        "RadImageNet `breast/` folder or the BUSI download.",
    }
    BUILDER_CONFIGS = common.fold_configs("Breast lesion, ultrasound (BUSI)")
    MANUAL_DOWNLOAD_INSTRUCTIONS = common.layouts_help(
        TASK.layouts,
        "Place the RadImageNet breast data (the `breast/` folder of the RadImageNet "
        "downstream-task data) or the BUSI download (Dataset_BUSI_with_GT) in "
        "manual_dir.",
    )

    TASK = TASK
    HOMEPAGE = _HOMEPAGE

    def shipped_splits_dir(self) -> epath.Path:
        return SPLITS_DIR
