"""One study run, end to end: `run(config, run_dir)` trains, selects, evaluates, records.

The recipe, top to bottom (what `python cli.py train` does):

1. Turn on TensorFlow op determinism; seed everything from `config.seed` just
   before the model is built (the input pipeline has its own explicit seeds).
2. Choose precision and XLA (`radtl.precision.configure`) and, on a machine with
   several GPUs, a `tf.distribute.MirroredStrategy`.
3. Read the fold's train/val/test splits (`radtl.data.load`; the official
   augmentation on train).
4. Build the model (`radtl.build_model`: preprocessing, backbone, head), the loss
   (`radtl.losses`), the optimizer (with a cosine decay if asked) and compile with a
   positive-class AUC metric (scikit-learn's binary ROC AUC is computed on the saved
   predictions; the training-time metric is Keras' 1,000-threshold estimate).
5. `fit` with the fine-tuning schedule as a callback (`radtl.schedules`), plus
   BackupAndRestore (kill and `resume=True`), a checkpoint of the best epoch by
   validation AUC, CSV history, TensorBoard logs and a NaN guard.
6. Reload the best checkpoint; predict the val and test splits; write predictions,
   metrics (AUC with DeLong CI, threshold metrics, calibration) and plots.

Files: see `radtl.config.RUN_FILES`. `metrics.json` is written last, so a run
directory that has it is finished. A run directory is never overwritten: starting a
run into an existing directory is an error unless `resume=True`, and resuming checks
that the config is the one recorded.

Resuming restores weights, optimizer state, dropout seed states and the epoch counter
from the last completed epoch (a kill-safe `BackupAndRestore`). A resumed run is a
faithful continuation but not bitwise identical to an uninterrupted one: the input
pipeline's shuffle and augmentation streams restart, and a measured tiny run's epoch
after the resume differed (loss 1.115 vs 1.093). The online-label-smoothing matrix
restarts uniform.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import radtl
from radtl import data as data_lib
from radtl import losses as losses_lib
from radtl import metrics as metrics_lib
from radtl import models as models_lib
from radtl import precision as precision_lib
from radtl import schedules as schedules_lib
from radtl.config import RUN_FILES
from radtl.config import TrainConfig
from radtl.config import best_index
from radtl.config import monitor_mode
from radtl.config import run_status
from radtl.config import write_json

__all__ = ["run", "evaluate", "predict", "RunDirectoryError", "TrainingDivergedError", "run_status"]

logger = logging.getLogger(__name__)


class RunDirectoryError(FileExistsError):
    """The run directory is in a state that does not allow the requested action."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


@keras.saving.register_keras_serializable(package="radtl")
class PositiveClassAUC(keras.metrics.AUC):
    """ROC AUC of the positive class (index 1) for integer labels and (B, 2) probabilities.

    The anchors' `keras.metrics.AUC` on one-hot labels is a micro average over both
    columns; this metric scores only P(class 1), as the binary ROC AUC does.
    """

    def __init__(self, num_thresholds=1000, name="auc", **kwargs):
        super().__init__(num_thresholds=num_thresholds, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.reshape(y_true, (-1,))
        return super().update_state(y_true, y_pred[:, 1], sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="radtl")
class MacroOneVsRestAUC(keras.metrics.AUC):
    """Macro average over classes of the one-vs-rest ROC AUC, for integer labels."""

    def __init__(self, num_classes, num_thresholds=1000, name="auc", **kwargs):
        super().__init__(num_thresholds=num_thresholds, name=name, multi_label=True,
                         num_labels=num_classes, **kwargs)
        self.num_classes = num_classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), self.num_classes)
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        for key in ("multi_label", "num_labels", "label_weights"):
            config.pop(key, None)
        return {**config, "num_classes": self.num_classes}


