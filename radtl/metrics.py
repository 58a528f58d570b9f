"""Evaluation metrics: ROC AUC (with DeLong CI), threshold metrics and calibration.

Pure NumPy / SciPy / scikit-learn functions: arrays in, floats or frozen dataclasses out.
Nothing here imports TensorFlow or Keras.

Conventions used throughout:

* Binary problems: `y_true` has shape (N,) with values in {0, 1} (1 = positive class, e.g.
  ACL tear or malignant lesion) and `y_score` has shape (N,) with larger values meaning
  "more likely positive", normally P(class 1) from the model.
* Multi-class problems: `probs` has shape (N, K), one row of class probabilities per case
  (softmax outputs, rows sum to 1); `y_true` holds integer class indices, shape (N,), or
  one-hot rows, shape (N, K). Binary probabilities may also be given as shape (N,) or
  (N, 1) holding P(class 1); they are expanded to the two columns [1 - p, p].

Two different "AUC"s exist in this field and are not interchangeable:

* `roc_auc` is the binary ROC AUC exactly as `sklearn.metrics.roc_auc_score` computes it
  (equal to the Mann-Whitney U statistic divided by n_pos * n_neg, ties counted 1/2).
  It is the number radtl reports.
* `keras_micro_auc` reproduces `keras.metrics.AUC(num_thresholds=200)` applied to one-hot
  labels and (N, K) softmax outputs: all N * K entries are pooled ("micro" average) and the
  ROC curve is approximated on 200 fixed thresholds. Published Keras studies
  (e.g. Juodelyte et al. 2023, the RadImageNet fine-tuning scripts) reported this value,
  so it is provided only to compare with their numbers.
"""
import dataclasses
import math
import warnings

import numpy as np
import scipy.stats
import sklearn.metrics

__all__ = [
    "AUCConfidenceInterval",
    "ThresholdMetrics",
    "YoudenThreshold",
    "ReliabilityDiagram",
    "roc_auc",
    "keras_micro_auc",
    "delong_auc_covariance",
    "delong_auc_ci",
    "threshold_metrics",
    "youden_threshold",
    "top_k_accuracy",
    "reliability_diagram",
    "expected_calibration_error",
    "brier_score",
    "negative_log_likelihood",
    "evaluate_predictions",
]

# Tolerance on row sums of probability matrices (float32 softmax outputs sum to 1 within
# about 1e-6; float16 outputs within about 1e-3).
_ROW_SUM_ATOL = 2e-3


# ---------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------
def _binary_labels(y_true):
    """Returns `y_true` as a boolean (N,) array, checking it holds only 0/1 labels."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(
            "`y_true` must be a 1-D array of 0/1 labels, shape (N,). "
            f"Received: y_true with shape {y.shape}. For one-hot labels of a binary "
            "problem pass y_true[:, 1]."
        )
    if y.size == 0:
        raise ValueError("`y_true` is empty. Received: y_true with shape (0,).")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(
                "`y_true` must hold numeric 0/1 labels (1 = positive class). "
                f"Received: dtype {y.dtype}, values {np.unique(y)[:10]}. Map the labels "
                "first, e.g. y_true = (labels == 'malignant').astype(int)."
            )
        values = np.unique(y)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                "`y_true` must hold only the labels 0 and 1 (1 = positive class). "
                f"Received values: {values[:10]}. Map the labels first, e.g. "
                "y_true = (labels == positive_label).astype(int)."
            )
    return y.astype(bool)


def _require_both_classes(y, what):
    """Raises a ValueError naming `what` if boolean labels `y` hold a single class."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        present = 1 if n_pos else 0
        raise ValueError(
            f"{what} needs both classes in `y_true`, but it holds only class {present} "
            f"({y.size} cases). The ROC AUC is undefined with one class: evaluate on a "
            "split that contains positive and negative cases (when resampling, "
            "stratify by class, e.g. strata=y_true)."
        )


