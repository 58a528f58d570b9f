"""Comparing runs and summarising a study.

A run directory (written by `radtl.train.run`, read only through `radtl.rundir.RunDir`)
holds `config.json`, `history.csv`, `predictions_{split}.csv` and, once finished,
`metrics.json`; a run that diverged or collapsed holds `failed.json` instead. This module
turns such directories into tables and tests:

* `load_run` / `find_runs`: one finished run, or every finished run under a folder, as a
  `Run` (config, metrics and history read once; predictions on demand).
* `format_report`: one `radtl.metrics.evaluate_predictions` report as one line.
* `compare_runs` / `format_comparison`: two or more runs on the same test images
  (DeLong test and paired bootstrap of the AUC difference, Holm-corrected across pairs).
* `summarize`: one table of every run, mean and sd per setting, paired permutation and
  Wilcoxon tests of two-level factors (e.g. RadImageNet vs ImageNet), box plots, and the
  failed runs with their reasons (never averaged in).

Statistics come from `radtl.metrics` and `radtl.stats`, figures from `radtl.plots`; this
module only reads, aligns and tabulates.

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
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from radtl import metrics as metrics_lib
from radtl import similarity
from radtl import stats as stats_lib
from radtl.plots import plot_boxplots
from radtl.plots import plot_metric_by
from radtl.rundir import align_predictions
from radtl.rundir import RunDir
from radtl.rundir import labels_and_probs
from radtl.rundir import probabilities

__all__ = [
    "Run",
    "SummaryResult",
    "load_run",
    "find_runs",
    "format_report",
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
# Reading run directories (through RunDir)
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A finished run directory, its small files read once into memory.

    Attributes:
        rundir: the `radtl.rundir.RunDir` it was read from.
        config: dict, `TrainConfig.to_dict()` as recorded in `config.json`.
        resolved: dict, what the run resolved at start (precision, versions,
            class_names, ...).
        metrics: dict, `metrics.json`: `monitor`, `best_epoch` (1-based), `best_value`
            and one `radtl.metrics.evaluate_predictions` report per evaluated split.
        history: DataFrame, one row per epoch (`epoch` 0-based, as CSVLogger; an epoch
            logged twice keeps its last row); empty for an ensemble (`radtl.ensembles`).
    """

    rundir: RunDir
    config: dict
    resolved: dict
    metrics: dict
    history: pd.DataFrame = dataclasses.field(repr=False)

    @property
    def path(self) -> Path:
        """The run directory's Path."""
        return self.rundir.path

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.rundir.name

    @property
    def class_names(self) -> list[str] | None:
        """Class names in label order, from `config.json` (None if not recorded)."""
        return self.resolved.get("class_names")

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """The predictions of one split (`RunDir.read_predictions`): filename, exam_id,
        label, prob_<class>..., one row per image, checked against the class names.

        Args:
            split: str, "test" (default) or "val" (any split the run was evaluated on).
        """
        return self.rundir.read_predictions(split, self.class_names)

    def labels_and_probs(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """Labels (N,) int64 and probabilities (N, K) float64 of one split, in file order."""
        return labels_and_probs(self.predictions(split))


def load_run(run_dir) -> Run:
    """Reads a finished run directory.

    Args:
        run_dir: str, Path or `radtl.rundir.RunDir`, a directory written by
            `radtl.train.run`.

    Returns:
        A `Run`. Predictions are read on demand (`run.predictions("test")`).

    Raises:
        RunDirectoryError: not a run directory, or a failed or unfinished run
            (`RunDir.require_finished`, whose message says which and what to do).
        FileNotFoundError: the run has no `history.csv`.

    Example:
        >>> run = load_run("runs/resnet50_radimagenet/fold1")   # doctest: +SKIP
        >>> run.metrics["test"]["roc_auc"]["auc"]               # doctest: +SKIP
    """
    rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    rundir.require_finished()
    resolved = rundir.read_resolved()
    history = pd.DataFrame() if resolved.get("kind") == "ensemble" else rundir.history()  # ensembles train nothing
    return Run(rundir=rundir, config=rundir.read_config_dict(), resolved=resolved,
               metrics=rundir.read_metrics(), history=history)


def _scan(runs_dir) -> dict[str, list[RunDir]]:
    """Run directories under `runs_dir` by status ("finished", "failed", "unfinished");
    warns about the failed and unfinished ones, which are left out of every result."""
    found = {"finished": [], "failed": [], "unfinished": []}
    for run in RunDir.scan(runs_dir):
        found[run.status].append(run)
    if found["unfinished"]:
        listed = ", ".join(str(run.path) for run in found["unfinished"])
        warnings.warn(
            f"Skipping {len(found['unfinished'])} unfinished run(s) (no {RunDir.FILES['metrics']}): "
            f"{listed}. Resume them (`radtl train --resume --out RUN_DIR`) to include them.",
            stacklevel=3,
        )
    if found["failed"]:
        listed = "; ".join(f"{run.path} ({_failure(run)['reason']})" for run in found["failed"])
        warnings.warn(
            f"Leaving out {len(found['failed'])} failed run(s) ({RunDir.FILES['failure']}: diverged or "
            f"collapsed, no result): {listed}.",
            stacklevel=3,
        )
    return found


def _failure(run: RunDir) -> dict:
    """`failed.json` with `kind` and `reason` always present."""
    failure = run.read_failure() or {}
    return {**failure, "kind": failure.get("kind", "unknown"), "reason": failure.get("reason", "no reason recorded")}


def find_runs(runs_dir) -> list[Run]:
    """Every finished run directory under `runs_dir`, searched recursively.

    A run directory is one holding `config.json` (`RunDir.scan`); it is finished when it
    also holds `metrics.json`. Unfinished and failed runs (`failed.json`) are left out
    and listed in a `UserWarning`.

    Args:
        runs_dir: str or Path, e.g. the output folder of a study.

    Returns:
        list of `Run`, sorted by path (empty if none is finished).
    """
    return [load_run(run) for run in _scan(runs_dir)["finished"]]


# ---------------------------------------------------------------------------------------
# One evaluation report
# ---------------------------------------------------------------------------------------
def _number(value, digits: int = 4) -> str:
    """A float with `digits` decimals, "n/a" for None or NaN (undefined in the report)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_report(report: dict, split: str) -> str:
    """One line summarising a `radtl.metrics.evaluate_predictions` report of one split.

    Binary: AUC of P(class 1) with its DeLong CI and the class counts, accuracy,
    sensitivity and specificity at the report's threshold, and the ECE. Multi-class:
    top-1 accuracy and the macro one-vs-rest AUC. Undefined values (e.g. a DeLong CI with
    one positive case) read "n/a".

    Args:
        report: dict, one split's report (e.g. `RunDir.read_metrics()["val"]`).
        split: str, the split the report is of ("train", "val", "test"): the label of
            every number.

    Returns:
        str, one line without a trailing newline.

    Example:
        >>> report = metrics_lib.evaluate_predictions([0, 1, 1, 0], [0.3, 0.8, 0.6, 0.4])
        >>> format_report(report, "val")[:12]
        'val AUC 1.00'
    """
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be the name of the evaluated split, e.g. 'val'. Received: split={split!r}.")
    task = report.get("task") if isinstance(report, dict) else None
    if task == "binary":
        auc, thresholds = report["roc_auc"], report["threshold_metrics"]
        level = auc.get("confidence_level") or 0.95
        return (f"{split} AUC {_number(auc['auc'])} ({level:.0%} CI {_number(auc['lower'])}-{_number(auc['upper'])}, "
                f"DeLong; n={auc['n_pos'] + auc['n_neg']}, {auc['n_pos']} positive), "
                f"accuracy {_number(thresholds['accuracy'])}, sensitivity {_number(thresholds['sensitivity'])}, "
                f"specificity {_number(thresholds['specificity'])} (threshold {thresholds['threshold']:g}), "
                f"ECE {_number(report['calibration']['ece'])}")
    if task == "multiclass":
        return (f"{split} accuracy {_number(report['accuracy'])}, macro AUC {_number(report['macro_roc_auc_ovr'])} "
                f"(one-vs-rest, {report['n_classes']} classes; n={report['n_samples']})")
    received = f"task={task!r}" if isinstance(report, dict) else f"{type(report).__name__}"
    raise ValueError("`report` must be a report of radtl.metrics.evaluate_predictions (task 'binary' or "
                     f"'multiclass'). Received: {received}.")


# ---------------------------------------------------------------------------------------
# Comparing runs on the same test images
# ---------------------------------------------------------------------------------------
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
    frames = align_predictions([run.predictions(split) for run in runs], [f"Run {label}" for label in labels],
                               split=split, fix="The DeLong test needs both models scored on the same cases: "
                                                "compare runs of the same dataset and fold.")
    return frames[0]["label"].to_numpy(np.int64), frames


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
        run_dirs: two or more finished run directories (str, Path, `RunDir` or `Run`).
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

    Raises:
        RunDirectoryError: a run is failed (it has no result), unfinished or not a run
            directory (`RunDir.require_finished`'s message).
        ValueError: fewer than two runs, different images or labels, or no
            `positive_class` for multi-class runs.
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
    scores = [probabilities(frame)[:, positive_class] for frame in frames]
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
                      "bootstrap": _bootstrap_summary(boot),
                      "agreement": similarity.prediction_agreement(frames[i], frames[j])})
    for pair, (i, j) in zip(pairs, itertools.combinations(range(len(runs)), 2)):
        localisation = _compare_localisation(runs[i].rundir, runs[j].rundir, split, seed=seed)
        if localisation is not None:
            pair["localisation"] = localisation
    adjusted = stats_lib.holm_adjust([pair["delong"]["p_value"] for pair in pairs])
    for pair, p in zip(pairs, adjusted):
        pair["p_value_holm"] = metrics_lib._json_float(p)
    return {"split": split, "n_cases": int(y.size), "n_pos": int(y_pos.sum()),
            "positive_class": int(positive_class), "runs": summary_runs, "pairs": pairs,
            "correction": "holm"}


def _compare_localisation(run_a: RunDir, run_b: RunDir, split: str, *, seed: int = 0) -> dict | None:
    """Paired comparison of two runs' per-image localisation scores (`radtl explain`) on
    the images both scored: mean difference of each score with a paired permutation test.
    None unless both runs have `localisation_{split}.csv`."""
    paths = [run.file("localisation", split=split) for run in (run_a, run_b)]
    if not all(path.is_file() for path in paths):
        return None
    a, b = (pd.read_csv(path, dtype={"filename": str}).set_index("filename") for path in paths)
    scores = [c for c in ("dice", "iou", "energy_pointing_game", "pointing_game") if c in a and c in b]
    both = a[scores].join(b[scores], lsuffix="_a", rsuffix="_b", how="inner").dropna()
    result = {"n": int(len(both))}
    for score in scores:
        if len(both) < 2:
            break
        test = stats_lib.paired_permutation_test(both[f"{score}_a"], both[f"{score}_b"], seed=seed)
        result[score] = {"mean_a": float(both[f"{score}_a"].mean()), "mean_b": float(both[f"{score}_b"].mean()),
                         "mean_difference": float(test.mean_difference), "permutation_p": float(test.p_value)}
    return result


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
    agreement = "\n\n".join(
        f"{p['run_a']} vs {p['run_b']}:\n"
        + similarity.format_agreement(p["agreement"], names=(p["run_a"], p["run_b"]))
        for p in result["pairs"] if "agreement" in p)
    localisation = pd.DataFrame([
        {"run_a": p["run_a"], "run_b": p["run_b"], "score": score, "n": p["localisation"]["n"], **values}
        for p in result["pairs"] if "localisation" in p
        for score, values in p["localisation"].items() if isinstance(values, dict)])
    if not localisation.empty:
        agreement += ("\n\nLocalisation (Grad-CAM against the lesion masks, paired permutation test):\n\n"
                      + _markdown_table(localisation))
    return (f"{result['split']} split: {result['n_cases']} images, {result['n_pos']} positive "
            f"(class {result['positive_class']}).\n\n{_markdown_table(runs)}\n\n"
            f"{_markdown_table(pairs)}\n" + (f"\n{agreement}\n" if agreement else ""))


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
        paths: dict, file kind -> Path written ("runs", "summary", "failed",
            "markdown", "comparisons", "boxplot").
        unfinished: list of Path, run directories skipped (no metrics.json).
        failed: DataFrame, one row per failed run (`summary_failed.csv`): `run`, the
            config fields that vary across finished and failed runs, fold, seed, and
            `kind` and `reason` from its `failed.json`. Never averaged in.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    paired: list
    markdown: str
    paths: dict
    unfinished: list
    failed: pd.DataFrame


def _config_value(value: Any):
    """A config value as a hashable table cell: None -> "none", dict/list -> JSON."""
    if value is None:
        return "none"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def _flat_config(config: dict) -> dict:
    """Config fields as table cells; a dict field becomes one `field.key` column per key
    (e.g. `confounder.fraction`), so settings read, group and plot like other fields."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update({f"{key}.{sub}": _config_value(v) for sub, v in sorted(value.items())})
        else:
            flat[key] = _config_value(value)
    return flat


def _report_value(report: dict | None, paths) -> float:
    for path in paths:
        value = report
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return float(value)
    return math.nan


def _config_table(configs: list[dict], paths: list[Path], runs_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """`run` (path relative to `runs_dir`) and the config fields that vary (not paths):
    settings first, then fold and seed; and the list of setting columns."""
    configs = pd.DataFrame([_flat_config(config) for config in configs])
    # A run without a dict setting (e.g. no confounder) reads "none" in its `field.key` columns.
    dotted = [c for c in configs.columns if "." in c]
    configs[dotted] = configs[dotted].astype(object).where(configs[dotted].notna(), "none")
    varying = [c for c in configs.columns
               if c not in _PATH_FIELDS and configs[c].astype(str).nunique(dropna=False) > 1]
    settings = [c for c in varying if c not in REPLICATE_FIELDS]
    replicates = [c for c in REPLICATE_FIELDS if c in configs.columns]
    table = configs[settings + replicates].copy()
    table.insert(0, "run", [path.relative_to(runs_dir).as_posix() for path in paths])
    return table, settings


def _runs_table(runs: list[Run], runs_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The run table and its varying setting columns (not fold/seed, not paths)."""
    table, settings = _config_table([run.config for run in runs], [run.path for run in runs], runs_dir)
    for split, name in _RUN_TABLE_METRICS:
        table[f"{split}_{name}"] = [_report_value(run.metrics.get(split), _REPORT_FIELDS[name]) for run in runs]
    # Extra test sets (e.g. `test_confounded_negatives` of a confounder run): their AUC.
    extra = sorted({key for run in runs for key, value in run.metrics.items()
                    if key.startswith("test_") and isinstance(value, dict) and "roc_auc" in value})
    for key in extra:
        table[f"{key}_auc"] = [_report_value(run.metrics.get(key), _REPORT_FIELDS["auc"]) for run in runs]
    # Localisation scores of the test split (`radtl explain`): their means.
    def test_localisation(run):
        return ((run.metrics.get("localisation") or {}).get("test") or {}).get("mean") or {}

    scores = sorted({name for run in runs for name in test_localisation(run)})
    for name in scores:
        table[f"localisation_{name}"] = [test_localisation(run).get(name, math.nan) for run in runs]
    table["best_epoch"] = [run.metrics.get("best_epoch", math.nan) for run in runs]
    return table, settings


def _failed_table(failed: list[RunDir], runs: list[Run], runs_dir: Path) -> pd.DataFrame:
    """One row per failed run: `run`, the fields varying over finished and failed runs, kind, reason."""
    if not failed:
        return pd.DataFrame(columns=["run", "kind", "reason"])
    configs = [run.config for run in runs] + [rundir.read_config_dict() for rundir in failed]
    paths = [run.path for run in runs] + [rundir.path for rundir in failed]
    table, _ = _config_table(configs, paths, runs_dir)
    table = table.iloc[len(runs):].reset_index(drop=True)
    failures = [_failure(rundir) for rundir in failed]
    return table.assign(kind=[f["kind"] for f in failures], reason=[f["reason"] for f in failures])


def _confounder_tests(table: pd.DataFrame, factor: str | None, metrics: list[str]) -> pd.DataFrame:
    """Per confounder fraction and metric, the two levels of `factor` (e.g. ImageNet vs
    RadImageNet) compared with an unpaired permutation t-test over their runs (folds),
    as "Source Matters" (Juodelyte et al. 2024) does. Empty unless `factor` has two levels."""
    if factor is None or table[factor].nunique() != 2:
        return pd.DataFrame()
    level_a, level_b = list(dict.fromkeys(table[factor]))
    rows = []
    for fraction, group in table.groupby("confounder.fraction", sort=True):
        for metric in metrics:
            a = group.loc[group[factor] == level_a, metric].dropna()
            b = group.loc[group[factor] == level_b, metric].dropna()
            if len(a) < 2 or len(b) < 2:
                continue
            test = stats_lib.permutation_t_test(a, b)
            rows.append({"confounder.fraction": fraction, "metric": metric, f"mean_{level_a}": a.mean(),
                         f"mean_{level_b}": b.mean(), "n": f"{len(a)}+{len(b)}", "t": test.statistic,
                         "permutation_p": test.p_value})
    return pd.DataFrame(rows)


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
        requested = {f: None for f in ([compare] if isinstance(compare, str) else list(compare))}
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


def _summary_markdown(table, summary, comparisons, settings, metric_columns, unfinished, failed) -> str:
    display = summary[[c for c in summary.columns if not c.endswith(("_mean", "_sd"))]].copy()
    display[settings] = display[settings].astype(str)  # settings as given (1e-05), not as metrics (0.0000)
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
        + (f" {len(unfinished)} unfinished run(s) skipped." if unfinished else "")
        + (f" {len(failed)} failed run(s), not averaged in (see Failed runs)." if len(failed) else ""), "",
        "## Mean ± sd per setting", "",
        "Sample sd (ddof = 1) over the finished runs (folds and seeds) of each setting; test "
        "metrics at threshold 0.5; AUC is the binary ROC AUC (scikit-learn), ECE with 15 bins.", "",
        _markdown_table(display), "",
    ]
    if len(failed):
        lines += [
            "## Failed runs", "",
            f"{len(failed)} run(s) stopped without a result ({RunDir.FILES['failure']}: the loss went "
            "non-finite or the model collapsed); they are in no table above and no test.", "",
            _markdown_table(failed.astype(str)), "",
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

    Failed runs (`failed.json`: diverged or collapsed) are listed with their reasons and
    counted, never averaged in; unfinished runs are skipped. Both are named in a
    `UserWarning`.

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
       also Holm-adjusted across the factors compared (`radtl.stats.holm_adjust`). Runs without a
       partner are left out with a warning.
    4. `summary_failed.csv` (and a "Failed runs" section of `summary.md`): one row per
       failed run with its varying config fields, `kind` and `reason`.
    5. `boxplot_<metric>.png`: `metric` per setting, runs as points, coloured by the
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
    found = _scan(runs_dir)
    if not found["finished"]:
        raise ValueError(f"No finished run under {runs_dir} (a finished run directory holds "
                         f"{RunDir.FILES['config']} and {RunDir.FILES['metrics']}); "
                         f"{len(found['unfinished'])} unfinished and {len(found['failed'])} failed run(s) found.")
    runs = [load_run(rundir) for rundir in found["finished"]]
    unfinished = [rundir.path for rundir in found["unfinished"]]
    failed = _failed_table(found["failed"], runs, runs_dir)
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
            comparisons[f"{column}_holm"] = stats_lib.holm_adjust(comparisons[column])

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"runs": out_dir / "summary_runs.csv", "summary": out_dir / "summary.csv",
             "failed": out_dir / "summary_failed.csv", "comparisons": out_dir / "comparisons.csv",
             "markdown": out_dir / "summary.md"}
    table.to_csv(paths["runs"], index=False)
    failed.to_csv(paths["failed"], index=False)
    summary.to_csv(paths["summary"], index=False)
    comparisons.to_csv(paths["comparisons"], index=False)
    markdown = _summary_markdown(table, summary, comparisons, settings, metric_columns, unfinished, failed)
    paths["markdown"].write_text(markdown)
    compared = [f for f in comparisons.get("factor", []) if f in settings]
    hue = next((f for f in _PREFERRED_HUE if f in compared), compared[0] if compared else None)
    paths["boxplot"] = plot_boxplots(table, out_dir / f"boxplot_{metric}.png", by=settings or None,
                                     metric=metric, hue=hue)
    if "confounder.fraction" in table.columns:  # Source Matters: AUC against the confounder fraction
        # A run without a confounder trains like fraction 0 (it only lacks the confounded test sets).
        by_fraction = table.assign(**{"confounder.fraction": pd.to_numeric(
            table["confounder.fraction"].replace("none", 0.0), errors="coerce")})
        robustness = [c for c in table.columns if c.startswith("test_") and c.endswith("_auc") and c != "test_auc"]
        tests = _confounder_tests(by_fraction, hue, ["test_auc", *robustness])
        if not tests.empty:
            paths["confounder_tests"] = out_dir / "confounder_tests.csv"
            tests.to_csv(paths["confounder_tests"], index=False)
            markdown += ("\n## Sources per confounder fraction (permutation t-test over runs, as Source Matters)\n\n"
                         + _markdown_table(tests) + "\n")
            paths["markdown"].write_text(markdown)
        paths["confounder"] = plot_metric_by(
            by_fraction, out_dir / "auc_vs_confounder_fraction.png", x="confounder.fraction",
            metrics=["test_auc", *robustness], hue=hue if hue != "confounder.fraction" else None)
    return SummaryResult(runs=table, summary=summary, comparisons=comparisons, paired=paired,
                         markdown=markdown, paths=paths, unfinished=unfinished, failed=failed)
