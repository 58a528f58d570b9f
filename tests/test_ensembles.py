"""Tests for radtl.ensembles on fake but well-formed finished runs (no training, no TensorFlow).

Members are written through `radtl.rundir.RunDir` as `radtl.train.run` writes them:
`test_analysis.make_run` for realistic members, `write_run` below for members whose
probabilities a test constructs. Expected values are computed here with numpy, scipy,
scikit-learn and `radtl.metrics` directly.
"""
import json

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from sklearn.linear_model import LogisticRegression

from radtl import analysis, ensembles, metrics
from radtl.rundir import RunDir, RunDirectoryError, labels_and_probs
from test_analysis import CLASS_NAMES, DIVERGED, config_dict, make_run


def write_run(root, name, p1=None, labels=None, *, probs=None, class_names=CLASS_NAMES, filenames=None,
              finished=True, **config_changes):
    """A finished run with given predictions; returns its Path.

    Args:
        p1: dict split -> (N,) P(class 1) of a binary run (or `probs`: split -> (N, K)).
        labels: dict split -> (N,) class indices.
        filenames: dict split -> list of N filenames (default images/<split>_<i>.png).
    """
    run = RunDir(root / name)
    assert run.check_usable() == "new"
    run.create()
    probs = probs or {split: np.stack([1 - p, p], axis=1) for split, p in p1.items()}
    run.write_config(config_dict(**config_changes), {
        "class_names": list(class_names), "split_sizes": {"train": 100, **{s: len(y) for s, y in labels.items()}}})
    run.write_history(pd.DataFrame({"epoch": [0, 1], "val_auc": [0.6, 0.7]}))
    report = {"monitor": "val_auc", "best_epoch": 2, "best_value": 0.7}
    for split, y in labels.items():
        names = (filenames or {}).get(split) or [f"images/{split}_{i:04d}.png" for i in range(len(y))]
        frame = pd.DataFrame({"filename": names, "exam_id": [f"{i // 2:04d}" for i in range(len(y))], "label": y})
        for k, class_name in enumerate(class_names):
            frame[f"prob_{class_name}"] = probs[split][:, k]
        run.write_predictions(split, frame)
        report[split] = metrics.evaluate_predictions(y, probs[split])
    if finished:
        run.write_metrics(report)
    return run.path


def _informative(labels, separations, rng):
    """One member per separation: split -> P(class 1) = sigmoid(sep * (2y - 1) + N(0, 1))."""
    return [{s: 1 / (1 + np.exp(-(sep * (2 * y - 1) + rng.normal(size=len(y))))) for s, y in labels.items()}
            for sep in separations]


def _labels(n, seed):
    y = (np.random.default_rng(seed).random(n) < 0.4).astype(int)
    y[:2] = [0, 1]
    return y


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two realistic members of fold 1 (ResNet50, DenseNet121) and their folder."""
    root = tmp_path_factory.mktemp("members")
    return [make_run(root / "resnet50", "fold1", backbone="resnet50", separation=1.6),
            make_run(root / "densenet121", "fold1", backbone="densenet121", separation=1.0)]


def _test_probs(run_dir, split="test"):
    return labels_and_probs(RunDir(run_dir).read_predictions(split))


def _fitted(run_dir):
    return RunDir(run_dir).read_resolved()["ensemble"]["fitted"]


# --------------------------------------------------------------------------------------- mean
@pytest.mark.parametrize("class_names", [CLASS_NAMES, ["a", "b", "c"]])
def test_mean_is_the_hand_average_matched_by_filename(tmp_path, class_names):
    rng = np.random.default_rng(0)
    labels = {"val": np.arange(30) % len(class_names), "test": np.arange(45) % len(class_names)}
    probs = [{s: rng.dirichlet(np.ones(len(class_names)), len(y)) for s, y in labels.items()} for _ in range(3)]
    paths = [write_run(tmp_path, "a", labels=labels, probs=probs[0], class_names=class_names),
             write_run(tmp_path, "b", labels=labels, probs=probs[1], class_names=class_names)]
    # The third member lists its test images in reverse order: matched by filename, not row.
    order = np.arange(45)[::-1]
    reversed_dir = write_run(tmp_path, "c", labels={"val": labels["val"], "test": labels["test"][order]},
                             probs={"val": probs[2]["val"], "test": probs[2]["test"][order]},
                             filenames={"test": [f"images/test_{i:04d}.png" for i in order]},
                             class_names=class_names)
    result = ensembles.combine([*paths, reversed_dir], tmp_path / "ensemble", method="mean")

    for split in ("val", "test"):
        expected = (probs[0][split] + probs[1][split] + probs[2][split]) / 3
        y, combined = _test_probs(tmp_path / "ensemble", split)
        np.testing.assert_allclose(combined, expected, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(y, labels[split])
        assert result[split] == json.loads(json.dumps(metrics.evaluate_predictions(labels[split], expected)))
    assert result["val_in_sample"] is False
    assert _fitted(tmp_path / "ensemble") == {"weights": [1 / 3] * 3}


# --------------------------------------------------------------------------------------- weighted
def _p_true(run_dirs, split="val"):
    """(M, N) each member's probability of the true class, and the labels."""
    frames = [RunDir(r).read_predictions(split) for r in run_dirs]
    y = frames[0]["label"].to_numpy()
    return np.stack([labels_and_probs(f)[1][np.arange(y.size), y] for f in frames]), y


