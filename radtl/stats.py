"""Statistical comparisons: DeLong test, paired permutation and Wilcoxon tests, bootstrap CIs.

Two kinds of comparison occur in transfer-learning studies:

* Two models on the same test cases (e.g. one RadImageNet and one ImageNet model on one
  fold): `delong_test` for the AUC difference (as pROC's `roc.test`), or
  `paired_bootstrap_auc_difference`.
* Many runs of two configurations that pair up by the other factors (backbone, schedule,
  fold, seed): `pair_results` builds the per-pair differences from a long table of run
  results, and `compare_paired` runs `paired_permutation_test` and `wilcoxon_signed_rank`
  on them. Runs that share a fold (or a seed) are not independent, so treat these p-values
  as descriptive, or average over seeds first (`average_over=["seed"]`).

`bootstrap_ci` gives percentile or BCa intervals for any statistic of paired 1-D arrays,
optionally resampling within strata so that every resample keeps the class counts;
`roc_sensitivity_band` uses it for a pointwise band around an ROC curve. `holm_adjust`
corrects a family of p-values (several pairs or factors compared at once).
"""
import dataclasses
import math
import types

import numpy as np
import pandas as pd
import scipy.stats

from radtl import metrics

__all__ = [
    "DeLongTestResult",
    "PermutationTestResult",
    "WilcoxonResult",
    "PairedComparison",
    "BootstrapResult",
    "delong_test",
    "paired_permutation_test",
    "permutation_t_test",
    "PermutationTTestResult",
    "wilcoxon_signed_rank",
    "pair_results",
    "compare_paired",
    "holm_adjust",
    "bootstrap_ci",
    "bootstrap_auc_ci",
    "paired_bootstrap_auc_difference",
    "sensitivity_at_specificity",
    "roc_sensitivity_band",
]

_ALTERNATIVES = ("two-sided", "greater", "less")


def _check_alternative(alternative):
    if alternative not in _ALTERNATIVES:
        raise ValueError(
            f"`alternative` must be one of {_ALTERNATIVES}. Received: alternative={alternative!r}."
        )


# ---------------------------------------------------------------------------------------
# DeLong test for two correlated ROC curves
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DeLongTestResult:
    """DeLong's test of the difference between two correlated (paired) ROC AUCs.

    Attributes:
        auc_a: AUC of model a.
        auc_b: AUC of model b.
        difference: auc_a - auc_b.
        standard_error: DeLong standard error of the difference.
        z: difference / standard_error (0 when both are 0, as pROC).
        p_value: p-value for `alternative`.
        lower: lower bound of the two-sided CI of the difference (not clipped, as pROC).
        upper: upper bound of that CI.
        confidence_level: e.g. 0.95.
        correlation: DeLong correlation between the two AUC estimates.
        n_pos: number of positive cases.
        n_neg: number of negative cases.
        alternative: "two-sided", "greater" (auc_a > auc_b) or "less".
    """

    auc_a: float
    auc_b: float
    difference: float
    standard_error: float
    z: float
    p_value: float
    lower: float
    upper: float
    confidence_level: float
    correlation: float
    n_pos: int
    n_neg: int
    alternative: str


