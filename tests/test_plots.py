"""Tests for radtl.plots: every figure is a real PNG, `write_run_plots` reads runs through
RunDir. Fake run directories come from `test_analysis.make_run`."""
import numpy as np
import pandas as pd
import pytest

from radtl import plots
from radtl.rundir import RunDir, RunDirectoryError, labels_and_probs
from test_analysis import DIVERGED, _assert_png, make_run


def _box_table():
    rng = np.random.default_rng(0)
    rows = [{"backbone": b, "weights": w, "fold": f, "test_auc": 0.85 + 0.05 * (w == "radimagenet")
             + rng.normal(0, 0.02)} for b in ("resnet50", "densenet121")
            for w in ("radimagenet", "imagenet") for f in range(5)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), "fold1")


def test_plots_are_valid_pngs(tmp_path, run_dir):
    run = RunDir(run_dir)
    y, probs = labels_and_probs(run.read_predictions("test"))
    paths = [
        plots.plot_training_curves(run.history(), tmp_path / "curves.png", best_epoch=4),
        plots.plot_roc(y, probs[:, 1], tmp_path / "roc.png", band_resamples=100),
        plots.plot_reliability(y, probs, tmp_path / "reliability.png"),
        plots.plot_boxplots(_box_table(), tmp_path / "nested" / "box.png", by=["backbone", "weights"],
                            metric="test_auc", hue="weights"),
    ]
    for path in paths:
        _assert_png(path)


def test_multiclass_roc_draws_one_vs_rest_curves(tmp_path):
    run = RunDir(make_run(tmp_path, "run", class_names=["a", "b", "c"], n_test=60, n_val=20))
    y, probs = labels_and_probs(run.read_predictions("test"))
    _assert_png(plots.plot_roc(y, probs, tmp_path / "roc.png", class_names=["a", "b", "c"]))
    with pytest.raises(ValueError, match="3 columns"):
        plots.plot_roc(y, probs, tmp_path / "bad.png", class_names=["a", "b"])


def test_write_run_plots_works_before_metrics_json_exists(tmp_path):
    run_dir = make_run(tmp_path, "run", finished=False)
    paths = plots.write_run_plots(run_dir, band_resamples=50)
    assert [p.relative_to(run_dir).as_posix() for p in paths] == [
        "plots/training_curves.png", "plots/roc_test.png", "plots/reliability_test.png"]
    for path in paths:
        _assert_png(path)
    # Unfinished: the best epoch is the best value of the config's monitor (val_auc, max).
    history = RunDir(run_dir).history()
    best = int(history["epoch"].iloc[history["val_auc"].argmax()]) + 1
    expected = plots.plot_training_curves(history, tmp_path / "expected.png", best_epoch=best, title="run")
    assert paths[0].read_bytes() == expected.read_bytes()


def test_write_run_plots_of_a_finished_run_marks_the_recorded_best_epoch(tmp_path):
    run = RunDir(make_run(tmp_path, "run"))
    metrics = run.read_metrics()
    history = run.history()
    recorded = 1 if metrics["best_epoch"] != 1 else 2  # differs from the monitor's best
    run.write_metrics({**metrics, "best_epoch": recorded})
    paths = plots.write_run_plots(run, split="val", band_resamples=0)  # a RunDir, the val split
    assert [p.name for p in paths] == ["training_curves.png", "roc_val.png", "reliability_val.png"]
    expected = plots.plot_training_curves(history, tmp_path / "expected.png", best_epoch=recorded, title="run")
    assert paths[0].read_bytes() == expected.read_bytes()
    monitors_best = plots.plot_training_curves(history, tmp_path / "monitor.png", best_epoch=metrics["best_epoch"],
                                               title="run")
    assert paths[0].read_bytes() != monitors_best.read_bytes()


def test_write_run_plots_errors(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(RunDirectoryError, match="holds no config.json"):
        plots.write_run_plots(tmp_path / "not_a_run")
    failed = make_run(tmp_path, "failed", failed=DIVERGED)
    with pytest.raises(FileNotFoundError, match="Prediction files in .*: none"):
        plots.write_run_plots(failed)


def test_training_curves_need_a_curve():
    with pytest.raises(ValueError, match="Received 2 rows with columns \\['epoch', 'stage'\\]"):
        plots.plot_training_curves(pd.DataFrame({"epoch": [0, 1], "stage": ["a", "b"]}), "x.png")


def test_boxplot_errors_name_the_column(tmp_path):
    with pytest.raises(ValueError, match="'val_auc' not in"):
        plots.plot_boxplots(_box_table(), tmp_path / "b.png", by="weights", metric="val_auc")
    with pytest.raises(ValueError, match="hue"):
        plots.plot_boxplots(_box_table(), tmp_path / "b.png", by="weights", metric="test_auc",
                            hue="backbone")
