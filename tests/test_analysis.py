"""Tests for radtl.analysis on fake but well-formed run directories (no training).

`make_run` writes a run directory exactly as `radtl.train.run` does (config.json,
history.csv, predictions_{val,test}.csv, metrics.json from `evaluate_predictions`),
with random predictions whose separation sets the AUC. Expected values are computed
here from those files with pandas/numpy and direct `radtl.stats` calls.
"""
import json
import zlib

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import sklearn.metrics

from radtl import analysis, metrics, stats
from radtl.config import RUN_FILES, TrainConfig

CLASS_NAMES = ["benign", "malignant"]
EPOCHS = 6


# ------------------------------------------------------------------------ fixture factory
def _split_images(split, fold, n, n_classes=2):
    """Filenames, exam ids and labels of one fold's split: the same for every run."""
    rng = np.random.default_rng(zlib.crc32(f"{split}/{fold}".encode()))
    labels = (rng.random(n) < 0.4).astype(int) if n_classes == 2 else rng.integers(0, n_classes, n)
    labels[:n_classes] = np.arange(n_classes)  # every class, always
    filenames = [f"images/{split}_f{fold}_{i:04d}.png" for i in range(n)]
    exam_ids = [f"{fold}{i // 3:04d}" for i in range(n)]
    return filenames, exam_ids, labels


def make_run(root, name, *, separation=1.5, finished=True, n_test=120, n_val=60,
             class_names=CLASS_NAMES, **config_changes):
    """Writes a fake, well-formed run directory under `root`; returns its Path.

    Predictions: P(class 1) = sigmoid(separation * (2y - 1) + N(0, 1)), seeded by `name` and
    the config, so runs of different settings differ.
    """
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = TrainConfig(epochs=EPOCHS, **config_changes)
    rng = np.random.default_rng(zlib.crc32(f"{name} {sorted(config.to_dict().items())}".encode()))
    (run_dir / RUN_FILES["config"]).write_text(json.dumps({
        "config": config.to_dict(),
        "resolved": {"precision": {"policy": "float32", "xla": False}, "versions": {"radtl": "0.1.0"},
                     "class_names": list(class_names)},
    }))
    epoch = np.arange(EPOCHS)
    val_auc = 0.7 + 0.2 * (1 - np.exp(-epoch / 2)) + rng.normal(0, 0.01, EPOCHS)
    pd.DataFrame({
        "epoch": epoch,
        "accuracy": 0.6 + 0.05 * epoch, "auc": 0.7 + 0.04 * epoch,
        "learning_rate": 1e-4 * np.cos(epoch / EPOCHS), "loss": 0.7 * np.exp(-epoch / 3),
        "stage": ["head"] * 2 + ["all"] * (EPOCHS - 2),
        "val_accuracy": 0.6 + 0.04 * epoch, "val_auc": val_auc,
        "val_loss": 0.75 * np.exp(-epoch / 4) + 0.05,
    }).to_csv(run_dir / RUN_FILES["history"], index=False)
    report = {"monitor": "val_auc", "best_epoch": int(np.argmax(val_auc)) + 1,
              "best_value": float(val_auc.max())}
    for split, n in (("val", n_val), ("test", n_test)):
        filenames, exam_ids, labels = _split_images(split, config.fold, n, len(class_names))
        if len(class_names) == 2:
            p1 = 1.0 / (1.0 + np.exp(-(separation * (2 * labels - 1) + rng.normal(size=n))))
            probs = np.stack([1 - p1, p1], axis=1)
        else:
            logits = rng.normal(size=(n, len(class_names)))
            logits[np.arange(n), labels] += separation
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frame = pd.DataFrame({"filename": filenames, "exam_id": exam_ids, "label": labels})
        for k, class_name in enumerate(class_names):
            frame[f"prob_{class_name}"] = probs[:, k]
        frame.to_csv(run_dir / RUN_FILES["predictions"].format(split=split), index=False)
        report[split] = metrics.evaluate_predictions(labels, probs)
    if finished:
        (run_dir / RUN_FILES["metrics"]).write_text(json.dumps(report))
    return run_dir