def _scores(y_score, n, name="y_score"):
    """Returns a finite float64 (N,) copy of `y_score`, checking its shape against `n`."""
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.shape != (n,):
        raise ValueError(
            f"`{name}` must have shape (N,) = ({n},), one score per case, matching "
            f"`y_true`. Received: {name} with shape {s.shape}. For (N, 2) softmax "
            f"outputs pass {name}[:, 1], the probability of the positive class."
        )
    if not np.isfinite(s).all():
        raise ValueError(
            f"`{name}` contains {int((~np.isfinite(s)).sum())} non-finite values "
            "(NaN or inf). Check the model outputs before computing metrics."
        )
    return s


def _probability_matrix(probs):
    """Returns probabilities as a float64 (N, K) matrix, K >= 2.

    Args:
        probs: array, shape (N, K) with rows summing to 1, or (N,) / (N, 1) holding
            P(class 1) of a binary problem (expanded to [1 - p, p]).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(
            "`probs` must have shape (N, K) (class probabilities) or (N,) "
            f"(P(class 1) of a binary problem). Received: probs with shape {p.shape}."
        )
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            "`probs` must be probabilities in [0, 1]. Received values in "
            f"[{np.nanmin(p)}, {np.nanmax(p)}] (NaN present: {bool(np.isnan(p).any())}). "
            "If these are logits, apply a softmax (or sigmoid) first."
        )
    row_sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(row_sums - 1.0)))
    if abs(row_sums[worst] - 1.0) > _ROW_SUM_ATOL:
        raise ValueError(
            "Each row of `probs` must sum to 1 (softmax outputs). "
            f"Received: row {worst} sums to {row_sums[worst]}. For independent sigmoid "
            "outputs (multi-label), evaluate each column as its own binary problem."
        )
    return p


def _class_indices(y_true, n_classes):
    """Returns integer class indices (N,) from indices or one-hot rows (N, K)."""
    y = np.asarray(y_true)
    if y.ndim == 2:
        if y.shape[1] != n_classes or not np.isin(y, (0, 1)).all() or not (
            y.sum(axis=1) == 1
        ).all():
            raise ValueError(
                f"2-D `y_true` must be one-hot rows of shape (N, {n_classes}). "
                f"Received: y_true with shape {y.shape} whose rows are not all one-hot."
            )
        return np.argmax(y, axis=1)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(
            "`y_true` must hold class indices, shape (N,), or one-hot rows, shape "
            f"(N, K). Received: y_true with shape {y.shape}."
        )
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.mod(y, 1) == 0):
        raise ValueError(
            "`y_true` must hold integer class indices 0..K-1. Received values "
            f"{np.unique(y)[:10]} (dtype {y.dtype}). Encode string labels first, e.g. "
            "with the dataset's ClassLabel."
        )
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"`y_true` class indices must lie in [0, {n_classes - 1}] for "
            f"probabilities with K={n_classes} columns. Received values in "
            f"[{y.min()}, {y.max()}]."
        )
    return y


def _labels_and_probs(y_true, probs):
    """Validates a (labels, probabilities) pair; returns indices (N,) and probs (N, K)."""
    p = _probability_matrix(probs)
    y = _class_indices(y_true, p.shape[1])
    if y.shape[0] != p.shape[0]:
        raise ValueError(
            f"`y_true` and `probs` must describe the same cases. Received: "
            f"{y.shape[0]} labels and {p.shape[0]} probability rows."
        )
    return y, p


def _check_confidence_level(confidence_level):
    """Raises unless 0 < confidence_level < 1 (shared with radtl.stats)."""
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(
            "`confidence_level` must lie strictly between 0 and 1, e.g. 0.95. "
            f"Received: confidence_level={confidence_level}."
        )


def _ratio(numerator, denominator):
    """numerator / denominator as a float, NaN when the denominator is 0."""
    return float(numerator / denominator) if denominator else math.nan


# ---------------------------------------------------------------------------------------
# ROC AUC and DeLong
# ---------------------------------------------------------------------------------------
def _auc_from_rank_sum(positive_rank_sum, m, n):
    """AUC from the sum of the positives' midranks in the pooled sample.

    The sum minus its minimum m(m+1)/2 is the Mann-Whitney U statistic; it is exact in
    float64 because midranks are half-integers.
    """
    return (positive_rank_sum - m * (m + 1) / 2.0) / (m * n)


def _delong_placements(y, scores):
    """Sun & Xu (2014) midrank computation of AUCs and DeLong placement values.

    Args:
        y: bool array (N,), both classes present.
        scores: float64 array (k, N), one row per model.

    Returns:
        Tuple (aucs (k,), v10 (k, m), v01 (k, n)): for each positive case the fraction
        of negatives scored below it (ties count 1/2), and for each negative the fraction
        of positives scored above it; m = n_pos, n = n_neg. Each row of v10 and v01 has
        mean equal to the AUC.
    """
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    pooled_ranks = scipy.stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    ranks_pos = scipy.stats.rankdata(pos, axis=1)
    ranks_neg = scipy.stats.rankdata(neg, axis=1)
    aucs = _auc_from_rank_sum(pooled_ranks[:, :m].sum(axis=1), m, n)
    v10 = (pooled_ranks[:, :m] - ranks_pos) / n
    v01 = 1.0 - (pooled_ranks[:, m:] - ranks_neg) / m
    return aucs, v10, v01


def _stack_scores(y_scores, n):
    s = np.asarray(y_scores, dtype=np.float64)
    s = s[np.newaxis, :] if s.ndim == 1 else s
    if s.ndim != 2:
        raise ValueError(
            "`y_scores` must have shape (N,) or (k, N), one row of scores per model. "
            f"Received: shape {s.shape}."
        )
    return np.stack([_scores(row, n, name=f"y_scores[{i}]") for i, row in enumerate(s)])


def roc_auc(y_true, y_score):
    """Binary ROC AUC, the same value as `sklearn.metrics.roc_auc_score`.

    Computed as the Mann-Whitney statistic from pooled midranks: the probability that a
    random positive case scores higher than a random negative case, ties counting 1/2.
    This equals the trapezoidal area under the empirical ROC curve that scikit-learn and
    pROC (`auc(roc(...))`, direction "<") report.

    Reference:
        Hanley & McNeil, "The meaning and use of the area under a receiver operating
        characteristic (ROC) curve", Radiology 143 (1982) 29-36.

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        y_score: array-like (N,), scores, larger = more likely class 1 (e.g. P(class 1)).

    Returns:
        The AUC, a float in [0, 1].

    Raises:
        ValueError: if `y_true` holds one class only, or shapes/labels are invalid.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y = _binary_labels(y_true)
    _require_both_classes(y, "roc_auc")
    ranks = scipy.stats.rankdata(_scores(y_score, y.size))
    m = int(y.sum())
    return float(_auc_from_rank_sum(ranks[y].sum(), m, y.size - m))


