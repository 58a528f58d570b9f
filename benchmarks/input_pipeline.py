"""Input-pipeline throughput: `radtl.data.load` against the official scripts' path.

Both read the same PNG files: the benchmark writes a breast-ultrasound-like dataset
in the RadImageNet `breast/` layout (every file name of the official split lists,
images from radtl's lesion simulator at BUSI-like sizes), builds it with the
`radimagenet_breast` TFDS builder, then times one pass over fold 1's training split:

- official: `ImageDataGenerator(rescale=1/255, preprocessing_function=preprocess_input,
  rotation_range=10, width_shift_range=0.1, height_shift_range=0.1, shear_range=0.1,
  zoom_range=0.1, horizontal_flip=True).flow_from_dataframe(...)`, as in
  `breast/breast_train.py` of the RadImageNet repository;
- radtl: `radtl.data.load(..., augment=True,
  preprocessing=radtl.preprocessing.function("caffe_rescaled"))` (the same caffe then /255),
  first epoch (decoding) and second epoch (served from the in-memory cache); with
  augmentation both ways of warping are timed side by side (the same pixels): one warp
  per image in the parallel map (`augment_on="auto"`, the default) and one warp per
  batch (`augment_on="cpu"`, `augmentation.augment_batch`).

Rates are also given per core (the cores this process may run on,
`os.sched_getaffinity`). The last line is the headline: the default (auto) augmented
pipeline's cached epoch against `ImageDataGenerator` with augmentation.

Usage:
    python benchmarks/input_pipeline.py [--image-size 224] [--batch-size 32] [--epochs 4]
        [--source-size 0]   # 0: BUSI-like 380-560 px PNGs; N: N px PNGs (quick checks)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

import radtl.data  # noqa: E402
import radtl.preprocessing  # noqa: E402
from tfds_builders.radimagenet_breast import radimagenet_breast_dataset_builder as breast_builder  # noqa: E402
from tfds_builders.synthetic_lesions import lesion_simulator  # noqa: E402

def write_dataset(root: Path, seed: int = 0, source_size: int = 0) -> Path:
    """Writes every file of the official breast split lists as a simulated lesion PNG."""
    splits_dir = Path(breast_builder.__file__).parent / "splits"
    rows = pd.concat([pd.read_csv(p) for p in sorted(splits_dir.glob("*.csv"))]).drop_duplicates("filename")
    (root / "images").mkdir(parents=True)
    (root / "dataframe").mkdir()
    rng = np.random.default_rng(seed)
    for i, row in enumerate(rows.itertuples()):
        size = source_size or int(rng.integers(380, 560))  # BUSI images average about 500 x 500
        image, _ = lesion_simulator.simulate_case(np.random.default_rng([seed, i]), row.label == "malignant", size)
        Image.fromarray(image).save(root / row.filename)
    for path in splits_dir.glob("*.csv"):
        (root / "dataframe" / path.name).write_bytes(path.read_bytes())
    return root


def time_official(manual_dir: Path, image_size: int, batch_size: int, augment: bool) -> tuple[float, int]:
    from keras.src.legacy.preprocessing.image import ImageDataGenerator
    from keras.src.applications.imagenet_utils import preprocess_input

    ranges = dict(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1, shear_range=0.1,
                  zoom_range=0.1, horizontal_flip=True, fill_mode="nearest") if augment else {}
    generator = ImageDataGenerator(rescale=1.0 / 255, preprocessing_function=preprocess_input, **ranges)
    frame = pd.read_csv(manual_dir / "dataframe" / "breast_train_fold1.csv")
    flow = generator.flow_from_dataframe(frame, directory=str(manual_dir), x_col="filename", y_col="label",
                                         target_size=(image_size, image_size), batch_size=batch_size,
                                         class_mode="categorical", seed=726, shuffle=True)
    start = time.perf_counter()
    n = 0
    for i in range(len(flow)):
        x, _ = flow[i]
        n += len(x)
    return time.perf_counter() - start, n


def time_radtl(data_dir: Path, image_size: int, batch_size: int, augment: bool, epochs: int,
               augment_on: str = "auto") -> list[tuple[float, int]]:
    fold = radtl.data.open("radimagenet_breast", 1, data_dir=data_dir)
    ds = fold.load("train", image_size=image_size, batch_size=batch_size, augment=augment,
                   preprocessing=radtl.preprocessing.function("caffe_rescaled"), seed=0, augment_on=augment_on)
    results = []
    for _ in range(epochs):
        start = time.perf_counter()
        n = 0
        for x, _ in ds:
            n += int(x.shape[0])
        results.append((time.perf_counter() - start, n))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4,
                        help="radtl epochs: the 1st decodes, the others are served from the cache (timed together)")
    parser.add_argument("--source-size", type=int, default=0,
                        help="side of the written PNGs; 0 = BUSI-like 380-560 px (quick checks: 64)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the headline is the cached epochs' rate")
    cores = len(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("Writing 780 simulated PNGs in the RadImageNet breast/ layout ...", flush=True)
        manual_dir = write_dataset(tmp / "breast", source_size=args.source_size)
        print("Building radimagenet_breast/fold1 with TFDS ...", flush=True)
        radtl.data.build("radimagenet_breast", 1, data_dir=tmp / "tfds", manual_dir=manual_dir)

        rows = []
        official_augmented = auto_augmented = None
        for augment in (True, False):
            seconds, n = time_official(manual_dir, args.image_size, args.batch_size, augment)
            official_rate = n / seconds
            official_augmented = official_rate if augment else official_augmented
            rows.append(("official ImageDataGenerator.flow_from_dataframe", augment, "-", n, seconds, official_rate,
                         official_rate / cores, 1.0))
            if augment:
                paths = [("radtl.data.load (auto: a warp per image)", "auto"),
                         ("radtl.data.load (cpu: a warp per batch)", "cpu")]
            else:
                paths = [("radtl.data.load", "auto")]
            for label, augment_on in paths:
                timings = time_radtl(tmp / "tfds", args.image_size, args.batch_size, augment, args.epochs,
                                     augment_on)
                # The decoding epoch, then the cached ones together (short epochs are noisy alone).
                cached = timings[1:]
                for epochs, (seconds, n) in [("1 (decode)", timings[0]),
                                             (f"2-{len(timings)} (cached)" if len(cached) > 1 else "2 (cached)",
                                              (sum(t for t, _ in cached), sum(k for _, k in cached)))]:
                    rate = n / seconds
                    rows.append((label, augment, epochs, n, seconds, rate, rate / cores, rate / official_rate))
                if augment and augment_on == "auto":
                    auto_augmented = rate  # the cached epochs

    table = pd.DataFrame(rows, columns=["pipeline", "augment", "epoch", "images", "seconds", "img/s",
                                        "img/s per core", "ratio vs official"])
    print(f"\nfold 1 train split, {args.image_size} px, batch {args.batch_size}, {cores} usable CPU cores "
          f"(os.sched_getaffinity), TensorFlow {tf.__version__}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print(f"headline: augmented input pipeline vs ImageDataGenerator {auto_augmented / official_augmented:.1f}x")


if __name__ == "__main__":
    main()
