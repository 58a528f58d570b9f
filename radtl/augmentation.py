"""The official RadImageNet augmentation, reproducible per seed, for `tf.data`.

The RadImageNet Keras scripts (`acl/acl_train.py`, `breast/breast_train.py`) augment
with `ImageDataGenerator(rotation_range=10, width_shift_range=0.1,
height_shift_range=0.1, shear_range=0.1, zoom_range=0.1, horizontal_flip=True,
fill_mode="nearest")`. Its semantics differ from Keras 3's `RandomShear` /
`RandomZoom` layers in ways that matter for a faithful replication:

- the shear range is an angle in **degrees** (0.1 degree is almost no shear);
- zoom draws the row and column factors **independently** from [0.9, 1.1]
  (aspect ratio changes), and a factor > 1 shows more of the image (zooms out);
- rotation, shift, shear and zoom are composed into **one** affine matrix and the
  image is interpolated once (bilinear), with "nearest" filling outside the frame;
- the horizontal flip is applied after the affine warp.

`augment` reproduces that matrix exactly (`ImageDataGenerator.apply_transform`,
including its centring convention) and warps with Keras 3's core
`keras.ops.image.affine_transform`. Random parameters come from TensorFlow's
*stateless* random ops keyed by a per-image seed, so results are identical for a
given seed whatever the parallelism of the `tf.data` map (Keras' own random layers
draw from a stateful seed generator, whose order is not deterministic under a
parallel map). `augment_batch` draws the same per-image parameters from the same
per-image seeds and warps a whole batch in one op: its output equals `augment` applied
image by image (on a CPU it is slower than `augment` mapped in parallel, so `radtl.data`
uses it only when asked: `augment_on="cpu"`). `warp_batch_gather` does the same warp
with gathers, which XLA compiles: `warp_in_train_step` runs it inside the train step, on
the accelerator (`augment_on="device"`).

Reference:
    Mei et al., "RadImageNet: An Open Radiologic Deep Learning Research Dataset for
    Effective Transfer Learning", Radiology: Artificial Intelligence 4(5), 2022;
    official scripts at https://github.com/BMEII-AI/RadImageNet.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from radtl._checks import check_choice
from radtl._checks import check_number

__all__ = ["AugmentConfig", "OFFICIAL", "DEVICE_FILL_MODES", "augment", "augment_batch", "image_transform", "is_grey",
           "warp_batch", "warp_batch_gather", "warp_inputs", "warp_in_train_step", "sample_transform",
           "transform_matrix"]


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the official random affine augmentation; 0 or False switches one off.

    Attributes:
        rotation: float. Maximum rotation in degrees, drawn from U(-r, r). Defaults to 10.
        width_shift: float. Maximum horizontal shift as a fraction of the image size.
            Defaults to 0.1.
        height_shift: float. Maximum vertical shift as a fraction of the image size.
            Defaults to 0.1.
        shear: float. Maximum shear angle in degrees (Keras `ImageDataGenerator`
            units). Defaults to 0.1.
        zoom: float. Row and column zoom factors drawn independently from
            U(1 - z, 1 + z). Defaults to 0.1.
        horizontal_flip: bool. Flip left-right with probability 0.5. Defaults to True.
        fill_mode: str. How points outside the frame are filled, one of
            "nearest", "reflect", "wrap", "constant". Defaults to "nearest".
    """

    rotation: float = 10.0
    width_shift: float = 0.1
    height_shift: float = 0.1
    shear: float = 0.1
    zoom: float = 0.1
    horizontal_flip: bool = True
    fill_mode: str = "nearest"

    def __post_init__(self):
        for name in ("rotation", "width_shift", "height_shift", "shear"):
            check_number(name, getattr(self, name))
        check_number("zoom", self.zoom, 0.0, 1.0, include_high=False)  # factors are 1 +/- zoom
        check_choice("fill_mode", self.fill_mode, ("nearest", "reflect", "wrap", "constant"))

    @property
    def is_identity(self) -> bool:
        """True when every transform is switched off."""
        return not (self.rotation or self.width_shift or self.height_shift or self.shear
                    or self.zoom or self.horizontal_flip)


#: The augmentation of the official RadImageNet Keras scripts.
OFFICIAL = AugmentConfig()


