"""radtl command line: a thin click layer over the library.

    python cli.py --help
    python cli.py train --backbone resnet50 --dataset radimagenet_acl --fold 1
    python cli.py evaluate runs/RUN --split test
    python cli.py predict runs/RUN image1.png image2.png
    python cli.py data info synthetic_lesions --fold 1
    python cli.py data build radimagenet_acl --manual-dir ~/Downloads/acl
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import yaml  # noqa: E402

from radtl import backbones as backbones_lib  # noqa: E402
from radtl import data as data_lib  # noqa: E402
from radtl import heads as heads_lib  # noqa: E402
from radtl import losses as losses_lib  # noqa: E402
from radtl import schedules as schedules_lib  # noqa: E402
from radtl.config import TrainConfig  # noqa: E402

_DEFAULTS = TrainConfig()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """radtl: reproducible RadImageNet / ImageNet transfer-learning studies."""


@cli.group()
def data():
    """Datasets: build them and inspect their folds."""


_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="TFDS data directory (default: $RADTL_DATA_DIR or ~/tensorflow_datasets).")
_fold_option = click.option("--fold", type=click.IntRange(1, data_lib.NUM_FOLDS), default=1, show_default=True,
                            help="Official fold.")


@data.command("info")
@click.argument("name", type=click.Choice(data_lib.names()))
@_fold_option
@_data_dir_option
def data_info(name, fold, data_dir):
    """Counts per split and class of one fold (builds the embedded dataset on first use)."""
    try:
        table = data_lib.counts(name, fold, data_dir=data_dir)
    except data_lib.DatasetNotBuiltError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{name}/fold{fold}")
    click.echo(table.to_string())


@data.command("build")
@click.argument("name", type=click.Choice(data_lib.names()))
@click.option("--fold", type=click.IntRange(1, data_lib.NUM_FOLDS), multiple=True,
              help="Fold(s) to build; all five when not given.")
@click.option("--manual-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Your manual download (the RadImageNet acl/ or breast/ folder, or the original release).")
@_data_dir_option
def data_build(name, fold, manual_dir, data_dir):
    """Prepare a dataset (the same as `tfds build`), offline."""
    for k in fold or range(1, data_lib.NUM_FOLDS + 1):
        click.echo(f"Building {name}/fold{k} ...")
        b = data_lib.build(name, k, data_dir=data_dir, manual_dir=manual_dir)
        click.echo(f"  done: {b.data_dir}")


@cli.group()
def weights():
    """Pre-trained weight files: where radtl looks, what is there, how to get them."""


@weights.command("list")
@click.option("--weights-dir", type=click.Path(file_okay=False), default=None, help="Folder searched first.")
@click.option("--source", type=click.Choice(["radimagenet", "imagenet"]), default=None, help="Only this source.")
@click.option("--verify", is_flag=True, help="Also load each present file into its architecture (slow).")
def weights_list(weights_dir, source, verify):
    """Known weight files, where radtl looks, which are present and verified."""
    from radtl import weights as weights_lib

    click.echo(str(weights_lib.status(weights_dir, source=source, verify=verify)))


@weights.command("fetch")
@click.argument("source", type=click.Choice(["radimagenet", "imagenet"]))
@click.option("--arch", "archs", multiple=True, type=click.Choice(backbones_lib.names()),
              help="Backbone(s) to fetch; all with a file of SOURCE when not given.")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Where to place the files [default: $RADTL_WEIGHTS_DIR or the repository's weights/].")
@click.option("--url", default=None, help="Override the download URL (a mirror of the official zip).")
def weights_fetch(source, archs, dest, url):
    """Download, verify and place weight files (offline: says so and prints the manual steps)."""
    from radtl import weights as weights_lib

    try:
        placed = weights_lib.fetch(source, list(archs) or None, dest=dest, url=url)
    except weights_lib.WeightsError as err:
        raise click.ClickException(str(err)) from None
    for item in placed:
        click.echo(f"{item.filename}: {item.path} ({'verified' if item.verified else item.message})")


def _key_values(ctx, param, values):
    """Parses repeated KEY=VALUE options; values are read as YAML scalars (1e-3, true, [1, 2])."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        parsed[key] = yaml.safe_load(value)
    return parsed


