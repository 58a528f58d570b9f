"""radtl.data: the dataset registry, the DatasetFold handle, the tf.data pipeline over the
embedded synthetic_lesions dataset, resizing, and build failures."""
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from click.testing import CliRunner

import radtl.data
from radtl import augmentation
from radtl.registry import Registry
from tfds_builders.radimagenet_common import ManualDataError, MissingFileError

SIZE = 32
REPO = Path(__file__).resolve().parent.parent
BREAST_DUMMY = REPO / "tfds_builders" / "radimagenet_breast" / "dummy_data"
ACL_DUMMY = REPO / "tfds_builders" / "radimagenet_acl" / "dummy_data"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data dir where the embedded dataset builds itself on first use (fold 1)."""
    path = tmp_path_factory.mktemp("tfds")
    radtl.data.open("synthetic_lesions", 1, data_dir=path)
    return path


@pytest.fixture(scope="module")
def fold(data_dir):
    return radtl.data.open("synthetic_lesions", 1, data_dir=data_dir)


def _epochs(ds, n=2):
    return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(n)]


def _assert_same_stream(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def _first_images(ds):
    return next(iter(ds))[0].numpy()


# ---------------------------------------------------------------------------- registry


def test_the_registry_holds_dataset_specs_and_names_unknown_ones_keras_style(tmp_path):
    assert isinstance(radtl.data.REGISTRY, Registry) and radtl.data.REGISTRY.kind == "dataset"
    assert radtl.data.REGISTRY.names() == ["radimagenet_acl", "radimagenet_breast", "synthetic_lesions"]
    assert radtl.data.names(tmp_path) == radtl.data.REGISTRY.names()  # nothing imported there
    for name in radtl.data.REGISTRY.names():
        spec = radtl.data.get(name)
        assert isinstance(spec, radtl.data.DatasetSpec) and spec.name == name
        assert (spec.builder_dir / f"{name}_dataset_builder.py").is_file()
    assert radtl.data.get("synthetic_lesions").embedded
    with pytest.raises(ValueError, match=r"`dataset` must be a registered dataset \['radimagenet_acl', .*Received: dataset='mnist'"):
        radtl.data.get("mnist")


def test_import_is_light_and_finds_tfds_builders_through_the_import_system(tmp_path):
    """As in a wheel install, `tfds_builders` need not sit in radtl's parent folder."""
    (tmp_path / "lib").mkdir()
    shutil.copytree(REPO / "radtl", tmp_path / "site" / "radtl", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "lib" / "tfds_builders").symlink_to(REPO / "tfds_builders", target_is_directory=True)
    script = textwrap.dedent("""
        import sys
        import radtl.data
        print(radtl.data.__file__)
        print(radtl.data.get("radimagenet_acl").builder_dir)
        print("tensorflow" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{tmp_path / 'lib'}"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    module_file, builder_dir, tf_imported = result.stdout.split()
    assert Path(module_file).is_relative_to(tmp_path / "site")
    assert Path(builder_dir) == tmp_path / "lib" / "tfds_builders" / "radimagenet_acl"
    assert tf_imported == "False"


# --------------------------------------------------------------------------- the handle


def test_open_returns_a_handle_with_the_folds_metadata(fold, data_dir):
    assert (fold.name, fold.fold, fold.data_dir) == ("synthetic_lesions", 1, str(data_dir))
    assert fold.builder.is_prepared()
    assert fold.class_names == ["benign", "malignant"] and fold.num_classes == 2
    info = fold.builder.info.splits
    assert fold.split_sizes == {split: info[split].num_examples for split in ("train", "val", "test")}
    assert list(fold.split_sizes) == ["train", "val", "test"]
    assert "synthetic_lesions" in repr(fold)


def test_a_run_opens_the_builder_once(data_dir, monkeypatch):
    made = []
    make = radtl.data.builder
    monkeypatch.setattr(radtl.data, "builder", lambda *args, **kwargs: made.append(args) or make(*args, **kwargs))
    fold = radtl.data.open("synthetic_lesions", 1, data_dir=data_dir)
    for split in ("train", "val", "test"):
        fold.load(split, image_size=SIZE, batch_size=8)
    fold.class_names, fold.split_sizes, fold.num_classes, fold.counts()
    assert len(made) == 1


def test_module_level_functions_delegate_to_the_handle(fold, data_dir):
    ours = radtl.data.load("synthetic_lesions", "val", image_size=SIZE, batch_size=16, data_dir=data_dir)
    np.testing.assert_array_equal(_first_images(ours), _first_images(fold.load("val", image_size=SIZE,
                                                                                batch_size=16)))
    assert radtl.data.class_names("synthetic_lesions", 1, data_dir=data_dir) == fold.class_names
    assert radtl.data.counts("synthetic_lesions", 1, data_dir=data_dir).equals(fold.counts())


# ------------------------------------------------------------------------- the pipeline


def test_batches_have_the_documented_shapes_dtypes_and_counts(fold):
    batches = list(fold.load("val", image_size=SIZE, batch_size=8))
    x, y = batches[0]
    assert x.shape == (8, SIZE, SIZE, 3) and x.dtype.name == "float32"
    assert y.shape == (8,) and y.dtype.name == "int32"
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert len(labels) == fold.split_sizes["val"]
    assert set(np.unique(labels)) == {0, 1}
    assert 0.0 <= images.min() and images.max() <= 255.0 and images.max() > 100.0


def test_unshuffled_split_follows_tfds_order_and_yields_the_stored_pixels(fold, data_dir):
    ds = fold.load("test", image_size=128, batch_size=4, with_metadata=True)
    ours = [(f.decode(), y) for _, ys, meta in ds.as_numpy_iterator() for f, y in zip(meta["filename"], ys)]
    reference = tfds.load("synthetic_lesions/fold1", split="test", data_dir=data_dir)
    expected = [(e["filename"].decode(), e["label"]) for e in reference.as_numpy_iterator()]
    assert ours == expected
    x, _, _ = next(iter(ds))
    first = next(iter(reference.as_numpy_iterator()))["image"]
    np.testing.assert_array_equal(x[0].numpy(), first.astype("float32"))  # stored at 128 px


def test_with_masks_yields_the_stored_masks_resized_nearest_like_the_images(fold, data_dir):
    ds = fold.load("test", image_size=SIZE, batch_size=8, resize_method="nearest", with_masks=True,
                   with_metadata=True)
    images, labels, extras = next(iter(ds))
    assert sorted(extras) == ["exam_id", "filename", "has_mask", "mask"]
    assert images.shape == (8, SIZE, SIZE, 3) and labels.shape == (8,)
    assert extras["mask"].shape == (8, SIZE, SIZE) and extras["mask"].dtype.name == "uint8"
    assert extras["has_mask"].shape == (8,) and extras["has_mask"].dtype.name == "bool"
    stored = {e["filename"]: e for e in tfds.load("synthetic_lesions/fold1", split="test",
                                                  data_dir=data_dir).take(8).as_numpy_iterator()}
    step = 128 // SIZE  # Nearest with half-pixel centres takes source pixel step * i + step // 2.
    for image, mask, has_mask, filename in zip(images.numpy(), extras["mask"].numpy(),
                                                extras["has_mask"].numpy(), extras["filename"].numpy()):
        example = stored[filename]
        assert has_mask and example["has_mask"]
        np.testing.assert_array_equal(image, example["image"][step // 2::step, step // 2::step])
        np.testing.assert_array_equal(mask, example["mask"][step // 2::step, step // 2::step, 0])
        assert set(np.unique(mask)) == {0, 1}
    # Masks only: the extras hold just them; the module-level load passes the flag on.
    only = radtl.data.load("synthetic_lesions", "test", image_size=SIZE, batch_size=8, data_dir=data_dir,
                           with_masks=True)
    _, _, masks_only = next(iter(only))
    assert sorted(masks_only) == ["has_mask", "mask"]
    np.testing.assert_array_equal(masks_only["mask"], extras["mask"])  # Nearest whatever resize_method.


def test_with_masks_on_a_dataset_built_without_masks(tmp_path):
    """radimagenet_breast from the RadImageNet layout: has_mask False, all-zero masks; ACL has none."""
    breast = radtl.data.build("radimagenet_breast", 1, data_dir=tmp_path, manual_dir=BREAST_DUMMY)
    assert str(breast.info.version) == "1.1.0"
    batches = list(radtl.data.open("radimagenet_breast", 1, data_dir=tmp_path).load(
        "test", image_size=SIZE, batch_size=4, with_masks=True))
    assert sum(len(b[1]) for b in batches) == 2
    for _, _, extras in batches:
        assert not extras["has_mask"].numpy().any() and not extras["mask"].numpy().any()
        assert extras["mask"].shape[1:] == (SIZE, SIZE)
    radtl.data.build("radimagenet_acl", 1, data_dir=tmp_path, manual_dir=ACL_DUMMY)
    acl = radtl.data.open("radimagenet_acl", 1, data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"`with_masks` must be False for radimagenet_acl \(version .*\), which "
                                         r"has no lesion masks\. Received: with_masks=True\. Fix: use a dataset"):
        acl.load("test", image_size=SIZE, with_masks=True)
    assert len(next(iter(acl.load("test", image_size=SIZE, batch_size=2)))) == 2


def test_same_seed_gives_the_same_batches_epoch_after_epoch(fold):
    def make(seed):
        return fold.load("train", image_size=SIZE, batch_size=16, augment=True, seed=seed)

    first, second = _epochs(make(3)), _epochs(make(3))
    _assert_same_stream(first[0], second[0])
    _assert_same_stream(first[1], second[1])
    # Each epoch gets a new order and new augmentations; another seed another stream.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    other = _epochs(make(4), 1)
    assert not np.array_equal(first[0][0][0], other[0][0][0])


def test_the_stream_depends_on_seed_only_not_on_the_global_tf_seed(fold):
    import tensorflow as tf

    def first_epoch():
        return _epochs(fold.load("train", image_size=SIZE, batch_size=32, augment=True, seed=7), 1)[0]

    tf.random.set_seed(None)
    unset = first_epoch()
    tf.random.set_seed(123)
    try:
        _assert_same_stream(unset, first_epoch())
        assert tf.random.uniform((), seed=1).numpy() == _after_set_seed(123)  # global seed left as set
    finally:
        tf.random.set_seed(None)


def _after_set_seed(value):
    import tensorflow as tf

    tf.random.set_seed(value)
    return tf.random.uniform((), seed=1).numpy()


def test_augmentation_changes_pixels_but_not_labels_or_membership(fold):
    plain = fold.load("val", image_size=SIZE, batch_size=64)
    augmented = fold.load("val", image_size=SIZE, batch_size=64, augment=augmentation.OFFICIAL, seed=1)
    (xp, yp), (xa, ya) = next(iter(plain)), next(iter(augmented))
    np.testing.assert_array_equal(yp.numpy(), ya.numpy())  # val is not shuffled by default
    assert np.abs(xp.numpy() - xa.numpy()).mean() > 1.0


def test_preprocessing_function_is_applied_last(fold):
    raw = fold.load("val", image_size=SIZE, batch_size=8)
    scaled = fold.load("val", image_size=SIZE, batch_size=8, preprocessing=lambda image: image / 127.5 - 1.0)
    np.testing.assert_allclose(_first_images(scaled), _first_images(raw) / 127.5 - 1.0, rtol=1e-6)


def test_counts_per_split_and_class(fold):
    table = fold.counts()
    assert list(table.index) == ["train", "val", "test"]
    assert list(table.columns) == ["benign", "malignant", "total"]
    for split in table.index:
        assert table.loc[split, "total"] == fold.split_sizes[split]
        assert table.loc[split, "benign"] + table.loc[split, "malignant"] == table.loc[split, "total"]


def test_cli_data_info_prints_the_counts(data_dir):
    from radtl import cli

    result = CliRunner().invoke(cli.cli, ["data", "info", "synthetic_lesions", "--fold", "1",
                                          "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    table = radtl.data.counts("synthetic_lesions", 1, data_dir=data_dir)
    assert "synthetic_lesions/fold1" in result.output
    assert f"{table.loc['train', 'total']}" in result.output.splitlines()[2]


# ----------------------------------------------------------------------------- resizing


def _png(array):
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("shape", [(45, 61), (7, 5, 3)], ids=["grey-downsample", "rgb-upsample"])
def test_nearest_resizing_gives_the_official_scripts_pixels(shape, tmp_path):
    """The official scripts load with Keras `load_img(interpolation="nearest")` (PIL nearest)."""
    import keras
    import tensorflow as tf

    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "image.png"
    path.write_bytes(_png(array))
    official = np.asarray(keras.utils.load_img(path, target_size=(SIZE, SIZE), interpolation="nearest"))
    ours = radtl.data.decode_image(tf.constant(path.read_bytes()), SIZE, resize_method="nearest").numpy()
    np.testing.assert_array_equal(ours, official)
    assert not np.array_equal(radtl.data.decode_image(tf.constant(path.read_bytes()), SIZE).numpy(), official)


def test_load_resizes_with_the_chosen_method_and_bilinear_by_default(fold, data_dir):
    import tensorflow as tf

    stored = next(iter(tfds.load("synthetic_lesions/fold1", split="val", data_dir=data_dir)))["image"].numpy()
    nearest = np.asarray(PIL.Image.fromarray(stored).resize((SIZE, SIZE), PIL.Image.NEAREST), dtype=np.float32)
    bilinear = tf.clip_by_value(tf.round(tf.image.resize(stored, (SIZE, SIZE), method="bilinear")), 0, 255).numpy()

    default = _first_images(fold.load("val", image_size=SIZE, batch_size=4))[0]
    np.testing.assert_array_equal(default, bilinear)
    explicit = _first_images(fold.load("val", image_size=SIZE, batch_size=4, resize_method="bilinear"))[0]
    np.testing.assert_array_equal(explicit, bilinear)
    ours = _first_images(fold.load("val", image_size=SIZE, batch_size=4, resize_method="nearest"))[0]
    np.testing.assert_array_equal(ours, nearest)
    assert not np.array_equal(nearest, bilinear)


def test_decode_image_rejects_an_unknown_resize_method():
    import tensorflow as tf

    with pytest.raises(ValueError, match=r"`resize_method` must be one of \['bilinear', 'nearest'\]. "
                                         r"Received: resize_method='cubic'"):
        radtl.data.decode_image(tf.constant(_png(np.zeros((4, 4), np.uint8))), SIZE, resize_method="cubic")


# ------------------------------------------------------------------------------ errors


def test_data_errors_share_one_base_class():
    assert issubclass(radtl.data.DatasetNotBuiltError, radtl.data.DataError)
    assert issubclass(radtl.data.DatasetNotBuiltError, FileNotFoundError)
    assert issubclass(radtl.data.DatasetBuildError, radtl.data.DataError)


def test_a_dataset_that_is_not_built_gets_the_exact_build_command(tmp_path):
    with pytest.raises(radtl.data.DatasetNotBuiltError) as err:
        radtl.data.open("radimagenet_acl", 1, data_dir=tmp_path)
    message = str(err.value)
    assert "radimagenet_acl/fold1 is not built" in message
    assert f"radtl data build radimagenet_acl --fold 1 --manual-dir /path/to/acl --data-dir {tmp_path}" in message
    assert f"tfds build {radtl.data.get('radimagenet_acl').builder_dir} --config=fold1" in message
    assert f"--data_dir={tmp_path}" in message
    with pytest.raises(radtl.data.DatasetNotBuiltError):
        radtl.data.load("radimagenet_acl", "train", data_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mnist"}, "`dataset` must be a registered dataset"),
    ({"fold": 6}, "`fold` must be one of 1..5"),
    ({"image_size": 0}, "`image_size` must be an integer >= 1. Received: image_size=0"),
    ({"batch_size": 16.5}, "`batch_size` must be an integer >= 1. Received: batch_size=16.5"),
    ({"augment": "yes please"}, "`augment` must be True, False or a `radtl.augmentation.AugmentConfig`. "
                                "Received: augment='yes please'"),
    ({"resize_method": "nearst"}, r"`resize_method` must be one of \['bilinear', 'nearest'\]"),
    ({"with_masks": "yes"}, "`with_masks` must be True or False. Received: with_masks='yes'"),
    ({"with_masks": True, "augment": True},
     r"`augment` must be False when `with_masks=True`: lesion masks are for evaluating .* Received: "
     r"augment=True, with_masks=True\. Fix: load the split twice"),
])
def test_bad_arguments_are_rejected_before_anything_is_built(kwargs, match, tmp_path):
    args = {"name": "synthetic_lesions", "split": "train", "data_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match):
        radtl.data.load(args.pop("name"), args.pop("split"), **args)
    assert not any(tmp_path.iterdir())


def test_the_handle_validates_load_arguments(fold):
    with pytest.raises(ValueError, match="`resize_method` must be one of"):
        fold.load("val", resize_method="area")
    with pytest.raises(ValueError, match="`augment` must be False when `with_masks=True`"):
        fold.load("test", augment=augmentation.AugmentConfig(), with_masks=True)


# ------------------------------------------------------------------------ build failures


def _breast_manual_dir(tmp_path):
    """A copy of the breast builder's dummy manual_dir (RadImageNet layout, own split lists)."""
    return Path(shutil.copytree(BREAST_DUMMY, tmp_path / "manual"))


def _assert_nothing_kept(data_dir, name="radimagenet_breast"):
    assert not (data_dir / name).exists()
    assert not (data_dir / "downloads").exists()
    assert not radtl.data.builder(name, 1, data_dir).is_prepared()


def test_a_bad_split_list_is_a_build_error_and_nothing_is_kept(tmp_path):
    manual = _breast_manual_dir(tmp_path)
    bad = manual / "dataframe" / "breast_val_fold1.csv"
    bad.write_text("file,label\n" + bad.read_text().split("\n", 1)[1])
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    with pytest.raises(radtl.data.DatasetBuildError) as err:
        radtl.data.build("radimagenet_breast", 1, data_dir=data_dir, manual_dir=manual)
    message = str(err.value)
    assert f"Split list {bad} has the wrong header" in message
    assert f"radtl data build radimagenet_breast --fold 1 --manual-dir {manual} --data-dir {data_dir}" in message
    assert isinstance(err.value.__cause__, ManualDataError)
    _assert_nothing_kept(data_dir)
    assert data_dir.is_dir()  # the user's folder stays
    with pytest.raises(radtl.data.DatasetNotBuiltError):
        radtl.data.open("radimagenet_breast", 1, data_dir=data_dir)
    # Once fixed, the same command builds the fold.
    fixed = radtl.data.build("radimagenet_breast", 1, data_dir=data_dir, manual_dir=BREAST_DUMMY)
    assert fixed.is_prepared()
    assert radtl.data.open("radimagenet_breast", 1, data_dir=data_dir).class_names == ["benign", "malignant"]


def test_a_missing_image_is_a_build_error_and_other_folds_are_left_alone(tmp_path):
    manual = _breast_manual_dir(tmp_path)
    (manual / "images" / "benign (2).png").unlink()
    data_dir = tmp_path / "tfds"
    kept = data_dir / "radimagenet_breast" / "fold2" / "kept.txt"  # stands for a built fold
    kept.parent.mkdir(parents=True)
    kept.write_text("fold 2")
    with pytest.raises(radtl.data.DatasetBuildError) as err:
        radtl.data.build("radimagenet_breast", 1, data_dir=data_dir, manual_dir=manual)
    assert "images/benign (2).png: missing" in str(err.value)
    assert isinstance(err.value.__cause__, MissingFileError)
    assert not (data_dir / "radimagenet_breast" / "fold1").exists()
    assert kept.read_text() == "fold 2"


def test_a_manual_dir_without_a_known_layout_is_a_build_error(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "notes.txt").write_text("not the data")
    with pytest.raises(radtl.data.DatasetBuildError, match="holds none of the supported layouts") as err:
        radtl.data.build("radimagenet_breast", 1, data_dir=tmp_path / "tfds", manual_dir=manual)
    assert "images/" in str(err.value) and "benign/" in str(err.value)  # both layouts are described
    assert not (tmp_path / "tfds").exists()


@pytest.mark.parametrize("make, problem", [
    (lambda path: None, "does not exist"),
    (lambda path: path.mkdir(), "is empty"),
])
def test_a_missing_or_empty_manual_dir_is_a_build_error_with_the_instructions(make, problem, tmp_path):
    manual = tmp_path / "manual"
    make(manual)
    with pytest.raises(radtl.data.DatasetBuildError) as err:
        radtl.data.build("radimagenet_breast", 1, data_dir=tmp_path / "tfds", manual_dir=manual)
    message = str(err.value)
    assert "`manual_dir` must be a folder holding" in message and f"manual_dir='{manual}', which {problem}" in message
    assert "manual_dir may hold any one of these layouts" in message  # the builder's instructions
    assert f"radtl data build radimagenet_breast --fold 1 --manual-dir {manual}" in message
    assert not (tmp_path / "tfds").exists()


def test_an_unwritable_data_dir_is_a_build_error(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(radtl.data.DatasetBuildError, match=f"Could not build synthetic_lesions/fold1 in "
                                                           f"data_dir={not_a_folder}") as err:
        radtl.data.open("synthetic_lesions", 1, data_dir=not_a_folder)
    assert isinstance(err.value.__cause__, OSError)


# ------------------------------------------------------------------ batched augmentation


def _per_image_reference(fold, seed, batch_size, preprocessing=None):
    """The pipeline as it was before batching: one `augmentation.augment` per image.

    Same shuffle (an un-augmented `load` with the same seed), the same stream of
    per-image seed pairs (seeded like `load`), augmentation image by image, then batching.
    """
    import tensorflow as tf

    plain = fold.load("train", image_size=SIZE, batch_size=batch_size, seed=seed).unbatch()
    with radtl.data._only_seed_matters():
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def one(example, pair):
        image = augmentation.augment(example[0], pair, augmentation.OFFICIAL)
        return (image if preprocessing is None else preprocessing(image)), example[1]

    return tf.data.Dataset.zip(plain, seeds).map(one).batch(batch_size)


@pytest.mark.parametrize("augment_on", ["auto", "cpu"])
def test_batched_augmentation_equals_the_per_image_pipeline_batch_by_batch(fold, augment_on):
    batched = fold.load("train", image_size=SIZE, batch_size=16, augment=True, seed=5, augment_on=augment_on)
    reference = _per_image_reference(fold, seed=5, batch_size=16)
    got, want = _epochs(batched), _epochs(reference)
    for epoch_got, epoch_want in zip(got, want):  # two epochs: new order and new seeds each
        assert len(epoch_got) == len(epoch_want) == -(-fold.split_sizes["train"] // 16)
        for (xg, yg), (xw, yw) in zip(epoch_got, epoch_want):
            np.testing.assert_array_equal(yg, yw)
            np.testing.assert_allclose(xg, xw, atol=1e-4)
    assert not np.allclose(got[0][0][0], got[1][0][0])


@pytest.mark.parametrize("augment_on", ["auto", "cpu"])
def test_augmentation_applies_preprocessing_after_the_warp(fold, augment_on):
    def scale(image):
        return image / 127.5 - 1.0

    batched = fold.load("train", image_size=SIZE, batch_size=32, augment=True, seed=2, preprocessing=scale,
                        augment_on=augment_on)
    (xg, yg), (xw, yw) = next(iter(batched)), next(iter(_per_image_reference(fold, 2, 32, scale)))
    np.testing.assert_array_equal(yg.numpy(), yw.numpy())
    np.testing.assert_allclose(xg.numpy(), xw.numpy(), atol=1e-5)


def test_augment_on_rejects_unknown_places(fold):
    with pytest.raises(ValueError, match="augment_on"):
        fold.load("train", image_size=SIZE, batch_size=8, augment=True, augment_on="gpu")


def test_device_augmentation_yields_unwarped_batches_that_the_step_warps_to_the_same_pixels(fold):
    device = fold.load("train", image_size=SIZE, batch_size=16, augment=True, seed=5, augment_on="device")
    reference = _per_image_reference(fold, seed=5, batch_size=16)
    for (inputs, labels), (want, want_labels) in zip(device.take(3), reference.take(3)):
        assert set(inputs) == {"image", "transform", "flip"} and inputs["transform"].shape[1:] == (8,)
        warped = augmentation.warp_batch_gather(inputs["image"], inputs["transform"], inputs["flip"])
        np.testing.assert_array_equal(labels.numpy(), want_labels.numpy())
        np.testing.assert_allclose(warped.numpy(), want.numpy(), atol=2e-3)
    with pytest.raises(ValueError, match="takes no `preprocessing`"):
        fold.load("train", image_size=SIZE, batch_size=8, augment=True, augment_on="device",
                  preprocessing=lambda image: image / 255.0)
    plain = next(iter(fold.load("val", image_size=SIZE, batch_size=8, augment=False, augment_on="device")))
    assert plain[0].shape == (8, SIZE, SIZE, 3)  # nothing to warp: plain images
