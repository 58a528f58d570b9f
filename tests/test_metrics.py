"""Tests for radtl.metrics against independent references.

Reference values come from R 4.2.2 with pROC 1.18.0 (`tests/data/proc_reference.R`, run on
the aSAH data set shipped with pROC and written to `tests/data/asah.csv`), from
scikit-learn, from `keras.metrics.AUC` itself, and from a brute-force O(n^2) DeLong
written here.
"""
import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics

from radtl import metrics

ASAH_CSV = pathlib.Path(__file__).parent / "data" / "asah.csv"

# pROC 1.18.0: roc(outcome, marker, levels=c(0, 1), direction="<"); auc(), var(method=
# "delong"), ci.auc(method="delong") (lower, upper) and coords("best", best.method=
# "youden") (threshold, sensitivity, specificity).
PROC_ASAH = {
    "s100b": {
        "auc": 0.73136856368563685,
        "var": 0.0026686824571724378,
        "ci": (0.63011821176162264, 0.83261891560965107),
        "youden": (0.20500000000000002, 0.63414634146341464, 0.80555555555555558),
    },
    "wfns": {
        "auc": 0.82367886178861793,
        "var": 0.0014699147088236264,
        "ci": (0.74853488781945288, 0.89882283575778299),
        "youden": (3.5, 0.63414634146341464, 0.83333333333333337),
    },
    "ndka": {
        "auc": 0.61195799457994582,
        "var": 0.0031908105493913021,
        "ci": (0.50124499927170263, 0.72267098988818901),
        "youden": (11.08, 0.70731707317073167, 0.51388888888888884),
    },
}
TOL = 1e-9


def load_asah():
    """The aSAH data (113 patients): poor_outcome (0/1), s100b, wfns (1-5), ndka."""
    return pd.read_csv(ASAH_CSV)


