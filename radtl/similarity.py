"""Why two models differ: similarity of their representations and of their predictions.

Representation similarity compares two sets of activations of the same datapoints, each
shaped `(n_datapoints, n_features)` (the Keras / scikit-learn convention: one row per
datapoint, e.g. one spatial position of one image; one column per channel). The two
sides may have different feature counts. Every measure returns a float in [0, 1]
(1: the same representation up to the measure's invariances):

| function | invariant to | reference |
|---|---|---|
| `mean_cca` | any invertible linear map of either side | Raghu et al. 2017 (google/svcca) |
| `svcca` | the same, after keeping each side's high-variance directions | Raghu et al. 2017 |
| `pwcca` | the same; weights directions by how much of the side they explain | Morcos et al. 2018 |
| `linear_cka` | orthogonal maps and isotropic scaling (not all linear maps) | Kornblith et al. 2019 |
| `rbf_cka` | orthogonal maps and isotropic scaling | Kornblith et al. 2019 |

google/svcca's code takes `(neurons, datapoints)` arrays: transpose when comparing with
it. The CCA family needs more datapoints than features on each side (`svcca` does not:
it first reduces each side to fewer directions than datapoints).

Prediction similarity (`prediction_agreement`, `format_agreement`) compares two runs'
saved prediction tables (`RunDir.read_predictions`) on the same images.

Numpy, scipy and pandas only: importing this module does not import TensorFlow.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 8))
>>> round(mean_cca(x, x @ rng.normal(size=(8, 8))), 6)  # an invertible linear map
1.0
"""
from __future__ import annotations

import math

import numpy as np
import scipy.stats

from radtl._checks import check_number
from radtl.rundir import align_predictions
from radtl.rundir import probabilities

__all__ = [
    "DEFAULT_EPSILON",
    "mean_cca",
    "svcca",
    "pwcca",
    "linear_cka",
    "rbf_cka",
    "prediction_agreement",
    "format_agreement",
]

#: Default CCA regulariser, as google/svcca's tutorials call `get_cca_similarity` and
#: `compute_pwcca` (`epsilon=1e-10`; the function's own default is 0, Juodelyte et al.'s
#: `src/CCA.py` passes 1e-12). Relative to the largest feature variance of each side.
DEFAULT_EPSILON = 1e-10

