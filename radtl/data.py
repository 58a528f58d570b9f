"""`tf.data` input pipelines over radtl's TFDS datasets.

Open one fold of a dataset once and pass the handle down (as the flax examples pass
one dataset builder); it reads the TFDS metadata once and builds every split's pipeline:

    fold = radtl.data.open("synthetic_lesions", fold=1)
    fold.class_names, fold.num_classes, fold.split_sizes   # ['benign', 'malignant'], 2, {...}
    train = fold.load("train", image_size=224, batch_size=32, augment=True, seed=0)

`DatasetFold.load` returns a batched, prefetched `tf.data.Dataset` of `(images, labels)`:

- images: float32, shape (batch, image_size, image_size, 3), RGB in [0, 255] unless a
  `preprocessing` function is given (models from `radtl.build_model` carry their own
  preprocessing layer, so they take these raw values);
- labels: int32 class ids, shape (batch,), in the order of the dataset's ClassLabel.

With `with_masks=True` (evaluation only, no `augment`) it yields `(images, labels, extras)`
with `extras["mask"]` uint8 (batch, image_size, image_size) in {0, 1} (the lesion,
resized "nearest") and `extras["has_mask"]` bool (batch,); `with_metadata=True` adds
`filename` and `exam_id` to the same dict.

Pipeline: read (files in a fixed order) -> decode -> resize (bilinear by default;
"nearest" is what the official RadImageNet scripts' `flow_from_dataframe` does) ->
cache (in memory, on the first pass, for splits that fit: decoding PNGs is the
expensive step) -> shuffle (training splits; seeded, a new deterministic order every
epoch) -> augment (seeded, stateless, per image in parallel) -> batch -> preprocess
(on whole batches) -> prefetch.
For a given `seed` the stream of batches is identical from run to run, epoch by epoch.

Datasets (`names()`, `REGISTRY`): `synthetic_lesions` is embedded (it builds itself on
first use); `radimagenet_acl` and `radimagenet_breast` need a manual download and a
build (`build(...)`, `radtl data build` or `tfds build`); a `DatasetNotBuiltError`
gives the exact command when they are missing.

Expected failures raise `DataError` subclasses whose message says what is wrong and
how to fix it: `DatasetNotBuiltError` (not built yet) and `DatasetBuildError` (the
manual download cannot be turned into the dataset; nothing half-written is kept).

Importing this module is cheap: TensorFlow and TFDS are imported when a dataset is
opened, so `names()` serves command-line choices without them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from radtl._checks import check_choice, check_int, did_you_mean
from radtl.registry import Registry

if TYPE_CHECKING:  # imported lazily at run time (see the module docstring)
    import pandas as pd
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from radtl import augmentation

__all__ = ["REGISTRY", "DatasetSpec", "DatasetFold", "Confounding", "NUM_FOLDS", "SPLITS", "RESIZE_METHODS",
           "AUGMENT_ON", "DataError", "DatasetNotBuiltError", "DatasetBuildError", "UnknownDatasetError", "FoldError",
           "check_fold", "names", "imported_names", "data_root", "get", "open", "builder", "build", "build_command",
           "load", "reuse", "counts", "class_names", "decode_image", "resize_image", "decode_mask",
           "resolve_augment_on"]

logger = logging.getLogger(__name__)

NUM_FOLDS = 5
SPLITS = ("train", "val", "test")
#: Resize methods of `load` / `decode_image`: "bilinear" (radtl's default) and
#: "nearest" (the official RadImageNet scripts: Keras `flow_from_dataframe`, PIL nearest).
RESIZE_METHODS = ("bilinear", "nearest")
#: Where augmentation runs: "auto" (per image in the parallel tf.data map: the fastest on a
#: CPU, measured by benchmarks/input_pipeline.py), "cpu" (one warp per batch in tf.data;
#: the same pixels), "device" (one warp per batch inside the train step, on the
#: accelerator: `radtl.augmentation.warp_in_train_step`; pixels equal to float rounding).
AUGMENT_ON = ("auto", "cpu", "device")
_PIPELINE_GLOBAL_SEED = 0x5EED


def _find_builders_dir() -> Path:
    """The folder of the installed `tfds_builders` package (a checkout or site-packages).

    Found through the import system, not relative to this file: `tfds_builders` is its
    own top-level package and need not sit next to `radtl`.
    """
    spec = importlib.util.find_spec("tfds_builders")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The package `tfds_builders` (shipped with radtl) cannot be imported. "
                          "Fix: reinstall radtl (`pip install .` in its checkout, or its wheel).")
    return Path(next(iter(spec.submodule_search_locations)))


_BUILDERS_DIR = _find_builders_dir()


class DataError(Exception):
    """Base of the data layer's expected failures; the message says how to fix it."""


class DatasetNotBuiltError(DataError, FileNotFoundError):
    """A dataset that needs a manual download has not been built yet."""


