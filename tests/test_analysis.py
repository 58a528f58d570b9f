"""Tests for radtl.analysis on fake but well-formed run directories (no training).

`make_run` writes a run directory through `radtl.rundir.RunDir` as `radtl.train.run`
does (config.json, history.csv, predictions_{val,test}.csv, metrics.json from
`evaluate_predictions`; or failed.json for a failed run), with random predictions whose
separation sets the AUC. Expected values are computed here from those files with
pandas/numpy and direct `radtl.stats` calls. `tests/test_plots.py` imports `make_run`.
"""
import dataclasses
import itertools
import json
import zlib

import numpy as np
import pandas as pd
import PIL.Image
import pytest

from radtl import analysis, metrics, stats
from radtl.config import TrainConfig
from radtl.rundir import RunDir, RunDirectoryError

RUN_FILES = RunDir.FILES

CLASS_NAMES = ["benign", "malignant"]
EPOCHS = 6


def config_dict(**changes):
    """`TrainConfig(epochs=EPOCHS, **changes).to_dict()` built from the dataclass defaults,
    without TrainConfig's validation: analysis reads config dicts and needs no registry (and
    so no TensorFlow import)."""
    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(changes) - set(defaults))
    assert not unknown, f"not TrainConfig fields: {unknown}"
    return {**defaults, "epochs": EPOCHS, **changes}


# ------------------------------------------------------------------------ fixture factory
def _split_images(split, fold, n, n_classes=2):
    """Filenames, exam ids and labels of one fold's split: the same for every run."""
    rng = np.random.default_rng(zlib.crc32(f"{split}/{fold}".encode()))
    labels = (rng.random(n) < 0.4).astype(int) if n_classes == 2 else rng.integers(0, n_classes, n)
    labels[:n_classes] = np.arange(n_classes)  # every class, always
    filenames = [f"images/{split}_f{fold}_{i:04d}.png" for i in range(n)]
    exam_ids = [f"{fold}{i // 3:04d}" for i in range(n)]
    return filenames, exam_ids, labels


def make_run(root, name, *, separation=1.5, finished=True, failed=None, n_test=120, n_val=60,
             class_names=CLASS_NAMES, **config_changes):
    """Writes a fake, well-formed run directory under `root`; returns its Path.

    Predictions: P(class 1) = sigmoid(separation * (2y - 1) + N(0, 1)), seeded by `name` and
    the config, so runs of different settings differ. `finished=False` leaves out
    metrics.json; `failed=(kind, reason)` writes failed.json (and no predictions or metrics).
    """
    run = RunDir(root / name)
    assert run.check_usable() == "new"
    run.create()
    run_dir = run.path
    config = config_dict(**config_changes)
    rng = np.random.default_rng(zlib.crc32(f"{name} {sorted(config.items())}".encode()))
    run.write_config(config, {
        "precision": {"policy": "float32", "xla": False}, "versions": {"radtl": "0.1.0"},
        "class_names": list(class_names)})
    epoch = np.arange(EPOCHS)
    val_auc = 0.7 + 0.2 * (1 - np.exp(-epoch / 2)) + rng.normal(0, 0.01, EPOCHS)
    pd.DataFrame({
        "epoch": epoch,
        "accuracy": 0.6 + 0.05 * epoch, "auc": 0.7 + 0.04 * epoch,
        "learning_rate": 1e-4 * np.cos(epoch / EPOCHS), "loss": 0.7 * np.exp(-epoch / 3),
        "stage": ["head"] * 2 + ["all"] * (EPOCHS - 2),
        "val_accuracy": 0.6 + 0.04 * epoch, "val_auc": val_auc,
        "val_loss": 0.75 * np.exp(-epoch / 4) + 0.05,
    }).to_csv(run.file("history"), index=False)
    if failed is not None:
        kind, reason = failed
        run.write_failure(kind, reason, epoch=3)
        return run_dir
    report = {"monitor": "val_auc", "best_epoch": int(np.argmax(val_auc)) + 1,
              "best_value": float(val_auc.max())}
    for split, n in (("val", n_val), ("test", n_test)):
        filenames, exam_ids, labels = _split_images(split, config["fold"], n, len(class_names))
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
        run.write_predictions(split, frame)
        report[split] = metrics.evaluate_predictions(labels, probs)
    if finished:
        run.write_metrics(report)
    return run_dir


WEIGHTS_SEPARATION = {"radimagenet": 1.6, "imagenet": 1.3}