_SHOWN = 5  # how many offending columns or filenames an error lists


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------
def _activations(name, value) -> np.ndarray:
    """`value` as a finite float64 (n_datapoints, n_features) array, or a ValueError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must be a numeric array shaped (n_datapoints, n_features). "
                         f"Received: {name} of type {type(value).__name__} ({error}).") from None
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array shaped (n_datapoints, n_features). Received: {name}.shape="
            f"{array.shape}. Flatten convolutional activations (batch, height, width, channels) with "
            f"`a.reshape(-1, a.shape[-1])` so that each spatial position is a datapoint.")
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"`{name}` needs at least 2 datapoints (rows) and 1 feature (column). "
                         f"Received: {name}.shape={array.shape}.")
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"`{name}` must hold finite numbers, but {int(bad.sum())} entries are NaN or inf (in "
            f"{rows.size} datapoints, first rows {rows[:_SHOWN].tolist()}). Check the model for diverged "
            f"weights, or drop those datapoints from both sides.")
    return array


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _activations("x", x), _activations("y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must hold the same datapoints (rows), but x has {x.shape[0]} and y has "
            f"{y.shape[0]}. Received: x.shape={x.shape}, y.shape={y.shape}. Compute both from the same "
            f"images and spatial positions, in the same order.")
    return x, y


def _constant_columns(array) -> np.ndarray:
    return np.flatnonzero(np.all(array == array[0], axis=0))


def _check_cca_inputs(function, x, y) -> None:
    """The CCA family needs more datapoints than features and no constant features."""
    for name, array in (("x", x), ("y", y)):
        n, p = array.shape
        if n <= p:
            raise ValueError(
                f"`{function}` needs more datapoints than features on each side (CCA is degenerate "
                f"otherwise: every coefficient is 1). Received: {name}.shape={array.shape} ({n} datapoints, "
                f"{p} features). Give more datapoints (more images or spatial positions), sample fewer "
                f"channels, or use `svcca`, which first keeps each side's top directions.")
        constant = _constant_columns(array)
        if constant.size:
            raise ValueError(
                f"`{function}` needs features that vary, but {constant.size} of the {p} features of `{name}` "
                f"are constant (columns {constant[:_SHOWN].tolist()}{' ...' if constant.size > _SHOWN else ''}). "
                f"Drop them from `{name}` first (e.g. `{name}[:, {name}.std(axis=0) > 0]`), or use `svcca` or "
                f"`linear_cka`, which ignore them.")


def _check_not_all_constant(function, x, y) -> None:
    for name, array in (("x", x), ("y", y)):
        if _constant_columns(array).size == array.shape[1]:
            raise ValueError(
                f"`{function}` is undefined when a side does not vary, but all {array.shape[1]} features of "
                f"`{name}` are constant. Check the activations (a dead layer, or the same input repeated).")


# ---------------------------------------------------------------------------------------
# CCA family
# ---------------------------------------------------------------------------------------
def _inverse_sqrt(matrix) -> np.ndarray:
    """M^(-1/2) of a symmetric positive semi-definite matrix (null directions map to 0, as pinv)."""
    values, vectors = np.linalg.eigh(matrix)
    keep = values > 1e-15 * max(values.max(), 0.0)
    scale = np.zeros_like(values)
    scale[keep] = 1.0 / np.sqrt(values[keep])
    return (vectors * scale) @ vectors.T


def _canonical(x, y, epsilon):
    """Canonical correlations as google/svcca's `get_cca_similarity` computes them.

    Returns `(rho, u, vt, keep_x, keep_y, xc, yc)`: the coefficients (descending, length
    min of the kept feature counts), the singular vectors of the whitened cross-covariance
    (columns of `u` in x's kept features, rows of `vt` in y's), the boolean masks of kept
    features and the centred inputs.
    """
    n = x.shape[0]
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    # Rescale each side by its largest covariance entry, then drop the features whose
    # variance is below `epsilon` of that and add `epsilon` to the diagonal (svcca's recipe).
    xmax, ymax = np.abs(sxx).max(), np.abs(syy).max()
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    keep_x, keep_y = np.diag(sxx) >= epsilon, np.diag(syy) >= epsilon
    sxx = sxx[np.ix_(keep_x, keep_x)] + epsilon * np.eye(keep_x.sum())
    syy = syy[np.ix_(keep_y, keep_y)] + epsilon * np.eye(keep_y.sum())
    sxy = sxy[np.ix_(keep_x, keep_y)]
    u, rho, vt = np.linalg.svd(_inverse_sqrt(sxx) @ sxy @ _inverse_sqrt(syy), full_matrices=False)
    return np.abs(rho), u, vt, keep_x, keep_y, xc, yc


def _check_epsilon(epsilon):
    check_number("epsilon", epsilon, 0.0, 1.0, include_high=False)


def mean_cca(x, y, epsilon: float = DEFAULT_EPSILON) -> float:
    """Mean canonical correlation coefficient between two sets of activations.

    The canonical correlations rho_1 >= ... >= rho_k (k = the smaller feature count) are
    the correlations of the best-matching pairs of linear combinations of x's and of y's
    features, each pair uncorrelated with the previous ones. Their mean is 1 when one
    side is an invertible linear map of the other and near 0 for independent data (about
    sqrt(k / n_datapoints) from sampling noise alone). Computed as google/svcca's
    `cca_core.get_cca_similarity` does, averaging its `cca_coef1` (all k coefficients,
    not its thresholded `mean`): covariances rescaled by each side's largest entry,
    features whose variance is below `epsilon` of that largest one dropped, `epsilon`
    added to the diagonal. This is the number Juodelyte et al. report per ResNet stage.

    Reference:
        Raghu, Gilmer, Yosinski, Sohl-Dickstein. "SVCCA: Singular Vector Canonical
        Correlation Analysis for Deep Learning Dynamics and Interpretability." NeurIPS 2017.

    Args:
        x: array (n_datapoints, n_features_x). Activations of the first model.
        y: array (n_datapoints, n_features_y). Activations of the second model on the same
            datapoints, in the same order.
        epsilon: float in [0, 1), default `DEFAULT_EPSILON` (1e-10, as svcca's tutorials).
            Regulariser, relative to each side's largest feature variance.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: the arrays are not 2-D, hold NaN/inf, differ in datapoints, have no
            more datapoints than features, or have constant features.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 6))
    >>> mean_cca(x, y) < 0.1  # independent
    True
    """
    x, y = _pair(x, y)
    _check_epsilon(epsilon)
    _check_cca_inputs("mean_cca", x, y)
    return float(np.mean(_canonical(x, y, epsilon)[0]))


def _top_directions(array, keep) -> np.ndarray:
    """The centred `array` projected on its fewest top singular directions keeping `keep` of the variance."""
    centred = array - array.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    variance = np.cumsum(s ** 2)
    k = int(np.searchsorted(variance / variance[-1], keep - 1e-12)) + 1
    rank = int(np.sum(s > s[0] * max(centred.shape) * np.finfo(np.float64).eps))
    k = min(k, rank)
    return u[:, :k] * s[:k]


def svcca(x, y, keep: float = 0.99, epsilon: float = DEFAULT_EPSILON) -> float:
    """SVCCA: mean CCA between the top singular directions of each side.

    Each side is centred and reduced by SVD to its fewest top directions that together
    hold at least `keep` of its variance (sum of squared singular values); the mean
    canonical correlation (`mean_cca`) of the two reduced sides follows. The reduction
    drops low-variance noise directions that CCA would otherwise match by chance, and
    leaves fewer directions than datapoints, so `svcca` also works where `mean_cca`
    refuses (fewer datapoints than features). google/svcca's tutorial keeps a fixed number
    of directions; the variance fraction is the paper's rule (99%).

    Reference:
        Raghu, Gilmer, Yosinski, Sohl-Dickstein. "SVCCA: Singular Vector Canonical
        Correlation Analysis for Deep Learning Dynamics and Interpretability." NeurIPS 2017.

    Args:
        x: array (n_datapoints, n_features_x).
        y: array (n_datapoints, n_features_y), the same datapoints in the same order.
        keep: float in (0, 1], default 0.99. Fraction of each side's variance to keep.
        epsilon: float in [0, 1), default `DEFAULT_EPSILON`. Passed to the CCA step.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: the arrays are not 2-D, hold NaN/inf or differ in datapoints, or all
            features of a side are constant.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(40, 3))  # 40 datapoints, 64 and 96 features
    >>> x, y = z @ rng.normal(size=(3, 64)), np.tanh(z @ rng.normal(size=(3, 96)))
    >>> svcca(x, y) > 0.9
    True
    """
    x, y = _pair(x, y)
    check_number("keep", keep, 0.0, 1.0, include_low=False)
    _check_epsilon(epsilon)
    _check_not_all_constant("svcca", x, y)
    return float(np.mean(_canonical(_top_directions(x, keep), _top_directions(y, keep), epsilon)[0]))


def pwcca(x, y, epsilon: float = DEFAULT_EPSILON) -> float:
    """Projection-weighted CCA: canonical correlations weighted by how much of a side they explain.

    The weight of canonical direction i is sum_j |<h_i, x_j>| over the side's (centred)
    features x_j, with h_1..h_k an orthonormal basis built (QR) from the canonical
    directions in order; the weights are normalised to sum to 1 and the weighted mean of
    the canonical correlations is returned. Directions that account for little of the
    representation (often noise) count less than in `mean_cca`. The weights come from
    the side with fewer features (after `epsilon` drops near-constant ones; x on a tie),
    as google/svcca's `pwcca.compute_pwcca`, and the directions are, as there, the
    singular vectors of the whitened cross-covariance applied to the centred features.

    Two differences from `compute_pwcca` (google/svcca commit 1f3fbf19), both where it
    is wrong:

    * When y has fewer features, upstream builds y's directions from `acts1` (x) instead
      of `acts2` (y): an IndexError when the feature counts differ, a wrong value when
      they are equal (google/svcca pull request #9). Here y's own activations are used,
      so swapping the arguments gives the same value (unless both sides keep as many
      features: then, as upstream, the first argument gives the weights).
    * Upstream adds each neuron's mean back to the centred directions before the QR
      step. For centred activations that is a no-op; for uncentred ones (ReLU outputs)
      it makes the result depend on the sign the SVD happens to give each canonical
      direction, and so on the argument order (0.755 vs 0.791 on the same ReLU-like
      data). Here the directions stay centred, so the value is the one upstream gives for
      centred activations, whatever the signs and the argument order.

    Reference:
        Morcos, Raghu, Bengio. "Insights on representational similarity in neural networks
        with canonical correlation." NeurIPS 2018.

    Args:
        x: array (n_datapoints, n_features_x).
        y: array (n_datapoints, n_features_y), the same datapoints in the same order.
        epsilon: float in [0, 1), default `DEFAULT_EPSILON` (1e-10, as svcca's tutorial
            calls `compute_pwcca`).

    Returns:
        float in [0, 1].

    Raises:
        ValueError: as `mean_cca`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 5))
    >>> round(pwcca(x, np.hstack([x, rng.normal(size=(1000, 3))])), 6)
    1.0
    """
    x, y = _pair(x, y)
    _check_epsilon(epsilon)
    _check_cca_inputs("pwcca", x, y)
    rho, u, vt, keep_x, keep_y, xc, yc = _canonical(x, y, epsilon)
    if keep_x.sum() <= keep_y.sum():
        features = xc[:, keep_x]
        directions = features @ u
    else:
        features = yc[:, keep_y]
        directions = features @ vt.T
    basis, _ = np.linalg.qr(directions)
    weights = np.abs(basis.T @ features).sum(axis=1)
    return float(np.sum(weights / weights.sum() * rho))


# ---------------------------------------------------------------------------------------
# CKA
# ---------------------------------------------------------------------------------------
def linear_cka(x, y) -> float:
    """Linear centred kernel alignment (CKA) between two sets of activations.

    CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with Xc, Yc the column-centred
    activations (the feature-space form, as the authors' `feature_space_linear_cka`;
    memory n_features_x * n_features_y). It is 1 for identical inputs and invariant to
    orthogonal maps and isotropic scaling, but not to every invertible linear map
    (unlike CCA): stretching one direction lowers it. Near 0 for independent data.
    Constant features are allowed (centring removes them).

    Reference:
        Kornblith, Norouzi, Lee, Hinton. "Similarity of Neural Network Representations
        Revisited." ICML 2019.

    Args:
        x: array (n_datapoints, n_features_x).
        y: array (n_datapoints, n_features_y), the same datapoints in the same order.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: the arrays are not 2-D, hold NaN/inf or differ in datapoints, or all
            features of a side are constant.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 5))
    >>> q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> round(linear_cka(x, 3 * x @ q), 6)
    1.0
    """
    x, y = _pair(x, y)
    _check_not_all_constant("linear_cka", x, y)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    return float(cross / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def _rbf_gram(name, array, sigma) -> np.ndarray:
    dots = array @ array.T
    norms = np.diag(dots)
    sq_distances = np.maximum(norms[:, None] + norms[None, :] - 2 * dots, 0.0)
    sq_median = np.median(sq_distances)
    if sq_median <= 0:
        raise ValueError(
            f"`rbf_cka` sets the bandwidth from the median distance between datapoints, but the median "
            f"distance within `{name}` is 0 (more than half of its datapoints repeat). Remove repeated "
            f"datapoints, or use `linear_cka`.")
    return np.exp(-sq_distances / (2 * sigma ** 2 * sq_median))


def _centre_gram(gram) -> np.ndarray:
    column_means = gram.mean(axis=0)
    return gram - column_means[:, None] - column_means[None, :] + column_means.mean()


def rbf_cka(x, y, sigma: float = 0.8) -> float:
    """CKA with a Gaussian (RBF) kernel, the bandwidth a fraction of the median distance.

    k(a, b) = exp(-||a - b||^2 / (2 sigma^2 m)), with m the median of the squared
    Euclidean distances over all n x n pairs of the side's datapoints (the diagonal's
    zeros included), as the authors' `gram_rbf(x, threshold=sigma)`; CKA of the centred
    Gram matrices as their `cka`. Small `sigma` looks at local neighbourhoods; large
    `sigma` approaches `linear_cka`. Invariant to orthogonal maps and isotropic scaling.
    Memory and time grow as n_datapoints^2 (10,000 datapoints: 0.8 GB per Gram matrix):
    subsample datapoints for large layers.

    Reference:
        Kornblith, Norouzi, Lee, Hinton. "Similarity of Neural Network Representations
        Revisited." ICML 2019 (RBF CKA with sigma = 0.2, 0.4 and 0.8 times the median
        distance; the authors' demo notebook, google-research `representation_similarity/
        Demo.ipynb`, defaults to 1.0 and shows 0.5).

    Args:
        x: array (n_datapoints, n_features_x).
        y: array (n_datapoints, n_features_y), the same datapoints in the same order.
        sigma: float > 0, default 0.8. Bandwidth as a fraction of the median distance.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: as `linear_cka`, or when more than half of a side's pairwise
            distances are 0.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 4))
    >>> round(rbf_cka(x, 2 * x + 1), 6)
    1.0
    """
    x, y = _pair(x, y)
    check_number("sigma", sigma, 0.0, include_low=False)
    _check_not_all_constant("rbf_cka", x, y)
    gram_x = _centre_gram(_rbf_gram("x", x, sigma))
    gram_y = _centre_gram(_rbf_gram("y", y, sigma))
    return float(np.sum(gram_x * gram_y) / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y)))


# ---------------------------------------------------------------------------------------
# Prediction similarity
# ---------------------------------------------------------------------------------------
def _class_columns(name, table) -> list:
    columns = [c for c in table.columns if str(c).startswith("prob_")]
    if "filename" not in table.columns or len(columns) < 2:
        raise ValueError(
            f"`{name}` must be a predictions table with a `filename` column and one `prob_<class>` column per "
            f"class (at least two), as `RunDir.read_predictions` returns. Received columns: {list(table.columns)}.")
    return columns


def _correlation(function, a, b) -> float:
    """`function` (scipy.stats.pearsonr / spearmanr) of two vectors; NaN if either is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(function(a, b).statistic)


def prediction_agreement(pred_a, pred_b) -> dict:
    """How similar two runs' predictions on the same images are.

    The tables are aligned by filename (row order does not matter). Each image's
    predicted class is its highest-probability class (the first on a tie).

    Args:
        pred_a: pandas.DataFrame. Run A's predictions as `RunDir.read_predictions`
            returns them: `filename`, `label` (optional here) and `prob_<class>` columns.
        pred_b: pandas.DataFrame. Run B's predictions on the same images, with the same
            `prob_<class>` columns in the same order.

    Returns:
        dict with
        `n` (int, the number of images);
        `agreement` (float in [0, 1], the fraction of images with the same predicted class);
        `cohen_kappa` (float in [-1, 1], Cohen's kappa of the two predicted classes: agreement
        beyond chance; NaN when both runs predict one and the same class for every image);
        `pearson` and `spearman` (float in [-1, 1], correlation of the two runs' probabilities:
        binary tasks use the positive class, the last `prob_` column; with more classes, the mean
        of the per-class correlations over all class columns. NaN when a run's probability does
        not vary);
        `disagreement` (dict of dicts of int: `disagreement[class_a][class_b]` counts the images
        run A predicts as `class_a` and run B as `class_b`; keys are the class names in column
        order, the diagonal counts agreements).

    Raises:
        ValueError: a table lacks `filename` or `prob_<class>` columns, lists a filename
            twice, holds NaN/inf probabilities; the class columns differ; the filenames
            differ (the error lists some of each); or an image has different labels in the
            two tables.

    Example:

    >>> import pandas as pd
    >>> a = pd.DataFrame({"filename": ["a", "b", "c", "d"], "prob_no": [.9, .6, .3, .2], "prob_yes": [.1, .4, .7, .8]})
    >>> b = pd.DataFrame({"filename": ["d", "c", "b", "a"], "prob_no": [.1, .7, .3, .8], "prob_yes": [.9, .3, .7, .2]})
    >>> prediction_agreement(a, b)["disagreement"]
    {'no': {'no': 1, 'yes': 1}, 'yes': {'no': 1, 'yes': 1}}
    """
    columns = _class_columns("pred_a", pred_a)
    columns_b = _class_columns("pred_b", pred_b)
    if columns != columns_b:
        raise ValueError(f"`pred_a` and `pred_b` must have the same class columns in the same order. Received: "
                         f"pred_a has {columns}, pred_b has {columns_b}. Compare runs of the same task.")
    _, aligned_b = align_predictions([pred_a, pred_b], ["`pred_a`", "`pred_b`"],
                                     fix="Compare runs on the same dataset, fold and split.")
    if len(pred_a) == 0:
        raise ValueError("`pred_a` and `pred_b` hold no images. Received two empty predictions tables.")
    probs_a, probs_b = probabilities(pred_a), probabilities(aligned_b)
    for name, probs in (("pred_a", probs_a), ("pred_b", probs_b)):
        if not np.isfinite(probs).all():
            raise ValueError(f"`{name}` holds NaN or inf probabilities: the run's predictions are not usable. "
                             f"Re-evaluate it, or check it for divergence.")

    classes = [c[len("prob_"):] for c in columns]
    k = len(classes)
    predicted_a, predicted_b = probs_a.argmax(axis=1), probs_b.argmax(axis=1)
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (predicted_a, predicted_b), 1)
    n = int(table.sum())
    observed = np.trace(table) / n
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / n ** 2
    kappa = (observed - expected) / (1 - expected) if expected < 1 else math.nan

    compared = [k - 1] if k == 2 else range(k)
    correlations = {
        key: float(np.mean([_correlation(function, probs_a[:, c], probs_b[:, c]) for c in compared]))
        for key, function in (("pearson", scipy.stats.pearsonr), ("spearman", scipy.stats.spearmanr))
    }
    return {
        "n": n,
        "agreement": float(observed),
        "cohen_kappa": float(kappa),
        **correlations,
        "disagreement": {ca: {cb: int(table[i, j]) for j, cb in enumerate(classes)} for i, ca in enumerate(classes)},
    }


def _number(value, digits=3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_agreement(result: dict, names=("run A", "run B")) -> str:
    """A few readable lines of a `prediction_agreement` result, for `radtl compare`.

    Args:
        result: dict returned by `prediction_agreement`.
        names: pair of str, default ("run A", "run B"). How to call the two runs.

    Returns:
        str: several lines (no trailing newline): agreement and kappa, the probability
        correlations, and the table of predicted classes (rows: the first run).

    Example:

    >>> print(format_agreement({"n": 4, "agreement": 0.5, "cohen_kappa": 0.0, "pearson": 0.2, "spearman": 0.4,
    ...                         "disagreement": {"no": {"no": 1, "yes": 1}, "yes": {"no": 1, "yes": 1}}}))
    Prediction agreement on 4 images: 50.0% same predicted class, Cohen's kappa 0.000
    Correlation of prob_yes: Pearson 0.200, Spearman 0.400
    Predicted classes (rows: run A, columns: run B):
            no  yes
      no     1    1
      yes    1    1
    """
    table = result["disagreement"]
    classes = list(table)
    if len(classes) == 2:
        compared = f"prob_{classes[-1]}"
    else:
        compared = f"class probabilities (mean over {len(classes)} classes)"
    width = max(max(len(str(c)) for c in classes), *(len(str(v)) for row in table.values() for v in row.values()))
    header = " " * (width + 4) + "  ".join(f"{c:>{width}}" for c in classes)
    rows = [f"  {ca:<{width}}  " + "  ".join(f"{table[ca][cb]:>{width}}" for cb in classes) for ca in classes]
    return "\n".join([
        f"Prediction agreement on {result['n']} images: {100 * result['agreement']:.1f}% same predicted class, "
        f"Cohen's kappa {_number(result['cohen_kappa'])}",
        f"Correlation of {compared}: Pearson {_number(result['pearson'])}, Spearman {_number(result['spearman'])}",
        f"Predicted classes (rows: {names[0]}, columns: {names[1]}):",
        header,
        *rows,
    ])


# --- Activations from a model (stage_activations) ---
# They need TensorFlow, so they live in `radtl.activations` and are reached from here
# on first use: `radtl.similarity.stage_activations(...)` works and importing this
# module stays free of TensorFlow.
_FROM_ACTIVATIONS = ("stage_activations", "stage_layers", "compare_stages", "compare_runs")


def __getattr__(name):
    if name in _FROM_ACTIVATIONS:
        import importlib

        return getattr(importlib.import_module("radtl.activations"), name)
    raise AttributeError(f"module 'radtl.similarity' has no attribute {name!r}")