def delong_test(y_true, score_a, score_b, *, alternative="two-sided", confidence_level=0.95):
    """DeLong's test for two correlated ROC curves on the same cases.

    z = (AUC_a - AUC_b) / sqrt(L S L') with L = (1, -1) and S the 2 x 2 DeLong covariance
    of the two AUCs (`radtl.metrics.delong_auc_covariance`); the p-value is from the
    standard normal, and the CI of the difference is (AUC_a - AUC_b) +/- z_{1-alpha/2} SE.
    This matches pROC's `roc.test(roc_a, roc_b, method="delong", paired=TRUE)` with
    direction "<" for both curves. With fewer than two cases in a class the variance is
    undefined and the result holds NaN (with a RuntimeWarning).

    Reference:
        DeLong, DeLong & Clarke-Pearson, "Comparing the areas under two or more
        correlated receiver operating characteristic curves: a nonparametric approach",
        Biometrics 44 (1988) 837-845; Sun & Xu, IEEE SPL 21 (2014) 1389-1393.

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        score_a: array-like (N,), scores of model a (larger = more likely class 1).
        score_b: array-like (N,), scores of model b on the same cases, same order.
        alternative: "two-sided" (default), "greater" (H1: AUC_a > AUC_b) or "less".
        confidence_level: float in (0, 1), default 0.95, for the two-sided CI.

    Returns:
        A `DeLongTestResult`.

    Example:
        >>> y = [0, 0, 0, 1, 1, 1]
        >>> r = delong_test(y, [0.1, 0.3, 0.6, 0.4, 0.7, 0.9], [0.2, 0.1, 0.3, 0.6, 0.5, 0.8])
        >>> round(r.difference, 4)
        -0.1111
    """
    _check_alternative(alternative)
    metrics._check_confidence_level(confidence_level)
    y = np.asarray(y_true)
    a, b = np.asarray(score_a), np.asarray(score_b)
    if not a.shape == b.shape == y.shape:
        raise ValueError(
            "`y_true`, `score_a` and `score_b` must have the same shape (N,), one entry "
            f"per case. Received shapes {y.shape}, {a.shape} and {b.shape}."
        )
    aucs, cov = metrics.delong_auc_covariance(y, np.stack([a, b]))
    n_pos = int(np.sum(y == 1))
    n_neg = int(y.size - n_pos)
    difference = float(aucs[0] - aucs[1])
    variance = cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]
    se = math.sqrt(max(variance, 0.0)) if not math.isnan(variance) else math.nan
    if se == 0.0:
        z = 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    else:
        z = difference / se
    p_value = {
        "two-sided": 2.0 * scipy.stats.norm.sf(abs(z)),
        "greater": scipy.stats.norm.sf(z),
        "less": scipy.stats.norm.cdf(z),
    }[alternative]
    half_width = scipy.stats.norm.ppf(0.5 + confidence_level / 2.0) * se
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    return DeLongTestResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        standard_error=se,
        z=float(z),
        p_value=float(p_value),
        lower=float(difference - half_width),
        upper=float(difference + half_width),
        confidence_level=confidence_level,
        correlation=float(correlation),
        n_pos=n_pos,
        n_neg=n_neg,
        alternative=alternative,
    )


# ---------------------------------------------------------------------------------------
# Paired tests across runs (folds, seeds)
# ---------------------------------------------------------------------------------------
def _paired_differences(a, b):
    """Returns a - b (or a when b is None) as a finite float64 (n,) array, n >= 1."""
    a = np.asarray(a, dtype=np.float64)
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(
                "`a` and `b` must have the same shape (n,), one value per pair. "
                f"Received shapes {a.shape} and {b.shape}."
            )
        a = a - b
    if a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"Paired values must be a non-empty 1-D array (n,). Received shape {a.shape}."
        )
    if not np.isfinite(a).all():
        raise ValueError(
            f"Paired values contain {int((~np.isfinite(a)).sum())} NaN/inf entries; "
            "drop or fix the failed runs first."
        )
    return a


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


@dataclasses.dataclass(frozen=True)
class PermutationTestResult:
    """Paired (sign-flip) permutation test of the mean difference.

    Attributes:
        mean_difference: mean of a - b over pairs.
        p_value: p-value for `alternative`.
        n_pairs: number of pairs n.
        exact: True when all 2**n sign flips were enumerated.
        n_resamples: number of sign-flip vectors used (2**n when exact).
        alternative: "two-sided", "greater" (mean a - b > 0) or "less".
        seed: seed of the Monte Carlo resampling (unused when exact).
    """

    mean_difference: float
    p_value: float
    n_pairs: int
    exact: bool
    n_resamples: int
    alternative: str
    seed: int


@dataclasses.dataclass(frozen=True)
class PermutationTTestResult:
    """Two-sample (unpaired) permutation t-test.

    Attributes:
        statistic: Welch-free Student t statistic of a vs b (negative: mean a < mean b).
        p_value: two-sided permutation p-value.
        n_a, n_b: sample sizes.
        n_resamples: permutations drawn (all of them when fewer exist).
        seed: seed of the permutations.
    """

    statistic: float
    p_value: float
    n_a: int
    n_b: int
    n_resamples: int
    seed: int