def test_weighted_puts_all_weight_on_a_member_perfect_on_val(tmp_path):
    rng = np.random.default_rng(1)
    labels = {"val": _labels(60, 1), "test": _labels(80, 2)}
    perfect = {s: np.where(y == 1, 0.97, 0.03) for s, y in labels.items()}
    noise = [{s: rng.random(len(y)) for s, y in labels.items()} for _ in range(2)]
    paths = [write_run(tmp_path, "noise0", noise[0], labels), write_run(tmp_path, "perfect", perfect, labels),
             write_run(tmp_path, "noise1", noise[1], labels)]
    result = ensembles.combine(paths, tmp_path / "ensemble", method="weighted")

    weights = np.array(_fitted(tmp_path / "ensemble")["weights"])
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert weights[1] > 0.99, weights
    assert _fitted(tmp_path / "ensemble")["converged"] is True
    assert result["val_in_sample"] is True
    assert result["test"]["roc_auc"]["auc"] == 1.0


def test_weighted_weights_minimise_the_val_log_loss(tmp_path):
    # Two informative members: the optimum is interior. Reference: a bounded 1-D search
    # over w (weight of member 0) of radtl.metrics.negative_log_likelihood of the mixture.
    rng = np.random.default_rng(2)
    labels = {"val": _labels(80, 3), "test": _labels(40, 4)}
    p1 = _informative(labels, (1.2, 0.9), rng)
    paths = [write_run(tmp_path, "a", p1[0], labels), write_run(tmp_path, "b", p1[1], labels)]
    ensembles.combine(paths, tmp_path / "ensemble", method="weighted")
    weights = _fitted(tmp_path / "ensemble")["weights"]

    def val_loss(w):
        mix = w * p1[0]["val"] + (1 - w) * p1[1]["val"]
        return metrics.negative_log_likelihood(labels["val"], np.stack([1 - mix, mix], axis=1))

    reference = scipy.optimize.minimize_scalar(val_loss, bounds=(0, 1), method="bounded",
                                               options={"xatol": 1e-10}).x
    assert 0.05 < reference < 0.95  # interior, so the check is not about clipping
    assert weights[0] == pytest.approx(reference, abs=1e-5)
    assert _fitted(tmp_path / "ensemble")["val_log_loss"] == pytest.approx(val_loss(weights[0]), abs=1e-12)
    y_test, combined = _test_probs(tmp_path / "ensemble")
    mix = weights[0] * p1[0]["test"] + weights[1] * p1[1]["test"]
    np.testing.assert_allclose(combined[:, 1], mix, rtol=0, atol=1e-12)


