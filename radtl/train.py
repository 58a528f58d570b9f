"""One study run, end to end: `run(config, run_dir)` trains, selects, evaluates, records.

The recipe, top to bottom (what `radtl train` does):

1. Check before creating anything (`plan`): the config is valid (`TrainConfig`
   validates itself), the dataset fold is built (`radtl.data.open`), the weight file
   is there and is HDF5 (`radtl.pretrained.check_available`). A failed check leaves
   no run directory.
2. Turn on TensorFlow op determinism; choose precision and XLA
   (`radtl.precision.configure`) and, on a machine with several GPUs, a
   `tf.distribute.MirroredStrategy`; seed everything from `config.seed` just before
   the model is built (the input pipeline has its own explicit seeds).
3. Build the model (`radtl.build_model`: preprocessing, backbone, head), the loss and
   the schedule from their registries with one `RunContext` (number of classes,
   training batches), the optimizer, and compile with a positive-class AUC metric.
4. `fit` with the schedule and the loss's callbacks (for the epochs in which the
   backbone stays frozen and nothing is augmented, all of `lp` or `freezeall` without
   augmentation, the probe of `lp-ft`, the head-only stage of gradual unfreezing, its
   features are computed once per split and only the head is fitted, then the whole
   model for the remaining epochs, with one optimizer: the same result, far less work;
   `radtl.probing`), a checkpoint of the best epoch by
   `monitor` (finite weights only, no optimizer state), CSV history, TensorBoard logs,
   `keras.callbacks.TerminateOnNaN` and a kill-safe BackupAndRestore (`resume=True`).
5. Check the run's health (`radtl.health`): a NaN/inf loss, a loss stuck far above
   chance, or one constant prediction for every image marks the run failed
   (`failed.json`, with the reason) instead of reporting an AUC.
6. Predict the val and test splits with the best checkpoint; write predictions, plots
   and `metrics.json` (last); only then delete the backup, so a kill at any point
   resumes without losing epochs. A run with a `confounder` (Source Matters) trains
   with it in a seeded fraction of the positive training and validation images and is
   also tested with it on every negative (`test_confounded_negatives`, the inverted,
   out-of-distribution test) and every positive test image (`test_confounded_positives`);
   `test_clean` is the plain test set.

Files: `radtl.rundir.RunDir`. A run directory is never overwritten: starting a run
into a directory that holds one is an error unless `resume=True`, and resuming checks
that the config is the one recorded. A directory whose start failed before the first
epoch ended (no history, no backup) may be reused by a corrected command.

Resuming restores weights, optimizer state, dropout seed states, the loss's own state
(the online-label-smoothing matrix) and the epoch counter from the last completed
epoch, and moves the input pipeline's shuffle and augmentation streams on to that
epoch (`_skip_epochs`): a resumed run ends with the weights of an uninterrupted one
(tested to 1e-5: killed in either phase of a cached `lp-ft`, and an Auto-RGN run,
whose schedule reads training batches itself each epoch from the same pipeline).
"""
from __future__ import annotations

import dataclasses
import datetime
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
from radtl import augmentation
from radtl import data as data_lib
from radtl import imaging
from radtl import health
from radtl import keras_metrics
from radtl import losses as losses_lib
from radtl import metrics as metrics_lib
from radtl import models as models_lib
from radtl import precision as precision_lib
from radtl import pretrained
from radtl import probing
from radtl import schedules as schedules_lib
from radtl.config import TrainConfig
from radtl.registry import RunContext
from radtl.rundir import RunDir
from radtl.rundir import RunDirectoryError
from radtl.rundir import best_index
from radtl.rundir import monitor_mode
from radtl.rundir import probabilities

__all__ = ["run", "plan", "Plan", "evaluate", "predict", "RunDirectoryError", "RunFailedError",
           "TrainingDivergedError"]

logger = logging.getLogger(__name__)


class RunFailedError(RuntimeError):
    """The run diverged, saturated or collapsed: it is marked failed and has no result.

    Attributes:
        kind: str. "diverged", "saturated" or "collapsed".
        run_dir: Path. The failed run's directory (history and reason kept there).
    """

    def __init__(self, message, kind, run_dir):
        super().__init__(message)
        self.kind = kind
        self.run_dir = run_dir


