"""Tests for radtl.stats against independent references.

DeLong test and Wilcoxon values come from R 4.2.2 with pROC 1.18.0
(`tests/data/proc_reference.R`); permutation p-values from exhaustive enumeration written
here; bootstrap intervals from `scipy.stats.bootstrap` and a BCa formula written here.
"""
import itertools
import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import scipy.special
import scipy.stats
import sklearn.metrics

from radtl import metrics, stats

ASAH = pd.read_csv(pathlib.Path(__file__).parent / "data" / "asah.csv")
Y = ASAH["poor_outcome"].to_numpy()
TOL = 1e-9

# pROC 1.18.0: roc.test(roc_a, roc_b, method="delong", paired=TRUE) on aSAH,
# direction "<": (Z, p-value, conf.int lower, conf.int upper).
PROC_ROC_TEST = {
    ("s100b", "wfns"): (
        -2.2089835914409077, 0.02717578222918815, -0.17421441924947756, -0.010406176956484617
    ),
    ("s100b", "ndka"): (
        1.3907700257355771, 0.16429517522305448, -0.048870606422809354, 0.28769174463419145
    ),
    ("wfns", "ndka"): (
        2.7977759186890387, 0.0051455797069109776, 0.063401170933987644, 0.36004056348335656
    ),
}
# pROC roc.test estimates (AUCs) of s100b and wfns.
PROC_AUC_S100B = 0.73136856368563685
PROC_AUC_WFNS = 0.82367886178861793


# --------------------------------------------------------------------------- DeLong test
@pytest.mark.parametrize("pair", sorted(PROC_ROC_TEST))
def test_delong_test_matches_proc_roc_test(pair):
    a, b = pair
    result = stats.delong_test(Y, ASAH[a], ASAH[b])
    z, p_value, lower, upper = PROC_ROC_TEST[pair]
    assert result.z == pytest.approx(z, abs=TOL)
    assert result.p_value == pytest.approx(p_value, abs=TOL)
    assert (result.lower, result.upper) == pytest.approx((lower, upper), abs=TOL)
    assert result.auc_a == pytest.approx(metrics.roc_auc(Y, ASAH[a]), abs=1e-12)
    assert result.difference == pytest.approx(result.auc_a - result.auc_b, abs=1e-15)


def test_delong_test_published_s100b_vs_wfns():
    # pROC documentation example: Z = -2.209, p-value = 0.02718.
    result = stats.delong_test(Y, ASAH["s100b"], ASAH["wfns"])
    assert (round(result.z, 3), round(result.p_value, 5)) == (-2.209, 0.02718)


def test_delong_test_one_sided_and_symmetry():
    two_sided = stats.delong_test(Y, ASAH["wfns"], ASAH["ndka"])
    greater = stats.delong_test(Y, ASAH["wfns"], ASAH["ndka"], alternative="greater")
    less = stats.delong_test(Y, ASAH["wfns"], ASAH["ndka"], alternative="less")
    assert greater.p_value == pytest.approx(two_sided.p_value / 2, abs=1e-15)
    assert less.p_value == pytest.approx(1 - two_sided.p_value / 2, abs=1e-15)
    swapped = stats.delong_test(Y, ASAH["ndka"], ASAH["wfns"])
    assert swapped.z == pytest.approx(-two_sided.z, abs=1e-12)
    assert (swapped.lower, swapped.upper) == pytest.approx(
        (-two_sided.upper, -two_sided.lower), abs=1e-12
    )
    # The DeLong correlation equals cov / sqrt(var_a var_b) from the 2x2 covariance.
    _, cov = metrics.delong_auc_covariance(Y, np.stack([ASAH["wfns"], ASAH["ndka"]]))
    assert two_sided.correlation == pytest.approx(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1]))


def test_delong_test_identical_scores_gives_z_zero_like_proc():
    result = stats.delong_test(Y, ASAH["s100b"], ASAH["s100b"])
    assert (result.difference, result.standard_error, result.z, result.p_value) == (
        0.0, 0.0, 0.0, 1.0
    )


