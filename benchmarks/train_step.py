"""Fine-tuning step throughput: precision policy x XLA, side by side in one run.

For ResNet50 (or `--backbone`; `radtl.build_model`, linear head, everything trainable, Adam) at 224 px and
a smaller size, times `model.fit` steps on in-memory batches under float32, the policy
`radtl.precision.configure("auto")` picks on this machine, and XLA off/on. Each row
reports images per second and the fraction of the machine's FLOP ceiling reached:

- FLOPs per image: 3 x the forward multiply-adds x 2, counted from the model's
  convolution and dense layers (backward ~ 2 x forward);
- ceiling: the best of a few large matrix multiplications in the row's compute dtype,
  measured in the same run on the same device (a practical ceiling, not a datasheet
  number).

The last line is the headline: the fastest row at the first size against float32
without XLA.

Usage:
    python benchmarks/train_step.py [--sizes 224 128] [--batch-size 16] [--steps 5]
        [--backbone resnet50]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import radtl  # noqa: E402
from radtl import precision  # noqa: E402


def forward_flops(model: keras.Model) -> float:
    """Forward FLOPs (2 x multiply-adds) of one image through the conv and dense layers."""
    total = 0.0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += 2.0 * h * w * k_h * k_w * layer.input.shape[-1] * c_out / layer.groups
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += 2.0 * h * w * k_h * k_w * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def matmul_ceiling(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """Best observed FLOP/s of an n x n matmul in `dtype` on the default device."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def step(x):
        return tf.linalg.matmul(x, x)

    step(a).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


def time_fit(size: int, policy: str, xla: bool, batch_size: int, steps: int, warmup: int,
             backbone: str = "resnet50") -> dict:
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = radtl.build_model(backbone, None, input_shape=(size, size, 3), preprocessing="official")
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", jit_compile=xla)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    labels = rng.integers(0, 2, batch_size)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=warmup, epochs=1, verbose=0)  # trace + warm-up
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    flops_per_image = 3.0 * forward_flops(model)
    keras.config.set_dtype_policy("float32")
    return {"img/s": steps * batch_size / seconds, "step s": seconds / steps, "warm-up s": first,
            "GFLOP/img": flops_per_image / 1e9, "achieved TFLOP/s": flops_per_image * steps * batch_size / seconds / 1e12}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 128])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backbone", default="resnet50", choices=radtl.backbones.names())
    args = parser.parse_args()

    auto = precision.configure("auto", "auto")
    keras.config.set_dtype_policy("float32")
    policies = ["float32"] + ([auto.policy] if auto.policy != "float32" else [])
    ceilings = {p: matmul_ceiling("float32" if p == "float32" else p.split("_")[1]) for p in policies}
    rows = []
    for size in args.sizes:
        for policy in policies:
            for xla in (False, True):
                print(f"{args.backbone} {size} px, {policy}, XLA {'on' if xla else 'off'} ...", flush=True)
                result = time_fit(size, policy, xla, args.batch_size, args.steps, args.warmup, args.backbone)
                ceiling = ceilings[policy]
                rows.append({"size": size, "policy": policy, "xla": xla, **result,
                             "ceiling TFLOP/s": ceiling / 1e12,
                             "% of ceiling": 100.0 * result["achieved TFLOP/s"] * 1e12 / ceiling})
    table = pd.DataFrame(rows)
    base = table[(table.policy == "float32") & (~table.xla)].set_index("size")["img/s"]
    table["speed-up vs float32/no XLA"] = table["img/s"] / table["size"].map(base)
    print(f"\nradtl.precision auto choice: {auto.policy}, XLA {auto.xla} ({auto.reason}); device: {auto.device}")
    print(f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    first = table[table["size"] == args.sizes[0]]
    best = first.loc[first["speed-up vs float32/no XLA"].idxmax()]
    print(f"headline: best train step ({best['policy']}, XLA {'on' if best['xla'] else 'off'}) vs float32 without "
          f"XLA at {args.sizes[0]} px {best['speed-up vs float32/no XLA']:.2f}x")


if __name__ == "__main__":
    main()