DIVERGED = ("diverged", "the loss became NaN at epoch 3 (learning_rate 1e4 is far too large)")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """12 finished runs (weights x backbone x fold 1-3), one unfinished run and one failed
    run (a learning rate no finished run used)."""
    root = tmp_path_factory.mktemp("study")
    for weights, backbone, fold in np.ndindex(2, 2, 3):
        weights = ["radimagenet", "imagenet"][weights]
        backbone = ["resnet50", "densenet121"][backbone]
        make_run(root / backbone / weights, f"fold{fold + 1}", separation=WEIGHTS_SEPARATION[weights],
                 weights=weights, backbone=backbone, fold=fold + 1)
    make_run(root / "resnet50" / "radimagenet", "fold4_crashed", finished=False, weights="radimagenet",
             backbone="resnet50", fold=4)
    make_run(root / "densenet121" / "imagenet", "fold5_diverged", failed=DIVERGED, weights="imagenet",
             backbone="densenet121", fold=5, learning_rate=1e4)
    return root


@pytest.fixture(scope="module")
def summary(study, tmp_path_factory):
    with pytest.warns(UserWarning) as caught:
        result = analysis.summarize(study, out_dir=tmp_path_factory.mktemp("summary"))
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("Skipping 1 unfinished run(s)") and "fold4_crashed" in m for m in messages)
    assert any(m.startswith("Leaving out 1 failed run(s)") and DIVERGED[1] in m for m in messages)
    return result


def _expected_run_metrics(run_dir):
    report = RunDir(run_dir).read_metrics()
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
    for given in (run_dir, str(run_dir), RunDir(run_dir)):
        run = analysis.load_run(given)
        assert isinstance(run.rundir, RunDir) and run.path == run_dir
    assert run.name == "run"
    assert run.config == config_dict(weights="imagenet", fold=2)
    assert run.class_names == CLASS_NAMES
    assert run.metrics == json.loads((run_dir / "metrics.json").read_text())
    assert list(run.history["epoch"]) == list(range(EPOCHS))
    test = run.predictions("test")
    assert list(test.columns) == ["filename", "exam_id", "label", "prob_benign", "prob_malignant"]
    y, probs = run.labels_and_probs("test")
    assert metrics.roc_auc(y, probs[:, 1]) == pytest.approx(run.metrics["test"]["roc_auc"]["auc"], abs=1e-12)


def test_load_run_history_is_rundirs_deduplicated_history(tmp_path):
    run_dir = make_run(tmp_path, "run")
    history = pd.read_csv(run_dir / "history.csv")
    resumed = pd.concat([history.iloc[:3], history.iloc[2:].assign(loss=-1.0)])
    resumed.to_csv(run_dir / "history.csv", index=False)
    loaded = analysis.load_run(run_dir).history
    assert list(loaded["epoch"]) == list(range(EPOCHS))
    assert (loaded["loss"].iloc[2:] == -1.0).all()


@pytest.mark.parametrize("key, error, message", [
    ("config", RunDirectoryError, "holds no config.json"),
    ("metrics", RunDirectoryError, r"unfinished run \(no metrics.json\).*--resume"),
    ("history", FileNotFoundError, "history.csv"),
])
def test_load_run_error_names_the_missing_file(tmp_path, key, error, message):
    run_dir = make_run(tmp_path, "run")
    (run_dir / RUN_FILES[key]).unlink()
    with pytest.raises(error, match=message):
        analysis.load_run(run_dir)


def test_load_run_refuses_a_failed_run_with_its_reason(tmp_path):
    run_dir = make_run(tmp_path, "run", failed=DIVERGED)
    with pytest.raises(RunDirectoryError, match=r"failed run \(the loss became NaN at epoch 3"):
        analysis.load_run(run_dir)


def test_predictions_of_a_missing_split_lists_the_available_ones(tmp_path):
    run = analysis.load_run(make_run(tmp_path, "run"))
    with pytest.raises(FileNotFoundError, match=r"predictions_train\.csv.*\['test', 'val'\]"):
        run.predictions("train")


def test_predictions_columns_must_follow_the_class_names(tmp_path):
    run_dir = make_run(tmp_path, "run")
    path = run_dir / "predictions_test.csv"
    frame = pd.read_csv(path)
    frame[["filename", "exam_id", "label", "prob_malignant", "prob_benign"]].to_csv(path, index=False)
    with pytest.raises(ValueError, match="prob_benign"):
        analysis.load_run(run_dir).predictions("test")