def test_delong_test_single_positive_and_errors():
    with pytest.warns(RuntimeWarning, match="n_pos=1"):
        result = stats.delong_test([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.3, 0.2, 0.1, 0.4])
    assert result.difference == 0.0 and math.isnan(result.p_value)
    with pytest.raises(ValueError, match="only class 0"):
        stats.delong_test([0, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="same shape.*\\(3,\\), \\(3,\\) and \\(2,\\)"):
        stats.delong_test([0, 1, 0], [0.1, 0.2, 0.3], [0.3, 0.2])
    with pytest.raises(ValueError, match="alternative='bigger'"):
        stats.delong_test([0, 1, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], alternative="bigger")


# --------------------------------------------------------------------------- permutation
def enumerated_sign_flip_p(d, alternative):
    """Exact sign-flip p-value by listing all 2**n sign vectors."""
    d = np.asarray(d, dtype=float)
    observed = d.mean()
    means = np.array([np.mean(d * s) for s in itertools.product([1, -1], repeat=d.size)])
    slack = 1e-12
    p_greater = np.mean(means >= observed - slack)
    p_less = np.mean(means <= observed + slack)
    if alternative == "greater":
        return p_greater
    if alternative == "less":
        return p_less
    return np.mean(np.abs(means) >= abs(observed) - slack)


DIFFERENCES = np.array([0.021, -0.004, 0.033, 0.012, -0.009, 0.041, 0.017, 0.014, 0.028, 0.006])


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_permutation_test_exact_matches_enumeration(alternative):
    a = 0.85 + np.linspace(0, 0.05, DIFFERENCES.size)
    result = stats.paired_permutation_test(a + DIFFERENCES, a, alternative=alternative)
    assert result.exact and result.n_resamples == 2**10
    assert result.mean_difference == pytest.approx(DIFFERENCES.mean(), abs=1e-15)
    assert result.p_value == pytest.approx(
        enumerated_sign_flip_p(DIFFERENCES, alternative), abs=1e-12
    )


def test_permutation_test_exact_with_zero_and_tied_differences():
    d = np.array([0.02, 0.02, -0.02, 0.0, 0.01, 0.03, -0.01])
    result = stats.paired_permutation_test(d)
    assert result.p_value == pytest.approx(enumerated_sign_flip_p(d, "two-sided"), abs=1e-12)


def test_permutation_test_monte_carlo_is_seeded_and_close_to_exact():
    d = np.concatenate([DIFFERENCES, [-0.035, 0.002, -0.018, 0.011]])  # 2**14 > 9999
    exact = enumerated_sign_flip_p(d, "two-sided")
    first = stats.paired_permutation_test(d, max_exact_pairs=5, seed=1)
    again = stats.paired_permutation_test(d, max_exact_pairs=5, seed=1)
    other = stats.paired_permutation_test(d, max_exact_pairs=5, seed=2)
    assert not first.exact and first.n_resamples == 9999
    assert first.p_value == again.p_value
    assert first.p_value != other.p_value
    assert first.p_value == pytest.approx(exact, abs=0.01)  # MC s.e. is about 0.0035
    # With at least 2**n resamples the enumeration is exact anyway.
    enumerated = stats.paired_permutation_test(DIFFERENCES, max_exact_pairs=5)
    assert enumerated.exact and enumerated.n_resamples == 2**10


def test_permutation_test_monte_carlo_p_value_never_zero():
    d = np.linspace(0.01, 0.05, 30)  # all positive: exact p would be 2 / 2**30
    result = stats.paired_permutation_test(d, n_resamples=999)
    assert result.p_value == pytest.approx(2 / 1000)


# --------------------------------------------------------------------------- Wilcoxon
def test_wilcoxon_exact_matches_r():
    # R: wilcox.test(d, exact=TRUE): V = 51, p-value = 0.013671875.
    result = stats.wilcoxon_signed_rank(DIFFERENCES)
    assert result.statistic == 51
    assert result.p_value == pytest.approx(0.013671875, abs=1e-12)
    a = 0.8 + np.arange(10) / 100
    paired = stats.wilcoxon_signed_rank(a + DIFFERENCES, a)
    assert (paired.statistic, paired.p_value) == (result.statistic, result.p_value)


TIED = np.array([2, 2, 2, 0, -2, 2, 2, 2, 2, 2, 0, -1]) / 8


def test_wilcoxon_ties_and_zeros_asymptotic_matches_r():
    # R: wilcox.test(d, exact=FALSE, correct=FALSE): V = 48, p-value = 0.02294970941.
    result = stats.wilcoxon_signed_rank(TIED, method="asymptotic")
    assert result.statistic == 48
    assert result.p_value == pytest.approx(0.022949709411096014, abs=1e-12)
    assert (result.n_pairs, result.n_zero, result.zero_method) == (12, 2, "wilcox")


def test_wilcoxon_ties_auto_uses_exhaustive_permutation():
    # zero_method="wilcox": drop zeros, midrank |d|, enumerate all 2**10 sign patterns.
    nonzero = TIED[TIED != 0]
    ranks = scipy.stats.rankdata(np.abs(nonzero))
    observed = ranks[nonzero > 0].sum()
    null = np.array(
        [ranks[np.array(s, dtype=bool)].sum() for s in itertools.product([0, 1], repeat=10)]
    )
    expected = min(1.0, 2 * min(np.mean(null >= observed), np.mean(null <= observed)))
    assert stats.wilcoxon_signed_rank(TIED).p_value == pytest.approx(expected, abs=1e-12)


def test_wilcoxon_statistic_is_r_plus_for_every_alternative():
    for alternative in ("two-sided", "greater", "less"):
        result = stats.wilcoxon_signed_rank(-DIFFERENCES, alternative=alternative)
        assert result.statistic == 4  # 55 - 51: the ranks of the two positive values
    assert stats.wilcoxon_signed_rank(-DIFFERENCES, alternative="less").p_value == (
        pytest.approx(0.013671875 / 2, abs=1e-12)
    )


# --------------------------------------------------------------------------- run tables
def run_table():
    """Long table: 2 weights x 2 backbones x 3 folds x 2 seeds, shuffled rows."""
    rows = []
    for backbone, fold, seed in itertools.product(["resnet50", "densenet121"], range(3), range(2)):
        base = 0.8 + 0.02 * fold + 0.01 * seed + (0.03 if backbone == "resnet50" else 0.0)
        rows.append(("imagenet", backbone, fold, seed, base))
        rows.append(("radimagenet", backbone, fold, seed, base - 0.01 * (fold + 1)))
    table = pd.DataFrame(rows, columns=["weights", "backbone", "fold", "seed", "auc"])
    return table.sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_pair_results_pairs_by_all_other_columns():
    pairs = stats.pair_results(
        run_table(), factor="weights", metric="auc", levels=("radimagenet", "imagenet")
    )
    assert list(pairs.columns) == [
        "backbone", "fold", "seed", "radimagenet", "imagenet", "difference"
    ]
    assert len(pairs) == 12
    np.testing.assert_allclose(pairs["difference"], -0.01 * (pairs["fold"] + 1), atol=1e-12)
    np.testing.assert_allclose(pairs["radimagenet"] - pairs["imagenet"], pairs["difference"])


def test_pair_results_average_over_seed():
    pairs = stats.pair_results(
        run_table(),
        factor="weights",
        metric="auc",
        levels=("radimagenet", "imagenet"),
        average_over=["seed"],
    )
    assert len(pairs) == 6 and "seed" not in pairs.columns
    expected = run_table().query("weights == 'imagenet' and backbone == 'resnet50' and fold == 2")
    row = pairs.query("backbone == 'resnet50' and fold == 2").iloc[0]
    assert row["imagenet"] == pytest.approx(expected["auc"].mean())


def test_pair_results_errors_name_the_problem():
    table = run_table()
    with pytest.raises(ValueError, match="Available levels: .*imagenet"):
        stats.pair_results(table, factor="weights", metric="auc", levels=("rad", "imagenet"))
    with pytest.raises(ValueError, match="share their \\['backbone', 'fold'\\]"):
        stats.pair_results(
            table, factor="weights", metric="auc", levels=("radimagenet", "imagenet"),
            pair_on=["backbone", "fold"],
        )
    incomplete = table.drop(index=table.index[table["weights"] == "imagenet"][:1])
    with pytest.raises(ValueError, match="1 runs have no partner.*left_only"):
        stats.pair_results(
            incomplete, factor="weights", metric="auc", levels=("radimagenet", "imagenet")
        )
    pairs = stats.pair_results(
        incomplete, factor="weights", metric="auc", levels=("radimagenet", "imagenet"),
        drop_unpaired=True,
    )
    assert len(pairs) == 11
    with pytest.raises(ValueError, match="Column 'accuracy' not in `results`"):
        stats.pair_results(table, factor="weights", metric="accuracy", levels=("a", "b"))


def test_compare_paired_runs_both_tests_on_the_differences():
    comparison = stats.compare_paired(
        run_table(), factor="weights", metric="auc", levels=("radimagenet", "imagenet")
    )
    d = comparison.pairs["difference"].to_numpy()
    assert comparison.mean_difference == pytest.approx(-0.02)
    assert comparison.permutation.exact
    assert comparison.permutation.p_value == pytest.approx(
        enumerated_sign_flip_p(d, "two-sided"), abs=1e-12
    )
    assert comparison.wilcoxon.p_value == pytest.approx(scipy.stats.wilcoxon(d).pvalue)
    summary = comparison.to_dict()
    assert json.loads(json.dumps(summary, allow_nan=False))["n_pairs"] == 12


# --------------------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("method", ["percentile", "BCa"])
def test_unstratified_bootstrap_equals_scipy_bootstrap(method):
    score = ASAH["s100b"].to_numpy()
    ours = stats.bootstrap_auc_ci(
        Y, score, stratified=False, n_resamples=500, method=method, seed=3
    )
    reference = scipy.stats.bootstrap(
        (Y, score), metrics.roc_auc, paired=True, vectorized=False, n_resamples=500,
        method=method, rng=np.random.default_rng(3),
    )
    assert (ours.lower, ours.upper) == pytest.approx(
        (reference.confidence_interval.low, reference.confidence_interval.high), abs=1e-12
    )
    assert ours.standard_error == pytest.approx(reference.standard_error, abs=1e-12)
    assert ours.estimate == pytest.approx(PROC_AUC_S100B, abs=TOL)


def bca_interval(distribution, estimate, jackknife, confidence_level):
    """BCa interval (Efron & Tibshirani 1993, eq. 14.10-14.15), z0 with mid-ties."""
    z0 = scipy.special.ndtri(
        (np.mean(distribution < estimate) + np.mean(distribution <= estimate)) / 2
    )
    u = jackknife.mean() - jackknife
    acceleration = np.sum(u**3) / (6 * np.sum(u**2) ** 1.5)
    z = scipy.special.ndtri([(1 - confidence_level) / 2, (1 + confidence_level) / 2])
    levels = scipy.special.ndtr(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
    return np.quantile(distribution, levels)


def test_stratified_bca_matches_textbook_formula():
    a, b = ASAH["s100b"].to_numpy(), ASAH["wfns"].to_numpy()
    result = stats.paired_bootstrap_auc_difference(Y, a, b, n_resamples=400, seed=5)
    keep = ~np.eye(Y.size, dtype=bool)
    jackknife = np.array(
        [metrics.roc_auc(Y[k], a[k]) - metrics.roc_auc(Y[k], b[k]) for k in keep]
    )
    expected = bca_interval(result.distribution, result.estimate, jackknife, 0.95)
    assert (result.lower, result.upper) == pytest.approx(tuple(expected), abs=1e-12)
    assert result.estimate == pytest.approx(PROC_AUC_S100B - PROC_AUC_WFNS, abs=TOL)
    # The bootstrap and DeLong standard errors of the difference agree roughly.
    delong = stats.delong_test(Y, a, b)
    assert result.standard_error == pytest.approx(delong.standard_error, rel=0.25)


def test_stratified_resamples_keep_class_counts():
    n_pos = int(Y.sum())
    result = stats.bootstrap_ci(
        lambda y, s: float(np.sum(y)), Y, ASAH["s100b"].to_numpy(),
        strata=Y, n_resamples=300, method="percentile",
    )
    assert result.stratified
    np.testing.assert_array_equal(result.distribution, n_pos)
    unstratified = stats.bootstrap_ci(
        lambda y, s: float(np.sum(y)), Y, ASAH["s100b"].to_numpy(),
        n_resamples=300, method="percentile",
    )
    assert np.ptp(unstratified.distribution) > 0


def test_bootstrap_is_reproducible_and_seed_dependent():
    score = ASAH["ndka"].to_numpy()
    first = stats.bootstrap_auc_ci(Y, score, n_resamples=300, seed=11)
    again = stats.bootstrap_auc_ci(Y, score, n_resamples=300, seed=11)
    other = stats.bootstrap_auc_ci(Y, score, n_resamples=300, seed=12)
    np.testing.assert_array_equal(first.distribution, again.distribution)
    assert (first.lower, first.upper) == (again.lower, again.upper)
    assert not np.array_equal(first.distribution, other.distribution)
    assert first.lower < first.estimate < first.upper


def test_bootstrap_auc_edge_cases():
    y = np.array([0, 0, 0, 0, 0, 0, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="at least 2 cases per class.*method='percentile'"):
        stats.bootstrap_auc_ci(y, score)
    result = stats.bootstrap_auc_ci(y, score, method="percentile", n_resamples=200)
    assert 0 <= result.lower <= result.estimate <= result.upper <= 1
    with pytest.raises(ValueError, match="resample .*pass strata=y_true"):
        stats.bootstrap_auc_ci(y, score, stratified=False, method="percentile")
    with pytest.raises(ValueError, match="needs both classes"):
        stats.bootstrap_auc_ci(np.zeros(5), np.arange(5.0))
    with pytest.raises(ValueError, match="method='normal'"):
        stats.bootstrap_auc_ci(y, score, method="normal")


# ------------------------------------------------------------------- multiple comparisons
def test_holm_adjust_matches_r_p_adjust():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    assert stats.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # R: p.adjust(c(0.5, NA, 0.2), "holm") -> 0.5 NA 0.4
    adjusted = stats.holm_adjust([0.5, np.nan, 0.2])
    assert adjusted[[0, 2]] == pytest.approx([0.5, 0.4]) and np.isnan(adjusted[1])
    assert stats.holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])


# ------------------------------------------------------------------------ ROC band
def test_sensitivity_at_specificity_is_the_roc_envelope():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    score = np.round(rng.random(80) + 0.3 * y, 1)  # many ties
    fpr, tpr, _ = sklearn.metrics.roc_curve(y, score, drop_intermediate=False)
    for sp in np.linspace(0, 1, 41):
        expected = tpr[fpr <= 1 - sp + 1e-12].max()
        assert stats.sensitivity_at_specificity(y, score, sp) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="Received: specificity=1.5"):
        stats.sensitivity_at_specificity(y, score, 1.5)