class DatasetBuildError(DataError):
    """A dataset could not be built (bad manual download, unwritable `data_dir`).

    Nothing of the failed build is kept in `data_dir`; the original error is the
    exception's `__cause__`.
    """


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset radtl knows how to read.

    Attributes:
        name: str. TFDS name (also the builder folder under `tfds_builders/`).
        module: str. Module that defines the TFDS `Builder` class.
        embedded: bool. True if it generates itself without a manual download.
        manual_dir_hint: str. Placeholder path of the user's manual download, as
            shown in build commands (e.g. "/path/to/acl").
        manual_dir_contents: str. What that folder holds, in words.
        num_folds: int. Folds `fold1`..`fold{num_folds}` (5 for the RadImageNet tasks).
        import_dir: Path or None. `<data_dir>/<name>` of an imported dataset (its
            `import.json` and split lists); None for registered datasets.
    """

    name: str
    module: str
    embedded: bool = False
    manual_dir_hint: str = ""
    manual_dir_contents: str = ""
    num_folds: int = NUM_FOLDS
    import_dir: Path | None = None

    @property
    def imported(self) -> bool:
        """True for a dataset imported with `radtl data import` (its folder is `import_dir`)."""
        return self.import_dir is not None

    @property
    def builder_dir(self) -> Path:
        """The builder's folder (what `tfds build` takes)."""
        return _BUILDERS_DIR / ("imported" if self.imported else self.name)


REGISTRY = Registry("dataset")
for _spec in (
    DatasetSpec(
        "radimagenet_acl",
        "tfds_builders.radimagenet_acl.radimagenet_acl_dataset_builder",
        manual_dir_hint="/path/to/acl",
        manual_dir_contents="the RadImageNet `acl/` folder, or the MRNet v1.0 release",
    ),
    DatasetSpec(
        "radimagenet_breast",
        "tfds_builders.radimagenet_breast.radimagenet_breast_dataset_builder",
        manual_dir_hint="/path/to/breast",
        manual_dir_contents="the RadImageNet `breast/` folder, or Dataset_BUSI_with_GT",
    ),
    DatasetSpec(
        "synthetic_lesions",
        "tfds_builders.synthetic_lesions.synthetic_lesions_dataset_builder",
        embedded=True,
    ),
):
    REGISTRY.register(_spec.name, _spec)
del _spec


_IMPORTED_MODULE = "tfds_builders.imported.imported_dataset_builder"


class UnknownDatasetError(DataError, ValueError):
    """A dataset name that is neither registered nor imported in the data directory."""


class FoldError(DataError, ValueError):
    """A fold number the dataset does not have."""


def _data_dir(data_dir):
    """`data_dir`, else `$RADTL_DATA_DIR`, else None (TFDS' default, ~/tensorflow_datasets)."""
    data_dir = data_dir or os.environ.get("RADTL_DATA_DIR")
    return os.fspath(data_dir) if data_dir else None


def data_root(data_dir=None) -> Path:
    """The data directory in use: `data_dir`, else `$RADTL_DATA_DIR`, else ~/tensorflow_datasets."""
    return Path(_data_dir(data_dir) or os.path.expanduser("~/tensorflow_datasets"))


def imported_names(data_dir=None) -> list[str]:
    """Names of the datasets imported (`radtl data import`) into the data directory, sorted."""
    from tfds_builders.imported import import_record

    root = data_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if import_record.NAME_PATTERN.fullmatch(p.name) and import_record.is_import_dir(p))


def names(data_dir=None) -> list[str]:
    """Names of the registered datasets, then those imported into the data directory."""
    return REGISTRY.names() + [n for n in imported_names(data_dir) if n not in REGISTRY.names()]


def get(name: str, data_dir=None) -> DatasetSpec:
    """The `DatasetSpec` of `name`: a registered dataset, or one imported into the data directory.

    Args:
        name: str. A registered name (`REGISTRY`) or the name given to `radtl data import`.
        data_dir: path or None. Where imported datasets are looked for; defaults to
            `$RADTL_DATA_DIR` or ~/tensorflow_datasets.

    Raises:
        UnknownDatasetError: neither; the message lists both kinds and how to import.
    """
    if isinstance(name, str) and name in REGISTRY.names():
        return REGISTRY.get(name)
    from tfds_builders.imported import import_record

    root = data_root(data_dir)
    if isinstance(name, str) and import_record.NAME_PATTERN.fullmatch(name) and \
            import_record.is_import_dir(root / name):
        try:
            record = import_record.read(root / name)
        except ValueError as err:
            raise DataError(str(err)) from None
        return DatasetSpec(name, _IMPORTED_MODULE, num_folds=record.num_folds, import_dir=root / name,
                           manual_dir_contents=f"the images under {record.image_root}")
    imported = imported_names(data_dir)
    raise UnknownDatasetError(
        f"`dataset` must be a registered dataset {REGISTRY.names()} or one imported into {root} "
        f"({imported or 'none there'}). Received: dataset={name!r}.{did_you_mean(name, REGISTRY.names() + imported)}"
        + f" Fix: import your images first (`radtl data import {name} --folders DIR` or --csv FILE "
          "--image-root DIR), or pass the --data-dir they were imported into.")


def check_fold(fold: int, num_folds: int = NUM_FOLDS, name: str | None = None) -> None:
    """Raises ValueError unless `fold` is one of 1..`num_folds` (the folds of dataset `name`)."""
    if isinstance(fold, bool) or fold not in range(1, num_folds + 1):
        of = f" ({name} has {num_folds} fold{'s' if num_folds > 1 else ''})" if name else ""
        raise FoldError(f"`fold` must be one of 1..{num_folds}{of}. Received: fold={fold!r}")


