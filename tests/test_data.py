"""radtl.data: the tf.data pipeline over the embedded synthetic_lesions dataset."""
import numpy as np
import pytest
import tensorflow_datasets as tfds
from click.testing import CliRunner

import radtl.data
from radtl import augmentation

SIZE = 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data dir where the embedded dataset builds itself on first use (fold 1)."""
    path = tmp_path_factory.mktemp("tfds")
    radtl.data.load("synthetic_lesions", "val", image_size=SIZE, data_dir=path)
    return path


def _epochs(ds, n=2):
    return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(n)]


def _assert_same_stream(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_batches_have_the_documented_shapes_dtypes_and_counts(data_dir):
    builder = radtl.data.builder("synthetic_lesions", 1, data_dir)
    assert builder.is_prepared()
    ds = radtl.data.load("synthetic_lesions", "val", image_size=SIZE, batch_size=8, data_dir=data_dir)
    batches = list(ds)
    x, y = batches[0]
    assert x.shape == (8, SIZE, SIZE, 3) and x.dtype.name == "float32"
    assert y.shape == (8,) and y.dtype.name == "int32"
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert len(labels) == builder.info.splits["val"].num_examples
    assert set(np.unique(labels)) == {0, 1}
    assert 0.0 <= images.min() and images.max() <= 255.0 and images.max() > 100.0


def test_unshuffled_split_follows_tfds_order_and_yields_the_stored_pixels(data_dir):
    ds = radtl.data.load("synthetic_lesions", "test", image_size=128, batch_size=4, data_dir=data_dir,
                         with_metadata=True)
    ours = [(f.decode(), y) for _, ys, meta in ds.as_numpy_iterator() for f, y in zip(meta["filename"], ys)]
    reference = tfds.load("synthetic_lesions/fold1", split="test", data_dir=data_dir)
    expected = [(e["filename"].decode(), e["label"]) for e in reference.as_numpy_iterator()]
    assert ours == expected
    x, _, _ = next(iter(ds))
    first = next(iter(reference.as_numpy_iterator()))["image"]
    np.testing.assert_array_equal(x[0].numpy(), first.astype("float32"))  # stored at 128 px


def test_same_seed_gives_the_same_batches_epoch_after_epoch(data_dir):
    def make(seed):
        return radtl.data.load("synthetic_lesions", "train", image_size=SIZE, batch_size=16, augment=True,
                               seed=seed, data_dir=data_dir)

    first, second = _epochs(make(3)), _epochs(make(3))
    _assert_same_stream(first[0], second[0])
    _assert_same_stream(first[1], second[1])
    # Each epoch gets a new order and new augmentations; another seed another stream.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    other = _epochs(make(4), 1)
    assert not np.array_equal(first[0][0][0], other[0][0][0])


def test_the_stream_depends_on_seed_only_not_on_the_global_tf_seed(data_dir):
    import tensorflow as tf

    def first_epoch():
        ds = radtl.data.load("synthetic_lesions", "train", image_size=SIZE, batch_size=32, augment=True, seed=7,
                             data_dir=data_dir)
        return _epochs(ds, 1)[0]

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


def test_augmentation_changes_pixels_but_not_labels_or_membership(data_dir):
    plain = radtl.data.load("synthetic_lesions", "val", image_size=SIZE, batch_size=64, data_dir=data_dir)
    augmented = radtl.data.load("synthetic_lesions", "val", image_size=SIZE, batch_size=64, data_dir=data_dir,
                                augment=augmentation.OFFICIAL, seed=1)
    (xp, yp), (xa, ya) = next(iter(plain)), next(iter(augmented))
    np.testing.assert_array_equal(yp.numpy(), ya.numpy())  # val is not shuffled by default
    assert np.abs(xp.numpy() - xa.numpy()).mean() > 1.0


def test_preprocessing_function_is_applied_last(data_dir):
    raw = radtl.data.load("synthetic_lesions", "val", image_size=SIZE, batch_size=8, data_dir=data_dir)
    scaled = radtl.data.load("synthetic_lesions", "val", image_size=SIZE, batch_size=8, data_dir=data_dir,
                             preprocessing=lambda image: image / 127.5 - 1.0)
    np.testing.assert_allclose(next(iter(scaled))[0].numpy(), next(iter(raw))[0].numpy() / 127.5 - 1.0,
                               rtol=1e-6)


def test_counts_per_split_and_class(data_dir):
    table = radtl.data.counts("synthetic_lesions", 1, data_dir=data_dir)
    builder = radtl.data.builder("synthetic_lesions", 1, data_dir)
    assert list(table.index) == ["train", "val", "test"]
    assert list(table.columns) == ["benign", "malignant", "total"]
    for split in table.index:
        assert table.loc[split, "total"] == builder.info.splits[split].num_examples
        assert table.loc[split, "benign"] + table.loc[split, "malignant"] == table.loc[split, "total"]


def test_cli_data_info_prints_the_counts(data_dir):
    from radtl import cli

    result = CliRunner().invoke(cli.cli, ["data", "info", "synthetic_lesions", "--fold", "1",
                                          "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    table = radtl.data.counts("synthetic_lesions", 1, data_dir=data_dir)
    assert "synthetic_lesions/fold1" in result.output
    assert f"{table.loc['train', 'total']}" in result.output.splitlines()[2]


def test_a_dataset_that_is_not_built_gets_the_exact_build_command(tmp_path):
    with pytest.raises(radtl.data.DatasetNotBuiltError) as err:
        radtl.data.load("radimagenet_acl", "train", data_dir=tmp_path)
    message = str(err.value)
    assert "radimagenet_acl/fold1 is not built" in message
    assert f"tfds build {radtl.data.get('radimagenet_acl').builder_dir} --config=fold1" in message
    assert f"--data_dir={tmp_path}" in message


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mnist"}, "`name` must be one of"),
    ({"fold": 6}, "`fold` must be one of 1..5"),
    ({"image_size": 0}, "`image_size`"),
])
def test_bad_arguments_are_rejected(kwargs, match, tmp_path):
    args = {"name": "synthetic_lesions", "split": "train", "data_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match):
        radtl.data.load(args.pop("name"), args.pop("split"), **args)
