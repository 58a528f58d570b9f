"""radtl command line: a thin click layer over the library (`radtl --help`, or `python cli.py`).

    radtl train --backbone resnet50 --dataset radimagenet_acl --fold 1
    radtl train --config configs/runs/demo.yaml --dry-run
    radtl evaluate runs/RUN --split test
    radtl predict runs/RUN image1.png image2.png
    radtl data info synthetic_lesions --fold 1
    radtl data build radimagenet_acl --manual-dir ~/Downloads/acl
    radtl data import thyroid_us --csv labels.csv --image-root images/ --group-col patient

Each command parses its options and calls one library function. TensorFlow is imported
only inside commands, so `--help` answers at once. Settings are validated by
`radtl.config.TrainConfig` (the same messages as sweeps and the library). An expected
failure (bad input, a missing file, a failed run) prints one `Error:` line and exits
with status 1; `radtl --debug ...` shows the traceback instead.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from radtl.config import CHOICES  # noqa: E402
from radtl.config import TrainConfig  # noqa: E402
from radtl.config import load_yaml  # noqa: E402

SPLITS = ("train", "val", "test")

# Exceptions that are expected failures, by the module that owns them: printed as one
# `Error:` line. Looked up in sys.modules, so checking them imports nothing.
_EXPECTED = {
    "radtl.config": ("ConfigError",),
    "radtl.rundir": ("RunDirectoryError",),
    "radtl.train": ("RunFailedError",),
    "radtl.data": ("DataError",),
    "radtl.weights": ("WeightsError",),
    "radtl.sweep": ("SweepConfigError", "SweepMismatchError"),
}
_EXPECTED_OS_ERRORS = (PermissionError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def _expected(err: BaseException) -> bool:
    classes = [getattr(sys.modules[module], name) for module, names in _EXPECTED.items()
               if module in sys.modules for name in names if hasattr(sys.modules[module], name)]
    return isinstance(err, (*_EXPECTED_OS_ERRORS, *classes))


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}."
    return str(err).strip() or type(err).__name__


class _Group(click.Group):
    """A click group that prints expected failures as one `Error:` line (tracebacks with --debug)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # noqa: BLE001 - sorted below: expected or a bug
            root = ctx.find_root()
            if root.params.get("debug") or not _expected(err):
                raise
            click.echo(f"Error: {_one_line(err)}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of expected failures too.")
def cli(debug):
    """radtl: reproducible RadImageNet / ImageNet transfer-learning studies."""


# ---------------------------------------------------------------------------- data

@cli.group(cls=_Group)
def data():
    """Datasets: build them and inspect their folds."""


_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="TFDS data directory (default: $RADTL_DATA_DIR or ~/tensorflow_datasets).")


@data.command("list")
@_data_dir_option
def data_list(data_dir):
    """The registered datasets, and those imported into the data directory."""
    from radtl import data as data_lib

    for name in data_lib.names(data_dir):
        spec = data_lib.get(name, data_dir)
        kind = ("imported: " + spec.manual_dir_contents if spec.imported
                else "embedded" if spec.embedded else "manual download: " + spec.manual_dir_contents)
        click.echo(f"{name:24s} {spec.num_folds} folds  {kind}")


@data.command("info")
@click.argument("name")
@click.option("--fold", type=click.IntRange(min=1), default=1, show_default=True, help="Fold.")
@_data_dir_option
def data_info(name, fold, data_dir):
    """Counts per split and class of one fold of dataset NAME (builds the embedded one on first use)."""
    from radtl import data as data_lib

    spec = data_lib.get(name, data_dir)
    data_lib.check_fold(fold, spec.num_folds, name)
    table = data_lib.open(name, fold, data_dir).counts()
    click.echo(f"{name}/fold{fold}")
    click.echo(table.to_string())


@data.command("build")
@click.argument("name")
@click.option("--fold", type=click.IntRange(min=1), multiple=True,
              help="Fold(s) to build; all of the dataset's folds when not given.")
