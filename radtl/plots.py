"""Figures of runs and studies: training curves, ROC, reliability diagrams, box plots.

Each `plot_*` function draws one PNG from data (arrays or DataFrames), never from
paths; `write_run_plots` draws the standard figures of one run directory (read through
`radtl.rundir.RunDir`) into `RUN_DIR/plots/`. The numbers in the figures come from
`radtl.metrics` (AUC with DeLong CI, reliability table) and `radtl.stats` (bootstrap
band); this module only draws.

Matplotlib is imported on first use and figures are drawn on its Agg canvas without
pyplot, so no global backend is changed, no figure leaks and `import radtl.plots` stays
cheap.

Example:
    >>> h = pd.DataFrame({"epoch": [0, 1], "loss": [0.7, 0.5], "val_loss": [0.8, 0.6]})
    >>> plot_training_curves(h, "/tmp/curves.png").name
    'curves.png'
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from radtl import metrics as metrics_lib
from radtl import stats as stats_lib
from radtl.rundir import RunDir
from radtl.rundir import best_index
from radtl.rundir import labels_and_probs

__all__ = [
    "plot_training_curves",
    "plot_roc",
    "plot_reliability",
    "plot_boxplots",
    "plot_similarity",
    "plot_metric_by",
    "plot_explanations",
    "write_run_plots",
]

#: History columns that are not a loss or metric curve.
_HISTORY_NON_CURVES = ("epoch", "learning_rate", "lr", "stage")


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
        band = stats_lib.roc_sensitivity_band(y_true, score, n_resamples=band_resamples,
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
    sensitivity at specificities 0, 0.05, ..., 1 (`radtl.stats.roc_sensitivity_band`, seeded).

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


def plot_similarity(table: pd.DataFrame, path, *, title: str | None = None) -> Path:
    """Similarity per backbone stage, one line per comparison, one panel per method.

    Args:
        table: DataFrame as `radtl.activations.compare_runs` returns: `stage`,
            `stage_index`, `method`, `similarity`, `std`, `comparison`.
        path: str or Path of the PNG to write.
        title: str or None.

    Returns:
        The Path of the PNG.
    """
    methods = list(dict.fromkeys(table["method"]))
    comparisons = list(dict.fromkeys(table["comparison"]))
    fig, axes = _figure(1, len(methods), size=(4.5, 3.6))
    for ax, method in zip(axes[0], methods):
        for comparison, color in zip(comparisons, _colors(len(comparisons))):
            rows = table[(table["method"] == method) & (table["comparison"] == comparison)].sort_values("stage_index")
            ax.errorbar(rows["stage_index"], rows["similarity"], yerr=rows["std"], label=comparison, color=color,
                        marker="o", capsize=3)
        stages = table.drop_duplicates("stage_index").sort_values("stage_index")
        ax.set_xticks(stages["stage_index"], stages["stage"], rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_title(method)
        ax.set_ylabel("similarity")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_metric_by(table: pd.DataFrame, path, *, x: str, metrics, hue: str | None = None,
                   title: str | None = None) -> Path:
    """Mean (+- sd over runs) of each metric against a numeric setting, one line per `hue` level.

    E.g. AUC on the clean and the confounded test sets against the confounder fraction,
    one line per pre-training source (Source Matters, Juodelyte et al. 2024, Fig. 3).

    Args:
        table: DataFrame, one row per run (`radtl.analysis.summarize`'s run table).
        path: str or Path of the PNG to write.
        x: str. Numeric column on the x axis (e.g. "confounder.fraction").
        metrics: list of str. Columns plotted, one panel each.
        hue: str or None. Column whose levels get a line each (e.g. "weights").
        title: str or None.

    Returns:
        The Path of the PNG.
    """
    metrics = [m for m in metrics if m in table.columns]
    levels = list(dict.fromkeys(table[hue])) if hue else [None]
    fig, axes = _figure(1, len(metrics), size=(4.2, 3.4))
    for ax, metric in zip(axes[0], metrics):
        for level, color in zip(levels, _colors(len(levels))):
            rows = table if level is None else table[table[hue] == level]
            stats = rows.groupby(x)[metric].agg(["mean", "std"]).sort_index()
            ax.errorbar(stats.index.astype(float), stats["mean"], yerr=stats["std"].fillna(0), marker="o",
                        capsize=3, color=color, label=None if level is None else f"{hue}={level}")
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if hue:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_explanations(images, cams, masks, titles, path, *, columns: int = 4) -> Path:
    """A grid of images with their Grad-CAM map overlaid and the lesion mask outlined.

    Args:
        images: (N, H, W, 3) uint8 images.
        cams: (N, H, W) maps in [0, 1].
        masks: (N, H, W) {0, 1} masks (all 0: no outline).
        titles: N strings (e.g. the true label and the predicted probability).
        path: str or Path of the PNG to write.
        columns: int. Tiles per row. Defaults to 4.

    Returns:
        The Path of the PNG.
    """
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = _figure(rows, min(columns, max(n, 1)), size=(2.4, 2.5))
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(images[k])
        ax.imshow(cams[k], cmap="jet", alpha=0.4, vmin=0, vmax=1)
        if np.asarray(masks[k]).any():
            ax.contour(masks[k], levels=[0.5], colors="white", linewidths=1.0)
        ax.set_title(titles[k], fontsize=7)
    return _save(fig, path)


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
        table: DataFrame, one row per run (e.g. `radtl.analysis.summarize(...).runs`).
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
    columns = [] if by is None else [by] if isinstance(by, str) else list(by)
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
    just before): the best epoch is then the best value of the config's `monitor`
    column (`radtl.rundir.best_index`).

    Args:
        run_dir: str, Path or `radtl.rundir.RunDir`, a run directory with config.json,
            history.csv and predictions_{split}.csv.
        split: str, default "test".
        band_resamples: int, default 2000; 0 draws no band.

    Returns:
        The three Paths, in the order above.

    Raises:
        RunDirectoryError: `run_dir` is not a run directory (no config.json).
        FileNotFoundError: no history.csv or no predictions for `split`.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.require_run()
    config = run.read_config_dict()
    class_names = run.class_names
    history = run.history()
    predictions = run.read_predictions(split, class_names)
    if run.status == "finished":
        best_epoch = run.read_metrics().get("best_epoch")
    else:
        monitor = config.get("monitor", "val_auc")
        best_epoch = (int(history["epoch"].iloc[best_index(history[monitor], monitor)]) + 1
                      if monitor in history.columns and "epoch" in history.columns else None)
    plots = run.file("plots")
    y, probs = labels_and_probs(predictions)
    scores = probs[:, 1] if probs.shape[1] == 2 else probs
    title = f"{run.name} ({split})"
    return [
        plot_training_curves(history, plots / "training_curves.png", best_epoch=best_epoch, title=run.name),
        plot_roc(y, scores, plots / f"roc_{split}.png", band_resamples=band_resamples,
                 class_names=class_names, title=f"ROC curve: {title}, n = {y.size}"),
        plot_reliability(y, probs, plots / f"reliability_{split}.png"),
    ]