TrainingDivergedError = RunFailedError  # the name of earlier releases


# ---------------------------------------------------------------------------- checkpoints

class _AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose backup survives a kill at any moment.

    Keras writes `latest.weights.h5` in place, so a kill during the write leaves a
    corrupt file and the run cannot resume. Here each backup is a new weights file,
    written under a temporary name and renamed, and the metadata (epoch and file name,
    itself replaced atomically) is updated only after it: the metadata always points
    to a complete weights file of the epoch it names. The metadata also keeps the
    random layers' seed-generator states, which weight files leave out, and the values of
    `state` (variables outside the model, e.g. the OLS loss's soft-label matrix). The
    trainer deletes the backup only after `metrics.json` exists (`delete_checkpoint=False`).
    """

    def __init__(self, backup_dir, state=()):
        super().__init__(backup_dir, delete_checkpoint=False)
        self._state = list(state)

    @staticmethod
    def read_metadata(backup_dir) -> dict | None:
        """A backup's metadata (`epoch`: the epochs it holds, `weights`, ...), None without one."""
        import json

        path = Path(backup_dir) / "training_metadata.json"  # Keras' `_training_metadata_path`
        return json.loads(path.read_text()) if path.is_file() else None

    @classmethod
    def saved_epochs(cls, backup_dir) -> int | None:
        """How many epochs a backup holds, or None without one."""
        metadata = cls.read_metadata(backup_dir)
        return None if metadata is None else int(metadata["epoch"])

    def _save_model(self):
        from radtl.rundir import write_json

        backup_dir = Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{self._current_epoch:05d}.weights.h5"
        tmp = backup_dir / f"incomplete-{name}"
        self.model.save_weights(str(tmp), overwrite=True)
        os.replace(tmp, backup_dir / name)
        write_json(self._training_metadata_path, {
            "epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name,
            "seed_states": [np.asarray(v).tolist() for v in self._seed_states()],
            "state": [np.asarray(v).tolist() for v in self._state]})
        for old in backup_dir.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def _load_model(self):
        metadata = self.read_metadata(self.backup_dir)
        if metadata is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(Path(self.backup_dir) / metadata["weights"]))
        for variable, value in zip(self._seed_states(), metadata.get("seed_states", [])):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        for variable, value in zip(self._state, metadata.get("state", [])):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self.model._initial_epoch = metadata["epoch"]

    def _seed_states(self):
        # Random layers' (e.g. Dropout) seed-generator states: `save_weights` leaves
        # them out, and without them a resumed run would draw other dropout masks.
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]


def _all_finite(model) -> bool:
    return all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in model.weights)


