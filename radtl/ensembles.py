"""Ensembles of finished runs: their probabilities combined into a run directory of their own.

`combine` reads the members' validation and test predictions (`RunDir.read_predictions`),
matches them by image, combines the class probabilities with one of `METHODS` and writes
an ensemble run directory that the rest of radtl reads like any run: `config.json`
(`resolved["kind"] == "ensemble"`), `predictions_{val,test}.csv` with a run's columns
and, last, `metrics.json` (`radtl.metrics.evaluate_predictions` of each split). It has
no `history.csv` and no checkpoint: nothing was trained.

Methods (each fitted on the validation predictions only, then applied to test):

| method | combination | fitted on val |
|---|---|---|
| `mean` | the average of the members' probabilities | nothing |
| `weighted` | sum_m w_m p_m, w_m >= 0, sum w_m = 1, minimising the val log loss | the weights |
| `stacking` | logistic regression on the members' probabilities | its coefficients |

The val metrics of `weighted` and `stacking` are in-sample (the combination was fitted on
those very predictions) and therefore optimistic; `metrics.json` says so
(`"val_in_sample": true`). Only the test metrics are an honest estimate.

Pure numpy, pandas, scipy and scikit-learn: no TensorFlow import.

Reference:
    Dietterich, "Ensemble methods in machine learning", MCS 2000 (averaging);
    Wolpert, "Stacked generalization", Neural Networks 5 (1992) 241-259 (stacking);
    Breiman, "Stacked regressions", Machine Learning 24 (1996) 49-64 (non-negative
    weights).

Example:
    >>> metrics = combine(["runs/resnet50/fold1", "runs/densenet121/fold1"],     # doctest: +SKIP
    ...                   "runs/ensemble/fold1", method="weighted")
    >>> metrics["test"]["roc_auc"]["auc"]                                         # doctest: +SKIP
    >>> best_member(["runs/resnet50/fold1", "runs/densenet121/fold1"])           # doctest: +SKIP
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy
import scipy.optimize
import sklearn
from sklearn.linear_model import LogisticRegression

import radtl
from radtl import metrics as metrics_lib
from radtl.registry import Registry
from radtl.rundir import align_predictions
from radtl.rundir import RunDir
from radtl.rundir import RunDirectoryError
from radtl.rundir import labels_and_probs

__all__ = ["METHODS", "MeanEnsemble", "WeightedEnsemble", "StackingEnsemble", "combine", "best_member"]

#: The splits an ensemble reads from every member and writes: fitted on "val", applied to both.
SPLITS = ("val", "test")

#: Ensemble methods by name: classes with `fit(probs, labels)`, `predict(probs)`, `fitted()`
#: and `in_sample` (whether `fit` uses the validation predictions, making val metrics in-sample).
METHODS = Registry("method")


# ---------------------------------------------------------------------------------------
# Methods: (M, N, K) member probabilities -> (N, K) ensemble probabilities
# ---------------------------------------------------------------------------------------
@METHODS.register("mean")
class MeanEnsemble:
    """The unweighted average of the members' class probabilities.

    Args:
        seed: int, default 0. Unused (nothing is fitted); accepted so that every method
            is built the same way.

    Example:
        >>> probs = np.array([[[0.2, 0.8]], [[0.6, 0.4]]])   # (M=2, N=1, K=2)
        >>> MeanEnsemble().fit(probs, np.array([1])).predict(probs)
        array([[0.4, 0.6]])
    """

    in_sample = False

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.n_members = None

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "MeanEnsemble":
        """Records the number of members; `labels` are not used."""
        self.n_members = probs.shape[0]
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """(M, N, K) member probabilities -> (N, K) ensemble probabilities."""
        return probs.mean(axis=0)

    def fitted(self) -> dict:
        """What the combination is, JSON-serialisable: equal weights."""
        return {"weights": [1.0 / self.n_members] * self.n_members}


def _mixture_log_loss(weights: np.ndarray, p_true: np.ndarray) -> tuple[float, np.ndarray]:
    """Log loss of the mixture sum_m w_m p_m and its gradient in w.

    Args:
        weights: (M,) member weights.
        p_true: (M, N) each member's probability of each image's true class.

    Returns:
        (loss in nats, (M,) gradient).
    """
    eps = np.finfo(np.float64).eps  # as radtl.metrics.negative_log_likelihood clips
    mixture = np.maximum(weights @ p_true, eps)
    return float(-np.mean(np.log(mixture))), -np.mean(p_true / mixture, axis=1)


@METHODS.register("weighted")
class WeightedEnsemble:
    """A weighted average of the members' probabilities, weights fitted by log loss.

    The weights w (M,) lie on the simplex (w_m >= 0, sum w_m = 1) and minimise the log
    loss of sum_m w_m p_m on the labelled predictions given to `fit` (the validation
    split). The mixture's log loss is convex in w, so the optimum is global; it is found
    with SLSQP from equal weights (deterministic: the same inputs give the same weights).
    At the optimum every member with w_m > 0 has mean(p_m[y] / mixture[y]) = 1 and every
    member with w_m = 0 has it <= 1 (the KKT conditions); a member that adds nothing
    gets weight 0.

    Reference:
        Breiman, "Stacked regressions", Machine Learning 24 (1996) 49-64 (non-negative
        combination weights fitted on held-out predictions).

    Args:
        seed: int, default 0. Unused (the fit is deterministic); accepted so that every
            method is built the same way.

    Example:
        >>> probs = np.array([[[0.1, 0.9], [0.8, 0.2]], [[0.5, 0.5], [0.5, 0.5]]])
        >>> model = WeightedEnsemble().fit(probs, np.array([1, 0]))
        >>> model.weights_.round(3).tolist()
        [1.0, 0.0]
    """

    in_sample = True

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.weights_ = None
        self.log_loss_ = None
        self.converged_ = None

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "WeightedEnsemble":
        """Fits the weights on (M, N, K) probabilities and (N,) class indices."""
        n_members = probs.shape[0]
        p_true = probs[:, np.arange(labels.size), labels]  # (M, N)
        result = scipy.optimize.minimize(
            _mixture_log_loss, np.full(n_members, 1.0 / n_members), args=(p_true,), jac=True,
            method="SLSQP", bounds=[(0.0, 1.0)] * n_members,
            constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}],
            options={"ftol": 1e-12, "maxiter": 1000})
        weights = np.clip(result.x, 0.0, None)
        self.weights_ = weights / weights.sum()
        self.log_loss_ = _mixture_log_loss(self.weights_, p_true)[0]
        self.converged_ = bool(result.success)
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """(M, N, K) member probabilities -> (N, K) ensemble probabilities."""
        return np.tensordot(self.weights_, probs, axes=1)

    def fitted(self) -> dict:
        """The fitted weights (one per member, in member order), the val log loss and
        whether SLSQP reported convergence."""
        return {"weights": self.weights_.tolist(), "val_log_loss": self.log_loss_, "converged": self.converged_}


@METHODS.register("stacking")
class StackingEnsemble:
    """Logistic regression on the members' probabilities (stacked generalisation).

    Features: binary tasks, each member's P(class 1) (M features); multi-class tasks,
    every member's K class probabilities (M * K features, member-major). The model is
    scikit-learn's `LogisticRegression` with its defaults (L2, C=1.0, lbfgs;
    multinomial for K > 2) and `random_state=seed`, fitted on the labelled predictions
    given to `fit` (the validation split); it predicts the ensemble's class
    probabilities.

    Reference:
        Wolpert, "Stacked generalization", Neural Networks 5 (1992) 241-259.

    Args:
        seed: int, default 0. `LogisticRegression(random_state=seed)`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.arange(40) % 2
        >>> p1 = np.clip(0.5 + (y - 0.5) * rng.random((2, 40)), 0, 1)
        >>> probs = np.stack([1 - p1, p1], axis=-1)           # (M=2, N=40, K=2)
        >>> StackingEnsemble().fit(probs, y).predict(probs).shape
        (40, 2)
    """

    in_sample = True

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.model_ = None
        self.n_classes = None

    def _features(self, probs: np.ndarray) -> np.ndarray:
        if self.n_classes == 2:
            return probs[:, :, 1].T  # (N, M)
        return np.transpose(probs, (1, 0, 2)).reshape(probs.shape[1], -1)  # (N, M * K)

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "StackingEnsemble":
        """Fits the logistic regression on (M, N, K) probabilities and (N,) class indices."""
        self.n_classes = probs.shape[2]
        self.model_ = LogisticRegression(random_state=self.seed).fit(self._features(probs), labels)
        return self

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """(M, N, K) member probabilities -> (N, K) ensemble probabilities."""
        return self.model_.predict_proba(self._features(probs))

    def fitted(self) -> dict:
        """Coefficients (classes x features; one row for binary), intercepts and C."""
        return {"coefficients": self.model_.coef_.tolist(), "intercepts": self.model_.intercept_.tolist(),
                "features": "positive-class probability per member" if self.n_classes == 2
                else "class probabilities per member (member-major)",
                "C": self.model_.C}


# ---------------------------------------------------------------------------------------
# Reading and checking the members
# ---------------------------------------------------------------------------------------
def _members(run_dirs) -> list[RunDir]:
    """The members as finished `RunDir`s: at least two, each listed once."""
    if isinstance(run_dirs, (str, Path, RunDir)):
        run_dirs = [run_dirs]
    members = [r if isinstance(r, RunDir) else RunDir(r) for r in run_dirs]
    if len(members) < 2:
        raise ValueError(f"`run_dirs` must name at least two finished runs to ensemble. Received "
                         f"{len(members)}: {[str(m.path) for m in members]}.")
    resolved = [m.path.resolve() for m in members]
    repeated = sorted({str(m.path) for m, r in zip(members, resolved) if resolved.count(r) > 1})
    if repeated:
        raise ValueError(f"`run_dirs` lists the same run more than once: {repeated}. Name each member once.")
    for member in members:
        member.require_finished()
    return members


def _class_names(members: list[RunDir], frames: dict) -> list[str]:
    """The members' common class names (recorded, else from the prob_ columns)."""
    names = [member.class_names or [c[len("prob_"):] for c in frames["val"][i].columns if c.startswith("prob_")]
             for i, member in enumerate(members)]
    for member, member_names in zip(members[1:], names[1:]):
        if list(member_names) != list(names[0]):
            raise ValueError(
                f"The members must predict the same classes in the same order: {members[0].file('config')} lists "
                f"{list(names[0])} and {member.file('config')} lists {list(member_names)}. Ensemble runs of "
                "the same dataset.")
    return list(names[0])