def delong_auc_covariance(y_true, y_scores):
    """AUCs of one or more scores on the same cases and their DeLong covariance matrix.

    Uses the fast O(N log N) midrank algorithm of Sun & Xu for the structural components
    of DeLong et al.: with placements V10 (one per positive case) and V01 (one per
    negative case), S = S10 / n_pos + S01 / n_neg where S10 and S01 are the sample
    covariance matrices (denominator n - 1) of the placements across models. This is the
    quantity pROC uses in `var(roc, method="delong")`, `ci.auc(method="delong")` and
    `roc.test(method="delong", paired=TRUE)`.

    Reference:
        DeLong, DeLong & Clarke-Pearson, "Comparing the areas under two or more
        correlated receiver operating characteristic curves: a nonparametric approach",
        Biometrics 44 (1988) 837-845.
        Sun & Xu, "Fast implementation of DeLong's algorithm for comparing the areas
        under correlated receiver operating characteristic curves", IEEE Signal
        Processing Letters 21 (2014) 1389-1393.

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        y_scores: array-like (N,) or (k, N), one row of scores per model.

    Returns:
        Tuple (aucs, covariance): float arrays of shape (k,) and (k, k). The covariance
        is all NaN, with a RuntimeWarning, when n_pos < 2 or n_neg < 2 (the sample
        variance of a single placement is undefined; pROC returns NA there).

    Example:
        >>> aucs, cov = delong_auc_covariance([0, 0, 1, 1], [[0.1, 0.4, 0.35, 0.8]])
    """
    y = _binary_labels(y_true)
    _require_both_classes(y, "delong_auc_covariance")
    scores = _stack_scores(y_scores, y.size)
    aucs, v10, v01 = _delong_placements(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    k = scores.shape[0]
    if m < 2 or n < 2:
        warnings.warn(
            f"DeLong variance undefined with n_pos={m}, n_neg={n} (needs at least 2 "
            "cases per class); returning NaN variances, standard errors and CIs.",
            RuntimeWarning,
            stacklevel=2,
        )
        return aucs, np.full((k, k), np.nan)
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


@dataclasses.dataclass(frozen=True)
class AUCConfidenceInterval:
    """An AUC with its DeLong variance and normal-approximation confidence interval.

    Attributes:
        auc: the ROC AUC, in [0, 1].
        variance: DeLong variance of the AUC (NaN when n_pos < 2 or n_neg < 2).
        standard_error: sqrt(variance).
        lower: lower CI bound, clipped to [0, 1].
        upper: upper CI bound, clipped to [0, 1].
        confidence_level: e.g. 0.95.
        n_pos: number of positive cases.
        n_neg: number of negative cases.
        method: "DeLong".
    """

    auc: float
    variance: float
    standard_error: float
    lower: float
    upper: float
    confidence_level: float
    n_pos: int
    n_neg: int
    method: str = "DeLong"


def delong_auc_ci(y_true, y_score, *, confidence_level=0.95):
    """ROC AUC with its DeLong standard error and confidence interval.

    The interval is the normal approximation AUC +/- z_{1-alpha/2} * SE with the DeLong
    variance (see `delong_auc_covariance`), clipped to [0, 1], exactly as pROC's
    `ci.auc(roc, method="delong")`. The normal approximation is poor for AUCs near 0 or 1
    and for small samples; with perfect separation the variance is 0 and the interval
    collapses to [1, 1] (pROC warns that this "can be misleading"). With fewer than two
    cases in a class the variance is undefined: the AUC is returned with NaN variance and
    bounds, and a RuntimeWarning (pROC returns NA). Consider `radtl.stats.bootstrap_auc_ci`
    for small test sets.

    Reference:
        DeLong, DeLong & Clarke-Pearson, Biometrics 44 (1988) 837-845; Sun & Xu, IEEE
        SPL 21 (2014) 1389-1393; Robin et al., "pROC", BMC Bioinformatics 12 (2011) 77.

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        y_score: array-like (N,), scores, larger = more likely class 1.
        confidence_level: float in (0, 1), default 0.95.

    Returns:
        An `AUCConfidenceInterval`.

    Example:
        >>> r = delong_auc_ci([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
        >>> round(r.auc, 4), r.lower <= r.auc <= r.upper
        (0.8889, True)
    """
    _check_confidence_level(confidence_level)
    y = _binary_labels(y_true)
    aucs, covariance = delong_auc_covariance(y, y_score)
    auc, variance = float(aucs[0]), float(covariance[0, 0])
    n_pos = int(y.sum())
    se = math.sqrt(variance) if variance >= 0 else math.nan
    half_width = scipy.stats.norm.ppf(0.5 + confidence_level / 2.0) * se
    return AUCConfidenceInterval(
        auc=auc,
        variance=variance,
        standard_error=se,
        lower=float(np.clip(auc - half_width, 0.0, 1.0)),
        upper=float(np.clip(auc + half_width, 0.0, 1.0)),
        confidence_level=confidence_level,
        n_pos=n_pos,
        n_neg=int(y.size - n_pos),
    )


def keras_micro_auc(y_true, probs, *, num_thresholds=200):
    """Micro ROC AUC over one-hot columns as `keras.metrics.AUC()` computes it.

    Reproduces `keras.metrics.AUC(num_thresholds=num_thresholds)` (curve "ROC",
    summation "interpolation", multi_label False) updated once with one-hot labels and
    the (N, K) probabilities: all N * K entries are pooled as if they were independent
    binary predictions, each entry falls in the bucket ceil(p * (T - 1)) - 1 (at least
    0; computed in float32 as Keras does) of T evenly spaced thresholds
    {-eps, 1/(T-1), ..., (T-2)/(T-1), 1+eps}, and the area is the trapezoidal sum over
    the T (FPR, TPR) points. This is NOT the binary ROC AUC (`roc_auc`): it rewards
    calibrated confidence on every class column and is quantised by the thresholds.
    Report it only to compare with studies that used Keras' AUC on softmax outputs.

    Reference:
        keras/src/metrics/confusion_metrics.py (`AUC`) and metrics_utils.py
        (`_update_confusion_matrix_variables_optimized`), Keras 3.

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like, probabilities (N, K), or (N,) P(class 1) for a binary problem.
        num_thresholds: int > 1, default 200 (the Keras default).

    Returns:
        The micro AUC, a float in [0, 1].

    Example:
        >>> round(keras_micro_auc([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), 4)
        0.8889
    """
    if int(num_thresholds) != num_thresholds or num_thresholds <= 1:
        raise ValueError(
            "`num_thresholds` must be an integer > 1, as in keras.metrics.AUC. "
            f"Received: num_thresholds={num_thresholds}."
        )
    y, p = _labels_and_probs(y_true, probs)
    is_positive = (np.arange(p.shape[1]) == y[:, np.newaxis]).ravel()
    p32 = np.clip(p.astype(np.float32), 0.0, 1.0).ravel()
    buckets = np.ceil(p32 * np.float32(num_thresholds - 1)) - np.float32(1)
    buckets = np.maximum(buckets, 0).astype(np.int64)
    # Counts of entries strictly above each threshold: reverse cumulative bucket sums.
    tp = np.cumsum(np.bincount(buckets[is_positive], minlength=num_thresholds)[::-1])[::-1]
    fp = np.cumsum(np.bincount(buckets[~is_positive], minlength=num_thresholds)[::-1])[::-1]
    tpr = tp / max(int(is_positive.sum()), 1)  # Keras: divide_no_nan
    fpr = fp / max(int((~is_positive).sum()), 1)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))


