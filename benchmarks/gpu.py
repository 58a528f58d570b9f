"""GPU training throughput with the input pipeline in the loop: img/s, input wait, % of peak.

What a lent GPU machine runs (in under 5 minutes on an H100-class GPU with the defaults):
ResNet50 at 224 px, the precision `radtl.precision.configure("auto", "auto")` picks
(mixed_bfloat16 on compute capability >= 8, XLA on a GPU), Adam, everything trainable,
at batch 128 and 256, fed by `radtl.data.open(dataset).load("train", augment=True)` from
a built TFDS dataset (the embedded `synthetic_lesions` by default, built on first use).
The training split is repeated and re-batched to full batches (`rebatch`, so XLA sees one
shape). Per batch size, with one compiled model:

1. warm-up: `model.fit` on the pipeline for one epoch plus one step (tracing, XLA
   compilation, and the decoded-image cache of `load` filled, as in any epoch after
   the first of a real run; augmentation stays live in every step), or `--warmup` steps;
2. pipeline: `model.fit` on the pipeline for `--steps` steps;
3. cached batch: `model.fit` on one batch of the pipeline held in memory and repeated,
   the same number of steps: the step time without any input work.

Columns: `img/s` (pipeline), `cached img/s`, `input wait %` = 1 - cached step time /
pipeline step time (the share of the step spent waiting for input, 0 when the pipeline
keeps up), `pipeline img/s` (the pipeline iterated alone, no model), and `% of peak`:
achieved FLOP/s over the device's peak, with FLOPs per image = 3 x the forward count of
the model's convolution and dense layers (`train_step.forward_flops`; backward ~ 2 x
forward) and the peak from `PEAK_TFLOPS` (dense bf16/fp16 tensor-core datasheet figures)
by device name, else the best measured matrix multiplication in the compute dtype
(`train_step.matmul_ceiling`; on a CPU always this).

The last line: `headline: ResNet50 train throughput at batch B <img/s> img/s (<x>% of
peak, input wait <y>%)` for the largest batch size.

Usage:
    python benchmarks/gpu.py [--dataset synthetic_lesions] [--data-dir DIR]
        [--image-size 224] [--batch-sizes 128 256] [--steps 30] [--backbone resnet50]
        [--augment-on device]   # default: device (the warp in the XLA step) with a GPU, else auto
    # CPU check at a tiny size:
    python benchmarks/gpu.py --image-size 32 --batch-sizes 4 --steps 2 --backbone mobilenet_v2
"""
from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from train_step import forward_flops, matmul_ceiling  # noqa: E402 (benchmarks/train_step.py)

import radtl  # noqa: E402
from radtl import augmentation  # noqa: E402
from radtl import precision  # noqa: E402

#: Dense (no sparsity) bf16/fp16 tensor-core peak, TFLOP/s, by a substring of the device name
#: (NVIDIA datasheets; SXM parts). Checked in order: the first match wins.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "V100": 125.0,
    "T4": 65.0,
}

_LABELS = {"resnet50": "ResNet50"}


def device_name() -> str:
    """The first GPU's name (e.g. "NVIDIA H100 80GB HBM3"), else "CPU"."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")


def peak_flops(name: str, compute_dtype: str) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from): the datasheet table for a known GPU running a
    16-bit policy, else a measured matmul ceiling in `compute_dtype`."""
    if compute_dtype in ("bfloat16", "float16"):
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"datasheet {key} dense {compute_dtype}"
    return matmul_ceiling(compute_dtype), f"measured {compute_dtype} matmul"


def pipeline(fold, image_size: int, batch_size: int, seed: int = 0, augment_on: str = "auto") -> tf.data.Dataset:
    """The augmented training split, repeated, in full batches of `batch_size`."""
    ds = fold.load("train", image_size=image_size, batch_size=batch_size, augment=True, seed=seed,
                   augment_on=augment_on)
    return ds.repeat().rebatch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _fit_seconds(model, data, steps: int) -> float:
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - start