@click.option("--manual-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Your manual download (the RadImageNet acl/ or breast/ folder, or the original release).")
@_data_dir_option
def data_build(name, fold, manual_dir, data_dir):
    """Prepare dataset NAME (the same as `tfds build`), offline; rebuilds an imported one from its split lists."""
    from radtl import data as data_lib

    spec = data_lib.get(name, data_dir)
    for k in fold:
        data_lib.check_fold(k, spec.num_folds, name)
    for k in fold or range(1, spec.num_folds + 1):
        click.echo(f"Building {name}/fold{k} ...")
        built = data_lib.build(name, k, data_dir=data_dir, manual_dir=manual_dir)
        click.echo(f"  done: {built.data_dir}")


def _check_name(field: str, value) -> None:
    """Validates a registry name as the config does (same message)."""
    TrainConfig.check_field(field, value)


@data.command("import")
@click.argument("name")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), default=None,
              help="A CSV with one row per image: path (relative to --image-root), label, optional group.")
@click.option("--image-root", type=click.Path(file_okay=False), default=None,
              help="Folder the CSV's (or split lists') paths are relative to.")
@click.option("--folders", type=click.Path(file_okay=False), default=None,
              help="A folder with one sub-folder of images per class.")
@click.option("--splits", "splits_dir", type=click.Path(file_okay=False), default=None,
              help="Given split lists ([prefix_]{train,val,test}_fold{k}.csv, RadImageNet dataframe/ format), "
                   "used verbatim.")
@click.option("--path-col", default=None,
              help="Path column [default: the first of filename, img_dir, path, image].")
@click.option("--label-col", default=None,
              help="Label column [default: label, else the one column ending in _label].")
@click.option("--group-col", default=None, help="Group (patient) column: its images stay in one split.")
@click.option("--group-regex", default=None,
              help=r"Regular expression whose group (named 'group', else the first) finds the patient id in a file "
                   r"name, e.g. '^(P\d+)_'. Default: each file its own group.")
@click.option("--classes", default=None, metavar="A,B,...",
              help="Class names in label order (binary: the positive class last). Default: sorted label values.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Folds to make.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5, min_open=True, max_open=True), default=0.15,
              show_default=True, help="Share of each fold's non-test groups used for validation.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the folds.")