# ---------------------------------------------------------------------------------------
# Threshold metrics
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion-matrix metrics of a binary classifier at one threshold.

    A case is predicted positive when its score is >= `threshold`. Ratios with a zero
    denominator (e.g. precision when nothing is predicted positive) are NaN, not 0.

    Attributes:
        threshold: the decision threshold.
        tp, fp, tn, fn: confusion-matrix counts.
        accuracy: (tp + tn) / N.
        sensitivity: recall, true-positive rate, tp / (tp + fn).
        specificity: true-negative rate, tn / (tn + fp).
        precision: positive predictive value, tp / (tp + fp).
        f1: 2 tp / (2 tp + fp + fn), the harmonic mean of precision and sensitivity.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float
    sensitivity: float
    specificity: float
    precision: float
    f1: float


def threshold_metrics(y_true, y_score, *, threshold=0.5):
    """Accuracy, sensitivity, specificity, precision and F1 at a decision threshold.

    Cases with score >= `threshold` are predicted positive (the convention of pROC's
    `coords` and of scikit-learn's `roc_curve` thresholds).

    Args:
        y_true: array-like (N,), labels in {0, 1}.
        y_score: array-like (N,), scores, e.g. P(class 1) in [0, 1].
        threshold: float, default 0.5. Choose it on validation data (e.g. with
            `youden_threshold`), never on the test set whose metrics you report.

    Returns:
        A `ThresholdMetrics`.

    Example:
        >>> threshold_metrics([0, 0, 1, 1], [0.2, 0.6, 0.4, 0.9]).accuracy
        0.5
    """
    y = _binary_labels(y_true)
    predicted = _scores(y_score, y.size) >= threshold
    tp = int(np.sum(predicted & y))
    fp = int(np.sum(predicted & ~y))
    fn = int(np.sum(~predicted & y))
    tn = int(np.sum(~predicted & ~y))
    return ThresholdMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        accuracy=_ratio(tp + tn, y.size),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        precision=_ratio(tp, tp + fp),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
    )


