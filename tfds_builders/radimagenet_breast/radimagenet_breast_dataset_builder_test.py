"""Tests of the radimagenet_breast builder: dummy data, the BUSI layout, the official folds, the CLI."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import radimagenet_common as common
from tfds_builders import radimagenet_testing as rt
from tfds_builders.radimagenet_breast import radimagenet_breast_dataset_builder as breast

SPEC = breast.SPLIT_LISTS
SHIPPED = rt.read_folds(breast.SPLITS_DIR, SPEC)  # The official lists, read with `csv`.
FOLDER = pathlib.Path(breast.__file__).parent


class RadimagenetBreastTest(tfds.testing.DatasetBuilderTestCase):
    """Builds `dummy_data/` (the RadImageNet `breast/` layout with its own dataframe/)."""

    DATASET_CLASS = breast.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["fold1", "fold3"]
    SPLITS = {"train": 6, "val": 2, "test": 2}


def _images(rows, size=8):
    """Synthetic pixels per filename; every other image RGB, the rest greyscale."""
    return {
        f: rt.synthetic_image(f, size, channels=3 if i % 2 else 1)
        for i, f in enumerate(sorted(rows))
    }


@pytest.mark.parametrize("busi_root", ["parent", "itself"])
def test_busi_download_gives_the_same_examples_as_the_radimagenet_layout(
    tmp_path, monkeypatch, busi_root
):
    # Official fold-1 membership cut to 4 files per split, as the shipped lists.
    folds = {1: {split: rows[:4] for split, rows in SHIPPED[1].items()}}
    rt.write_split_lists(tmp_path / "splits", SPEC, folds)
    monkeypatch.setattr(breast, "SPLITS_DIR", tmp_path / "splits")
    images = _images(rt.all_rows(folds))
    radimagenet = rt.write_radimagenet_layout(tmp_path / "breast", images)
    busi = rt.write_busi_layout(tmp_path / "busi", images)
    assert any(busi.glob("*/* (*)_mask_1.png"))  # Masks are there (see the mask tests).
    from_png = rt.build(breast.Builder, radimagenet, tmp_path / "d1")
    from_busi = rt.build(
        breast.Builder, tmp_path / "busi" if busi_root == "parent" else busi, tmp_path / "d2"
    )
    for split, rows in folds[1].items():
        png, orig = rt.examples_by_filename(from_png, split), rt.examples_by_filename(from_busi, split)
        assert sorted(png) == sorted(orig) == sorted(f for f, _ in rows)
        for filename, label in rows:
            pixels = images[filename]
            rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
            np.testing.assert_array_equal(png[filename]["image"], rgb)
            np.testing.assert_array_equal(orig[filename]["image"], rgb)
            assert png[filename]["label"] == orig[filename]["label"] == SPEC.label_names.index(label)
            stem = filename[len("images/"):-len(".png")]
            assert png[filename]["exam_id"] == orig[filename]["exam_id"] == stem.encode()


def _blob(shape, top, left, height, width, value=255):
    """A (H, W) uint8 mask with one rectangle of `value`."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top:top + height, left:left + width] = value
    return mask


@pytest.fixture
def busi_with_masks(tmp_path, monkeypatch):
    """A BUSI download of 9 images (8 x 8 px) whose mask files are set per image.

    Returns `(busi folder, folds, images, {filename: [mask pixels as written]})`.
    """
    folds = {1: {split: rows[:3] for split, rows in SHIPPED[1].items()}}
    rt.write_split_lists(tmp_path / "splits", SPEC, folds)
    monkeypatch.setattr(breast, "SPLITS_DIR", tmp_path / "splits")
    images = _images(rt.all_rows(folds))
    busi = rt.write_busi_layout(tmp_path, images)
    for mask_file in busi.glob("*/*_mask*.png"):
        mask_file.unlink()
    shape = (8, 8)
    written = {}
    for i, filename in enumerate(sorted(images)):
        cls, name = breast.busi_path(filename).split("/")
        stem = name[: -len(".png")]
        if i == 0:  # One lesion, mask stored as an RGB PNG.
            masks = {"_mask": np.repeat(_blob(shape, 1, 1, 3, 2)[..., None], 3, axis=2)}
        elif i == 1:  # Three lesions (overlapping), as BUSI's `_mask_1` / `_mask_2` cases.
            masks = {"_mask": _blob(shape, 0, 0, 2, 2), "_mask_1": _blob(shape, 1, 1, 4, 4),
                     "_mask_2": _blob(shape, 6, 5, 2, 3)}
        elif i == 2:  # No mask file at all.
            masks = {}
        elif i == 3:  # An empty mask (normal images in BUSI), and a 0/1-valued second one.
            masks = {"_mask": _blob(shape, 0, 0, 0, 0), "_mask_1": _blob(shape, 2, 3, 1, 5, value=1)}
        else:
            masks = {"_mask": _blob(shape, i % 5, i % 3, 2 + i % 4, 3)}
        for suffix, pixels in masks.items():
            rt.write_png(busi / cls / f"{stem}{suffix}.png", pixels)
        written[filename] = list(masks.values())
    return busi, folds, images, written