def _default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    weights = Path(config.weights).stem if config.weights and "/" in str(config.weights) else config.weights
    return Path("runs") / (f"{config.dataset}-fold{config.fold}-{config.backbone}-{weights or 'random'}-"
                           f"{config.schedule}-seed{config.seed}-{stamp}")


def _print_report(metrics: dict, run_dir: Path) -> None:
    test = metrics["test"]
    if test["task"] == "binary":
        auc = test["roc_auc"]
        t = test["threshold_metrics"]
        click.echo(f"test AUC {auc['auc']:.4f} (95% CI {auc['lower']:.4f}-{auc['upper']:.4f}, DeLong; "
                   f"n={auc['n_pos']}+{auc['n_neg']}), accuracy {t['accuracy']:.4f}, "
                   f"sensitivity {t['sensitivity']:.4f}, specificity {t['specificity']:.4f}, "
                   f"ECE {test['calibration']['ece']:.4f}")
    else:
        click.echo(f"test accuracy {test['accuracy']:.4f}, macro AUC {test['roc_auc']['macro_auc']:.4f}")
    click.echo(f"best epoch {metrics['best_epoch']} ({metrics['monitor']} {metrics['best_value']:.4f}); "
               f"run directory: {run_dir}")


_TRAIN_OPTIONS = {
    # TrainConfig field -> (click parameter declarations, keyword arguments)
    "dataset": (["--dataset"], dict(type=click.Choice(data_lib.names()))),
    "fold": (["--fold"], dict(type=click.IntRange(1, data_lib.NUM_FOLDS))),
    "data_dir": (["--data-dir"], dict(type=click.Path(file_okay=False))),
    "backbone": (["--backbone"], dict(type=click.Choice(backbones_lib.names()))),
    "weights": (["--weights"], dict(help="radimagenet, imagenet, none (random init) or a weight file path.")),
    "weights_dir": (["--weights-dir"], dict(type=click.Path(file_okay=False))),
    "preprocessing": (["--preprocessing"], dict(type=click.Choice(["official", "native"]))),
    "head": (["--head"], dict(type=click.Choice(heads_lib.names()))),
    "head_options": (["--head-option"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE")),
    "schedule": (["--schedule"], dict(type=click.Choice(schedules_lib.names()))),
    "schedule_options": (["--schedule-option"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE")),
    "loss": (["--loss"], dict(type=click.Choice(losses_lib.names()))),
    "loss_options": (["--loss-option"], dict(multiple=True, callback=_key_values, metavar="KEY=VALUE")),
    "optimizer": (["--optimizer"], dict(type=click.Choice(["adam", "adamw", "sgd"]))),
    "learning_rate": (["--lr", "learning_rate"], dict(type=float)),
    "lr_decay": (["--lr-decay"], dict(type=click.Choice(["constant", "cosine"]))),
    "min_lr_ratio": (["--min-lr-ratio"], dict(type=float)),
    "weight_decay": (["--weight-decay"], dict(type=float)),
    "epochs": (["--epochs"], dict(type=click.IntRange(min=1))),
    "batch_size": (["--batch-size"], dict(type=click.IntRange(min=1))),
    "image_size": (["--image-size"], dict(type=click.IntRange(min=1))),
    "augment": (["--augment/--no-augment"], dict(default=None)),
    "seed": (["--seed"], dict(type=int)),
    "precision": (["--precision"], dict(type=click.Choice(["auto", "float32", "mixed_float16", "mixed_bfloat16"]))),
    "xla": (["--xla"], dict(type=click.Choice(["auto", "on", "off"]))),
}


def _train_options(command):
    for field, (decls, kwargs) in reversed(_TRAIN_OPTIONS.items()):
        kwargs = dict(kwargs)
        if not kwargs.get("multiple"):
            default = getattr(_DEFAULTS, field)
            kwargs.setdefault("help", "")
            kwargs["help"] = f"{kwargs['help']} [default: {default}]".strip()
        command = click.option(*decls, **kwargs)(command)
    return command


@cli.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file of TrainConfig fields; options given on the command line override it.")
@_train_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: runs/<dataset>-fold<k>-<backbone>-<weights>-<schedule>-seed<s>-<time>].")
@click.option("--resume", is_flag=True, help="Continue the unfinished run in --out (its recorded config is used).")
@click.option("--verbose", type=click.Choice(["auto", "0", "1", "2"]), default="auto", show_default=True)
def train(config_file, out, resume, verbose, **options):
    """Train one run end to end and write its run directory."""
    from radtl import train as train_lib

    given = {k: v for k, v in options.items() if v is not None and v != {}}
    if "xla" in given:
        given["xla"] = {"on": True, "off": False}.get(given["xla"], given["xla"])
    if resume:
        if not out:
            raise click.UsageError("--resume needs --out RUN_DIR (the run to continue).")
        base = TrainConfig.load(out).to_dict()
    elif config_file:
        base = yaml.safe_load(Path(config_file).read_text()) or {}
    else:
        base = {}
    try:
        config = TrainConfig.from_dict({**base, **given})
    except (TypeError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    run_dir = Path(out) if out else _default_run_dir(config)
    click.echo(f"run directory: {run_dir}")
    click.echo(json.dumps(dataclasses.asdict(config), sort_keys=True))
    try:
        metrics = train_lib.run(config, run_dir, resume=resume, verbose=verbose if verbose == "auto" else int(verbose))
    except (train_lib.RunDirectoryError, train_lib.TrainingDivergedError, data_lib.DatasetNotBuiltError) as err:
        raise click.ClickException(str(err)) from None
    _print_report(metrics, run_dir)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
def evaluate(run_dir, split):
    """Re-evaluate a finished run's best checkpoint on one split."""
    from radtl import train as train_lib

    try:
        report = train_lib.evaluate(run_dir, split)
    except (train_lib.RunDirectoryError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    metrics["test"] = report
    _print_report(metrics, Path(run_dir))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
def predict(run_dir, images, output):
    """Class probabilities of a run's best checkpoint for image files."""
    from radtl import train as train_lib

    try:
        table = train_lib.predict(run_dir, images)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(table.to_string(index=False))
    if output:
        table.to_csv(output, index=False)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("--json", "as_json", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON.")
def compare(run_dirs, split, as_json):
    """DeLong test (and paired bootstrap) of runs evaluated on the same images."""
    from radtl import analysis

    if len(run_dirs) < 2:
        raise click.UsageError("compare needs at least two run directories.")
    try:
        result = analysis.compare_runs(list(run_dirs), split=split)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(analysis.format_comparison(result))
    if as_json:
        Path(as_json).write_text(json.dumps(result, indent=2) + "\n")


@cli.command()
@click.argument("runs_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Where to write the tables [default: RUNS_DIR].")
@click.option("--metric", default="test_auc", show_default=True, help="Metric of the box plots and comparisons.")
@click.option("--compare", "factors", multiple=True,
              help="Config field to compare (paired on the others), e.g. weights; default: every two-level field.")
def summarize(runs_dir, out, metric, factors):
    """One table of every finished run, per-setting means, paired comparisons, box plots."""
    from radtl import analysis

    try:
        result = analysis.summarize(runs_dir, out_dir=out, metric=metric, compare=list(factors) or None)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(result.markdown)
    for path in result.paths.values():
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Where the run directories go [default: runs/<sweep name>].")
@click.option("--shard", default=None, metavar="I/N", help="Run only shard I of N (1-based), for job arrays.")
@click.option("--dry-run", is_flag=True, help="List what would run, skip or resume; train nothing.")
def sweep(config_file, runs_dir, shard, dry_run):
    """Train a grid of runs from a YAML file; finished runs are skipped, unfinished ones resumed."""
    from radtl import sweep as sweep_lib

    try:
        report = sweep_lib.run_sweep(config_file, runs_dir, shard=shard, dry_run=dry_run)
    except (sweep_lib.SweepConfigError, sweep_lib.SweepMismatchError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    raise SystemExit(report.exit_code)


def main():
    """Entry point of the `radtl` console script and of `python cli.py`."""
    cli()


if __name__ == "__main__":
    main()
