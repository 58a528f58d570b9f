"""RadImageNet breast-lesion task: BUSI ultrasound images, official 5 folds, lesion masks."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import re
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
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


def features() -> tfds.features.FeaturesDict:
    """The features of this dataset (and of `synthetic_lesions`, which imitates it).

    Returns:
        The RadImageNet task features (`image`, `label` benign/malignant, `filename`,
        `exam_id`; see `radimagenet_common.features`) plus the lesion segmentation:
        `mask`, uint8 (None, None, 1) PNG of the image's height and width, 1 where a
        pixel belongs to a lesion and 0 elsewhere (all 0 when there is no mask);
        `has_mask`, bool, whether `mask` is a real annotation.
    """
    schema = dict(common.features(_LABELS))
    schema["mask"] = tfds.features.Image(shape=(None, None, 1), dtype=np.uint8, encoding_format="png")
    schema["has_mask"] = tfds.features.Scalar(dtype=np.bool_)
    return tfds.features.FeaturesDict(schema)


def no_mask(image: np.ndarray) -> np.ndarray:
    """The `mask` value of an image without annotation: zeros (H, W, 1) uint8."""
    return np.zeros(image.shape[:2] + (1,), dtype=np.uint8)


# `<stem>_mask.png`, `<stem>_mask_1.png`, ... beside `<stem>.png` in a BUSI class folder.
_BUSI_MASK_NAME = re.compile(r"(?P<stem>.+)_mask(?:_\d+)?\.png")


class UnannotatedSource(common.PngFolderSource):
    """PNG files without lesion masks (the RadImageNet layout)."""

    def mask(self, filename: str, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """`(all-zero mask of the image's size, False)`."""
        del filename
        return no_mask(image), False


class BusiSource(common.PngFolderSource):
    """The BUSI download: images and, beside each, its lesion masks.

    BUSI stores one binary mask per lesion: `<class> (n)_mask.png` and, for images
    with several lesions, `<class> (n)_mask_1.png`, `_mask_2.png`, ... A pixel is
    lesion (1) if it is non-zero in any of them (the union). Images without any mask
    file get `has_mask` False (the build logs them as a warning).

    Args:
        root: the `Dataset_BUSI_with_GT` folder.
    """

    def __init__(self, root: epath.PathLike):
        super().__init__(root, busi_path)
        self._mask_files: dict[str, list[str]] | None = None

    def mask_files(self, filename: str) -> list[str]:
        """Paths of the mask files of a split-list filename, sorted (may be empty)."""
        if self._mask_files is None:
            found = collections.defaultdict(list)
            for cls in ("benign", "malignant", "normal"):
                folder = self.root / cls
                for name in tf.io.gfile.listdir(str(folder)):
                    match = _BUSI_MASK_NAME.fullmatch(name)
                    if match:
                        found[f"{cls}/{match['stem']}"].append(str(folder / name))
            self._mask_files = {key: sorted(paths) for key, paths in found.items()}
        return self._mask_files.get(busi_path(filename)[: -len(".png")], [])

    def check_rows(self, lists: Mapping[str, Sequence[common.Row]]) -> None:
        """Logs the listed images that have no mask file (they get `has_mask` False)."""
        unmasked = sorted(
            self.location(row.filename)
            for rows in lists.values()
            for row in rows
            if not self.mask_files(row.filename)
        )
        if unmasked:
            logging.warning(
                "%d BUSI image(s) have no `_mask.png` beside them; they are stored with "
                "has_mask=False and an all-zero mask:\n%s",
                len(unmasked),
                common.listing(unmasked),
            )

    def read(self, filename: str) -> np.ndarray:
        """Reads the image and checks its masks decode and match its size."""
        image = super().read(filename)
        self.mask(filename, image)
        return image

    def mask(self, filename: str, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """The union of the image's masks, uint8 (H, W, 1) in {0, 1}, and whether it has any.

        Raises:
            UnreadableImageError: a mask file cannot be read or decoded.
            ManualDataError: a mask's size differs from the image's.
        """
        paths = self.mask_files(filename)
        union = no_mask(image)
        for path in paths:
            try:
                with tf.io.gfile.GFile(path, "rb") as f:
                    data = f.read()
            except tf.errors.OpError as e:
                raise common.UnreadableImageError(f"{path}: cannot be read ({e.message})") from e
            # Non-zero in any channel is lesion (BUSI masks are 0/255, some stored as RGB).
            pixels = common.decode_png_rgb(data, path).max(axis=2)
            if pixels.shape != image.shape[:2]:
                raise common.ManualDataError(
                    f"{path}: the mask is {pixels.shape[1]}x{pixels.shape[0]} px (width x height) "
                    f"but its image {self.location(filename)} is {image.shape[1]}x{image.shape[0]} px. "
                    "Fix: replace the mask with the intact file from the BUSI download, or delete "
                    "it (the image is then stored with has_mask=False)."
                )
            union[..., 0] |= (pixels > 0).astype(np.uint8)
        return union, bool(paths)


_BUSI_LAYOUT = common.Layout(
    name="busi",
    title=f"BUSI download layout ({_BUSI_FOLDER}/ as its authors distribute it)",
    required=("benign/", "malignant/", "normal/"),
    instructions=(
        f"Unzip the BUSI archive ({_HOMEPAGE}, or Kaggle "
        "aryashah2k/breast-ultrasound-images-dataset):\n"
        "<class>/<class> (n).png are the images; the `<class> (n)_mask.png` (and "
        "`_mask_1.png`, `_mask_2.png`, ...) files beside them are their lesion masks, "
        "stored as their union.\nmanual_dir may be the folder containing "
        f"{_BUSI_FOLDER}/ or that folder itself. The official split lists shipped with "
        "the builder pick the images (normal images are labelled benign)."
    ),
    open=BusiSource,
    roots=(_BUSI_FOLDER, ""),
)

TASK = common.TaskSpec(
    name="radimagenet_breast",
    split_lists=SPLIT_LISTS,
    layouts=(
        dataclasses.replace(
            common.radimagenet_layout("breast", SPLIT_LISTS, "images/benign (12).png"),
            open=UnannotatedSource,
        ),
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

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: official RadImageNet folds 1-5, from the "
        "RadImageNet `breast/` folder or the BUSI download.",
        "1.1.0": "Lesion masks: `mask` (uint8, H x W x 1, 1 = lesion; the union of "
        "BUSI's `_mask*.png` files) and `has_mask` (False, with an all-zero mask, when "
        "built from the RadImageNet layout, which has no masks). Images, labels and "
        "splits unchanged.",
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

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features(), supervised_keys=("image", "label"), homepage=self.HOMEPAGE
        )

    def _generate_examples(self, records, source):
        for key, example in common.generate_examples(records, source):
            example["mask"], example["has_mask"] = source.mask(example["filename"], example["image"])
            yield key, example