def save_inference_model(model: keras.Model, path) -> None:
    """Saves `model` as a `.keras` file without optimizer, loss or metrics, atomically.

    The file holds what inference needs (architecture, preprocessing, weights): a
    checkpoint of VGG16 at 32 px shrinks from 177 MB (with Adam's two moments) to a
    third of that. It is written under a temporary name and renamed.
    """
    path = Path(path)
    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    tmp = path.with_name(f".incomplete-{path.name}")
    inference.save(tmp)
    os.replace(tmp, path)


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint of the best epoch that never keeps non-finite weights.

    Saves with `save_inference_model` (no optimizer state: resuming uses the backup).
    An epoch whose monitored value or weights are NaN/inf is never saved. `export`:
    the model saved, when `fit` trains a part of it (the head, on cached features).
    """

    def __init__(self, *args, export=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.export = export

    def _save_model(self, epoch, batch, logs):
        current = (logs or {}).get(self.monitor)
        if current is None or not math.isfinite(float(current)):
            return
        if not self._is_improvement(current, self.best):
            return
        if not _all_finite(self.model):
            logger.warning("Epoch %d: weights are not finite; the checkpoint is not replaced.", epoch + 1)
            return
        self.best = current
        save_inference_model(self.export or self.model, self.filepath)


# ---------------------------------------------------------------------------- plan

@dataclasses.dataclass
class Plan:
    """What a run will use, checked before anything is created.

    Attributes:
        config: TrainConfig. The validated config.
        dataset: `radtl.data.DatasetFold`. The opened dataset fold.
        weights_file: Path or None. The weight file to load (None: random init, or a
            Keras-managed ImageNet file fetched through `keras.utils.get_file`).
    """

    config: TrainConfig
    dataset: object
    weights_file: Path | None

    def describe(self) -> str:
        """Human-readable lines: the resolved config, where the data and weights are."""
        lines = [f"{k}: {v!r}" for k, v in self.config.to_dict().items()]
        sizes = ", ".join(f"{k} {v}" for k, v in self.dataset.split_sizes.items())
        lines.append(f"dataset: {self.dataset.name}/fold{self.dataset.fold} in "
                     f"{self.dataset.builder.data_dir} ({sizes}; classes {self.dataset.class_names})")
        weights = self.weights_file or ("random initialisation" if self.config.weights is None
                                        else "Keras-managed file (downloaded to the Keras cache on first use)")
        lines.append(f"weights file: {weights}")
        return "\n".join(lines)


def plan(config: TrainConfig) -> Plan:
    """Checks everything a run needs without creating anything.

    Raises:
        radtl.data.DataError: the dataset fold is not built (with the command to build it).
        radtl.weights.WeightsError: the weight file is missing, an HTML page, truncated
            or does not match the manifest (with the fix).
    """
    dataset = data_lib.open(config.dataset, config.fold, config.data_dir)
    weights_file = pretrained.check_available(config.backbone, config.weights, config.weights_dir)
    return Plan(config, dataset, weights_file)


# ---------------------------------------------------------------------------- run dir

def _package_versions() -> dict[str, str]:
    import sklearn
    import tensorflow_datasets as tfds

    return {"radtl": radtl.__version__, "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "tensorflow_datasets": tfds.__version__,
            "scikit_learn": sklearn.__version__, "pandas": pd.__version__, "platform": platform.platform()}


def _aborted_start(run: RunDir) -> bool:
    """An unfinished run whose start failed before its first epoch ended."""
    return run.status == "unfinished" and not run.has_history() and not run.file("backup").exists()


def claim(config: TrainConfig, run: RunDir, resume: bool) -> str:
    """Checks that `run` may receive this run; returns "new", "unfinished" or "finished".

    Creates nothing. A finished run is returned as is only when resuming.

    Raises:
        RunDirectoryError: the directory holds another run, a failed run, or not a run.
    """
    status = run.check_usable()
    if status == "new" or _aborted_start(run):
        return "new"
    if status == "failed":
        failure = run.read_failure()
        raise RunDirectoryError(
            f"{run.path} holds a run that {failure['kind']}: {failure['reason']} It has no result and is not "
            "continued; start the corrected run in another directory.")
    if not resume:
        hint = ("continue it with --resume (resume=True)" if status == "unfinished"
                else "its results are final")
        raise RunDirectoryError(f"{run.path} already holds a {status} run ({hint}); choose another output "
                                "directory: radtl never overwrites a run.")
    recorded = run.read_config()
    differing = recorded.differences(config)
    if differing:
        raise RunDirectoryError(
            f"Cannot resume {run.path}: its recorded config differs in {sorted(differing)} (recorded vs requested: "
            f"{differing}). Resume with the recorded config (CLI: `radtl train --resume --out {run.path}` without "
            "other options).")
    return status


# ---------------------------------------------------------------------------- build

def _strategy() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        logger.info("Training on %d GPUs with MirroredStrategy.", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _learning_rate(config: TrainConfig, steps_per_epoch: int):
    if config.lr_decay == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=config.min_lr_ratio)
    return config.learning_rate


_OPTIMIZERS = {
    "adam": lambda c, lr: schedules_lib.optimizers.Adam(learning_rate=lr),
    "adamw": lambda c, lr: schedules_lib.optimizers.AdamW(learning_rate=lr, weight_decay=c.weight_decay),
    "sgd": lambda c, lr: schedules_lib.optimizers.SGD(learning_rate=lr, momentum=c.momentum, nesterov=True,
                                                      weight_decay=c.weight_decay or None),
}


def _callbacks(config, run: RunDir, schedule, loss, resumed: bool, export=None,
               backup_dir=None) -> list[keras.callbacks.Callback]:
    # BackupAndRestore comes last: at an epoch's end the checkpoint and the history row
    # are written before the backup, so a kill in between repeats that epoch's row
    # (de-duplicated when read) rather than losing it.
    return [
        *([schedule] if schedule is not None else []),
        *loss.callbacks(),
        keras.callbacks.TerminateOnNaN(),
        _BestCheckpoint(str(run.file("checkpoint")), monitor=config.monitor, mode=monitor_mode(config.monitor),
                        save_best_only=True, verbose=0, export=export,
                        initial_value_threshold=run.best_so_far(config.monitor) if resumed else None),
        _CSVLogger(str(run.file("history")), append=resumed),
        keras.callbacks.TensorBoard(str(run.file("tensorboard"))),
        _AtomicBackupAndRestore(str(backup_dir or run.file("backup")), state=loss.state_variables()),
    ]


class _CSVLogger(keras.callbacks.CSVLogger):
    """CSVLogger that, appending, keeps the file's columns aligned.

    Keras' CSVLogger writes the columns of this `fit`'s logs under whatever header the
    file has. Here, appending, a column the file lacks is added (the file rewritten once,
    atomically, earlier rows left empty there) and one this fit does not log is written
    empty, so a resumed run whose logs differ (another release, another phase) never
    shifts values into the wrong column.
    """

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and not self.append_header:
            header = pd.read_csv(self.filename, nrows=0).columns.tolist()
            added = sorted(k for k in (logs or {}) if k not in header)
            if added:
                self.csv_file.close()
                tmp = f"{self.filename}.tmp"
                pd.read_csv(self.filename).reindex(columns=header + added).to_csv(tmp, index=False)
                os.replace(tmp, self.filename)
                self.csv_file = open(self.filename, "a", newline="")  # noqa: SIM115 (closed by on_train_end)
            self.keys = [k for k in header + added if k != "epoch"]
        super().on_epoch_end(epoch, logs)


def _skip_epochs(dataset, epochs: int, strategy=None, passes_per_epoch: int = 0) -> None:
    """Moves a dataset's reshuffle and augmentation seed streams on by `epochs` epochs of `fit`.

    `shuffle(reshuffle_each_iteration=True)` and `Dataset.random(rerandomize_each_iteration=True)`
    draw new seeds each time an iterator is made, and Keras' epoch iterator makes them in its
    own rhythm (two per epoch in Keras 3.15: one for the epoch, one made at its end and
    dropped). The same iterator class is run here through `epochs` epochs without reading a
    batch, so a `fit` that starts at epoch `epochs` gets the orders and augmentations an
    uninterrupted run had there (tested on one device: a continued and a resumed run
    equal one `fit`). `passes_per_epoch`: the iterators something else makes on the
    dataset each epoch before `fit` reads it (Auto-RGN's one pass for its gradient
    norms, `FineTuningSchedule.train_data_passes_per_epoch`). `strategy`: the model's, as
    `fit` distributes the dataset with it.
    """
    if not epochs:
        return
    from keras.src.backend.tensorflow.trainer import TFEpochIterator  # what `fit` uses (Keras 3.15)

    iterator = TFEpochIterator(x=dataset, distribute_strategy=strategy or tf.distribute.get_strategy(),
                               shuffle=False)
    iterator.reset()
    for _ in range(epochs):
        for _ in range(passes_per_epoch):
            iter(dataset)
        if iterator.num_batches is None:  # unknown size: `fit` makes one iterator per epoch
            iter(iterator._get_iterator())
            continue
        for _ in iterator:  # each step yields the tf.data iterator; nothing is read
            pass


class _OnModel(keras.callbacks.Callback):
    """Runs a callback for `model` while `fit` trains another model that shares its layers.

    While the head is fitted on cached features, the run's schedule still works on the
    whole model (its trainable flags, the shared optimizer built on every variable the run
    will train, its `stage` and `lr_*` logs), planned over all `epochs` of the run, so the
    history and the optimizer state are those of an end-to-end run.
    """

    def __init__(self, callback, model, epochs: int):
        super().__init__()
        self._callback, self._target, self._epochs = callback, model, epochs

    def set_model(self, model):
        self._callback.set_model(self._target)

    def set_params(self, params):
        self._callback.set_params({**params, "epochs": self._epochs})


def _forward(hook):
    return lambda self, *args, **kwargs: getattr(self._callback, hook)(*args, **kwargs)


for _hook in [name for name in vars(keras.callbacks.Callback) if name.startswith("on_")]:
    setattr(_OnModel, _hook, _forward(_hook))


def _chance_loss(config: TrainConfig, context: RunContext) -> float:
    """The run's loss for uniform predictions (1/K each) on one training batch: what learning nothing scores.

    A fresh loss object is used, so stateful losses (OLS) are not disturbed.
    """
    loss = losses_lib.REGISTRY.build(config.loss, config.loss_options, context)
    _, labels = next(iter(context.train_data.take(1)))
    uniform = tf.fill((tf.shape(labels)[0], context.num_classes), 1.0 / context.num_classes)
    return float(loss(labels, uniform))


# ---------------------------------------------------------------------------- predict

def _predict_split(model, config: TrainConfig, dataset, split: str, confounding=None) -> pd.DataFrame:
    ds = dataset.load(split, image_size=config.image_size, batch_size=config.batch_size,
                      resize_method=config.resize_method, with_metadata=True, confounding=confounding)
    frames = []
    for images, labels, meta in ds:
        probs = np.asarray(model(images, training=False), dtype=np.float64)
        frame = pd.DataFrame({"filename": [f.decode() for f in meta["filename"].numpy()],
                              "exam_id": [e.decode() for e in meta["exam_id"].numpy()],
                              "label": labels.numpy().astype(int)})
        for k, name in enumerate(dataset.class_names):
            frame[f"prob_{name}"] = probs[:, k]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


#: Test sets of a run with a confounder: metrics key -> which test images get it.
CONFOUNDED_TEST_SETS = {"test_confounded_negatives": "negatives", "test_confounded_positives": "positives"}


def _confounding(config: TrainConfig, dataset, split: str, which: str = "fraction"):
    """The `Confounding` of one split: a seeded `fraction` of its positives (training and
    validation, as the confounded training data of "Source Matters"), or all its
    "negatives" / "positives" (the test sets). None when the run has no confounder."""
    if not config.confounder:
        return None
    from radtl import confounders

    spec = dict(config.confounder)
    kind, fraction = spec.pop("kind"), spec.pop("fraction")
    filenames, labels = dataset.labels(split)
    if which == "fraction":
        chosen = confounders.select(labels, fraction, seed=config.seed)
    else:
        chosen = labels == (1 if which == "positives" else 0)
    return data_lib.Confounding(kind, spec, frozenset(np.asarray(filenames)[chosen].tolist()), seed=config.seed)


def _evaluation_confounding(config: TrainConfig, dataset, split: str):
    """What a split is evaluated with: validation as trained (the confounder in a fraction
    of its positives), train and test clean (the confounded test sets are separate)."""
    return _confounding(config, dataset, split) if split == "val" else None


# ---------------------------------------------------------------------------- public

def run(config: TrainConfig, run_dir, *, resume: bool = False, verbose="auto", progress=None) -> dict:
    """Trains one run into `run_dir` and returns its metrics.

    Args:
        config: TrainConfig. What to train.
        run_dir: path. The run directory (created; never overwritten).
        resume: bool. Continue an unfinished run in `run_dir` (a finished one is
            returned as is). Defaults to False.
        verbose: Keras `fit` verbosity ("auto", 0, 1, 2). Defaults to "auto".
        progress: callable(str) or None. Receives one line per step after training
            (predicting, plotting), so long silent phases show progress. Defaults to
            `logger.info`.

    Returns:
        The metrics dict also written to `metrics.json`: `monitor`, `best_epoch`
        (1-based), `best_value`, and `val` / `test` reports from
        `radtl.metrics.evaluate_predictions`.

    Raises:
        RunDirectoryError: `run_dir` holds a run and `resume` is False, the recorded
            config differs from `config`, or the run failed earlier.
        RunFailedError: the run diverged, saturated or collapsed (`failed.json` holds
            the reason; history and the best finite checkpoint are kept).
        radtl.data.DataError, radtl.weights.WeightsError: see `plan` (raised before
            the run directory is created).
    """
    run_dir = RunDir(run_dir)
    status = claim(config, run_dir, resume)
    if status == "finished":
        logger.info("%s is finished; returning its metrics.", run_dir.path)
        return run_dir.read_metrics()
    checked = plan(config)
    run_dir.create()
    # The run's dtype policy and op determinism do not leak out (op determinism has no
    # public getter or switch-off in TensorFlow 2.21: its framework module has both).
    from tensorflow.python.framework import config as tf_framework_config

    previous_policy = keras.config.dtype_policy()
    was_deterministic = tf_framework_config.is_op_determinism_enabled()
    try:
        return _run(checked, run_dir, status, verbose, progress or logger.info)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if not was_deterministic:
            tf_framework_config.disable_op_determinism()


def _run(checked: Plan, run: RunDir, status: str, verbose, progress) -> dict:
    config, dataset = checked.config, checked.dataset
    tf.config.experimental.enable_op_determinism()
    choice = precision_lib.configure(config.precision, config.xla)
    strategy = _strategy()
    names = dataset.class_names
    augment_on = data_lib.resolve_augment_on(config.augment_on)  # "auto": on the GPU when there is one
    train_ds = dataset.load("train", image_size=config.image_size, batch_size=config.batch_size,
                            augment=config.augment, augment_on=augment_on, seed=config.seed,
                            resize_method=config.resize_method, confounding=_confounding(config, dataset, "train"))
    val_ds = dataset.load("val", image_size=config.image_size, batch_size=config.batch_size,
                          resize_method=config.resize_method, confounding=_confounding(config, dataset, "val"))
    steps_per_epoch = math.ceil(dataset.split_sizes["train"] / config.batch_size)
    on_device = bool(config.augment) and augment_on == "device"
    context = RunContext(num_classes=len(names), class_names=tuple(names),
                         train_data=_warped(train_ds) if on_device else train_ds,
                         steps_per_epoch=steps_per_epoch, epochs=config.epochs)

    # `build_from_config` seeds right before anything random is created: preparing a
    # dataset (first use) draws from Python's global RNG, which would shift every draw after it.
    with strategy.scope():
        model = models_lib.build_from_config(config, num_classes=len(names))
        loss = losses_lib.REGISTRY.build(config.loss, config.loss_options, context)
        schedule = schedules_lib.REGISTRY.build(config.schedule, config.schedule_options, context)
        if on_device:  # the batches come un-warped: the train step warps them where the model runs
            augmentation.warp_in_train_step(model)
        optimizer = _OPTIMIZERS[config.optimizer](config, _learning_rate(config, steps_per_epoch))
        # A backbone with random layers (EfficientNet's dropout) still draws in a frozen
        # end-to-end step: its features are not fixed, so they are not cached.
        cached_epochs = 0 if probing.random_in_training(models_lib.get_backbone(model)) else \
            probing.cached_epochs(config)
        extractor, head = probing.split_model(model) if cached_epochs else (None, None)
        # One optimizer for the whole run: the head fitted on cached features and the
        # whole model share it, so its state and step count carry over between the phases.
        for trained in (model, head) if cached_epochs else (model,):
            # The head gets `model.optimizer`: under mixed_float16 `compile` wraps the
            # optimizer in a LossScaleOptimizer, and both phases share that wrapper too.
            trained.compile(optimizer=optimizer if trained is model else model.optimizer, loss=loss,
                            jit_compile=choice.xla,
                            metrics=[keras_metrics.auc_metric(len(names)),
                                     keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    if status == "new":
        run.write_config(config.to_dict(), {
            "precision": dataclasses.asdict(choice),
            "strategy": type(strategy).__name__,
            "replicas": strategy.num_replicas_in_sync,
            "class_names": names,
            "split_sizes": dataset.split_sizes,
            "data": dataset.provenance(),
            "cached_features": cached_epochs == config.epochs,
            "cached_epochs": cached_epochs,
            "augment_on": augment_on,
            "weights_file": str(checked.weights_file) if checked.weights_file else None,
            "versions": _package_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        })
    backup = run.file("backup")
    resumed = status == "unfinished"
    stopped = False
    # A run cached throughout backs up into `backup` (as earlier releases did); a run with
    # epochs on images after the cached ones keeps the cached phase's backup apart.
    probe_backup = backup if cached_epochs == config.epochs else backup / "probe"
    resume_at = _AtomicBackupAndRestore.saved_epochs(backup)  # None: the whole model has no backup yet
    if cached_epochs and (probe_backup == backup or resume_at is None):
        # Phase 1: the backbone is frozen and nothing is augmented for the first
        # `cached_epochs` epochs (`lp`, `freezeall`: all of them; `lp-ft`: the probe):
        # its features once per split, the head fitted on them (`radtl.probing`).
        progress(f"The backbone stays frozen and nothing is augmented for {cached_epochs} of {config.epochs} "
                 "epochs: computing its features once per split ...")
        load = dict(image_size=config.image_size, batch_size=config.batch_size, resize_method=config.resize_method)
        fit_train = probing.feature_dataset(
            extractor, dataset.load("train", shuffle=False, confounding=_confounding(config, dataset, "train"),
                                    **load), shuffle_seed=config.seed)
        fit_val = probing.feature_dataset(extractor, val_ds)
        _skip_epochs(fit_train, _AtomicBackupAndRestore.saved_epochs(probe_backup) or 0, strategy)
        head.fit(fit_train, validation_data=fit_val, epochs=cached_epochs, verbose=verbose, shuffle=False,
                 callbacks=_callbacks(config, run, _OnModel(schedule, model, config.epochs), loss, resumed,
                                      export=model, backup_dir=probe_backup))
        stopped, resumed = head.stop_training, True
    if cached_epochs < config.epochs and not stopped:
        # The whole model on images (every epoch, or those after the cached ones). The
        # pipeline's shuffle and augmentation streams are first moved on to the epoch
        # `fit` starts at, so a resumed or continued run sees what an uninterrupted one would.
        _skip_epochs(train_ds, cached_epochs if resume_at is None else resume_at, strategy,
                     getattr(schedule, "train_data_passes_per_epoch", 0))
        model.fit(train_ds, validation_data=val_ds, initial_epoch=cached_epochs, epochs=config.epochs,
                  callbacks=_callbacks(config, run, schedule, loss, resumed), verbose=verbose,
                  shuffle=False)  # the pipeline shuffles, seeded

    history = run.history()
    run.write_history(history)  # de-duplicated once (a resumed run appends, a kill may repeat a row)
    failure = (health.check_history(history["loss"], learning_rate=config.learning_rate)
               or health.check_loss_level(float(history["loss"].iloc[-1]), _chance_loss(config, context),
                                          learning_rate=config.learning_rate))
    if failure is None and config.monitor in history.columns and not history[config.monitor].notna().any():
        failure = health.Failure("diverged", f"`{config.monitor}` was never finite; no checkpoint was kept.")
    best = None
    if failure is None:
        best = best_index(history[config.monitor], config.monitor)
        metrics = {"monitor": config.monitor, "best_epoch": int(history["epoch"].iloc[best]) + 1,
                   "best_value": float(history[config.monitor].iloc[best])}
        model = run.load_model()
        for split in ("val", "test"):
            progress(f"Predicting the {split} split with the best checkpoint (epoch {metrics['best_epoch']}) ...")
            predictions = _predict_split(model, config, dataset, split, _evaluation_confounding(config, dataset, split))
            run.write_predictions(split, predictions)
            failure = health.check_predictions(probabilities(predictions), split)
            if failure is not None:
                break
            metrics[split] = metrics_lib.evaluate_predictions(predictions["label"].to_numpy(),
                                                              probabilities(predictions))
    if failure is None and config.confounder:
        metrics["test_clean"] = metrics["test"]
        for key, which in CONFOUNDED_TEST_SETS.items():
            progress(f"Predicting the test split with the confounder on all {which} ...")
            predictions = _predict_split(model, config, dataset, "test", _confounding(config, dataset, "test", which))
            run.write_predictions(key, predictions)
            metrics[key] = metrics_lib.evaluate_predictions(predictions["label"].to_numpy(),
                                                            probabilities(predictions))
    if failure is not None:
        run.write_failure(failure.kind, failure.reason)
        shutil.rmtree(run.file("backup"), ignore_errors=True)
        raise RunFailedError(f"The run {failure.kind}: {failure.reason} Marked failed in "
                             f"{run.file('failure')}; its history is kept.", failure.kind, run.path)
    progress("Drawing the run's plots ...")
    _write_plots(run)
    run.write_metrics(metrics)
    shutil.rmtree(run.file("backup"), ignore_errors=True)  # only now: a kill before metrics.json resumes
    return metrics


def _warped(train_ds):
    """The `augment_on="device"` training stream warped in tf.data: `(images, labels)` for
    components that read training batches themselves (Auto-RGN's gradient norms)."""
    return train_ds.map(lambda inputs, labels: (augmentation.warp_inputs(inputs), labels))


def _write_plots(run: RunDir) -> None:
    try:
        from radtl import plots
    except ImportError as err:  # matplotlib missing: the run itself is still complete
        logger.warning("No plots for %s: %s", run.path, err)
        return
    plots.write_run_plots(run.path)


def evaluate(run_dir, split: str = "test") -> dict:
    """Re-evaluates a finished run's best checkpoint on one split.

    Writes `predictions_{split}.csv` and updates `metrics.json[split]`.

    Args:
        run_dir: path. A finished run directory.
        split: str. "train", "val" or "test". Defaults to "test".

    Returns:
        The `radtl.metrics.evaluate_predictions` report of that split.
    """
    run = RunDir(run_dir)
    run.require_finished()
    config = run.read_config()
    metrics = run.read_metrics()
    dataset = data_lib.open(config.dataset, config.fold, config.data_dir)
    predictions = _predict_split(run.load_model(), config, dataset, split, _evaluation_confounding(config, dataset, split))
    run.write_predictions(split, predictions)
    metrics[split] = metrics_lib.evaluate_predictions(predictions["label"].to_numpy(), probabilities(predictions))
    run.write_metrics(metrics)
    return metrics[split]


def predict(run_dir, image_paths) -> pd.DataFrame:
    """Class probabilities of a run's best checkpoint for image files.

    Images are read as the dataset builders read them (`radtl.imaging.read_image`:
    8-bit PNG/JPEG as RGB, 16-bit PNG and DICOM windowed to 8 bits), then resized to
    the run's `image_size` with its `resize_method`; the model applies its own
    preprocessing.
    A file that cannot be read gets its reason in the `error` column and NaN
    probabilities; the other files are still predicted.

    Args:
        run_dir: path. A finished run directory.
        image_paths: iterable of paths to PNG, JPEG or DICOM files.

    Returns:
        DataFrame with `filename`, `prob_<class>` per class, `predicted` and `error`
        ("" when the file was read).
    """
    run = RunDir(run_dir)
    run.require_finished()
    config = run.read_config()
    names = run.class_names
    model = run.load_model()
    # An imported dataset's 16-bit PNG and DICOM window (its percentiles), as in training.
    imported = run.read_resolved().get("data", {}).get("import", {})
    percentiles = tuple(imported.get("percentiles", imaging.DEFAULT_PERCENTILES))
    rows = []
    for path in map(Path, image_paths):
        row = {"filename": str(path), **{f"prob_{n}": np.nan for n in names}, "predicted": "", "error": ""}
        if not path.is_file():
            row["error"] = "no such file" if not path.exists() else "not a file"
            rows.append(row)
            continue
        try:
            pixels, _ = imaging.read_image(path, percentiles=percentiles)
        except imaging.ImageReadError as err:
            row["error"] = str(err)
            rows.append(row)
            continue
        image = data_lib.resize_image(pixels, config.image_size, config.resize_method)
        probs = np.asarray(model(tf.cast(image, tf.float32)[None], training=False), dtype=np.float64)[0]
        row.update({f"prob_{n}": p for n, p in zip(names, probs)}, predicted=names[int(probs.argmax())])
        rows.append(row)
    return pd.DataFrame(rows)