def test_find_runs_is_recursive_and_warns_about_unfinished_and_failed_runs(study):
    with pytest.warns(UserWarning) as caught:
        runs = analysis.find_runs(study)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 unfinished run(s)" in messages and "fold4_crashed" in messages
    assert "1 failed run(s)" in messages and "fold5_diverged" in messages and DIVERGED[1] in messages
    assert len(runs) == 12
    assert all((run.path / "metrics.json").exists() for run in runs)
    assert [run.path for run in runs] == sorted(run.path for run in runs)


# ------------------------------------------------------------------------------- report
def test_format_report_binary_is_labelled_with_its_split(tmp_path):
    report = RunDir(make_run(tmp_path, "run")).read_metrics()["val"]
    auc, t = report["roc_auc"], report["threshold_metrics"]
    line = analysis.format_report(report, "val")
    assert line.startswith("val AUC ") and "test" not in line
    assert (f"val AUC {auc['auc']:.4f} (95% CI {auc['lower']:.4f}-{auc['upper']:.4f}, DeLong; "
            f"n=60, {auc['n_pos']} positive)") in line
    for name, value in (("accuracy", t["accuracy"]), ("sensitivity", t["sensitivity"]),
                        ("specificity", t["specificity"]), ("ECE", report["calibration"]["ece"])):
        assert f"{name} {value:.4f}" in line
    assert "(threshold 0.5)" in line
    assert analysis.format_report(report, "test").startswith("test AUC ")


def test_format_report_multiclass_uses_the_macro_auc():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probs = np.eye(3)[[0, 1, 2, 1, 1, 2, 0, 0]] * 0.7 + 0.1
    report = metrics.evaluate_predictions(y, probs)
    assert analysis.format_report(report, "val") == (
        f"val accuracy {report['accuracy']:.4f}, macro AUC {report['macro_roc_auc_ovr']:.4f} "
        "(one-vs-rest, 3 classes; n=8)")


def test_format_report_undefined_values_read_na():
    with pytest.warns(RuntimeWarning, match="DeLong variance undefined"):
        report = metrics.evaluate_predictions([0, 0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4, 0.3])
    line = analysis.format_report(report, "train")
    assert "(95% CI n/a-n/a, DeLong; n=5, 1 positive)" in line and "sensitivity 0.0000" in line


def test_format_report_errors():
    with pytest.raises(ValueError, match="evaluate_predictions.*Received: task=None"):
        analysis.format_report({"auc": 0.9}, "val")
    with pytest.raises(ValueError, match="Received: split=''"):
        analysis.format_report({"task": "binary"}, "")


# ------------------------------------------------------------------------------ compare
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
    assert [p["p_value_holm"] for p in result["pairs"]] == pytest.approx(list(stats.holm_adjust(raw)))
    assert all(h >= r for h, r in zip([p["p_value_holm"] for p in result["pairs"]], raw))


def test_compare_runs_on_different_images_names_runs_and_count(study):
    a = study / "resnet50" / "radimagenet" / "fold1"
    b = study / "resnet50" / "imagenet" / "fold2"
    with pytest.raises(ValueError, match=r"Run fold1 and Run fold2 were not evaluated on the same test "
                                         r"images: 240 filename\(s\) differ \(120 only in Run fold1"):
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


def test_compare_runs_refuses_failed_and_unfinished_runs(study):
    finished = study / "resnet50" / "radimagenet" / "fold1"
    with pytest.raises(RunDirectoryError, match="fold5_diverged holds a failed run \\(the loss became NaN"):
        analysis.compare_runs([finished, study / "densenet121" / "imagenet" / "fold5_diverged"])
    with pytest.raises(RunDirectoryError, match=r"fold4_crashed is an unfinished run.*radtl train --resume"):
        analysis.compare_runs([finished, study / "resnet50" / "radimagenet" / "fold4_crashed"])


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
    assert "learning_rate" not in table.columns  # constant over the finished runs


