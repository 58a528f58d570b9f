"""Tests for radtl.similarity: representation similarity measures and prediction agreement.

Reference values (to 1e-6; they agree to ~1e-15) were computed in a scratch folder, never
copied into radtl, with numpy 2 / OpenBLAS 0.3.31 from:

* google/svcca at commit 1f3fbf19bd31bd9b76e728ef75842aa1d9a4cd2b: `cca_core.py`
  (`np.mean(get_cca_similarity(x.T, y.T, epsilon=1e-10)["cca_coef1"])`) and `pwcca.py`
  (`compute_pwcca(x.T, y.T, epsilon=1e-10)[0]`). For the branch where the second argument
  has fewer features, upstream raises IndexError (it indexes `acts1` with y's mask); the
  reference there is upstream with that one word changed to `acts2` (google/svcca PR #9).
  SVCCA: the recipe of svcca's `tutorials/001_Introduction.ipynb` (centre, SVD, keep the
  top k directions, `get_cca_similarity(..., epsilon=1e-10)`), with k the fewest
  directions holding 99% (or 90%) of the variance, listed per case.
* google-research/google-research `representation_similarity/Demo.ipynb` at commit
  10bf941a5a0625bf27bb8443aa849e9b48fdd5f9: `feature_space_linear_cka(x, y)`,
  `cka(gram_linear(x), gram_linear(y))`, `cka(gram_rbf(x, sigma), gram_rbf(y, sigma))`.

The inputs are rebuilt here from `np.random.RandomState` (whose streams numpy keeps stable).
"""
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import sklearn.metrics

from radtl import similarity
from radtl.rundir import RunDir
from radtl.similarity import (format_agreement, linear_cka, mean_cca, prediction_agreement, pwcca, rbf_cka,
                              svcca)

TOL = 1e-6
MEASURES = (mean_cca, svcca, pwcca, linear_cka, rbf_cka)
CCA_FAMILY = (mean_cca, svcca, pwcca)


def case_a():
    """(300, 6) and (300, 9): y a noisy nonlinear function of x."""
    rs = np.random.RandomState(0)
    x = rs.normal(size=(300, 6))
    y = np.tanh(x @ rs.normal(size=(6, 9))) + 0.5 * rs.normal(size=(300, 9))
    return x, y


def case_relu():
    """(400, 5) and (400, 7): ReLU-like, uncentred (feature means well away from 0)."""
    rs = np.random.RandomState(3)
    z = rs.normal(size=(400, 5))
    x = np.maximum(z @ rs.normal(size=(5, 5)) + 0.5, 0) + 0.1 * rs.normal(size=(400, 5))
    y = np.maximum(z @ rs.normal(size=(5, 7)), 0) + 0.1 * rs.normal(size=(400, 7))
    return x, y


def case_lowrank(n=400, px=20, py=30, seed=1):
    """Both sides driven by 4 latent factors plus a little noise."""
    rs = np.random.RandomState(seed)
    z = rs.normal(size=(n, 4))
    x = z @ rs.normal(size=(4, px)) + 0.05 * rs.normal(size=(n, px))
    y = np.tanh(z @ rs.normal(size=(4, py))) + 0.05 * rs.normal(size=(n, py))
    return x, y


def centred(a):
    return a - a.mean(axis=0)


# ---------------------------------------------------------------------------------------
# Reference values
# ---------------------------------------------------------------------------------------
def test_measure_mean_cca_matches_svcca_reference():
    assert similarity.DEFAULT_EPSILON == 1e-10  # the references' epsilon
    x, y = case_a()
    assert mean_cca(x, y) == pytest.approx(0.7679566455269464, abs=TOL)
    assert mean_cca(y, x) == pytest.approx(0.7679566455269464, abs=TOL)
    # get_cca_similarity's own default epsilon=0.
    assert mean_cca(x, y, epsilon=0.0) == pytest.approx(0.7679566456105592, abs=TOL)
    assert mean_cca(*case_relu()) == pytest.approx(0.7169867680524631, abs=TOL)
    assert mean_cca(*case_lowrank()) == pytest.approx(0.39009021602864996, abs=TOL)


