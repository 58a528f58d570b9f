"""Sweep throughput: runs per hour with and without data reuse, side by side in one process.

Runs a sweep (`configs/smoke.yaml` by default: 4 tiny runs on the embedded
`synthetic_lesions`, one dataset, fold and image size) twice with
`radtl.sweep.run_sweep`, each into a fresh temporary runs directory:

- without reuse (`reuse_data=False`): every run opens the TFDS builder and decodes the
  PNGs again, as each run of a sweep did before;
- with reuse (`reuse_data=True`, `radtl.data.reuse()`): the runs share one opened fold
  and its decoded, resized splits; only the first run of a (dataset, fold, image size)
  decodes.

One untimed run comes first, so TensorFlow's and Keras' start-up is charged to neither.
Runs train with `radtl.train.run` (verbose 0). The last line is the headline: runs per
hour with reuse over runs per hour without.

Usage:
    python benchmarks/sweep_throughput.py [--config configs/smoke.yaml] [--shard 1/1]
        [--data-dir DIR]   # TFDS data dir (default: $RADTL_DATA_DIR or TFDS')
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from radtl import sweep, train  # noqa: E402

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def quiet_runner(config, run_dir, *, resume=False):
    """`radtl.train.run` without Keras progress bars."""
    return train.run(config, run_dir, resume=resume, verbose=0, progress=lambda line: None)


def with_data_dir(config: Path, data_dir: str | None, folder: Path) -> Path:
    """`config`, or a sweep file extending it that sets `data_dir` for every run."""
    if not data_dir:
        return config
    path = folder / f"{config.stem}.yaml"
    path.write_text(f"name: {config.stem}\nextends: {config.resolve()}\nbase:\n  data_dir: {os.path.abspath(data_dir)}\n")
    return path


def timed_sweep(config: Path, runs_dir: Path, shard: str, reuse: bool) -> tuple[int, float]:
    """(runs done, seconds) of one sweep into an empty `runs_dir`."""
    start = time.perf_counter()
    report = sweep.run_sweep(config, runs_dir, shard=shard, runner=quiet_runner, reuse_data=reuse)
    seconds = time.perf_counter() - start
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} runs failed: {report.failed}")
    return len(report.done), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=SMOKE, help="sweep YAML (default: configs/smoke.yaml)")
    parser.add_argument("--shard", default="1/1", help="only this shard's runs, I/N (e.g. 1/2 for a quick check)")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: $RADTL_DATA_DIR or TFDS')")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = with_data_dir(args.config, args.data_dir, tmp)
        runs = len(sweep.shard(sweep.expand(config), *sweep.parse_shard(args.shard)))
        print(f"warm-up: one untimed run of {config.name} ...", flush=True)
        i, n = sweep.parse_shard(args.shard)
        timed_sweep(config, tmp / "warm-up", f"{i}/{n * runs}", reuse=False)
        rows = []
        for reuse in (False, True):
            print(f"sweep {'with' if reuse else 'without'} data reuse ...", flush=True)
            done, seconds = timed_sweep(config, tmp / f"reuse-{reuse}", args.shard, reuse)
            rows.append({"data reuse": reuse, "runs": done, "seconds": seconds, "s/run": seconds / done,
                         "runs/hour": 3600.0 * done / seconds})
    table = pd.DataFrame(rows)
    cores = len(os.sched_getaffinity(0))
    print(f"\n{args.config} shard {args.shard}: {runs} runs per sweep, {cores} usable CPU cores, "
          f"TensorFlow {tf.__version__}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    without, with_ = table["runs/hour"]
    print(f"headline: sweep runs per hour with reuse vs without {with_ / without:.2f}x")


if __name__ == "__main__":
    main()