class _AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose backup survives a kill at any moment.

    Keras writes `latest.weights.h5` in place, so a kill during the write leaves a
    corrupt file and the run cannot resume. Here each backup is a new weights file,
    written under a temporary name and renamed, and the metadata (epoch and file name,
    itself replaced atomically) is updated only after it: the metadata always points
    to a complete weights file of the epoch it names. The metadata also keeps the
    random layers' seed-generator states, which weight files leave out.
    """

    def _save_model(self):
        backup_dir = Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{self._current_epoch:05d}.weights.h5"
        tmp = backup_dir / f"incomplete-{name}"
        self.model.save_weights(str(tmp), overwrite=True)
        os.replace(tmp, backup_dir / name)
        write_json(self._training_metadata_path, {
            "epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name,
            "seed_states": [np.asarray(v).tolist() for v in self._seed_states()]})
        for old in backup_dir.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def _load_model(self):
        path = Path(self._training_metadata_path)
        if not path.exists():
            return
        metadata = json.loads(path.read_text())
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(Path(self.backup_dir) / metadata["weights"]))
        for variable, value in zip(self._seed_states(), metadata.get("seed_states", [])):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self.model._initial_epoch = metadata["epoch"]

    def _seed_states(self):
        # Random layers' (e.g. Dropout) seed-generator states: `save_weights` leaves
        # them out, and without them a resumed run would draw other dropout masks.
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]


class _NaNGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/inf loss and remembers where."""

    def on_train_begin(self, logs=None):
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self._epoch + 1, batch + 1, float(loss))
            self.model.stop_training = True


# ---------------------------------------------------------------------------- run dir

def _status(run_dir: Path) -> str:
    """`run_status`, refusing a non-empty directory that is not a run directory."""
    status = run_status(run_dir)
    if status == "new" and run_dir.exists() and any(p.name != RUN_FILES["error"] for p in run_dir.iterdir()):
        raise RunDirectoryError(
            f"{run_dir} exists, is not empty and holds no {RUN_FILES['config']}: it is not a radtl run "
            "directory. Choose another output directory.")
    return status


def _package_versions() -> dict[str, str]:
    import sklearn
    import tensorflow_datasets as tfds

    return {"radtl": radtl.__version__, "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "tensorflow_datasets": tfds.__version__,
            "scikit_learn": sklearn.__version__, "pandas": pd.__version__, "platform": platform.platform()}