def test_measure_pwcca_matches_svcca_reference_in_both_branches():
    # Upstream compute_pwcca on centred inputs. case_a: x has fewer features (upstream's
    # first branch, unmodified); swapped arguments take the second branch (with PR #9's fix).
    x, y = case_a()
    assert pwcca(x, y) == pytest.approx(0.7720986045826682, abs=TOL)
    assert pwcca(y, x) == pytest.approx(0.7720986045826681, abs=TOL)
    x, y = case_relu()
    assert pwcca(x, y) == pytest.approx(0.778685320611845, abs=TOL)
    assert pwcca(y, x) == pytest.approx(0.778685320611845, abs=TOL)
    # ... and PWCCA is not the plain mean.
    assert abs(pwcca(x, y) - mean_cca(x, y)) > 0.05


def test_measure_pwcca_ignores_feature_means_and_argument_order():
    # Upstream gives 0.7547959282801809 for compute_pwcca(x.T, y.T) on the uncentred
    # case_relu and 0.7906966974847446 (fixed branch) for the swapped arguments: it adds
    # the neuron means back before its QR step. radtl's value is the centred one for both.
    x, y = case_relu()
    assert pwcca(x, y) == pytest.approx(pwcca(centred(x), centred(y)), abs=1e-12)
    assert pwcca(x + 100.0, y - 7.0) == pytest.approx(pwcca(x, y), abs=1e-9)
    assert pwcca(x, y) == pytest.approx(pwcca(y, x), abs=1e-12)


def test_measure_pwcca_weights_come_from_the_first_side_on_a_tie():
    # Equal feature counts (6 and 6): upstream's first branch, weights from its first argument,
    # so swapping the arguments changes the value (upstream compute_pwcca on centred inputs).
    x, y = case_a()
    y = y[:, :6]
    assert pwcca(x, y) == pytest.approx(0.689757264410522, abs=TOL)
    assert pwcca(y, x) == pytest.approx(0.7337176648733396, abs=TOL)
    # With more features, y hands the weights to x again whatever the order.
    wide_y = np.hstack([y, np.random.RandomState(9).normal(size=(300, 1))])
    assert pwcca(wide_y, x) == pytest.approx(pwcca(x, wide_y), abs=1e-12)


def test_measure_svcca_matches_tutorial_recipe():
    # k kept directions: x 4 (99.96% of the variance), y 17 (keep=0.99); x 3, y 4 (keep=0.9).
    x, y = case_lowrank()
    assert svcca(x, y) == pytest.approx(0.9657443890258502, abs=TOL)
    assert svcca(x, y, keep=0.9) == pytest.approx(0.9604893301034748, abs=TOL)
    # Fewer datapoints (40) than features (64, 96): k = 4 and 19.
    x, y = case_lowrank(n=40, px=64, py=96, seed=2)
    assert svcca(x, y) == pytest.approx(0.9839711942107244, abs=TOL)


def test_measure_cka_matches_authors_notebook():
    x, y = case_a()
    assert linear_cka(x, y) == pytest.approx(0.622942388820334, abs=TOL)
    assert rbf_cka(x, y) == pytest.approx(0.6493142601572087, abs=TOL)  # sigma=0.8
    assert rbf_cka(x, y, sigma=0.4) == pytest.approx(0.5976506768866321, abs=TOL)
    # The notebook's own demo data: np.random.seed(1337); X = randn(100, 10); Y = randn(100, 10) + X.
    # Its printed outputs: "Linear CKA from Features: 0.55761", "RBF CKA: 0.65483" (sigma 0.5).
    rs = np.random.RandomState(1337)
    x = rs.randn(100, 10)
    y = rs.randn(100, 10) + x
    assert linear_cka(x, y) == pytest.approx(0.5576132566117589, abs=TOL)
    assert rbf_cka(x, y, sigma=0.5) == pytest.approx(0.6548311822614981, abs=TOL)
    assert rbf_cka(x, y, sigma=0.8) == pytest.approx(0.5858570893287389, abs=TOL)
    assert round(rbf_cka(x, y, sigma=0.5), 5) == 0.65483