def permutation_t_test(a, b, *, n_resamples=10_000, seed=0) -> PermutationTTestResult:
    """Unpaired two-sample t-test with a permutation p-value.

    The test "Source Matters" (Juodelyte et al. 2024) uses to compare ImageNet with
    RadImageNet per setting over 5 folds: `scipy.stats.ttest_ind(a, b,
    permutations=10000)`. With 5 vs 5 values the smallest attainable p is 2/252 = 0.0079
    (scipy enumerates all 252 splits when there are fewer than `n_resamples`).

    Args:
        a, b: 1-D array-likes of at least 2 finite values each.
        n_resamples: int. Permutations drawn. Defaults to 10,000.
        seed: int. Defaults to 0.

    Returns:
        A `PermutationTTestResult`.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
            raise ValueError(f"`{name}` must be 1-D with at least 2 finite values. Received: {name}={x.tolist()!r}")
    method = scipy.stats.PermutationMethod(n_resamples=n_resamples, rng=np.random.default_rng(seed))
    result = scipy.stats.ttest_ind(a, b, method=method)
    return PermutationTTestResult(statistic=float(result.statistic), p_value=float(result.pvalue),
                                  n_a=int(a.size), n_b=int(b.size), n_resamples=int(n_resamples), seed=int(seed))


def paired_permutation_test(
    a, b=None, *, alternative="two-sided", n_resamples=9999, max_exact_pairs=16, seed=0
):
    """Paired permutation test: is the mean of the differences a - b zero?

    Under H0 each difference is symmetric about 0, so its sign is exchangeable. When
    n <= `max_exact_pairs` or 2**n <= `n_resamples`, all 2**n sign flips are enumerated
    (exact p-value); otherwise
    `n_resamples` random flips are drawn with `seed` and p = (count + 1) /
    (n_resamples + 1) (Monte Carlo, never 0). Implemented with
    `scipy.stats.permutation_test(permutation_type="samples")`: one-sided p-values count
    flipped means at least as extreme as observed (with a 100-ulp tolerance against
    rounding), and the two-sided p-value is twice the smaller one-sided p-value (capped
    at 1); for the symmetric sign-flip distribution this is P(|mean*| >= |mean|).

    Reference:
        Fisher, "The Design of Experiments" (1935), section 21; Phipson & Smyth,
        "Permutation p-values should never be zero", Stat. Appl. Genet. Mol. Biol. 9
        (2010) 39.

    Args:
        a: array-like (n,), metric of configuration a per pair (or the differences
            themselves when `b` is None).
        b: array-like (n,) or None, metric of configuration b, same pair order.
        alternative: "two-sided" (default), "greater" (H1: mean a - b > 0) or "less".
        n_resamples: int, default 9999, Monte Carlo resamples when not exact.
        max_exact_pairs: int, default 16 (2**16 = 65536 sign vectors); enumerate all
            flips up to this many pairs.
        seed: int, default 0, seed of the Monte Carlo resampling.

    Returns:
        A `PermutationTestResult`.

    Example:
        >>> paired_permutation_test([0.91, 0.88, 0.93], [0.90, 0.86, 0.90]).p_value
        0.25
    """
    _check_alternative(alternative)
    d = _paired_differences(a, b)
    # scipy enumerates whenever n_resamples >= 2**n, and so do we: it is cheaper.
    exact = d.size <= max_exact_pairs or 2**d.size <= n_resamples
    n_used = 2**d.size if exact else int(n_resamples)
    result = scipy.stats.permutation_test(
        (d,),
        _mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_used,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return PermutationTestResult(
        mean_difference=float(np.mean(d)),
        p_value=float(result.pvalue),
        n_pairs=int(d.size),
        exact=bool(exact),
        n_resamples=n_used,
        alternative=alternative,
        seed=int(seed),
    )


@dataclasses.dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test of paired differences.

    Attributes:
        statistic: R+, the sum of the ranks of the positive differences (the `V` that R's
            `wilcox.test` reports), whatever the alternative.
        p_value: p-value for `alternative` from `scipy.stats.wilcoxon`.
        n_pairs: number of pairs, zeros included.
        n_zero: number of zero differences.
        zero_method: how zeros were handled ("wilcox", "pratt" or "zsplit").
        method: the scipy `method` requested ("auto", "exact", "asymptotic").
        alternative: "two-sided", "greater" or "less".
    """

    statistic: float
    p_value: float
    n_pairs: int
    n_zero: int
    zero_method: str
    method: str
    alternative: str