def sample_transform(config: AugmentConfig, seed) -> dict[str, tf.Tensor]:
    """Draws one image's transform parameters from a stateless seed.

    Args:
        config: AugmentConfig. The ranges.
        seed: int tensor of shape (2,). Stateless seed for this image.

    Returns:
        Dict of float32 scalars `theta` (degrees), `tx` (rows, as a fraction of the
        height), `ty` (columns, fraction of the width), `shear` (degrees), `zx`,
        `zy` (zoom factors), and `flip` (1.0 to flip left-right, else 0.0), the
        parameter names of `ImageDataGenerator.get_random_transform`.
    """
    draws = tf.random.stateless_uniform((7,), seed=seed, minval=-1.0, maxval=1.0)
    return {
        "theta": draws[0] * config.rotation,
        "tx": draws[1] * config.height_shift,
        "ty": draws[2] * config.width_shift,
        "shear": draws[3] * config.shear,
        "zx": 1.0 + draws[4] * config.zoom,
        "zy": 1.0 + draws[5] * config.zoom,
        "flip": tf.cast(draws[6] > 0.0, tf.float32) * float(config.horizontal_flip),
    }


def transform_matrix(params: dict, height, width) -> tf.Tensor:
    """The 3x3 matrix `ImageDataGenerator.apply_affine_transform` builds.

    The matrix maps output pixel coordinates (x = column, y = row, 1) to input
    coordinates, as `keras.ops.image.affine_transform` expects. Keras builds
    rotation @ shift @ shear @ zoom, centres it with (height, width) in that order
    (its own convention, kept for fidelity), then applies it to (row, col) arrays by
    swapping axes twice; the two swaps cancel, so this matrix is used as is.

    Args:
        params: dict from `sample_transform` (shifts as fractions).
        height: scalar. Image height in pixels.
        width: scalar. Image width in pixels.

    Returns:
        float32 tensor of shape (3, 3).
    """
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    theta = params["theta"] * (math.pi / 180.0)
    shear = params["shear"] * (math.pi / 180.0)
    tx = params["tx"] * height
    ty = params["ty"] * width
    zero, one = tf.constant(0.0), tf.constant(1.0)

    def mat(rows):
        return tf.stack([tf.stack(row) for row in rows])

    rotation = mat([[tf.cos(theta), -tf.sin(theta), zero], [tf.sin(theta), tf.cos(theta), zero], [zero, zero, one]])
    shift = mat([[one, zero, tx], [zero, one, ty], [zero, zero, one]])
    shear_m = mat([[one, -tf.sin(shear), zero], [zero, tf.cos(shear), zero], [zero, zero, one]])
    zoom = mat([[params["zx"], zero, zero], [zero, params["zy"], zero], [zero, zero, one]])
    matrix = rotation @ shift @ shear_m @ zoom
    o_x, o_y = height / 2.0 - 0.5, width / 2.0 - 0.5
    offset = mat([[one, zero, o_x], [zero, one, o_y], [zero, zero, one]])
    reset = mat([[one, zero, -o_x], [zero, one, -o_y], [zero, zero, one]])
    return offset @ matrix @ reset


def image_transform(config: AugmentConfig, seed, height, width):
    """One image's transform from its stateless seed: 8 affine coefficients and a flip flag.

    Cheap (a few scalar ops): `radtl.data` draws it per image in its parallel map and
    warps whole batches with `warp_batch`.

    Returns:
        (float32 (8,) coefficients a0 a1 a2 b0 b1 b2 c0 c1, float32 scalar flip 0/1).
    """
    params = sample_transform(config, seed)
    matrix = transform_matrix(params, height, width)
    flat = tf.reshape(matrix, (9,))[:8]  # a0 a1 a2 b0 b1 b2 c0 c1 (normalised: c2 == 1)
    return flat, params["flip"]


def _warp(images, transforms, config: AugmentConfig):
    """Warps (B, H, W, C) images with (B, 8) transforms, bilinear, filled as configured."""
    return keras.ops.image.affine_transform(
        images, transforms, interpolation="bilinear",
        fill_mode=config.fill_mode, data_format="channels_last",
    )


def warp_batch(images, transforms, flips, config: AugmentConfig = OFFICIAL):
    """Warps (B, H, W, C) images with their (B, 8) transforms in one call, then flips (B,) per image."""
    warped = _warp(tf.convert_to_tensor(images, tf.float32), transforms, config)
    return tf.where(tf.reshape(flips > 0.5, (-1, 1, 1, 1)), tf.reverse(warped, axis=[2]), warped)


#: Fill modes `warp_batch_gather` (the accelerator path) implements.
DEVICE_FILL_MODES = ("nearest", "constant")