WEIGHTS_SEPARATION = {"radimagenet": 1.6, "imagenet": 1.3}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """12 finished runs (weights x backbone x fold 1-3) and one unfinished run."""
    root = tmp_path_factory.mktemp("study")
    for weights, backbone, fold in np.ndindex(2, 2, 3):
        weights = ["radimagenet", "imagenet"][weights]
        backbone = ["resnet50", "densenet121"][backbone]
        make_run(root / backbone / weights, f"fold{fold + 1}", separation=WEIGHTS_SEPARATION[weights],
                 weights=weights, backbone=backbone, fold=fold + 1)
    make_run(root / "resnet50" / "radimagenet", "fold4_crashed", finished=False, weights="radimagenet",
             backbone="resnet50", fold=4)
    return root


@pytest.fixture(scope="module")
def summary(study, tmp_path_factory):
    with pytest.warns(UserWarning, match="unfinished"):
        return analysis.summarize(study, out_dir=tmp_path_factory.mktemp("summary"))


def _expected_run_metrics(run_dir):
    report = json.loads((run_dir / RUN_FILES["metrics"]).read_text())
    test = report["test"]
    return {
        "test_auc": test["roc_auc"]["auc"], "test_auc_lower": test["roc_auc"]["lower"],
        "test_auc_upper": test["roc_auc"]["upper"], "test_accuracy": test["accuracy"],
        "test_sensitivity": test["threshold_metrics"]["sensitivity"],
        "test_specificity": test["threshold_metrics"]["specificity"],
        "test_ece": test["calibration"]["ece"], "test_brier": test["calibration"]["brier_score"],
        "val_auc": report["val"]["roc_auc"]["auc"], "best_epoch": report["best_epoch"],
    }