def wilcoxon_signed_rank(
    a, b=None, *, alternative="two-sided", zero_method="wilcox", method="auto"
):
    """Wilcoxon signed-rank test of the paired differences a - b, via `scipy.stats.wilcoxon`.

    Zero differences: "wilcox" (default, as R's `wilcox.test`) drops them before ranking,
    so the test uses n - n_zero pairs; "pratt" ranks them but drops their ranks; "zsplit"
    splits their ranks between the signs. Ties among |d| receive midranks. P-value
    method ("auto", scipy's default): exact null distribution when n <= 50 and there are
    no ties or zeros; with ties or zeros, exhaustive permutation when n <= 13 and the
    tie-corrected normal approximation (no continuity correction) otherwise. R's
    `wilcox.test(d, exact=FALSE, correct=FALSE)` gives the same asymptotic p-value.

    Reference:
        Wilcoxon, "Individual comparisons by ranking methods", Biometrics Bulletin 1
        (1945) 80-83; Pratt, JASA 54 (1959) 655-667.

    Args:
        a: array-like (n,), metric of configuration a per pair (or the differences
            themselves when `b` is None).
        b: array-like (n,) or None, metric of configuration b, same pair order.
        alternative: "two-sided" (default), "greater" (H1: a - b shifted above 0) or
            "less".
        zero_method: "wilcox" (default), "pratt" or "zsplit".
        method: "auto" (default), "exact" or "asymptotic", passed to scipy.

    Returns:
        A `WilcoxonResult`.

    Example:
        >>> wilcoxon_signed_rank([0.021, -0.004, 0.033, 0.012, 0.041]).p_value
        0.125
    """
    _check_alternative(alternative)
    d = _paired_differences(a, b)
    result = scipy.stats.wilcoxon(
        d, zero_method=zero_method, method=method, alternative=alternative
    )
    # scipy reports min(R+, R-) for two-sided tests; R+ is its statistic for "greater".
    r_plus = scipy.stats.wilcoxon(
        d, zero_method=zero_method, method="asymptotic", alternative="greater"
    ).statistic
    return WilcoxonResult(
        statistic=float(r_plus),
        p_value=float(result.pvalue),
        n_pairs=int(d.size),
        n_zero=int(np.sum(d == 0)),
        zero_method=zero_method,
        method=method,
        alternative=alternative,
    )