@dataclasses.dataclass(frozen=True)
class YoudenThreshold:
    """The threshold maximising Youden's J = sensitivity + specificity - 1.

    Attributes:
        threshold: an observed score; cases with score >= threshold are positive.
        sensitivity: sensitivity at that threshold.
        specificity: specificity at that threshold.
        j: Youden's J, in [0, 1] (0 when no threshold beats chance).
    """

    threshold: float
    sensitivity: float
    specificity: float
    j: float


def youden_threshold(y_true, y_score):
    """Decision threshold that maximises Youden's J statistic on the given cases.

    Candidates are the distinct observed scores (and +inf, "nothing positive"), with
    score >= threshold predicted positive. When several thresholds reach the same J the
    largest is returned. pROC's `coords(roc, "best", best.method="youden")` reports the
    midpoint between this score and the next lower one; both give the same sensitivity
    and specificity. Select the threshold on validation data and apply it to the test set
    with `threshold_metrics`.

    Reference:
        Youden, "Index for rating diagnostic tests", Cancer 3 (1950) 32-35.

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        y_score: array-like (N,), scores, larger = more likely class 1.

    Returns:
        A `YoudenThreshold`.

    Example:
        >>> youden_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).threshold
        0.8
    """
    y = _binary_labels(y_true)
    _require_both_classes(y, "youden_threshold")
    fpr, tpr, thresholds = sklearn.metrics.roc_curve(
        y, _scores(y_score, y.size), drop_intermediate=False
    )
    best = int(np.argmax(tpr - fpr))  # first maximum = largest threshold
    return YoudenThreshold(
        threshold=float(thresholds[best]),
        sensitivity=float(tpr[best]),
        specificity=float(1.0 - fpr[best]),
        j=float(tpr[best] - fpr[best]),
    )


