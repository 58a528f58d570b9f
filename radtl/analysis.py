"""Reading run directories, plotting them, comparing runs and summarising a study.

A run directory (`radtl.train.run`; file names in `radtl.config.RUN_FILES`) holds
`config.json`, `history.csv`, `predictions_{split}.csv` and, once the run is finished,
`metrics.json`. This module turns such directories into figures and tables:

* `load_run` / `find_runs`: read one run, or every finished run under a folder.
* `plot_training_curves`, `plot_roc`, `plot_reliability`, `plot_boxplots`: one PNG each,
  from data (arrays or DataFrames), never from paths; `write_run_plots` draws the
  standard figures of one run into `RUN_DIR/plots/`.
* `compare_runs`: two or more runs on the same test images (DeLong test and paired
  bootstrap of the AUC difference, Holm-corrected across pairs).
* `summarize`: one table of every run, mean and sd per setting, paired permutation and
  Wilcoxon tests of two-level factors (e.g. RadImageNet vs ImageNet), box plots.

All statistics come from `radtl.metrics` and `radtl.stats`; this module only reads,
aligns, tabulates and draws. Matplotlib is imported on first use (figures are drawn on
its Agg canvas, without pyplot, so no global backend is changed and no figure leaks),
which keeps `import radtl.analysis` cheap.

Example:
    >>> result = summarize("runs/acl_study")               # doctest: +SKIP
    >>> print(result.markdown)                              # doctest: +SKIP
    >>> compare_runs(["runs/a/fold1", "runs/b/fold1"])      # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import textwrap
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from radtl import metrics as metrics_lib
from radtl import stats as stats_lib
from radtl.config import RUN_FILES
from radtl.config import best_index

__all__ = [
    "Run",
    "SummaryResult",
    "load_run",
    "find_runs",
    "plot_training_curves",
    "roc_sensitivity_band",
    "plot_roc",
    "plot_reliability",
    "plot_boxplots",
    "write_run_plots",
    "holm_adjust",
    "compare_runs",
    "format_comparison",
    "summarize",
]

#: Config fields that repeat a setting rather than define one: runs that differ only in
#: these are replicates of one setting, and they identify the pairs in comparisons.
REPLICATE_FIELDS = ("fold", "seed")
#: Config fields that are machine paths, not settings: never grouped or compared on.
_PATH_FIELDS = ("data_dir", "weights_dir")
#: For automatic comparisons: the level taken as the baseline (level_b, differences are
#: other - baseline), first match wins. RadImageNet vs ImageNet reads radimagenet - imagenet.
_BASELINE_LEVELS = {"weights": ("none", "imagenet")}
#: Box plots colour by the first of these that is compared, else by the first compared factor.
_PREFERRED_HUE = ("weights",)
#: History columns that are not a loss or metric curve.
_HISTORY_NON_CURVES = ("epoch", "learning_rate", "lr", "stage")
#: Run-table metric columns: name -> (split, key paths into evaluate_predictions, first
#: found wins; multi-class reports have no "roc_auc" and fall back to the macro AUC).
_REPORT_FIELDS = {
    "auc": (("roc_auc", "auc"), ("macro_roc_auc_ovr",)),
    "auc_lower": (("roc_auc", "lower"),),
    "auc_upper": (("roc_auc", "upper"),),
    "accuracy": (("accuracy",),),
    "sensitivity": (("threshold_metrics", "sensitivity"),),
    "specificity": (("threshold_metrics", "specificity"),),
    "ece": (("calibration", "ece"),),
    "brier": (("calibration", "brier_score"),),
}
#: (split, field) pairs written to the run table, in column order.
_RUN_TABLE_METRICS = [("test", name) for name in _REPORT_FIELDS] + [("val", "auc")]
#: Run-table columns that are interval bounds: listed per run, never averaged.
_NOT_AVERAGED = ("test_auc_lower", "test_auc_upper")


# ---------------------------------------------------------------------------------------
# Reading run directories
# ---------------------------------------------------------------------------------------
def _read_json(run_dir: Path, key: str) -> dict:
    """Parses `RUN_DIR/RUN_FILES[key]`, with errors that name the file."""
    path = run_dir / RUN_FILES[key]
    if not path.is_file():
        hint = (
            " The run is unfinished (still training, stopped, or failed): resume it with "
            "`radtl.train.run(config, run_dir, resume=True)` or leave it out."
            if key == "metrics" else ""
        )
        raise FileNotFoundError(
            f"{path} does not exist: {run_dir} is not a finished radtl run directory "
            f"(expected {RUN_FILES['config']}, {RUN_FILES['history']}, "
            f"{RUN_FILES['predictions'].format(split='test')} and {RUN_FILES['metrics']}).{hint}"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the file is corrupt: re-run "
                         "the evaluation of this run.") from err


def _read_config(run_dir: Path) -> tuple[dict, dict]:
    """(config, resolved) from `config.json`."""
    values = _read_json(run_dir, "config")
    if "config" not in values:
        raise ValueError(
            f"{run_dir / RUN_FILES['config']} must hold {{'config': ..., 'resolved': ...}}. "
            f"Received keys: {sorted(values)}. Was it written by radtl.train?"
        )
    return values["config"], values.get("resolved", {})


def _read_history(run_dir: Path) -> pd.DataFrame:
    """The per-epoch history (CSVLogger), one row per epoch, last entry kept per epoch.

    A resumed run appends to the CSV; an epoch logged twice keeps its last row.
    """
    path = run_dir / RUN_FILES["history"]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {run_dir} holds no per-epoch history "
            f"({RUN_FILES['history']}, written by keras.callbacks.CSVLogger during training)."
        )
    history = pd.read_csv(path)
    if "epoch" in history.columns:
        history = history.drop_duplicates("epoch", keep="last").reset_index(drop=True)
    return history


def _read_predictions(run_dir: Path, split: str, class_names=None) -> pd.DataFrame:
    """`predictions_{split}.csv`, checked against the prediction-file contract."""
    path = run_dir / RUN_FILES["predictions"].format(split=split)
    if not path.is_file():
        available = sorted(p.name for p in run_dir.glob(RUN_FILES["predictions"].format(split="*")))
        raise FileNotFoundError(
            f"{path} does not exist. Prediction files in {run_dir}: {available or 'none'}. "
            "Evaluate the run on that split first (radtl.train.evaluate(run_dir, split))."
        )
    frame = pd.read_csv(path)
    prob_columns = [c for c in frame.columns if c.startswith("prob_")]
    missing = [c for c in ("filename", "label") if c not in frame.columns]
    if missing or len(prob_columns) < 2:
        raise ValueError(
            f"{path} must have the columns filename, label and one prob_<class> per class "
            f"(at least two). Received columns: {list(frame.columns)}."
        )
    if class_names is not None and prob_columns != [f"prob_{name}" for name in class_names]:
        raise ValueError(
            f"{path} has probability columns {prob_columns}, but config.json lists the "
            f"classes {list(class_names)}; expected {[f'prob_{n}' for n in class_names]} in "
            "that order."
        )
    return frame


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """One finished run directory, read into memory.

    Attributes:
        path: Path of the run directory.
        config: dict, `TrainConfig.to_dict()` as recorded in `config.json`.
        resolved: dict, what the run resolved at start (precision, versions,
            class_names, ...).
        metrics: dict, `metrics.json`: `monitor`, `best_epoch` (1-based), `best_value`
            and one `radtl.metrics.evaluate_predictions` report per evaluated split.
        history: DataFrame, one row per epoch (`epoch` is 0-based, as CSVLogger).
    """

    path: Path
    config: dict
    resolved: dict
    metrics: dict
    history: pd.DataFrame = dataclasses.field(repr=False)

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.path.name

    @property
    def class_names(self) -> list[str] | None:
        """Class names in label order, from `config.json` (None if not recorded)."""
        return self.resolved.get("class_names")

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """The predictions of one split: filename, exam_id, label, prob_<class>...

        Args:
            split: str, "test" (default) or "val" (any split the run was evaluated on).

        Returns:
            DataFrame with one row per image, as written by the trainer.
        """
        return _read_predictions(self.path, split, self.class_names)

    def labels_and_probs(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """Labels (N,) int and probabilities (N, K) float64 of one split, in file order."""
        return _labels_and_probs(self.predictions(split))


def _labels_and_probs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    probs = frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy(np.float64)
    return frame["label"].to_numpy(np.int64), probs


def load_run(run_dir) -> Run:
    """Reads a finished run directory.

    Args:
        run_dir: str or Path, a directory written by `radtl.train.run`.

    Returns:
        A `Run`. Predictions are read on demand (`run.predictions("test")`).

    Raises:
        FileNotFoundError: naming the missing file (`config.json`, `history.csv`, or
            `metrics.json` for an unfinished run).

    Example:
        >>> run = load_run("runs/resnet50_radimagenet/fold1")   # doctest: +SKIP
        >>> run.metrics["test"]["roc_auc"]["auc"]               # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run directory {run_dir} does not exist (or is not a directory).")
    config, resolved = _read_config(run_dir)
    return Run(path=run_dir, config=config, resolved=resolved,
               metrics=_read_json(run_dir, "metrics"), history=_read_history(run_dir))