def pair_results(
    results, *, factor, metric, levels, pair_on=None, average_over=None, drop_unpaired=False
):
    """Pairs the runs of two levels of `factor` that agree on every other factor.

    For example, with columns `weights`, `backbone`, `schedule`, `fold`, `seed` and `auc`,
    `pair_results(df, factor="weights", metric="auc", levels=("radimagenet", "imagenet"))`
    returns one row per (backbone, schedule, fold, seed) with both AUCs and their
    difference.

    Args:
        results: pandas DataFrame in long format, one row per run.
        factor: str, the column whose two levels are compared.
        metric: str, the numeric column to compare.
        levels: tuple (level_a, level_b); differences are level_a - level_b.
        pair_on: list of str or None. Columns that identify a pair. Default: every column
            except `factor`, `metric` and `average_over` (so drop other metric columns,
            or name the key columns here).
        average_over: list of str or None. Columns to average the metric over before
            pairing, e.g. ["seed"] to compare per-fold means of several seeds.
        drop_unpaired: bool, default False. If False, a run without a partner raises a
            ValueError listing it; if True such runs are dropped.

    Returns:
        DataFrame with the `pair_on` columns, one column per level (named str(level))
        holding the metric, and `difference` = level_a - level_b; sorted by the keys.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(
            f"`results` must be a pandas DataFrame. Received: {type(results).__name__}."
        )
    average_over = list(average_over or [])
    for name in [factor, metric, *average_over, *(pair_on or [])]:
        if name not in results.columns:
            raise ValueError(
                f"Column {name!r} not in `results`. Available columns: "
                f"{list(results.columns)}."
            )
    if len(levels) != 2 or levels[0] == levels[1]:
        raise ValueError(
            f"`levels` must be two different values of column {factor!r}. "
            f"Received: levels={levels!r}."
        )
    available = list(pd.unique(results[factor]))
    missing = [level for level in levels if level not in available]
    if missing:
        raise ValueError(
            f"Level(s) {missing} not found in column {factor!r}. Available levels: "
            f"{available}."
        )
    excluded = {factor, metric, *average_over}
    keys = list(pair_on) if pair_on is not None else [
        c for c in results.columns if c not in excluded
    ]
    if not keys or excluded & set(keys):
        raise ValueError(
            "`pair_on` must name at least one column that identifies a pair and must not "
            f"include {sorted(map(str, excluded))}. Received: pair_on={pair_on!r}."
        )
    subset = results[results[factor].isin(levels)]
    if average_over:
        subset = subset.groupby([*keys, factor], dropna=False, sort=False)[metric].mean()
        subset = subset.reset_index()
    duplicated = subset.duplicated([*keys, factor], keep=False)
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} runs share their {keys} and {factor!r} values with "
            "another run, so they cannot be paired; first rows:\n"
            f"{subset.loc[duplicated, [*keys, factor]].head(6).to_string()}\n"
            "Name the identifying columns in `pair_on`, or average repeats with "
            "`average_over`."
        )
    column_a, column_b = str(levels[0]), str(levels[1])
    side_a = subset.loc[subset[factor] == levels[0], [*keys, metric]]
    side_b = subset.loc[subset[factor] == levels[1], [*keys, metric]]
    merged = side_a.rename(columns={metric: column_a}).merge(
        side_b.rename(columns={metric: column_b}), on=keys, how="outer", indicator=True
    )
    unpaired = merged["_merge"] != "both"
    if unpaired.any() and not drop_unpaired:
        raise ValueError(
            f"{int(unpaired.sum())} runs have no partner at the other level of "
            f"{factor!r}; first rows (left_only = only {column_a}, right_only = only "
            f"{column_b}):\n{merged.loc[unpaired, [*keys, '_merge']].head(6).to_string()}\n"
            "Complete the missing runs or pass drop_unpaired=True; if partners differ in "
            "a column that does not identify a run (another metric, a run directory), "
            "name the identifying columns in `pair_on`."
        )
    pairs = merged.loc[~unpaired].drop(columns="_merge")
    pairs["difference"] = pairs[column_a] - pairs[column_b]
    return pairs.sort_values(keys).reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of two levels of a factor across runs.

    Attributes:
        factor: the compared column, e.g. "weights".
        levels: (level_a, level_b); differences are a - b.
        metric: the compared metric column.
        pairs: DataFrame from `pair_results`.
        mean_difference: mean of the differences.
        median_difference: median of the differences.
        permutation: `PermutationTestResult` on the differences.
        wilcoxon: `WilcoxonResult` on the differences.
    """

    factor: str
    levels: tuple
    metric: str
    pairs: pd.DataFrame
    mean_difference: float
    median_difference: float
    permutation: PermutationTestResult
    wilcoxon: WilcoxonResult

    def to_dict(self):
        """JSON-serialisable summary (the pairs as a list of records)."""
        return {
            "factor": self.factor,
            "levels": [str(level) for level in self.levels],
            "metric": self.metric,
            "n_pairs": int(len(self.pairs)),
            "mean_difference": self.mean_difference,
            "median_difference": self.median_difference,
            "permutation": metrics._json_dataclass(self.permutation),
            "wilcoxon": metrics._json_dataclass(self.wilcoxon),
            "pairs": self.pairs.astype(object).where(self.pairs.notna(), None).to_dict(
                orient="records"
            ),
        }


def compare_paired(
    results,
    *,
    factor,
    metric,
    levels,
    pair_on=None,
    average_over=None,
    drop_unpaired=False,
    alternative="two-sided",
    n_resamples=9999,
    max_exact_pairs=16,
    seed=0,
    zero_method="wilcox",
):
    """Pairs runs with `pair_results` and tests the differences two ways.

    Runs `paired_permutation_test` (mean difference) and `wilcoxon_signed_rank` (median
    shift) on the per-pair differences level_a - level_b. Example: RadImageNet vs ImageNet
    AUCs paired by (backbone, schedule, fold, seed).

    Args:
        results: long DataFrame of run results, one row per run.
        factor: str, column to compare, e.g. "weights".
        metric: str, metric column, e.g. "auc".
        levels: (level_a, level_b).
        pair_on: list of str or None (default: all other columns), see `pair_results`.
        average_over: list of str or None, see `pair_results`.
        drop_unpaired: bool, default False, see `pair_results`.
        alternative: "two-sided" (default), "greater" or "less", for both tests.
        n_resamples: int, default 9999, Monte Carlo permutations when not exact.
        max_exact_pairs: int, default 16, exact sign-flip enumeration up to this n.
        seed: int, default 0, for the Monte Carlo permutations.
        zero_method: str, default "wilcox", Wilcoxon zero handling.

    Returns:
        A `PairedComparison`.
    """
    pairs = pair_results(
        results,
        factor=factor,
        metric=metric,
        levels=levels,
        pair_on=pair_on,
        average_over=average_over,
        drop_unpaired=drop_unpaired,
    )
    d = pairs["difference"].to_numpy(dtype=np.float64)
    return PairedComparison(
        factor=factor,
        levels=tuple(levels),
        metric=metric,
        pairs=pairs,
        mean_difference=float(np.mean(d)),
        median_difference=float(np.median(d)),
        permutation=paired_permutation_test(
            d,
            alternative=alternative,
            n_resamples=n_resamples,
            max_exact_pairs=max_exact_pairs,
            seed=seed,
        ),
        wilcoxon=wilcoxon_signed_rank(d, alternative=alternative, zero_method=zero_method),
    )