def warp_batch_gather(images, transforms, flips, config: AugmentConfig = OFFICIAL):
    """`warp_batch` from gathers and arithmetic only: compiles with XLA, runs on any device.

    TensorFlow's `ImageProjectiveTransformV3` (behind `keras.ops.image.affine_transform`)
    has no XLA kernel, so a jit-compiled train step cannot call `warp_batch`. This is the
    same bilinear projective warp written as four gathers: output pixel (y, x) samples the
    input at ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, with
    the same interpolation weights as the TensorFlow kernel and the fill of
    `config.fill_mode` ("nearest": coordinates clamped to the frame; "constant": 0
    outside). Equal to `warp_batch` to float32 rounding (tested).

    Args:
        images: float tensor (B, H, W, C).
        transforms: float32 (B, 8), `image_transform` coefficients.
        flips: float32 (B,), 1 to flip left-right after the warp.
        config: AugmentConfig; its `fill_mode` must be one of `DEVICE_FILL_MODES`.

    Returns:
        float32 (B, H, W, C).
    """
    check_choice("fill_mode", config.fill_mode, DEVICE_FILL_MODES)
    images = tf.convert_to_tensor(images, tf.float32)
    transforms = tf.convert_to_tensor(transforms, tf.float32)
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    t = transforms[:, :, None, None]
    k = t[:, 6] * xs + t[:, 7] * ys + 1.0
    x = (t[:, 0] * xs + t[:, 1] * ys + t[:, 2]) / k  # (B, H, W) input coordinates
    y = (t[:, 3] * xs + t[:, 4] * ys + t[:, 5]) / k
    last_x, last_y = tf.cast(width - 1, tf.float32), tf.cast(height - 1, tf.float32)
    if config.fill_mode == "nearest":
        x, y = tf.clip_by_value(x, 0.0, last_x), tf.clip_by_value(y, 0.0, last_y)
    x0, y0 = tf.floor(x), tf.floor(y)
    flat = tf.reshape(images, (batch, height * width, channels))

    def read(yy, xx):  # (B, H, W, C) pixels at integer coordinates; 0 outside the frame
        inside = (xx >= 0.0) & (xx <= last_x) & (yy >= 0.0) & (yy <= last_y)
        index = (tf.cast(tf.clip_by_value(yy, 0.0, last_y), tf.int32) * width
                 + tf.cast(tf.clip_by_value(xx, 0.0, last_x), tf.int32))
        values = tf.gather(flat, tf.reshape(index, (batch, -1)), batch_dims=1)
        values = tf.reshape(values, shape) * tf.cast(inside, tf.float32)[..., None]
        return values

    # The TensorFlow kernel's weights: (ceil - v) for the floor sample, (v - floor) for the other.
    wx1, wy1 = (x - x0)[..., None], (y - y0)[..., None]
    wx0, wy0 = (x0 + 1.0 - x)[..., None], (y0 + 1.0 - y)[..., None]
    top = wx0 * read(y0, x0) + wx1 * read(y0, x0 + 1.0)
    bottom = wx0 * read(y0 + 1.0, x0) + wx1 * read(y0 + 1.0, x0 + 1.0)
    warped = wy0 * top + wy1 * bottom
    flips = tf.convert_to_tensor(flips, tf.float32)
    return tf.where(tf.reshape(flips > 0.5, (-1, 1, 1, 1)), tf.reverse(warped, axis=[2]), warped)


def _unwarped(inputs) -> bool:
    """Whether a batch's inputs are `augment_on="device"` ones: {"image", "transform", "flip"}."""
    return isinstance(inputs, dict) and "transform" in inputs


def warp_inputs(inputs, config: AugmentConfig = OFFICIAL):
    """The images of one batch's inputs: an `augment_on="device"` dict warped with
    `warp_batch_gather`, anything else (plain images) returned as it is."""
    if _unwarped(inputs):
        return warp_batch_gather(inputs["image"], inputs["transform"], inputs["flip"], config)
    return inputs


def warp_in_train_step(model, config: AugmentConfig = OFFICIAL):
    """Makes `model.fit` augment on the accelerator: each training batch is warped inside the step.

    For `radtl.data.DatasetFold.load(..., augment=True, augment_on="device")`, whose
    training batches are `({"image", "transform", "flip"}, labels)`: the model's own
    `train_step` (Keras 3) is wrapped, on this instance only, to run
    `warp_batch_gather` first, so the warp is part of the (jit-compiled) step and runs
    where the model runs. Evaluation and prediction take plain images as before, and a
    saved model is the plain model. Returns `model`.

    Under a distribution strategy Keras first builds the model symbolically on the first
    batch (`_symbolic_build`, private API of the pinned Keras 3.15): that call is given
    the batch's images too.
    """
    import types

    check_choice("fill_mode", config.fill_mode, DEVICE_FILL_MODES)
    step = type(model).train_step
    symbolic_build = type(model)._symbolic_build

    def train_step(self, data):
        x, *rest = data
        return step(self, (warp_inputs(x, config), *rest))

    def build(self, iterator=None, data_batch=None):
        if data_batch is not None and _unwarped(data_batch[0]):
            data_batch = (data_batch[0]["image"], *data_batch[1:])
        return symbolic_build(self, iterator=iterator, data_batch=data_batch)

    model.train_step = types.MethodType(train_step, model)
    model._symbolic_build = types.MethodType(build, model)
    return model