def _scan_runs(runs_dir) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run directories under `runs_dir` (recursive, sorted)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"Runs directory {runs_dir} does not exist (or is not a directory).")
    run_dirs = sorted(p.parent for p in runs_dir.rglob(RUN_FILES["config"]))
    finished = [d for d in run_dirs if (d / RUN_FILES["metrics"]).is_file()]
    unfinished = [d for d in run_dirs if not (d / RUN_FILES["metrics"]).is_file()]
    return finished, unfinished


def _warn_unfinished(unfinished: list[Path]) -> None:
    if unfinished:
        listed = ", ".join(str(p) for p in unfinished)
        warnings.warn(
            f"Skipping {len(unfinished)} unfinished run(s) (no {RUN_FILES['metrics']}): "
            f"{listed}. Resume them (radtl.train.run(..., resume=True)) to include them.",
            stacklevel=3,
        )


def find_runs(runs_dir) -> list[Run]:
    """Every finished run directory under `runs_dir`, searched recursively.

    A run directory is one holding `config.json`; it is finished when it also holds
    `metrics.json`. Unfinished runs are skipped and listed in a `UserWarning`.

    Args:
        runs_dir: str or Path, e.g. the output folder of a study.

    Returns:
        list of `Run`, sorted by path (empty if none is finished).
    """
    finished, unfinished = _scan_runs(runs_dir)
    _warn_unfinished(unfinished)
    return [load_run(d) for d in finished]


# ---------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------
def _figure(n_rows=1, n_cols=1, *, size=(5.0, 4.0), **subplot_kw):
    """A matplotlib Figure on the Agg canvas and its axes (matplotlib imported here)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * n_cols, size[1] * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, **subplot_kw)
    return fig, axes


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path


def _colors(n):
    """n distinct colours (tab10, cycled)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _history_curves(history: pd.DataFrame) -> dict[str, list[str]]:
    """Curve name -> its columns ([name, val_name] where both exist), in column order."""
    curves: dict[str, list[str]] = {}
    for column in history.columns:
        if column in _HISTORY_NON_CURVES or not pd.api.types.is_numeric_dtype(history[column]):
            continue
        base = column.removeprefix("val_")
        curves.setdefault(base, []).append(column)
    # The loss first; in each panel the training curve first, then validation.
    ordered = sorted(curves, key=lambda base: base != "loss")
    return {base: sorted(curves[base], key=lambda c: c.startswith("val_")) for base in ordered}


def plot_training_curves(history: pd.DataFrame, path, *, best_epoch: int | None = None,
                         title: str | None = None) -> Path:
    """Training and validation curves, one panel per loss/metric, plus the learning rate.

    Every numeric history column `x` is drawn with its `val_x` partner (when present) in
    one panel; `learning_rate` (or `lr`) gets its own panel (log scale), and a change of
    `stage` (fine-tuning schedules) is marked by a dotted line. Epochs are drawn 1-based.

    Args:
        history: DataFrame, one row per epoch as written by `keras.callbacks.CSVLogger`
            (`epoch` 0-based, `loss`, `val_loss`, `auc`, `val_auc`, ...).
        path: str or Path of the PNG to write (folders are created).
        best_epoch: int or None, 1-based epoch of the selected checkpoint (dashed line).
        title: str or None, figure title.

    Returns:
        The Path of the PNG.

    Example:
        >>> h = pd.DataFrame({"epoch": [0, 1], "loss": [0.7, 0.5], "val_loss": [0.8, 0.6]})
        >>> plot_training_curves(h, "/tmp/curves.png").name
        'curves.png'
    """
    curves = _history_curves(history)
    if not curves or len(history) == 0:
        raise ValueError(
            "`history` needs at least one row and one numeric loss/metric column. Received "
            f"{len(history)} rows with columns {list(history.columns)}."
        )
    lr_column = next((c for c in ("learning_rate", "lr") if c in history.columns), None)
    panels = [*curves, *([lr_column] if lr_column else [])]
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig, axes = _figure(n_rows, n_cols, size=(4.2, 3.2))
    epochs = (history["epoch"] if "epoch" in history.columns else pd.Series(range(len(history)))) + 1
    stage_changes = []
    if "stage" in history.columns:
        stage = history["stage"].astype(str).to_numpy()
        stage_changes = [(epochs.iloc[i], stage[i]) for i in range(1, len(stage)) if stage[i] != stage[i - 1]]
    for ax, panel in zip(axes.flat, panels):
        columns = curves.get(panel, [panel])
        for column in columns:
            ax.plot(epochs, history[column], marker="o", markersize=3,
                    label="validation" if column.startswith("val_") else "training")
        if panel == lr_column:
            if (history[panel] > 0).all():
                ax.set_yscale("log")
        else:
            ax.legend(fontsize=8)
        for epoch, name in stage_changes:
            ax.axvline(epoch - 0.5, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f" {name}", (epoch - 0.5, 0.98), xycoords=("data", "axes fraction"),
                        fontsize=7, color="grey", ha="left", va="top")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="black", linestyle="--", linewidth=1)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title or best_epoch is not None:
        suffix = f"(dashed: best epoch {best_epoch})" if best_epoch is not None else ""
        fig.suptitle(" ".join(t for t in (title, suffix) if t), fontsize=10)
    return _save(fig, path)


