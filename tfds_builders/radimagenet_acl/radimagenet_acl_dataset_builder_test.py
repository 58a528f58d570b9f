"""Tests of the radimagenet_acl builder: dummy data, the MRNet layout, the official folds."""

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import radimagenet_common as common
from tfds_builders import radimagenet_testing as rt
from tfds_builders.radimagenet_acl import radimagenet_acl_dataset_builder as acl

SPEC = acl.SPLIT_LISTS
SHIPPED = rt.read_folds(acl.SPLITS_DIR, SPEC)  # The official lists, read with `csv`.


class RadimagenetAclTest(tfds.testing.DatasetBuilderTestCase):
    """Builds `dummy_data/` (the RadImageNet `acl/` layout with its own dataframe/)."""

    DATASET_CLASS = acl.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["fold1", "fold5"]
    SPLITS = {"train": 8, "val": 2, "test": 2}


def _small_folds():
    """Fold 1 of the official lists cut to 3 exams per split (MRNet train and valid)."""
    lists = {}
    for split, rows in SHIPPED[1].items():
        exams = sorted({acl.exam_id(f) for f, _ in rows})
        exams = exams[:2] + exams[-1:]
        lists[split] = [(f, label) for f, label in rows if acl.exam_id(f) in exams]
    return {1: lists}


def _exam_labels(folds):
    return {acl.exam_id(f): int(label == "yes") for f, label in rt.all_rows(folds).items()}


@pytest.fixture
def small(tmp_path, monkeypatch):
    """Small official-like split lists (as SPLITS_DIR) and the same slices in both layouts."""
    folds = _small_folds()
    rt.write_split_lists(tmp_path / "splits", SPEC, folds)
    monkeypatch.setattr(acl, "SPLITS_DIR", tmp_path / "splits")
    slices = {f: rt.synthetic_image(f) for f in rt.all_rows(folds)}
    return folds, slices


def test_mrnet_layout_gives_the_same_examples_as_the_radimagenet_layout(small, tmp_path):
    folds, slices = small
    radimagenet = rt.write_radimagenet_layout(tmp_path / "acl", slices)  # No dataframe/.
    # The MRNet zip unpacks into MRNet-v1.0/: accepted as a sub-folder of manual_dir.
    rt.write_mrnet_layout(tmp_path / "mrnet" / "MRNet-v1.0", slices, _exam_labels(folds))
    assert {int(e) >= rt.MRNET_FIRST_VALID_EXAM for e in _exam_labels(folds)} == {True, False}
    from_png = rt.build(acl.Builder, radimagenet, tmp_path / "d1")
    from_npy = rt.build(acl.Builder, tmp_path / "mrnet", tmp_path / "d2")
    for split, rows in folds[1].items():
        png, npy = rt.examples_by_filename(from_png, split), rt.examples_by_filename(from_npy, split)
        assert sorted(png) == sorted(npy) == sorted(f for f, _ in rows)
        for filename, label in rows:
            np.testing.assert_array_equal(png[filename]["image"], npy[filename]["image"])
            assert png[filename]["image"].shape == (8, 8, 3)
            np.testing.assert_array_equal(
                npy[filename]["image"], np.repeat(slices[filename][..., None], 3, axis=2)
            )
            assert png[filename]["label"] == npy[filename]["label"] == ("no", "yes").index(label)
            assert png[filename]["exam_id"] == npy[filename]["exam_id"] == filename[7:11].encode()


def test_mrnet_label_disagreement_names_the_exam(small, tmp_path):
    folds, slices = small
    labels = _exam_labels(folds)
    exam = sorted(labels)[0]
    labels[exam] = 1 - labels[exam]
    rt.write_mrnet_layout(tmp_path / "mrnet", slices, labels)
    with pytest.raises(
        common.ManualDataError,
        match=rf"(?s)disagree with the split lists \(yes = 1\) for 1 exam\(s\):\n  exam {exam}: "
        rf"(train|valid)-acl\.csv says {labels[exam]}, the split lists say .* for 2 file\(s\)",
    ):
        rt.build(acl.Builder, tmp_path / "mrnet", tmp_path / "data")
    assert not acl.Builder(config="fold1", data_dir=str(tmp_path / "data")).is_prepared()


def test_mrnet_exam_without_label_is_an_error(small, tmp_path):
    folds, slices = small
    labels = _exam_labels(folds)
    exam = sorted(labels)[-1]
    del labels[exam]
    rt.write_mrnet_layout(tmp_path / "mrnet", slices, labels)
    with pytest.raises(common.ManualDataError, match=rf"(?s)1 exam\(s\) .* have no row in .*exam {exam}"):
        rt.build(acl.Builder, tmp_path / "mrnet", tmp_path / "data")