# ---------------------------------------------------------------------------------------
# Hand-derivable cases
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", MEASURES, ids=lambda f: f.__name__)
def test_measure_identical_inputs_give_one(measure):
    x, _ = case_a()
    assert measure(x, x) == pytest.approx(1.0, abs=TOL)


def test_measure_invertible_linear_map_gives_one_for_cca_but_not_cka():
    # Four datapoints with centred, orthogonal, equal-norm features; y stretches feature 2
    # by 2. Linear CKA = (1 + 2^2) / (sqrt(2) sqrt(1 + 2^4)) = 5 / sqrt(34).
    x = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    y = x * [1.0, 2.0]
    assert linear_cka(x, y) == pytest.approx(5 / math.sqrt(34), abs=1e-12)
    for measure in (mean_cca, pwcca):
        assert measure(x, y) == pytest.approx(1.0, abs=TOL)
    assert svcca(x, y, keep=1.0) == pytest.approx(1.0, abs=TOL)
    # A random invertible map of richer data.
    x, _ = case_a()
    mixed = x @ np.random.RandomState(4).normal(size=(6, 6)) + 3.0
    for measure in (mean_cca, pwcca):
        assert measure(x, mixed) == pytest.approx(1.0, abs=TOL)
    assert svcca(x, mixed, keep=1.0) == pytest.approx(1.0, abs=TOL)
    assert linear_cka(x, mixed) < 0.95
    assert rbf_cka(x, mixed) < 0.95


def test_measure_orthogonal_map_scaling_and_shift_keep_cka():
    x, _ = case_a()
    q, _ = np.linalg.qr(np.random.RandomState(6).normal(size=(6, 6)))
    rotated = 2.5 * x @ q - 4.0
    assert linear_cka(x, rotated) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(x, rotated) == pytest.approx(1.0, abs=1e-9)
    # An orthogonal map into more features (9 columns, orthonormal rows).
    wide, _ = np.linalg.qr(np.random.RandomState(7).normal(size=(9, 6)))
    assert linear_cka(x, x @ wide.T) == pytest.approx(1.0, abs=1e-12)


def test_measure_independent_noise_gives_near_zero():
    rs = np.random.RandomState(5)
    x, y = rs.normal(size=(5000, 4)), rs.normal(size=(5000, 6))
    assert linear_cka(x, y) < 0.005
    assert rbf_cka(x[:1000], y[:1000]) < 0.02
    # CCA picks up chance correlations of about sqrt(k / n): small with many datapoints.
    for measure in CCA_FAMILY:
        assert measure(x, y) < 0.05
    assert mean_cca(x[:40], y[:40]) > 0.2  # and not with few


def test_measure_constant_features_ignored_by_cka_and_svcca():
    x, y = case_a()
    padded = np.hstack([y, np.full((300, 2), 3.0)])
    assert linear_cka(x, padded) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert rbf_cka(x, padded) == pytest.approx(rbf_cka(x, y), abs=1e-12)
    assert svcca(x, padded) == pytest.approx(svcca(x, y), abs=1e-9)


def test_measure_epsilon_drops_near_constant_features_as_svcca():
    # A feature whose variance is below epsilon times the largest is dropped (svcca's rule):
    # the result then equals that without the feature.
    x, y = case_a()
    tiny = np.hstack([y, 1e-7 * np.random.RandomState(8).normal(size=(300, 1))])
    assert mean_cca(x, tiny, epsilon=1e-10) == pytest.approx(mean_cca(x, y, epsilon=1e-10), abs=1e-9)
    assert mean_cca(x, tiny, epsilon=0.0) != pytest.approx(mean_cca(x, y, epsilon=0.0), abs=1e-6)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", MEASURES, ids=lambda f: f.__name__)
def test_measure_rejects_mismatched_datapoints(measure):
    x, y = case_a()
    with pytest.raises(ValueError, match=r"same datapoints .* x has 300 and y has 299"):
        measure(x, y[:299])