def brute_force_delong(y, scores):
    """DeLong (1988) AUCs and covariance from the pairwise kernel, O(n_pos * n_neg)."""
    y = np.asarray(y, dtype=bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    v10, v01 = [], []
    for s in scores:
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    m, n = v10.shape[1], v01.shape[1]
    aucs = v10.mean(axis=1)
    s10 = (v10 - aucs[:, None]) @ (v10 - aucs[:, None]).T / (m - 1)
    s01 = (v01 - aucs[:, None]) @ (v01 - aucs[:, None]).T / (n - 1)
    return aucs, s10 / m + s01 / n


def random_binary(seed, n=80, decimals=1):
    """Random labels and rounded (hence tied) scores correlated with them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    score = np.round(0.3 * y + rng.uniform(size=n), decimals)
    return y, score


def random_softmax(seed, n=60, k=3):
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return rng.integers(0, k, n), probs


# --------------------------------------------------------------------------- ROC AUC
@pytest.mark.parametrize("marker", sorted(PROC_ASAH))
def test_roc_auc_matches_proc_and_sklearn_on_asah(marker):
    data = load_asah()
    auc = metrics.roc_auc(data["poor_outcome"], data[marker])
    assert auc == pytest.approx(PROC_ASAH[marker]["auc"], abs=TOL)
    assert auc == pytest.approx(
        sklearn.metrics.roc_auc_score(data["poor_outcome"], data[marker]), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [1, 3])
def test_roc_auc_matches_sklearn_with_ties(seed, decimals):
    y, score = random_binary(seed, decimals=decimals)
    assert metrics.roc_auc(y, score) == pytest.approx(
        sklearn.metrics.roc_auc_score(y, score), abs=1e-12
    )


def test_roc_auc_all_scores_tied_is_one_half():
    assert metrics.roc_auc([0, 1, 0, 1, 1], [0.3] * 5) == 0.5


@pytest.mark.parametrize(
    "function",
    [metrics.roc_auc, metrics.delong_auc_ci, metrics.youden_threshold],
    ids=lambda f: f.__name__,
)
def test_single_class_raises_clear_error(function):
    with pytest.raises(ValueError, match="needs both classes.*only class 1"):
        function([1, 1, 1], [0.2, 0.5, 0.9])


def test_invalid_labels_and_scores_raise():
    with pytest.raises(ValueError, match="only the labels 0 and 1.*Received values: \\[1 2\\]"):
        metrics.roc_auc([1, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape \\(N,\\) = \\(3,\\).*\\[:, 1\\]"):
        metrics.roc_auc([0, 1, 1], np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.roc_auc([0, 1, 1], [0.1, np.nan, 0.3])


# --------------------------------------------------------------------------- DeLong
@pytest.mark.parametrize("marker", sorted(PROC_ASAH))
def test_delong_ci_matches_proc_on_asah(marker):
    data = load_asah()
    result = metrics.delong_auc_ci(data["poor_outcome"], data[marker])
    expected = PROC_ASAH[marker]
    assert result.auc == pytest.approx(expected["auc"], abs=TOL)
    assert result.variance == pytest.approx(expected["var"], abs=TOL)
    assert result.standard_error == pytest.approx(math.sqrt(expected["var"]), abs=TOL)
    assert (result.lower, result.upper) == pytest.approx(expected["ci"], abs=TOL)
    assert (result.n_pos, result.n_neg) == (41, 72)


def test_delong_ci_published_asah_s100b_values():
    # pROC documentation: AUC 0.7314, 95% CI 0.6301-0.8326 (DeLong).
    data = load_asah()
    result = metrics.delong_auc_ci(data["poor_outcome"], data["s100b"])
    assert round(result.auc, 4) == 0.7314
    assert (round(result.lower, 4), round(result.upper, 4)) == (0.6301, 0.8326)


@pytest.mark.parametrize("seed", range(4))
def test_delong_covariance_matches_brute_force(seed):
    y, first = random_binary(seed, n=70)
    rng = np.random.default_rng(100 + seed)
    scores = np.stack(
        [first, np.round(first + rng.normal(0, 0.3, y.size), 1), rng.integers(0, 4, y.size)]
    )
    aucs, covariance = metrics.delong_auc_covariance(y, scores)
    expected_aucs, expected_covariance = brute_force_delong(y, scores)
    np.testing.assert_allclose(aucs, expected_aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(covariance, expected_covariance, rtol=0, atol=1e-12)


def test_delong_ci_with_wider_level_and_brute_force_variance():
    y, score = random_binary(7, n=40)
    result = metrics.delong_auc_ci(y, score, confidence_level=0.99)
    _, covariance = brute_force_delong(y, score)
    half = 2.5758293035489004 * math.sqrt(covariance[0, 0])  # qnorm(0.995)
    assert result.variance == pytest.approx(covariance[0, 0], abs=1e-12)
    assert (result.lower, result.upper) == pytest.approx(
        (result.auc - half, result.auc + half), abs=1e-9
    )


def test_delong_ci_clipped_near_perfect_separation_matches_proc():
    y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 0.7, 0.8, 0.9, 0.95]
    result = metrics.delong_auc_ci(y, score)
    assert result.auc == pytest.approx(0.95833333333333337, abs=TOL)
    assert result.variance == pytest.approx(0.0034722222222222212, abs=TOL)
    assert result.lower == pytest.approx(0.8428413479708603, abs=TOL)
    assert result.upper == 1.0  # auc + 1.96 se = 1.074, clipped as pROC


def test_delong_ci_perfect_separation_collapses_to_one():
    y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    result = metrics.delong_auc_ci(y, score)
    assert (result.auc, result.variance, result.lower, result.upper) == (1.0, 0.0, 1.0, 1.0)


def test_delong_ci_single_positive_returns_nan_like_proc():
    with pytest.warns(RuntimeWarning, match="n_pos=1"):
        result = metrics.delong_auc_ci([0, 0, 0, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.5])
    assert result.auc == 0.75  # pROC: 0.75, CI NA
    assert math.isnan(result.variance)
    assert math.isnan(result.lower) and math.isnan(result.upper)


def test_delong_ci_rejects_bad_confidence_level():
    with pytest.raises(ValueError, match="confidence_level=95"):
        metrics.delong_auc_ci([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6], confidence_level=95)


# --------------------------------------------------------------------------- Keras AUC
def test_keras_micro_auc_matches_keras_metric():
    import keras  # imports TensorFlow: only this test needs it

    cases = [random_softmax(seed, k=k) for seed, k in [(0, 2), (1, 3), (2, 5)]]
    rng = np.random.default_rng(3)
    # Probabilities on the threshold grid k/199 exercise the float32 bucket boundaries.
    grid = (np.arange(200) / 199).astype(np.float32)
    cases.append((rng.integers(0, 2, 200), np.stack([1 - grid, grid], axis=1)))
    for y, probs in cases:
        probs = probs.astype(np.float32)
        k = probs.shape[1]
        metric = keras.metrics.AUC(num_thresholds=200)
        metric.update_state(np.eye(k)[y], probs)
        expected = float(metric.result())
        assert metrics.keras_micro_auc(y, probs) == pytest.approx(expected, abs=1e-6)
        assert metrics.keras_micro_auc(np.eye(k)[y], probs) == pytest.approx(expected, abs=1e-6)


def test_keras_micro_auc_equals_pooled_auc_when_buckets_are_distinct():
    # With every pooled entry in its own threshold bucket the thresholded curve is the
    # exact ROC of the pooled (label, probability) entries.
    y = np.array([0, 2, 1, 2])
    probs = np.array(
        [[0.62, 0.08, 0.30], [0.21, 0.33, 0.46], [0.51, 0.44, 0.05], [0.12, 0.71, 0.17]]
    )
    pooled = sklearn.metrics.roc_auc_score(np.eye(3)[y].ravel(), probs.ravel())
    assert metrics.keras_micro_auc(y, probs) == pytest.approx(pooled, abs=1e-12)
    # ... and it is not the binary/one-vs-rest AUC radtl reports.
    macro = sklearn.metrics.roc_auc_score(y, probs, multi_class="ovr")
    assert abs(metrics.keras_micro_auc(y, probs) - macro) > 0.05


def test_keras_micro_auc_rejects_bad_thresholds_and_logits():
    with pytest.raises(ValueError, match="num_thresholds=1"):
        metrics.keras_micro_auc([0, 1], [[0.6, 0.4], [0.2, 0.8]], num_thresholds=1)
    with pytest.raises(ValueError, match="logits"):
        metrics.keras_micro_auc([0, 1], [[2.0, -1.0], [0.5, 1.5]])


# --------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.71])
def test_threshold_metrics_match_sklearn(threshold):
    y, score = random_binary(11, n=90, decimals=2)
    score = np.clip(score / 1.3, 0, 1)
    score[:3] = threshold  # exactly on the threshold: predicted positive
    predicted = (score >= threshold).astype(int)
    result = metrics.threshold_metrics(y, score, threshold=threshold)
    tn, fp, fn, tp = sklearn.metrics.confusion_matrix(y, predicted).ravel()
    assert (result.tp, result.fp, result.tn, result.fn) == (tp, fp, tn, fn)
    assert result.accuracy == pytest.approx(sklearn.metrics.accuracy_score(y, predicted))
    assert result.sensitivity == pytest.approx(sklearn.metrics.recall_score(y, predicted))
    assert result.specificity == pytest.approx(
        sklearn.metrics.recall_score(y, predicted, pos_label=0)
    )
    assert result.precision == pytest.approx(sklearn.metrics.precision_score(y, predicted))
    assert result.f1 == pytest.approx(sklearn.metrics.f1_score(y, predicted))


def test_threshold_metrics_undefined_ratio_is_nan():
    result = metrics.threshold_metrics([0, 1, 0], [0.1, 0.2, 0.3], threshold=0.5)
    assert math.isnan(result.precision)
    assert (result.sensitivity, result.specificity, result.f1) == (0.0, 1.0, 0.0)


@pytest.mark.parametrize("marker", sorted(PROC_ASAH))
def test_youden_threshold_matches_proc_coords_best(marker):
    data = load_asah()
    y, score = data["poor_outcome"].to_numpy(), data[marker].to_numpy()
    result = metrics.youden_threshold(y, score)
    proc_threshold, proc_sensitivity, proc_specificity = PROC_ASAH[marker]["youden"]
    assert result.sensitivity == pytest.approx(proc_sensitivity, abs=TOL)
    assert result.specificity == pytest.approx(proc_specificity, abs=TOL)
    assert result.j == pytest.approx(proc_sensitivity + proc_specificity - 1, abs=TOL)
    # pROC reports the midpoint below our observed-score threshold.
    assert score[score < result.threshold].max() < proc_threshold < result.threshold
    applied = metrics.threshold_metrics(y, score, threshold=result.threshold)
    assert (applied.sensitivity, applied.specificity) == pytest.approx(
        (result.sensitivity, result.specificity)
    )


# --------------------------------------------------------------------------- top-k
@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_matches_sklearn(k):
    y, probs = random_softmax(5, n=80, k=4)
    assert metrics.top_k_accuracy(y, probs, k=k) == pytest.approx(
        sklearn.metrics.top_k_accuracy_score(y, probs, k=k, labels=range(4))
    )


def test_top_k_accuracy_ties_count_inside_top_k():
    probs = [[0.4, 0.4, 0.2], [0.5, 0.25, 0.25]]
    assert metrics.top_k_accuracy([1, 0], probs, k=1) == 1.0
    assert metrics.top_k_accuracy([2, 2], probs, k=1) == 0.0
    # Row 2: class 2 ties class 1 at the 2nd place, so it is inside the top 2.
    assert metrics.top_k_accuracy([2, 2], probs, k=2) == 0.5
    with pytest.raises(ValueError, match="k=4"):
        metrics.top_k_accuracy([1, 0], probs, k=4)


# --------------------------------------------------------------------------- calibration
def guo_ece(y, probs, n_bins):
    """ECE as in Guo et al.'s reference code: bins (lower, upper] over max probability."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    accuracy = predicted == y
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lower, upper in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lower) & (confidence <= upper)
        if in_bin.any():
            gap = abs(accuracy[in_bin].mean() - confidence[in_bin].mean())
            ece += in_bin.mean() * gap
    return ece