def test_roc_sensitivity_band_is_the_stratified_percentile_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 60)
    score = rng.random(60) + 0.5 * y
    band = stats.roc_sensitivity_band(y, score, specificities=[0.2, 0.8], n_resamples=300, seed=7)
    for row in band.itertuples():
        direct = stats.bootstrap_ci(
            lambda yy, ss: stats.sensitivity_at_specificity(yy, ss, row.specificity), y, score,
            strata=y, n_resamples=300, method="percentile", seed=7)
        assert (row.sensitivity, row.lower, row.upper) == (direct.estimate, direct.lower, direct.upper)
        assert row.lower <= row.sensitivity <= row.upper
    again = stats.roc_sensitivity_band(y, score, specificities=[0.2, 0.8], n_resamples=300, seed=7)
    pd.testing.assert_frame_equal(band, again)
    other = stats.roc_sensitivity_band(y, score, specificities=[0.2, 0.8], n_resamples=300, seed=8)
    assert not band.equals(other)
    default = stats.roc_sensitivity_band(y, score, n_resamples=20)
    assert default["specificity"].tolist() == pytest.approx(np.linspace(0, 1, 21).tolist())
    with pytest.raises(ValueError, match="both classes"):
        stats.roc_sensitivity_band(np.zeros(5), np.arange(5.0))


def test_permutation_t_test_matches_source_matters_smallest_p():
    # 5 vs 5 fully separated folds: the smallest attainable two-sided p is 2 / C(10, 5) = 0.0079,
    # the value "Source Matters" reports for its significant settings.
    result = stats.permutation_t_test([0.10, 0.20, 0.15, 0.12, 0.18], [0.50, 0.60, 0.55, 0.52, 0.58])
    assert result.p_value == pytest.approx(2 / 252)
    assert result.statistic < 0
    assert stats.permutation_t_test([1, 2, 3, 4, 5], [1.5, 2.5, 3.5, 4.5, 5.5]).p_value > 0.5
    with pytest.raises(ValueError, match="at least 2 finite values"):
        stats.permutation_t_test([1.0], [2.0, 3.0])