def _root(b) -> str:
    """The data_dir a TFDS builder reads from (its `data_dir` is <root>/<name>/<config>/<version>)."""
    from etils import epath

    return os.fspath(epath.Path(b.data_dir).parent.parent.parent)


def _is_prepared(b) -> bool:
    """`b.is_prepared()` without TFDS' warning about a missing dataset_info.json when it is not built."""
    return (b.data_path / "dataset_info.json").exists() and b.is_prepared()


def builder(name: str, fold: int = 1, data_dir=None) -> tfds.core.DatasetBuilder:
    """A new TFDS builder of `name`, config `fold{fold}`, rooted at `data_dir` (prepared or not).

    Prefer `open(...)`, which also checks the dataset is built and keeps one builder.
    """
    spec = get(name, data_dir)
    check_fold(fold, spec.num_folds, spec.name)
    module = importlib.import_module(spec.module)
    if spec.imported:
        return module.builder_class(spec.import_dir)(config=f"fold{fold}", data_dir=os.fspath(spec.import_dir.parent))
    return module.Builder(config=f"fold{fold}", data_dir=_data_dir(data_dir))


def build_command(name: str, fold: int = 1, data_dir=None, manual_dir: str | None = None) -> str:
    """The exact `tfds build` shell command that prepares one fold of `name`.

    An imported dataset has no `tfds build` command (its builder class is made from its
    import record): its `radtl data build` command is returned instead.
    """
    spec = get(name, data_dir)
    if spec.imported:
        return _radtl_build_command(name, fold, spec.import_dir.parent)
    data_dir = _data_dir(data_dir) or os.path.expanduser("~/tensorflow_datasets")
    manual = manual_dir or spec.manual_dir_hint or "/path/to/download"
    return (f"tfds build {spec.builder_dir} --config=fold{fold} "
            f"--manual_dir={manual} --data_dir={data_dir}")


def _radtl_build_command(name: str, fold: int, data_dir, manual_dir=None) -> str:
    """The `radtl data build` command line that prepares one fold of `name`."""
    spec = get(name, data_dir)
    data_dir = _data_dir(data_dir) or os.path.expanduser("~/tensorflow_datasets")
    manual_dir = manual_dir or spec.manual_dir_hint or "/path/to/download"
    manual = "" if spec.embedded or spec.imported else f" --manual-dir {manual_dir}"
    return f"radtl data build {name} --fold {fold}{manual} --data-dir {data_dir}"


def _check_manual_dir(spec: DatasetSpec, b, manual_dir) -> str:
    """The manual download folder `build` will read; raises if it is missing or empty.

    TFDS' own check (an AssertionError) would come after it has started writing.
    """
    path = os.fspath(manual_dir) if manual_dir else os.path.join(_root(b), "downloads", "manual")
    problem = None
    if not os.path.isdir(path):
        problem = "does not exist" if not os.path.exists(path) else "is not a folder"
    elif not os.listdir(path):
        problem = "is empty"
    if problem:
        default = "" if manual_dir else f" (not given, so TFDS' default {path})"
        raise DatasetBuildError(
            f"`manual_dir` must be a folder holding {spec.manual_dir_contents}. "
            f"Received: manual_dir={os.fspath(manual_dir) if manual_dir else None!r}{default}, which {problem}.\n"
            f"{b.MANUAL_DOWNLOAD_INSTRUCTIONS.rstrip()}\n"
            f"Fix: place the files as described (see {spec.builder_dir / 'README.md'}), then run:\n"
            f"  {_radtl_build_command(spec.name, b.builder_config.fold, _root(b), manual_dir)}")
    return path


@contextlib.contextmanager
def _removed_on_failure(b):
    """Deletes what a failed `download_and_prepare` of builder `b` leaves in its data_dir.

    TFDS writes into a temporary folder and renames it when done, but leaves the
    dataset and fold folders, `.config/` metadata and `downloads/` behind. On any
    exception (KeyboardInterrupt included) this removes the shallowest dataset folder
    that did not exist before (`<root>/<name>` or `<root>/<name>/<fold>`), then
    `downloads/extracted`, `downloads` and the root itself if they are new and empty.
    """
    from etils import epath

    root = epath.Path(_root(b))
    version_dir = epath.Path(b.data_dir)
    owned = next((p for p in (version_dir.parent.parent, version_dir.parent) if not p.exists()), None)
    scratch = [p for p in (root / "downloads" / "extracted", root / "downloads", root) if not p.exists()]
    try:
        yield
    except BaseException:
        if owned is not None and owned.exists():
            owned.rmtree()
        for path in scratch:
            with contextlib.suppress(OSError):
                if path.exists() and not any(path.iterdir()):
                    path.rmdir()
        raise


