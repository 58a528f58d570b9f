"""radtl.interpret: Grad-CAM / Grad-CAM++ maps and localisation scores against masks."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from radtl import interpret
from radtl import models

SIZE = 32
ROWS, COLS = slice(8, 20), slice(12, 24)  # the bright square: the only class-1 evidence


def _square_images(count=2):
    """Grey images (value 50) with a bright square (250) at ROWS x COLS."""
    images = np.full((count, SIZE, SIZE, 3), 50.0, dtype="float32")
    images[:, ROWS, COLS] = 250.0
    return images


def _square_mask(count=2):
    mask = np.zeros((count, SIZE, SIZE), dtype="uint8")
    mask[:, ROWS, COLS] = 1
    return mask


def _evidence_features(name="features"):
    """images -> (16, 16, 2): channel 0 fires only on bright pixels, 1 only on grey ones.

    1x1 conv on the channel mean: channel 0 = ReLU(mean - 150) (100 inside the square,
    0 outside), channel 1 = ReLU(150 - mean) (100 outside, 0 inside); then 2x2 max
    pooling, so the map is upsampled from 16 x 16.
    """
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="evidence")
    x = conv(inputs)
    conv.set_weights([np.array([[[[1 / 3, -1 / 3]] * 3]], "float32"),
                      np.array([-150.0, 150.0], "float32")])
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    return keras.Model(inputs, x, name=name)


def _evidence_head(x):
    """GAP -> Dense(2, softmax): channel 0 is class-1 evidence, channel 1 class-0."""
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    out = dense(x)
    dense.set_weights([np.array([[0.0, 1.0], [0.05, 0.0]], "float32"), np.zeros(2, "float32")])
    return out


def _hand_built(nesting):
    """The evidence model flat, with its features nested once, or nested twice."""
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    if nesting == 0:
        features = _evidence_features()
        x = features.get_layer("pool").output
        return keras.Model(features.input, _evidence_head(x), name="flat")
    features = _evidence_features()
    if nesting == 2:
        inner_in = keras.Input((SIZE, SIZE, 3))
        features = keras.Model(inner_in, features(inner_in), name="outer_features")
    return keras.Model(inputs, _evidence_head(features(inputs)), name=f"nested{nesting}")


def _dice_at_half(cam, mask):
    region = cam >= 0.5
    return 2 * np.sum(region & (mask > 0)) / (region.sum() + (mask > 0).sum())


@pytest.fixture
def bfloat16_policy():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(policy)


# --------------------------------------------------------------------------------------
# Grad-CAM on hand-built models: the evidence sits in a known region
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("nesting", [0, 1, 2])
@pytest.mark.parametrize("method", [interpret.grad_cam, interpret.grad_cam_plus_plus])
def test_map_finds_the_evidence_region(nesting, method):
    model = _hand_built(nesting)
    images = _square_images()
    cams, classes = method(model, images, layer="evidence", return_classes=True)
    assert cams.shape == (2, SIZE, SIZE) and cams.dtype == np.float32
    np.testing.assert_array_equal(classes, [1, 1])  # the square makes class 1 win
    mask = _square_mask()
    for cam, image_mask in zip(cams, mask):
        assert cam.max() == pytest.approx(1.0)
        row, col = np.unravel_index(np.argmax(cam), cam.shape)
        assert image_mask[row, col] == 1
        assert _dice_at_half(cam, image_mask) > 0.8
    assert interpret.dice(cams, mask).min() > 0.8
    assert interpret.pointing_game(cams, mask).tolist() == [1.0, 1.0]


def test_class_index_maps_the_other_class_evidence():
    model = _hand_built(1)
    cams = interpret.grad_cam(model, _square_images(), class_index=0, layer="evidence")
    background = 1 - _square_mask()
    assert interpret.dice(cams, background).min() > 0.8
    assert interpret.pointing_game(cams, _square_mask()).tolist() == [0.0, 0.0]
    per_image = interpret.grad_cam(model, _square_images(), class_index=np.array([0, 1]),
                                   layer="evidence")
    np.testing.assert_allclose(per_image[0], cams[0], atol=1e-6)
    assert interpret.dice(per_image[1:], _square_mask(1))[0] > 0.8


def test_no_positive_evidence_gives_an_all_zero_map():
    model = _hand_built(0)
    grey = np.full((1, SIZE, SIZE, 3), 50.0, "float32")  # channel 0 is zero everywhere
    cam = interpret.grad_cam(model, grey, class_index=1, layer="evidence")
    np.testing.assert_array_equal(cam, 0.0)


def test_grad_cam_matches_an_xla_compiled_pass():
    model = _hand_built(1)
    images = _square_images()
    eager = interpret.grad_cam(model, images, layer="evidence")
    compiled = interpret.grad_cam(model, images, layer="evidence", jit_compile=True,
                                  batch_size=1)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


# --------------------------------------------------------------------------------------
# A radtl model: default layer inside the nested backbone, logits, CAM identity
# --------------------------------------------------------------------------------------

RADTL_SIZE = 96  # MobileNetV2's last stage `out_relu` is 3 x 3 here


@pytest.fixture(scope="module")
def radtl_model():
    keras.utils.set_random_seed(3)
    return models.build_model("mobilenet_v2", None, input_shape=(RADTL_SIZE, RADTL_SIZE, 3),
                              preprocessing="native")


@pytest.fixture(scope="module")
def radtl_images():
    return np.random.default_rng(0).uniform(0, 255, (3, RADTL_SIZE, RADTL_SIZE, 3)).astype(
        "float32")


def _last_stage(model, images):
    """(activations (b, 3, 3, 1280), output kernel (1280, K)), computed independently."""
    backbone = models.get_backbone(model)
    stage = keras.Model(backbone.input, backbone.get_layer("out_relu").output)
    acts = np.asarray(stage(model.get_layer("preprocessing")(images)), "float64")
    kernel = np.asarray(model.layers[-1].output_dense.kernel, "float64")
    return acts, kernel


def _normalised_upsample(maps):
    up = tf.image.resize(maps[..., None].astype("float32"), (RADTL_SIZE, RADTL_SIZE),
                         method="bilinear").numpy()[..., 0]
    return up / up.max(axis=(1, 2), keepdims=True)


def test_default_layer_is_the_last_stage_inside_the_nested_backbone(radtl_model):
    assert interpret.target_layer(radtl_model) == (
        "out_relu", ["mobilenet_v2_linear", "mobilenet_v2"])
    assert interpret.target_layer(models.get_backbone(radtl_model)) == (
        "out_relu", ["mobilenet_v2"])


def test_grad_cam_of_a_radtl_model_is_cam_on_the_logits(radtl_model, radtl_images):
    # out_relu -> global average pooling -> Dropout -> Dense(softmax): Grad-CAM on the
    # logits is ReLU(sum_k W[k, c] A_k) up to scale (Selvaraju et al. 2017, sec. 3.1).
    # Gradients of the probabilities would weigh channels by W[:, c] - sum_j p_j W[:, j].
    cams, classes = interpret.grad_cam(radtl_model, radtl_images, return_classes=True)
    assert cams.shape == (3, RADTL_SIZE, RADTL_SIZE)
    assert cams.min() >= 0.0 and cams.max(axis=(1, 2)) == pytest.approx(1.0)
    acts, kernel = _last_stage(radtl_model, radtl_images)
    bias = np.asarray(radtl_model.layers[-1].output_dense.bias, "float64")
    logits = acts.mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_array_equal(classes, logits.argmax(axis=1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = _normalised_upsample(
        np.maximum(np.einsum("bhwk,kb->bhw", acts, kernel[:, classes]), 0))
    np.testing.assert_allclose(cams, expected, atol=1e-4)
    weights = kernel[:, classes] - kernel @ probs.T  # what probabilities would give
    from_probs = _normalised_upsample(np.maximum(np.einsum("bhwk,kb->bhw", acts, weights), 0))
    assert np.abs(cams - from_probs).max() > 0.05


def test_grad_cam_plus_plus_of_a_radtl_model_matches_the_closed_form(radtl_model,
                                                                     radtl_images):
    # With GAP before a linear layer, g = W[k, c] / (h w) at every position, so
    # Chattopadhay et al. eq. 19 gives w_k = h w ReLU(g) g^2 / (2 g^2 + sum(A_k) g^3).
    cams = interpret.grad_cam_plus_plus(radtl_model, radtl_images, class_index=1)
    acts, kernel = _last_stage(radtl_model, radtl_images)
    positions = acts.shape[1] * acts.shape[2]
    g = kernel[:, 1] / positions
    total = acts.sum(axis=(1, 2))  # (b, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.nan_to_num(g ** 2 / (2 * g ** 2 + total * g ** 3))
    weights = positions * alpha * np.maximum(g, 0)
    expected = _normalised_upsample(np.maximum(np.einsum("bhwk,bk->bhw", acts, weights), 0))
    np.testing.assert_allclose(cams, expected, atol=1e-4)


def test_a_frozen_backbone_gives_the_same_maps(radtl_model, radtl_images):
    cams = interpret.grad_cam(radtl_model, radtl_images)
    backbone = models.get_backbone(radtl_model)
    backbone.trainable = False
    try:
        frozen = interpret.grad_cam(radtl_model, radtl_images)
    finally:
        backbone.trainable = True
    np.testing.assert_allclose(frozen, cams, atol=1e-6)


# --------------------------------------------------------------------------------------
# Mixed precision
# --------------------------------------------------------------------------------------


def test_mixed_bfloat16_maps_are_close_to_float32(bfloat16_policy):
    images = _square_images()
    bf16 = _hand_built(1)
    assert bf16.get_layer("features").get_layer("evidence").compute_dtype == "bfloat16"
    cams = interpret.grad_cam(bf16, images, layer="evidence", jit_compile=True)
    assert cams.dtype == np.float32
    assert interpret.dice(cams, _square_mask()).min() > 0.8

    keras.utils.set_random_seed(3)
    model = models.build_model("mobilenet_v2", None, input_shape=(RADTL_SIZE, RADTL_SIZE, 3),
                               preprocessing="native")
    keras.config.set_dtype_policy("float32")
    reference = models.build_model("mobilenet_v2", None,
                                   input_shape=(RADTL_SIZE, RADTL_SIZE, 3),
                                   preprocessing="native")
    reference.set_weights(model.get_weights())
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (2, RADTL_SIZE, RADTL_SIZE, 3)).astype("float32")
    for layer in (None, "block_5_add"):  # the last stage, and an earlier one by name
        expected = interpret.grad_cam(reference, x, layer=layer)
        got = interpret.grad_cam(model, x, layer=layer)
        assert expected.max(axis=(1, 2)) == pytest.approx(1.0)  # not all-zero maps
        assert got.dtype == np.float32 and got.min() >= 0 and got.max() <= 1
        assert np.abs(got - expected).mean() < 0.05
        assert interpret.dice(got, expected >= 0.5).min() > 0.8


# --------------------------------------------------------------------------------------
# Argument errors
# --------------------------------------------------------------------------------------


def test_unknown_layer_lists_where_to_look():
    with pytest.raises(ValueError, match=r"`layer` must name a layer.*'nope'"):
        interpret.grad_cam(_hand_built(1), _square_images(), layer="nope")


def test_non_spatial_layer_is_refused():
    with pytest.raises(ValueError, match="spatial"):
        interpret.target_layer(_hand_built(0), "predictions")


def test_default_layer_needs_a_registered_backbone():
    with pytest.raises(ValueError, match="Pass `layer=`"):
        interpret.grad_cam(_hand_built(1), _square_images())


@pytest.mark.parametrize("class_index", [2, -1, np.array([0, 1, 1]), 0.5])
def test_bad_class_index(class_index):
    with pytest.raises(ValueError, match="`class_index` must be"):
        interpret.grad_cam(_hand_built(0), _square_images(), class_index=class_index,
                           layer="evidence")


def test_images_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"`images` must be a \(batch, 32, 32, 3\)"):
        interpret.grad_cam(_hand_built(0), np.zeros((1, 16, 16, 3)), layer="evidence")


# --------------------------------------------------------------------------------------
# Localisation scores on hand-made maps (values worked out by hand in the comments)
# --------------------------------------------------------------------------------------

MAP = np.array([[1.0, 0.6, 0.0, 0.0],
                [0.4, 0.5, 0.0, 0.0],
                [0.0, 0.0, 0.0, 0.2],
                [0.0, 0.0, 0.0, 0.3]])
MASK_A = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], "uint8") * 255
MASK_B = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], "uint8")
EMPTY = np.zeros((4, 4), "uint8")
ZERO = np.zeros((4, 4))


def test_scores_on_known_maps():
    cams = np.stack([MAP, MAP, ZERO, MAP])
    masks = np.stack([MASK_A, MASK_B, MASK_A, EMPTY])
    # MAP >= 0.5: (0,0), (0,1), (1,1), all in MASK_A (5 pixels): Dice 6/8, IoU 3/5.
    np.testing.assert_allclose(interpret.dice(cams, masks), [0.75, 0, 0, np.nan])
    np.testing.assert_allclose(interpret.iou(cams, masks), [0.6, 0, 0, np.nan])
    # >= 0.3 adds (1,0) (in) and (3,3) (out): 4 of 5 and 5: Dice 8/10, IoU 4/6.
    np.testing.assert_allclose(interpret.dice(cams[:1], masks[:1], threshold=0.3), [0.8])
    np.testing.assert_allclose(interpret.iou(cams[:1], masks[:1], threshold=0.3), [4 / 6])
    # Energy 3.0 in all; 2.5 inside MASK_A, 0.5 inside MASK_B; a zero map has none.
    np.testing.assert_allclose(interpret.energy_pointing_game(cams, masks),
                               [2.5 / 3, 0.5 / 3, 0, np.nan])
    # Maximum at (0,0): in MASK_A; sqrt(8) = 2.83 px from MASK_B's nearest pixel (2,2).
    np.testing.assert_allclose(interpret.pointing_game(cams, masks), [1, 0, 0, np.nan])
    np.testing.assert_allclose(interpret.pointing_game(cams[1:2], masks[1:2], tolerance=2.8),
                               [0])
    np.testing.assert_allclose(interpret.pointing_game(cams[1:2], masks[1:2], tolerance=2.9),
                               [1])
    scores = interpret.score_images(cams, masks[..., None])  # a trailing channel is fine
    assert list(scores) == list(interpret.SCORES)
    np.testing.assert_allclose(scores["dice"], [0.75, 0, 0, np.nan])


def test_localisation_scores_average_over_masked_images_per_class():
    cams = np.stack([MAP, MAP, ZERO, MAP, MAP])
    masks = np.stack([MASK_A, MASK_B, MASK_A, EMPTY, MASK_A])
    has_mask = np.array([True, True, True, True, False])
    labels = np.array([0, 1, 1, 0, 2])  # image 4 would score 0.75 but has no mask
    result = interpret.localisation_scores(cams, masks, has_mask, labels)
    assert json.loads(json.dumps(result)) is not None
    assert (result["n"], result["n_without_mask"], result["n_empty_mask"]) == (3, 1, 1)
    assert result["dice"] == pytest.approx(0.75 / 3)
    assert result["iou"] == pytest.approx(0.6 / 3)
    assert result["energy_pointing_game"] == pytest.approx((2.5 / 3 + 0.5 / 3) / 3)
    assert result["pointing_game"] == pytest.approx(1 / 3)
    per_class = result["per_class"]
    assert sorted(per_class) == [0, 1, 2]
    assert per_class[0]["n"] == 1 and per_class[0]["dice"] == pytest.approx(0.75)
    assert per_class[1]["n"] == 2 and per_class[1]["dice"] == 0.0
    assert per_class[1]["energy_pointing_game"] == pytest.approx(0.5 / 6)
    assert per_class[2] == {"n": 0, "dice": None, "iou": None,
                            "energy_pointing_game": None, "pointing_game": None}
    one_hot = np.eye(3)[labels]
    assert interpret.localisation_scores(cams, masks, has_mask, one_hot) == result


def test_score_argument_errors():
    with pytest.raises(ValueError, match="same shape"):
        interpret.dice(np.zeros((1, 4, 4)), np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="`threshold` must be a number in \\(0.0, 1.0\\]"):
        interpret.iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), threshold=0)
    with pytest.raises(ValueError, match="`cam` must hold finite values >= 0"):
        interpret.energy_pointing_game(-np.ones((1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="`has_mask` must be a bool array"):
        interpret.localisation_scores(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), [1, 0], [0, 1])
    with pytest.raises(ValueError, match="`labels` must be class indices"):
        interpret.localisation_scores(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)),
                                      np.array([True, False]), [0.5, 1])


def test_a_final_softmax_layer_is_skipped_like_a_softmax_dense():
    dense_softmax = _hand_built(1)
    features = dense_softmax.get_layer("features")
    inputs = keras.Input((SIZE, SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(features(inputs))
    logits = keras.layers.Dense(2, name="logits")(pooled)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.get_layer("logits").set_weights(dense_softmax.get_layer("predictions").get_weights())
    for cls in (0, 1):
        np.testing.assert_allclose(
            interpret.grad_cam(model, _square_images(), class_index=cls, layer="evidence"),
            interpret.grad_cam(dense_softmax, _square_images(), class_index=cls,
                               layer="evidence"),
            atol=1e-6)


def test_a_sequential_model_asks_for_a_functional_one():
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), _evidence_features(),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="must be a functional keras.Model.*functional API"):
        interpret.grad_cam(model, _square_images(), layer="evidence")
