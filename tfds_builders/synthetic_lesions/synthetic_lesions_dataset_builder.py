"""synthetic_lesions: simulated breast-ultrasound lesions, benign vs malignant.

The embedded default dataset of radtl: generated offline by `lesion_simulator`, with
the same features as the real builders and five patient-grouped folds as configs.

Example:
    >>> import tensorflow_datasets as tfds
    >>> from tfds_builders.synthetic_lesions import synthetic_lesions_dataset_builder
    >>> ds = tfds.load("synthetic_lesions/fold1", split="train")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import radimagenet_common
from tfds_builders.radimagenet_breast import radimagenet_breast_dataset_builder as breast
from tfds_builders.synthetic_lesions import lesion_simulator

NUM_PATIENTS = 425
"""Patients in the cohort (606 images, 31% malignant). Tests lower it to build quickly."""

IMAGE_SIZE = 128
"""Height and width of every image, in pixels (40 mm field of view)."""

COHORT_SEED = 20250101
"""Seed of the simulated cohort since VERSION 1.0.0; changing it needs a new version."""

SPLIT_SEED = 2
"""Seed of the patient-level fold assignment."""

NUM_FOLDS = radimagenet_common.NUM_FOLDS
VAL_FRACTION = 0.125
_LABELS = ("benign", "malignant")


def assign_splits(
    labels: Sequence[int],
    fold: int,
    *,
    num_folds: int = NUM_FOLDS,
    val_fraction: float = VAL_FRACTION,
    seed: int = SPLIT_SEED,
) -> list[str]:
    """Assigns each patient to `train`, `val` or `test` for one cross-validation fold.

    Patients of each class are shuffled (with `seed`) and dealt round-robin into
    `num_folds` test folds, so the test splits of folds 1..num_folds partition the
    patients and keep the class ratio (stratified k-fold). Of the patients outside
    fold `fold`'s test split, `round(val_fraction * n)` of each class go to `val`
    (chosen with a fold-specific shuffle) and the rest to `train`. With the defaults
    this gives about 70 / 10 / 20 % of patients, like the RadImageNet folds. All
    images of a patient share its split, so splitting by patient groups images.

    Args:
        labels: One class index (0 benign, 1 malignant) per patient.
        fold: Fold number, 1-based: 1 <= fold <= num_folds.
        num_folds: Number of folds, >= 2. Defaults to 5.
        val_fraction: Fraction of the non-test patients of each class put in `val`,
            in [0, 1). Defaults to 1/8.
        seed: Seed of the shuffles. Defaults to `SPLIT_SEED`.

    Returns:
        The split name of each patient, in the order of `labels`.

    Raises:
        ValueError: If `fold`, `num_folds` or `val_fraction` is out of range.

    Example:
        >>> assign_splits([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], fold=1).count("test")
        2
    """
    if num_folds < 2:
        raise ValueError(f"`num_folds` must be >= 2. Received: num_folds={num_folds}")
    if not 1 <= fold <= num_folds:
        raise ValueError(f"`fold` must be in 1..{num_folds}. Received: fold={fold}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in [0, 1). Received: val_fraction={val_fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    splits = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        shuffled = np.random.default_rng((seed, int(label))).permutation(members)
        test_fold = np.arange(len(shuffled)) % num_folds + 1
        splits[shuffled[test_fold == fold]] = "test"
        rest = shuffled[test_fold != fold]
        rest = np.random.default_rng((seed, int(label), fold)).permutation(rest)
        splits[rest[: int(round(val_fraction * len(rest)))]] = "val"
    return list(splits)


@dataclasses.dataclass
class SyntheticLesionsConfig(tfds.core.BuilderConfig):
    """One cross-validation fold of the synthetic cohort.

    Attributes:
        fold: Fold number, 1..5; selects which fifth of the patients is `test`.
    """

    fold: int = 1


def _fold_configs() -> list[SyntheticLesionsConfig]:
    return [
        SyntheticLesionsConfig(  # pytype: disable=wrong-keyword-args
            name=f"fold{fold}",
            fold=fold,
            description=(
                f"Cross-validation fold {fold}: patient fifth {fold} is `test`, 1/8 of "
                "the other patients (per class) is `val`, the rest `train`."
            ),
        )
        for fold in range(1, NUM_FOLDS + 1)
    ]


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for synthetic_lesions (no download; generated on the fly)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: 425 simulated patients, 606 images of 128x128 px, five folds.",
        "1.1.0": "Exact lesion masks: `mask` (uint8, 128 x 128 x 1, 1 where the pixel centre "
        "lies inside the simulated lesion boundary) and `has_mask` (always True). Images, "
        "labels, filenames and splits are identical to 1.0.0.",
    }
    BUILDER_CONFIGS = _fold_configs()
    DEFAULT_BUILDER_CONFIG_NAME = "fold1"

    def _info(self) -> tfds.core.DatasetInfo:
        """Returns the dataset metadata (description and citation from the folder)."""
        return self.dataset_info_from_configs(
            # The schema of radimagenet_breast: image, label, filename, exam_id, mask, has_mask.
            features=breast.features(),
            supervised_keys=("image", "label"),
            homepage="https://doi.org/10.1016/j.dib.2019.104863",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        """Samples the cohort and assigns its patients to this fold's splits."""
        del dl_manager  # Nothing to download.
        patients = [lesion_simulator.sample_patient(i, COHORT_SEED) for i in range(NUM_PATIENTS)]
        filenames = _busi_filenames(patients)
        labels = [int(p.lesion.malignant) for p in patients]
        splits = assign_splits(labels, self.builder_config.fold)
        return {
            split: self._generate_examples(
                [(p, filenames[p.index]) for p, s in zip(patients, splits) if s == split]
            )
            for split in radimagenet_common.SPLIT_NAMES
        }

    def _generate_examples(
        self, patients: list[tuple[lesion_simulator.Patient, list[str]]]
    ) -> Iterator[tuple[str, dict]]:
        """Renders every view of the given patients and its lesion mask; the key is the filename."""
        for patient, names in patients:
            for view, filename in enumerate(names):
                image, lesion_mask, _ = lesion_simulator.render_patient_view(patient, view, IMAGE_SIZE)
                yield filename, {
                    "image": image,
                    "label": _LABELS[int(patient.lesion.malignant)],
                    "filename": filename,
                    "exam_id": patient.patient_id,
                    "mask": lesion_mask[:, :, None].astype(np.uint8),
                    "has_mask": True,
                }


def _busi_filenames(patients: Sequence[lesion_simulator.Patient]) -> list[list[str]]:
    """Names each view like BUSI in the RadImageNet CSVs: `images/<class> (<n>).png`.

    Views are numbered per class from 1, in patient then view order, so a name does
    not depend on the fold.
    """
    counters = {label: 0 for label in _LABELS}
    names = []
    for patient in patients:
        label = _LABELS[int(patient.lesion.malignant)]
        patient_names = []
        for _ in range(patient.num_images):
            counters[label] += 1
            patient_names.append(f"images/{label} ({counters[label]}).png")
        names.append(patient_names)
    return names
