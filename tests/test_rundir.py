"""Tests for radtl.rundir: the run-directory contract (status, reads, writes, scanning).

Pure Python and pandas, like the module: no TensorFlow.
"""
import json
import os
import stat

import pandas as pd
import pytest

from radtl.rundir import RunDir, RunDirectoryError, best_index, labels_and_probs, monitor_mode, write_json

CONFIG = {"dataset": "synthetic_lesions", "fold": 1, "monitor": "val_auc"}
RESOLVED = {"class_names": ["benign", "malignant"], "split_sizes": {"test": 3}}


def _predictions(class_names=("benign", "malignant")):
    frame = pd.DataFrame({"filename": ["a.png", "b.png", "c.png"], "exam_id": ["e1", "e1", "e2"],
                          "label": [0, 1, 1]})
    for k, name in enumerate(class_names):
        frame[f"prob_{name}"] = [0.8, 0.3, 0.4] if k == 0 else [0.2, 0.7, 0.6]
    return frame


def _started(path) -> RunDir:
    run = RunDir(path)
    run.create()
    run.write_config(CONFIG, RESOLVED)
    return run


def _hidden(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------ status
def test_status_new_unfinished_finished(tmp_path):
    run = RunDir(tmp_path / "a" / "run")
    assert (run.status, run.is_run(), run.check_usable()) == ("new", False, "new")  # does not exist yet
    run.create()
    assert run.path.is_dir() and (run.status, run.check_usable()) == ("new", "new")
    run.write_config(CONFIG, RESOLVED)
    assert (run.status, run.is_run(), run.check_usable()) == ("unfinished", True, "unfinished")
    with pytest.raises(RunDirectoryError, match=r"unfinished run \(no metrics.json\).*radtl train --resume --out"):
        run.require_finished()
    with pytest.raises(RunDirectoryError, match="unfinished run"):
        run.read_metrics()
    run.write_metrics({"best_epoch": 2, "test": {"accuracy": 1.0}})
    assert run.status == "finished"
    run.require_finished()
    assert run.read_metrics() == {"best_epoch": 2, "test": {"accuracy": 1.0}}
    assert os.fspath(run) == str(run.path) and run.name == "run"


def test_failed_run_has_a_reason_and_no_result(tmp_path):
    run = _started(tmp_path / "run")
    assert run.read_failure() is None
    run.write_failure("collapsed", "every prediction is 0.99999994 (one constant class)", epoch=2)
    assert run.status == "failed" and run.check_usable() == "failed"
    assert run.read_failure() == {"kind": "collapsed", "reason": "every prediction is 0.99999994 (one constant "
                                  "class)", "epoch": 2}
    with pytest.raises(RunDirectoryError, match=r"failed run \(every prediction is 0.99999994 .*no result"):
        run.require_finished()
    with pytest.raises(RunDirectoryError, match="failed run"):
        run.read_metrics()


def test_check_usable_refuses_what_is_not_a_run_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file, not a directory"):
        RunDir(tmp_path / "notes.txt").check_usable()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("x")
    with pytest.raises(RunDirectoryError, match="not empty and holds no config.json: it is not a radtl run"):
        RunDir(foreign).check_usable()
    crashed_sweep_attempt = RunDir(tmp_path / "attempt")
    crashed_sweep_attempt.write_error("Traceback ...")
    assert crashed_sweep_attempt.check_usable() == "new"  # a sweep's error.txt alone is fine
    assert stat.S_IMODE(crashed_sweep_attempt.file("error").stat().st_mode) == 0o644
    crashed_sweep_attempt.clear_error()
    assert not crashed_sweep_attempt.file("error").exists()


def test_require_run_names_the_problem(tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        RunDir(tmp_path / "missing").require_run()
    with pytest.raises(RunDirectoryError, match="holds no config.json. Pass a directory written by `radtl train`"):
        RunDir(tmp_path).require_run()


# ------------------------------------------------------------------------- JSON files
def test_config_round_trip_and_errors(tmp_path):
    run = _started(tmp_path / "run")
    assert run.read_config_dict() == CONFIG
    assert run.read_resolved() == RESOLVED and run.class_names == ["benign", "malignant"]
    run.file("config").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="config.json is not valid JSON .*corrupt"):
        run.read_config_dict()
    run.file("config").write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(ValueError, match=r"must hold \{'config': ..., 'resolved': ...\}"):
        run.read_config_dict()


def test_json_files_are_written_0644_atomically(tmp_path):
    old_umask = os.umask(0o077)  # a private umask must not make results unreadable to co-workers
    try:
        run = _started(tmp_path / "run")
        run.write_metrics({"best_epoch": 1})
        other = _started(tmp_path / "other")
        other.write_failure("diverged", "loss is NaN")
    finally:
        os.umask(old_umask)
    for path in (run.file("config"), run.file("metrics"), other.file("failure")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert _hidden(run.path) == [] and _hidden(other.path) == []  # no temporary file left behind
    write_json(tmp_path / "numpy.json", {"x": __import__("numpy").float32(0.5), "p": tmp_path})
    assert json.loads((tmp_path / "numpy.json").read_text()) == {"x": 0.5, "p": str(tmp_path)}


def test_failed_json_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"ok": 1})
    with pytest.raises(TypeError, match="Not JSON serialisable: object"):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert _hidden(tmp_path) == []


