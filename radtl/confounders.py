"""Synthetic confounders of "Source Matters" as deterministic, seeded image transforms.

A confounder is an image feature that correlates with the label in training but not in
deployment. Juodelyte et al. inject one of three synthetic confounders into a fraction p of
the positive-class training images, then test on copies where all negative images carry it
(the correlation inverted): a model that learnt the shortcut loses AUC there. This module
holds the transforms and the choice of images; `radtl.train` wires them into a run.

Each transform takes one uint8 RGB image `(H, W, 3)` and returns a new uint8 image of the
same shape. Sizes are fractions of the image, so a setting means the same at any
resolution; the paper's absolute values (NIH CXR14, 1024 x 1024 px) map as follows:

* `tag` (`include_tag.py`): "R", sans-serif, font 64 px with its corner at (x, y) =
  (200, 200) -> `size` = 64/1024, `position` = (200/1024, 200/1024).
* `lowpass` (`include_lowpass.py`): keep a centred ellipse of e = 500 px of the shifted
  2-D FFT -> `diameter` = 500/1024 of each axis.
* `noise` (`include_noise.py`): Poisson noise of 1.5e7 photons per pixel on the confounded
  images (2e7 on all images first), at 512 x 512 px -> `photons` = 1.5e7.

The paper's thyroid setting (font 32 at (70, 100)) is `tag(size=32/S, position=(70/W, 100/H))`
for images of S = min(H, W) px. The photon count is per pixel at the resolution the
transform sees: the paper resized to 512 x 512 first.

Pure numpy + Pillow: no TensorFlow import.

Reference:
    Juodelyte, Lu, Jiménez-Sánchez, Bottazzi, Ferrante, Cheplygina. "Source Matters:
    Source Dataset Impact on Model Robustness in Medical Imaging". arXiv:2403.04484, 2024.
    Code: github.com/DovileDo/source-matters (commit d0f7547).

Example:

>>> import numpy as np
>>> image = np.full((64, 64, 3), 100, np.uint8)
>>> spec = check({"kind": "tag", "fraction": 0.5})
>>> spec["size"], spec["letter"]
(0.0625, 'R')
>>> int(apply("tag", image, seed=0, size=0.25).max())
255
>>> int(select(np.array([0, 1, 1, 0, 1, 1]), 0.5, seed=0).sum())
2
"""
from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radtl import _checks
from radtl.registry import Registry

__all__ = ["KINDS", "tag", "tag_box", "lowpass", "noise", "apply", "check", "select", "confound_batch",
           "image_seed"]

KINDS = Registry("confounder")
"""The confounder kinds: name -> transform `f(image, /, **options)` (`seed=` where it draws)."""

# include_noise.py: linear attenuation of water and air (1/mm) and the display window (HU).
_MU_WATER = 0.1837
_MU_AIR = 0.1662
_WINDOW = (-1200.0, 800.0)


def _check_image(image, name="image") -> np.ndarray:
    """Returns `image` as an ndarray after checking it is uint8 of shape (H, W, 3)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise ValueError(f"`{name}` must be a uint8 RGB array of shape (H, W, 3). Received: {name} with "
                         f"dtype={array.dtype} and shape={array.shape}. Convert it with "
                         f"`np.clip(x, 0, 255).astype(np.uint8)` (and repeat a grey channel 3 times).")
    return array


def _grey(image: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in float64 (H, W), as `cv2.IMREAD_GRAYSCALE` and PIL's "L": exact for grey RGB."""
    return np.asarray(Image.fromarray(image).convert("L"), dtype=np.float64)


