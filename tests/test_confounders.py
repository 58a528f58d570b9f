"""Tests for radtl.confounders: the synthetic confounders of "Source Matters".

Reference values were computed in a scratch folder (never copied into radtl) with numpy 2.4,
scipy and Pillow 12.3 from DovileDo/source-matters at commit
d0f7547afbd0573a8e6c37c82a16ee47ab30f09c:

* `include_lowpass.py`, `low_pass(image, e)` with e = 500 / 1024 * 64 on the 64 x 64 image
  `_structured()` below: its float output before clipping and truncation is 135.2641 at
  (row 30, col 36) and 69.5483 at (5, 5); its uint8 output sums to 452534 (mean 110.482,
  truncation makes it ~0.5 below the input mean 110.984).
* `include_noise.py`, `noise(np.full((512, 512), 128.0), photons)` with its RandomStates
  666/888: output mean 127.999 / 128.008 / 128.014 and standard deviation 1.8299 / 2.0995 /
  8.0017 grey levels at 2e7 / 1.5e7 / 1e6 photons.
"""
import numpy as np
import pytest

from radtl import confounders
from radtl.confounders import KINDS, apply, check, confound_batch, image_seed, lowpass, noise, select, tag, tag_box


def _structured() -> np.ndarray:
    """A 64 x 64 grey image: a ramp, a cosine kept by the low-pass, one removed by it, and a disc."""
    yy, xx = np.mgrid[0:64, 0:64]
    image = 60 + 1.5 * xx + 40 * np.cos(2 * np.pi * 3 * yy / 64) + 30 * np.cos(2 * np.pi * (20 * xx + 21 * yy) / 64)
    image[(yy - 30) ** 2 + (xx - 36) ** 2 < 100] += 50
    return np.repeat(np.clip(np.rint(image), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _random(shape=(48, 64, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_registry_names():
    assert KINDS.names() == ["tag", "lowpass", "noise"]


@pytest.mark.parametrize("kind", ["tag", "lowpass", "noise"])
def test_deterministic_same_shape_and_dtype(kind):
    image = _random()
    first = apply(kind, image, seed=5, **({"size": 0.25} if kind == "tag" else {}))
    again = apply(kind, image, seed=5, **({"size": 0.25} if kind == "tag" else {}))
    assert first.shape == image.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, image)
    assert image.base is None and np.array_equal(image, _random())  # input untouched


def test_noise_depends_on_seed_and_tag_does_not():
    image = _random()
    assert not np.array_equal(noise(image, seed=1), noise(image, seed=2))
    np.testing.assert_array_equal(apply("tag", image, seed=1), apply("tag", image, seed=2))


# --- tag -------------------------------------------------------------------------------------------

def test_tag_changes_only_the_letter_region_and_makes_it_white():
    image = np.full((64, 64, 3), 40, np.uint8)
    out = tag(image, size=0.25, position=(0.25, 0.5))
    changed = np.argwhere((out != image).any(-1))
    # 16 px font with its left-ascender corner at (x, y) = (16, 32): the letter lies right of
    # and below that corner, within one em.
    assert changed[:, 0].min() >= 32 and changed[:, 0].max() < 32 + 16
    assert changed[:, 1].min() >= 16 and changed[:, 1].max() < 16 + 16
    x0, y0, x1, y1 = tag_box(image.shape, size=0.25, position=(0.25, 0.5))
    assert (y0, x0) == tuple(changed.min(0)) and (y1 - 1, x1 - 1) == tuple(changed.max(0))
    white = (out == 255).all(-1)
    assert white.sum() >= 10  # the strokes' cores are pure white (a 16 px font has ~1 px strokes)
    assert (out[changed[:, 0], changed[:, 1]] > 40).all()  # edges blend towards white, never darker
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_tag_scales_with_the_image():
    small = tag_box((64, 64, 3), size=0.25, position=(0.25, 0.25))
    large = tag_box((256, 256, 3), size=0.25, position=(0.25, 0.25))
    assert large[0] == pytest.approx(4 * small[0], abs=4) and large[3] == pytest.approx(4 * small[3], abs=6)
    assert (large[3] - large[1]) > 3 * (small[3] - small[1])


def test_tag_paper_defaults_at_1024_px():
    # include_tag.py on CXR14: font 64 at (200, 200) on 1024 px images.
    x0, y0, x1, y1 = tag_box((1024, 1024, 3))
    assert 200 <= x0 < 210 and 200 <= y0 < 225 and 30 < y1 - y0 <= 64 and 20 < x1 - x0 <= 64


def test_tag_clipped_at_the_border():
    out = tag(np.zeros((32, 32, 3), np.uint8), size=0.5, position=(0.8, 0.8))
    assert out[:26, :26].max() == 0 and out.max() == 255
    assert tag_box(out.shape, size=0.5, position=(0.8, 0.8))[2:] == (32, 32)


def test_tag_bitmap_fallback_warns_and_scales():
    with pytest.warns(UserWarning, match="FreeType"):
        alpha, _, _ = confounders._glyph("R", 24, scalable=False)
    assert 12 <= alpha.shape[0] <= 24 and alpha.max() == 255 and set(np.unique(alpha)) == {0, 255}


def test_tag_other_letter_differs():
    image = np.zeros((64, 64, 3), np.uint8)
    assert not np.array_equal(tag(image, size=0.3), tag(image, letter="L", size=0.3))


# --- lowpass ---------------------------------------------------------------------------------------

def test_lowpass_removes_high_frequencies():
    image = _random((64, 64, 3))
    out = lowpass(image, diameter=0.5)
    kept = confounders._ellipse(64, 64, 0.5)

    def outside_energy(x):
        spectrum = np.fft.fftshift(np.fft.fft2(x[..., 0].astype(np.float64) - x[..., 0].mean()))
        return (np.abs(spectrum[~kept]) ** 2).sum()

    # Rounding to uint8 leaves ~1/12 grey level^2 of white noise, ~3% of it outside.
    assert outside_energy(out) < 1e-3 * outside_energy(image)
    assert out.min() >= 0 and out.max() <= 255 and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_lowpass_keeps_a_constant_image_and_low_frequencies():
    constant = np.full((40, 56, 3), 137, np.uint8)
    np.testing.assert_array_equal(lowpass(constant), constant)
    yy = np.arange(64)[:, None] * np.ones((1, 64))
    smooth = np.repeat(np.rint(120 + 60 * np.cos(2 * np.pi * 2 * yy / 64)).astype(np.uint8)[..., None], 3, -1)
    assert np.abs(lowpass(smooth).astype(int) - smooth).max() <= 1


def test_lowpass_smaller_diameter_blurs_more():
    image = _random((64, 64, 3))
    wide, narrow = lowpass(image, diameter=0.8), lowpass(image, diameter=0.2)
    assert narrow.astype(float).std() < wide.astype(float).std() < image.astype(float).std()


def test_lowpass_matches_the_paper_code():
    out = lowpass(_structured(), diameter=500 / 1024)[..., 0].astype(float)
    # within 1.5 grey levels: their PIL-drawn ellipse sits half a pixel off the zero frequency.
    assert out[30, 36] == pytest.approx(135.2641, abs=1.5)
    assert out[5, 5] == pytest.approx(69.5483, abs=1.5)
    # theirs truncates (mean 452534 / 4096 = 110.482); we round: ~0.5 higher.
    assert out.mean() == pytest.approx(452534 / 4096 + 0.5, abs=0.05)
    assert out.mean() == pytest.approx(_structured().mean(), abs=0.05)


# --- noise -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("photons, ref_std", [(2e7, 1.8299), (1.5e7, 2.0995), (1e6, 8.0017)])
def test_noise_matches_the_paper_code(photons, ref_std):
    out = noise(np.full((128, 128, 3), 128, np.uint8), photons=photons, seed=0)[..., 0].astype(float)
    assert out.mean() == pytest.approx(128.0, abs=0.1)
    assert out.std() == pytest.approx(ref_std, rel=0.03)


def test_noise_keeps_the_mean_and_grows_as_photons_fall():
    image = _structured()
    diffs = [noise(image, photons=p, seed=0).astype(float) - image for p in (1e8, 1e7, 1e6)]
    assert all(abs(d.mean()) < 0.2 for d in diffs)
    stds = [d.std() for d in diffs]
    assert 0 < stds[0] < stds[1] < stds[2]


# --- select ----------------------------------------------------------------------------------------

def test_select_counts_positives_only():
    labels = np.array([0, 1] * 25 + [1] * 10)  # 35 positives
    for fraction, expected in [(0.0, 0), (0.1, 4), (0.2, 7), (0.5, 18), (0.8, 28), (1.0, 35)]:
        chosen = select(labels, fraction, seed=3)
        assert chosen.dtype == bool and chosen.shape == labels.shape
        assert chosen.sum() == expected == round(fraction * 35)
        assert not chosen[labels != 1].any()


def test_select_other_positive_class_seeds_and_nesting():
    labels = np.array([0, 1, 2] * 20)
    chosen = select(labels, 0.5, positive=2, seed=0)
    assert chosen.sum() == 10 and (labels[chosen] == 2).all()
    assert not np.array_equal(select(labels, 0.5, seed=0), select(labels, 0.5, seed=1))
    np.testing.assert_array_equal(select(labels, 0.5, seed=4), select(labels, 0.5, seed=4))
    assert not (select(labels, 0.2, seed=4) & ~select(labels, 0.5, seed=4)).any()


def test_select_errors():
    with pytest.raises(ValueError, match=r"`labels` must be a 1-D .*argmax"):
        select(np.eye(3, dtype=int), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"`fraction` must be a number in \[0.0, 1.0\]. Received: fraction=1.5"):
        select(np.array([0, 1]), 1.5, seed=0)


# --- check, apply, confound_batch --------------------------------------------------------------------

def test_check_fills_defaults():
    spec = check({"kind": "tag", "fraction": 0.5, "letter": "L"})
    assert spec == {"kind": "tag", "fraction": 0.5, "letter": "L", "size": 0.0625,
                    "position": [0.1953125, 0.1953125]}
    assert check({"kind": "noise", "fraction": 1}) == {"kind": "noise", "fraction": 1.0, "photons": 1.5e7}
    assert check({"kind": "lowpass", "fraction": 0.0}) == {"kind": "lowpass", "fraction": 0.0, "diameter": 0.48828125}
    assert check(check({"kind": "tag", "fraction": 0.2})) == check({"kind": "tag", "fraction": 0.2})


@pytest.mark.parametrize("spec, message", [
    (["tag"], r"`confounder` must be a mapping"),
    ({"fraction": 0.5}, r"`confounder` must set `kind`"),
    ({"kind": "tag"}, r"`confounder` must set `fraction`"),
    ({"kind": "tags", "fraction": 0.5}, r"`confounder` must be one of \['tag', 'lowpass', 'noise'\]. "
                                        r"Received: confounder='tags'. Did you mean 'tag'\?"),
    ({"kind": "tag", "fraction": 1.2}, r"`confounder.fraction` must be a number in \[0.0, 1.0\]"),
    ({"kind": "tag", "fraction": True}, r"`confounder.fraction` must be a number"),
    ({"kind": "tag", "fraction": 0.5, "diameter": 0.3}, r"Unknown `confounder` options \['diameter'\] for kind "
                                                        r"'tag'. Valid options: \['letter', 'position', 'size'\]"),
    ({"kind": "noise", "fraction": 0.5, "seed": 1}, r"The seed comes from the run"),
    ({"kind": "noise", "fraction": 0.5, "photons": 0}, r"`photons` must be a number > 0.0. Received: photons=0"),
    ({"kind": "lowpass", "fraction": 0.5, "diameter": 3}, r"`diameter` must be a number in \(0.0, 2.0\]"),
    ({"kind": "tag", "fraction": 0.5, "letter": ""}, r"`letter` must be a non-empty string"),
    ({"kind": "tag", "fraction": 0.5, "position": [0.5]}, r"`position` must be a pair \(x, y\)"),
    ({"kind": "tag", "fraction": 0.5, "size": 0}, r"`size` must be a number in \(0.0, 1.0\]"),
])
def test_check_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        check(spec)


def test_apply_errors():
    with pytest.raises(ValueError, match=r"`image` must be a uint8 RGB array of shape \(H, W, 3\). .*float32"):
        apply("lowpass", np.zeros((8, 8, 3), np.float32), seed=0)
    with pytest.raises(ValueError, match=r"`image` must be .*shape=\(8, 8\)"):
        apply("noise", np.zeros((8, 8), np.uint8), seed=0)
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0"):
        apply("noise", np.zeros((8, 8, 3), np.uint8), seed=-1)


def test_confound_batch_per_image_seeds_and_where():
    images = np.stack([np.full((16, 16, 3), 100, np.uint8)] * 3)
    out = confound_batch(images, "noise", seed=7, photons=1e6)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out[0], out[1])  # a seed per image
    np.testing.assert_array_equal(out[2], noise(images[2], photons=1e6, seed=image_seed(7, 2)))
    seeds = np.array([11, 11, 12])
    by_seed = confound_batch(images, "noise", seed=seeds, where=np.array([True, True, False]), photons=1e6)
    np.testing.assert_array_equal(by_seed[0], by_seed[1])
    np.testing.assert_array_equal(by_seed[2], images[2])
    np.testing.assert_array_equal(confound_batch(images, "tag", seed=0, size=0.5)[1], tag(images[1], size=0.5))


def test_confound_batch_errors():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"`images` must be a uint8 batch"):
        confound_batch(images[0], "tag", seed=0)
    with pytest.raises(ValueError, match=r"`seed` must be an int >= 0 or a non-negative int array of shape \(2,\)"):
        confound_batch(images, "noise", seed=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"`where` must be a bool array of shape \(2,\)"):
        confound_batch(images, "noise", seed=0, where=np.array([1, 0]))


def test_image_seed():
    assert image_seed(0, 1) != image_seed(0, 2) != image_seed(1, 2)
    assert image_seed(3, np.int64(4)) == image_seed(3, 4)
    assert 0 <= image_seed(0, 0) < 2 ** 32