def _aligned(members: list[RunDir], frames: list[pd.DataFrame], split: str) -> list[pd.DataFrame]:
    """Each member's predictions of `split` in the first member's image order (`rundir.align_predictions`)."""
    return align_predictions(frames, [str(member.file("predictions", split=split)) for member in members],
                             split=split, fix="Ensemble runs of the same dataset and fold.")


def _check_out_dir(out_dir: Path, members: list[RunDir]) -> None:
    """Refuses an `out_dir` that exists with anything in it, is a file, or lies in a member."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"`out_dir` must be a new or empty directory: {out_dir} is a file. "
                                f"Received: out_dir={str(out_dir)!r}. Choose another output directory.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RunDirectoryError(f"`out_dir` must be a new or empty directory: {out_dir} already holds files, "
                                f"which are never overwritten. Received: out_dir={str(out_dir)!r}. Choose "
                                "another output directory.")
    for member in members:
        if out_dir.resolve().is_relative_to(member.path.resolve()):
            raise RunDirectoryError(f"`out_dir` must lie outside the members' run directories: {out_dir} is "
                                    f"inside {member.path}. Received: out_dir={str(out_dir)!r}.")


# ---------------------------------------------------------------------------------------
# The ensemble run directory
# ---------------------------------------------------------------------------------------
def _joined(values: list) -> str:
    """Differing member values as one readable cell: "resnet50+densenet121"."""
    def text(value):
        if value is None:
            return "none"
        if isinstance(value, (dict, list, tuple)):
            return json.dumps(value, sort_keys=True)
        return str(value)
    return "+".join(text(v) for v in values)


def _ensemble_config(configs: list[dict], method: str) -> dict:
    """The members' shared config fields, differing ones joined, and `ensemble`: the method."""
    fields = list(dict.fromkeys(k for config in configs for k in config))
    combined = {}
    for field in fields:
        values = [config.get(field) for config in configs]
        same = all(v == values[0] and type(v) is type(values[0]) for v in values)
        combined[field] = values[0] if same else _joined(values)
    combined["ensemble"] = method
    return combined