def test_weighted_meets_the_kkt_conditions_with_a_useless_member(tmp_path):
    # At the optimum of the mixture log loss, g_m = mean(p_m[y] / mixture[y]) equals 1 for
    # every member with weight > 0 and is <= 1 for a member with weight 0.
    rng = np.random.default_rng(5)
    labels = {"val": _labels(100, 6), "test": _labels(30, 7)}
    p1 = _informative(labels, (1.5, 1.0, -1.0), rng)  # the last one is anti-informative
    paths = [write_run(tmp_path, f"m{i}", p, labels) for i, p in enumerate(p1)]
    ensembles.combine(paths, tmp_path / "ensemble", method="weighted")
    weights = np.array(_fitted(tmp_path / "ensemble")["weights"])
    p_true, _ = _p_true(paths)
    g = np.mean(p_true / (weights @ p_true), axis=1)
    assert weights[2] < 1e-6
    np.testing.assert_allclose(g[weights > 1e-6], 1.0, atol=1e-5)
    assert np.all(g[weights <= 1e-6] <= 1 + 1e-5)


# --------------------------------------------------------------------------------------- stacking
def test_stacking_beats_the_best_member_and_equals_sklearn_fitted_on_val(tmp_path):
    # The label depends on two independent signals; each member sees one of them.
    rng = np.random.default_rng(8)
    signals = {s: rng.normal(size=(2, n)) for s, n in (("val", 200), ("test", 200))}
    labels = {s: (x[0] + x[1] + 0.3 * rng.normal(size=x.shape[1]) > 0).astype(int) for s, x in signals.items()}
    p1 = [{s: 1 / (1 + np.exp(-2 * x[m])) for s, x in signals.items()} for m in range(2)]
    paths = [write_run(tmp_path, "sees_first", p1[0], labels), write_run(tmp_path, "sees_second", p1[1], labels)]
    result = ensembles.combine(paths, tmp_path / "ensemble", method="stacking", seed=3)

    member_aucs = [RunDir(p).read_metrics()["test"]["roc_auc"]["auc"] for p in paths]
    assert result["test"]["roc_auc"]["auc"] >= max(member_aucs) + 0.05, (result["test"]["roc_auc"], member_aucs)
    reference = LogisticRegression(random_state=3).fit(np.stack([p1[0]["val"], p1[1]["val"]], axis=1),
                                                       labels["val"])
    _, combined = _test_probs(tmp_path / "ensemble")
    expected = reference.predict_proba(np.stack([p1[0]["test"], p1[1]["test"]], axis=1))
    np.testing.assert_allclose(combined, expected, rtol=0, atol=1e-10)
    fitted = _fitted(tmp_path / "ensemble")
    np.testing.assert_allclose(fitted["coefficients"], reference.coef_, rtol=0, atol=1e-10)
    assert result["val_in_sample"] is True


def test_stacking_multiclass_uses_every_class_probability(tmp_path):
    rng = np.random.default_rng(9)
    labels = {"val": np.arange(60) % 3, "test": np.arange(30) % 3}
    probs = [{s: np.stack([rng.dirichlet(np.ones(3) + 3 * np.eye(3)[k]) for k in y]) for s, y in labels.items()}
             for _ in range(2)]
    paths = [write_run(tmp_path, f"m{i}", labels=labels, probs=p, class_names=["a", "b", "c"])
             for i, p in enumerate(probs)]
    ensembles.combine(paths, tmp_path / "ensemble", method="stacking")
    features = {s: np.concatenate([probs[0][s], probs[1][s]], axis=1) for s in labels}
    reference = LogisticRegression(random_state=0).fit(features["val"], labels["val"])
    _, combined = _test_probs(tmp_path / "ensemble")
    np.testing.assert_allclose(combined, reference.predict_proba(features["test"]), rtol=0, atol=1e-10)
    assert np.array(_fitted(tmp_path / "ensemble")["coefficients"]).shape == (3, 6)


@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_fitting_uses_the_validation_predictions_only(tmp_path, method):
    rng = np.random.default_rng(10)
    labels = {"val": _labels(80, 11), "test": _labels(80, 12)}
    p1 = _informative(labels, (1.2, 0.8), rng)
    flipped = {"val": labels["val"], "test": 1 - labels["test"]}
    noisy_val = {"val": 1 - labels["val"], "test": labels["test"]}
    fitted = {}
    cases = {"original": labels, "test_labels_changed": flipped, "val_labels_changed": noisy_val}
    for case, case_labels in cases.items():
        paths = [write_run(tmp_path / case, f"m{i}", p, case_labels) for i, p in enumerate(p1)]
        ensembles.combine(paths, tmp_path / case / "ensemble", method=method)
        fitted[case] = _fitted(tmp_path / case / "ensemble")
    assert fitted["test_labels_changed"] == fitted["original"]
    assert fitted["val_labels_changed"] != fitted["original"]  # the check above is not vacuous