def build(name: str, fold: int = 1, *, data_dir=None, manual_dir=None) -> tfds.core.DatasetBuilder:
    """Prepares one fold of a dataset (what `tfds build` does), from Python.

    An already prepared fold is returned as is. A failed build keeps nothing in
    `data_dir` that a later build or `open` could mistake for the dataset.

    Args:
        name: str. A registered dataset name.
        fold: int. 1..5. Defaults to 1.
        data_dir: path or None. Where TFDS writes; defaults to `$RADTL_DATA_DIR` or
            `~/tensorflow_datasets`.
        manual_dir: path or None. The user's manual download (not needed for
            embedded datasets); defaults to TFDS' `<data_dir>/downloads/manual`.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Raises:
        DatasetBuildError: `manual_dir` is missing, empty or does not hold one of
            the builder's layouts, a split list or an image is missing or invalid
            (the builder's message names the file and the fix), or `data_dir`
            cannot be written.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from tfds_builders.radimagenet_common import ManualDataError

    spec = get(name, data_dir)
    b = builder(name, fold, data_dir)
    if _is_prepared(b):
        return b
    if not spec.embedded and not spec.imported:
        manual_dir = _check_manual_dir(spec, b, manual_dir)
    root = _root(b)
    retry = _radtl_build_command(name, fold, root, manual_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
    source = spec.manual_dir_contents if spec.imported else f"manual_dir={manual_dir}"
    try:
        with _removed_on_failure(b):
            b.download_and_prepare(download_config=download_config)
    except ManualDataError as err:
        raise DatasetBuildError(
            f"Could not build {name}/fold{fold} from {source}:\n{err}\n"
            f"Nothing was kept in {root}. After the fix, run:\n  {retry}") from err
    except (OSError, tf.errors.OpError) as err:
        raise DatasetBuildError(
            f"Could not build {name}/fold{fold} in data_dir={root}: {err}\n"
            f"Fix: pass a writable folder with free space as `data_dir` (--data-dir), then run:\n  {retry}"
        ) from err
    return b


def _prepared_builder(name: str, fold: int, data_dir) -> tfds.core.DatasetBuilder:
    b = builder(name, fold, data_dir)
    if _is_prepared(b):
        return b
    spec = get(name, data_dir)
    if spec.embedded:
        logger.info("Building the embedded dataset %s/fold%d in %s (first use).", name, fold, _root(b))
        return build(name, fold, data_dir=data_dir)
    root = _root(b)
    if spec.imported:
        raise DatasetNotBuiltError(
            f"Dataset {name}/fold{fold} (imported, {spec.manual_dir_contents}) is not built in {root}. "
            f"Run:\n  {_radtl_build_command(name, fold, root)}")
    raise DatasetNotBuiltError(
        f"Dataset {name}/fold{fold} is not built in {root}. Download {spec.manual_dir_contents} "
        f"(see {spec.builder_dir / 'README.md'}), then run:\n"
        f"  {_radtl_build_command(name, fold, root)}\n"
        f"or, with the TFDS command-line tool:\n"
        f"  {build_command(name, fold, root)}\n"
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
    import tensorflow as tf
    from tensorflow.python.eager import context  # TF has no public getter

    previous = context.global_seed()
    tf.random.set_seed(_PIPELINE_GLOBAL_SEED)
    try:
        yield
    finally:
        tf.random.set_seed(previous)


def resolve_augment_on(augment_on: str) -> str:
    """Where a training run augments: "auto" becomes "device" when TensorFlow sees a GPU (the
    warp then runs in the train step, off the CPU), else stays "auto" (per image on the CPU).

    For `radtl.train` and `benchmarks/gpu.py`, which wrap the model with
    `radtl.augmentation.warp_in_train_step` for "device"; `DatasetFold.load` itself never
    moves "auto" to the device (a plain `fit` could not take its batches).
    """
    check_choice("augment_on", augment_on, AUGMENT_ON)
    if augment_on == "auto":
        import tensorflow as tf

        return "device" if tf.config.list_logical_devices("GPU") else "auto"
    return augment_on


def _check_resize_method(resize_method) -> None:
    check_choice("resize_method", resize_method, RESIZE_METHODS)


def decode_image(encoded, image_size: int, resize_method: str = "bilinear") -> tf.Tensor:
    """Decodes a PNG/JPEG (greyscale replicated to RGB) and resizes it.

    Args:
        encoded: scalar string tensor, the file's bytes.
        image_size: int. Output height and width in pixels.
        resize_method: str. One of `RESIZE_METHODS`. "bilinear" (default;
            `tf.image.resize`, half-pixel centres, no antialiasing) or "nearest",
            which gives the pixels of the official RadImageNet scripts (Keras
            `load_img(interpolation="nearest")`, i.e. PIL `Image.NEAREST`).

    Returns:
        uint8 tensor of shape (image_size, image_size, 3).
    """
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return resize_image(image, image_size, resize_method)


def resize_image(image, image_size: int, resize_method: str = "bilinear") -> tf.Tensor:
    """Resizes a uint8 RGB image (H, W, 3) to (image_size, image_size, 3) uint8, as `load` does."""
    import tensorflow as tf

    _check_resize_method(resize_method)
    image = tf.image.resize(image, (image_size, image_size), method=resize_method)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def decode_mask(encoded, image_size: int) -> tf.Tensor:
    """Decodes a stored lesion mask and resizes it like its image, with "nearest".

    Args:
        encoded: scalar string tensor, the mask's PNG bytes (the `mask` feature:
            (H, W, 1), non-zero = lesion).
        image_size: int. Output height and width in pixels.

    Returns:
        uint8 tensor of shape (image_size, image_size), 1 = lesion, 0 = background.
        Nearest-neighbour resizing keeps it binary and picks the same source pixel
        as `decode_image(..., resize_method="nearest")` does for the image.
    """
    import tensorflow as tf

    mask = tf.io.decode_png(encoded, channels=1)
    mask = tf.image.resize(mask, (image_size, image_size), method="nearest")
    return tf.cast(mask[..., 0] > 0, tf.uint8)


def _decode_and_resize(image_size: int, resize_method: str, with_masks: bool, confounding=None):
    import tensorflow as tf

    from radtl import augmentation

    confound = _confound_fn(confounding) if confounding is not None else None

    def fn(example):
        if confound is None:
            image = decode_image(example["image"], image_size, resize_method)
        else:  # the confounder goes into the stored image, before resizing
            image = tf.io.decode_image(example["image"], channels=3, expand_animations=False)
            image = resize_image(confound(image, example["filename"]), image_size, resize_method)
        decoded = {"image": image, "grey": augmentation.is_grey(image),  # once, before the cache
                   "label": tf.cast(example["label"], tf.int32), "filename": example["filename"],
                   "exam_id": example["exam_id"]}
        if with_masks:
            decoded["mask"] = decode_mask(example["mask"], image_size)
            decoded["has_mask"] = tf.cast(example["has_mask"], tf.bool)
        return decoded

    return fn


def _check_load_arguments(image_size, batch_size, augment, resize_method, with_masks=False):
    """Keras-style checks of `load`'s arguments, before any TensorFlow op is built."""
    from radtl import augmentation

    check_int("image_size", image_size)
    check_int("batch_size", batch_size)
    if not isinstance(augment, (bool, augmentation.AugmentConfig)):
        raise ValueError("`augment` must be True, False or a `radtl.augmentation.AugmentConfig`. "
                         f"Received: augment={augment!r}")
    _check_resize_method(resize_method)
    if not isinstance(with_masks, bool):
        raise ValueError(f"`with_masks` must be True or False. Received: with_masks={with_masks!r}")
    if with_masks and augment:
        raise ValueError(
            "`augment` must be False when `with_masks=True`: lesion masks are for evaluating "
            "where a model looks (e.g. Grad-CAM against the lesion), on unaugmented images. "
            f"Received: augment={augment!r}, with_masks=True. Fix: load the split twice, "
            "with `augment` for training and with `with_masks=True` (no augment) for evaluation.")


