"""The run directory: one owner for the files a run writes and every reader reads.

A run directory holds (names in `RunDir.FILES`):

| file | written | what |
|---|---|---|
| `config.json` | at start | `{"config": TrainConfig.to_dict(), "resolved": {...}}` |
| `history.csv` | each epoch | one row per epoch (Keras `CSVLogger`; a resumed run appends) |
| `best.keras` | best epoch | the best checkpoint by the config's `monitor` (no optimizer state) |
| `backup/` | each epoch | resume state while the run is unfinished |
| `predictions_{split}.csv` | at the end | filename, exam_id, label, prob_<class>... |
| `metrics.json` | last | `monitor`, `best_epoch`, `best_value`, one report per split |
| `localisation_{split}.csv` | by `radtl explain` | per-image Grad-CAM localisation scores |
| `failed.json` | on failure | `{"kind": "diverged"|"collapsed"|..., "reason": "..."}` |
| `error.txt` | by sweeps | the traceback of an attempt that crashed |
| `plots/`, `tensorboard/` | | figures and TensorBoard logs |

Status: "finished" (`metrics.json` exists), "failed" (`failed.json` exists: the run
diverged or collapsed; its history is kept, it has no result), "unfinished"
(`config.json` only: continue it with `resume=True`) or "new". Every JSON file is
written atomically (temporary file, then rename) with mode 0644, so a kill never
leaves half a file and other users of a shared study folder can read it.

Pure Python plus pandas: no TensorFlow import.

Example:

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.status
'new'
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RunDir", "RunDirectoryError", "write_json", "probabilities", "labels_and_probs",
           "align_predictions", "monitor_mode", "best_index", "STATUSES"]

STATUSES = ("new", "unfinished", "failed", "finished")


class RunDirectoryError(FileExistsError):
    """The run directory is in a state that does not allow the requested action."""


def monitor_mode(monitor: str) -> str:
    """"min" for losses (names ending in "loss"), else "max"."""
    return "min" if monitor.endswith("loss") else "max"


def best_index(values, monitor: str) -> int:
    """Index of the best epoch's value of `monitor` (the first one on ties)."""
    values = list(values)
    pick = min if monitor_mode(monitor) == "min" else max
    return values.index(pick(values))


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def write_json(path, payload, **dump_options) -> None:
    """Writes JSON through a temporary file and a rename, with mode 0644.

    A kill never leaves half a file; numpy scalars and paths are converted.
    """
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            json.dump(payload, tmp, **{"indent": 2, "default": _json_default, **dump_options})
            tmp.write("\n")
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.chmod(tmp.name, 0o644)  # NamedTemporaryFile creates 0600
    os.replace(tmp.name, path)


def align_predictions(tables, names, *, split: str = "", fix: str = "") -> list[pd.DataFrame]:
    """Predictions tables of the same images, each reordered to the first table's rows.

    Rows are matched by `filename` (the order in each file does not matter).

    Args:
        tables: sequence of DataFrames with a `filename` column (and `label`, checked
            where two tables both have it).
        names: what each table is called in messages (a run, a file, an argument).
        split: str. The split, named in messages ("test"); may be empty.
        fix: str. The sentence that ends the "not the same images" message.

    Returns:
        The tables, the first unchanged, the others in its row order.

    Raises:
        ValueError: a table lists a filename twice, two tables hold different images, or
            give an image different labels; the message names the tables and examples.
    """
    images = f"{split} images" if split else "images"
    for table, name in zip(tables, names):
        repeated = table["filename"][table["filename"].duplicated()]
        if len(repeated):
            raise ValueError(f"{name} lists {len(repeated)} filename(s) more than once (e.g. "
                             f"{sorted(set(repeated))[:3]}): predictions cannot be matched by image.")
    first, reference = names[0], pd.Index(tables[0]["filename"])
    aligned = [tables[0]]
    for table, name in zip(tables[1:], names[1:]):
        only_first = reference.difference(table["filename"])
        only_this = pd.Index(table["filename"]).difference(reference)
        if len(only_first) or len(only_this):
            raise ValueError(
                f"{first} and {name} were not evaluated on the same {images}: {len(only_first) + len(only_this)} "
                f"filename(s) differ ({len(only_first)} only in {first}, {len(only_this)} only in {name}; e.g. "
                f"{list(only_first[:2]) + list(only_this[:2])}). {fix}".rstrip())
        table = table.set_index("filename").loc[reference].reset_index()
        if "label" in table.columns and "label" in tables[0].columns:
            differ = table["label"].to_numpy() != tables[0]["label"].to_numpy()
            if differ.any():
                raise ValueError(
                    f"{first} and {name} give different labels to {int(differ.sum())} of the same {images} (e.g. "
                    f"{list(table['filename'][differ][:3])}): the runs used different label definitions or "
                    "datasets.")
        aligned.append(table)
    return aligned