def _write_json(path: Path, payload) -> None:
    write_json(path, payload, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def _claim_run_dir(config: TrainConfig, run_dir: Path, resume: bool) -> str:
    status = _status(run_dir)
    if status == "new":
        return status
    if not resume:
        raise RunDirectoryError(
            f"{run_dir} already holds a {status} run. Pass resume=True (CLI: --resume) to continue an "
            f"unfinished run, or choose another output directory; radtl never overwrites a run.")
    recorded = TrainConfig.load(run_dir)
    if recorded != config:
        differing = {k: (v, config.to_dict()[k]) for k, v in recorded.to_dict().items() if config.to_dict()[k] != v}
        raise RunDirectoryError(
            f"Cannot resume {run_dir}: its recorded config differs in {sorted(differing)} "
            f"(recorded vs requested: {differing}). Resume with the recorded config "
            f"(`TrainConfig.load(run_dir)`, CLI: `train --resume --out {run_dir}` without other options).")
    return status


# ---------------------------------------------------------------------------- build

def _strategy() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        logger.info("Training on %d GPUs with MirroredStrategy.", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _learning_rate(config: TrainConfig, steps_per_epoch: int):
    if config.lr_decay == "constant":
        return config.learning_rate
    if config.lr_decay == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=config.min_lr_ratio)
    raise ValueError(f"`lr_decay` must be one of ('constant', 'cosine'). Received: lr_decay={config.lr_decay!r}")


_OPTIMIZERS = {
    "adam": lambda c, lr: schedules_lib.optimizers.Adam(learning_rate=lr),
    "adamw": lambda c, lr: schedules_lib.optimizers.AdamW(learning_rate=lr, weight_decay=c.weight_decay),
    "sgd": lambda c, lr: schedules_lib.optimizers.SGD(learning_rate=lr, momentum=c.momentum, nesterov=True,
                                                      weight_decay=c.weight_decay or None),
}


def _optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    if config.optimizer not in _OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {sorted(_OPTIMIZERS)}. Received: optimizer={config.optimizer!r}")
    return _OPTIMIZERS[config.optimizer](config, _learning_rate(config, steps_per_epoch))


def _loss(config: TrainConfig, num_classes: int):
    options = dict(config.loss_options)
    if config.loss == "ols":
        options.setdefault("num_classes", num_classes)
    return losses_lib.get(config.loss, **options)


def _auc_metric(num_classes: int) -> keras.metrics.Metric:
    return PositiveClassAUC() if num_classes == 2 else MacroOneVsRestAUC(num_classes)


def _best_so_far(config: TrainConfig, run_dir: Path):
    """The best `monitor` value of the epochs an unfinished run already has (None if none).

    A resumed ModelCheckpoint must only replace `best.keras` with a better epoch.
    """
    path = run_dir / RUN_FILES["history"]
    if not path.exists() or not (run_dir / RUN_FILES["checkpoint"]).exists():
        return None
    history = pd.read_csv(path)
    if config.monitor not in history.columns or history.empty:
        return None
    return float(history[config.monitor].iloc[best_index(history[config.monitor], config.monitor)])


def _callbacks(config, run_dir: Path, loss, train_ds, resumed: bool) -> list[keras.callbacks.Callback]:
    schedule_options = dict(config.schedule_options)
    if schedules_lib.needs_training_data(config.schedule):
        schedule_options["data"] = train_ds  # Auto-RGN measures gradients on training batches
    callbacks = [schedules_lib.get(config.schedule, **schedule_options)]
    if hasattr(loss, "callback"):
        callbacks.append(loss.callback())
    # BackupAndRestore comes last: at an epoch's end the checkpoint and the history row
    # are written before the backup, so a kill in between repeats that epoch's row
    # (deduplicated when read) rather than losing it.
    callbacks += [
        keras.callbacks.ModelCheckpoint(str(run_dir / RUN_FILES["checkpoint"]), monitor=config.monitor,
                                        mode=monitor_mode(config.monitor), save_best_only=True, verbose=0,
                                        initial_value_threshold=_best_so_far(config, run_dir) if resumed else None),
        keras.callbacks.CSVLogger(str(run_dir / RUN_FILES["history"]), append=resumed),
        keras.callbacks.TensorBoard(str(run_dir / RUN_FILES["tensorboard"])),
        _NaNGuard(),
        _AtomicBackupAndRestore(str(run_dir / RUN_FILES["backup"])),
    ]
    return callbacks


# ---------------------------------------------------------------------------- predict

def _predict_split(model, config: TrainConfig, split: str) -> pd.DataFrame:
    ds = data_lib.load(config.dataset, split, fold=config.fold, image_size=config.image_size,
                       batch_size=config.batch_size, data_dir=config.data_dir, with_metadata=True)
    names = data_lib.class_names(config.dataset, config.fold, data_dir=config.data_dir)
    frames = []
    for images, labels, meta in ds:
        probs = np.asarray(model(images, training=False), dtype=np.float64)
        frame = pd.DataFrame({"filename": [f.decode() for f in meta["filename"].numpy()],
                              "exam_id": [e.decode() for e in meta["exam_id"].numpy()],
                              "label": labels.numpy().astype(int)})
        for k, name in enumerate(names):
            frame[f"prob_{name}"] = probs[:, k]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _probabilities(predictions: pd.DataFrame) -> np.ndarray:
    return predictions[[c for c in predictions.columns if c.startswith("prob_")]].to_numpy()


def _load_best(run_dir: Path) -> keras.Model:
    path = run_dir / RUN_FILES["checkpoint"]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the run in {run_dir} saved no checkpoint "
                                "(was it killed before its first epoch ended? continue it with --resume).")
    return keras.models.load_model(path, compile=False)