def top_k_accuracy(y_true, probs, *, k=1):
    """Fraction of cases whose true class is among the k most probable classes.

    A case counts as correct when fewer than k classes have a probability strictly
    greater than its true class, so classes tied at the k-th place all count as inside
    the top k (the rule of `keras.metrics.TopKCategoricalAccuracy` / `tf.math.in_top_k`).
    Without ties this is `sklearn.metrics.top_k_accuracy_score`.

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like (N, K) class probabilities, or (N,) P(class 1).
        k: int in [1, K], default 1 (top-1 accuracy).

    Returns:
        The accuracy, a float in [0, 1].

    Example:
        >>> top_k_accuracy([2, 0], [[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]], k=2)
        0.5
    """
    y, p = _labels_and_probs(y_true, probs)
    if int(k) != k or not 1 <= k <= p.shape[1]:
        raise ValueError(
            f"`k` must be an integer in [1, {p.shape[1]}] (the number of classes). "
            f"Received: k={k}."
        )
    p_true = p[np.arange(y.size), y]
    n_higher = np.sum(p > p_true[:, np.newaxis], axis=1)
    return float(np.mean(n_higher < k))


# ---------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin table of a reliability diagram on the max-probability confidence.

    Bin m covers confidences in (bin_lower[m], bin_upper[m]] (the first bin also holds
    confidence 0). Empty bins have count 0 and NaN confidence/accuracy.

    Attributes:
        bin_lower: float array (M,).
        bin_upper: float array (M,).
        count: int array (M,), number of cases per bin.
        confidence: float array (M,), mean max-probability in the bin.
        accuracy: float array (M,), fraction of cases in the bin whose argmax is correct.
    """

    bin_lower: np.ndarray
    bin_upper: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self):
        """Expected calibration error: sum over bins of (count / N) |accuracy - confidence|."""
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.count[filled] * gaps) / np.sum(self.count))

    def to_records(self):
        """The table as a list of JSON-serialisable dicts, one per bin (NaN -> None)."""
        return [
            {
                "bin_lower": float(lo),
                "bin_upper": float(hi),
                "count": int(c),
                "confidence": _json_float(conf),
                "accuracy": _json_float(acc),
            }
            for lo, hi, c, conf, acc in zip(
                self.bin_lower, self.bin_upper, self.count, self.confidence, self.accuracy
            )
        ]


def reliability_diagram(y_true, probs, *, n_bins=15):
    """Reliability-diagram table with equal-width confidence bins.

    The confidence of a case is its largest class probability and it is correct when
    the argmax class (first index on ties) equals the label, as in Guo et al. For
    binary (N,) probabilities the confidence is max(p, 1 - p).

    Reference:
        Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks",
        ICML 2017.

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like (N, K) class probabilities, or (N,) P(class 1).
        n_bins: int >= 1, default 15 (Guo et al.).

    Returns:
        A `ReliabilityDiagram` with M = n_bins rows.

    Example:
        >>> reliability_diagram([0, 1], [[0.9, 0.1], [0.4, 0.6]], n_bins=5).count
        array([0, 0, 1, 0, 1])
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive integer. Received: n_bins={n_bins}.")
    y, p = _labels_and_probs(y_true, probs)
    confidence = p.max(axis=1)
    correct = (np.argmax(p, axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    # Bin m holds (edges[m], edges[m + 1]]; confidence 0 goes to bin 0.
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return ReliabilityDiagram(
        bin_lower=edges[:-1],
        bin_upper=edges[1:],
        count=count,
        confidence=mean_confidence,
        accuracy=accuracy,
    )


def expected_calibration_error(y_true, probs, *, n_bins=15):
    """Expected calibration error (ECE) with equal-width bins on the max probability.

    ECE = sum_m (|B_m| / N) |acc(B_m) - conf(B_m)|, with M = `n_bins` equal-width bins on
    the confidence max_k p_ik (see `reliability_diagram` for bin edges and ties).

    Reference:
        Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks",
        ICML 2017 (Eq. 3; M = 15 bins in their experiments).

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like (N, K) class probabilities, or (N,) P(class 1).
        n_bins: int >= 1, default 15.

    Returns:
        The ECE, a float in [0, 1].

    Example:
        >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.4, 0.6]])
        0.25
    """
    return reliability_diagram(y_true, probs, n_bins=n_bins).ece


def brier_score(y_true, probs):
    """Multi-class Brier score: mean over cases of the squared error summed over classes.

    BS = (1/N) sum_i sum_k (p_ik - y_ik)^2 with one-hot y, in [0, 2] (Brier's original
    definition). It equals `sklearn.metrics.brier_score_loss(y, P, scale_by_half=False)`
    for (N, K) probabilities. For a binary problem given as P(class 1) it is twice
    scikit-learn's binary `brier_score_loss(y, p)` = (1/N) sum_i (p_i - y_i)^2, because
    both columns [1 - p, p] contribute the same squared error.

    Reference:
        Brier, "Verification of forecasts expressed in terms of probability", Monthly
        Weather Review 78 (1950) 1-3.

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like (N, K) class probabilities, or (N,) P(class 1).

    Returns:
        The Brier score, a float in [0, 2] (0 is perfect).

    Example:
        >>> brier_score([0, 1], [0.2, 0.6])
        0.2
    """
    y, p = _labels_and_probs(y_true, probs)
    one_hot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - one_hot) ** 2, axis=1)))