def test_busi_masks_are_the_pixel_exact_union_of_their_files(busi_with_masks, tmp_path):
    busi, folds, images, written = busi_with_masks
    assert sum(len(m) > 1 for m in written.values()) == 2 and sum(not m for m in written.values()) == 1
    builder = rt.build(breast.Builder, busi, tmp_path / "data")
    assert str(builder.info.version) == "1.1.0"
    seen = 0
    for split, rows in folds[1].items():
        for filename, example in rt.examples_by_filename(builder, split).items():
            files = written[filename]
            union = np.zeros((8, 8), dtype=np.uint8)
            for pixels in files:
                union |= (pixels if pixels.ndim == 2 else pixels[..., 0]) > 0
            assert example["mask"].shape == (8, 8, 1) and example["mask"].dtype == np.uint8
            np.testing.assert_array_equal(example["mask"][..., 0], union)
            assert example["has_mask"] == bool(files)
            seen += 1
    assert seen == len(images) == 9


def test_busi_mask_of_another_size_is_an_error_naming_both_files(busi_with_masks, tmp_path):
    busi, _, images, _ = busi_with_masks
    cls, name = breast.busi_path(sorted(images)[4]).split("/")
    rt.write_png(busi / cls / name.replace(".png", "_mask_1.png"), np.zeros((8, 9), np.uint8))
    with pytest.raises(
        common.ManualDataError,
        match=rf"{re.escape(name[:-4])}_mask_1.png: the mask is 9x8 px \(width x height\) but its "
        rf"image .*{re.escape(name)} is 8x8 px\. Fix: replace the mask",
    ):
        rt.build(breast.Builder, busi, tmp_path / "data")
    assert not list((tmp_path / "data").glob("**/*.tfrecord*"))


def test_radimagenet_layout_has_no_masks(tmp_path):
    builder = rt.build(breast.Builder, FOLDER / "dummy_data", tmp_path / "data")
    for split in ("train", "val", "test"):
        for example in rt.examples_by_filename(builder, split).values():
            assert not example["has_mask"]
            assert example["mask"].shape == example["image"].shape[:2] + (1,)
            assert not example["mask"].any()


def test_busi_layout_rejects_names_it_cannot_locate(tmp_path, monkeypatch):
    rows = [("images/benign (1).png", "benign"), ("images/cyst (1).png", "benign")]
    folds = {1: {"train": rows, "val": [("images/malignant (1).png", "malignant")],
                 "test": [("images/normal (1).png", "benign")]}}
    rt.write_split_lists(tmp_path / "splits", SPEC, folds)
    monkeypatch.setattr(breast, "SPLITS_DIR", tmp_path / "splits")
    rt.write_busi_layout(tmp_path / "busi", _images(rt.all_rows(folds)))
    with pytest.raises(
        common.ManualDataError,
        match=r"'images/cyst \(1\).png' cannot be located in Dataset_BUSI_with_GT/: "
        r"expected a name `<benign\|malignant\|normal> \(n\).png`",
    ):
        rt.build(breast.Builder, tmp_path / "busi", tmp_path / "data")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Every file of the shipped lists as a tiny image, in both layouts."""
    root = tmp_path_factory.mktemp("breast_full")
    images = _images(rt.all_rows(SHIPPED), size=4)
    rt.write_radimagenet_layout(root / "breast", images)  # No dataframe/: shipped lists.
    rt.write_busi_layout(root, images)
    return root


@pytest.mark.parametrize("fold", range(1, 6))
def test_every_fold_has_the_official_membership(full, fold):
    assert len(rt.all_rows(SHIPPED)) == 780
    builder = rt.build(breast.Builder, full / "breast", full / "data", f"fold{fold}")
    seen = set()
    for split, rows in SHIPPED[fold].items():
        examples = rt.examples_by_filename(builder, split)
        assert builder.info.splits[split].num_examples == len(rows)
        assert {f: SPEC.label_names[e["label"]] for f, e in examples.items()} == dict(rows)
        assert not seen & examples.keys()
        seen |= examples.keys()
    assert len(seen) == 780


def test_both_layouts_give_identical_examples_for_the_official_fold1(full):
    from_png = rt.build(breast.Builder, full / "breast", full / "data", "fold1")  # Reused if built.
    from_busi = rt.build(breast.Builder, full / "Dataset_BUSI_with_GT", full / "data_busi", "fold1")
    rt.assert_same_examples(from_png, from_busi, SHIPPED[1])


def test_tfds_build_command_line(tmp_path):
    """`tfds build <folder> --manual_dir --data_dir --config`, offline, then `tfds.load`."""
    result = rt.tfds_build_cli(FOLDER, tmp_path, manual_dir=FOLDER / "dummy_data")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    splits = tfds.load("radimagenet_breast/fold1", data_dir=str(tmp_path), download=False)
    dummy = rt.read_folds(FOLDER / "dummy_data" / "dataframe", SPEC)[1]
    for split, rows in dummy.items():
        filenames = {e["filename"].decode() for e in tfds.as_numpy(splits[split])}
        assert filenames == {f for f, _ in rows}