def _rgb(grey: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8 with the channel repeated (the paper's `np.tile(arr, 3)`)."""
    return np.repeat(grey[..., None], 3, axis=-1)


# --- tag -------------------------------------------------------------------------------------------

def _font(size_px: int, scalable: bool = True):
    """Pillow's built-in sans-serif (Aileron Regular) at `size_px`, or None without FreeType.

    `ImageFont.load_default(size=...)` is scalable from Pillow 10.1 when Pillow has FreeType;
    `scalable=False` forces the fallback (for tests).
    """
    if scalable:
        try:
            font = ImageFont.load_default(size=size_px)
        except (ImportError, OSError, TypeError):  # no FreeType, or Pillow < 10.1
            font = None
        if isinstance(font, ImageFont.FreeTypeFont):
            return font
    return None


def _glyph(letter: str, size_px: int, scalable: bool = True) -> tuple[np.ndarray, int, int]:
    """The letter's coverage (0-255, (h, w) uint8) and its offset (dx, dy) from the text anchor.

    The anchor is PIL's default "la" (left, ascender), as `ImageDraw.text((x, y), ...)` in
    `include_tag.py`. Without a scalable font the letter is drawn with Pillow's fixed bitmap
    font and scaled (nearest) to `size_px` high, with a warning.
    """
    font = _font(size_px, scalable)
    if font is not None:
        return _ink(font, letter, 1.0)
    warnings.warn("Pillow has no FreeType support (or is older than 10.1), so the confounder tag is drawn with "
                  "Pillow's fixed bitmap font scaled up (blocky edges). Install a Pillow built with FreeType "
                  "(`pip install --force-reinstall pillow`) for a smooth sans-serif letter.", stacklevel=3)
    bitmap = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    return _ink(bitmap, letter, size_px / (bitmap.getbbox(letter)[3] - bitmap.getbbox(letter)[1]))


def _ink(font, letter: str, scale: float) -> tuple[np.ndarray, int, int]:
    """Draws `letter` with `font`, scales it by `scale` (nearest) and crops it to its ink."""
    left, top, right, bottom = font.getbbox(letter)
    canvas = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(canvas).text((-left, -top), letter, font=font, fill=255)
    if scale != 1.0:
        canvas = canvas.resize((max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale))),
                               Image.NEAREST)
        left, top = round(left * scale), round(top * scale)
    ink = canvas.getbbox() or (0, 0, 1, 1)
    return np.asarray(canvas.crop(ink)), left + ink[0], top + ink[1]


def _check_tag(shape, letter, size, position) -> tuple[int, int, int]:
    """Checks tag options; returns (font size in px, x, y) for an image of `shape`."""
    if not isinstance(letter, str) or not letter.strip():
        raise ValueError(f"`letter` must be a non-empty string, e.g. 'R'. Received: letter={letter!r}")
    _checks.check_number("size", size, 0.0, 1.0, include_low=False)
    if (not isinstance(position, (tuple, list)) or len(position) != 2
            or any(isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1 for p in position)):
        raise ValueError(f"`position` must be a pair (x, y) of fractions in [0, 1] of the image width and "
                         f"height, e.g. (0.195, 0.195). Received: position={position!r}")
    height, width = shape[:2]
    size_px = max(1, round(size * min(height, width)))
    return size_px, round(position[0] * width), round(position[1] * height)


def _placed(shape, letter, size, position) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The letter's coverage cropped to the image and its box `(x0, y0, x1, y1)` in the image."""
    size_px, x, y = _check_tag(shape, letter, size, position)
    alpha, dx, dy = _glyph(letter, size_px)
    height, width = shape[:2]
    left, top = x + dx, y + dy
    x0, y0 = min(max(left, 0), width), min(max(top, 0), height)
    x1, y1 = max(min(left + alpha.shape[1], width), x0), max(min(top + alpha.shape[0], height), y0)
    return alpha[y0 - top:y1 - top, x0 - left:x1 - left], (x0, y0, x1, y1)


def tag_box(shape, *, letter: str = "R", size: float = 0.0625,
            position=(0.1953125, 0.1953125)) -> tuple[int, int, int, int]:
    """The pixel box `(x0, y0, x1, y1)` (x1, y1 exclusive) that `tag` draws into, clipped to the image.

    Useful as a "lesion mask" for the shortcut: a model that learnt the tag looks there.

    Args:
        shape: tuple. The image shape `(H, W, ...)`.
        letter, size, position: as `tag`.

    Returns:
        tuple of 4 ints; an empty box (x0 == x1 or y0 == y1) when the letter falls outside.
    """
    return _placed(shape, letter, size, position)[1]