# ------------------------------------------------------------------------------ history
def test_history_keeps_the_last_row_of_an_epoch_logged_twice(tmp_path):
    run = _started(tmp_path / "run")
    assert not run.has_history()
    with pytest.raises(FileNotFoundError, match="history.csv does not exist"):
        run.history()
    # Epochs 0-2, then a resume that repeats epochs 1-2 (different values) and adds 3.
    pd.DataFrame({"epoch": [0, 1, 2, 1, 2, 3], "loss": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                  "val_auc": [0.6, 0.7, 0.9, 0.75, 0.8, 0.85]}).to_csv(run.file("history"), index=False)
    history = run.history()
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    assert history["loss"].tolist() == [0.9, 0.6, 0.5, 0.4]
    assert history.index.tolist() == [0, 1, 2, 3]
    assert run.best_so_far("val_auc") is None  # no checkpoint yet
    run.file("checkpoint").write_bytes(b"")
    assert run.best_so_far("val_auc") == 0.85 and run.best_so_far("loss") == 0.4
    run.write_history(history)
    assert pd.read_csv(run.file("history"))["epoch"].tolist() == [0, 1, 2, 3]
    assert _hidden(run.path) == []


def test_history_of_a_run_killed_before_its_first_epoch_is_empty(tmp_path):
    run = _started(tmp_path / "run")
    run.file("history").write_text("")
    assert run.history().empty


def test_best_index_and_monitor_mode():
    assert (monitor_mode("val_loss"), monitor_mode("val_auc")) == ("min", "max")
    assert best_index([0.5, 0.3, 0.3, 0.4], "val_loss") == 1  # first on ties
    assert best_index([0.5, 0.9, 0.9], "val_auc") == 1


# -------------------------------------------------------------------------- predictions
def test_predictions_round_trip(tmp_path):
    run = _started(tmp_path / "run")
    for split in ("val", "test"):
        assert run.write_predictions(split, _predictions()) == run.file("predictions", split=split)
    assert run.prediction_splits() == ["test", "val"]
    assert _hidden(run.path) == []
    frame = run.read_predictions("val")
    pd.testing.assert_frame_equal(frame, _predictions(), check_dtype=False)
    y, probs = labels_and_probs(frame)
    assert y.dtype == "int64" and probs.dtype == "float64" and probs.shape == (3, 2)


def test_predictions_keep_exam_ids_as_written(tmp_path):
    run = _started(tmp_path / "run")
    run.write_predictions("test", _predictions().assign(exam_id=["0001", "0001", "0002"]))
    assert run.read_predictions("test")["exam_id"].tolist() == ["0001", "0001", "0002"]


def test_predictions_contract_errors(tmp_path):
    run = _started(tmp_path / "run")
    run.write_predictions("test", _predictions())
    with pytest.raises(FileNotFoundError, match=r"predictions_val.csv does not exist.*\['test'\].*"
                                                r"radtl evaluate .* --split val"):
        run.read_predictions("val")
    run.write_predictions("test", _predictions().drop(columns="label"))
    with pytest.raises(ValueError, match="must have the columns filename, label"):
        run.read_predictions("test")
    run.write_predictions("test", _predictions().drop(columns="prob_benign"))
    with pytest.raises(ValueError, match="at least two"):
        run.read_predictions("test")
    run.write_predictions("test", _predictions(("malignant", "benign")))
    with pytest.raises(ValueError, match=r"config.json lists the classes \['benign', 'malignant'\]"):
        run.read_predictions("test")
    assert run.read_predictions("test", class_names=["malignant", "benign"]).shape == (3, 5)


def test_predictions_outside_a_run_are_checked_without_class_names(tmp_path):
    loose = RunDir(tmp_path)
    loose.write_predictions("test", _predictions(("a", "b")))
    assert list(loose.read_predictions("test").columns)[-2:] == ["prob_a", "prob_b"]


# ------------------------------------------------------------------------------ scanning
def test_scan_finds_run_directories_recursively_sorted(tmp_path):
    for name in ("b/fold2", "a/fold1", "b/fold1"):
        _started(tmp_path / name)
    (tmp_path / "c").mkdir()  # no config.json: not a run
    assert [run.path.relative_to(tmp_path).as_posix() for run in RunDir.scan(tmp_path)] == [
        "a/fold1", "b/fold1", "b/fold2"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RunDir.scan(tmp_path / "missing")


def test_align_predictions_matches_rows_by_filename_and_names_the_tables():
    from radtl.rundir import align_predictions

    a = pd.DataFrame({"filename": ["x", "y", "z"], "label": [0, 1, 0], "prob_a": [.1, .2, .3]})
    b = a.iloc[::-1].assign(prob_a=[.9, .8, .7])
    first, second = align_predictions([a, b], ["A", "B"], split="test")
    assert first is a and list(second["filename"]) == ["x", "y", "z"]
    assert list(second["prob_a"]) == [.7, .8, .9]
    with pytest.raises(ValueError, match=r"A and B were not evaluated on the same test images: 2 filename\(s\) "
                                         r"differ \(1 only in A, 1 only in B; e.g. \['z', 'w'\]\)\. Use one fold\."):
        align_predictions([a, b.replace({"filename": {"z": "w"}})], ["A", "B"], split="test", fix="Use one fold.")
    with pytest.raises(ValueError, match=r"A and B give different labels to 1 of the same images \(e.g. \[.y.\]\)"):
        align_predictions([a, b.assign(label=[0, 0, 0])], ["A", "B"])
    with pytest.raises(ValueError, match=r"B lists 1 filename\(s\) more than once \(e.g. \['x'\]\)"):
        align_predictions([a, pd.concat([b, b.iloc[[2]]])], ["A", "B"])
