"""radtl.train: one run end to end on the embedded dataset, at a tiny size."""
import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from radtl import train
from radtl.config import TrainConfig
from radtl.rundir import RunDir

RUN_FILES = RunDir.FILES


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def config(data_dir):
    return TrainConfig(dataset="synthetic_lesions", backbone="vgg16", weights=None, image_size=32,
                       batch_size=64, epochs=2, learning_rate=1e-4, data_dir=str(data_dir), precision="float32",
                       xla=False)


@pytest.fixture(scope="module")
def finished_run(config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    metrics = train.run(config, run_dir, verbose=0)
    return run_dir, metrics


def test_run_directory_holds_every_documented_file(finished_run, config):
    run_dir, metrics = finished_run
    recorded = json.loads((run_dir / RUN_FILES["config"]).read_text())
    assert TrainConfig.from_dict(recorded["config"]) == config
    resolved = recorded["resolved"]
    assert resolved["precision"]["policy"] == "float32" and resolved["precision"]["xla"] is False
    assert resolved["class_names"] == ["benign", "malignant"]
    assert {"tensorflow", "keras", "radtl", "numpy"} <= set(resolved["versions"])

    history = pd.read_csv(run_dir / RUN_FILES["history"])
    assert list(history["epoch"]) == [0, 1]
    assert {"loss", "auc", "val_loss", "val_auc", "stage"} <= set(history.columns)
    assert (run_dir / RUN_FILES["checkpoint"]).is_file()
    assert any((run_dir / RUN_FILES["tensorboard"]).rglob("events.out.tfevents.*"))
    assert not (run_dir / RUN_FILES["backup"]).exists()  # removed once the run is finished

    for split, size in resolved["split_sizes"].items():
        if split == "train":
            continue
        predictions = pd.read_csv(run_dir / RUN_FILES["predictions"].format(split=split))
        assert list(predictions.columns) == ["filename", "exam_id", "label", "prob_benign", "prob_malignant"]
        assert len(predictions) == size
        np.testing.assert_allclose(predictions[["prob_benign", "prob_malignant"]].sum(axis=1), 1.0, atol=1e-5)

    on_disk = json.loads((run_dir / RUN_FILES["metrics"]).read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    best = int(history["val_auc"].to_numpy().argmax())
    assert metrics["best_epoch"] == best + 1
    assert metrics["best_value"] == pytest.approx(history["val_auc"].iloc[best])
    auc = metrics["test"]["roc_auc"]
    assert 0.0 <= auc["lower"] <= auc["auc"] <= auc["upper"] <= 1.0


def test_test_metrics_are_computed_from_the_saved_predictions(finished_run):
    from radtl import metrics as metrics_lib

    run_dir, metrics = finished_run
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    auc = metrics_lib.roc_auc(predictions["label"].to_numpy(), predictions["prob_malignant"].to_numpy())
    assert metrics["test"]["roc_auc"]["auc"] == pytest.approx(auc, abs=1e-12)


def test_same_config_and_seed_reproduce_the_run_exactly(finished_run, config, tmp_path):
    run_dir, _ = finished_run
    again = tmp_path / "again"
    train.run(config, again, verbose=0)
    for name in ("predictions_test.csv", "predictions_val.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(run_dir / name), pd.read_csv(again / name))


def test_an_existing_run_is_never_overwritten(finished_run, config):
    run_dir, metrics = finished_run
    before = (run_dir / RUN_FILES["metrics"]).read_bytes()
    with pytest.raises(train.RunDirectoryError, match="already holds a finished run"):
        train.run(config, run_dir)
    with pytest.raises(train.RunDirectoryError, match=r"differs in \['seed'\]"):
        train.run(config.replace(seed=1), run_dir, resume=True)
    assert train.run(config, run_dir, resume=True) == json.loads(before)  # finished: returned as is
    assert (run_dir / RUN_FILES["metrics"]).read_bytes() == before


def test_a_foreign_non_empty_directory_is_refused(config, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(train.RunDirectoryError, match="not a radtl run directory"):
        train.run(config, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_evaluate_and_predict_reuse_the_best_checkpoint(finished_run, config, tmp_path):
    run_dir, metrics = finished_run
    report = train.evaluate(run_dir, "test")
    assert report["roc_auc"]["auc"] == pytest.approx(metrics["test"]["roc_auc"]["auc"], abs=1e-9)

    # The stored PNGs, written to files, predicted one by one: same probabilities.
    stored = tfds.load("synthetic_lesions/fold1", split="test", data_dir=config.data_dir).take(3)
    paths = []
    for example in stored.as_numpy_iterator():
        path = tmp_path / example["filename"].decode().replace("images/", "")
        Image.fromarray(example["image"]).save(path)
        paths.append(path)
    table = train.predict(run_dir, paths)
    saved = pd.read_csv(run_dir / "predictions_test.csv").set_index("filename")
    for path, row in zip(paths, table.itertuples()):
        np.testing.assert_allclose(row.prob_malignant, saved.loc[f"images/{path.name}", "prob_malignant"], atol=1e-5)
    assert set(table["predicted"]) <= {"benign", "malignant"}


def test_predict_reports_unreadable_files_per_row_and_keeps_the_rest(finished_run, tmp_path):
    run_dir, _ = finished_run
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (90, 120, 60)).save(good)
    table = train.predict(run_dir, [tmp_path / "nope.png", bad, good])
    assert list(table["error"][:2]) == ["no such file", table["error"][1]]
    assert "is not a PNG, JPEG or DICOM image" in table["error"][1]
    assert table["prob_malignant"][:2].isna().all() and table["error"][2] == ""
    assert 0.0 <= table["prob_malignant"][2] <= 1.0 and table["predicted"][2] in ("benign", "malignant")


def test_best_checkpoint_holds_no_optimizer_state(finished_run):
    import zipfile

    import h5py

    run_dir, _ = finished_run
    with zipfile.ZipFile(run_dir / RUN_FILES["checkpoint"]) as archive:
        archive.extract("model.weights.h5", run_dir / "unzipped")
        assert not json.loads(archive.read("config.json")).get("compile_config")
    with h5py.File(run_dir / "unzipped" / "model.weights.h5") as weights:
        assert "optimizer" not in weights
    import shutil

    shutil.rmtree(run_dir / "unzipped")


def test_a_diverging_loss_marks_the_run_failed(config, tmp_path):
    diverging = config.replace(learning_rate=1e38, epochs=1, loss="label_smoothing")
    with pytest.raises(train.RunFailedError) as info:
        train.run(diverging, tmp_path / "nan", verbose=0)
    assert info.value.kind == "diverged"
    run = RunDir(tmp_path / "nan")
    assert run.status == "failed" and "became nan" in run.read_failure()["reason"]
    assert not run.file("metrics").exists() and not run.file("backup").exists()
    assert not run.file("checkpoint").exists()  # a non-finite epoch is never checkpointed
    with pytest.raises(train.RunDirectoryError, match="diverged"):
        train.run(diverging, tmp_path / "nan", resume=True)


def test_best_checkpoint_refuses_non_finite_weights(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    checkpoint = train._BestCheckpoint(str(tmp_path / "best.keras"), monitor="val_auc", mode="max",
                                       save_best_only=True)
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    model.layers[0].kernel.assign(np.full((2, 2), np.nan, dtype="float32"))
    checkpoint.on_epoch_end(0, {"val_auc": 0.7})
    assert not (tmp_path / "best.keras").exists()
    checkpoint.on_epoch_end(1, {"val_auc": float("nan")})
    assert not (tmp_path / "best.keras").exists()
    model.layers[0].kernel.assign(np.ones((2, 2), dtype="float32"))
    checkpoint.on_epoch_end(2, {"val_auc": 0.6})
    assert (tmp_path / "best.keras").exists()


def test_a_start_that_failed_before_its_first_epoch_may_be_reused(config, tmp_path):
    run = RunDir(tmp_path / "aborted")
    run.create()
    run.write_config(config.to_dict(), {})
    assert run.status == "unfinished"
    assert train.claim(config.replace(seed=5), run, resume=False) == "new"
    assert train.claim(config.replace(seed=5), run, resume=True) == "new"
    run.file("history").write_text("epoch,loss\n0,0.7\n")
    with pytest.raises(train.RunDirectoryError, match="--resume"):
        train.claim(config, run, resume=False)


def test_a_kill_after_the_last_epoch_resumes_without_training_again(config, tmp_path, monkeypatch):
    from radtl import plots

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill during the plots after the last epoch

    monkeypatch.setattr(plots, "write_run_plots", killed)
    run_dir = tmp_path / "killed"
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train.run(config, run_dir, verbose=0, progress=lines.append)
    assert any(line.startswith("Predicting the test split") for line in lines)
    run = RunDir(run_dir)
    assert run.status == "unfinished" and run.file("backup").exists()  # the backup outlives the kill
    monkeypatch.undo()
    metrics = train.run(config, run_dir, resume=True, verbose=0)
    assert list(run.history()["epoch"]) == [0, 1]
    assert list(pd.read_csv(run.file("history"))["epoch"]) == [0, 1]  # no duplicated rows
    assert metrics["best_epoch"] in (1, 2) and not run.file("backup").exists()


def test_a_tag_confounder_in_every_positive_is_learnt_as_a_shortcut(config, tmp_path):
    # Source Matters' design at a tiny size: the tag in all malignant training images, then
    # the tag on every benign test image (the inverted test). A run with fraction 0 gets the
    # same three test sets without having seen the shortcut.
    tag = {"kind": "tag", "size": 0.3, "position": [0.3, 0.3]}
    shortcut = config.replace(augment=False, batch_size=32, preprocessing="native",
                              confounder={**tag, "fraction": 1.0})
    metrics = train.run(shortcut, tmp_path / "shortcut", verbose=0)
    assert set(train.CONFOUNDED_TEST_SETS) | {"test_clean"} <= set(metrics)
    clean = metrics["test_clean"]["roc_auc"]["auc"]
    inverted = metrics["test_confounded_negatives"]["roc_auc"]["auc"]
    assert inverted < clean - 0.3, (clean, inverted)
    assert metrics["test_confounded_positives"]["roc_auc"]["auc"] > clean
    recorded = RunDir(tmp_path / "shortcut").read_config().confounder
    assert recorded["fraction"] == 1.0 and recorded["letter"] == "R"  # defaults recorded
    assert (tmp_path / "shortcut" / "predictions_test_confounded_negatives.csv").is_file()

    baseline = train.run(shortcut.replace(confounder={**tag, "fraction": 0.0}), tmp_path / "baseline", verbose=0)
    assert baseline["test_confounded_negatives"]["roc_auc"]["auc"] > baseline["test_clean"]["roc_auc"]["auc"] - 0.1

    from radtl import analysis  # the inverted test set compares like any split (DeLong)

    compared = analysis.compare_runs([tmp_path / "shortcut", tmp_path / "baseline"], split="test_confounded_negatives")
    assert compared["pairs"][0]["delong"]["difference"] < -0.3


def _weights(run_dir):
    return RunDir(run_dir).load_model().get_weights()


def _same_run(run_dir, reference, rtol=1e-4):
    """The same best-checkpoint weights (1e-5) and per-epoch losses (`rtol`) as `reference`."""
    for a, b in zip(_weights(run_dir), _weights(reference)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    histories = [RunDir(path).history() for path in (run_dir, reference)]
    assert list(histories[0].columns) == list(histories[1].columns) and "stage" in histories[0].columns
    assert list(histories[0]["epoch"]) == list(histories[1]["epoch"])
    assert list(histories[0]["stage"]) == list(histories[1]["stage"])
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(histories[0][column], histories[1][column], rtol=rtol)


def _frozen_config(config, **overrides):
    return config.replace(augment=False, head_options={"dropout": 0.0}, learning_rate=1e-3, preprocessing="native",
                          **overrides)


def test_a_frozen_unaugmented_run_trains_its_head_on_cached_features_with_the_same_result(
        config, tmp_path, monkeypatch):
    """`lp`: the head on cached features gives the run an end-to-end `fit` gives."""
    from radtl import probing

    probe = _frozen_config(config, schedule="lp")
    cached = train.run(probe, tmp_path / "cached", verbose=0)
    resolved = RunDir(tmp_path / "cached").read_resolved()
    assert resolved["cached_epochs"] == 2 and resolved["cached_features"] is True
    monkeypatch.setattr(probing, "cached_epochs", lambda config: 0)
    end_to_end = train.run(probe, tmp_path / "end_to_end", verbose=0)
    assert RunDir(tmp_path / "end_to_end").read_resolved()["cached_epochs"] == 0
    _same_run(tmp_path / "cached", tmp_path / "end_to_end")
    assert cached["test"]["roc_auc"]["auc"] == pytest.approx(end_to_end["test"]["roc_auc"]["auc"], abs=1e-4)


def test_lp_ft_probes_on_cached_features_and_resumes_from_either_phase_to_the_end_to_end_result(
        config, tmp_path, monkeypatch):
    """`lp-ft`: two probe epochs on cached features, then the whole model on images,
    equal one end-to-end `fit`; killed after the first probe epoch or the first image
    epoch, the resumed run continues the shuffle order, optimizer and weights exactly."""
    from radtl import probing

    run_config = _frozen_config(config, schedule="lp-ft", epochs=4,
                                schedule_options={"probe_epochs": 2, "learning_rate": 1e-5})
    train.run(run_config, tmp_path / "cached", verbose=0)
    assert RunDir(tmp_path / "cached").read_resolved()["cached_epochs"] == 2
    with monkeypatch.context() as patched:
        patched.setattr(probing, "cached_epochs", lambda config: 0)
        train.run(run_config, tmp_path / "end_to_end", verbose=0)
    _same_run(tmp_path / "cached", tmp_path / "end_to_end")
    for kill_after in (1, 3):
        run_dir = _killed_after(run_config, tmp_path / f"killed{kill_after}", kill_after, monkeypatch)
        backup = RunDir(run_dir).file("backup") / ("probe" if kill_after < 2 else "")
        assert train._AtomicBackupAndRestore.saved_epochs(backup) == kill_after
        train.run(run_config, run_dir, resume=True, verbose=0)
        _same_run(run_dir, tmp_path / "cached", rtol=1e-6)


def _killed_after(run_config, run_dir, epochs, monkeypatch):
    """Runs `run_config` into `run_dir` until a kill at the end of epoch `epochs` (1-based)."""
    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs:
                raise KeyboardInterrupt

    callbacks = train._callbacks
    monkeypatch.setattr(train, "_callbacks", lambda *args, **kwargs: [*callbacks(*args, **kwargs), Kill()])
    with pytest.raises(KeyboardInterrupt):
        train.run(run_config, run_dir, verbose=0)
    monkeypatch.undo()
    return run_dir


def test_an_auto_rgn_run_resumes_to_the_uninterrupted_result(config, tmp_path, monkeypatch):
    """Auto-RGN reads training batches itself each epoch (one more pass of the pipeline's
    streams): the resume skips that pass too, with the same weights at the end."""
    run_config = config.replace(schedule="auto-rgn", schedule_options={"num_batches": 1}, head_options={"dropout": 0.0})
    train.run(run_config, tmp_path / "whole", verbose=0)
    run_dir = _killed_after(run_config, tmp_path / "killed", 1, monkeypatch)
    train.run(run_config, run_dir, resume=True, verbose=0)
    _same_run(run_dir, tmp_path / "whole", rtol=1e-6)  # the best checkpoint may predate the kill


def test_the_history_keeps_its_columns_when_a_resumed_fit_logs_others(tmp_path):
    """Appending, a new column is added (earlier rows empty) and a missing one left empty."""
    path = tmp_path / "history.csv"
    first = train._CSVLogger(str(path))
    first.on_train_begin()
    first.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.7})
    first.on_train_end()
    resumed = train._CSVLogger(str(path), append=True)
    resumed.on_train_begin()
    resumed.on_epoch_end(1, {"loss": 0.4, "stage": 1})
    resumed.on_train_end()
    history = pd.read_csv(path)
    assert list(history.columns) == ["epoch", "loss", "val_loss", "stage"]
    assert history["loss"].tolist() == [0.5, 0.4] and history["val_loss"].isna().tolist() == [False, True]
    assert history["stage"].isna().tolist() == [True, False]


def test_a_run_leaves_op_determinism_as_it_found_it(finished_run):
    from tensorflow.python.framework import config as tf_framework_config

    assert not tf_framework_config.is_op_determinism_enabled()  # XLA grads of e.g. MaxPool need it off


def test_augmentation_on_the_device_trains_inside_the_step(config, tmp_path):
    # The warp runs in the train step (XLA-compatible: tests/test_augmentation.py compiles it; a
    # jit-compiled VGG16 step costs 40 s on a CPU); evaluation and the saved model take plain images.
    on_device = config.replace(augment=True, augment_on="device", epochs=1)
    metrics = train.run(on_device, tmp_path / "device", verbose=0)
    run = RunDir(tmp_path / "device")
    assert run.read_config().augment_on == "device"
    assert 0.0 <= metrics["test"]["roc_auc"]["auc"] <= 1.0
    assert run.load_model().input_shape == (None, 32, 32, 3)


def test_the_backup_keeps_the_losss_own_state_for_a_resume(tmp_path):
    # OLS's soft-label matrix lives in the loss, not the model: without the backup it would
    # restart uniform when a killed run resumes.
    import keras

    from radtl import losses

    loss = losses.OnlineLabelSmoothing(num_classes=2)
    assert loss.state_variables() == [loss.soft_labels] and losses.get("hard").state_variables() == []
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", loss=loss)
    backup = train._AtomicBackupAndRestore(str(tmp_path / "backup"), state=loss.state_variables())
    backup.set_model(model)
    learnt = np.array([[0.8, 0.2], [0.3, 0.7]], "float32")
    loss.soft_labels.assign(learnt)
    backup._current_epoch, backup._last_batch_seen = 3, 0
    backup._save_model()
    loss.soft_labels.assign(np.full((2, 2), 0.5, "float32"))  # a new process: uniform again
    backup._load_model()
    np.testing.assert_array_equal(loss.soft_labels.numpy(), learnt)
    assert model._initial_epoch == 3


def test_the_backup_callback_comes_last(config, tmp_path):
    # At an epoch's end every other callback (the OLS loss's matrix update, the checkpoint,
    # the history row) must have run before the backup records the epoch.
    from radtl import losses

    loss = losses.OnlineLabelSmoothing(num_classes=2)
    callbacks = train._callbacks(config, RunDir(tmp_path / "run"), None, loss, resumed=False)
    assert isinstance(callbacks[-1], train._AtomicBackupAndRestore)
    assert callbacks[-1]._state == [loss.soft_labels]
    assert any(isinstance(c, losses.OnlineLabelSmoothingCallback) for c in callbacks[:-1])


def test_auto_augments_on_the_cpu_without_a_gpu_and_the_run_records_it(finished_run, monkeypatch):
    import tensorflow as tf

    import radtl.data

    assert radtl.data.resolve_augment_on("auto") == "auto" and radtl.data.resolve_augment_on("cpu") == "cpu"
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert radtl.data.resolve_augment_on("auto") == "device"
    assert radtl.data.resolve_augment_on("cpu") == "cpu"
    run_dir, _ = finished_run
    assert RunDir(run_dir).read_resolved()["augment_on"] == "auto"