def _sensitivity_at_specificity(y_true, score, specificity) -> float:
    """Highest sensitivity over thresholds whose specificity is at least `specificity`.

    With scores >= t predicted positive, specificity >= sp allows at most
    k = floor((1 - sp) * n_neg) false positives, so t lies just above the (k+1)-th largest
    negative score and the sensitivity is the fraction of positives scoring above it.
    This is the upper-left envelope of the empirical ROC curve at FPR = 1 - sp.
    """
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    negatives = np.sort(s[y == 0])[::-1]
    allowed = int(math.floor((1.0 - specificity) * negatives.size + 1e-9))
    if allowed >= negatives.size:
        return 1.0
    return float(np.mean(s[y == 1] > negatives[allowed]))


def roc_sensitivity_band(y_true, prob_pos, *, specificities=None, n_resamples=2000,
                         confidence_level=0.95, seed=0) -> pd.DataFrame:
    """Pointwise bootstrap CI of the sensitivity at fixed specificities.

    At each specificity sp the sensitivity is the highest one reached with specificity
    >= sp (the empirical ROC curve read at FPR = 1 - sp). Its interval is the percentile
    bootstrap of `radtl.stats.bootstrap_ci`, resampling cases within each class
    (stratified, as pROC's `ci.se(boot.stratified=TRUE)`); the same seed gives every
    specificity the same resamples. The band is pointwise, not simultaneous.

    Reference:
        Robin et al., "pROC: an open-source package for R and S+ to analyze and compare
        ROC curves", BMC Bioinformatics 12 (2011) 77 (`ci.se`); Efron & Tibshirani (1993).

    Args:
        y_true: array-like (N,), labels in {0, 1}; both classes present.
        prob_pos: array-like (N,), P(class 1) or any score, larger = more likely positive.
        specificities: array-like or None; default 0, 0.05, ..., 1 (21 points).
        n_resamples: int, default 2000 (pROC's boot.n).
        confidence_level: float in (0, 1), default 0.95.
        seed: int, default 0.

    Returns:
        DataFrame with columns `specificity`, `sensitivity`, `lower`, `upper`.

    Example:
        >>> band = roc_sensitivity_band([0, 0, 1, 1, 0, 1], [.1, .4, .35, .8, .2, .9],
        ...                             specificities=[0.5], n_resamples=50)
        >>> float(band["sensitivity"].iloc[0])
        1.0
    """
    metrics_lib.roc_auc(y_true, prob_pos)  # validates labels (both classes) and scores
    y = np.asarray(y_true).astype(np.int64)
    score = np.asarray(prob_pos, dtype=np.float64)
    grid = np.linspace(0.0, 1.0, 21) if specificities is None else np.asarray(specificities, float)
    rows = []
    for sp in grid:
        result = stats_lib.bootstrap_ci(
            lambda yy, ss, sp=sp: _sensitivity_at_specificity(yy, ss, sp), y, score,
            strata=y, n_resamples=n_resamples, confidence_level=confidence_level,
            method="percentile", seed=seed,
        )
        rows.append({"specificity": float(sp), "sensitivity": result.estimate,
                     "lower": result.lower, "upper": result.upper})
    return pd.DataFrame(rows)


def _draw_roc(ax, y_true, score, *, label, color, ci, band_resamples, seed):
    """Draws one ROC curve (and its band) on `ax`; returns the legend label."""
    import sklearn.metrics

    fpr, tpr, _ = sklearn.metrics.roc_curve(y_true, score)
    auc = metrics_lib.delong_auc_ci(y_true, score, confidence_level=ci or 0.95)
    text = f"AUC {auc.auc:.3f}"
    if ci is not None:
        text += f" ({ci:.0%} CI {auc.lower:.3f}-{auc.upper:.3f}, DeLong)"
    legend = f"{label}: {text}" if label else text
    ax.plot(fpr, tpr, color=color, linewidth=1.8, label=legend, drawstyle="steps-post")
    if band_resamples:
        band = roc_sensitivity_band(y_true, score, n_resamples=band_resamples,
                                    confidence_level=ci or 0.95, seed=seed)
        ax.fill_between(1.0 - band["specificity"], band["lower"], band["upper"], color=color,
                        alpha=0.2, linewidth=0,
                        label=f"pointwise {ci or 0.95:.0%} bootstrap band ({band_resamples} resamples)")
    return legend


