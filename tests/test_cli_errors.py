"""Bad input through the command line: one `Error:` line, nothing created, nothing lost."""
import os
import stat

import pytest
from click.testing import CliRunner

from cli_testing import TINY
from cli_testing import radtl_data_dir
from radtl import cli


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    with radtl_data_dir(tmp_path_factory.mktemp("tfds")) as path:
        yield path


def invoke(*args):
    return CliRunner().invoke(cli.cli, [str(a) for a in args])


def assert_one_error_line(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


@pytest.mark.parametrize("yaml_text, fragments", [
    ("backbone: resnet5\n", ["`backbone` must be one of", "Did you mean 'resnet50'?"]),
    ("schedule: lpft\n", ["`schedule` must be one of"]),
    ("loss: focal\n", ["`loss` must be one of"]),
    ("head_options: {dropuot: 0.2}\n", ["Unknown `head_options` ['dropuot']"]),
    ("schedule: lp-ft\nschedule_options: {probe_epoch: 1}\n", ["Unknown `schedule_options` ['probe_epoch']"]),
    ("augment: yes please\n", ["`augment` must be bool"]),
    ("batch_size: 16.5\n", ["`batch_size` must be int"]),
    ("epochs: 2\n  batch_size: [1\n", ["is not valid YAML", "line"]),
])
def test_config_errors_are_one_line_and_create_nothing(tmp_path, yaml_text, fragments):
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "run"
    result = invoke("train", "--config", config, "--out", out)
    assert_one_error_line(result, *fragments)
    assert not out.exists()


def test_train_config_accepts_exponent_learning_rates(tmp_path, data_dir):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 1e-3\nweights: none\nbackbone: mobilenet_v2\nimage_size: 32\n"
                      "dataset: synthetic_lesions\n")
    result = invoke("train", "--config", config, "--dry-run", "--schedule", "lp-ft",
                    "--schedule-option", "probe_epochs=2", "--head", "mlp", "--head-option", "dropout=0.25",
                    "--loss", "label_smoothing", "--loss-option", "epsilon=0.2", "--confounder", "kind=tag",
                    "--confounder", "fraction=0.5", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "learning_rate: 0.001" in result.output
    assert "schedule_options: {'probe_epochs': 2}" in result.output
    assert "head_options: {'dropout': 0.25}" in result.output
    assert "loss_options: {'epsilon': 0.2}" in result.output
    assert "confounder: {'kind': 'tag', 'fraction': 0.5," in result.output  # then the kind's defaults
    assert "dataset: synthetic_lesions/fold1 in" in result.output and "weights file: random" in result.output
    assert not (tmp_path / "run").exists()


def test_bad_key_value_option_is_a_usage_error(tmp_path):
    result = invoke("train", "--schedule-option", "probe_epochs", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_html_weights_fail_before_the_run_directory_exists(tmp_path, data_dir):
    page = tmp_path / "RadImageNet-ResNet50_notop.h5"
    page.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    out = tmp_path / "run"
    args = [a for a in TINY]
    args[args.index("--weights") + 1] = str(page)
    result = invoke("train", *args, "--out", out)
    assert_one_error_line(result, "HTML")
    assert not out.exists()
    fixed = invoke("train", *TINY, "--out", out, "--dry-run")  # a corrected command may use the directory
    assert fixed.exit_code == 0, fixed.output


def test_missing_weights_fail_before_the_run_directory_exists(tmp_path, data_dir):
    out = tmp_path / "run"
    args = list(TINY)
    args[args.index("--weights") + 1] = str(tmp_path / "nowhere.h5")
    result = invoke("train", *args, "--out", out)
    assert_one_error_line(result, "nowhere.h5")
    assert not out.exists()


def test_resume_on_a_directory_that_is_not_a_run(tmp_path):
    folder = tmp_path / "notarun"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = invoke("train", "--resume", "--out", folder)
    assert_one_error_line(result, "not a radtl run directory")
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_one_line(tmp_path, data_dir):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = invoke("train", *TINY, "--out", parent / "run")
        assert_one_error_line(result, "Permission denied")
    finally:
        parent.chmod(stat.S_IRWXU)


def test_read_only_out_is_one_line_even_as_root(tmp_path, data_dir):
    # As root a read-only folder is writable; a path below a *file* fails for everybody.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("train", *TINY, "--out", blocker / "run")
    assert_one_error_line(result)


def test_evaluate_and_predict_refuse_a_non_run(tmp_path):
    assert_one_error_line(invoke("evaluate", tmp_path), "not a radtl run directory")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert_one_error_line(invoke("predict", tmp_path, image), "not a radtl run directory")


def test_unknown_dataset_for_data_commands(tmp_path):
    assert_one_error_line(invoke("data", "info", "mnist"), "`dataset` must be a registered dataset")
    assert_one_error_line(invoke("data", "build", "radimagenet_acl", "--fold", "1", "--manual-dir", tmp_path,
                                 "--data-dir", tmp_path / "tfds"))


def test_debug_shows_the_traceback(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("backbone: resnet5\n")
    result = CliRunner().invoke(cli.cli, ["--debug", "train", "--config", str(config)])
    assert result.exit_code != 0 and type(result.exception).__name__ == "ConfigError"


def test_sweep_with_an_unknown_schedule_option_fails_its_dry_run(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: {weights: none, schedule: lp-ft, schedule_options: {probe_epoch: 1}}\n"
                     "grid: {seed: [0, 1]}\n")
    result = invoke("sweep", sweep, "--runs-dir", tmp_path / "runs", "--dry-run")
    assert_one_error_line(result, "Unknown `schedule_options` ['probe_epoch']")
    assert not (tmp_path / "runs").exists()


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "evaluate", "predict", "compare", "summarize", "sweep", "data", "weights"):
        assert command in result.output


def test_a_saturated_run_is_reported_failed_not_as_a_result(tmp_path, data_dir):
    # `--lr 1e4` saturates the softmax instead of going NaN: every probability about
    # 0.99999994 and an "AUC" of about 0.5. It must be a failure, visible in summaries.
    args = list(TINY)
    args[args.index("--lr") + 1] = "1e4"
    out = tmp_path / "runs" / "saturated"
    result = invoke("train", *args, "--out", out)
    assert_one_error_line(result, "The run")
    assert "AUC" not in result.output.split("Error:")[1]
    failure = (out / "failed.json").read_text()
    assert any(kind in failure for kind in ("saturated", "collapsed", "diverged"))
    assert not (out / "metrics.json").exists()
    summary = invoke("summarize", tmp_path / "runs")
    assert "saturated" in summary.output or "collapsed" in summary.output or "diverged" in summary.output