def test_summary_lists_failed_runs_with_their_reason_and_never_averages_them(summary, study):
    failed = summary.failed
    # learning_rate varies only because of the failed run: shown in its table, not the run table.
    assert failed.to_dict(orient="records") == [{
        "run": "densenet121/imagenet/fold5_diverged", "backbone": "densenet121", "weights": "imagenet",
        "learning_rate": 1e4, "fold": 5, "seed": 0, "kind": "diverged", "reason": DIVERGED[1]}]
    assert 5 not in set(summary.runs["fold"])
    densenet_imagenet = summary.summary.set_index(["backbone", "weights"]).loc[("densenet121", "imagenet")]
    assert densenet_imagenet["n"] == 3
    pd.testing.assert_frame_equal(pd.read_csv(summary.paths["failed"]), failed, check_dtype=False)
    markdown = summary.markdown
    assert "1 failed run(s), not averaged in (see Failed runs)." in markdown
    section = markdown[markdown.index("## Failed runs"):]
    assert "| run | backbone | weights | learning_rate | fold | seed | kind | reason |" in section
    assert f"| densenet121/imagenet/fold5_diverged | densenet121 | imagenet | 10000.0 | 5 | 0 | diverged | " \
           f"{DIVERGED[1]} |" in section


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
    assert rows["permutation_p_holm"].to_numpy() == pytest.approx(stats.holm_adjust(rows["permutation_p"]))
    # RadImageNet was given the larger separation: it wins on every pair.
    assert rows.loc["weights", "mean_difference"] > 0


def test_summary_files_markdown_and_boxplot(summary):
    for key in ("runs", "summary", "failed", "comparisons", "markdown", "boxplot"):
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
    with pytest.warns(UserWarning):
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


def test_summary_without_failures_writes_an_empty_failed_table(tmp_path):
    for lr, fold in itertools.product((1e-5, 1e-4), (1, 2)):
        make_run(tmp_path / f"lr{lr}", f"fold{fold}", learning_rate=lr, fold=fold, n_test=30, n_val=20)
    result = analysis.summarize(tmp_path)
    assert result.failed.empty and list(pd.read_csv(result.paths["failed"]).columns) == ["run", "kind", "reason"]
    assert "Failed runs" not in result.markdown and "failed run" not in result.markdown
    # Settings read as given, not in the metrics' 4-decimal format (1e-05 would read 0.0000).
    assert "| 1e-05 | 2 |" in result.markdown and "| 0.0001 | 2 |" in result.markdown


def test_summary_errors(tmp_path, study):
    with pytest.raises(ValueError, match="No finished run"):
        analysis.summarize(tmp_path)
    make_run(tmp_path / "runs", "fold1", failed=DIVERGED)
    with pytest.warns(UserWarning, match="1 failed"), \
            pytest.raises(ValueError, match="0 unfinished and 1 failed run\\(s\\) found"):
        analysis.summarize(tmp_path / "runs")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="Received: metric='auc'"):
        analysis.summarize(study, out_dir=tmp_path, metric="auc")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="Cannot compare on 'fold'"):
        analysis.summarize(study, out_dir=tmp_path, compare="fold")


def test_summarize_plots_auc_against_the_confounder_fraction(tmp_path):
    runs = tmp_path / "runs"
    for weights in ("imagenet", "radimagenet"):
        for fraction in (0.0, 0.5, 1.0):
            for fold in (1, 2):
                path = make_run(runs, f"{weights}-f{fraction}-fold{fold}", weights=weights, fold=fold,
                                confounder={"kind": "tag", "fraction": fraction})
                run = RunDir(path)
                metrics = run.read_metrics()
                shortcut = 0.99 - fraction * (0.6 if weights == "imagenet" else 0.2) - 0.01 * fold  # falls with it
                metrics["test_confounded_negatives"] = {"roc_auc": {"auc": shortcut}}
                run.write_metrics(metrics)
    result = analysis.summarize(runs, compare=["weights"])
    table = result.runs
    assert {"confounder.fraction", "test_confounded_negatives_auc"} <= set(table.columns)
    row = table[(table["weights"] == "imagenet") & (table["confounder.fraction"] == 1.0)]
    assert row["test_confounded_negatives_auc"].tolist() == pytest.approx([0.38, 0.37])
    assert result.paths["confounder"].stat().st_size > 1000
    tests = pd.read_csv(result.paths["confounder_tests"])
    ood = tests[(tests["metric"] == "test_confounded_negatives_auc") & (tests["confounder.fraction"] == 1.0)]
    assert ood["permutation_p"].item() == pytest.approx(1.0 / 3.0)  # 2 vs 2 runs: 6 splits, 2 as extreme
    assert "Sources per confounder fraction" in result.markdown


def test_runs_without_a_confounder_are_their_own_setting(tmp_path):
    runs = tmp_path / "runs"
    for fold in (1, 2):
        make_run(runs, f"clean-fold{fold}", fold=fold)
        make_run(runs, f"tagged-fold{fold}", fold=fold, confounder={"kind": "tag", "fraction": 0.5})
    table = analysis.summarize(runs).runs
    assert sorted(table["confounder.fraction"].astype(str)) == ["0.5", "0.5", "none", "none"]