@dataclasses.dataclass(frozen=True)
class Confounding:
    """A synthetic confounder put into some images of a split as they are decoded.

    Applied to the stored image before it is resized (the confounded images of "Source
    Matters" are files that the pipeline then resizes), with a per-image seed derived
    from `seed` and the image's filename, so an image is confounded the same way in
    every epoch and every run with that seed.

    Attributes:
        kind: str. A `radtl.confounders.KINDS` name ("tag", "lowpass", "noise").
        options: dict. The kind's options (`radtl.confounders.check` fills defaults).
        filenames: frozenset of str. The images (`filename` feature) that get it.
        seed: int. Seeds the per-image randomness (noise).
    """

    kind: str
    options: dict
    filenames: frozenset
    seed: int = 0


def _confound_fn(confounding: Confounding):
    """(uint8 image (H, W, 3), filename) -> the image, confounded when its filename is selected."""
    import zlib

    import tensorflow as tf

    from radtl import confounders

    keys = sorted(confounding.filenames)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys or [""], tf.string),
                                            tf.constant([1] * len(keys) or [0], tf.int32)), default_value=0)

    def apply(image, filename):
        image_seed = confounders.image_seed(confounding.seed, zlib.crc32(filename))
        return confounders.apply(confounding.kind, image, seed=image_seed, **confounding.options)

    def fn(image, filename):
        def confound():
            out = tf.numpy_function(apply, [image, filename], tf.uint8, stateful=False)
            return tf.ensure_shape(out, [None, None, 3])

        return tf.cond(table.lookup(filename) > 0, confound, lambda: image)

    return fn


