"""End to end through the command line: train, evaluate, predict, compare, sweep (with a
kill and a resume) and summarize, on the embedded dataset at tiny sizes."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from cli_testing import TINY
from cli_testing import radtl_data_dir
from radtl import cli
from radtl.rundir import RunDir


def run_status(path):
    return RunDir(path).status

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with radtl_data_dir(tmp_path_factory.mktemp("tfds")):
        yield tmp_path_factory.mktemp("work")


def invoke(*args):
    result = CliRunner().invoke(cli.cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_train_evaluate_predict_compare(env):
    run_a, run_b = env / "a", env / "b"
    result = invoke("train", *TINY, "--seed", "0", "--out", run_a)
    assert result.exit_code == 0, result.output
    assert "test AUC" in result.output and "95% CI" in result.output
    metrics = json.loads((run_a / "metrics.json").read_text())
    for name in ("config.json", "history.csv", "best.keras", "predictions_test.csv", "plots/training_curves.png",
                 "plots/roc_test.png", "plots/reliability_test.png"):
        assert (run_a / name).is_file(), name
    assert f"{metrics['test']['roc_auc']['auc']:.4f}" in result.output

    again = invoke("train", *TINY, "--seed", "0", "--out", run_a)
    assert again.exit_code != 0 and "never overwrites" in again.output

    evaluated = invoke("evaluate", run_a, "--split", "test")
    assert evaluated.exit_code == 0, evaluated.output
    assert f"{metrics['test']['roc_auc']['auc']:.4f}" in evaluated.output
    on_val = invoke("evaluate", run_a, "--split", "val")
    assert on_val.exit_code == 0 and on_val.output.startswith("val AUC"), on_val.output
    assert "test AUC" not in on_val.output


    first = pd.read_csv(run_a / "predictions_test.csv").iloc[0]
    image = env / "one.png"
    Image.new("RGB", (50, 40), (120, 90, 60)).save(image)
    predicted = invoke("predict", run_a, image, "--output", env / "pred.csv")
    assert predicted.exit_code == 0, predicted.output
    table = pd.read_csv(env / "pred.csv")
    assert list(table.columns) == ["filename", "prob_benign", "prob_malignant", "predicted", "error"]
    assert first["filename"].startswith("images/")

    unreadable = env / "unreadable.png"
    unreadable.write_bytes(b"not an image")
    partial = CliRunner().invoke(cli.cli, ["predict", str(run_a), str(unreadable), str(env / "one.png")])
    assert partial.exit_code == 1 and "1 of 2 files could not be read" in partial.output
    assert "is not a PNG, JPEG or DICOM image" in partial.output

    assert invoke("train", *TINY, "--seed", "1", "--out", run_b).exit_code == 0
    compared = invoke("compare", run_a, run_b, "--json", env / "cmp.json")
    assert compared.exit_code == 0, compared.output
    assert "DeLong" in compared.output
    assert json.loads((env / "cmp.json").read_text())
    assert "same predicted class, Cohen's kappa" in compared.output  # prediction agreement beside DeLong

    similar = invoke("similarity", run_a, run_b, "--at-init", "--repeats", "1", "--channels", "8",
                     "--max-datapoints", "200", "--out", env / "sim")
    assert similar.exit_code == 0, similar.output
    table = pd.read_csv(env / "sim" / "similarity_test.csv")
    assert set(table["comparison"]) == {"fine-tuned A vs B", "initial A vs B", "A: initial vs fine-tuned",
                                        "B: initial vs fine-tuned"}
    assert list(dict.fromkeys(table["stage"])) == [f"block{k}_pool" for k in range(1, 6)]
    assert table["similarity"].between(0, 1 + 1e-9).all()
    assert (env / "sim" / "similarity_test.png").stat().st_size > 1000

    for run in (run_a, run_b):  # VGG16's last stage is 1 x 1 at 32 px: explain a 4 x 4 one
        explained = invoke("explain", run, "--layer", "block3_pool", "--n", "4")
        assert explained.exit_code == 0, explained.output
        assert "dice:" in explained.output and "95% CI" in explained.output
    scores = pd.read_csv(run_a / "localisation_test.csv")
    assert scores["has_mask"].all() and scores["dice"].between(0, 1).all()  # the simulated lesions' masks
    localisation = json.loads((run_a / "metrics.json").read_text())["localisation"]["test"]
    assert localisation["n"] == len(scores) and localisation["layer"] == "block3_pool"
    assert localisation["mean"]["dice"] == pytest.approx(scores["dice"].mean())
    assert (run_a / "plots" / "explain_test.png").stat().st_size > 1000
    compared = invoke("compare", run_a, run_b)
    assert "Localisation (Grad-CAM against the lesion masks" in compared.output, compared.output

    ensembled = invoke("ensemble", run_a, run_b, "--out", env / "ens", "--method", "stacking")
    assert ensembled.exit_code == 0, ensembled.output
    assert "test AUC" in ensembled.output and "DeLong" in ensembled.output
    not_a_model = invoke("evaluate", env / "ens")
    assert not_a_model.exit_code == 1 and "Error:" in not_a_model.output and "ensemble" in not_a_model.output
    bad_layer = invoke("explain", run_a, "--layer", "no_such_layer")
    assert bad_layer.exit_code == 1 and "Error:" in bad_layer.output
    summary = invoke("summarize", env, "--out", env / "summary")
    assert summary.exit_code == 0, summary.output
    summary_runs = pd.read_csv(env / "summary" / "summary_runs.csv")
    assert "ens" in set(summary_runs["run"])
    assert summary_runs.set_index("run").loc["a", "localisation_dice"] == pytest.approx(localisation["mean"]["dice"])


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_sweep_survives_a_kill_and_summarizes(env):
    runs = env / "sweep"
    config = REPO / "configs" / "smoke.yaml"
    process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "sweep", str(config), "--runs-dir", str(runs)],
                               cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def one_finished_one_started():
            dirs = [d for d in runs.glob("*") if d.is_dir() and not d.name.startswith(".")]
            states = [run_status(d) for d in dirs]
            return states.count("finished") >= 1 and states.count("unfinished") >= 1
        _wait_for(one_finished_one_started, 600, "a finished run and a started one")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    dirs = sorted(d for d in runs.glob("*") if d.is_dir() and not d.name.startswith("."))
    before = {d.name: run_status(d) for d in dirs}
    finished_before = {n for n, s in before.items() if s == "finished"}
    stamps = {n: (runs / n / "metrics.json").stat().st_mtime_ns for n in finished_before}

    resumed = invoke("sweep", config, "--runs-dir", runs)
    assert resumed.exit_code == 0, resumed.output
    after = {d.name: run_status(d) for d in runs.glob("*") if d.is_dir() and not d.name.startswith(".")}
    assert len(after) == 4 and set(after.values()) == {"finished"}
    for name in finished_before:  # finished runs were skipped, not retrained
        assert (runs / name / "metrics.json").stat().st_mtime_ns == stamps[name]
    assert "resume" in resumed.output.lower()

    summary = invoke("summarize", runs)
    assert summary.exit_code == 0, summary.output
    table = pd.read_csv(runs / "summary.csv")
    assert set(table["schedule"]) == {"freezeall", "unfreezeall"}
    assert (runs / "summary.md").read_text().count("|") > 10
    assert list(runs.glob("boxplot_*.png"))
    shutil.rmtree(runs)


def test_a_killed_training_run_resumes_where_it_stopped(env):
    run_dir = env / "killed"
    args = [a for a in TINY if a not in ("--epochs", "1", "--batch-size", "64")]
    command = [sys.executable, str(REPO / "cli.py"), "train", *args, "--epochs", "4", "--batch-size", "16",
               "--out", str(run_dir)]
    process = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    history = run_dir / "history.csv"
    try:
        _wait_for(lambda: (run_dir / "backup" / "training_metadata.json").exists(), 600,
                  "the first completed backup of the run")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert run_status(run_dir) == "unfinished"
    done_before = len(pd.read_csv(history))
    assert done_before < 4

    resumed = invoke("train", "--resume", "--out", run_dir, "--verbose", "0")
    assert resumed.exit_code == 0, resumed.output
    all_rows = pd.read_csv(history)
    assert list(all_rows["epoch"]).count(0) == 1  # epoch 0 was not trained again
    rows = all_rows.drop_duplicates("epoch", keep="last")
    assert list(rows["epoch"]) == list(range(4))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_value"] == pytest.approx(rows["val_auc"].max())
    # best.keras is the best epoch's model: its val AUC (exact, on the saved
    # predictions) matches the best epoch's in-training estimate.
    assert metrics["val"]["roc_auc"]["auc"] == pytest.approx(metrics["best_value"], abs=0.02)


def test_weights_list_and_an_offline_fetch(tmp_path):
    listed = invoke("weights", "list", "--weights-dir", tmp_path)
    assert listed.exit_code == 0, listed.output
    assert str(tmp_path) in listed.output
    assert "RadImageNet-ResNet50_notop.h5" in listed.output and "RadImageNet-IRV2_notop.h5" in listed.output

    start = time.monotonic()
    fetched = invoke("weights", "fetch", "radimagenet", "--arch", "resnet50", "--dest", tmp_path,
                     "--url", "http://127.0.0.1:9/RadImageNet_models.zip")  # nothing listens on port 9
    assert fetched.exit_code != 0
    assert time.monotonic() - start < 30
    assert "Could not download" in fetched.output and "To install the RadImageNet weights by hand" in fetched.output
    assert not list(tmp_path.glob("*.h5"))
