"""Tests of the validation shared by the RadImageNet task builders.

Each bad input is built through a real builder (`radimagenet_breast`, the cheaper one):
the error must come from `_split_generators`, name the file and the fix, and leave
nothing that `tfds.load` would read as a complete dataset.
"""

import logging
import pathlib
import re
import shutil

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from tfds_builders import radimagenet_common as common
from tfds_builders import radimagenet_testing as rt
from tfds_builders.radimagenet_breast import radimagenet_breast_dataset_builder as breast

DUMMY = pathlib.Path(breast.__file__).parent / "dummy_data"
SPEC = breast.SPLIT_LISTS


@pytest.fixture
def manual_dir(tmp_path):
    """A writable copy of the breast dummy data (RadImageNet layout with dataframe/)."""
    return pathlib.Path(shutil.copytree(DUMMY, tmp_path / "breast"))


def _build(manual_dir, data_dir, config="fold1"):
    return rt.build(breast.Builder, manual_dir, data_dir, config)


def _assert_not_prepared(data_dir):
    """A failed build must leave nothing that reads as a complete dataset."""
    assert not breast.Builder(config="fold1", data_dir=str(data_dir)).is_prepared()
    with pytest.raises(Exception, match="could not find data in"):
        tfds.load("radimagenet_breast/fold1", data_dir=str(data_dir), download=False)


def _edit_csv(path, edit):
    path.write_text(edit(path.read_text()))


def test_wrong_header_names_expected_and_found_columns(manual_dir, tmp_path):
    csv_path = manual_dir / "dataframe" / "breast_val_fold1.csv"
    _edit_csv(csv_path, lambda text: text.replace("filename,label", "filename,acl_label"))
    with pytest.raises(common.ManualDataError) as error:
        _build(manual_dir, tmp_path / "data")
    message = str(error.value)
    assert str(csv_path) in message
    assert "expected columns ['filename', 'label']" in message
    assert "found ['filename', 'acl_label']" in message
    _assert_not_prepared(tmp_path / "data")


def test_unknown_label_names_file_line_and_allowed_labels(manual_dir, tmp_path):
    csv_path = manual_dir / "dataframe" / "breast_train_fold1.csv"
    _edit_csv(csv_path, lambda text: text.replace(",malignant", ",cancer", 1))
    with pytest.raises(
        common.ManualDataError,
        match=r"(?s)breast_train_fold1\.csv has 1 unknown label\(s\) in column `label`; "
        r"allowed: \['benign', 'malignant'\]:\n  line 2: 'images/malignant \(1\).png' has "
        r"label 'cancer'.*Fix: use one of the allowed labels",
    ):
        _build(manual_dir, tmp_path / "data")
    _assert_not_prepared(tmp_path / "data")


def test_file_in_two_splits_of_a_fold_is_an_error(manual_dir, tmp_path):
    test_csv = manual_dir / "dataframe" / "breast_test_fold1.csv"
    first_test_row = test_csv.read_text().splitlines()[1]
    _edit_csv(
        manual_dir / "dataframe" / "breast_train_fold1.csv",
        lambda text: text + first_test_row + "\n",
    )
    filename = first_test_row.split(",")[0]
    with pytest.raises(
        common.ManualDataError,
        match=rf"(?s)1 file\(s\) in two splits.*{re.escape(filename)}: "
        r"in breast_train_fold1\.csv and breast_test_fold1\.csv",
    ):
        _build(manual_dir, tmp_path / "data")
    _assert_not_prepared(tmp_path / "data")


def test_missing_image_names_path_and_fix(manual_dir, tmp_path):
    (manual_dir / "images" / "malignant (2).png").unlink()
    with pytest.raises(common.MissingFileError) as error:
        _build(manual_dir, tmp_path / "data")
    message = str(error.value)
    assert "1 image(s) named in the split lists are missing" in message
    assert str(manual_dir / "images" / "malignant (2).png") in message
    assert "Fix: place every listed image" in message
    _assert_not_prepared(tmp_path / "data")


@pytest.mark.parametrize(
    "content", [b"not a png at all", None], ids=["garbage", "truncated"]
)
def test_corrupt_png_names_path_and_decoder_error(manual_dir, tmp_path, content):
    path = manual_dir / "images" / "benign (3).png"
    if content is None:  # A PNG cut in the middle of its pixel data.
        content = path.read_bytes()[:60]
    path.write_bytes(content)
    with pytest.raises(
        common.UnreadableImageError,
        match=rf"(?s)1 image\(s\) named in the split lists cannot be read.*"
        rf"{re.escape(str(path))}: cannot be decoded as an image.*Fix: replace",
    ):
        _build(manual_dir, tmp_path / "data")
    _assert_not_prepared(tmp_path / "data")