def probabilities(predictions: pd.DataFrame) -> np.ndarray:
    """The (N, K) float64 `prob_<class>` columns of a predictions table, in column order."""
    return predictions[[c for c in predictions.columns if c.startswith("prob_")]].to_numpy(np.float64)


def labels_and_probs(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) int64 and probabilities (N, K) float64 of a predictions table."""
    return predictions["label"].to_numpy(np.int64), probabilities(predictions)


class RunDir:
    """One run directory: its status, and reading and writing each of its files.

    Args:
        path: str or Path. The directory (it need not exist yet).
    """

    FILES = {
        "config": "config.json",
        "history": "history.csv",
        "checkpoint": "best.keras",
        "predictions": "predictions_{split}.csv",
        "metrics": "metrics.json",
        "failure": "failed.json",
        "localisation": "localisation_{split}.csv",
        "error": "error.txt",
        "tensorboard": "tensorboard",
        "plots": "plots",
        "backup": "backup",
    }

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self):
        return os.fspath(self.path)

    def file(self, key: str, **fields) -> Path:
        """The path of the file `key` of `FILES` (e.g. `file("predictions", split="val")`)."""
        return self.path / self.FILES[key].format(**fields)

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ status
    @property
    def status(self) -> str:
        """"finished", "failed", "unfinished" or "new" (see the module docstring)."""
        if self.file("metrics").exists():
            return "finished"
        if self.file("failure").exists():
            return "failed"
        if self.file("config").exists():
            return "unfinished"
        return "new"

    def is_run(self) -> bool:
        """Whether the directory holds a run (a `config.json`)."""
        return self.file("config").exists()

    def check_usable(self) -> str:
        """`status`, refusing a non-empty directory that is not a run directory.

        Raises:
            RunDirectoryError: the path is a file, or a non-empty directory without
                `config.json` (other than a sweep's `error.txt`).
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{self.path} is a file, not a directory. Choose another output directory.")
        status = self.status
        if status == "new" and self.path.exists() and any(
                p.name not in (self.FILES["error"],) for p in self.path.iterdir()):
            raise RunDirectoryError(
                f"{self.path} exists, is not empty and holds no {self.FILES['config']}: it is not a radtl run "
                "directory. Choose another output directory.")
        return status

    def require_run(self) -> None:
        """Raises `RunDirectoryError` unless the directory holds a run (`config.json`)."""
        if not self.path.is_dir():
            raise RunDirectoryError(f"Run directory {self.path} does not exist (or is not a directory).")
        if not self.is_run():
            raise RunDirectoryError(f"{self.path} is not a radtl run directory: it holds no "
                                    f"{self.FILES['config']}. Pass a directory written by `radtl train`.")

    def require_finished(self) -> None:
        """Raises `RunDirectoryError` unless the run is finished (naming what it is instead)."""
        self.require_run()
        status = self.status
        if status == "failed":
            reason = self.read_failure()["reason"]
            raise RunDirectoryError(f"{self.path} holds a failed run ({reason}); "
                                    "it has no result.")
        if status != "finished":
            raise RunDirectoryError(
                f"{self.path} is an unfinished run (no {self.FILES['metrics']}): still training, stopped or "
                f"crashed. Continue it with `radtl train --resume --out {self.path}`.")

    def create(self) -> None:
        """Creates the directory (and its parents) with mode 0755."""
        self.path.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ JSON files
    def _read_json(self, key: str) -> Any:
        path = self.file(key)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: {self.path} holds no {self.FILES[key]}.")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunDirectoryError(f"{path} is not valid JSON ({err}): the file is corrupt. Restore it, or move "
                                    f"{self.path} aside and run again.") from None

    def write_config(self, config: dict, resolved: dict) -> None:
        """Writes `config.json`: the config as given and what the run resolved at start."""
        write_json(self.file("config"), {"config": dict(config), "resolved": dict(resolved)})

    def read_config_dict(self) -> dict:
        """The recorded config, as a dict of `TrainConfig` fields."""
        values = self._read_json("config")
        if not isinstance(values, dict) or "config" not in values:
            raise ValueError(f"{self.file('config')} must hold {{'config': ..., 'resolved': ...}}. Was it written "
                             "by radtl.train?")
        return values["config"]

    def read_config(self):
        """The recorded config as a `radtl.config.TrainConfig`."""
        from radtl.config import TrainConfig  # pure Python; deferred to keep this module standalone

        self.require_run()
        if self.read_resolved().get("kind") == "ensemble":
            raise RunDirectoryError(f"{self.path} is an ensemble of runs (`radtl ensemble`): it has predictions and "
                                    "metrics but no model or training config. Use one of its member runs.")
        return TrainConfig.recorded(self.read_config_dict())

    def read_resolved(self) -> dict:
        """What the run resolved at start (precision, class_names, split_sizes, versions, ...)."""
        return self._read_json("config").get("resolved", {})

    @property
    def class_names(self) -> list[str] | None:
        """Class names in label order, as recorded (None if not recorded)."""
        return self.read_resolved().get("class_names")

    def write_metrics(self, metrics: dict) -> None:
        """Writes `metrics.json` (the run is then finished)."""
        write_json(self.file("metrics"), metrics)

    def read_metrics(self) -> dict:
        """`metrics.json` of a finished run."""
        if not self.file("metrics").is_file():
            self.require_finished()
        return self._read_json("metrics")

    def write_failure(self, kind: str, reason: str, **details) -> None:
        """Marks the run failed (`failed.json`): it diverged or collapsed and has no result."""
        write_json(self.file("failure"), {"kind": kind, "reason": reason, **details})

    def read_failure(self) -> dict | None:
        """`failed.json` with at least `kind` and `reason`, or None if the run has not failed."""
        if not self.file("failure").is_file():
            return None
        failure = self._read_json("failure")
        failure = failure if isinstance(failure, dict) else {}
        return {"kind": "failed", "reason": "no reason recorded", **failure}

    def write_error(self, text: str) -> None:
        """Writes why the last attempt crashed (`error.txt`, by sweeps)."""
        self.create()
        self.file("error").write_text(text)
        os.chmod(self.file("error"), 0o644)

    def clear_error(self) -> None:
        self.file("error").unlink(missing_ok=True)

    def load_model(self):
        """The best checkpoint (`best.keras`) as an uncompiled Keras model (imports Keras)."""
        path = self.file("checkpoint")
        if not path.exists():
            raise RunDirectoryError(f"{path} does not exist: the run in {self.path} saved no checkpoint (was it killed "
                                    f"before its first epoch ended? continue it with `radtl train --resume --out "
                                    f"{self.path}`).")
        import keras

        return keras.models.load_model(path, compile=False)

    # ------------------------------------------------------------------ tables
    def history(self) -> pd.DataFrame:
        """The per-epoch history, one row per epoch (the last row of an epoch logged twice).

        A resumed run appends to the CSV, and a kill between the CSV row and the
        backup repeats an epoch; `epoch` is 0-based, as `CSVLogger` writes it.
        """
        path = self.file("history")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: {self.path} holds no per-epoch history yet.")
        if path.stat().st_size == 0:  # CSVLogger creates the file at train begin
            return pd.DataFrame()
        history = pd.read_csv(path)
        if "epoch" in history.columns:
            history = history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
        return history

    def has_history(self) -> bool:
        path = self.file("history")
        return path.is_file() and path.stat().st_size > 0

    def best_so_far(self, monitor: str) -> float | None:
        """The best `monitor` value of the epochs already logged (None if none or no checkpoint)."""
        if not self.has_history() or not self.file("checkpoint").exists():
            return None
        history = self.history()
        if monitor not in history.columns or history.empty:
            return None
        return float(history[monitor].iloc[best_index(history[monitor], monitor)])

    def write_history(self, history: pd.DataFrame) -> None:
        """Rewrites `history.csv` (e.g. de-duplicated once a run is finished)."""
        tmp = self.path / f".{self.FILES['history']}.tmp"
        history.to_csv(tmp, index=False)
        os.replace(tmp, self.file("history"))

    def write_predictions(self, split: str, predictions: pd.DataFrame) -> Path:
        """Writes `predictions_{split}.csv` atomically."""
        path = self.file("predictions", split=split)
        tmp = path.with_name(f".{path.name}.tmp")
        predictions.to_csv(tmp, index=False)
        os.replace(tmp, path)
        return path

    def prediction_splits(self) -> list[str]:
        """Splits with a predictions file, sorted."""
        prefix, suffix = self.FILES["predictions"].split("{split}")
        return sorted(p.name[len(prefix):-len(suffix)] for p in self.path.glob(prefix + "*" + suffix))

    def read_predictions(self, split: str = "test", class_names=None) -> pd.DataFrame:
        """`predictions_{split}.csv`, checked against the predictions contract.

        Args:
            split: str. "test" (default), "val", ...
            class_names: list of str or None. Expected class order (default: the
                recorded `class_names`, when there is a config).

        Raises:
            FileNotFoundError: no predictions for that split (lists the ones there are).
            ValueError: the file lacks `filename`, `label` or the `prob_<class>` columns.
        """
        path = self.file("predictions", split=split)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist. Prediction files in {self.path}: {self.prediction_splits() or 'none'}. "
                f"Evaluate the run on that split first (`radtl evaluate {self.path} --split {split}`).")
        frame = pd.read_csv(path, dtype={"filename": str, "exam_id": str})
        prob_columns = [c for c in frame.columns if c.startswith("prob_")]
        missing = [c for c in ("filename", "label") if c not in frame.columns]
        if missing or len(prob_columns) < 2:
            raise ValueError(f"{path} must have the columns filename, label and one prob_<class> per class "
                             f"(at least two). Received columns: {list(frame.columns)}.")
        if class_names is None and self.is_run():
            class_names = self.class_names
        if class_names is not None and prob_columns != [f"prob_{name}" for name in class_names]:
            raise ValueError(f"{path} has probability columns {prob_columns}, but config.json lists the classes "
                             f"{list(class_names)}; expected {[f'prob_{n}' for n in class_names]} in that order.")
        return frame

    # ------------------------------------------------------------------ scanning
    @classmethod
    def scan(cls, runs_dir) -> list["RunDir"]:
        """Every run directory (holding `config.json`) under `runs_dir`, recursively, sorted."""
        runs_dir = Path(runs_dir)
        if not runs_dir.is_dir():
            raise FileNotFoundError(f"Runs directory {runs_dir} does not exist (or is not a directory).")
        return [cls(p.parent) for p in sorted(runs_dir.rglob(cls.FILES["config"]))]
