"""Linear probing: end-to-end frozen `fit()` against the head trained on cached features.

Times, on the embedded `synthetic_lesions` fold 1 training split (no augmentation):

- end-to-end: `model.fit(train, callbacks=[radtl.schedules.get("lp")])`, the whole
  frozen backbone running forward every step of every epoch;
- cached: `radtl.probing.feature_dataset` computes the pooled backbone features once
  (timed on its own), then the head alone trains on them (`radtl.probing.split_model`).

Per-epoch times are the median over epochs after the first (the first includes
tracing, and for end-to-end the image decoding into the cache). The last line is the
headline: end-to-end per-epoch time over cached per-epoch time.

Usage:
    python benchmarks/linear_probe.py [--backbone resnet50] [--image-size 64]
        [--batch-size 32] [--epochs 3] [--weights none]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import radtl  # noqa: E402
import radtl.data  # noqa: E402
from radtl import probing, schedules  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch, in seconds."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _model(args):
    keras.utils.set_random_seed(0)
    model = radtl.build_model(args.backbone, args.weights, head="linear", dropout=0.0,
                              input_shape=(args.image_size, args.image_size, 3))
    return model


def _compile(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy())


def _steady(seconds):
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50", choices=radtl.backbones.names())
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help=">= 2: the first epoch is not counted")
    parser.add_argument("--weights", default="none", help="none (random init, no download), imagenet, radimagenet")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: a temporary one)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory() as tmp:
        fold = radtl.data.open("synthetic_lesions", 1, data_dir=args.data_dir or tmp)
        load = dict(image_size=args.image_size, batch_size=args.batch_size, seed=0)

        end_to_end, timer = _model(args), EpochTimer()
        _compile(end_to_end)
        end_to_end.fit(fold.load("train", **load), epochs=args.epochs, verbose=0,
                       callbacks=[schedules.get("lp"), timer])
        e2e_epochs = timer.seconds

        features, head = probing.split_model(_model(args))
        start = time.perf_counter()
        cached_train = probing.feature_dataset(features, fold.load("train", shuffle=False, **load), shuffle_seed=0)
        extraction = time.perf_counter() - start
        _compile(head)
        timer = EpochTimer()
        head.fit(cached_train, epochs=args.epochs, verbose=0, callbacks=[timer])
        cached_epochs = timer.seconds

    n = fold.split_sizes["train"]
    e2e, cached = _steady(e2e_epochs), _steady(cached_epochs)
    rows = [
        ("end-to-end frozen (lp)", "-", e2e_epochs[0], e2e, n / e2e, sum(e2e_epochs), 1.0),
        ("cached features", extraction, cached_epochs[0], cached, n / cached, extraction + sum(cached_epochs),
         e2e / cached),
    ]
    table = pd.DataFrame(rows, columns=["path", "feature pass s", "epoch 1 s", "epoch s (steady)", "img/s",
                                        "total s", "speed-up per epoch"])
    print(f"\n{args.backbone} ({args.weights}) at {args.image_size} px, batch {args.batch_size}, {args.epochs} epochs "
          f"over {n} training images, {cores} usable CPU cores, TensorFlow {tf.__version__}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"headline: cached-feature probing vs end-to-end frozen {e2e / cached:.1f}x")


if __name__ == "__main__":
    main()