def test_no_layout_lists_expected_files_of_every_layout(tmp_path):
    manual = tmp_path / "manual"
    (manual / "something_else").mkdir(parents=True)
    with pytest.raises(common.MissingFileError) as error:
        _build(manual, tmp_path / "data")
    message = str(error.value)
    assert f"manual_dir {manual} holds none of the supported layouts" in message
    assert "'something_else'" in message
    # Each layout, each candidate root, what it expects and lacks.
    assert f"RadImageNet layout (the breast/ folder of {common.RADIMAGENET_URL}) in {manual}: " \
           "expected images/; missing images/." in message
    assert f"in {manual / 'Dataset_BUSI_with_GT'}: expected benign/, malignant/, normal/" in message
    assert "breast_{train,val,test}_fold{1..5}.csv" in message
    _assert_not_prepared(tmp_path / "data")


def test_missing_manual_dir_shows_instructions_for_every_layout(tmp_path):
    with pytest.raises(AssertionError) as error:
        _build(tmp_path / "does_not_exist", tmp_path / "data")
    message = str(error.value)
    assert "does not exist or is empty" in message
    assert "1. RadImageNet layout" in message and "2. BUSI download layout" in message
    assert "benign/" in message and "images/" in message
    _assert_not_prepared(tmp_path / "data")


def test_partial_layout_reports_what_is_missing(tmp_path):
    busi = tmp_path / "manual" / "Dataset_BUSI_with_GT"
    (busi / "benign").mkdir(parents=True)
    (busi / "malignant").mkdir()
    with pytest.raises(common.MissingFileError, match=r"expected benign/, malignant/, normal/; missing normal/"):
        _build(tmp_path / "manual", tmp_path / "data")


def test_custom_split_lists_warn_with_counts(manual_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        builder = _build(manual_dir, tmp_path / "data")
    assert builder.info.splits["test"].num_examples == 2
    warning = "\n".join(r.getMessage() for r in caplog.records if "differ from" in r.getMessage())
    assert "test: 2 files in" in warning
    assert "vs 156 in the official list; 0 only in" in warning
    assert "154 only in the official list, 0 with a different label" in warning
    assert "val: 2 files in" in warning and "63 only in the official list" in warning


def test_exact_duplicates_are_a_warning_listing_the_groups(manual_dir, tmp_path, caplog):
    images = manual_dir / "images"
    shutil.copy(images / "benign (1).png", images / "normal (3).png")
    # Same pixels, different PNG encoding: still a duplicate.
    with PIL.Image.open(images / "benign (1).png") as image:
        rt.write_png(images / "malignant (1).png", np.asarray(image.convert("RGB")))
    with caplog.at_level(logging.WARNING):
        _build(manual_dir, tmp_path / "data")
    warning = "\n".join(r.getMessage() for r in caplog.records if "identical pixel" in r.getMessage())
    assert "1 group(s) of images have identical pixel content" in warning
    assert "images/benign (1).png (test), images/malignant (1).png (train), " \
           "images/normal (3).png (train)" in warning


def test_split_list_reader_rejects_bad_rows(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("filename,label\nimages/a.png\n")
    with pytest.raises(common.ManualDataError, match=r"(?s)1 malformed row.*line 2: \['images/a.png'\]"):
        common.read_split_list(path, SPEC)
    path.write_text("filename,label\nimages/a.png,benign\nimages/a.png,benign\n")
    with pytest.raises(common.ManualDataError, match=r"(?s)more than once.*line 3: 'images/a.png'"):
        common.read_split_list(path, SPEC)
    path.write_text("\ufefffilename,label\r\nimages/a.png,benign\r\n\r\n")
    assert common.read_split_list(path, SPEC) == [common.Row("images/a.png", "benign")]


def test_missing_fold_file_in_dataframe_says_how_to_fix(manual_dir, tmp_path):
    (manual_dir / "dataframe" / "breast_val_fold1.csv").unlink()
    with pytest.raises(common.MissingFileError, match=r"breast_val_fold1\.csv does not exist.*remove the folder"):
        _build(manual_dir, tmp_path / "data")

