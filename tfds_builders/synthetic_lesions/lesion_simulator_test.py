"""Tests for the breast-ultrasound lesion simulator (numpy only, no TensorFlow)."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tfds_builders.synthetic_lesions import lesion_simulator

_COHORT_SEED = 20250101  # The builder's cohort, so the AUCs describe the shipped data.
_NUM_PATIENTS = 425
_TRAIN_PATIENTS = 300  # Patient-level hold-out: the rest is the evaluation set.


def test_simulate_case_returns_grey_uint8_rgb_image_and_params():
    image, params = lesion_simulator.simulate_case(np.random.default_rng(0), True, size=64)
    assert image.shape == (64, 64, 3)
    assert image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 0], image[..., 2])
    assert image.min() < 20 and image.max() > 235  # Uses the display range.
    assert params["malignant"] is True
    for name in ("malignancy_score", "aspect_ratio", "posterior_attenuation", "pose_tilt_deg"):
        assert np.isfinite(params[name]), name


def test_simulate_case_is_deterministic_per_seed():
    first = lesion_simulator.simulate_case(np.random.default_rng(5), False)
    second = lesion_simulator.simulate_case(np.random.default_rng(5), False)
    other = lesion_simulator.simulate_case(np.random.default_rng(6), False)
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1] == second[1]
    assert first[0].tobytes() != other[0].tobytes()


def test_patient_views_share_lesion_but_differ_in_speckle_and_pose():
    patient = next(
        p for p in (lesion_simulator.sample_patient(i, _COHORT_SEED) for i in range(50))
        if p.num_images > 1
    )
    assert lesion_simulator.sample_patient(patient.index, _COHORT_SEED) == patient
    image_0, params_0 = lesion_simulator.render_patient_image(patient, 0)
    image_1, params_1 = lesion_simulator.render_patient_image(patient, 1)
    again, _ = lesion_simulator.render_patient_image(patient, 0)
    assert image_0.tobytes() == again.tobytes()
    assert image_0.tobytes() != image_1.tobytes()
    assert params_0["aspect_ratio"] == params_1["aspect_ratio"]
    assert params_0["pose_shift_x_mm"] != params_1["pose_shift_x_mm"]
    with pytest.raises(ValueError, match=r"Received: view=3"):
        lesion_simulator.render_patient_image(patient, 3)


def test_render_image_rejects_tiny_size():
    rng = np.random.default_rng(0)
    lesion = lesion_simulator.sample_lesion(rng, False)
    tissue = lesion_simulator.sample_tissue(rng)
    with pytest.raises(ValueError, match="size=8"):
        lesion_simulator.render_image(rng, lesion, tissue, size=8)


def test_lesion_features_differ_by_class_in_the_intended_direction():
    rng = np.random.default_rng(0)
    benign = [lesion_simulator.sample_lesion(rng, False) for _ in range(400)]
    malignant = [lesion_simulator.sample_lesion(rng, True) for _ in range(400)]

    def mean(lesions, name):
        return np.mean([getattr(lesion, name) for lesion in lesions])

    assert mean(benign, "aspect_ratio") < 0.8 < mean(malignant, "aspect_ratio")
    assert mean(benign, "posterior_attenuation") < 0 < mean(malignant, "posterior_attenuation")
    for name in ("spiculation", "lobulation", "margin_blur_mm", "halo", "internal_echo"):
        assert mean(benign, name) < mean(malignant, name), name
    # Class-independent nuisance features stay alike.
    assert abs(mean(benign, "width_mm") - mean(malignant, "width_mm")) < 1.0
    # Overlap: some benign lesions look more suspicious than some malignant ones.
    assert max(le.aspect_ratio for le in benign) > min(le.aspect_ratio for le in malignant)


def _image_features(image):
    """Hand-crafted features of the darkest blob: shape, margin, posterior, echo."""
    grey = ndimage.gaussian_filter(image[..., 0].astype(float), 2.5)
    n = grey.shape[0]
    window = grey[n // 5 : 3 * n // 4, n // 8 : 7 * n // 8]
    row, col = np.unravel_index(np.argmin(window), window.shape)
    row, col = row + n // 5, col + n // 8
    median = np.median(grey)
    labels, _ = ndimage.label(grey < grey[row, col] + 0.4 * (median - grey[row, col]))
    blob = labels == labels[row, col]
    rows, cols = np.nonzero(blob)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    area = blob.sum()
    perimeter = (blob ^ ndimage.binary_erosion(blob)).sum()
    below = slice(rows.max() + 3, min(n, rows.max() + 25))
    behind = grey[below, cols.min() : cols.max() + 1]
    beside = np.concatenate([
        grey[below, max(0, cols.min() - width) : cols.min()].ravel(),
        grey[below, cols.max() + 1 : cols.max() + 1 + width].ravel(),
    ])
    posterior = 0.0
    if behind.size and beside.size:
        posterior = np.log((behind.mean() + 1) / (beside.mean() + 1))
    return [
        np.log(height / width),  # Orientation: > 0 taller than wide.
        perimeter**2 / (4 * np.pi * area),  # Margin irregularity: 1 for a disc.
        posterior,  # < 0 shadowing, > 0 enhancement.
        grey[blob].mean() / median,  # Internal echo.
        np.log(area),  # Size (class-independent nuisance).
    ]


@pytest.fixture(scope="module")
def cohort():
    """Every view of the builder's cohort: image features, params, latent score, label."""
    features, params, scores, labels, patients = [], [], [], [], []
    for patient, _, image, case in lesion_simulator.simulate_cohort(_NUM_PATIENTS, _COHORT_SEED):
        features.append(_image_features(image))
        params.append([
            value for value in case.values()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ])
        scores.append(case["malignancy_score"])
        labels.append(int(patient.lesion.malignant))
        patients.append(patient.index)
    return tuple(np.array(a) for a in (features, params, scores, labels, patients))


def _held_out_auc(x, labels, patients):
    train = patients < _TRAIN_PATIENTS
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x[train], labels[train])
    return roc_auc_score(labels[~train], model.predict_proba(x[~train])[:, 1])


def test_task_is_learnable_from_the_images(cohort):
    features, _, _, labels, patients = cohort
    auc = _held_out_auc(features, labels, patients)
    # Measured 0.90 with 5 hand-crafted features; chance is 0.5.
    assert auc > 0.75, auc


def test_even_an_oracle_cannot_separate_the_classes_perfectly(cohort):
    _, params, scores, labels, patients = cohort
    latent_auc = roc_auc_score(labels, scores)
    oracle_auc = _held_out_auc(params, labels, patients)
    # Expected Phi(sqrt(2)) = 0.92 for the latent score; measured 0.91 and 0.92.
    assert 0.85 < latent_auc < 0.97, latent_auc
    assert oracle_auc < 0.97, oracle_auc
