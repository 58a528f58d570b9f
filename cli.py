"""radtl command line: a thin click layer over the library.

    python cli.py --help
    python cli.py data info synthetic_lesions --fold 1
    python cli.py data build radimagenet_acl --manual-dir ~/Downloads/acl
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402

from radtl import data as data_lib  # noqa: E402


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


if __name__ == "__main__":
    cli()
