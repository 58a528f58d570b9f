"""radtl.augmentation reproduces the official ImageDataGenerator transform, seeded."""
import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf
from keras.src.legacy.preprocessing.image import ImageDataGenerator

from radtl import augmentation


def _smooth_image(shape=(40, 48, 3), seed=0):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.uniform(0, 255, shape), (2, 2, 0)).astype("float32")


@pytest.mark.parametrize("seed", [(1, 2), (3, 4), (7, 11), (100, 5)])
def test_matches_keras_image_data_generator(seed):
    """Same parameters -> same pixels as Keras' own `ImageDataGenerator.apply_transform`."""
    image = _smooth_image()
    params = {k: float(v) for k, v in augmentation.sample_transform(augmentation.OFFICIAL, tf.constant(seed)).items()}
    ours = augmentation.augment(image, tf.constant(seed)).numpy()
    reference = ImageDataGenerator().apply_transform(image, {
        "theta": params["theta"], "tx": params["tx"] * image.shape[0], "ty": params["ty"] * image.shape[1],
        "shear": params["shear"], "zx": params["zx"], "zy": params["zy"],
        "flip_horizontal": params["flip"] > 0.5,
    })
    assert ours.shape == image.shape
    np.testing.assert_allclose(ours, reference, atol=1e-3)
    assert np.abs(ours - image).mean() > 0.1  # it did transform the image


def test_parameters_stay_in_official_ranges_and_cover_them():
    draws = [augmentation.sample_transform(augmentation.OFFICIAL, tf.constant([i, 0])) for i in range(300)]
    theta = np.array([float(d["theta"]) for d in draws])
    zx = np.array([float(d["zx"]) for d in draws])
    zy = np.array([float(d["zy"]) for d in draws])
    flips = np.array([float(d["flip"]) for d in draws])
    assert theta.min() >= -10 and theta.max() <= 10 and theta.max() - theta.min() > 15
    assert zx.min() >= 0.9 and zx.max() <= 1.1
    assert not np.allclose(zx, zy)  # independent row/column zoom, as ImageDataGenerator
    assert 0.35 < flips.mean() < 0.65


def test_same_seed_same_output_and_different_seed_differs():
    image = _smooth_image()
    a = augmentation.augment(image, tf.constant([5, 6])).numpy()
    b = augmentation.augment(image, tf.constant([5, 6])).numpy()
    c = augmentation.augment(image, tf.constant([5, 7])).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1.0


def test_switched_off_transforms_are_identity():
    image = _smooth_image()
    off = augmentation.AugmentConfig(rotation=0, width_shift=0, height_shift=0, shear=0, zoom=0,
                                     horizontal_flip=False)
    assert off.is_identity
    np.testing.assert_array_equal(augmentation.augment(image, tf.constant([1, 2]), off).numpy(), image)
    flip_only = augmentation.AugmentConfig(rotation=0, width_shift=0, height_shift=0, shear=0, zoom=0)
    outs = [augmentation.augment(image, tf.constant([i, 3]), flip_only).numpy() for i in range(8)]
    for out in outs:  # each output is either the image or its mirror image
        assert np.array_equal(out, image) or np.allclose(out, image[:, ::-1], atol=1e-4)
    assert any(not np.array_equal(out, image) for out in outs)


@pytest.mark.parametrize("kwargs, match", [
    ({"rotation": -1}, "rotation"),
    ({"zoom": 1.5}, "zoom"),
    ({"fill_mode": "mirror"}, "fill_mode"),
])
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augmentation.AugmentConfig(**kwargs)


def test_augment_batch_equals_augment_image_by_image():
    """One batched warp gives each image exactly what `augment` gives it alone."""
    images = np.stack([_smooth_image((36, 44, 3), seed=s) for s in range(6)])
    seeds = tf.constant([[1, 2], [3, 4], [7, 11], [100, 5], [0, 0], [9, 2]], tf.int64)
    batched = augmentation.augment_batch(images, seeds).numpy()
    for i in range(len(images)):
        np.testing.assert_allclose(batched[i], augmentation.augment(images[i], seeds[i]).numpy(), atol=1e-4)
    flipped = [float(augmentation.sample_transform(augmentation.OFFICIAL, seeds[i])["flip"]) for i in range(6)]
    assert 0 < sum(flipped) < 6  # the batch mixes flipped and unflipped images


def test_a_greyscale_rgb_image_is_warped_as_one_channel_with_the_same_pixels():
    """The grey fast path (one channel warped, repeated) equals warping all three."""
    grey = _smooth_image((36, 44, 1), seed=3).round().astype("uint8")
    rgb = np.repeat(grey, 3, axis=-1)
    colour = rgb.copy()
    colour[..., 1] = 255 - colour[..., 1]  # not grey: the three-channel path
    for seed in ([1, 2], [3, 4], [9, 2]):
        seed = tf.constant(seed)
        fast = augmentation.augment(rgb, seed).numpy()
        full = augmentation._warp(tf.cast(rgb, tf.float32)[None], augmentation.image_transform(
            augmentation.OFFICIAL, seed, 36, 44)[0][None], augmentation.OFFICIAL)[0].numpy()
        if float(augmentation.sample_transform(augmentation.OFFICIAL, seed)["flip"]) > 0.5:
            full = full[:, ::-1]
        np.testing.assert_array_equal(fast, full)
        np.testing.assert_array_equal(augmentation.augment(rgb.astype("float32"), seed).numpy(), fast)
        slow = augmentation.augment(colour, seed).numpy()
        np.testing.assert_array_equal(slow[..., 0], fast[..., 0])
        np.testing.assert_allclose(slow[..., 1], 255 - fast[..., 1], atol=1e-3)


