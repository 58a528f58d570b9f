"""Every benchmark script runs at a tiny size in a subprocess and ends with its `headline:` line.

The numbers are not checked (the machine is shared and the sizes tiny): only that each
script runs end to end, prints its table, and ends with the one-line headline that
`make bench` and `benchmarks/RESULTS.md` rely on.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def built_dir(tmp_path_factory):
    """A TFDS data dir holding synthetic_lesions fold 1 (built once for the module)."""
    from radtl import data

    root = tmp_path_factory.mktemp("tfds")
    data.open("synthetic_lesions", 1, root)
    return root


def run_script(name, *args, timeout=240):
    """Runs `benchmarks/<name>.py args` and returns its stdout lines (fails with its output)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("headline: "), lines[-5:]
    return lines


def test_gpu_benchmark_prints_table_and_headline(built_dir):
    # the path a GPU takes by default: the warp inside the train step (here on the CPU)
    lines = run_script("gpu", "--image-size", 32, "--batch-sizes", 4, "--steps", 2, "--warmup", 2,
                       "--backbone", "mobilenet_v2", "--data-dir", built_dir, "--augment-on", "device")
    assert any("augment=True, augment_on=device" in line for line in lines), lines
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "img/s"])
    for column in ("cached img/s", "input wait %", "pipeline img/s", "% of peak"):
        assert column in lines[header]
    assert lines[header + 1].split()[0] == "4"
    assert re.fullmatch(r"headline: mobilenet_v2 train throughput at batch 4 [\d,]+ img/s "
                        r"\(\d+\.\d% of peak, input wait \d+%\)", lines[-1]), lines[-1]


@pytest.mark.slow  # four XLA/precision variants: about 2 minutes on 2 cores
def test_train_step_benchmark_prints_headline():
    lines = run_script("train_step", "--sizes", 32, "--batch-size", 4, "--steps", 1, "--warmup", 1,
                       "--backbone", "mobilenet_v2")
    assert re.fullmatch(r"headline: best train step \(\S+, XLA (on|off)\) vs float32 without XLA at 32 px "
                        r"\d+\.\d\dx", lines[-1]), lines[-1]


def test_linear_probe_benchmark_prints_headline(built_dir):
    lines = run_script("linear_probe", "--backbone", "mobilenet_v2", "--image-size", 32, "--batch-size", 32,
                       "--epochs", 2, "--data-dir", built_dir)
    assert re.fullmatch(r"headline: cached-feature probing vs end-to-end frozen \d+\.\dx", lines[-1]), lines[-1]


@pytest.mark.slow
def test_input_pipeline_benchmark_prints_headline():
    lines = run_script("input_pipeline", "--image-size", 32, "--batch-size", 8, "--source-size", 48)
    assert re.fullmatch(r"headline: augmented input pipeline vs ImageDataGenerator \d+\.\dx", lines[-1]), lines[-1]


@pytest.mark.slow
def test_sweep_throughput_benchmark_prints_both_rates_and_headline(built_dir):
    lines = run_script("sweep_throughput", "--shard", "1/4", "--data-dir", built_dir)
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["data", "reuse"])
    assert [line.split()[:2] for line in lines[header + 1:header + 3]] == [["False", "1"], ["True", "1"]]
    assert re.fullmatch(r"headline: sweep runs per hour with reuse vs without \d+\.\d\dx", lines[-1]), lines[-1]