def _evaluate_into(run_dir: Path, model, config: TrainConfig, splits, metrics: dict) -> dict:
    for split in splits:
        predictions = _predict_split(model, config, split)
        predictions.to_csv(run_dir / RUN_FILES["predictions"].format(split=split), index=False)
        metrics[split] = metrics_lib.evaluate_predictions(predictions["label"].to_numpy(),
                                                          _probabilities(predictions))
    return metrics


# ---------------------------------------------------------------------------- public

def run(config: TrainConfig, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains one run into `run_dir` and returns its metrics.

    Args:
        config: TrainConfig. What to train.
        run_dir: path. The run directory (created; never overwritten).
        resume: bool. Continue an unfinished run in `run_dir` (a finished one is
            returned as is). Defaults to False.
        verbose: Keras `fit` verbosity ("auto", 0, 1, 2). Defaults to "auto"
            (progress bars).

    Returns:
        The metrics dict also written to `metrics.json`: `monitor`, `best_epoch`
        (1-based), `best_value`, and `val` / `test` reports from
        `radtl.metrics.evaluate_predictions`.

    Raises:
        RunDirectoryError: `run_dir` holds a run and `resume` is False, or the
            recorded config differs from `config`.
        TrainingDivergedError: the loss became NaN/inf (nothing is lost: the run
            directory keeps its history and best checkpoint so far).
    """
    run_dir = Path(run_dir)
    status = _claim_run_dir(config, run_dir, resume)
    if status == "finished":
        logger.info("%s is finished; returning its metrics.", run_dir)
        return json.loads((run_dir / RUN_FILES["metrics"]).read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    previous_policy = keras.config.dtype_policy()
    try:
        return _run(config, run_dir, status, verbose)
    finally:
        keras.config.set_dtype_policy(previous_policy)  # the run's policy does not leak out


def _run(config: TrainConfig, run_dir: Path, status: str, verbose) -> dict:
    tf.config.experimental.enable_op_determinism()
    choice = precision_lib.configure(config.precision, config.xla)
    strategy = _strategy()

    names = data_lib.class_names(config.dataset, config.fold, data_dir=config.data_dir)
    train_ds = data_lib.load(config.dataset, "train", fold=config.fold, image_size=config.image_size,
                             batch_size=config.batch_size, augment=config.augment, seed=config.seed,
                             data_dir=config.data_dir)
    val_ds = data_lib.load(config.dataset, "val", fold=config.fold, image_size=config.image_size,
                           batch_size=config.batch_size, data_dir=config.data_dir)
    builder = data_lib.builder(config.dataset, config.fold, config.data_dir)
    split_sizes = {split: int(info.num_examples) for split, info in builder.info.splits.items()}
    steps_per_epoch = math.ceil(split_sizes["train"] / config.batch_size)

    if status == "new":
        _write_json(run_dir / RUN_FILES["config"], {
            "config": config.to_dict(),
            "resolved": {
                "precision": {"policy": choice.policy, "xla": choice.xla, "device": choice.device,
                              "reason": choice.reason},
                "strategy": type(strategy).__name__,
                "replicas": strategy.num_replicas_in_sync,
                "class_names": names,
                "split_sizes": split_sizes,
                "versions": _package_versions(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            },
        })

    # Seed right before anything random is created: preparing a dataset (first use)
    # draws from Python's global RNG, which would shift every draw after it.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = models_lib.build_model(
            config.backbone, config.weights, head=config.head, num_classes=len(names),
            input_shape=(config.image_size, config.image_size, 3), preprocessing=config.preprocessing,
            weights_dir=config.weights_dir, **config.head_options)
        loss = _loss(config, len(names))
        model.compile(optimizer=_optimizer(config, steps_per_epoch), loss=loss,
                      metrics=[_auc_metric(len(names)), keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=choice.xla)
    callbacks = _callbacks(config, run_dir, loss, train_ds, resumed=status == "unfinished")
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=verbose,
              shuffle=False)  # the pipeline shuffles, seeded

    guard = next(c for c in callbacks if isinstance(c, _NaNGuard))
    if guard.where is not None:
        epoch, batch, value = guard.where
        raise TrainingDivergedError(
            f"The training loss became {value} at epoch {epoch}, batch {batch}; training stopped. {run_dir} keeps "
            f"the history and the best checkpoint so far. Try a lower learning_rate (now {config.learning_rate}), "
            "precision='float32', or check the data for corrupt images.")
    shutil.rmtree(run_dir / RUN_FILES["backup"], ignore_errors=True)

    history = pd.read_csv(run_dir / RUN_FILES["history"]).drop_duplicates("epoch", keep="last")
    best = best_index(history[config.monitor], config.monitor)
    metrics = {"monitor": config.monitor, "best_epoch": int(history["epoch"].iloc[best]) + 1,
               "best_value": float(history[config.monitor].iloc[best])}
    metrics = _evaluate_into(run_dir, _load_best(run_dir), config, ("val", "test"), metrics)
    _write_plots(run_dir)
    _write_json(run_dir / RUN_FILES["metrics"], metrics)
    return metrics


def _write_plots(run_dir: Path) -> None:
    try:
        from radtl import analysis
    except ImportError as err:  # matplotlib missing: the run itself is still complete
        logger.warning("No plots for %s: %s", run_dir, err)
        return
    analysis.write_run_plots(run_dir)


def evaluate(run_dir, split: str = "test") -> dict:
    """Re-evaluates a finished run's best checkpoint on one split.

    Writes `predictions_{split}.csv` and updates `metrics.json[split]`.

    Args:
        run_dir: path. A finished run directory.
        split: str. "train", "val" or "test". Defaults to "test".

    Returns:
        The `radtl.metrics.evaluate_predictions` report of that split.
    """
    run_dir = Path(run_dir)
    if _status(run_dir) != "finished":
        raise RunDirectoryError(f"{run_dir} is not a finished run (no {RUN_FILES['metrics']}); "
                                "finish it with `train --resume` first.")
    config = TrainConfig.load(run_dir)
    metrics = json.loads((run_dir / RUN_FILES["metrics"]).read_text())
    metrics = _evaluate_into(run_dir, _load_best(run_dir), config, (split,), metrics)
    _write_json(run_dir / RUN_FILES["metrics"], metrics)
    return metrics[split]


def predict(run_dir, image_paths) -> pd.DataFrame:
    """Class probabilities of a run's best checkpoint for image files.

    Images are read as the pipeline reads them (RGB, resized to the run's
    `image_size`); the model applies its own preprocessing.

    Args:
        run_dir: path. A run directory with a checkpoint.
        image_paths: iterable of paths to PNG or JPEG files.

    Returns:
        DataFrame with `filename`, `prob_<class>` per class, and `predicted`.
    """
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir)
    names = json.loads((run_dir / RUN_FILES["config"]).read_text())["resolved"]["class_names"]
    model = _load_best(run_dir)
    rows = []
    for path in map(Path, image_paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist or is not a file.")
        try:
            image = data_lib.decode_image(tf.io.read_file(str(path)), config.image_size)
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(f"{path} is not a readable PNG/JPEG image: {err.message}") from None
        probs = np.asarray(model(tf.cast(image, tf.float32)[None], training=False), dtype=np.float64)[0]
        rows.append({"filename": str(path), **{f"prob_{n}": p for n, p in zip(names, probs)},
                     "predicted": names[int(probs.argmax())]})
    return pd.DataFrame(rows)