def plot_roc(y_true, prob_pos, path, *, ci: float | None = 0.95, band_resamples: int = 0,
             seed: int = 0, class_names: Sequence[str] | None = None,
             title: str | None = None) -> Path:
    """ROC curve with the AUC and its DeLong confidence interval in the legend.

    Binary: `prob_pos` of shape (N,) is P(class 1). Multi-class: `prob_pos` of shape
    (N, K) draws K one-vs-rest curves (class k positive), each with its AUC and CI.
    With `band_resamples` > 0 each curve gets a shaded pointwise bootstrap band of the
    sensitivity at specificities 0, 0.05, ..., 1 (`roc_sensitivity_band`, seeded).

    Reference:
        DeLong, DeLong & Clarke-Pearson, Biometrics 44 (1988) 837-845 (the CI:
        `radtl.metrics.delong_auc_ci`).

    Args:
        y_true: array-like (N,), labels: {0, 1} for binary, class indices 0..K-1 otherwise.
        prob_pos: array-like (N,) P(class 1), or (N, K) class probabilities.
        path: str or Path of the PNG to write.
        ci: float in (0, 1) or None, default 0.95: level of the DeLong CI (and band);
            None shows the AUC alone.
        band_resamples: int, default 0 (no band); e.g. 2000.
        seed: int, default 0, seed of the band's resampling.
        class_names: list of K str or None, legend names for multi-class curves.
        title: str or None.

    Returns:
        The Path of the PNG.

    Example:
        >>> plot_roc([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], "/tmp/roc.png").name
        'roc.png'
    """
    y = np.asarray(y_true)
    scores = np.asarray(prob_pos, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        curves = [(None, y, scores)]
    elif scores.ndim == 2:
        names = list(class_names) if class_names is not None else [f"class {k}" for k in range(scores.shape[1])]
        if len(names) != scores.shape[1]:
            raise ValueError(f"`class_names` must name the {scores.shape[1]} columns of `prob_pos`. "
                             f"Received {len(names)} names: {names}.")
        curves = [(f"{names[k]} vs rest", (y == k).astype(int), scores[:, k]) for k in range(scores.shape[1])]
    else:
        raise ValueError(f"`prob_pos` must have shape (N,) or (N, K). Received shape {scores.shape}.")
    fig, axes = _figure(size=(5.5, 5.0))
    ax = axes[0, 0]
    for (label, y_k, s_k), color in zip(curves, _colors(len(curves))):
        _draw_roc(ax, y_k, s_k, label=label, color=color, ci=ci, band_resamples=band_resamples, seed=seed)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal",
           xlabel="1 - specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)")
    ax.set_title(textwrap.fill(title, 55) if title else f"ROC curve (n = {y.size})", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_reliability(y_true, probs, path, n_bins: int = 15, *, title: str | None = None) -> Path:
    """Reliability diagram with the confidence histogram and the ECE (Guo et al. Fig. 1).

    Top: accuracy per equal-width bin of the confidence (max class probability) against
    the diagonal of perfect calibration, the gap to the bin's mean confidence shaded.
    Bottom: number of cases per bin, with the overall accuracy and mean confidence. The
    table and ECE come from `radtl.metrics.reliability_diagram`.

    Reference:
        Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks",
        ICML 2017.

    Args:
        y_true: array-like, class indices (N,) or one-hot rows (N, K).
        probs: array-like (N, K) class probabilities, or (N,) P(class 1).
        path: str or Path of the PNG to write.
        n_bins: int, default 15.
        title: str or None.

    Returns:
        The Path of the PNG.

    Example:
        >>> plot_reliability([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], "/tmp/rel.png").name
        'rel.png'
    """
    diagram = metrics_lib.reliability_diagram(y_true, probs, n_bins=n_bins)
    fig, axes = _figure(2, 1, size=(5.0, 2.8), gridspec_kw={"height_ratios": [2.2, 1]}, sharex=True)
    top, bottom = axes[0, 0], axes[1, 0]
    width = diagram.bin_upper - diagram.bin_lower
    filled = diagram.count > 0
    top.bar(diagram.bin_lower[filled], diagram.accuracy[filled], width=width[filled], align="edge",
            color="tab:blue", edgecolor="black", linewidth=0.6, label="accuracy")
    top.bar(diagram.bin_lower[filled], diagram.confidence[filled] - diagram.accuracy[filled],
            bottom=diagram.accuracy[filled], width=width[filled], align="edge", facecolor="none",
            edgecolor="tab:red", hatch="///", linewidth=0.6, label="gap to mean confidence")
    top.scatter(diagram.bin_lower[filled] + width[filled] / 2, diagram.confidence[filled], marker="_",
                s=120, color="tab:red", zorder=3, label="mean confidence")
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    top.set(ylim=(0, 1), ylabel="accuracy")
    top.set_title(title or f"Reliability diagram: ECE = {diagram.ece:.4f} ({n_bins} bins, "
                           f"n = {int(diagram.count.sum())})", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(diagram.bin_lower, diagram.count, width=width, align="edge", color="tab:grey",
               edgecolor="black", linewidth=0.6)
    total = diagram.count.sum()
    accuracy = float(np.nansum(diagram.accuracy * diagram.count) / total)
    confidence = float(np.nansum(diagram.confidence * diagram.count) / total)
    bottom.axvline(accuracy, color="tab:blue", linestyle="-", label=f"accuracy {accuracy:.3f}")
    bottom.axvline(confidence, color="tab:red", linestyle="--", label=f"mean confidence {confidence:.3f}")
    bottom.set(xlim=(0, 1), xlabel="confidence (max class probability)", ylabel="cases")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    return _save(fig, path)


def _as_columns(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def plot_boxplots(table: pd.DataFrame, path, *, by, metric: str, hue: str | None = None,
                  title: str | None = None) -> Path:
    """Box plots of a metric per setting, every run drawn as a point (Frees et al. style).

    One box per distinct combination of the `by` columns (the setting; its runs are the
    folds and seeds), with the individual runs overlaid as jittered points (fixed
    jitter, so the figure is reproducible). With `hue`, one of the `by` columns, boxes
    are coloured by its level and boxes that differ only in it stand side by side
    (e.g. `hue="weights"`: RadImageNet next to ImageNet for every backbone).

    Reference:
        Frees, Bolling & Bhagirath, "Towards Optimal Convolutional Transfer Learning
        Architectures for Breast Lesion Classification and ACL Tear Detection",
        arXiv 2508.17567 (2025): test-AUC box plots per configuration.

    Args:
        table: DataFrame, one row per run (e.g. `summarize(...).runs`).
        path: str or Path of the PNG to write.
        by: str, list of str, or None (one box of all runs): the setting columns.
        metric: str, the numeric column drawn, e.g. "test_auc".
        hue: str or None, a column of `by` that colours the boxes.
        title: str or None.

    Returns:
        The Path of the PNG.

    Example:
        >>> t = pd.DataFrame({"weights": ["imagenet"] * 3 + ["radimagenet"] * 3,
        ...                   "test_auc": [0.90, 0.92, 0.91, 0.93, 0.94, 0.92]})
        >>> plot_boxplots(t, "/tmp/box.png", by="weights", metric="test_auc").name
        'box.png'
    """
    columns = _as_columns(by)
    for name in [*columns, metric]:
        if name not in table.columns:
            raise ValueError(f"Column {name!r} not in `table`. Available columns: {list(table.columns)}.")
    if hue is not None and hue not in columns:
        raise ValueError(f"`hue` must be one of the `by` columns {columns}. Received: hue={hue!r}.")
    data = table.dropna(subset=[metric])
    if data.empty:
        raise ValueError(f"Column {metric!r} holds no values (all {len(table)} rows are NaN).")
    order = [c for c in columns if c != hue] + ([hue] if hue else [])
    if columns:
        groups = [(key if isinstance(key, tuple) else (key,), frame)
                  for key, frame in data.groupby(order, sort=True, dropna=False)]
    else:
        groups = [((), data)]
    hue_levels = sorted(data[hue].astype(str).unique()) if hue else []
    hue_colors = dict(zip(hue_levels, _colors(len(hue_levels))))
    fig, axes = _figure(size=(max(4.0, 0.9 * len(groups) + 1.5), 4.2))
    ax = axes[0, 0]
    values = [frame[metric].to_numpy(np.float64) for _, frame in groups]
    boxes = ax.boxplot(values, positions=range(len(groups)), widths=0.6, patch_artist=True,
                       showfliers=False, medianprops={"color": "black"})
    labels = []
    for i, ((key, frame), box) in enumerate(zip(groups, boxes["boxes"])):
        setting = dict(zip(order, key))
        color = hue_colors[str(setting[hue])] if hue else "tab:blue"
        box.set(facecolor=color, alpha=0.35)
        offsets = np.linspace(-0.15, 0.15, len(frame)) if len(frame) > 1 else np.zeros(1)
        ax.scatter(i + offsets, frame[metric], color=color, edgecolor="black", linewidth=0.5, s=18, zorder=3)
        shown = [f"{setting[c]}" for c in columns if c != hue] or ([str(setting[hue])] if hue else [])
        labels.append("\n".join(shown + [f"n={len(frame)}"]) if columns else f"all runs\nn={len(frame)}")
    ax.set_xticks(range(len(groups)), labels, fontsize=7)
    ax.set_ylabel(metric)
    if hue:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(facecolor=c, alpha=0.5, label=l) for l, c in hue_colors.items()],
                  title=hue, fontsize=8, title_fontsize=8)
    shown_by = [c for c in columns if c != hue]
    ax.set_title(title or f"{metric} per setting ({' / '.join(shown_by) or hue or 'all runs'}); "
                          "points: runs", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def write_run_plots(run_dir, *, split: str = "test", band_resamples: int = 2000) -> list[Path]:
    """Writes the standard figures of a run into `RUN_DIR/plots/`.

    Files: `training_curves.png` (history, best epoch marked), `roc_{split}.png` (ROC
    with the DeLong CI and a pointwise bootstrap band) and `reliability_{split}.png`.
    Works on a run whose `metrics.json` is not written yet (the trainer draws the plots
    just before): the best epoch is then the argmax of the config's `monitor` column.

    Args:
        run_dir: str or Path, a run directory with config.json, history.csv and
            predictions_{split}.csv.
        split: str, default "test".
        band_resamples: int, default 2000; 0 draws no band.

    Returns:
        The three Paths, in the order above.
    """
    run_dir = Path(run_dir)
    config, resolved = _read_config(run_dir)
    history = _read_history(run_dir)
    class_names = resolved.get("class_names")
    predictions = _read_predictions(run_dir, split, class_names)
    metrics_path = run_dir / RUN_FILES["metrics"]
    if metrics_path.is_file():
        best_epoch = _read_json(run_dir, "metrics").get("best_epoch")
    else:
        monitor = config.get("monitor", "val_auc")
        best_epoch = (int(history["epoch"].iloc[best_index(history[monitor], monitor)]) + 1
                      if monitor in history.columns and "epoch" in history.columns else None)
    plots = run_dir / RUN_FILES["plots"]
    y, probs = _labels_and_probs(predictions)
    scores = probs[:, 1] if probs.shape[1] == 2 else probs
    title = f"{run_dir.name} ({split})"
    return [
        plot_training_curves(history, plots / "training_curves.png", best_epoch=best_epoch,
                             title=run_dir.name),
        plot_roc(y, scores, plots / f"roc_{split}.png", band_resamples=band_resamples,
                 class_names=class_names, title=f"ROC curve: {title}, n = {y.size}"),
        plot_reliability(y, probs, plots / f"reliability_{split}.png"),
    ]


# ---------------------------------------------------------------------------------------
# Comparing runs on the same test images
# ---------------------------------------------------------------------------------------
def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate control).

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where adjusted < alpha
    controls the family-wise error rate at alpha under any dependence. Equal to R's
    `p.adjust(p, "holm")`. NaN p-values are left NaN and not counted in m.

    Reference:
        Holm, "A simple sequentially rejective multiple test procedure", Scandinavian
        Journal of Statistics 6 (1979) 65-70.

    Args:
        p_values: array-like (m,) of p-values in [0, 1].

    Returns:
        float array (m,), adjusted p-values in the input order.

    Example:
        >>> holm_adjust([0.01, 0.04, 0.03, 0.005]).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def _run_labels(paths: list[Path]) -> list[str]:
    """Shortest unique trailing parts of the paths: "fold1", else "imagenet/fold1", ..."""
    resolved = [p.resolve() for p in paths]
    for depth in range(1, max(len(p.parts) for p in resolved) + 1):
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names):
            return names
    raise ValueError(f"The same run is listed twice: {[str(p) for p in paths]}. Name each run once.")


