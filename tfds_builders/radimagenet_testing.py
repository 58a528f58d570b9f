"""Test helpers for the RadImageNet task builders: write fake `manual_dir` layouts.

Every image is synthetic (a few pixels derived from a hash of its file name), never
patient data. The helpers write the layouts the builders accept: the RadImageNet task
folder (`images/` + `dataframe/`), the BUSI download (`Dataset_BUSI_with_GT/` with mask
files) and the MRNet release (`{train,valid}/sagittal/NNNN.npy` + label CSVs).
"""

from __future__ import annotations

import csv
import hashlib
import pathlib
from collections.abc import Iterable, Mapping

import numpy as np
import PIL.Image

from tfds_builders import radimagenet_common as common

# MRNet's train subset holds exams 0000-1129, valid 1130-1249.
MRNET_FIRST_VALID_EXAM = 1130


def synthetic_image(name: str, size: int = 8, channels: int = 1) -> np.ndarray:
    """Deterministic, name-specific uint8 pixels: (size, size) or (size, size, channels)."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    shape = (size, size) if channels == 1 else (size, size, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_png(path: pathlib.Path, pixels: np.ndarray) -> None:
    """Writes (H, W) uint8 as a greyscale PNG or (H, W, 3) uint8 as an RGB PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(pixels).save(path, format="PNG")


