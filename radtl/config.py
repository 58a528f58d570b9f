"""Run configuration: one dataclass with the defaults of the official protocol.

A run is reproducible from its `TrainConfig` (and the package versions recorded next
to it): `radtl.train.run(config, run_dir)` writes `config.json` with both.

Defaults follow the official RadImageNet Keras scripts where they define one
(binary task, 30 epochs, Adam, their augmentation, GAP -> Dropout(0.5) -> Dense(2)
head, caffe-then-/255 preprocessing) with two exceptions, stated here so nobody is
surprised: `image_size` 224 (the scripts default to 256; the weights were pre-trained
at 224) and `batch_size` 32 (the scripts default to 256, which needs a large GPU).
Study configs in `configs/` set the paper values explicitly.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from radtl._checks import check_number

__all__ = ["TrainConfig", "RUN_FILES", "run_status", "write_json", "monitor_mode", "best_index"]


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines one training run.

    Attributes:
        dataset: str. Dataset name (`radtl.data.names()`).
        fold: int. Official fold, 1..5.
        data_dir: str or None. Where the dataset is built (None: `$RADTL_DATA_DIR`
            or ~/tensorflow_datasets).
        backbone: str. Backbone registry name (`radtl.backbones.names()`).
        weights: str or None. "radimagenet", "imagenet", None/"none" (random init) or a
            path to a weight file.
        weights_dir: str or None. Extra folder searched for weight files.
        preprocessing: str. "official" (caffe then x1/255, the RadImageNet scripts)
            or "native" (the Keras application's own).
        head: str. Head name (`radtl.heads.names()`).
        head_options: dict. Keyword arguments of the head.
        schedule: str. Fine-tuning schedule (`radtl.schedules.names()`).
        schedule_options: dict. Keyword arguments of the schedule.
        loss: str. Loss name (`radtl.losses.names()`).
        loss_options: dict. Keyword arguments of the loss.
        optimizer: str. "adam", "adamw" or "sgd".
        learning_rate: float. Base learning rate.
        lr_decay: str. "constant" or "cosine" (to `learning_rate * min_lr_ratio` at the
            last epoch).
        min_lr_ratio: float. Final / initial learning rate for "cosine".
        weight_decay: float. Decoupled weight decay (AdamW/SGD); 0 for none.
        momentum: float. SGD momentum (Nesterov).
        epochs: int. Training epochs.
        batch_size: int. Images per batch.
        image_size: int. Square input size in pixels.
        augment: bool. The official RadImageNet augmentation on the training split.
        seed: int. Seeds weights, shuffling, augmentation and dropout.
        precision: str. "auto", "float32", "mixed_float16" or "mixed_bfloat16".
        xla: str or bool. "auto", True or False.
        monitor: str. Metric that picks the best checkpoint: "val_auc" (highest) or a
            loss such as "val_loss" (lowest; what the official scripts keep).
    """

    dataset: str = "synthetic_lesions"
    fold: int = 1
    data_dir: str | None = None
    backbone: str = "resnet50"
    weights: str | None = "radimagenet"
    weights_dir: str | None = None
    preprocessing: str = "official"
    head: str = "linear"
    head_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    schedule: str = "unfreezeall"
    schedule_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: str = "hard"
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float = 1e-4
    lr_decay: str = "constant"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 32
    image_size: int = 224
    augment: bool = True
    seed: int = 0
    precision: str = "auto"
    xla: str | bool = "auto"
    monitor: str = "val_auc"

    def __post_init__(self):
        if isinstance(self.weights, str) and self.weights.lower() == "none":
            self.weights = None
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "image_size": self.image_size,
                    "learning_rate": self.learning_rate}
        for name, value in positive.items():
            check_number(name, value, include_low=False)
        if self.fold not in range(1, 6):
            raise ValueError(f"`fold` must be one of 1..5. Received: fold={self.fold!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Builds a config from a dict; unknown keys are an error that lists the valid ones."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}. Valid keys: {sorted(fields)}")
        return cls(**values)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated like a new config)."""
        return self.from_dict({**self.to_dict(), **changes})

    @classmethod
    def load(cls, run_dir) -> "TrainConfig":
        """The config recorded in `RUN_DIR/config.json`."""
        path = Path(run_dir) / RUN_FILES["config"]
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a radtl run directory "
                                    f"(it holds no {RUN_FILES['config']}).")
        return cls.from_dict(json.loads(path.read_text())["config"])


#: The files of a run directory (names relative to it).
RUN_FILES = {
    "config": "config.json",  # {"config": TrainConfig.to_dict(), "resolved": {...}}
    "history": "history.csv",  # one row per epoch (Keras CSVLogger)
    "checkpoint": "best.keras",  # best epoch by `monitor`
    "predictions": "predictions_{split}.csv",  # filename, exam_id, label, prob_<class>...
    "metrics": "metrics.json",  # {"best_epoch", "monitor", "<split>": evaluate_predictions(...)}
    "tensorboard": "tensorboard",
    "plots": "plots",
    "backup": "backup",  # BackupAndRestore state while a run is unfinished
    "error": "error.txt",  # why the last attempt failed (written by sweeps)
}


def run_status(run_dir) -> str:
    """Where a run directory stands: "finished", "unfinished" or "new".

    "finished": `metrics.json` exists (the trainer writes it last). "unfinished":
    `config.json` without `metrics.json` (continue it with `resume=True`). "new":
    neither (also when the directory does not exist).
    """
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILES["metrics"]).exists():
        return "finished"
    if (run_dir / RUN_FILES["config"]).exists():
        return "unfinished"
    return "new"


def monitor_mode(monitor: str) -> str:
    """"min" for losses (names ending in "loss"), else "max"."""
    return "min" if monitor.endswith("loss") else "max"


def best_index(values, monitor: str) -> int:
    """Index of the best epoch's value of `monitor` (the first one on ties)."""
    values = list(values)
    pick = min if monitor_mode(monitor) == "min" else max
    return values.index(pick(values))


def write_json(path, payload, **dump_options) -> None:
    """Writes JSON through a temporary file and a rename: a kill never leaves half a file."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        json.dump(payload, tmp, **{"indent": 2, **dump_options})
        tmp.write("\n")
    os.replace(tmp.name, path)