def _aligned_predictions(runs: list[Run], labels: list[str], split: str) -> tuple[np.ndarray, list[pd.DataFrame]]:
    """Labels (N,) and each run's predictions reordered to the first run's filenames."""
    frames = [run.predictions(split) for run in runs]
    for frame, label in zip(frames, labels):
        duplicated = frame["filename"].duplicated()
        if duplicated.any():
            raise ValueError(f"Run {label}: {int(duplicated.sum())} filenames appear twice in its "
                             f"{split} predictions (e.g. {frame['filename'][duplicated].iloc[0]!r}); "
                             "predictions cannot be matched by image.")
    reference = frames[0].set_index("filename")
    aligned = [frames[0]]
    for frame, label in zip(frames[1:], labels[1:]):
        only_a = reference.index.difference(frame["filename"])
        only_b = pd.Index(frame["filename"]).difference(reference.index)
        if len(only_a) or len(only_b):
            examples = list(only_a[:2]) + list(only_b[:2])
            raise ValueError(
                f"Runs {labels[0]} and {label} were not evaluated on the same {split} images: "
                f"{len(only_a) + len(only_b)} filenames differ ({len(only_a)} only in {labels[0]}, "
                f"{len(only_b)} only in {label}; e.g. {examples}). The DeLong test needs both "
                "models scored on the same cases: compare runs of the same dataset and fold."
            )
        frame = frame.set_index("filename").loc[reference.index].reset_index()
        disagree = frame["label"].to_numpy() != frames[0]["label"].to_numpy()
        if disagree.any():
            raise ValueError(
                f"Runs {labels[0]} and {label} give different labels to {int(disagree.sum())} of "
                f"the same {split} images (e.g. {frame['filename'][disagree].iloc[0]!r}): the "
                "runs used different label definitions or datasets."
            )
        aligned.append(frame)
    return frames[0]["label"].to_numpy(np.int64), aligned