def is_grey(image) -> tf.Tensor:
    """Whether an (H, W, 3) image's channels are all equal (greyscale stored as RGB): bool scalar."""
    image = tf.convert_to_tensor(image)
    return tf.reduce_all(tf.equal(image[..., :1], image))


def augment(image, seed, config: AugmentConfig = OFFICIAL, grey=None):
    """Applies the official random affine augmentation to one image.

    Args:
        image: tensor of shape (H, W, C), any real dtype and value range (uint8 from
            `radtl.data`'s cache); warped in float32. An RGB image whose channels are
            equal (greyscale) is warped as one channel and repeated: the same pixels.
        seed: int tensor of shape (2,). Stateless seed; the same seed gives the
            same output.
        config: AugmentConfig. Defaults to the official RadImageNet ranges.
        grey: bool scalar or None. `is_grey(image)`, when the caller has it already
            (`radtl.data` computes it once per image, before its cache). Defaults to
            None: computed here.

    Returns:
        float32 tensor of shape (H, W, C).

    Example:
        >>> img = tf.random.uniform((32, 32, 3), maxval=255.0)
        >>> out = augment(img, tf.constant([1, 2]))
        >>> out.shape
        TensorShape([32, 32, 3])
    """
    image = tf.convert_to_tensor(image)
    if config.is_identity:
        return tf.cast(image, tf.float32)
    shape = tf.shape(image)
    flat, flip = image_transform(config, seed, shape[0], shape[1])

    def warp(channels):
        warped = _warp(tf.cast(channels, tf.float32)[None], flat[None], config)[0]
        return tf.cond(flip > 0.5, lambda: tf.reverse(warped, axis=[1]), lambda: warped)

    if image.shape[-1] != 3:
        return warp(image)
    # Greyscale stored as RGB (most radiology images): every channel warps the same, so
    # warp one and repeat it, the same pixels at about 1.5x the speed.
    grey = is_grey(image) if grey is None else grey
    return tf.cond(grey, lambda: tf.broadcast_to(warp(image[..., :1]), shape), lambda: warp(image))


def augment_batch(images, seeds, config: AugmentConfig = OFFICIAL):
    """Applies the official random affine augmentation to a batch, one warp for all.

    Each image's parameters are drawn exactly as `augment` draws them
    (`sample_transform` with that image's own stateless seed pair), so
    `augment_batch(images, seeds)[i]` equals `augment(images[i], seeds[i])` (the same
    TensorFlow kernels; measured equal to float32 rounding). The B transforms are
    applied by one batched `keras.ops.image.affine_transform` call, then each image
    is flipped left-right or not.

    Args:
        images: float tensor of shape (B, H, W, C), any value range (B may be 0).
        seeds: int tensor of shape (B, 2). One stateless seed pair per image.
        config: AugmentConfig. Defaults to the official RadImageNet ranges.

    Returns:
        float32 tensor of shape (B, H, W, C).

    Raises:
        ValueError: `images` is not of rank 4 or `seeds` not of shape (B, 2).

    Example:
        >>> imgs = tf.random.uniform((4, 32, 32, 3), maxval=255.0)
        >>> seeds = tf.constant([[1, 2], [3, 4], [5, 6], [7, 8]])
        >>> augment_batch(imgs, seeds).shape
        TensorShape([4, 32, 32, 3])
    """
    images = tf.convert_to_tensor(images, tf.float32)
    seeds = tf.convert_to_tensor(seeds)
    if images.shape.rank != 4:
        raise ValueError("`images` must be a batch of shape (B, H, W, C). "
                         f"Received: images with shape {images.shape}. Fix: use `augment` for one image.")
    if seeds.shape.rank != 2 or seeds.shape[-1] not in (None, 2):
        raise ValueError("`seeds` must have shape (B, 2): one stateless seed pair per image. "
                         f"Received: seeds with shape {seeds.shape}.")
    if config.is_identity:
        return images
    shape = tf.shape(images)
    flat, flip = tf.map_fn(
        lambda seed: image_transform(config, seed, shape[1], shape[2]), seeds,
        fn_output_signature=(tf.TensorSpec((8,), tf.float32), tf.TensorSpec((), tf.float32)),
    )
    return warp_batch(images, flat, flip, config)