@KINDS.register("tag")
def tag(image, /, *, letter: str = "R", size: float = 0.0625, position=(0.1953125, 0.1953125)) -> np.ndarray:
    """Draws a white sans-serif letter onto the image (the "tag" confounder).

    The letter is drawn as `include_tag.py` does, `ImageDraw.text((x, y), letter,
    fill="white")` with the text's left-ascender corner at (x, y), anti-aliased: pixels
    inside the strokes become 255, edge pixels blend towards 255, the rest is unchanged.
    The font is Pillow's built-in Aileron Regular (the paper: matplotlib's default
    sans-serif, DejaVu Sans), so it needs no font file. The tag draws no random numbers.

    Reference:
        Juodelyte et al., "Source Matters", arXiv:2403.04484, 2024 (`include_tag.py`).

    Args:
        image: uint8 array `(H, W, 3)`.
        letter: str. The text drawn. Defaults to "R".
        size: float in (0, 1]. Font size (em height) as a fraction of min(H, W), at least
            1 px. Defaults to 64/1024 = 0.0625 (the paper: 64 px on 1024 px CXR14 images);
            at 64 px that is a 4 px font, so small test images need a larger size.
        position: pair (x, y) of fractions in [0, 1] of the width and height: where the
            text's left-ascender corner goes. Defaults to 200/1024 each (the paper: (200, 200)).

    Returns:
        uint8 array `(H, W, 3)`, a new array.

    Example:

    >>> import numpy as np
    >>> tagged = tag(np.zeros((64, 64, 3), np.uint8), size=0.25, position=(0.5, 0.5))
    >>> bool(tagged[:32].any()), int(tagged.max())
    (False, 255)
    """
    image = _check_image(image)
    alpha, (x0, y0, x1, y1) = _placed(image.shape, letter, size, position)
    out = image.copy()
    a = alpha[..., None].astype(np.float64) / 255.0
    out[y0:y1, x0:x1] = np.rint(out[y0:y1, x0:x1] * (1.0 - a) + 255.0 * a).astype(np.uint8)
    return out


# --- lowpass ---------------------------------------------------------------------------------------

def _ellipse(height: int, width: int, diameter: float) -> np.ndarray:
    """Bool (H, W): frequencies kept, a centred ellipse of `diameter` * each axis in the shifted spectrum.

    Symmetric about the zero frequency (at index (H // 2, W // 2) after `fftshift`), so the
    filtered image is real; the zero frequency is always kept.
    """
    ky = (np.arange(height) - height // 2)[:, None] / (diameter * height / 2)
    kx = (np.arange(width) - width // 2)[None, :] / (diameter * width / 2)
    return ky ** 2 + kx ** 2 <= 1.0


@KINDS.register("lowpass")
def lowpass(image, /, *, diameter: float = 0.48828125) -> np.ndarray:
    """Removes the high spatial frequencies (the "low-pass" confounder).

    As `include_lowpass.py`: the image in greyscale (ITU-R 601-2 luma, exact for grey
    images), 2-D FFT, keep a centred ellipse of the shifted spectrum, inverse FFT, clip to
    [0, 255], the grey result repeated in the 3 channels. Two deliberate differences: the
    ellipse is centred exactly on the zero frequency (the paper's PIL-drawn ellipse sits
    half a pixel off it) and values are rounded, not truncated, so a constant image is
    returned unchanged. On 64 x 64 px noise the result is within 1 grey level of the
    paper's code everywhere but the few pixels its ellipse boundary changes (tested).
    The transform draws no random numbers.

    Reference:
        Juodelyte et al., "Source Matters", arXiv:2403.04484, 2024 (`include_lowpass.py`).

    Args:
        image: uint8 array `(H, W, 3)`.
        diameter: float in (0, 2]. The ellipse's diameters as fractions of the height
            and width: frequencies up to `diameter` * N / 2 cycles per image survive along
            an axis of N px (1 keeps the inscribed ellipse of the spectrum). Defaults to
            500/1024 (the paper: e = 500 px on 1024 px CXR14 images).

    Returns:
        uint8 array `(H, W, 3)` with equal channels.
    """
    image = _check_image(image)
    _checks.check_number("diameter", diameter, 0.0, 2.0, include_low=False)
    grey = _grey(image)
    spectrum = np.fft.fftshift(np.fft.fft2(grey))
    spectrum *= _ellipse(*grey.shape, diameter)
    filtered = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum)))
    return _rgb(np.rint(np.clip(filtered, 0.0, 255.0)).astype(np.uint8))


# --- noise -----------------------------------------------------------------------------------------

