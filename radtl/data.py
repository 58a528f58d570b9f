"""`tf.data` input pipelines over radtl's TFDS datasets.

`load` reads one split of one fold of a built dataset and returns a batched,
prefetched `tf.data.Dataset` of `(images, labels)`:

- images: float32, shape (batch, image_size, image_size, 3), RGB in [0, 255] unless a
  `preprocessing` function is given (models from `radtl.build_model` carry their own
  preprocessing layer, so they take these raw values);
- labels: int32 class ids, shape (batch,), in the order of the dataset's ClassLabel.

Pipeline: read (files in a fixed order) -> decode -> resize -> cache (in memory, on
the first pass, for splits that fit: decoding PNGs is the expensive step) -> shuffle
(training splits; seeded, a new deterministic order every epoch) -> augment (seeded,
stateless, in parallel) -> preprocess -> batch -> prefetch. For a given `seed` the
stream of batches is identical from run to run, epoch by epoch.

Datasets (`names()`): `synthetic_lesions` is embedded (it builds itself on first use);
`radimagenet_acl` and `radimagenet_breast` need a manual download and a `tfds build`,
and a clear error gives the exact command when they are missing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_datasets as tfds

from radtl import augmentation

__all__ = ["DatasetSpec", "DatasetNotBuiltError", "names", "get", "builder", "build", "load", "counts",
           "decode_image", "class_names"]

logger = logging.getLogger(__name__)

_BUILDERS_DIR = Path(__file__).resolve().parent.parent / "tfds_builders"
NUM_FOLDS = 5
SPLITS = ("train", "val", "test")
_PIPELINE_GLOBAL_SEED = 0x5EED


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset radtl knows how to read.

    Attributes:
        name: str. TFDS name (also the builder folder under `tfds_builders/`).
        module: str. Module that defines the TFDS `Builder` class.
        embedded: bool. True if it generates itself without a manual download.
        manual_dir_hint: str. What the user's manual download folder holds.
    """

    name: str
    module: str
    embedded: bool = False
    manual_dir_hint: str = ""

    @property
    def builder_dir(self) -> Path:
        """The builder's folder (what `tfds build` takes)."""
        return _BUILDERS_DIR / self.name


_REGISTRY = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "synthetic_lesions",
            "tfds_builders.synthetic_lesions.synthetic_lesions_dataset_builder",
            embedded=True,
        ),
        DatasetSpec(
            "radimagenet_acl",
            "tfds_builders.radimagenet_acl.radimagenet_acl_dataset_builder",
            manual_dir_hint="/path/to/acl (RadImageNet `acl/` folder, or the MRNet release)",
        ),
        DatasetSpec(
            "radimagenet_breast",
            "tfds_builders.radimagenet_breast.radimagenet_breast_dataset_builder",
            manual_dir_hint="/path/to/breast (RadImageNet `breast/` folder, or Dataset_BUSI_with_GT)",
        ),
    )
}


class DatasetNotBuiltError(FileNotFoundError):
    """A dataset that needs a manual download has not been prepared yet."""


def names() -> list[str]:
    """Names of the registered datasets."""
    return sorted(_REGISTRY)


def get(name: str) -> DatasetSpec:
    """Returns the `DatasetSpec` registered under `name`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"`name` must be one of {names()}. Received: name={name!r}") from None


def _check_fold(fold: int) -> None:
    if fold not in range(1, NUM_FOLDS + 1):
        raise ValueError(f"`fold` must be one of 1..{NUM_FOLDS}. Received: fold={fold!r}")


def _data_dir(data_dir):
    """`data_dir`, else `$RADTL_DATA_DIR`, else TFDS' default (~/tensorflow_datasets)."""
    data_dir = data_dir or os.environ.get("RADTL_DATA_DIR")
    return os.fspath(data_dir) if data_dir else None


def builder(name: str, fold: int = 1, data_dir=None) -> tfds.core.DatasetBuilder:
    """The TFDS builder of `name`, config `fold{fold}`, rooted at `data_dir`."""
    spec = get(name)
    _check_fold(fold)
    module = importlib.import_module(spec.module)
    return module.Builder(config=f"fold{fold}", data_dir=_data_dir(data_dir))