class DatasetFold:
    """One fold of a built dataset: its metadata and a `tf.data` pipeline per split.

    Create it with `open(...)`; it holds one prepared TFDS builder, so reading class
    names, split sizes and several splits does not re-open the dataset.

    Attributes:
        name: str. The dataset's registry name.
        fold: int. Official fold, 1..5.
        data_dir: str. The TFDS data directory the fold is read from.
        builder: `tfds.core.DatasetBuilder`. The prepared builder.
        class_names: list of str. Class names in label order.
        num_classes: int. K, the number of classes.
        split_sizes: dict. Split name -> number of examples ("train", "val", "test").
    """

    def __init__(self, name: str, fold: int, builder, *, keep_decoded: bool = False):
        self.name = name
        self.fold = fold
        self.builder = builder
        # (split, image_size, resize_method, with_masks) -> decoded, resized, cached dataset;
        # None: every `load` decodes afresh (see `reuse`).
        self._decoded = {} if keep_decoded else None
        self.data_dir = _root(builder)
        info = builder.info
        self.class_names = list(info.features["label"].names)
        self.num_classes = len(self.class_names)
        order = [s for s in SPLITS if s in info.splits] + sorted(s for s in info.splits if s not in SPLITS)
        self.split_sizes = {split: int(info.splits[split].num_examples) for split in order}

    def __repr__(self) -> str:
        return (f"DatasetFold(name={self.name!r}, fold={self.fold}, data_dir={self.data_dir!r}, "
                f"class_names={self.class_names}, split_sizes={self.split_sizes})")

    def load(
        self,
        split: str,
        *,
        image_size: int = 224,
        batch_size: int = 32,
        preprocessing: Callable | None = None,
        augment: bool | augmentation.AugmentConfig = False,
        seed: int = 0,
        shuffle: bool | None = None,
        cache: bool = True,
        resize_method: str = "bilinear",
        with_metadata: bool = False,
        with_masks: bool = False,
        confounding: Confounding | None = None,
        augment_on: str = "auto",
    ) -> tf.data.Dataset:
        """A batched, prefetched `tf.data.Dataset` of one split of this fold.

        Args:
            split: str. "train", "val" or "test" (any TFDS split string works).
            image_size: int. Images are resized to (image_size, image_size).
                Defaults to 224.
            batch_size: int. Defaults to 32. The last batch may be smaller.
            preprocessing: callable or None. Maps a batch of float32 RGB images in
                [0, 255], shape (B, S, S, 3), to the model's input, e.g.
                `radtl.preprocessing.function("caffe_rescaled")` or
                `radtl.preprocessing.get(...)`. Defaults to None (raw [0, 255] values).
            augment: bool or AugmentConfig. True applies the official RadImageNet
                augmentation (`radtl.augmentation.OFFICIAL`); an AugmentConfig sets each
                transform's range (0 switches it off). Defaults to False.
            seed: int. Seeds the shuffle order and the augmentation. Defaults to 0.
            shuffle: bool or None. Shuffle every epoch; None shuffles "train" only.
            cache: bool. Cache decoded, resized images in memory after the first pass.
                Defaults to True.
            resize_method: str. One of `RESIZE_METHODS`: "bilinear" (default) or
                "nearest", the official RadImageNet scripts' choice (Keras
                `flow_from_dataframe` loads with PIL nearest); see `decode_image`.
            with_metadata: bool. Yield `(images, labels, extras)` instead, where
                extras is a dict of string tensors `filename` and `exam_id`, shape (B,)
                (for prediction files; not for `fit`, which reads a third element as
                sample weights). Defaults to False.
            with_masks: bool. Yield `(images, labels, extras)` where extras holds the
                lesion segmentation: `mask`, uint8 (B, S, S) in {0, 1} (1 = lesion),
                resized from the stored mask with "nearest" whatever `resize_method`
                is, and `has_mask`, bool (B,) (False: no annotation, `mask` all 0,
                e.g. radimagenet_breast built from the RadImageNet layout). With
                `with_metadata` too, extras holds all four keys. Masks are for
                evaluation: `augment` must then be False. Needs a dataset with masks
                (`radimagenet_breast`, `synthetic_lesions`). Defaults to False.
            confounding: `Confounding` or None. A synthetic confounder put into the
                listed images before resizing (`radtl.confounders`; "Source Matters").
                Defaults to None.
            augment_on: str. Where and how augmentation runs, with the same pixels
                either way (tested): "auto" (per image, `radtl.augmentation.augment`
                in the parallel tf.data map: the fastest on a CPU) or "cpu" (in tf.data
                after batching: one warp per batch, `augment_batch`).
                "device": batches of `({"image", "transform", "flip"}, labels)`, the
                images un-warped (float32, no `preprocessing`), for a model wrapped
                by `radtl.augmentation.warp_in_train_step`, which warps each batch
                inside its (jit-compiled) train step on the accelerator
                (`warp_batch_gather`, equal to float32 rounding). Defaults to "auto".

        Returns:
            `tf.data.Dataset` of `(images, labels)`: float32 (B, S, S, 3), int32 (B,);
            or `(images, labels, extras)` with `with_metadata` or `with_masks` (above).

        Raises:
            ValueError: an argument is out of range or of the wrong type, `augment`
                with `with_masks`, or `with_masks` on a dataset without masks.

        Example:
            >>> fold = open("synthetic_lesions")
            >>> ds = fold.load("train", image_size=64, batch_size=8, augment=True, seed=1)
            >>> images, labels = next(iter(ds))
            >>> test = fold.load("test", image_size=64, batch_size=8, with_masks=True)
            >>> images, labels, extras = next(iter(test))
            >>> extras["mask"].shape, extras["has_mask"].shape
            (TensorShape([8, 64, 64]), TensorShape([8]))
        """
        import tensorflow as tf
        import tensorflow_datasets as tfds

        from radtl import augmentation

        _check_load_arguments(image_size, batch_size, augment, resize_method, with_masks)
        check_choice("augment_on", augment_on, AUGMENT_ON)
        device = bool(augment) and augment_on == "device"
        if device and (preprocessing is not None or with_metadata or with_masks):
            raise ValueError(
                "`augment_on='device'` yields the training images un-warped, with their transforms, for "
                "`radtl.augmentation.warp_in_train_step`: it takes no `preprocessing` (the model applies "
                "its own, after the warp), `with_metadata` or `with_masks`. Received: "
                f"preprocessing={preprocessing!r}, with_metadata={with_metadata}, with_masks={with_masks}. "
                "Fix: use augment_on='auto' for those.")
        b = self.builder
        has_masks = "mask" in b.info.features
        if with_masks and not has_masks:
            raise ValueError(
                f"`with_masks` must be False for {self.name} (version {b.info.version}), which has no "
                f"lesion masks. Received: with_masks=True. Fix: use a dataset with masks "
                f"(radimagenet_breast, synthetic_lesions).")
        if augment is True:
            augment = augmentation.OFFICIAL
        if shuffle is None:
            shuffle = split == "train"
        # Masks stay encoded (and unread) unless asked for.
        decoders = {key: tfds.decode.SkipDecoding() for key in ("image", "mask") if key in b.info.features}
        key = (split, image_size, resize_method, with_masks)
        keep = cache and confounding is None and self._decoded is not None
        if keep and key in self._decoded:
            ds = self._decoded[key]  # decoded and cached by an earlier `load` (within `reuse`)
        else:
            ds = b.as_dataset(
                split=split,
                shuffle_files=False,
                decoders=decoders,
                read_config=tfds.ReadConfig(try_autocache=False),
            )
            options = tf.data.Options()
            options.deterministic = True
            ds = ds.with_options(options)
            ds = ds.map(_decode_and_resize(image_size, resize_method, with_masks, confounding),
                        num_parallel_calls=tf.data.AUTOTUNE)
            if cache:
                ds = ds.cache()
            if keep:
                self._decoded[key] = ds
        with _only_seed_matters():
            if shuffle:
                num_examples = int(b.info.splits[split].num_examples)
                ds = ds.shuffle(max(num_examples, 1), seed=seed, reshuffle_each_iteration=True)
            # One stateless seed pair per image and epoch, from a seeded stream that
            # differs (deterministically) on every iteration over the dataset.
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        if augment and augment_on == "auto":
            # Per image in the parallel map, each from its seed pair (in stream order): on
            # a CPU this beats one warp per batch (about 1.5-2x, benchmarks/input_pipeline.py).
            config = augment

            def augment_one(example, pair):
                example = dict(example)
                example["image"] = augmentation.augment(example["image"], pair, config, grey=example["grey"])
                return example

            ds = tf.data.Dataset.zip(ds, seeds).map(augment_one, num_parallel_calls=tf.data.AUTOTUNE)
            ds = ds.batch(batch_size)
        elif augment:
            # Batched ("cpu") or on the accelerator ("device"): each image's transform is drawn
            # from its seed pair (in stream order) in the parallel per-image map, a few scalar
            # ops; the warp runs once per batch, here or in the train step. The pixels equal
            # the per-image `augmentation.augment` (tested).
            config = augment

            def draw(example, pair):
                example = dict(example)
                example["transform"], example["flip"] = augmentation.image_transform(
                    config, pair, image_size, image_size)
                return example

            def warp(example):
                example = dict(example)
                image = augmentation.warp_batch(tf.cast(example["image"], tf.float32), example.pop("transform"),
                                                example.pop("flip"), config)
                example["image"] = image
                return example

            ds = tf.data.Dataset.zip(ds, seeds).map(draw, num_parallel_calls=tf.data.AUTOTUNE)
            if device:
                def for_the_step(example):
                    inputs = {"image": tf.cast(example["image"], tf.float32), "transform": example["transform"],
                              "flip": example["flip"]}
                    return inputs, example["label"]

                ds = ds.batch(batch_size).map(for_the_step, num_parallel_calls=tf.data.AUTOTUNE)
                return ds.prefetch(tf.data.AUTOTUNE)
            ds = ds.batch(batch_size).map(warp, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.batch(batch_size)

        def finish(example):  # on whole batches: one op each instead of one per image
            image = tf.cast(example["image"], tf.float32)
            if preprocessing is not None:
                image = preprocessing(image)
            extras = {}
            if with_metadata:
                extras.update(filename=example["filename"], exam_id=example["exam_id"])
            if with_masks:
                extras.update(mask=example["mask"], has_mask=example["has_mask"])
            return (image, example["label"], extras) if extras else (image, example["label"])

        return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def provenance(self) -> dict:
        """Where this fold was read from, for a run's record: the absolute data directory,
        the dataset version and, for an imported dataset, its image root, import time, the
        SHA-256 of its split lists and the percentiles of its 16-bit/DICOM window."""
        info = self.builder.info
        record = {"name": self.name, "fold": self.fold, "data_dir": os.path.abspath(self.data_dir),
                  "version": str(info.version)}
        metadata = dict(info.metadata or {})
        if "split_files" in metadata:  # an imported dataset (tfds_builders.imported)
            record["import"] = {key: metadata[key] for key in ("image_root", "created", "split_files")}
            record["import"]["percentiles"] = list(metadata["conversion"]["percentiles"])
        return record

    def labels(self, split: str) -> tuple[list[str], np.ndarray]:
        """Filenames and labels of one split, in stored order (images are not decoded).

        Returns:
            (filenames: list of str, labels: int64 array (N,)).
        """
        import tensorflow_datasets as tfds

        ds = self.builder.as_dataset(split=split, shuffle_files=False,
                                     decoders={k: tfds.decode.SkipDecoding() for k in ("image", "mask")
                                               if k in self.builder.info.features})
        filenames, labels = [], []
        for example in ds.map(lambda e: (e["filename"], e["label"])).as_numpy_iterator():
            filenames.append(example[0].decode())
            labels.append(int(example[1]))
        return filenames, np.asarray(labels, dtype=np.int64)

    def counts(self) -> pd.DataFrame:
        """Number of examples per split and class (reads every label once).

        Returns:
            DataFrame indexed by split ("train", "val", "test" first) with one column
            per class name and a `total`.
        """
        import pandas as pd

        rows = {}
        for split in self.split_sizes:
            _, labels = self.labels(split)  # images and masks stay encoded
            per_class = np.bincount(labels, minlength=self.num_classes)
            rows[split] = dict(zip(self.class_names, per_class.tolist()), total=int(len(labels)))
        return pd.DataFrame.from_dict(rows, orient="index")


def open(name: str, fold: int = 1, data_dir=None) -> DatasetFold:  # noqa: A001 (radtl.data.open)
    """Opens one fold of a built dataset (building an embedded one on first use).

    Args:
        name: str. Dataset name, one of `names(data_dir)` (registered or imported).
        fold: int. Fold 1..5 (1..K for an imported dataset with K folds). Defaults to 1.
        data_dir: path or None. Where the dataset is built; defaults to
            `$RADTL_DATA_DIR` or `~/tensorflow_datasets`.

    Returns:
        A `DatasetFold`: class names, split sizes and `load(split, ...)`.

    Raises:
        ValueError: unknown `name` or `fold` out of range.
        DatasetNotBuiltError: a manual-download dataset is not built; the message
            gives the exact build command.
        DatasetBuildError: the embedded dataset cannot be built in `data_dir`.

    Example:
        >>> fold = open("synthetic_lesions", 1)
        >>> fold.class_names
        ['benign', 'malignant']
        >>> val = fold.load("val", image_size=32, batch_size=8)
    """
    if _REUSED is None:
        return DatasetFold(get(name, data_dir).name, fold, _prepared_builder(name, fold, data_dir))
    key = (get(name, data_dir).name, fold, _data_dir(data_dir))
    if key not in _REUSED:
        _REUSED[key] = DatasetFold(key[0], fold, _prepared_builder(name, fold, data_dir), keep_decoded=True)
    return _REUSED[key]


#: (name, fold, data_dir) -> DatasetFold while a `reuse()` block is active, else None.
_REUSED: dict | None = None


@contextlib.contextmanager
def reuse():
    """Within the block, `open` returns one `DatasetFold` per (name, fold, data_dir), and
    each fold keeps its decoded, resized splits in memory across `load` calls.

    For a process that trains many runs on the same data (a sweep: `radtl.sweep.run_sweep`
    enters it): the second and later runs of a (dataset, fold, image size, resize method)
    neither re-open the TFDS builder nor decode the PNGs again; only the shuffle order,
    augmentation and batching are rebuilt per `load`, so every run sees exactly the
    batches it would see alone. Splits loaded with `cache=False` or a `confounding` are
    not kept. Memory: the decoded images (N x S x S x 3 bytes per split and size) stay
    until the outermost block exits. Blocks nest; the outermost one owns the memo.

    Example:
        >>> with reuse():
        ...     first = open("synthetic_lesions", 1)
        ...     assert open("synthetic_lesions", 1) is first
    """
    global _REUSED
    outermost = _REUSED is None
    if outermost:
        _REUSED = {}
    try:
        yield
    finally:
        if outermost:
            _REUSED = None


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
    with_masks: bool = False,
    augment_on: str = "auto",
) -> tf.data.Dataset:
    """One split of one fold: `open(name, fold, data_dir).load(split, ...)`.

    Opens the dataset on every call; a caller that reads several splits or the
    class names should `open` once and use the `DatasetFold`. The arguments are
    those of `open` and `DatasetFold.load`.

    Example:
        >>> ds = load("synthetic_lesions", "train", image_size=64, batch_size=8,
        ...           augment=True, seed=1)
        >>> images, labels = next(iter(ds))
    """
    _check_load_arguments(image_size, batch_size, augment, resize_method, with_masks)
    return open(name, fold, data_dir).load(
        split, image_size=image_size, batch_size=batch_size, preprocessing=preprocessing, augment=augment,
        seed=seed, shuffle=shuffle, cache=cache, resize_method=resize_method, with_metadata=with_metadata,
        with_masks=with_masks, augment_on=augment_on)


def counts(name: str, fold: int = 1, *, data_dir=None) -> pd.DataFrame:
    """Number of examples per split and class of one fold: `open(...).counts()`."""
    return open(name, fold, data_dir).counts()


def class_names(name: str, fold: int = 1, *, data_dir=None) -> list[str]:
    """The class names of a dataset, in label order: `open(...).class_names`."""
    return open(name, fold, data_dir).class_names