@KINDS.register("noise")
def noise(image, /, *, photons: float = 1.5e7, seed: int = 0) -> np.ndarray:
    """Adds Poisson photon noise as in a low-dose acquisition (the "noise" confounder).

    As `include_noise.py`: the image in greyscale, plus uniform [0, 1) quantisation noise;
    grey levels 0-255 mapped linearly to the window [-1200, 800] HU and on to attenuation
    mu = MU_WATER + HU * (MU_WATER - MU_AIR) / 1000 (MU_WATER = 0.1837, MU_AIR = 0.1662);
    counts drawn from Poisson(photons * exp(-mu)); mu re-estimated as -log(counts / photons);
    mapped back to HU, clipped to the window, to grey levels and truncated to uint8 (the
    truncation undoes the quantisation noise's +0.5 on average, so the mean is kept). The
    noise standard deviation is about 1.8 grey levels at 2e7 photons, 2.1 at 1.5e7 and 8 at
    1e6 (tested against the paper's code). The paper draws from two global
    `RandomState`s (666, 888) in file order; here each call draws from its own generator
    seeded by `seed`, so an image's noise does not depend on which images came before.

    Reference:
        Juodelyte et al., "Source Matters", arXiv:2403.04484, 2024 (`include_noise.py`).

    Args:
        image: uint8 array `(H, W, 3)`.
        photons: float > 0. Incident photons per pixel; fewer photons, more noise.
            Defaults to 1.5e7 (the paper's confounded images; all its images first got 2e7).
        seed: int >= 0. Seeds the quantisation and Poisson draws. Defaults to 0.

    Returns:
        uint8 array `(H, W, 3)` with equal channels.
    """
    image = _check_image(image)
    _checks.check_number("photons", photons, 0.0, include_low=False)
    _checks.check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    low, high = _WINDOW
    grey = _grey(image) + rng.uniform(0.0, 1.0, size=image.shape[:2])
    mu = (grey / 255.0 * (high - low) + low) * (_MU_WATER - _MU_AIR) / 1000.0 + _MU_WATER
    counts = rng.poisson(np.exp(-mu) * photons) / photons
    mu = -np.log(np.maximum(counts, 1e-8))
    hu = np.clip(1000.0 * (mu - _MU_WATER) / (_MU_WATER - _MU_AIR), low, high)
    return _rgb(((hu - low) / (high - low) * 255.0).astype(np.uint8))


# --- using them ------------------------------------------------------------------------------------

def _takes_seed(kind) -> bool:
    return "seed" in inspect.signature(KINDS.get(kind)).parameters


def _public_options(kind) -> dict:
    """The options of `kind` a config may set, with their defaults (private `_x` and `seed` left out)."""
    parameters = inspect.signature(KINDS.get(kind)).parameters.values()
    return {p.name: p.default for p in parameters
            if p.kind is p.KEYWORD_ONLY and p.name != "seed" and not p.name.startswith("_")}


def apply(kind: str, image, *, seed: int, **options) -> np.ndarray:
    """Applies the confounder `kind` to one image.

    Args:
        kind: str. A name in `KINDS`: "tag", "lowpass" or "noise".
        image: uint8 array `(H, W, 3)`.
        seed: int >= 0. Seeds the kinds that draw random numbers ("noise"); the others
            ignore it, so every kind is called the same way.
        **options: the kind's options (see `check`).

    Returns:
        uint8 array `(H, W, 3)`.
    """
    _check_kind_options(kind, options)
    _checks.check_int("seed", seed, 0)
    if _takes_seed(kind):
        options["seed"] = seed
    return KINDS.get(kind)(image, **options)


def _check_kind_options(kind, options) -> None:
    valid = _public_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        hint = (" The seed comes from the run (`seed=`), not the confounder config." if "seed" in unknown else "")
        raise ValueError(f"Unknown `confounder` options {unknown} for kind {KINDS.check_name(kind)!r}. Valid "
                         f"options: {sorted(valid)}. Received: confounder={options!r}.{hint}")