@pytest.mark.parametrize("measure", MEASURES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_measure_rejects_nan_and_inf(measure, bad):
    x, y = case_a()
    y = y.copy()
    y[7, 2] = bad
    with pytest.raises(ValueError, match=r"`y` must hold finite numbers, but 1 entries are NaN or inf .*\[7\]"):
        measure(x, y)


@pytest.mark.parametrize("measure", MEASURES, ids=lambda f: f.__name__)
def test_measure_rejects_arrays_that_are_not_2d(measure):
    x, _ = case_a()
    with pytest.raises(ValueError, match=r"`x` must be a 2-D array .* x.shape=\(2, 150, 6\).*reshape"):
        measure(x.reshape(2, 150, 6), x)
    with pytest.raises(ValueError, match=r"`y` must be a 2-D array"):
        measure(x, x[:, 0])
    with pytest.raises(ValueError, match=r"`y` must be a numeric array"):
        measure(x, [["a"] * 6] * 300)


@pytest.mark.parametrize("measure", (mean_cca, pwcca), ids=lambda f: f.__name__)
def test_measure_cca_rejects_fewer_datapoints_than_features(measure):
    x, y = case_lowrank(n=40, px=64, py=96, seed=2)
    with pytest.raises(ValueError, match=r"more datapoints than features.*x.shape=\(40, 64\).*use `svcca`"):
        measure(x, y)
    with pytest.raises(ValueError, match=r"y.shape=\(40, 96\)"):
        measure(x[:, :10], y)
    assert 0 < svcca(x, y) <= 1  # the suggested way out works


@pytest.mark.parametrize("measure", (mean_cca, pwcca), ids=lambda f: f.__name__)
def test_measure_cca_rejects_constant_features(measure):
    x, y = case_a()
    y = y.copy()
    y[:, [1, 4]] = 0.0
    with pytest.raises(ValueError, match=r"2 of the 9 features of `y` are constant \(columns \[1, 4\]\).*y.std"):
        measure(x, y)


@pytest.mark.parametrize("measure", (svcca, linear_cka, rbf_cka), ids=lambda f: f.__name__)
def test_measure_rejects_a_side_without_variance(measure):
    x, _ = case_a()
    with pytest.raises(ValueError, match=r"all 3 features of `x` are constant"):
        measure(np.ones((300, 3)), x)


def test_measure_rejects_bad_parameters():
    x, y = case_a()
    with pytest.raises(ValueError, match=r"`keep` must be a number in \(0.0, 1.0\]. Received: keep=0"):
        svcca(x, y, keep=0)
    with pytest.raises(ValueError, match=r"Received: keep=1.5"):
        svcca(x, y, keep=1.5)
    with pytest.raises(ValueError, match=r"`sigma` must be a number > 0.0. Received: sigma=-1"):
        rbf_cka(x, y, sigma=-1)
    for measure in (mean_cca, pwcca, svcca):
        with pytest.raises(ValueError, match=r"`epsilon` must be a number in \[0.0, 1.0\)"):
            measure(x, y, epsilon=-1e-3)


def test_measure_rbf_rejects_repeated_datapoints():
    x, y = case_a()
    repeated = np.vstack([np.zeros((250, 9)), y[:50]])  # 250^2 of 300^2 pairs at distance 0
    with pytest.raises(ValueError, match=r"median distance within `y` is 0.*linear_cka"):
        rbf_cka(x, repeated)


def test_measure_import_leaves_out_tensorflow():
    code = "import sys, radtl.similarity; print(json.dumps(['tensorflow' in sys.modules, 'keras' in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False]


# ---------------------------------------------------------------------------------------
# Prediction agreement
# ---------------------------------------------------------------------------------------
def table(filenames, probs, classes=("no", "yes"), labels=None):
    probs = np.asarray(probs, dtype=float)
    frame = pd.DataFrame({"filename": list(filenames),
                          "label": list(labels) if labels is not None else [0] * len(filenames)})
    for i, name in enumerate(classes):
        frame[f"prob_{name}"] = probs[:, i]
    return frame


def binary(p_yes):
    p_yes = np.asarray(p_yes, dtype=float)
    return np.column_stack([1 - p_yes, p_yes])


NAMES = [f"img{i:02d}.png" for i in range(10)]
P_A = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05])