def test_mrnet_missing_volume_and_missing_slice(small, tmp_path):
    folds, slices = small
    mrnet = rt.write_mrnet_layout(tmp_path / "mrnet", slices, _exam_labels(folds), extra_slices=0)
    exams = sorted(_exam_labels(folds))
    next(mrnet.glob(f"*/sagittal/{exams[0]}.npy")).unlink()
    # Cut the last slice of another exam's volume.
    path = next(mrnet.glob(f"*/sagittal/{exams[1]}.npy"))
    np.save(path, np.load(path)[:-1])
    with pytest.raises(common.MissingFileError) as error:
        rt.build(acl.Builder, mrnet, tmp_path / "data")
    message = str(error.value)
    assert f"volume {exams[0]}.npy is in neither {mrnet / 'train' / 'sagittal'} nor" in message
    assert f"{path} has" in message and "does not exist" in message


def test_mrnet_volume_of_wrong_type_is_unreadable(small, tmp_path):
    folds, slices = small
    mrnet = rt.write_mrnet_layout(tmp_path / "mrnet", slices, _exam_labels(folds))
    path = next(mrnet.glob("*/sagittal/*.npy"))
    np.save(path, np.load(path).astype(np.float32))
    with pytest.raises(common.UnreadableImageError, match=r"expected a uint8 volume of shape \(slices, H, W\), found dtype float32"):
        rt.build(acl.Builder, mrnet, tmp_path / "data")


def test_mrnet_label_file_with_header_is_rejected(small, tmp_path):
    folds, slices = small
    mrnet = rt.write_mrnet_layout(tmp_path / "mrnet", slices, _exam_labels(folds))
    csv_path = mrnet / "train-acl.csv"
    csv_path.write_text("exam,label\n" + csv_path.read_text())
    with pytest.raises(common.ManualDataError, match=rf"{csv_path}, line 1: expected `exam,label`.*found 'exam,label'"):
        rt.build(acl.Builder, mrnet, tmp_path / "data")


def test_exam_in_two_splits_is_an_error(tmp_path):
    manual = pathlib.Path(shutil.copytree(pathlib.Path(acl.__file__).parent / "dummy_data", tmp_path / "acl"))
    val_csv = manual / "dataframe" / "val_fold1.csv"
    moved = val_csv.read_text().splitlines()[1]  # One slice of the val exam ...
    val_csv.write_text(val_csv.read_text().replace(moved + "\n", ""))
    test_csv = manual / "dataframe" / "test_fold1.csv"
    test_csv.write_text(test_csv.read_text() + moved + "\n")  # ... moved to test.
    exam = acl.exam_id(moved.split(",")[0])
    with pytest.raises(common.ManualDataError, match=rf"(?s)put 1 MRNet exam\(s\) in two splits.*MRNet exam {exam}: val \(.*\), test \("):
        rt.build(acl.Builder, manual, tmp_path / "data")


def test_filename_outside_the_naming_scheme_is_an_error():
    with pytest.raises(common.ManualDataError, match=r"'images/knee.png': expected `images/NNNN_sagittal_S.000000.png`"):
        acl.parse_filename("images/knee.png")
    assert acl.parse_filename("images/1046_sagittal_10.000000.png") == ("1046", 10)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Every file of the shipped lists as a tiny image, in both layouts."""
    root = tmp_path_factory.mktemp("acl_full")
    slices = {f: rt.synthetic_image(f, 4) for f in rt.all_rows(SHIPPED)}
    rt.write_radimagenet_layout(root / "acl", slices)  # No dataframe/: shipped lists.
    rt.write_mrnet_layout(root / "mrnet", slices, _exam_labels(SHIPPED), size=4)
    return root


@pytest.mark.parametrize("fold", range(1, 6))
def test_every_fold_has_the_official_membership(full, fold):
    assert len(rt.all_rows(SHIPPED)) == 1021
    assert len({acl.exam_id(f) for f in rt.all_rows(SHIPPED)}) == 498
    builder = rt.build(acl.Builder, full / "acl", full / "data", f"fold{fold}")
    exams = {}
    for split, rows in SHIPPED[fold].items():
        examples = rt.examples_by_filename(builder, split)
        assert builder.info.splits[split].num_examples == len(rows)
        assert {f: ("no", "yes")[e["label"]] for f, e in examples.items()} == dict(rows)
        exams[split] = {e["exam_id"].decode() for e in examples.values()}
    assert not (exams["train"] & exams["val"] or exams["train"] & exams["test"] or exams["val"] & exams["test"])
    assert len(exams["train"] | exams["val"] | exams["test"]) == 498


def test_both_layouts_give_identical_examples_for_the_official_fold1(full):
    from_png = rt.build(acl.Builder, full / "acl", full / "data", "fold1")  # Reused if built.
    from_npy = rt.build(acl.Builder, full / "mrnet", full / "data_mrnet", "fold1")
    rt.assert_same_examples(from_png, from_npy, SHIPPED[1])


def test_tfds_build_command_line_from_the_mrnet_release(full, tmp_path):
    """`tfds build` offline on the MRNet layout, for another fold than the Python tests."""
    result = rt.tfds_build_cli(acl.SPLITS_DIR.parent, tmp_path, manual_dir=full / "mrnet", config="fold2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    splits = tfds.load("radimagenet_acl/fold2", data_dir=str(tmp_path), download=False)
    for split, rows in SHIPPED[2].items():
        assert {e["filename"].decode() for e in tfds.as_numpy(splits[split])} == {f for f, _ in rows}