@_data_dir_option
def data_import(name, csv_file, image_root, folders, splits_dir, path_col, label_col, group_col, group_regex,
                classes, folds, val_fraction, seed, data_dir):
    """Import your labelled images as dataset NAME: patient-grouped stratified folds, every fold built.

    Then `radtl train --dataset NAME`, sweeps and every analysis use it like the built-in
    datasets. PNG, JPEG, 16-bit PNG and DICOM are stored as 8-bit RGB (see radtl.imaging).
    """
    from radtl import importing

    def progress(stage, done, total):
        if stage == "check" and (done == total or done % max(1, total // 10) == 0):
            click.echo(f"  checked {done}/{total} images", err=True)
        elif stage.startswith("build fold"):
            click.echo(f"  building {stage[6:]} of {total} ...", err=True)

    import tensorflow_datasets as tfds

    tfds.display_progress_bar(False)  # the import prints its own progress
    warnings = _WarningEcho()
    logging.getLogger("radtl.importing").addHandler(warnings)
    try:
        record = importing.import_dataset(
            name, csv=csv_file, image_root=image_root, folders=folders, splits_dir=splits_dir, path_col=path_col,
            label_col=label_col, group_col=group_col, group_regex=group_regex,
            classes=[c.strip() for c in classes.split(",")] if classes else None, folds=folds,
            val_fraction=val_fraction, seed=seed, data_dir=data_dir, progress=progress)
    finally:
        logging.getLogger("radtl.importing").removeHandler(warnings)
    from radtl import data as data_lib

    where = data_lib.data_root(data_dir) / name
    click.echo(f"Imported {name}: {record.images} images, {record.groups} groups, classes {record.class_names}, "
               f"{record.num_folds} fold(s) ({record.split['method']}).")
    click.echo(f"  conversion: {record.conversion['counts']}; split lists: {where / 'splits'}")
    click.echo(f"  next: radtl data info {name}{f' --data-dir {data_dir}' if data_dir else ''}; "
               f"radtl train --dataset {name}{f' --data-dir {data_dir}' if data_dir else ''} ...")


class _WarningEcho(logging.Handler):
    """Prints library warnings (e.g. groups with mixed labels) as `Warning:` lines."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record):
        click.echo(f"Warning: {record.getMessage()}", err=True)


# ---------------------------------------------------------------------------- weights

@cli.group(cls=_Group)
def weights():
    """Pre-trained weight files: where radtl looks, what is there, how to get them."""


@weights.command("list")
@click.option("--weights-dir", type=click.Path(file_okay=False), default=None, help="Folder searched first.")
@click.option("--source", type=click.Choice(["radimagenet", "imagenet"]), default=None, help="Only this source.")
@click.option("--verify", is_flag=True, help="Also load each present file into its architecture (slow).")
def weights_list(weights_dir, source, verify):
    """Known weight files, where radtl looks, which are present and verified (and why not)."""
    from radtl import pretrained

    click.echo(str(pretrained.status(weights_dir, source=source, verify=verify)))


@weights.command("fetch")
@click.argument("source", type=click.Choice(["radimagenet", "imagenet"]))
@click.option("--arch", "archs", multiple=True, help="Backbone(s) to fetch; all with a file of SOURCE when not given.")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Where to place the files [default: $RADTL_WEIGHTS_DIR, else the checkout's weights/, "
                   "else the Keras cache].")
@click.option("--url", default=None, help="Override the download URL (a mirror of the official zip).")
def weights_fetch(source, archs, dest, url):
    """Download, verify and place weight files (offline: says so and prints the manual steps)."""
    from radtl import pretrained

    for arch in archs:
        _check_name("backbone", arch)
    for item in pretrained.fetch(source, list(archs) or None, dest=dest, url=url):
        reasons = "; ".join(item.reasons)
        click.echo(f"{item.filename}: {item.path} ({item.state}{': ' + reasons if reasons else ''})")


# ---------------------------------------------------------------------------- train

def _key_values(ctx, param, values):
    """Parses repeated KEY=VALUE options; values are read as YAML scalars (1e-3, true, [1, 2])."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        parsed[key.strip()] = load_yaml(text=value)
    return parsed


def _default(field):
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == field)
    return f.default


# TrainConfig field -> (click parameter declarations, keyword arguments). Names
# (dataset, backbone, ...) are plain strings here: TrainConfig checks them against
# the registries, with the same message as a config file.
_TRAIN_OPTIONS = {
    "dataset": (["--dataset"], dict(help="Dataset name (`radtl data info --help`).")),
    "fold": (["--fold"], dict(type=click.IntRange(min=1))),
    "data_dir": (["--data-dir"], dict(type=click.Path(file_okay=False))),
    "backbone": (["--backbone"], dict(help="resnet50, densenet121, inception_v3, inception_resnet_v2, vgg16, vgg19, "
                                           "mobilenet_v2, efficientnet_b0, convnext_tiny.")),
    "weights": (["--weights"], dict(help="radimagenet, imagenet, none (random init) or a weight file path.")),
    "weights_dir": (["--weights-dir"], dict(type=click.Path(file_okay=False))),
    "preprocessing": (["--preprocessing"], dict(type=click.Choice(CHOICES["preprocessing"]))),
    "head": (["--head"], dict(help="linear, mlp, conv1d or conv1d_skip.")),
    "head_options": (["--head-option"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE",
                                             help="A head option, e.g. dropout=0.2 (repeatable).")),
    "schedule": (["--schedule"], dict(help="Fine-tuning schedule, e.g. ft, lp, lp-ft, g-lf, unfreezeall.")),
    "schedule_options": (["--schedule-option"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE",
                                                     help="A schedule option, e.g. probe_epochs=2 (repeatable).")),
    "loss": (["--loss"], dict(help="hard, label_smoothing, ols or tf_kd.")),
    "loss_options": (["--loss-option"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE",
                                             help="A loss option, e.g. epsilon=0.1 (repeatable).")),
    "confounder": (["--confounder"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE",
                                          help="A synthetic confounder setting (Source Matters), e.g. kind=tag, "
                                               "fraction=0.5 (repeatable).")),
    "optimizer": (["--optimizer"], dict(type=click.Choice(CHOICES["optimizer"]))),
    "learning_rate": (["--lr"], dict(type=float)),
    "lr_decay": (["--lr-decay"], dict(type=click.Choice(CHOICES["lr_decay"]))),
    "min_lr_ratio": (["--min-lr-ratio"], dict(type=float)),
    "weight_decay": (["--weight-decay"], dict(type=float)),
    "epochs": (["--epochs"], dict(type=click.IntRange(min=1))),
    "batch_size": (["--batch-size"], dict(type=click.IntRange(min=1))),
    "image_size": (["--image-size"], dict(type=click.IntRange(min=1))),
    "resize_method": (["--resize-method"], dict(type=click.Choice(CHOICES["resize_method"]))),
    "augment": (["--augment/--no-augment"], dict(default=None)),
    "augment_on": (["--augment-on"], dict(type=click.Choice(CHOICES["augment_on"]))),
    "seed": (["--seed"], dict(type=click.IntRange(min=0))),
    "precision": (["--precision"], dict(type=click.Choice(CHOICES["precision"]))),
    "xla": (["--xla"], dict(type=click.Choice(["auto", "on", "off"]))),
    "monitor": (["--monitor"], dict(type=click.Choice(CHOICES["monitor"]))),
}


def _train_options(command):
    for field, (decls, kwargs) in reversed(_TRAIN_OPTIONS.items()):
        kwargs = dict(kwargs)
        if not kwargs.get("multiple"):
            kwargs["help"] = f"{kwargs.get('help', '')} [default: {_default(field)}]".strip()
        command = click.option(*decls, field, **kwargs)(command)  # the parameter is the field itself
    return command


def _default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    weights = Path(config.weights).stem if config.weights and "/" in str(config.weights) else config.weights
    return Path("runs") / (f"{config.dataset}-fold{config.fold}-{config.backbone}-{weights or 'random'}-"
                           f"{config.schedule}-seed{config.seed}-{stamp}")


def _train_config(config_file, out, resume, given) -> TrainConfig:
    from radtl.rundir import RunDir

    if "xla" in given:
        given["xla"] = {"on": True, "off": False}.get(given["xla"], given["xla"])
    if resume:
        if not out:
            raise click.UsageError("--resume needs --out RUN_DIR (the run to continue).")
        if config_file:
            raise click.UsageError("--resume continues the run with its recorded config; leave out --config.")
        run = RunDir(out)
        run.require_run()
        return TrainConfig.from_dict({**run.read_config_dict(), **given})
    if config_file:
        return TrainConfig.from_yaml(config_file, given)
    return TrainConfig.from_dict(given)


@cli.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file of TrainConfig fields; options given on the command line override it.")
@_train_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: runs/<dataset>-fold<k>-<backbone>-<weights>-<schedule>-seed<s>-<time>].")
@click.option("--resume", is_flag=True, help="Continue the unfinished run in --out (its recorded config is used).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and where the data and weights are; "
                                              "train nothing.")