def _bootstrap_summary(result: stats_lib.BootstrapResult) -> dict:
    return {key: getattr(result, key) for key in
            ("estimate", "lower", "upper", "standard_error", "confidence_level", "method",
             "n_resamples", "stratified", "seed")}


def compare_runs(run_dirs: Iterable, *, split: str = "test", positive_class: int | None = None,
                 confidence_level: float = 0.95, n_resamples: int = 2000, method: str = "BCa",
                 seed: int = 0) -> dict:
    """Compares the AUCs of runs scored on the same test images, pair by pair.

    Predictions are matched by `filename` (the row order may differ); the runs must
    hold exactly the same images with the same labels. For every pair (a, b) this
    reports DeLong's test of AUC_a - AUC_b (`radtl.stats.delong_test`, as pROC's
    `roc.test(paired=TRUE)`) and the paired, class-stratified bootstrap CI of the same
    difference (`radtl.stats.paired_bootstrap_auc_difference`). With more than two runs
    the m = n(n - 1)/2 DeLong p-values are also Holm-adjusted (`p_value_holm`,
    family-wise error rate over the pairs); the bootstrap CIs are not adjusted.

    Reference:
        DeLong, DeLong & Clarke-Pearson, Biometrics 44 (1988) 837-845; Holm, Scand. J.
        Statist. 6 (1979) 65-70.

    Args:
        run_dirs: two or more run directories (str, Path or `Run`).
        split: str, default "test".
        positive_class: int or None. Class index scored as positive; default 1 for
            binary runs, required for multi-class runs (one-vs-rest AUC of that class).
        confidence_level: float, default 0.95, for the DeLong CI, its AUCs and the
            bootstrap CI.
        n_resamples: int, default 2000, bootstrap resamples.
        method: "BCa" (default) or "percentile", bootstrap interval.
        seed: int, default 0, bootstrap seed.

    Returns:
        A JSON-serialisable dict: `split`, `n_cases`, `n_pos`, `positive_class`,
        `runs` (name, path, auc, lower, upper per run), `pairs` (run_a, run_b,
        `delong` with the `DeLongTestResult` fields, `p_value_holm`, `bootstrap` with
        the AUC-difference interval), `correction` ("holm").
    """
    runs = [r if isinstance(r, Run) else load_run(r) for r in run_dirs]
    if len(runs) < 2:
        raise ValueError(f"`run_dirs` must name at least two runs to compare. Received {len(runs)}.")
    labels = _run_labels([r.path for r in runs])
    y, frames = _aligned_predictions(runs, labels, split)
    n_classes = len([c for c in frames[0].columns if c.startswith("prob_")])
    if positive_class is None:
        if n_classes != 2:
            raise ValueError(f"The runs have {n_classes} classes; the AUC comparison is binary. Pass "
                             f"positive_class=k (0..{n_classes - 1}) to compare class k against the rest.")
        positive_class = 1
    if not 0 <= positive_class < n_classes:
        raise ValueError(f"`positive_class` must lie in [0, {n_classes - 1}]. Received: "
                         f"positive_class={positive_class}.")
    y_pos = (y == positive_class).astype(np.int64)
    scores = [_labels_and_probs(frame)[1][:, positive_class] for frame in frames]
    summary_runs = []
    for label, run, score in zip(labels, runs, scores):
        auc = metrics_lib.delong_auc_ci(y_pos, score, confidence_level=confidence_level)
        summary_runs.append({"name": label, "path": str(run.path), "auc": auc.auc,
                             "lower": auc.lower, "upper": auc.upper})
    pairs = []
    for i, j in itertools.combinations(range(len(runs)), 2):
        delong = stats_lib.delong_test(y_pos, scores[i], scores[j], confidence_level=confidence_level)
        boot = stats_lib.paired_bootstrap_auc_difference(
            y_pos, scores[i], scores[j], n_resamples=n_resamples, method=method,
            confidence_level=confidence_level, seed=seed)
        pairs.append({"run_a": labels[i], "run_b": labels[j],
                      "delong": metrics_lib._json_dataclass(delong),
                      "bootstrap": _bootstrap_summary(boot)})
    adjusted = holm_adjust([pair["delong"]["p_value"] for pair in pairs])
    for pair, p in zip(pairs, adjusted):
        pair["p_value_holm"] = metrics_lib._json_float(p)
    return {"split": split, "n_cases": int(y.size), "n_pos": int(y_pos.sum()),
            "positive_class": int(positive_class), "runs": summary_runs, "pairs": pairs,
            "correction": "holm"}


def _markdown_table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A GitHub-flavoured Markdown table of `frame` (floats formatted, NaN as '-')."""
    def cell(value):
        if isinstance(value, float):
            return "-" if math.isnan(value) else float_format.format(value)
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def format_comparison(result: dict) -> str:
    """`compare_runs`'s result as Markdown: AUC per run, then one row per pair."""
    runs = pd.DataFrame(result["runs"])[["name", "auc", "lower", "upper"]]
    pairs = pd.DataFrame([{
        "run_a": p["run_a"], "run_b": p["run_b"], "auc_a - auc_b": p["delong"]["difference"],
        "DeLong CI": f"{p['delong']['lower']:.4f} to {p['delong']['upper']:.4f}",
        "z": p["delong"]["z"], "p": p["delong"]["p_value"], "p (Holm)": p["p_value_holm"],
        f"bootstrap {p['bootstrap']['method']} CI":
            f"{p['bootstrap']['lower']:.4f} to {p['bootstrap']['upper']:.4f}",
    } for p in result["pairs"]])
    return (f"{result['split']} split: {result['n_cases']} images, {result['n_pos']} positive "
            f"(class {result['positive_class']}).\n\n{_markdown_table(runs)}\n\n"
            f"{_markdown_table(pairs)}\n")