def negative_log_likelihood(y_true, probs, *, eps=None):
    """Mean negative log-likelihood (log loss, cross-entropy) in nats.

    NLL = -(1/N) sum_i log(clip(p_{i, y_i}, eps, 1 - eps)). With the default eps (float64
    machine epsilon, about 2.2e-16) this equals `sklearn.metrics.log_loss` on float64
    probabilities; the clipping caps a confident wrong prediction at about 36 nats.

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like (N, K) class probabilities, or (N,) P(class 1).
        eps: float in (0, 0.5) or None (default: np.finfo(np.float64).eps).

    Returns:
        The NLL, a float >= 0.

    Example:
        >>> round(negative_log_likelihood([0, 1], [0.5, 0.5]), 4)
        0.6931
    """
    eps = np.finfo(np.float64).eps if eps is None else eps
    if not 0.0 < eps < 0.5:
        raise ValueError(f"`eps` must lie in (0, 0.5). Received: eps={eps}.")
    y, p = _labels_and_probs(y_true, probs)
    p_true = np.clip(p[np.arange(y.size), y], eps, 1.0 - eps)
    return float(-np.mean(np.log(p_true)))


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
def _json_float(x):
    """float(x), or None for NaN (JSON has no NaN)."""
    x = float(x)
    return None if math.isnan(x) else x