def build_command(name: str, fold: int = 1, data_dir=None, manual_dir: str | None = None) -> str:
    """The exact shell command that prepares one fold of `name`."""
    spec = get(name)
    data_dir = _data_dir(data_dir) or os.path.expanduser("~/tensorflow_datasets")
    manual = manual_dir or spec.manual_dir_hint or "/path/to/download"
    return (f"tfds build {spec.builder_dir} --config=fold{fold} "
            f"--manual_dir={manual} --data_dir={data_dir}")


def build(name: str, fold: int = 1, *, data_dir=None, manual_dir=None) -> tfds.core.DatasetBuilder:
    """Prepares one fold of a dataset (what `tfds build` does), from Python.

    Args:
        name: str. A registered dataset name.
        fold: int. 1..5. Defaults to 1.
        data_dir: path or None. Where TFDS writes; defaults to `$RADTL_DATA_DIR` or
            `~/tensorflow_datasets`.
        manual_dir: path or None. The user's manual download (not needed for
            embedded datasets).

    Returns:
        The prepared `tfds.core.DatasetBuilder`.
    """
    b = builder(name, fold, data_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
    b.download_and_prepare(download_config=download_config)
    return b


def _prepared_builder(name: str, fold: int, data_dir) -> tfds.core.DatasetBuilder:
    b = builder(name, fold, data_dir)
    if b.is_prepared():
        return b
    if get(name).embedded:
        logger.info("Building the embedded dataset %s/fold%d in %s (first use).", name, fold, b.data_dir)
        return build(name, fold, data_dir=data_dir)
    raise DatasetNotBuiltError(
        f"Dataset {name}/fold{fold} is not built in {Path(b.data_dir).parent.parent}. "
        f"Download it (see {get(name).builder_dir / 'README.md'}), then run:\n"
        f"  {build_command(name, fold, data_dir)}\n"
        f"or pass data_dir= where it was built."
    )


@contextlib.contextmanager
def _only_seed_matters():
    """Makes seeded tf.data ops independent of TensorFlow's global seed.

    `Dataset.shuffle(seed=s)` and `Dataset.random(seed=s)` combine `s` with the global
    seed (`tf.random.set_seed`), so the same `load(seed=s)` would give another order
    after someone sets the global seed. Inside this context the global seed is a
    constant; the caller's global seed is restored afterwards.
    """
    from tensorflow.python.eager import context  # TF has no public getter

    previous = context.global_seed()
    tf.random.set_seed(_PIPELINE_GLOBAL_SEED)
    try:
        yield
    finally:
        tf.random.set_seed(previous)


def decode_image(encoded, image_size: int, method: str = "bilinear") -> tf.Tensor:
    """Decodes a PNG/JPEG (greyscale replicated to RGB) and resizes it.

    Args:
        encoded: scalar string tensor, the file's bytes.
        image_size: int. Output height and width in pixels.
        method: str. `tf.image.resize` method. Defaults to "bilinear".

    Returns:
        uint8 tensor of shape (image_size, image_size, 3).
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method=method)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _decode_and_resize(image_size: int, method: str):
    def fn(example):
        return {"image": decode_image(example["image"], image_size, method),
                "label": tf.cast(example["label"], tf.int32), "filename": example["filename"],
                "exam_id": example["exam_id"]}

    return fn


def load(
    name: str,
    split: str,
    *,
    fold: int = 1,
    image_size: int = 224,
    batch_size: int = 32,
    preprocessing: Callable | None = None,
    augment: bool | augmentation.AugmentConfig = False,
    seed: int = 0,
    data_dir=None,
    shuffle: bool | None = None,
    cache: bool = True,
    resize_method: str = "bilinear",
    with_metadata: bool = False,
) -> tf.data.Dataset:
    """A batched, prefetched `tf.data.Dataset` of one split of one fold.

    Args:
        name: str. Dataset name, one of `names()`.
        split: str. "train", "val" or "test" (any TFDS split string works).
        fold: int. Official fold 1..5. Defaults to 1.
        image_size: int. Images are resized to (image_size, image_size).
            Defaults to 224.
        batch_size: int. Defaults to 32. The last batch may be smaller.
        preprocessing: callable or None. Maps float32 RGB images in [0, 255]
            (batch of one image, shape (H, W, 3)) to the model's input, e.g.
            `radtl.preprocessing.get(...)`. Defaults to None (raw [0, 255] values).
        augment: bool or AugmentConfig. True applies the official RadImageNet
            augmentation (`radtl.augmentation.OFFICIAL`); an AugmentConfig sets each
            transform's range (0 switches it off). Defaults to False.
        seed: int. Seeds the shuffle order and the augmentation. Defaults to 0.
        data_dir: path or None. Where the dataset is built.
        shuffle: bool or None. Shuffle every epoch; None shuffles "train" only.
        cache: bool. Cache decoded, resized images in memory after the first pass.
            Defaults to True.
        resize_method: str. `tf.image.resize` method. Defaults to "bilinear"; the
            official Keras scripts load with "nearest".
        with_metadata: bool. Yield `(images, labels, metadata)` instead, where
            metadata is a dict of string tensors `filename` and `exam_id`, shape (B,)
            (for prediction files; not for `fit`, which reads a third element as
            sample weights). Defaults to False.

    Returns:
        `tf.data.Dataset` of `(images, labels)`: float32 (B, S, S, 3), int32 (B,).

    Raises:
        DatasetNotBuiltError: a manual-download dataset is not built; the message
            gives the `tfds build` command.

    Example:
        >>> ds = load("synthetic_lesions", "train", image_size=64, batch_size=8,
        ...           augment=True, seed=1)
        >>> images, labels = next(iter(ds))
    """
    if image_size < 1 or batch_size < 1:
        raise ValueError(f"`image_size` and `batch_size` must be >= 1. "
                         f"Received: image_size={image_size}, batch_size={batch_size}")
    if augment is True:
        augment = augmentation.OFFICIAL
    b = _prepared_builder(name, fold, data_dir)
    if shuffle is None:
        shuffle = split == "train"
    ds = b.as_dataset(
        split=split,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(try_autocache=False),
    )
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    ds = ds.map(_decode_and_resize(image_size, resize_method), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    with _only_seed_matters():
        if shuffle:
            num_examples = int(b.info.splits[split].num_examples)
            ds = ds.shuffle(max(num_examples, 1), seed=seed, reshuffle_each_iteration=True)
        # One stateless seed pair per image and epoch, from a seeded stream that
        # differs (deterministically) on every iteration over the dataset.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    if augment:
        ds = tf.data.Dataset.zip(ds, seeds)
        config = augment

        def augment_fn(example, pair):
            example = dict(example)
            example["image"] = augmentation.augment(tf.cast(example["image"], tf.float32), pair, config)
            return example

        ds = ds.map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE)

    def finish(example):
        image = tf.cast(example["image"], tf.float32)
        if preprocessing is not None:
            image = preprocessing(image)
        if with_metadata:
            return image, example["label"], {"filename": example["filename"], "exam_id": example["exam_id"]}
        return image, example["label"]

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def counts(name: str, fold: int = 1, *, data_dir=None) -> pd.DataFrame:
    """Number of examples per split and class of one fold (builds embedded datasets).

    Returns:
        DataFrame indexed by split with one column per class name and a `total`.
    """
    b = _prepared_builder(name, fold, data_dir)
    class_names = b.info.features["label"].names
    rows = {}
    for split in b.info.splits:
        labels = b.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        labels = np.fromiter((int(x) for x in labels.map(lambda e: e["label"]).as_numpy_iterator()), dtype=np.int64)
        per_class = np.bincount(labels, minlength=len(class_names))
        rows[split] = dict(zip(class_names, per_class.tolist()), total=int(len(labels)))
    order = [s for s in SPLITS if s in rows] + [s for s in rows if s not in SPLITS]
    return pd.DataFrame.from_dict(rows, orient="index").loc[order]


def class_names(name: str, fold: int = 1, *, data_dir=None) -> list[str]:
    """The class names of a dataset, in label order (builds embedded datasets)."""
    return list(_prepared_builder(name, fold, data_dir).info.features["label"].names)