@pytest.mark.parametrize("n_bins", [15, 10])
@pytest.mark.parametrize("k", [2, 4])
def test_ece_matches_reference_loop(n_bins, k):
    y, probs = random_softmax(8, n=500, k=k)
    assert metrics.expected_calibration_error(y, probs, n_bins=n_bins) == pytest.approx(
        guo_ece(y, probs, n_bins), abs=1e-12
    )


def test_reliability_diagram_hand_computed():
    # Confidences 0.9 (correct), 0.6 (wrong), 0.65 (correct), 0.4 (correct); 5 bins.
    y = [0, 0, 1, 2]
    probs = [[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.2, 0.65, 0.15], [0.3, 0.3, 0.4]]
    table = metrics.reliability_diagram(y, probs, n_bins=5)
    # Upper edges belong to their bin: 0.4 falls in (0.2, 0.4] and 0.6 in (0.4, 0.6].
    np.testing.assert_array_equal(table.count, [0, 1, 1, 1, 1])
    np.testing.assert_allclose(table.confidence, [np.nan, 0.4, 0.6, 0.65, 0.9])
    np.testing.assert_allclose(table.accuracy, [np.nan, 1.0, 0.0, 1.0, 1.0])
    assert table.ece == pytest.approx((0.6 + 0.6 + 0.35 + 0.1) / 4)
    records = table.to_records()
    assert records[0] == {
        "bin_lower": 0.0, "bin_upper": 0.2, "count": 0, "confidence": None, "accuracy": None
    }
    json.dumps(records, allow_nan=False)