def pipeline_alone(data: tf.data.Dataset, steps: int) -> float:
    """Seconds to draw `steps` batches from a fresh iterator, after one batch (start-up)."""
    iterator = iter(data)
    next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return time.perf_counter() - start


def measure(fold, args, batch_size: int, xla: bool) -> dict:
    """One row of the table: warm-up, then the pipeline and the cached batch, same model."""
    keras.utils.set_random_seed(0)
    model = radtl.build_model(args.backbone, None, num_classes=fold.num_classes,
                              input_shape=(args.image_size, args.image_size, 3), preprocessing="official")
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", jit_compile=xla)
    if args.augment_on == "device":  # the warp runs in the compiled train step, on the accelerator
        augmentation.warp_in_train_step(model)
    data = pipeline(fold, args.image_size, batch_size, augment_on=args.augment_on)
    warmup = args.warmup or math.ceil(fold.split_sizes["train"] / batch_size) + 1
    warmup_seconds = _fit_seconds(model, data, warmup)
    piped = _fit_seconds(model, data, args.steps)
    images, labels = next(iter(data))
    cached = _fit_seconds(model, tf.data.Dataset.from_tensors((images, labels)).repeat(), args.steps)
    alone = pipeline_alone(data, args.steps)
    flops_per_image = 3.0 * forward_flops(model)
    n = args.steps * batch_size
    return {"batch": batch_size, "img/s": n / piped, "cached img/s": n / cached,
            "input wait %": 100.0 * max(0.0, 1.0 - cached / piped), "pipeline img/s": n / alone,
            "step ms": 1000.0 * piped / args.steps, "warm-up s": warmup_seconds,
            "GFLOP/img": flops_per_image / 1e9, "TFLOP/s": flops_per_image * n / piped / 1e12}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic_lesions", choices=radtl.data.names())
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: $RADTL_DATA_DIR or TFDS')")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=None,
                        help="warm-up steps (default: one epoch of the training split + 1, filling the decode cache)")
    parser.add_argument("--backbone", default="resnet50", choices=radtl.backbones.names())
    parser.add_argument("--augment-on", default=None, choices=radtl.data.AUGMENT_ON,
                        help="where the augmentation warps (default auto: the device with a GPU, else the CPU)")
    args = parser.parse_args(argv)
    args.augment_on = radtl.data.resolve_augment_on(args.augment_on or "auto")

    choice = precision.configure("auto", "auto")
    compute_dtype = keras.config.dtype_policy().compute_dtype
    name = device_name()
    peak, peak_source = peak_flops(name, compute_dtype)
    fold = radtl.data.open(args.dataset, args.fold, args.data_dir)
    rows = []
    for batch_size in args.batch_sizes:
        print(f"{args.backbone} {args.image_size} px, batch {batch_size}, {choice.policy}, "
              f"XLA {'on' if choice.xla else 'off'} ...", flush=True)
        rows.append(measure(fold, args, batch_size, choice.xla))
    table = pd.DataFrame(rows)
    table["% of peak"] = 100.0 * table["TFLOP/s"] * 1e12 / peak
    cores = len(os.sched_getaffinity(0))
    print(f"\ndevice: {name}; {choice.policy}, XLA {choice.xla} ({choice.reason}); peak {peak / 1e12:,.1f} "
          f"TFLOP/s ({peak_source}); {cores} usable CPU cores; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"{args.dataset}/fold{args.fold} train ({fold.split_sizes['train']} images), augment=True, "
          f"augment_on={args.augment_on}, {args.steps} timed steps per column")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    last = table.iloc[-1]
    label = _LABELS.get(args.backbone, args.backbone)
    print(f"headline: {label} train throughput at batch {int(last['batch'])} {last['img/s']:,.0f} img/s "
          f"({last['% of peak']:.1f}% of peak, input wait {last['input wait %']:.0f}%)")


if __name__ == "__main__":
    main()