def _json_dataclass(obj):
    """A flat dataclass as a JSON-serialisable dict, NaN -> None (shared with radtl.stats)."""
    return {
        key: _json_float(value) if isinstance(value, float) else value
        for key, value in dataclasses.asdict(obj).items()
    }


def evaluate_predictions(y_true, probs, *, threshold=0.5, confidence_level=0.95, n_bins=15):
    """Standard evaluation report of a classifier's predicted probabilities.

    Binary problems (`probs` of shape (N,), (N, 1) or (N, 2)) report:
    `roc_auc` (AUC with DeLong CI, see `delong_auc_ci`) of P(class 1) and
    `threshold_metrics` at `threshold`. Multi-class problems (K > 2) report
    `per_class_roc_auc` (one-vs-rest AUC with DeLong CI per class) and
    `macro_roc_auc_ovr` (their unweighted mean, as sklearn's
    `roc_auc_score(multi_class="ovr", average="macro")`). Both report `accuracy`
    (top-1, argmax), `top_k_accuracy` for k in {2, 3, 5} below K, `keras_micro_auc` (for
    comparison with published Keras numbers only), and `calibration`: ECE with
    `n_bins` bins, the reliability table, Brier score (multi-class definition, range
    [0, 2]) and NLL. No threshold is tuned here: choosing one on the evaluated cases would
    bias the report (use `youden_threshold` on validation data).

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K); every class must
            occur at least once (AUCs are undefined otherwise).
        probs: array-like (N, K) class probabilities, or (N,) / (N, 1) P(class 1).
        threshold: float, default 0.5, decision threshold for binary threshold metrics.
        confidence_level: float in (0, 1), default 0.95, for the DeLong CIs.
        n_bins: int, default 15, calibration bins.

    Returns:
        A JSON-serialisable dict (only str keys, ints, floats, None, lists and dicts;
        undefined values such as a DeLong CI with one positive case are None).

    Example:
        >>> report = evaluate_predictions([0, 1, 1, 0], [0.3, 0.8, 0.6, 0.4])
        >>> report["roc_auc"]["auc"]
        1.0
    """
    y, p = _labels_and_probs(y_true, probs)
    n_classes = p.shape[1]
    report = {
        "task": "binary" if n_classes == 2 else "multiclass",
        "n_samples": int(y.size),
        "n_classes": int(n_classes),
        "class_counts": np.bincount(y, minlength=n_classes).tolist(),
    }
    if n_classes == 2:
        positive = y == 1
        report["roc_auc"] = _json_dataclass(
            delong_auc_ci(positive, p[:, 1], confidence_level=confidence_level)
        )
        report["threshold_metrics"] = _json_dataclass(
            threshold_metrics(positive, p[:, 1], threshold=threshold)
        )
    else:
        per_class = [
            {"class": c}
            | _json_dataclass(
                delong_auc_ci(y == c, p[:, c], confidence_level=confidence_level)
            )
            for c in range(n_classes)
        ]
        report["per_class_roc_auc"] = per_class
        report["macro_roc_auc_ovr"] = float(np.mean([row["auc"] for row in per_class]))
    report["accuracy"] = float(np.mean(np.argmax(p, axis=1) == y))
    report["top_k_accuracy"] = {
        str(k): top_k_accuracy(y, p, k=k) for k in (2, 3, 5) if k < n_classes
    }
    report["keras_micro_auc"] = keras_micro_auc(y, p)
    diagram = reliability_diagram(y, p, n_bins=n_bins)
    report["calibration"] = {
        "ece": diagram.ece,
        "n_bins": int(n_bins),
        "brier_score": brier_score(y, p),
        "nll": negative_log_likelihood(y, p),
        "reliability_diagram": diagram.to_records(),
    }
    return report