@click.option("--verbose", type=click.Choice(["auto", "0", "1", "2"]), default="auto", show_default=True)
def train(config_file, out, resume, dry_run, verbose, **options):
    """Train one run end to end and write its run directory."""
    given = {k: v for k, v in options.items() if v is not None and v != {}}
    config = _train_config(config_file, out, resume, given)
    from radtl import analysis
    from radtl import train as train_lib

    if dry_run:
        click.echo(train_lib.plan(config).describe())
        click.echo(f"run directory: {out or _default_run_dir(config)} (not created: dry run)")
        return
    run_dir = Path(out) if out else _default_run_dir(config)
    click.echo(f"run directory: {run_dir}")
    metrics = train_lib.run(config, run_dir, resume=resume, verbose=verbose if verbose == "auto" else int(verbose),
                            progress=click.echo)
    click.echo(analysis.format_report(metrics["test"], "test"))
    click.echo(f"best epoch {metrics['best_epoch']} ({metrics['monitor']} {metrics['best_value']:.4f}); "
               f"run directory: {run_dir}")


# ---------------------------------------------------------------------------- runs

_run_dir_argument = click.argument("run_dir", type=click.Path(exists=True, file_okay=False))


@cli.command()
@_run_dir_argument
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
def evaluate(run_dir, split):
    """Re-evaluate a finished run's best checkpoint on one split."""
    from radtl import analysis
    from radtl import train as train_lib

    click.echo(analysis.format_report(train_lib.evaluate(run_dir, split), split))


