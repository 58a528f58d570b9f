"""Tests for the synthetic_lesions builder and its fold assignment."""

import collections
import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders.synthetic_lesions import lesion_simulator
from tfds_builders.synthetic_lesions import synthetic_lesions_dataset_builder as builder_module

_SMALL_COHORT = 20  # Patients in the test builds: 29 images, 7 malignant patients.
_FILENAME = re.compile(r"^images/(benign|malignant) \((\d+)\)\.png$")


class _SmallCohortTestCase(tfds.testing.DatasetBuilderTestCase):
    """Builds a 20-patient cohort by lowering the module's `NUM_PATIENTS`."""

    __test__ = False  # A base: only the per-fold subclasses below run.
    DATASET_CLASS = builder_module.Builder
    # Nothing is downloaded; the base class still needs an existing example dir.
    EXAMPLE_DIR = os.path.dirname(__file__)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._saved_num_patients = builder_module.NUM_PATIENTS
        builder_module.NUM_PATIENTS = _SMALL_COHORT

    @classmethod
    def tearDownClass(cls):
        builder_module.NUM_PATIENTS = cls._saved_num_patients
        super().tearDownClass()


class SyntheticLesionsFold1Test(_SmallCohortTestCase):
    __test__ = True
    BUILDER_CONFIG_NAMES_TO_TEST = ["fold1"]
    SPLITS = {"train": 19, "val": 4, "test": 6}


class SyntheticLesionsFold5Test(_SmallCohortTestCase):
    __test__ = True
    BUILDER_CONFIG_NAMES_TO_TEST = ["fold5"]
    SPLITS = {"train": 24, "val": 2, "test": 3}


def _cohort_labels(num_patients=None):
    num_patients = builder_module.NUM_PATIENTS if num_patients is None else num_patients
    return [
        int(lesion_simulator.sample_patient(i, builder_module.COHORT_SEED).lesion.malignant)
        for i in range(num_patients)
    ]


def test_test_splits_partition_patients_and_keep_class_ratio():
    labels = np.array(_cohort_labels())
    test_folds = []
    for fold in range(1, 6):
        splits = np.array(builder_module.assign_splits(labels, fold))
        assert set(splits) == {"train", "val", "test"}
        test_folds.append(np.flatnonzero(splits == "test"))
        for name, expected in (("test", 0.2), ("val", 0.1), ("train", 0.7)):
            members = splits == name
            assert abs(members.mean() - expected) < 0.02, (fold, name, members.mean())
            # Stratified: each split's malignant share within 3 points of the cohort's.
            assert abs(labels[members].mean() - labels.mean()) < 0.03, (fold, name)
    every_test_patient = np.concatenate(test_folds)
    assert len(every_test_patient) == len(labels)
    assert set(every_test_patient) == set(range(len(labels)))


def test_assign_splits_is_deterministic_and_seeded():
    labels = _cohort_labels()
    splits = builder_module.assign_splits(labels, 2)
    assert splits == builder_module.assign_splits(labels, 2)
    assert splits != builder_module.assign_splits(labels, 2, seed=7)
    assert splits != builder_module.assign_splits(labels, 3)


def test_assign_splits_val_fraction_per_class():
    labels = [0] * 80 + [1] * 40
    splits = np.array(builder_module.assign_splits(labels, 1, val_fraction=0.25))
    labels = np.array(labels)
    assert (splits[labels == 0] == "val").sum() == 16  # 0.25 * 64 non-test benign.
    assert (splits[labels == 1] == "val").sum() == 8  # 0.25 * 32 non-test malignant.


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fold": 0}, "`fold` must be in 1..5"),
        ({"fold": 6}, "Received: fold=6"),
        ({"fold": 1, "num_folds": 1}, "`num_folds` must be >= 2"),
        ({"fold": 1, "val_fraction": 1.0}, "`val_fraction` must be in"),
    ],
)
def test_assign_splits_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder_module.assign_splits([0, 1, 0, 1, 0], **kwargs)


def test_default_cohort_matches_busi_scale():
    patients = [
        lesion_simulator.sample_patient(i, builder_module.COHORT_SEED)
        for i in range(builder_module.NUM_PATIENTS)
    ]
    num_images = sum(p.num_images for p in patients)
    malignant_images = sum(p.num_images for p in patients if p.lesion.malignant)
    assert 550 <= num_images <= 650
    assert 0.25 <= malignant_images / num_images <= 0.35
    assert any(p.num_images > 1 for p in patients)  # Grouping matters.


def _build(data_dir, fold, monkeypatch):
    monkeypatch.setattr(builder_module, "NUM_PATIENTS", _SMALL_COHORT)
    builder = builder_module.Builder(data_dir=str(data_dir), config=f"fold{fold}")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
    return {
        split: sorted(
            (
                (ex["filename"].decode(), ex["exam_id"].decode(), int(ex["label"]), ex["image"],
                 ex["mask"], bool(ex["has_mask"]))
                for ex in tfds.as_numpy(builder.as_dataset(split=split))
            ),
            key=lambda row: row[0],
        )
        for split in ("train", "val", "test")
    }