# --------------------------------------------------------------------------------------- refusals
def _refusal_cases(tmp_path):
    labels = {"val": _labels(20, 13), "test": _labels(20, 14)}
    p1 = {s: np.linspace(0.1, 0.9, len(y)) for s, y in labels.items()}
    base = write_run(tmp_path, "base", p1, labels)
    renamed = {"test": [f"images/test_{i:04d}.png" for i in range(18)] + ["images/other_a.png", "images/other_b.png"]}
    relabelled = {"val": labels["val"], "test": labels["test"].copy()}
    relabelled["test"][5] = 1 - relabelled["test"][5]
    return {
        "different test images": ([base, write_run(tmp_path, "renamed", p1, labels, filenames=renamed)],
                                  ValueError, ["same test images", "predictions_test.csv", "images/other_a.png",
                                               "images/test_0018.png"]),
        "different labels": ([base, write_run(tmp_path, "relabelled", p1, relabelled)],
                             ValueError, ["different labels", "images/test_0005.png"]),
        "different classes": ([base, write_run(tmp_path, "classes", p1, labels, class_names=["normal", "tumour"])],
                              ValueError, ["same classes", "['benign', 'malignant']", "['normal', 'tumour']"]),
        "unfinished member": ([base, write_run(tmp_path, "unfinished", p1, labels, finished=False)],
                              RunDirectoryError, ["unfinished run", "unfinished"]),
        "failed member": ([base, make_run(tmp_path, "diverged", failed=DIVERGED)],
                          RunDirectoryError, ["failed run", DIVERGED[1]]),
        "one member": ([base], ValueError, ["at least two"]),
        "a member twice": ([base, tmp_path / "." / "base"], ValueError, ["more than once"]),
    }


@pytest.mark.parametrize("case", ["different test images", "different labels", "different classes",
                                  "unfinished member", "failed member", "one member", "a member twice"])
def test_refusals_name_the_problem_and_create_nothing(tmp_path, case):
    run_dirs, error, phrases = _refusal_cases(tmp_path / "runs")[case]
    out = tmp_path / "ensemble"
    with pytest.raises(error) as caught:
        ensembles.combine(run_dirs, out, method="weighted")
    for phrase in phrases:
        assert phrase in str(caught.value), (phrase, str(caught.value))
    assert not out.exists()