def check(spec) -> dict:
    """Validates a confounder config and returns it complete, with every option's default.

    The config is a mapping `{"kind": ..., "fraction": ..., **options}`: `kind` a name in
    `KINDS`, `fraction` in [0, 1] the share of positive-class training images that get it
    (see `select`), the rest options of that kind. Option values are checked by running the
    transform once on a tiny image, so they meet the transform's own checks.

    Args:
        spec: mapping, e.g. `{"kind": "tag", "fraction": 0.5, "letter": "L"}`.

    Returns:
        dict: `{"kind": str, "fraction": float, **options}` with all options of the kind
        (defaults filled in, tuples as lists) so the run config records what ran.

    Raises:
        ValueError: not a mapping, `kind` missing or unknown, `fraction` missing or outside
            [0, 1], an unknown option or a bad option value.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"`confounder` must be a mapping like {{'kind': 'tag', 'fraction': 0.5}}. "
                         f"Received: confounder={spec!r}")
    spec = dict(spec)
    for key in ("kind", "fraction"):
        if key not in spec:
            raise ValueError(f"`confounder` must set `{key}` (kind: one of {KINDS.names()}; fraction: the share "
                             f"of positive training images, in [0, 1]). Received: confounder={spec!r}")
    kind = KINDS.check_name(spec.pop("kind"))
    fraction = spec.pop("fraction")
    _checks.check_number("confounder.fraction", fraction, 0.0, 1.0)
    _check_kind_options(kind, spec)
    options = {**_public_options(kind), **spec}
    apply(kind, np.zeros((16, 16, 3), np.uint8), seed=0, **options)
    options = {name: list(value) if isinstance(value, tuple) else value for name, value in options.items()}
    return {"kind": kind, "fraction": float(fraction), **options}


def select(labels, fraction: float, *, positive: int = 1, seed: int) -> np.ndarray:
    """Which training images get the confounder: `fraction` of the positive class, none of the others.

    Exactly `round(fraction * n_positive)` positives (Python's round, as pandas'
    `DataFrame.sample(frac=...)` in the paper's scripts), the first ones of a seeded
    permutation of the positives, so a larger fraction at the same seed adds images.

    Args:
        labels: 1-D int array `(n,)` of class indices.
        fraction: float in [0, 1].
        positive: int. The class that carries the confounder. Defaults to 1.
        seed: int >= 0. Seeds the permutation.

    Returns:
        bool array `(n,)`, True where the image gets the confounder.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise ValueError(f"`labels` must be a 1-D array of integer class indices. Received: labels with "
                         f"dtype={labels.dtype} and shape={labels.shape}. For one-hot labels pass "
                         f"`labels.argmax(-1)`.")
    _checks.check_number("fraction", fraction, 0.0, 1.0)
    _checks.check_int("positive", positive, 0)
    _checks.check_int("seed", seed, 0)
    positives = np.flatnonzero(labels == positive)
    chosen = np.random.default_rng(seed).permutation(positives)[:round(fraction * positives.size)]
    mask = np.zeros(labels.shape, bool)
    mask[chosen] = True
    return mask


def image_seed(seed: int, index) -> int:
    """A per-image seed from a run seed and an image index (`np.random.SeedSequence([seed, index])`).

    Args:
        seed: int >= 0.
        index: int >= 0, e.g. the image's position in the training split.

    Returns:
        int in [0, 2**32).
    """
    _checks.check_int("seed", seed, 0)
    _checks.check_int("index", int(index) if isinstance(index, np.integer) else index, 0)
    return int(np.random.SeedSequence([seed, int(index)]).generate_state(1)[0])


def confound_batch(images, kind: str, *, seed, where=None, **options) -> np.ndarray:
    """Applies the confounder `kind` to a batch, each image with its own seed.

    For `tf.numpy_function`: `tf.numpy_function(lambda x, s, w: confound_batch(x, "noise",
    seed=s, where=w), [images, seeds, where], tf.uint8)`.

    Args:
        images: uint8 array `(B, H, W, 3)`.
        kind: str. A name in `KINDS`.
        seed: int >= 0, or int array `(B,)` of per-image seeds. An int gives image i the
            seed `image_seed(seed, i)`, so the same seed on another batch repeats the same
            noise; to give an image the same noise every epoch, as the paper's images
            written once to disk, pass `image_seed(run_seed, index_in_split)` per image.
        where: bool array `(B,)` or None. Only images where True are changed (None: all).
        **options: the kind's options.

    Returns:
        uint8 array `(B, H, W, 3)`, a new array.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"`images` must be a uint8 batch of shape (B, H, W, 3). Received: images with "
                         f"dtype={images.dtype} and shape={images.shape}.")
    n = images.shape[0]
    if np.ndim(seed) == 0:
        base = int(seed) if isinstance(seed, np.integer) else seed
        seeds = [image_seed(base, i) for i in range(n)]
    else:
        seeds = np.asarray(seed)
        if seeds.shape != (n,) or not np.issubdtype(seeds.dtype, np.integer) or (seeds < 0).any():
            raise ValueError(f"`seed` must be an int >= 0 or a non-negative int array of shape ({n},). "
                             f"Received: seed with shape={seeds.shape} and dtype={seeds.dtype}.")
        seeds = [int(s) for s in seeds]
    where = np.ones(n, bool) if where is None else np.asarray(where)
    if where.shape != (n,) or where.dtype != bool:
        raise ValueError(f"`where` must be a bool array of shape ({n},) or None. Received: where with "
                         f"shape={where.shape} and dtype={where.dtype}.")
    out = images.copy()
    for i in np.flatnonzero(where):
        out[i] = apply(kind, images[i], seed=seeds[i], **options)
    return out