# ---------------------------------------------------------------------------------------
# Summarising a study
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class SummaryResult:
    """What `summarize` computed and wrote.

    Attributes:
        runs: DataFrame, one row per finished run (`summary_runs.csv`).
        summary: DataFrame, one row per setting: n, mean and sd of each metric
            (`summary.csv`).
        comparisons: DataFrame, one row per compared factor (`comparisons.csv`).
        paired: list of `radtl.stats.PairedComparison`, with the paired values.
        markdown: str, the content of `summary.md`.
        paths: dict, file kind -> Path written ("runs", "summary", "markdown",
            "comparisons", "boxplot").
        unfinished: list of Path, run directories skipped (no metrics.json).
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    paired: list
    markdown: str
    paths: dict
    unfinished: list


def _config_value(value: Any):
    """A config value as a hashable table cell: None -> "none", dict/list -> JSON."""
    if value is None:
        return "none"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def _report_value(report: dict | None, paths) -> float:
    for path in paths:
        value = report
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return float(value)
    return math.nan


def _runs_table(runs: list[Run], runs_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The run table and its varying setting columns (not fold/seed, not paths)."""
    configs = pd.DataFrame([{k: _config_value(v) for k, v in run.config.items()} for run in runs])
    varying = [c for c in configs.columns
               if c not in _PATH_FIELDS and configs[c].astype(str).nunique() > 1]
    settings = [c for c in varying if c not in REPLICATE_FIELDS]
    replicates = [c for c in REPLICATE_FIELDS if c in configs.columns]
    table = configs[settings + replicates].copy()
    table.insert(0, "run", [run.path.relative_to(runs_dir).as_posix() or "." for run in runs])
    for split, name in _RUN_TABLE_METRICS:
        table[f"{split}_{name}"] = [_report_value(run.metrics.get(split), _REPORT_FIELDS[name]) for run in runs]
    table["best_epoch"] = [run.metrics.get("best_epoch", math.nan) for run in runs]
    return table, settings


def _setting_summary(table: pd.DataFrame, settings: list[str], metric_columns: list[str]) -> pd.DataFrame:
    """n, mean and sd (ddof=1) of each metric per setting."""
    keys = settings or ["_all"]
    frame = table.assign(_all="all runs") if not settings else table
    grouped = frame.groupby(keys, sort=True, dropna=False)
    summary = grouped.size().rename("n").to_frame()
    for column in metric_columns:
        summary[f"{column}_mean"] = grouped[column].mean()
        summary[f"{column}_sd"] = grouped[column].std(ddof=1)
    summary = summary.reset_index()
    return summary.rename(columns={"_all": "setting"})


def _comparison_factors(table: pd.DataFrame, settings: list[str], compare) -> dict[str, tuple]:
    """factor -> (level_a, level_b) to compare; see `summarize`."""
    def default_levels(factor):
        levels = sorted(pd.unique(table[factor]), key=str)
        if len(levels) != 2:
            raise ValueError(
                f"Factor {factor!r} has {len(levels)} levels {levels}; the paired comparison needs "
                f"two. Pass compare={{{factor!r}: (level_a, level_b)}} to choose them."
            )
        baseline = next((b for b in _BASELINE_LEVELS.get(factor, ()) if b in levels), None)
        return tuple(sorted(levels, key=lambda level: level == baseline))

    if compare is None:
        return {f: default_levels(f) for f in settings if table[f].astype(str).nunique() == 2}
    if isinstance(compare, dict):
        requested = {f: tuple(levels) for f, levels in compare.items()}
    else:
        requested = {f: None for f in _as_columns(compare)}
    for factor in requested:
        if factor not in table.columns or factor in REPLICATE_FIELDS or factor == "run":
            raise ValueError(f"Cannot compare on {factor!r}: not a varying setting of these runs. "
                             f"Varying settings: {settings}.")
    return {f: levels if levels is not None else default_levels(f) for f, levels in requested.items()}


def _aliased_columns(subset: pd.DataFrame, factor: str, candidates: list[str]) -> list[str]:
    """Columns that take one value per level of `factor` and differ between the levels.

    Such a column (e.g. `preprocessing` native for ImageNet, official for RadImageNet)
    changes together with the factor, so pairing on it would leave no pairs; it is part
    of what the comparison compares.
    """
    aliased = []
    for column in candidates:
        per_level = subset.groupby(factor)[column].nunique(dropna=False)
        if (per_level == 1).all() and subset[column].astype(str).nunique() == len(per_level):
            aliased.append(column)
    return aliased


def _compare_factor(table, settings, factor, levels, metric, average_over):
    """Runs `radtl.stats.compare_paired` for one factor; returns (row dict, PairedComparison)."""
    subset = table[table[factor].isin(levels)].dropna(subset=[metric])
    others = [c for c in settings if c != factor]
    aliased = _aliased_columns(subset, factor, others)
    keys = [c for c in others if c not in aliased] + [
        c for c in REPLICATE_FIELDS if c in table.columns and c not in average_over]
    results = subset[[*keys, *average_over, factor, metric]]
    pairs = stats_lib.pair_results(results, factor=factor, metric=metric, levels=levels,
                                   pair_on=keys, average_over=average_over or None, drop_unpaired=True)
    n_units = len(results[[*keys, factor]].drop_duplicates())
    n_unpaired = n_units - 2 * len(pairs)
    row = {"factor": factor, "level_a": str(levels[0]), "level_b": str(levels[1]), "metric": metric,
           "n_pairs": len(pairs), "n_unpaired": n_unpaired, "paired_on": " ".join(keys),
           "aliased": " ".join(aliased), "averaged_over": " ".join(average_over)}
    if aliased:
        warnings.warn(f"Comparison of {factor} ({levels[0]} vs {levels[1]}): {aliased} take one value per "
                      f"level (aliased with {factor}), so the comparison is of {factor} together with "
                      f"{aliased}; runs are paired on {keys}.", stacklevel=3)
    if n_unpaired:
        warnings.warn(f"Comparison of {factor} ({levels[0]} vs {levels[1]}): {n_unpaired} run(s) "
                      f"without a partner on {keys} were left out.", stacklevel=3)
    if len(pairs) == 0:
        warnings.warn(f"Comparison of {factor} ({levels[0]} vs {levels[1]}): no runs pair up on "
                      f"{keys}; no test.", stacklevel=3)
        return row, None
    comparison = stats_lib.compare_paired(results, factor=factor, metric=metric, levels=levels,
                                          pair_on=keys, average_over=average_over or None,
                                          drop_unpaired=True)
    row |= {
        "mean_a": float(comparison.pairs[str(levels[0])].mean()),
        "mean_b": float(comparison.pairs[str(levels[1])].mean()),
        "mean_difference": comparison.mean_difference,
        "median_difference": comparison.median_difference,
        "permutation_p": comparison.permutation.p_value,
        "permutation_exact": comparison.permutation.exact,
        "wilcoxon_statistic": comparison.wilcoxon.statistic,
        "wilcoxon_p": comparison.wilcoxon.p_value,
    }
    return row, comparison