def test_an_out_dir_that_holds_anything_is_never_overwritten(tmp_path, members):
    out = tmp_path / "ensemble"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(RunDirectoryError, match="never overwritten"):
        ensembles.combine(members, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    ensembles.combine(members, tmp_path / "first")
    before = {p.name: p.read_bytes() for p in (tmp_path / "first").iterdir()}
    with pytest.raises(RunDirectoryError, match="already holds"):
        ensembles.combine(members, tmp_path / "first", method="stacking")
    assert {p.name: p.read_bytes() for p in (tmp_path / "first").iterdir()} == before
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        ensembles.combine(members, tmp_path / "a_file")
    with pytest.raises(RunDirectoryError, match="outside the members"):
        ensembles.combine(members, members[0] / "ensemble")
    assert not (members[0] / "ensemble").exists()


def test_argument_errors(tmp_path, members):
    with pytest.raises(ValueError, match=r"`method` must be one of \['mean', 'weighted', 'stacking'\]. "
                                         r"Received: method='median'"):
        ensembles.combine(members, tmp_path / "a", method="median")
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0. Received: seed=-1"):
        ensembles.combine(members, tmp_path / "a", seed=-1)
    assert not (tmp_path / "a").exists()


# --------------------------------------------------------------------------------------- the run directory
@pytest.mark.parametrize("method", ensembles.METHODS.names())
def test_the_ensemble_directory_reads_back_like_a_run(tmp_path, members, method):
    out = RunDir(tmp_path / "ensemble")
    result = ensembles.combine(members, out.path, method=method)

    assert out.status == "finished"
    assert sorted(p.name for p in out.path.iterdir()) == [
        "config.json", "metrics.json", "predictions_test.csv", "predictions_val.csv"]
    assert out.read_metrics() == json.loads(json.dumps(result))
    assert result["monitor"] is None and result["best_epoch"] is None
    assert result["val_in_sample"] is (method != "mean")
    member = RunDir(members[0])
    for split in ("val", "test"):
        frame = out.read_predictions(split)
        assert list(frame.columns) == list(member.read_predictions(split).columns)
        pd.testing.assert_frame_equal(frame[["filename", "exam_id", "label"]],
                                      member.read_predictions(split)[["filename", "exam_id", "label"]])
        np.testing.assert_allclose(labels_and_probs(frame)[1].sum(axis=1), 1.0, atol=1e-12)
    config = out.read_config_dict()
    shared = config_dict(backbone="resnet50")
    assert config["backbone"] == "resnet50+densenet121"
    assert {k: config[k] for k in shared if k != "backbone"} == {k: v for k, v in shared.items() if k != "backbone"}
    assert config["ensemble"] == method
    resolved = out.read_resolved()
    assert resolved["kind"] == "ensemble"
    assert resolved["class_names"] == CLASS_NAMES
    assert resolved["ensemble"]["members"] == [str(m.resolve()) for m in members]
    assert resolved["ensemble"]["method"] == method


def test_summarize_lists_the_ensemble_beside_its_members(tmp_path):
    root = tmp_path / "study"
    for fold in (1, 2):
        paths = [make_run(root / backbone, f"fold{fold}", backbone=backbone, fold=fold, separation=sep)
                 for backbone, sep in (("resnet50", 1.5), ("densenet121", 1.0))]
        ensembles.combine(paths, root / "ensemble" / f"fold{fold}", method="mean")
    result = analysis.summarize(root, out_dir=tmp_path / "summary")

    rows = result.runs.set_index("run")
    assert set(rows.index) == {f"{d}/fold{k}" for d in ("resnet50", "densenet121", "ensemble") for k in (1, 2)}
    for fold in (1, 2):
        report = RunDir(root / "ensemble" / f"fold{fold}").read_metrics()
        assert rows.loc[f"ensemble/fold{fold}", "test_auc"] == report["test"]["roc_auc"]["auc"]
        assert rows.loc[f"ensemble/fold{fold}", "backbone"] == "resnet50+densenet121"
    ensemble_setting = result.summary[result.summary["backbone"] == "resnet50+densenet121"]
    assert ensemble_setting["n"].tolist() == [2]  # the folds' ensembles are one setting
    assert "resnet50+densenet121" in result.markdown


def test_compare_runs_ensemble_against_its_best_member(tmp_path, members):
    out = tmp_path / "ensemble"
    ensembles.combine(members, out, method="stacking")
    best = ensembles.best_member(members)
    result = analysis.compare_runs([out, best], n_resamples=200)
    y, ensemble_probs = _test_probs(out)
    assert result["runs"][0]["auc"] == pytest.approx(metrics.roc_auc(y, ensemble_probs[:, 1]), abs=1e-12)
    assert result["pairs"][0]["run_a"].endswith("ensemble")
    assert analysis.format_comparison(result).startswith("test split")


# --------------------------------------------------------------------------------------- best_member
def test_best_member_is_the_highest_val_auc(tmp_path):
    labels = {"val": _labels(40, 15), "test": _labels(40, 16)}
    rng = np.random.default_rng(17)
    # "good_val" separates val best; "good_test" separates test best.
    good_val = {"val": np.where(labels["val"] == 1, 0.8, 0.2), "test": rng.random(40)}
    good_test = {"val": rng.random(40), "test": np.where(labels["test"] == 1, 0.8, 0.2)}
    paths = [write_run(tmp_path, "good_test", good_test, labels), write_run(tmp_path, "good_val", good_val, labels)]
    assert ensembles.best_member(paths) == paths[1]
    assert ensembles.best_member([str(p) for p in paths], split="test") == paths[0]
    tie = write_run(tmp_path, "tie", good_val, labels)
    assert ensembles.best_member([tie, paths[1]]) == tie  # ties go to the first listed
    with pytest.raises(ValueError, match="No member has an AUC on the 'train' split"):
        ensembles.best_member(paths, split="train")
    with pytest.raises(RunDirectoryError, match="unfinished"):
        ensembles.best_member([paths[0], write_run(tmp_path, "unfinished", good_val, labels, finished=False)])