def test_agreement_hand_built_binary_table():
    # B = 0.9 * A: the same ranking (Pearson = Spearman = 1) but img04 (0.55 -> 0.495) flips.
    # Predicted: A yes on 5, B yes on 4; table [[5, 0], [1, 4]]; observed agreement 0.9;
    # chance (5*6 + 5*4) / 100 = 0.5; kappa (0.9 - 0.5) / 0.5 = 0.8.
    result = prediction_agreement(table(NAMES, binary(P_A)), table(NAMES, binary(0.9 * P_A)))
    assert result["n"] == 10
    assert result["agreement"] == pytest.approx(0.9)
    assert result["cohen_kappa"] == pytest.approx(0.8)
    assert result["pearson"] == pytest.approx(1.0)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["disagreement"] == {"no": {"no": 5, "yes": 0}, "yes": {"no": 1, "yes": 4}}
    assert json.loads(json.dumps(result)) == result  # plain Python types


def test_agreement_hand_built_correlations():
    # x = [.1, .4, .6, .9], y = [.2, .3, .8, .7]: deviations (-.4, -.1, .1, .4) and (-.3, -.2, .3, .2),
    # Pearson .25 / sqrt(.34 * .26); ranks differ in one swap: Spearman 1 - 6 * 2 / (4 * 15) = 0.8.
    names = ["a", "b", "c", "d"]
    result = prediction_agreement(table(names, binary([.1, .4, .6, .9])), table(names, binary([.2, .3, .8, .7])))
    assert result["pearson"] == pytest.approx(0.25 / math.sqrt(0.34 * 0.26), abs=1e-12)
    assert result["spearman"] == pytest.approx(0.8, abs=1e-12)
    assert result["agreement"] == 1.0
    assert result["cohen_kappa"] == pytest.approx(1.0)


def test_agreement_multiclass_table_kappa_and_mean_correlation():
    # Predicted A = [0, 0, 1, 1, 2, 2], B = [0, 1, 1, 1, 2, 0]: observed 4/6, row sums (2, 2, 2),
    # column sums (2, 3, 1), chance (4 + 6 + 2) / 36 = 1/3, kappa (2/3 - 1/3) / (2/3) = 0.5.
    classes = ("acl", "meniscus", "normal")
    probs_a = np.array([[.7, .2, .1], [.5, .3, .2], [.2, .6, .2], [.1, .8, .1], [.2, .1, .7], [.1, .3, .6]])
    probs_b = np.array([[.6, .3, .1], [.3, .5, .2], [.2, .7, .1], [.2, .6, .2], [.1, .2, .7], [.5, .2, .3]])
    names = list("abcdef")
    result = prediction_agreement(table(names, probs_a, classes), table(names, probs_b, classes))
    assert result["cohen_kappa"] == pytest.approx(0.5)
    assert result["cohen_kappa"] == pytest.approx(
        sklearn.metrics.cohen_kappa_score(probs_a.argmax(1), probs_b.argmax(1)))
    assert result["agreement"] == pytest.approx(4 / 6)
    assert result["disagreement"] == {"acl": {"acl": 1, "meniscus": 1, "normal": 0},
                                      "meniscus": {"acl": 0, "meniscus": 2, "normal": 0},
                                      "normal": {"acl": 1, "meniscus": 0, "normal": 1}}
    for key, function in (("pearson", scipy.stats.pearsonr), ("spearman", scipy.stats.spearmanr)):
        expected = np.mean([function(probs_a[:, c], probs_b[:, c]).statistic for c in range(3)])
        assert result[key] == pytest.approx(expected, abs=1e-12)


def test_agreement_row_order_is_irrelevant():
    a = table(NAMES, binary(P_A), labels=[1] * 5 + [0] * 5)
    b = table(NAMES, binary(np.sqrt(P_A) * 0.8), labels=[1] * 5 + [0] * 5)
    expected = prediction_agreement(a, b)
    shuffled_b = b.sample(frac=1.0, random_state=0)
    shuffled_a = a.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert list(shuffled_b["filename"]) != NAMES
    assert prediction_agreement(a, shuffled_b) == expected
    both_shuffled = prediction_agreement(shuffled_a, shuffled_b)
    assert both_shuffled["disagreement"] == expected["disagreement"]
    for key in ("n", "agreement", "cohen_kappa", "pearson", "spearman"):
        assert both_shuffled[key] == pytest.approx(expected[key], abs=1e-12)
    assert expected["spearman"] == pytest.approx(1.0) and expected["pearson"] < 1.0