def test_binary_probabilities_equal_two_column_form():
    y, score = random_binary(2, n=50, decimals=3)
    score = np.clip(score / 1.3, 0, 1)
    two_columns = np.stack([1 - score, score], axis=1)
    for function in (
        metrics.expected_calibration_error,
        metrics.brier_score,
        metrics.negative_log_likelihood,
    ):
        assert function(y, score) == pytest.approx(function(y, two_columns), abs=1e-12)
        assert function(y, score[:, None]) == pytest.approx(function(y, two_columns), abs=1e-12)


def test_brier_score_matches_sklearn():
    y, probs = random_softmax(9, n=70, k=4)
    assert metrics.brier_score(y, probs) == pytest.approx(
        sklearn.metrics.brier_score_loss(y, probs, labels=range(4), scale_by_half=False),
        abs=1e-12,
    )
    y, score = random_binary(3, n=60, decimals=3)
    score = np.clip(score / 1.3, 0, 1)
    assert metrics.brier_score(y, score) == pytest.approx(
        2 * sklearn.metrics.brier_score_loss(y, score), abs=1e-12
    )


def test_negative_log_likelihood_matches_sklearn_including_clipping():
    y, probs = random_softmax(10, n=70, k=3)
    probs[0] = [1.0, 0.0, 0.0]  # extreme rows: clipped at machine epsilon
    probs[1] = [0.0, 1.0, 0.0]
    y[:2] = [1, 1]
    assert metrics.negative_log_likelihood(y, probs) == pytest.approx(
        sklearn.metrics.log_loss(y, probs, labels=range(3)), abs=1e-12
    )
    assert math.isfinite(metrics.negative_log_likelihood(y, probs))