def _versions() -> dict[str, str]:
    return {"radtl": radtl.__version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scipy": scipy.__version__, "scikit_learn": sklearn.__version__}


def combine(run_dirs: Sequence, out_dir, *, method: str = "mean", seed: int = 0) -> dict:
    """Combines finished runs' probabilities and writes an ensemble run directory.

    Every member must be finished (`RunDir.require_finished`), predict the same classes
    and hold `predictions_val.csv` and `predictions_test.csv` of the same images (matched
    by `filename`, with the same labels). The method (`METHODS`: "mean", "weighted",
    "stacking") is fitted on the validation predictions only and applied to both
    splits, so the val metrics of "weighted" and "stacking" are in-sample (optimistic;
    `metrics.json` holds `"val_in_sample": true`) and the test metrics are the honest
    estimate. Everything is checked before `out_dir` is created; nothing is overwritten.

    `out_dir` then holds, written through `RunDir` (metrics last, so a kill leaves an
    unfinished, never a finished-looking, directory):

    * `config.json`: `config` holds the members' config fields, a field that differs
      between members joined in member order ("resnet50+densenet121"), and
      `"ensemble": method`; `resolved` holds `"kind": "ensemble"`, `class_names`,
      `split_sizes` (of the first member), `versions` and `ensemble`: the method,
      `members` (absolute paths), `val_in_sample` and the fitted weights or
      coefficients (`fitted`). Member paths live in `resolved`, not `config`, so that
      `radtl.analysis.summarize` groups the ensembles of different folds as one setting.
    * `predictions_val.csv`, `predictions_test.csv`: filename, exam_id (when the first
      member has it), label, prob_<class>..., in the first member's image order.
    * `metrics.json`: `"monitor": None`, `"best_epoch": None`, `"best_value": None`
      (nothing was trained), `method`, `val_in_sample`, and a
      `radtl.metrics.evaluate_predictions` report per split (`val`, `test`).

    No `history.csv` and no checkpoint.

    Reference:
        Wolpert, Neural Networks 5 (1992) 241-259 (stacking); Breiman, Machine Learning 24
        (1996) 49-64 (non-negative weights fitted on held-out predictions).

    Args:
        run_dirs: two or more finished run directories (str, Path or `RunDir`).
        out_dir: str or Path, a new (or empty) directory for the ensemble run.
        method: str, default "mean"; one of `METHODS.names()`.
        seed: int >= 0, default 0. `random_state` of the stacking regression (the other
            methods are deterministic and do not use it).

    Returns:
        dict, the content of `metrics.json`.

    Raises:
        RunDirectoryError: a member is not a finished run (its message says what it is),
            or `out_dir` already holds anything or lies inside a member.
        FileNotFoundError: a member has no val or test predictions.
        ValueError: an unknown method, fewer than two members, a member listed twice,
            different classes, images or labels (naming the files and a few
            filenames that differ).

    Example:
        >>> metrics = combine(["runs/a/fold1", "runs/b/fold1"], "runs/ab/fold1",   # doctest: +SKIP
        ...                   method="stacking")
    """
    ensemble_class = METHODS.get(method)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be an integer >= 0. Received: seed={seed!r}")
    members = _members(run_dirs)
    out = RunDir(out_dir)
    _check_out_dir(out.path, members)
    frames = {split: [member.read_predictions(split) for member in members] for split in SPLITS}
    class_names = _class_names(members, frames)
    frames = {split: _aligned(members, frames[split], split) for split in SPLITS}
    labels, probs = {}, {}
    for split in SPLITS:
        labels[split] = labels_and_probs(frames[split][0])[0]
        probs[split] = np.stack([labels_and_probs(frame)[1] for frame in frames[split]])  # (M, N, K)
    absent = [name for k, name in enumerate(class_names) if not np.any(labels["val"] == k)]
    if absent:
        raise ValueError(f"{members[0].file('predictions', split='val')} has no image of the class(es) {absent}: "
                         "the ensemble is fitted and evaluated on the validation split, which needs every class.")
    model = ensemble_class(seed=int(seed)).fit(probs["val"], labels["val"])
    combined = {split: model.predict(probs[split]) for split in SPLITS}
    reports = {split: metrics_lib.evaluate_predictions(labels[split], combined[split]) for split in SPLITS}

    first = members[0]
    out.create()
    out.write_config(_ensemble_config([member.read_config_dict() for member in members], method), {
        "kind": "ensemble",
        "class_names": class_names,
        "split_sizes": first.read_resolved().get("split_sizes"),
        "ensemble": {"method": method, "members": [str(member.path.resolve()) for member in members],
                     "val_in_sample": model.in_sample, "seed": int(seed), "fitted": model.fitted()},
        "versions": _versions(),
    })
    for split in SPLITS:
        columns = [c for c in ("filename", "exam_id", "label") if c in frames[split][0].columns]
        table = frames[split][0][columns].copy()
        for k, name in enumerate(class_names):
            table[f"prob_{name}"] = combined[split][:, k]
        out.write_predictions(split, table)
    result = {"monitor": None, "best_epoch": None, "best_value": None, "method": method,
              "val_in_sample": model.in_sample, **reports}
    out.write_metrics(result)
    return result


def _auc(report: dict | None) -> float | None:
    """A report's AUC: binary ROC AUC, else the macro one-vs-rest AUC (None if undefined)."""
    report = report or {}
    return (report.get("roc_auc") or {}).get("auc", report.get("macro_roc_auc_ovr"))


def best_member(run_dirs: Sequence, *, split: str = "val") -> Path:
    """The member with the highest AUC on `split`, as recorded in its `metrics.json`.

    Used to compare an ensemble with its best member (DeLong test, `radtl.analysis.
    compare_runs`). Choose on "val" (default): picking the best member by its test AUC
    would select on the data the comparison is then made on. Ties go to the first
    listed member. The AUC is the binary ROC AUC, or the macro one-vs-rest AUC for
    multi-class runs.

    Args:
        run_dirs: two or more finished run directories (str, Path or `RunDir`).
        split: str, default "val", the split whose AUC decides.

    Returns:
        Path of the best member, as given.

    Raises:
        RunDirectoryError: a member is not a finished run.
        ValueError: fewer than two members, or no member has an AUC on `split`.

    Example:
        >>> best_member(["runs/a/fold1", "runs/b/fold1"])   # doctest: +SKIP
        PosixPath('runs/b/fold1')
    """
    members = _members(run_dirs)
    aucs = [_auc(member.read_metrics().get(split)) for member in members]
    if all(auc is None for auc in aucs):
        raise ValueError(f"No member has an AUC on the {split!r} split in its {RunDir.FILES['metrics']}: "
                         f"{[str(m.path) for m in members]}. Pass a split the runs were evaluated on "
                         "(`split` must be e.g. 'val' or 'test').")
    best = max(range(len(members)), key=lambda i: (aucs[i] is not None, aucs[i] or 0.0, -i))
    return members[best].path