def test_agreement_refuses_different_filenames():
    a = table(NAMES, binary(P_A))
    b = table(NAMES[:8] + ["other1.png", "other2.png"], binary(P_A))
    with pytest.raises(ValueError, match=r"same images: 4 filename\(s\) differ \(2 only in `pred_a`, 2 only in "
                                         r"`pred_b`; e.g. \['img08.png', 'img09.png', 'other1.png', 'other2.png'\]\)"):
        prediction_agreement(a, b)
    with pytest.raises(ValueError, match=r"10 filename\(s\) differ \(10 only in `pred_a`, 0 only in `pred_b`; "
                                         r"e.g. \['img00.png', 'img01.png'\]\)"):
        prediction_agreement(a, b.iloc[:0])


def test_agreement_refuses_other_mismatches():
    a = table(NAMES, binary(P_A))
    with pytest.raises(ValueError, match=r"same class columns.*\['prob_no', 'prob_yes'\].*\['prob_neg', 'prob_pos'\]"):
        prediction_agreement(a, table(NAMES, binary(P_A), classes=("neg", "pos")))
    with pytest.raises(ValueError, match=r"`pred_b` lists 1 filename\(s\) more than once \(e.g. \['img00.png'\]\)"):
        prediction_agreement(a, table(NAMES + ["img00.png"], binary(list(P_A) + [0.5])))
    with pytest.raises(ValueError, match=r"`pred_b` must be a predictions table with a `filename` column"):
        prediction_agreement(a, a.drop(columns="filename"))
    with pytest.raises(ValueError, match=r"different labels to 1 of the same images \(e.g. \['img03.png'\]\)"):
        prediction_agreement(a, table(NAMES, binary(P_A), labels=[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"`pred_a` holds NaN or inf probabilities"):
        prediction_agreement(table(NAMES, binary([np.nan] + list(P_A[1:]))), a)


def test_agreement_undefined_kappa_and_correlations_are_nan():
    # Both runs predict "no" for every image with the same probability: chance agreement is 1.
    result = prediction_agreement(table(NAMES, binary([0.2] * 10)), table(NAMES, binary([0.3] * 10)))
    assert result["agreement"] == 1.0
    assert math.isnan(result["cohen_kappa"])
    assert math.isnan(result["pearson"]) and math.isnan(result["spearman"])
    assert "Cohen's kappa n/a" in format_agreement(result)


def test_agreement_reads_run_directory_predictions(tmp_path):
    classes = ["no", "yes"]
    runs = []
    for name, p_yes in (("a", P_A), ("b", 0.9 * P_A)):
        run = RunDir(tmp_path / name)
        run.create()
        run.write_predictions("test", table(NAMES, binary(p_yes)).assign(exam_id=NAMES))
        runs.append(run.read_predictions("test", class_names=classes))
    assert prediction_agreement(*runs)["cohen_kappa"] == pytest.approx(0.8)


def test_agreement_format_lines():
    result = prediction_agreement(table(NAMES, binary(P_A)), table(NAMES, binary(0.9 * P_A)))
    text = format_agreement(result, names=("imagenet", "radimagenet"))
    assert text.splitlines() == [
        "Prediction agreement on 10 images: 90.0% same predicted class, Cohen's kappa 0.800",
        "Correlation of prob_yes: Pearson 1.000, Spearman 1.000",
        "Predicted classes (rows: imagenet, columns: radimagenet):",
        "        no  yes",
        "  no     5    0",
        "  yes    1    4",
    ]
    classes = ("acl", "meniscus", "normal")
    probs = np.eye(3)[[0, 1, 2, 2]] * 0.8 + 0.1
    multi = format_agreement(prediction_agreement(table("abcd", probs, classes), table("abcd", probs, classes)))
    assert "Correlation of class probabilities (mean over 3 classes): Pearson 1.000" in multi
    assert "  normal           0         0         2" in multi