@cli.command()
@_run_dir_argument
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
def predict(run_dir, images, output):
    """Class probabilities of a run's best checkpoint for image files (unreadable ones say why)."""
    from radtl import train as train_lib

    table = train_lib.predict(run_dir, images)
    click.echo(table.to_string(index=False))
    if output:
        table.to_csv(output, index=False)
    failed = int((table["error"] != "").sum())
    if failed:
        click.echo(f"Error: {failed} of {len(table)} files could not be read (see the error column); "
                   "the others were predicted.", err=True)
        raise SystemExit(1)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["val", "test", "test_confounded_negatives", "test_confounded_positives"]),
              default="test", show_default=True, help="The confounded test sets exist for runs with a `confounder`.")
@click.option("--positive-class", type=click.IntRange(min=0), default=None,
              help="Class index scored as positive (one-vs-rest); required for multi-class runs, default 1.")
@click.option("--json", "as_json", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON.")
def compare(run_dirs, split, positive_class, as_json):
    """DeLong test (and paired bootstrap) of runs evaluated on the same images."""
    from radtl import analysis

    if len(run_dirs) < 2:
        raise click.UsageError("compare needs at least two run directories.")
    try:
        result = analysis.compare_runs(list(run_dirs), split=split, positive_class=positive_class)
    except ValueError as err:  # runs on different images, classes, ...
        raise click.ClickException(str(err)) from None
    click.echo(analysis.format_comparison(result))
    if as_json:
        Path(as_json).write_text(json.dumps(result, indent=2) + "\n")


@cli.command()
@_run_dir_argument
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option("--n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Images in the grid.")
@click.option("--layer", default=None, help="Target layer [default: the backbone's last stage].")
@click.option("--method", type=click.Choice(["grad_cam", "grad_cam_plus_plus"]), default="grad_cam",
              show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Map threshold of Dice and IoU.")
def explain(run_dir, split, n, layer, method, threshold):
    """Grad-CAM maps of a run, scored against the lesion masks (Dice, IoU, pointing game)."""
    from radtl import interpret

    try:
        result = interpret.explain_run(run_dir, split=split, n=n, layer=layer, method=method, threshold=threshold,
                                       progress=click.echo)
    except ValueError as err:  # an unknown --layer, a model Grad-CAM cannot take
        raise click.ClickException(str(err)) from None
    if result["n"]:
        for name, value in result["mean"].items():
            ci = result["ci95"].get(name)
            interval = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
            click.echo(f"{name}: {value:.3f}{interval}")
        click.echo(f"over {result['n']} {split} images with a lesion mask")
    else:
        click.echo(f"No {split} image has a lesion mask: maps drawn, nothing scored.")
    click.echo(f"wrote {Path(run_dir) / f'localisation_{split}.csv'} and {Path(run_dir) / 'plots' / f'explain_{split}.png'}")


_SIMILARITY_METHODS = {"pwcca": ("pwcca",), "svcca": ("svcca",), "cka": ("linear_cka",),
                       "all": ("pwcca", "svcca", "linear_cka", "mean_cca")}


@cli.command()
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True, help="The images compared.")
@click.option("--method", type=click.Choice(list(_SIMILARITY_METHODS)), default="all", show_default=True,
              help="cka is linear CKA; all is PWCCA, SVCCA, linear CKA and the mean CCA.")
@click.option("--at-init", is_flag=True, help="Also compare the starting backbones, and each run's start with its end.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where to write the CSV and PNG [default: beside RUN_A, in similarity-<A>-vs-<B>/].")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Random draws of positions and channels averaged per stage.")
@click.option("--channels", type=click.IntRange(min=1), default=64, show_default=True,
              help="Channels drawn per stage and repeat (Juodelyte et al.: 64).")
@click.option("--max-datapoints", type=click.IntRange(min=2), default=10_000, show_default=True,
              help="Spatial positions drawn per stage (Juodelyte et al.: about 10,000).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def similarity(run_a, run_b, split, method, at_init, out, repeats, channels, max_datapoints, seed):
    """Per-stage representation similarity (CCA, CKA) of two runs' backbones on the same images."""
    from radtl import activations
    from radtl import plots

    out = Path(out) if out else Path(run_a).resolve().parent / f"similarity-{Path(run_a).name}-vs-{Path(run_b).name}"
    try:
        table = activations.compare_runs(run_a, run_b, split=split, methods=_SIMILARITY_METHODS[method],
                                         at_init=at_init, repeats=repeats, channels=channels,
                                         max_datapoints=max_datapoints, seed=seed, progress=click.echo)
    except ValueError as err:  # runs on different data or backbones, too few datapoints
        raise click.ClickException(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"similarity_{split}.csv", index=False)
    png = plots.plot_similarity(table, out / f"similarity_{split}.png",
                                title=f"A = {Path(run_a).name}, B = {Path(run_b).name} ({split})")
    summary = table.pivot_table(index=["comparison", "stage_index", "stage"], columns="method",
                                values="similarity", sort=False)
    click.echo(summary.round(4).to_string())
    click.echo(f"wrote {out / f'similarity_{split}.csv'} and {png}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="The ensemble's run directory (must not exist or be empty).")
@click.option("--method", type=click.Choice(["mean", "weighted", "stacking"]), default="mean", show_default=True,
              help="mean of the probabilities; weights or logistic stacking fitted on the validation predictions.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def ensemble(run_dirs, out, method, seed):
    """Combine finished runs on the same test images into an ensemble run directory."""
    from radtl import analysis
    from radtl import ensembles

    if len(run_dirs) < 2:
        raise click.UsageError("ensemble needs at least two run directories.")
    try:
        metrics = ensembles.combine(list(run_dirs), out, method=method, seed=seed)
    except ValueError as err:  # members on different images or classes
        raise click.ClickException(str(err)) from None
    click.echo(analysis.format_report(metrics["test"], "test"))
    best = ensembles.best_member(list(run_dirs))
    click.echo(f"ensemble run directory: {out}\nAgainst the best member by val AUC ({best}):")
    click.echo(analysis.format_comparison(analysis.compare_runs([out, best])))


@cli.command()
@click.argument("runs_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Where to write the tables [default: RUNS_DIR].")
@click.option("--metric", default="test_auc", show_default=True, help="Metric of the box plots and comparisons.")
@click.option("--compare", "factors", multiple=True,
              help="Config field to compare (paired on the others), e.g. weights; default: every two-level field.")
def summarize(runs_dir, out, metric, factors):
    """One table of every finished run (and the failed ones), per-setting means, paired comparisons, box plots."""
    from radtl import analysis

    try:
        result = analysis.summarize(runs_dir, out_dir=out, metric=metric, compare=list(factors) or None)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(result.markdown)
    for path in result.paths.values():
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Where the run directories go [default: runs/<sweep name>].")
@click.option("--shard", default=None, metavar="I/N", help="Run only shard I of N (1-based), for job arrays.")
@click.option("--dry-run", is_flag=True, help="Validate every run's config and list what would run, skip or resume.")
def sweep(config_file, runs_dir, shard, dry_run):
    """Train a grid of runs from a YAML file; finished runs are skipped, unfinished ones resumed."""
    from radtl import sweep as sweep_lib

    try:
        report = sweep_lib.run_sweep(config_file, runs_dir, shard=shard, dry_run=dry_run)
    except ValueError as err:  # SweepConfigError and a bad --shard
        raise click.ClickException(str(err)) from None
    raise SystemExit(report.exit_code)


def main():
    """Entry point of the `radtl` console script and of `python cli.py`."""
    cli(prog_name="radtl")


if __name__ == "__main__":
    main()