# ---------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------
def holm_adjust(p_values):
    """Holm's step-down adjusted p-values (family-wise error rate control).

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where adjusted < alpha
    controls the family-wise error rate at alpha under any dependence. Equal to R's
    `p.adjust(p, "holm")`. NaN p-values are left NaN and not counted in m.

    Reference:
        Holm, "A simple sequentially rejective multiple test procedure", Scandinavian
        Journal of Statistics 6 (1979) 65-70.

    Args:
        p_values: array-like (m,) of p-values in [0, 1] (NaN allowed).

    Returns:
        float64 array (m,), adjusted p-values in the input order.

    Example:
        >>> holm_adjust([0.01, 0.04, 0.03, 0.005]).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


# ---------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """A bootstrap confidence interval.

    Attributes:
        estimate: the statistic on the original data.
        lower: lower CI bound.
        upper: upper CI bound.
        standard_error: standard deviation (ddof=1) of the bootstrap distribution.
        confidence_level: e.g. 0.95.
        method: "percentile" or "BCa".
        n_resamples: number of bootstrap resamples.
        stratified: whether resampling kept the stratum (class) counts.
        seed: the seed of the resampling.
        distribution: float array (n_resamples,), the bootstrap distribution.
    """

    estimate: float
    lower: float
    upper: float
    standard_error: float
    confidence_level: float
    method: str
    n_resamples: int
    stratified: bool
    seed: int
    distribution: np.ndarray = dataclasses.field(repr=False)


_BOOTSTRAP_METHODS = {"percentile": "percentile", "bca": "BCa"}


def _resample_indices(n, n_resamples, rng, strata):
    """Bootstrap index matrix (n_resamples, n), optionally within strata."""
    if strata is None:
        # The same draw as scipy.stats.bootstrap(paired=True) with this generator.
        return rng.integers(0, n, size=(n_resamples, n))
    strata = np.asarray(strata)
    if strata.shape != (n,):
        raise ValueError(
            f"`strata` must have shape (N,) = ({n},), one label per case. Received: "
            f"shape {strata.shape}."
        )
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    return np.concatenate(
        [g[rng.integers(0, g.size, size=(n_resamples, g.size))] for g in groups], axis=1
    )


def bootstrap_ci(
    statistic,
    *data,
    strata=None,
    n_resamples=2000,
    confidence_level=0.95,
    method="BCa",
    seed=0,
):
    """Bootstrap confidence interval of a statistic of paired 1-D samples (cases).

    Cases (the i-th entries of all `data` arrays together) are resampled with
    replacement, `n_resamples` times, from `np.random.default_rng(seed)`. With `strata`
    (e.g. the class labels) each stratum is resampled separately, so every resample
    keeps the stratum sizes: an AUC resample then always has both classes (pROC's
    `boot.stratified=TRUE`). The interval itself comes from `scipy.stats.bootstrap`
    given this bootstrap distribution: "percentile" takes its alpha/2 and 1 - alpha/2
    quantiles; "BCa" adjusts them for bias (z0 from the distribution) and acceleration
    (from the leave-one-case-out jackknife of the statistic). Without strata the
    resampling is exactly that of `scipy.stats.bootstrap(data, statistic, paired=True,
    rng=np.random.default_rng(seed))`.

    Reference:
        Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), chapters 13-14;
        Efron, "Better bootstrap confidence intervals", JASA 82 (1987) 171-185.

    Args:
        statistic: callable(*arrays) -> float, applied to resampled copies of `data`.
        *data: one or more array-likes of shape (N,), N >= 2, paired by index.
        strata: array-like (N,) or None (default). Labels to resample within.
        n_resamples: int, default 2000 (pROC's boot.n).
        confidence_level: float in (0, 1), default 0.95.
        method: "BCa" (default) or "percentile".
        seed: int, default 0.

    Returns:
        A `BootstrapResult`. Memory: an index matrix of n_resamples x N int64.

    Example:
        >>> r = bootstrap_ci(np.mean, np.arange(10.0), n_resamples=200, method="percentile")
        >>> r.lower < 4.5 < r.upper
        True
    """
    metrics._check_confidence_level(confidence_level)
    if method.lower() not in _BOOTSTRAP_METHODS:
        raise ValueError(
            f"`method` must be one of {sorted(_BOOTSTRAP_METHODS.values())}. "
            f"Received: method={method!r}."
        )
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(
            f"`n_resamples` must be a positive integer. Received: n_resamples={n_resamples}."
        )
    arrays = [np.asarray(x) for x in data]
    if not arrays or any(x.ndim != 1 for x in arrays):
        raise ValueError(
            "`data` must be one or more 1-D arrays of shape (N,). Received shapes "
            f"{[x.shape for x in arrays]}."
        )
    n = arrays[0].size
    if n < 2 or any(x.size != n for x in arrays):
        raise ValueError(
            "All `data` arrays must have the same length N >= 2 (one entry per case). "
            f"Received lengths {[x.size for x in arrays]}."
        )
    rng = np.random.default_rng(seed)
    indices = _resample_indices(n, int(n_resamples), rng, strata)
    distribution = np.empty(len(indices))
    for k, idx in enumerate(indices):
        try:
            distribution[k] = statistic(*(x[idx] for x in arrays))
        except ValueError as err:
            raise ValueError(
                f"`statistic` failed on bootstrap resample {k}: {err} If the statistic "
                "needs every class present (e.g. an AUC), pass strata=y_true."
            ) from err
    interval = scipy.stats.bootstrap(
        tuple(arrays),
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=0,
        bootstrap_result=types.SimpleNamespace(bootstrap_distribution=distribution),
        confidence_level=confidence_level,
        method=method,
    )
    return BootstrapResult(
        estimate=float(statistic(*arrays)),
        lower=float(interval.confidence_interval.low),
        upper=float(interval.confidence_interval.high),
        standard_error=float(interval.standard_error),
        confidence_level=confidence_level,
        method=_BOOTSTRAP_METHODS[method.lower()],
        n_resamples=int(n_resamples),
        stratified=strata is not None,
        seed=int(seed),
        distribution=distribution,
    )


def _check_bca_class_counts(y, method):
    """Raises if BCa's leave-one-out jackknife would remove a whole class."""
    n_pos = int(np.sum(y == 1))
    if method.lower() == "bca" and min(n_pos, y.size - n_pos) < 2:
        raise ValueError(
            "The BCa interval needs at least 2 cases per class (its jackknife leaves "
            f"each case out). Received n_pos={n_pos}, n_neg={y.size - n_pos}. Use "
            "method='percentile'."
        )


def bootstrap_auc_ci(
    y_true,
    y_score,
    *,
    stratified=True,
    n_resamples=2000,
    confidence_level=0.95,
    method="BCa",
    seed=0,
):
    """Bootstrap CI of the ROC AUC, resampling cases (stratified by class by default).

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        y_score: array-like (N,), scores, larger = more likely class 1.
        stratified: bool, default True; keep n_pos and n_neg fixed in every resample
            (pROC's default). Without it a resample with one class raises a ValueError.
        n_resamples: int, default 2000.
        confidence_level: float in (0, 1), default 0.95.
        method: "BCa" (default) or "percentile".
        seed: int, default 0.

    Returns:
        A `BootstrapResult` whose `estimate` is `radtl.metrics.roc_auc(y_true, y_score)`.
    """
    metrics.roc_auc(y_true, y_score)  # validates labels (both classes) and scores
    y = np.asarray(y_true).astype(np.int64)
    _check_bca_class_counts(y, method)
    return bootstrap_ci(
        metrics.roc_auc,
        y,
        np.asarray(y_score, dtype=np.float64),
        strata=y if stratified else None,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        method=method,
        seed=seed,
    )


def _auc_difference(y_true, score_a, score_b):
    return metrics.roc_auc(y_true, score_a) - metrics.roc_auc(y_true, score_b)


def paired_bootstrap_auc_difference(
    y_true,
    score_a,
    score_b,
    *,
    stratified=True,
    n_resamples=2000,
    confidence_level=0.95,
    method="BCa",
    seed=0,
):
    """Paired bootstrap CI of AUC_a - AUC_b for two models scored on the same cases.

    Each resample draws cases once and evaluates both models on them, so the correlation
    between the two AUCs is kept (resample patients, not models). A CI excluding 0 is
    evidence of a difference at level 1 - confidence_level; `delong_test` is the
    analytic alternative.

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes must be present.
        score_a: array-like (N,), scores of model a.
        score_b: array-like (N,), scores of model b on the same cases, same order.
        stratified: bool, default True; keep the class counts in every resample.
        n_resamples: int, default 2000.
        confidence_level: float in (0, 1), default 0.95.
        method: "BCa" (default) or "percentile".
        seed: int, default 0.

    Returns:
        A `BootstrapResult` for the difference AUC_a - AUC_b, in [-1, 1].
    """
    _auc_difference(y_true, score_a, score_b)  # validates labels and both scores
    y = np.asarray(y_true).astype(np.int64)
    _check_bca_class_counts(y, method)
    return bootstrap_ci(
        _auc_difference,
        y,
        np.asarray(score_a, dtype=np.float64),
        np.asarray(score_b, dtype=np.float64),
        strata=y if stratified else None,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        method=method,
        seed=seed,
    )


# ---------------------------------------------------------------------------------------
# Pointwise band around an ROC curve
# ---------------------------------------------------------------------------------------
def sensitivity_at_specificity(y_true, score, specificity):
    """Highest sensitivity over thresholds whose specificity is at least `specificity`.

    With scores >= t predicted positive, specificity >= sp allows at most
    k = floor((1 - sp) * n_neg) false positives, so t lies just above the (k+1)-th largest
    negative score and the sensitivity is the fraction of positives scoring above it.
    This is the upper-left envelope of the empirical ROC curve at FPR = 1 - sp.

    Args:
        y_true: array-like (N,), labels in {0, 1}.
        score: array-like (N,), larger = more likely positive.
        specificity: float in [0, 1].

    Returns:
        float in [0, 1].

    Example:
        >>> sensitivity_at_specificity([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 1.0)  # no false positive
        0.5
    """
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"`specificity` must lie in [0, 1]. Received: specificity={specificity!r}.")
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    negatives = np.sort(s[y == 0])[::-1]
    allowed = int(math.floor((1.0 - specificity) * negatives.size + 1e-9))
    if allowed >= negatives.size:
        return 1.0
    return float(np.mean(s[y == 1] > negatives[allowed]))