def _summary_markdown(table, summary, comparisons, settings, metric_columns, unfinished) -> str:
    display = summary[[c for c in summary.columns if not c.endswith(("_mean", "_sd"))]].copy()
    for column in metric_columns:
        mean, sd = summary[f"{column}_mean"], summary[f"{column}_sd"]
        digits = 1 if column == "best_epoch" else 4
        display[column] = [
            "-" if math.isnan(m) else f"{m:.{digits}f}" + ("" if math.isnan(s) else f" ± {s:.{digits}f}")
            for m, s in zip(mean, sd)]
    lines = [
        "# Summary", "",
        f"{len(table)} finished runs; settings differ in: {', '.join(settings) or 'nothing'}; "
        f"replicates: {', '.join(c for c in REPLICATE_FIELDS if c in table.columns)}."
        + (f" {len(unfinished)} unfinished run(s) skipped." if unfinished else ""), "",
        "## Mean ± sd per setting", "",
        "Sample sd (ddof = 1) over the runs (folds and seeds) of each setting; test metrics at "
        "threshold 0.5; AUC is the binary ROC AUC (scikit-learn), ECE with 15 bins.", "",
        _markdown_table(display), "",
    ]
    if not comparisons.empty:
        lines += [
            "## Paired comparisons", "",
            "Runs of the two levels are paired on the columns in `paired_on`; differences are "
            "level_a - level_b. Paired sign-flip permutation test of the mean difference "
            "(`radtl.stats.paired_permutation_test`) and Wilcoxon signed-rank test "
            "(`radtl.stats.wilcoxon_signed_rank`), two-sided; `_holm` columns are Holm-adjusted "
            "over the comparisons in this table. Runs sharing a fold share test data, so treat "
            "p-values as descriptive. Columns in `aliased` change together with the factor and "
            "are part of what is compared.", "",
            _markdown_table(comparisons), "",
        ]
    return "\n".join(lines)


def summarize(runs_dir, *, out_dir=None, metric: str = "test_auc", compare=None,
              average_over: Sequence[str] | None = None) -> SummaryResult:
    """Aggregates every finished run under `runs_dir` into tables, tests and box plots.

    1. `summary_runs.csv`: one row per finished run: `run` (path relative to
       `runs_dir`), the config fields that vary across runs (None written as "none",
       dict options as JSON), `fold`, `seed`, and metrics from `metrics.json`: test AUC
       with its DeLong CI (`test_auc`, `test_auc_lower`, `test_auc_upper`; multi-class:
       macro one-vs-rest AUC, no CI), `test_accuracy`, `test_sensitivity`,
       `test_specificity` (threshold 0.5), `test_ece`, `test_brier`, `val_auc` and
       `best_epoch` (1-based).
    2. `summary.csv` / `summary.md`: one row per setting (every varying config field
       except fold and seed): n runs, mean and sample sd of every metric (not the CI
       bounds).
    3. `comparisons.csv` (and a section of `summary.md`): for each factor in `compare`,
       or by default each setting field with exactly two levels, runs are paired on all
       other varying fields plus fold and seed (`radtl.stats.pair_results`), leaving
       out fields aliased with the factor (one value per level, e.g. preprocessing that
       follows the weights), and `radtl.stats.compare_paired` tests the differences of
       `metric` (paired permutation and Wilcoxon signed-rank, two-sided). Default level
       order is alphabetical except that a baseline goes second ("imagenet", then
       "none", for `weights`: differences read radimagenet - imagenet). P-values are
       also Holm-adjusted across the factors compared (`holm_adjust`). Runs without a
       partner are left out with a warning.
    4. `boxplot_<metric>.png`: `metric` per setting, runs as points, coloured by the
       compared factor `weights` when compared, else the first compared factor
       (`plot_boxplots`).

    Args:
        runs_dir: str or Path, searched recursively for run directories.
        out_dir: str, Path or None (default: `runs_dir`), where the files go.
        metric: str, default "test_auc", the run-table column compared and box-plotted.
        compare: None (automatic), a factor name, a list of names, or a dict
            {factor: (level_a, level_b)} fixing the levels and their order.
        average_over: list of str or None, e.g. ["seed"]: average the metric over these
            replicate fields before pairing (one pair per fold), see
            `radtl.stats.pair_results`.

    Returns:
        A `SummaryResult` with the DataFrames, the Markdown text and the paths.

    Example:
        >>> result = summarize("runs/acl_study", compare={"weights": ("radimagenet", "imagenet")})  # doctest: +SKIP
        >>> result.comparisons[["factor", "mean_difference", "wilcoxon_p"]]                          # doctest: +SKIP
    """
    runs_dir = Path(runs_dir)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir
    finished, unfinished = _scan_runs(runs_dir)
    _warn_unfinished(unfinished)
    if not finished:
        raise ValueError(f"No finished run under {runs_dir} (a finished run directory holds "
                         f"{RUN_FILES['config']} and {RUN_FILES['metrics']}); "
                         f"{len(unfinished)} unfinished run(s) found.")
    runs = [load_run(d) for d in finished]
    table, settings = _runs_table(runs, runs_dir)
    all_metrics = list(table.columns[table.columns.get_loc("test_auc"):])
    if metric not in all_metrics:
        raise ValueError(f"`metric` must be a metric column of the run table, one of {all_metrics}. "
                         f"Received: metric={metric!r}.")
    metric_columns = [c for c in all_metrics if c not in _NOT_AVERAGED]
    average_over = list(average_over or [])
    if not set(average_over) <= set(REPLICATE_FIELDS):
        raise ValueError(f"`average_over` may name only {list(REPLICATE_FIELDS)}. Received: {average_over}.")
    summary = _setting_summary(table, settings, metric_columns)

    rows, paired = [], []
    for factor, levels in _comparison_factors(table, settings, compare).items():
        row, comparison = _compare_factor(table, settings, factor, levels, metric, average_over)
        rows.append(row)
        if comparison is not None:
            paired.append(comparison)
    comparisons = pd.DataFrame(rows)
    for column in ("permutation_p", "wilcoxon_p"):
        if column in comparisons.columns:
            comparisons[f"{column}_holm"] = holm_adjust(comparisons[column])

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"runs": out_dir / "summary_runs.csv", "summary": out_dir / "summary.csv",
             "comparisons": out_dir / "comparisons.csv", "markdown": out_dir / "summary.md"}
    table.to_csv(paths["runs"], index=False)
    summary.to_csv(paths["summary"], index=False)
    comparisons.to_csv(paths["comparisons"], index=False)
    markdown = _summary_markdown(table, summary, comparisons, settings, metric_columns, unfinished)
    paths["markdown"].write_text(markdown)
    compared = [f for f in comparisons.get("factor", []) if f in settings]
    hue = next((f for f in _PREFERRED_HUE if f in compared), compared[0] if compared else None)
    paths["boxplot"] = plot_boxplots(table, out_dir / f"boxplot_{metric}.png", by=settings or None,
                                     metric=metric, hue=hue)
    return SummaryResult(runs=table, summary=summary, comparisons=comparisons, paired=paired,
                         markdown=markdown, paths=paths, unfinished=unfinished)