def test_augment_batch_inside_a_traced_function_and_switched_off():
    images = np.stack([_smooth_image(seed=s) for s in range(3)])
    seeds = tf.constant([[5, 6], [5, 7], [8, 1]])
    traced = tf.function(augmentation.augment_batch)(images, seeds).numpy()
    np.testing.assert_allclose(traced, augmentation.augment_batch(images, seeds).numpy(), atol=1e-3)
    off = augmentation.AugmentConfig(rotation=0, width_shift=0, height_shift=0, shear=0, zoom=0,
                                     horizontal_flip=False)
    np.testing.assert_array_equal(augmentation.augment_batch(images, seeds, off).numpy(), images)


@pytest.mark.parametrize("images, seeds, match", [
    (np.zeros((8, 8, 3), "float32"), [[1, 2]], "images"),
    (np.zeros((2, 8, 8, 3), "float32"), [1, 2], "seeds"),
    (np.zeros((2, 8, 8, 3), "float32"), [[1, 2, 3], [4, 5, 6]], "seeds"),
])
def test_augment_batch_rejects_bad_shapes(images, seeds, match):
    with pytest.raises(ValueError, match=match):
        augmentation.augment_batch(images, tf.constant(seeds))


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_the_gather_warp_equals_the_tensorflow_kernel_and_compiles_with_xla(fill_mode):
    config = augmentation.AugmentConfig(rotation=30, width_shift=0.3, height_shift=0.3, shear=5, zoom=0.3,
                                        fill_mode=fill_mode)
    images = tf.random.stateless_uniform((6, 24, 20, 3), seed=(1, 2), maxval=255.0)
    seeds = tf.reshape(tf.range(12), (6, 2))
    transforms, flips = tf.map_fn(lambda s: augmentation.image_transform(config, s, 24, 20), seeds,
                                  fn_output_signature=(tf.TensorSpec((8,), tf.float32), tf.TensorSpec((), tf.float32)))
    want = augmentation.warp_batch(images, transforms, flips, config).numpy()
    got = augmentation.warp_batch_gather(images, transforms, flips, config).numpy()
    np.testing.assert_allclose(got, want, atol=1e-3)
    compiled = tf.function(augmentation.warp_batch_gather, jit_compile=True)
    np.testing.assert_allclose(compiled(images, transforms, flips, config).numpy(), want, atol=1e-3)
    assert np.abs(want - images.numpy()).mean() > 10  # the transforms really move pixels
    with pytest.raises(ValueError, match="fill_mode"):
        augmentation.warp_batch_gather(images, transforms, flips, augmentation.AugmentConfig(fill_mode="wrap"))


def test_warp_in_train_step_trains_on_the_warped_batch():
    import keras

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
        net.compile(keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return net

    images = tf.random.stateless_uniform((4, 8, 8, 3), seed=(3, 4))
    transforms = tf.constant([[1, 0, 2, 0, 1, 1, 0, 0]] * 4, tf.float32)  # a shift
    flips = tf.constant([0.0, 1.0, 0.0, 1.0])
    labels = tf.constant([0, 1, 1, 0])
    warped = augmentation.warp_batch_gather(images, transforms, flips)
    reference = model()
    reference.fit(warped, labels, batch_size=4, epochs=1, verbose=0, shuffle=False)
    wrapped = augmentation.warp_in_train_step(model())
    batch = tf.data.Dataset.from_tensors(({"image": images, "transform": transforms, "flip": flips}, labels))
    wrapped.fit(batch, epochs=1, verbose=0)
    for a, b in zip(wrapped.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    untouched = model()
    untouched.fit(images, labels, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert not np.allclose(untouched.get_weights()[0], wrapped.get_weights()[0])
    assert wrapped.predict(images, verbose=0).shape == (4, 2)  # inference takes plain images


def test_warp_in_train_step_under_a_distribution_strategy():
    # Keras builds a strategy's model symbolically on the first batch: it must get the images.
    import keras

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    images = tf.random.stateless_uniform((8, 8, 8, 3), seed=(5, 6), maxval=255.0)
    transforms = tf.tile(tf.constant([[1, 0, 1, 0, 1, 0, 0, 0]], tf.float32), (8, 1))
    batches = tf.data.Dataset.from_tensor_slices(
        ({"image": images, "transform": transforms, "flip": tf.zeros(8)}, tf.range(8) % 2)).batch(4)
    with strategy.scope():
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                                  keras.layers.Dense(2, activation="softmax")])
        augmentation.warp_in_train_step(model)
        model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(batches, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