def roc_sensitivity_band(y_true, prob_pos, *, specificities=None, n_resamples=2000,
                         confidence_level=0.95, seed=0):
    """Pointwise bootstrap CI of the sensitivity at fixed specificities.

    At each specificity sp the sensitivity is `sensitivity_at_specificity` (the empirical
    ROC curve read at FPR = 1 - sp). Its interval is the percentile bootstrap of
    `bootstrap_ci`, resampling cases within each class (stratified, as pROC's
    `ci.se(boot.stratified=TRUE)`); the same seed gives every specificity the same
    resamples. The band is pointwise, not simultaneous.

    Reference:
        Robin et al., "pROC: an open-source package for R and S+ to analyze and compare
        ROC curves", BMC Bioinformatics 12 (2011) 77 (`ci.se`); Efron & Tibshirani (1993).

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes present.
        prob_pos: array-like (N,), P(class 1) or any score, larger = more likely positive.
        specificities: array-like or None; default 0, 0.05, ..., 1 (21 points).
        n_resamples: int, default 2000 (pROC's boot.n).
        confidence_level: float in (0, 1), default 0.95.
        seed: int, default 0.

    Returns:
        DataFrame with columns `specificity`, `sensitivity`, `lower`, `upper`.

    Example:
        >>> band = roc_sensitivity_band([0, 0, 1, 1, 0, 1], [.1, .4, .35, .8, .2, .9],
        ...                             specificities=[0.5], n_resamples=50)
        >>> float(band["sensitivity"].iloc[0])
        1.0
    """
    metrics.roc_auc(y_true, prob_pos)  # validates labels (both classes) and scores
    y = np.asarray(y_true).astype(np.int64)
    score = np.asarray(prob_pos, dtype=np.float64)
    grid = np.linspace(0.0, 1.0, 21) if specificities is None else np.asarray(specificities, float)
    rows = []
    for sp in grid:
        result = bootstrap_ci(
            lambda yy, ss, sp=sp: sensitivity_at_specificity(yy, ss, sp), y, score,
            strata=y, n_resamples=n_resamples, confidence_level=confidence_level,
            method="percentile", seed=seed,
        )
        rows.append({"specificity": float(sp), "sensitivity": result.estimate,
                     "lower": result.lower, "upper": result.upper})
    return pd.DataFrame(rows)