def test_built_fold_groups_patients_and_names_files_like_busi(tmp_path, monkeypatch):
    splits = _build(tmp_path, 2, monkeypatch)
    exams = {name: {row[1] for row in rows} for name, rows in splits.items()}
    assert not exams["train"] & exams["val"]
    assert not exams["train"] & exams["test"]
    assert not exams["val"] & exams["test"]
    rows = [row for split_rows in splits.values() for row in split_rows]
    assert len({row[0] for row in rows}) == len(rows) == 29
    views_per_exam = collections.Counter(row[1] for row in rows)
    assert max(views_per_exam.values()) > 1
    for filename, exam_id, label, image, _, _ in rows:
        match = _FILENAME.match(filename)
        assert match, filename
        assert match.group(1) == ("benign", "malignant")[label]
        assert re.fullmatch(r"SYN\d{4}", exam_id)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert np.array_equal(image[..., 0], image[..., 2])
    # Per-class numbering from 1 without gaps, as in BUSI.
    for label in ("benign", "malignant"):
        numbers = sorted(int(_FILENAME.match(r[0]).group(2)) for r in rows if f"/{label} " in r[0])
        assert numbers == list(range(1, len(numbers) + 1))


def test_builds_are_byte_identical(tmp_path, monkeypatch):
    first = _build(tmp_path / "a", 3, monkeypatch)
    second = _build(tmp_path / "b", 3, monkeypatch)
    for split in first:
        assert [r[:3] for r in first[split]] == [r[:3] for r in second[split]]
        for row_a, row_b in zip(first[split], second[split]):
            assert row_a[3].tobytes() == row_b[3].tobytes()
            assert row_a[4].tobytes() == row_b[4].tobytes()


# sha256 (first 16 hex digits) of `image.tobytes()` for views of the 1.0.0 cohort, computed
# with the simulator of VERSION 1.0.0 (commit c5206bd, `render_patient_image(patient, view,
# 128)`): version 1.1.0 added masks and must not change a pixel.
_V100_IMAGE_SHA256 = {
    (0, 0): "1dc01de0a784942a",
    (0, 1): "31c389f58ecb6b14",
    (1, 0): "9ca54a8b4ebf038a",
    (1, 1): "a59521e3e2ab2c03",
    (7, 0): "733c1f054d47e8a6",
    (19, 0): "bf7a34ea060ed310",
}


def test_masks_are_the_simulated_lesions_and_images_are_unchanged_since_1_0_0(tmp_path, monkeypatch):
    import hashlib

    splits = _build(tmp_path, 1, monkeypatch)
    stored = {row[0]: row for rows in splits.values() for row in rows}
    patients = [lesion_simulator.sample_patient(i, builder_module.COHORT_SEED) for i in range(_SMALL_COHORT)]
    names = builder_module._busi_filenames(patients)
    checked = 0
    for patient in patients:
        for view, filename in enumerate(names[patient.index]):
            _, _, _, image, mask, has_mask = stored[filename]
            expected_image, lesion, _ = lesion_simulator.render_patient_view(patient, view, 128)
            np.testing.assert_array_equal(image, expected_image)
            assert has_mask and mask.shape == (128, 128, 1) and mask.dtype == np.uint8
            np.testing.assert_array_equal(mask[..., 0], lesion.astype(np.uint8))
            assert 0 < mask.sum() < mask.size  # A lesion, not the whole view.
            if (patient.index, view) in _V100_IMAGE_SHA256:
                digest = hashlib.sha256(image.tobytes()).hexdigest()[:16]
                assert digest == _V100_IMAGE_SHA256[(patient.index, view)]
                checked += 1
    assert checked == len(_V100_IMAGE_SHA256)


def test_lesion_mask_marks_the_dark_lesion():
    """The mask is where the lesion was drawn: hypoechoic, darker than the tissue around it."""
    patient = lesion_simulator.sample_patient(0, builder_module.COHORT_SEED)
    image, lesion, params = lesion_simulator.render_patient_view(patient, 0, 128)
    again, params_again = lesion_simulator.render_patient_image(patient, 0, 128)
    np.testing.assert_array_equal(image, again)
    assert params == params_again
    grey = image[..., 0].astype(float)
    rows, cols = np.nonzero(lesion)
    ring = np.zeros_like(lesion)
    ring[max(rows.min() - 6, 0):rows.max() + 7, max(cols.min() - 6, 0):cols.max() + 7] = True
    ring &= ~lesion
    assert grey[lesion].mean() < 0.5 * grey[ring].mean()
    # Centre of the outline within 3 mm of the lesion's centre (+- the 3 mm pose shift).
    pixel_mm = lesion_simulator.FIELD_OF_VIEW_MM / 128
    centre_x = (cols.mean() + 0.5) * pixel_mm - lesion_simulator.FIELD_OF_VIEW_MM / 2
    centre_depth = (rows.mean() + 0.5) * pixel_mm
    assert abs(centre_x - params["center_x_mm"] - params["pose_shift_x_mm"]) < 3.0
    assert abs(centre_depth - params["center_depth_mm"] - params["pose_shift_depth_mm"]) < 3.0


def test_tfds_build_command_line(tmp_path):
    """The embedded dataset builds with the real `tfds build`, offline, and loads back."""
    from tfds_builders import radimagenet_testing as rt

    folder = os.path.dirname(builder_module.__file__)
    result = rt.tfds_build_cli(folder, tmp_path, config="fold3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    splits = tfds.load("synthetic_lesions/fold3", data_dir=str(tmp_path), download=False)
    assert sum(len(splits[s]) for s in ("train", "val", "test")) > 500