def write_split_lists(
    directory: pathlib.Path,
    spec: common.SplitListSpec,
    folds: Mapping[int, Mapping[str, Iterable[tuple[str, str]]]],
) -> None:
    """Writes `{fold: {split: [(filename, label), ...]}}` as the task's split CSVs."""
    directory.mkdir(parents=True, exist_ok=True)
    for fold, lists in folds.items():
        for split, rows in lists.items():
            with open(directory / spec.file_name(split, fold), "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(spec.header)
                writer.writerows(rows)


def read_folds(
    directory: pathlib.Path, spec: common.SplitListSpec
) -> dict[int, dict[str, list[tuple[str, str]]]]:
    """Reads all folds' split lists as `{fold: {split: [(filename, label), ...]}}`.

    Uses the `csv` module directly (not the builders' reader), so tests that compare
    a build with the lists do not depend on the code under test.
    """
    folds = {}
    for fold in range(1, common.NUM_FOLDS + 1):
        folds[fold] = {}
        for split in common.SPLIT_NAMES:
            with open(directory / spec.file_name(split, fold), newline="") as f:
                rows = list(csv.reader(f))
            assert rows[0] == spec.header, (directory, rows[0])
            folds[fold][split] = [(filename, label) for filename, label in rows[1:]]
    return folds


def all_rows(
    folds: Mapping[int, Mapping[str, Iterable[tuple[str, str]]]],
) -> dict[str, str]:
    """`{filename: label}` over every split of every fold."""
    return {
        filename: label
        for lists in folds.values()
        for rows in lists.values()
        for filename, label in rows
    }


def write_radimagenet_layout(
    root: pathlib.Path,
    images: Mapping[str, np.ndarray],
    spec: common.SplitListSpec | None = None,
    folds: Mapping[int, Mapping[str, Iterable[tuple[str, str]]]] | None = None,
) -> pathlib.Path:
    """Writes a RadImageNet task folder: `images/...png` and, if `folds`, `dataframe/`.

    Args:
        root: the task folder (`acl/` or `breast/`) to create.
        images: `{filename as in the split lists: pixels}`.
        spec: the task's split-list spec (needed with `folds`).
        folds: split lists to write into `root/dataframe/`.

    Returns:
        `root`.
    """
    for filename, pixels in images.items():
        write_png(root / filename, pixels)
    if folds is not None:
        write_split_lists(root / "dataframe", spec, folds)
    return root


def write_busi_layout(root: pathlib.Path, images: Mapping[str, np.ndarray]) -> pathlib.Path:
    """Writes the BUSI download: `Dataset_BUSI_with_GT/<class>/<class> (n).png` + masks.

    Args:
        root: folder that will contain `Dataset_BUSI_with_GT/`.
        images: `{RadImageNet filename (images/benign (1).png): pixels}`.

    Returns:
        The `Dataset_BUSI_with_GT` folder.
    """
    busi = root / "Dataset_BUSI_with_GT"
    for filename, pixels in images.items():
        name = pathlib.PurePosixPath(filename).name
        cls = name.split(" ")[0]
        write_png(busi / cls / name, pixels)
        stem = name[: -len(".png")]
        # Masks (binary, same size) sit beside the images and must be ignored.
        grey = pixels if pixels.ndim == 2 else pixels[..., 0]
        mask = np.where(grey > 127, 255, 0).astype(np.uint8)
        write_png(busi / cls / f"{stem}_mask.png", mask)
        write_png(busi / cls / f"{stem}_mask_1.png", 255 - mask)
    return busi


def write_mrnet_layout(
    root: pathlib.Path,
    slices: Mapping[str, np.ndarray],
    labels: Mapping[str, int],
    *,
    size: int = 8,
    extra_slices: int = 2,
) -> pathlib.Path:
    """Writes the MRNet release for the given RadImageNet slices.

    Each exam's sagittal volume has `max(listed slice) + 1 + extra_slices` slices of
    shape (size, size); the listed slices hold the given pixels, the others synthetic
    ones. Exams below 1130 go to `train/`, the others to `valid/`.

    Args:
        root: the release folder (holds `train/`, `valid/`, `*-acl.csv`).
        slices: `{RadImageNet filename (images/NNNN_sagittal_S.000000.png): (H, W) pixels}`.
        labels: `{exam id (4 digits): 0 or 1}`, written to `{train,valid}-acl.csv`.

    Returns:
        `root`.
    """
    by_exam: dict[str, dict[int, np.ndarray]] = {}
    for filename, pixels in slices.items():
        exam, slice_part = pathlib.PurePosixPath(filename).name.split("_sagittal_")
        by_exam.setdefault(exam, {})[int(slice_part.split(".")[0])] = pixels
    subset_of = lambda exam: "train" if int(exam) < MRNET_FIRST_VALID_EXAM else "valid"
    for exam, exam_slices in by_exam.items():
        n = max(exam_slices) + 1 + extra_slices
        volume = np.stack([
            exam_slices.get(s, synthetic_image(f"{exam}/{s}", size)) for s in range(n)
        ])
        path = root / subset_of(exam) / "sagittal" / f"{exam}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, volume)
    for subset in ("train", "valid"):
        (root / subset / "sagittal").mkdir(parents=True, exist_ok=True)
        rows = sorted((e, l) for e, l in labels.items() if subset_of(e) == subset)
        (root / f"{subset}-acl.csv").write_text("".join(f"{e},{l}\n" for e, l in rows))
    return root


def build(builder_cls, manual_dir, data_dir, config: str = "fold1"):
    """Builds one config of a task builder from `manual_dir` into `data_dir` (no beam).

    Returns:
        The prepared builder.
    """
    import tensorflow_datasets as tfds  # Deferred: TensorFlow is slow to import.

    builder = builder_cls(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def examples_by_filename(builder, split: str) -> dict[str, dict]:
    """`{filename: example as numpy}` of one split of a prepared builder."""
    import tensorflow_datasets as tfds

    return {
        example["filename"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


def assert_same_examples(builder_a, builder_b, fold_lists) -> None:
    """Both builders hold exactly the listed files per split, with identical examples.

    Args:
        builder_a, builder_b: prepared builders of one config (e.g. two layouts).
        fold_lists: `{split: [(filename, label), ...]}` of that config.
    """
    for split, rows in fold_lists.items():
        a, b = examples_by_filename(builder_a, split), examples_by_filename(builder_b, split)
        assert sorted(a) == sorted(b) == sorted(f for f, _ in rows)
        for filename in a:
            np.testing.assert_array_equal(a[filename]["image"], b[filename]["image"])
            assert a[filename]["label"] == b[filename]["label"]
            assert a[filename]["exam_id"] == b[filename]["exam_id"]


def tfds_build_cli(builder_folder, data_dir, *, manual_dir=None, config="fold1"):
    """Runs the real `tfds build` command line offline; returns the CompletedProcess.

    Args:
        builder_folder: the builder's folder (what the README passes to `tfds build`).
        data_dir: where TFDS writes.
        manual_dir: the manual download, or None for generated datasets.
        config: config name. Defaults to "fold1".
    """
    import os
    import subprocess
    import sys

    tfds_cli = pathlib.Path(sys.executable).parent / "tfds"
    command = [str(tfds_cli), "build", str(builder_folder), f"--data_dir={data_dir}", f"--config={config}"]
    if manual_dir is not None:
        command.append(f"--manual_dir={manual_dir}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