def test_probability_validation_errors():
    with pytest.raises(ValueError, match="row 1 sums to 1.5"):
        metrics.brier_score([0, 1], [[0.5, 0.5], [0.7, 0.8]])
    with pytest.raises(ValueError, match="class indices must lie in \\[0, 2\\].*\\[0, 3\\]"):
        metrics.brier_score([0, 3], [[0.5, 0.2, 0.3], [0.7, 0.2, 0.1]])
    with pytest.raises(ValueError, match="2 labels and 3 probability rows"):
        metrics.brier_score([0, 1], [0.5, 0.2, 0.3])


# --------------------------------------------------------------------------- report
def test_evaluate_predictions_binary_report():
    data = load_asah()
    y = data["poor_outcome"].to_numpy()
    probs = data["s100b"].to_numpy() / data["s100b"].max()  # a monotone score in [0, 1]
    report = metrics.evaluate_predictions(y, probs, threshold=0.4)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["task"] == "binary" and report["class_counts"] == [72, 41]
    assert report["roc_auc"]["auc"] == pytest.approx(PROC_ASAH["s100b"]["auc"], abs=TOL)
    assert (report["roc_auc"]["lower"], report["roc_auc"]["upper"]) == pytest.approx(
        PROC_ASAH["s100b"]["ci"], abs=TOL
    )
    assert report["threshold_metrics"]["threshold"] == 0.4
    assert report["threshold_metrics"]["accuracy"] == pytest.approx(
        sklearn.metrics.accuracy_score(y, probs >= 0.4)
    )
    assert report["calibration"]["brier_score"] == pytest.approx(
        2 * sklearn.metrics.brier_score_loss(y, probs)
    )
    assert report["calibration"]["nll"] == pytest.approx(sklearn.metrics.log_loss(y, probs))
    assert len(report["calibration"]["reliability_diagram"]) == 15
    two_columns = metrics.evaluate_predictions(y, np.stack([1 - probs, probs], 1), threshold=0.4)
    assert two_columns == report


def test_evaluate_predictions_multiclass_report():
    y, probs = random_softmax(12, n=90, k=4)
    report = metrics.evaluate_predictions(y, probs)
    json.dumps(report, allow_nan=False)
    assert report["task"] == "multiclass" and report["n_classes"] == 4
    assert report["macro_roc_auc_ovr"] == pytest.approx(
        sklearn.metrics.roc_auc_score(y, probs, multi_class="ovr"), abs=1e-12
    )
    assert report["accuracy"] == pytest.approx(sklearn.metrics.accuracy_score(y, probs.argmax(1)))
    assert set(report["top_k_accuracy"]) == {"2", "3"}
    assert report["keras_micro_auc"] == metrics.keras_micro_auc(y, probs)
    assert report["calibration"]["ece"] == pytest.approx(guo_ece(y, probs, 15), abs=1e-12)


def test_evaluate_predictions_single_positive_gives_null_ci():
    y = [0, 0, 0, 0, 1]
    with pytest.warns(RuntimeWarning):
        report = metrics.evaluate_predictions(y, [0.1, 0.4, 0.35, 0.8, 0.5])
    assert report["roc_auc"]["auc"] == 0.75
    assert report["roc_auc"]["lower"] is None and report["roc_auc"]["variance"] is None
    json.dumps(report, allow_nan=False)


@pytest.mark.filterwarnings("ignore:DeLong variance undefined:RuntimeWarning")
def test_evaluate_predictions_missing_class_raises():
    with pytest.raises(ValueError, match="only class 0"):
        metrics.evaluate_predictions([0, 1, 1], [[0.2, 0.5, 0.3]] * 3)