def _assert_png(path, min_bytes=15_000):
    """A readable PNG of non-trivial size that is not a blank canvas."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > min_bytes
    with PIL.Image.open(path) as image:
        assert image.width >= 400 and image.height >= 300
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


# ------------------------------------------------------------------------------ reading
def test_load_run_reads_every_file(tmp_path):
    run_dir = make_run(tmp_path, "run", weights="imagenet", fold=2)
    run = analysis.load_run(run_dir)
    assert run.name == "run"
    assert run.config == TrainConfig(epochs=EPOCHS, weights="imagenet", fold=2).to_dict()
    assert run.class_names == CLASS_NAMES
    assert run.metrics == json.loads((run_dir / "metrics.json").read_text())
    assert list(run.history["epoch"]) == list(range(EPOCHS))
    test = run.predictions("test")
    assert list(test.columns) == ["filename", "exam_id", "label", "prob_benign", "prob_malignant"]
    y, probs = run.labels_and_probs("test")
    assert metrics.roc_auc(y, probs[:, 1]) == pytest.approx(run.metrics["test"]["roc_auc"]["auc"], abs=1e-12)


def test_load_run_keeps_last_row_of_an_epoch_logged_twice(tmp_path):
    run_dir = make_run(tmp_path, "run")
    history = pd.read_csv(run_dir / "history.csv")
    resumed = pd.concat([history.iloc[:3], history.iloc[2:].assign(loss=-1.0)])
    resumed.to_csv(run_dir / "history.csv", index=False)
    loaded = analysis.load_run(run_dir).history
    assert list(loaded["epoch"]) == list(range(EPOCHS))
    assert (loaded["loss"].iloc[2:] == -1.0).all()


@pytest.mark.parametrize("key", ["config", "history", "metrics"])
def test_load_run_error_names_the_missing_file(tmp_path, key):
    run_dir = make_run(tmp_path, "run")
    (run_dir / RUN_FILES[key]).unlink()
    with pytest.raises(FileNotFoundError, match=RUN_FILES[key]):
        analysis.load_run(run_dir)


def test_predictions_of_a_missing_split_lists_the_available_ones(tmp_path):
    run = analysis.load_run(make_run(tmp_path, "run"))
    with pytest.raises(FileNotFoundError, match=r"predictions_train\.csv.*predictions_test\.csv"):
        run.predictions("train")


def test_predictions_columns_must_follow_the_class_names(tmp_path):
    run_dir = make_run(tmp_path, "run")
    path = run_dir / "predictions_test.csv"
    frame = pd.read_csv(path)
    frame[["filename", "exam_id", "label", "prob_malignant", "prob_benign"]].to_csv(path, index=False)
    with pytest.raises(ValueError, match="prob_benign"):
        analysis.load_run(run_dir).predictions("test")


def test_find_runs_is_recursive_and_warns_about_unfinished_runs(study):
    with pytest.warns(UserWarning, match="fold4_crashed"):
        runs = analysis.find_runs(study)
    assert len(runs) == 12
    assert all((run.path / "metrics.json").exists() for run in runs)
    assert [run.path for run in runs] == sorted(run.path for run in runs)


# -------------------------------------------------------------------------------- plots
def test_plots_are_valid_pngs(tmp_path, study):
    run = analysis.load_run(study / "resnet50" / "radimagenet" / "fold1")
    y, probs = run.labels_and_probs("test")
    paths = [
        analysis.plot_training_curves(run.history, tmp_path / "curves.png", best_epoch=4),
        analysis.plot_roc(y, probs[:, 1], tmp_path / "roc.png", band_resamples=200),
        analysis.plot_reliability(y, probs, tmp_path / "reliability.png"),
        analysis.plot_boxplots(_box_table(),
                               tmp_path / "nested" / "box.png", by=["backbone", "weights"],
                               metric="test_auc", hue="weights"),
    ]
    for path in paths:
        _assert_png(path)


def _box_table():
    rng = np.random.default_rng(0)
    rows = [{"backbone": b, "weights": w, "fold": f, "test_auc": 0.85 + 0.05 * (w == "radimagenet")
             + rng.normal(0, 0.02)} for b in ("resnet50", "densenet121")
            for w in ("radimagenet", "imagenet") for f in range(5)]
    return pd.DataFrame(rows)


def test_multiclass_roc_draws_one_vs_rest_curves(tmp_path):
    run = analysis.load_run(make_run(tmp_path, "run", class_names=["a", "b", "c"]))
    y, probs = run.labels_and_probs("test")
    _assert_png(analysis.plot_roc(y, probs, tmp_path / "roc.png", class_names=["a", "b", "c"]))
    with pytest.raises(ValueError, match="3 columns"):
        analysis.plot_roc(y, probs, tmp_path / "bad.png", class_names=["a", "b"])


def test_write_run_plots_works_before_metrics_json_exists(tmp_path):
    run_dir = make_run(tmp_path, "run", finished=False)
    paths = analysis.write_run_plots(run_dir, band_resamples=100)
    assert [p.relative_to(run_dir).as_posix() for p in paths] == [
        "plots/training_curves.png", "plots/roc_test.png", "plots/reliability_test.png"]
    for path in paths:
        _assert_png(path)


def test_training_curves_need_a_curve():
    with pytest.raises(ValueError, match="Received 2 rows with columns \\['epoch', 'stage'\\]"):
        analysis.plot_training_curves(pd.DataFrame({"epoch": [0, 1], "stage": ["a", "b"]}), "x.png")


def test_boxplot_errors_name_the_column(tmp_path):
    with pytest.raises(ValueError, match="'val_auc' not in"):
        analysis.plot_boxplots(_box_table(), tmp_path / "b.png", by="weights", metric="val_auc")
    with pytest.raises(ValueError, match="hue"):
        analysis.plot_boxplots(_box_table(), tmp_path / "b.png", by="weights", metric="test_auc",
                               hue="backbone")


# ----------------------------------------------------------------------- ROC band numbers
def test_sensitivity_at_specificity_is_the_roc_envelope():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    score = np.round(rng.random(80) + 0.3 * y, 1)  # many ties
    fpr, tpr, _ = sklearn.metrics.roc_curve(y, score, drop_intermediate=False)
    for sp in np.linspace(0, 1, 41):
        expected = tpr[fpr <= 1 - sp + 1e-12].max()
        assert analysis._sensitivity_at_specificity(y, score, sp) == pytest.approx(expected, abs=1e-12)


def test_roc_sensitivity_band_is_the_stratified_percentile_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 60)
    score = rng.random(60) + 0.5 * y
    band = analysis.roc_sensitivity_band(y, score, specificities=[0.2, 0.8], n_resamples=300, seed=7)
    for row in band.itertuples():
        direct = stats.bootstrap_ci(
            lambda yy, ss: analysis._sensitivity_at_specificity(yy, ss, row.specificity), y, score,
            strata=y, n_resamples=300, method="percentile", seed=7)
        assert (row.sensitivity, row.lower, row.upper) == (direct.estimate, direct.lower, direct.upper)
        assert row.lower <= row.sensitivity <= row.upper
    again = analysis.roc_sensitivity_band(y, score, specificities=[0.2, 0.8], n_resamples=300, seed=7)
    pd.testing.assert_frame_equal(band, again)
    other = analysis.roc_sensitivity_band(y, score, specificities=[0.2, 0.8], n_resamples=300, seed=8)
    assert not band.equals(other)


# ------------------------------------------------------------------------------ compare
def test_holm_adjust_matches_r_p_adjust():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    assert analysis.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # R: p.adjust(c(0.5, NA, 0.2), "holm") -> 0.5 NA 0.4
    adjusted = analysis.holm_adjust([0.5, np.nan, 0.2])
    assert adjusted[[0, 2]] == pytest.approx([0.5, 0.4]) and np.isnan(adjusted[1])
    assert analysis.holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def _test_scores(run_dir):
    frame = pd.read_csv(run_dir / "predictions_test.csv").sort_values("filename")
    return frame["label"].to_numpy(), frame["prob_malignant"].to_numpy()


def test_compare_runs_delong_and_bootstrap_equal_direct_stats_calls(study, tmp_path):
    a = study / "resnet50" / "radimagenet" / "fold1"
    b = study / "resnet50" / "imagenet" / "fold1"
    # Shuffle b's rows: runs are matched by filename, not by row order.
    shuffled = tmp_path / "imagenet_fold1"
    shuffled.mkdir()
    for name in ("config.json", "history.csv", "metrics.json", "predictions_val.csv"):
        (shuffled / name).write_bytes((b / name).read_bytes())
    pd.read_csv(b / "predictions_test.csv").sample(frac=1, random_state=0).to_csv(
        shuffled / "predictions_test.csv", index=False)

    result = analysis.compare_runs([a, shuffled], n_resamples=300, seed=3)
    y, score_a = _test_scores(a)
    _, score_b = _test_scores(b)
    order = np.argsort(pd.read_csv(a / "predictions_test.csv")["filename"].to_numpy())
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)  # back to a's file order, as compare_runs uses
    direct = stats.delong_test(y[inverse], score_a[inverse], score_b[inverse])
    pair = result["pairs"][0]
    assert (pair["run_a"], pair["run_b"]) == ("fold1", "imagenet_fold1")
    for field in ("auc_a", "auc_b", "difference", "standard_error", "z", "p_value", "lower", "upper"):
        assert pair["delong"][field] == pytest.approx(getattr(direct, field), rel=1e-12, abs=1e-15)
    assert pair["p_value_holm"] == pytest.approx(direct.p_value)
    boot = stats.paired_bootstrap_auc_difference(y[inverse], score_a[inverse], score_b[inverse],
                                                 n_resamples=300, seed=3)
    assert (pair["bootstrap"]["lower"], pair["bootstrap"]["upper"]) == pytest.approx((boot.lower, boot.upper))
    assert result["runs"][0]["auc"] == pytest.approx(metrics.roc_auc(y, score_a))
    assert result["n_cases"] == 120 and result["n_pos"] == int(y.sum())
    json.dumps(result)  # JSON-serialisable
    assert "imagenet_fold1" in analysis.format_comparison(result)


def test_compare_runs_three_runs_holm_over_the_pairs(study, tmp_path):
    runs = [study / "resnet50" / "radimagenet" / "fold2", study / "resnet50" / "imagenet" / "fold2",
            study / "densenet121" / "imagenet" / "fold2"]
    result = analysis.compare_runs(runs, n_resamples=50, method="percentile")
    names = ["resnet50/radimagenet/fold2", "resnet50/imagenet/fold2", "densenet121/imagenet/fold2"]
    assert [r["name"] for r in result["runs"]] == names  # shortest unique path suffixes
    assert [(p["run_a"], p["run_b"]) for p in result["pairs"]] == [
        (names[0], names[1]), (names[0], names[2]), (names[1], names[2])]
    raw = [p["delong"]["p_value"] for p in result["pairs"]]
    assert [p["p_value_holm"] for p in result["pairs"]] == pytest.approx(list(analysis.holm_adjust(raw)))
    assert all(h >= r for h, r in zip([p["p_value_holm"] for p in result["pairs"]], raw))


def test_compare_runs_on_different_images_names_runs_and_count(study):
    a = study / "resnet50" / "radimagenet" / "fold1"
    b = study / "resnet50" / "imagenet" / "fold2"
    with pytest.raises(ValueError, match=r"Runs fold1 and fold2 were not evaluated on the same test "
                                         r"images: 240 filenames differ \(120 only in fold1"):
        analysis.compare_runs([a, b])


def test_compare_runs_with_different_labels_errors(study, tmp_path):
    a = study / "resnet50" / "radimagenet" / "fold1"
    b = tmp_path / "relabelled"
    b.mkdir()
    for name in ("config.json", "history.csv", "metrics.json"):
        (b / name).write_bytes((a / name).read_bytes())
    frame = pd.read_csv(a / "predictions_test.csv")
    frame.loc[:4, "label"] = 1 - frame.loc[:4, "label"]
    frame.to_csv(b / "predictions_test.csv", index=False)
    with pytest.raises(ValueError, match="different labels to 5 of"):
        analysis.compare_runs([a, b])


def test_compare_runs_needs_two_runs_and_a_positive_class_for_multiclass(study, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        analysis.compare_runs([study / "resnet50" / "radimagenet" / "fold1"])
    runs = [make_run(tmp_path, name, class_names=["a", "b", "c"]) for name in ("x", "y")]
    with pytest.raises(ValueError, match="positive_class"):
        analysis.compare_runs(runs)
    result = analysis.compare_runs(runs, positive_class=2, n_resamples=50, method="percentile")
    y, probs = analysis.load_run(runs[0]).labels_and_probs("test")
    _, probs_y = analysis.load_run(runs[1]).labels_and_probs("test")
    direct = stats.delong_test((y == 2).astype(int), probs[:, 2], probs_y[:, 2])
    assert result["pairs"][0]["delong"]["z"] == pytest.approx(direct.z)


# ---------------------------------------------------------------------------- summarize
def test_summary_run_table_equals_the_metrics_files(summary, study):
    table = summary.runs
    assert len(table) == 12
    assert list(table.columns[:4]) == ["run", "backbone", "weights", "fold"]
    assert "data_dir" not in table.columns and "head" not in table.columns  # constant
    for row in table.to_dict(orient="records"):
        expected = _expected_run_metrics(study / row["run"])
        assert {k: row[k] for k in expected} == pytest.approx(expected, abs=1e-15)
    on_disk = pd.read_csv(summary.paths["runs"])
    pd.testing.assert_frame_equal(on_disk, table, check_dtype=False)
    assert summary.unfinished == [study / "resnet50" / "radimagenet" / "fold4_crashed"]


def test_summary_per_setting_mean_and_sd_equal_numpy(summary, study):
    table = summary.summary
    assert len(table) == 4 and (table["n"] == 3).all()
    for row in table.to_dict(orient="records"):
        values = [_expected_run_metrics(study / row["backbone"] / row["weights"] / f"fold{f}")
                  for f in (1, 2, 3)]
        for column in ("test_auc", "test_ece", "test_brier", "test_sensitivity", "val_auc", "best_epoch"):
            x = np.array([v[column] for v in values], dtype=float)
            assert row[f"{column}_mean"] == pytest.approx(x.mean(), abs=1e-14)
            assert row[f"{column}_sd"] == pytest.approx(x.std(ddof=1), abs=1e-14)
    assert "test_auc_lower_mean" not in table.columns
    pd.testing.assert_frame_equal(pd.read_csv(summary.paths["summary"]), table, check_dtype=False)


def test_summary_comparisons_equal_direct_stats_calls(summary, study):
    rows = summary.comparisons.set_index("factor")
    assert set(rows.index) == {"weights", "backbone"}
    expected_levels = {"weights": ("radimagenet", "imagenet"), "backbone": ("densenet121", "resnet50")}
    for factor, (level_a, level_b) in expected_levels.items():
        other = "backbone" if factor == "weights" else "weights"
        a, b = [], []
        for other_level in sorted(set(summary.runs[other])):
            for fold in (1, 2, 3):
                path = {factor: level_a, other: other_level}
                a.append(_expected_run_metrics(study / path["backbone"] / path["weights"] / f"fold{fold}")["test_auc"])
                path[factor] = level_b
                b.append(_expected_run_metrics(study / path["backbone"] / path["weights"] / f"fold{fold}")["test_auc"])
        a, b = np.array(a), np.array(b)
        row = rows.loc[factor]
        assert (row["level_a"], row["level_b"], row["n_pairs"], row["n_unpaired"]) == (level_a, level_b, 6, 0)
        assert row["paired_on"] == f"{other} fold seed"
        assert row["mean_difference"] == pytest.approx(np.mean(a - b), abs=1e-14)
        assert row["mean_a"] == pytest.approx(a.mean()) and row["mean_b"] == pytest.approx(b.mean())
        assert row["permutation_p"] == pytest.approx(stats.paired_permutation_test(a, b).p_value, abs=1e-14)
        assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon_signed_rank(a, b).p_value, abs=1e-14)
    assert rows["permutation_p_holm"].to_numpy() == pytest.approx(analysis.holm_adjust(rows["permutation_p"]))
    # RadImageNet was given the larger separation: it wins on every pair.
    assert rows.loc["weights", "mean_difference"] > 0


def test_summary_files_markdown_and_boxplot(summary):
    for key in ("runs", "summary", "comparisons", "markdown", "boxplot"):
        assert summary.paths[key].exists()
    markdown = summary.paths["markdown"].read_text()
    assert markdown == summary.markdown
    row = summary.summary.iloc[0]
    assert f"{row['test_auc_mean']:.4f} ± {row['test_auc_sd']:.4f}" in markdown
    assert "## Paired comparisons" in markdown and "| weights | radimagenet | imagenet |" in markdown
    assert "1 unfinished run(s) skipped" in markdown
    assert summary.paths["boxplot"].name == "boxplot_test_auc.png"
    _assert_png(summary.paths["boxplot"])


def test_summary_compare_dict_fixes_the_level_order(study, tmp_path):
    with pytest.warns(UserWarning, match="unfinished"):
        result = analysis.summarize(study, out_dir=tmp_path, metric="test_ece",
                                    compare={"weights": ("imagenet", "radimagenet")})
    row = result.comparisons.iloc[0]
    assert (row["factor"], row["level_a"], row["metric"]) == ("weights", "imagenet", "test_ece")
    pairs = result.paired[0].pairs
    assert row["mean_difference"] == pytest.approx((pairs["imagenet"] - pairs["radimagenet"]).mean())
    assert (tmp_path / "boxplot_test_ece.png").exists()


def test_summary_excludes_aliased_fields_from_pairing(tmp_path):
    # ImageNet runs used native preprocessing, RadImageNet runs official: aliased.
    for weights, preprocessing in (("radimagenet", "official"), ("imagenet", "native")):
        for fold in (1, 2, 3, 4):
            make_run(tmp_path / weights, f"fold{fold}", weights=weights, preprocessing=preprocessing,
                     fold=fold, separation=WEIGHTS_SEPARATION[weights])
    with pytest.warns(UserWarning, match=r"\['preprocessing'\] take one value per level"):
        result = analysis.summarize(tmp_path, compare="weights")
    row = result.comparisons.iloc[0]
    assert (row["n_pairs"], row["aliased"], row["paired_on"]) == (4, "preprocessing", "fold seed")


def test_summary_unpaired_runs_are_left_out_with_a_warning(tmp_path):
    for weights, folds in (("radimagenet", (1, 2, 3)), ("imagenet", (1, 2))):
        for fold in folds:
            make_run(tmp_path / weights, f"fold{fold}", weights=weights, fold=fold)
    with pytest.warns(UserWarning, match="1 run\\(s\\) without a partner"):
        result = analysis.summarize(tmp_path)
    assert result.comparisons.iloc[0][["n_pairs", "n_unpaired"]].tolist() == [2, 1]


def test_summary_errors(tmp_path, study):
    with pytest.raises(ValueError, match="No finished run"):
        analysis.summarize(tmp_path)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="Received: metric='auc'"):
        analysis.summarize(study, out_dir=tmp_path, metric="auc")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="Cannot compare on 'fold'"):
        analysis.summarize(study, out_dir=tmp_path, compare="fold")
