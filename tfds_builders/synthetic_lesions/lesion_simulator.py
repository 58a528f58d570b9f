"""Plain-numpy simulator of B-mode breast-ultrasound images with one lesion.

The simulator imitates the benign-vs-malignant task of the Breast Ultrasound Images
dataset (BUSI, Al-Dhabyani et al. 2020) closely enough for pipelines, models and
statistics to be exercised offline. It is not a physical (wave-equation) simulation:
it draws a tissue reflectivity map, inserts a lesion, applies the lesion's posterior
acoustic feature and depth attenuation, and forms fully developed speckle by
filtering complex Gaussian scatterers with a point-spread function (so the echo
envelope is Rayleigh-distributed), followed by log compression as on a scanner.

**Geometry and units.** An image is a square linear-array view of
`FIELD_OF_VIEW_MM` x `FIELD_OF_VIEW_MM` (width x depth); row 0 is the skin. Every
length in a params dict is in millimetres and every angle in degrees, so the same
lesion can be rendered at any pixel size.

**What separates the classes.** Each lesion has a latent malignancy score
`malignancy_score` ~ Normal(-1, 1) for benign and Normal(+1, 1) for malignant
lesions (the classes overlap, so an oracle that sees the score reaches an expected
AUC of Phi(sqrt(2)) = 0.92, not 1.0). Every suspicious feature is the score plus its
own noise, mapped to the feature's range, following the BI-RADS ultrasound lexicon:

- shape and orientation: `aspect_ratio` (height / width) about 0.6 ("wider than
  tall", parallel, benign) to about 1.1 ("taller than wide", malignant);
- margin: `lobulation` (smooth oval vs macrolobulated), `spiculation` and
  `num_spicules` (spiculated), `margin_blur_mm` (circumscribed vs indistinct) and
  `halo` (echogenic rim);
- echo pattern: `internal_echo` (anechoic cyst-like vs hypoechoic solid) and
  `heterogeneity`;
- posterior features: `posterior_attenuation` in 1/mm of lesion traversed;
  negative values brighten the tissue behind the lesion (enhancement, cysts),
  positive values darken it (shadowing, carcinomas).

Features that do not depend on the class (size, depth, position, tilt, tissue
layering, gain) vary independently, so a model must look at the right cues.

Example:
    >>> import numpy as np
    >>> image, params = simulate_case(np.random.default_rng(0), malignant=True, size=64)
    >>> image.shape, image.dtype
    ((64, 64, 3), dtype('uint8'))
    >>> params["malignant"]
    True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np

FIELD_OF_VIEW_MM = 40.0
"""Width and depth, in mm, shown by every image (a 4 cm linear-array view)."""

MALIGNANT_PREVALENCE = 0.30
"""Probability that a simulated patient's lesion is malignant (BUSI: 210 / 780)."""

IMAGES_PER_PATIENT_PROBS = {1: 0.65, 2: 0.22, 3: 0.13}
"""Distribution of the number of images (views) per patient: mean 1.48."""

_LATENT_MEAN = 1.0  # malignancy_score ~ Normal(+-_LATENT_MEAN, 1).
_FEATURE_NOISE = 0.6  # Standard deviation of each feature's own noise around the score.
_DYNAMIC_RANGE_DB = 40.0


@dataclasses.dataclass(frozen=True)
class LesionParams:
    """Properties of one lesion, shared by every image of it.

    Attributes:
        malignant: The class label.
        malignancy_score: Latent score that drives every suspicious feature; about
            N(-1, 1) for benign and N(+1, 1) for malignant lesions.
        width_mm: Lesion width (axis parallel to the skin before tilt), 5-22 mm.
        aspect_ratio: Height / width, 0.35-1.6; > 1 means taller than wide.
        tilt_deg: Rotation of the long axis from the skin line, degrees.
        lobulation: Relative amplitude of 2-5 smooth undulations of the boundary,
            0-0.2 (0: smooth oval).
        spiculation: Relative length of thin spicules, 0-0.6 (0: none).
        num_spicules: Number of spicules, 3-14.
        margin_blur_mm: Width of the boundary transition, 0.15-1.2 mm
            (small: circumscribed; large: indistinct).
        halo: Extra echogenicity of a thick rim around the lesion, 0-0.8
            (relative to the surrounding tissue).
        internal_echo: Mean echogenicity (backscattered power) inside the lesion
            relative to fat, 0.01 (anechoic, -20 dB) to 0.25 (hypoechoic solid, -6 dB).
        heterogeneity: Standard deviation of the log internal echogenicity, 0.1-0.8.
        posterior_attenuation: Extra attenuation per mm of lesion traversed, in
            1/mm, about -0.12 (enhancement) to +0.16 (shadowing).
        center_x_mm: Lateral position of the centre, mm from the image centre.
        center_depth_mm: Depth of the centre below the skin, mm.
        shape_phases: Phases (radians) that fix the boundary's undulations and
            spicule directions, so every view shows the same lesion.
    """

    malignant: bool
    malignancy_score: float
    width_mm: float
    aspect_ratio: float
    tilt_deg: float
    lobulation: float
    spiculation: float
    num_spicules: int
    margin_blur_mm: float
    halo: float
    internal_echo: float
    heterogeneity: float
    posterior_attenuation: float
    center_x_mm: float
    center_depth_mm: float
    shape_phases: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class TissueParams:
    """Patient-specific breast anatomy and scanner settings.

    Attributes:
        skin_mm: Thickness of the bright skin line, 1-2.5 mm.
        fat_mm: Depth of the subcutaneous-fat / fibroglandular boundary, 4-12 mm.
        gland_mm: Depth of the fibroglandular / retromammary boundary, 22-32 mm.
        muscle_mm: Depth of the pectoralis muscle's top, 30-38 mm.
        gland_echo: Fibroglandular echogenicity (backscattered power) relative to
            fat, 3-8.
        attenuation_db_per_mm: Residual depth attenuation after time-gain
            compensation, 0.05-0.25 dB/mm.
        gain_db: Display gain offset, -4 to +4 dB.
    """

    skin_mm: float
    fat_mm: float
    gland_mm: float
    muscle_mm: float
    gland_echo: float
    attenuation_db_per_mm: float
    gain_db: float


@dataclasses.dataclass(frozen=True)
class Patient:
    """One simulated patient: a lesion, an anatomy and a number of views.

    Attributes:
        index: Position of the patient in the cohort, 0-based.
        patient_id: Text identifier, `SYN` followed by four digits.
        lesion: The lesion, shared by all views.
        tissue: The anatomy and scanner settings, shared by all views.
        num_images: Number of views (1-3) of the lesion.
        seed: Seed from which each view's pose, texture and speckle are derived.
    """

    index: int
    patient_id: str
    lesion: LesionParams
    tissue: TissueParams
    num_images: int
    seed: tuple[int, ...]


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def sample_lesion(rng: np.random.Generator, malignant: bool) -> LesionParams:
    """Draws a lesion whose suspicious features follow a latent malignancy score.

    Args:
        rng: Source of randomness.
        malignant: Class of the lesion.

    Returns:
        The lesion's parameters (units and ranges in `LesionParams`).
    """
    score = float(rng.normal(_LATENT_MEAN if malignant else -_LATENT_MEAN, 1.0))

    def feature() -> float:
        return score + float(rng.normal(0.0, _FEATURE_NOISE))

    return LesionParams(
        malignant=bool(malignant),
        malignancy_score=score,
        width_mm=float(np.clip(rng.lognormal(np.log(11.0), 0.3), 5.0, 22.0)),
        aspect_ratio=float(np.clip(np.exp(0.3 * feature() - 0.22), 0.35, 1.6)),
        tilt_deg=float(rng.normal(0.0, 10.0)),
        lobulation=0.2 * _sigmoid(1.5 * feature() - 0.5),
        spiculation=0.8 * _sigmoid(2.0 * feature() - 1.5),
        num_spicules=int(rng.integers(3, 15)),
        margin_blur_mm=0.15 + 1.05 * _sigmoid(1.5 * feature() - 0.5),
        halo=0.8 * _sigmoid(2.0 * feature() - 2.0),
        internal_echo=float(np.exp(np.log(0.01) + np.log(25.0) * _sigmoid(1.5 * feature() + 1.0))),
        heterogeneity=0.1 + 0.7 * _sigmoid(feature()),
        posterior_attenuation=float(-0.08 + 0.18 * _sigmoid(1.5 * feature())),
        center_x_mm=float(rng.uniform(-9.0, 9.0)),
        center_depth_mm=float(rng.uniform(12.0, 22.0)),
        shape_phases=tuple(float(p) for p in rng.uniform(0.0, 2 * np.pi, size=20)),
    )


def sample_tissue(rng: np.random.Generator) -> TissueParams:
    """Draws a patient's anatomy and scanner settings (ranges in `TissueParams`).

    Args:
        rng: Source of randomness.

    Returns:
        The tissue parameters.
    """
    return TissueParams(
        skin_mm=float(rng.uniform(1.0, 2.5)),
        fat_mm=float(rng.uniform(4.0, 12.0)),
        gland_mm=float(rng.uniform(22.0, 32.0)),
        muscle_mm=float(rng.uniform(30.0, 38.0)),
        gland_echo=float(rng.uniform(3.0, 8.0)),
        attenuation_db_per_mm=float(rng.uniform(0.05, 0.25)),
        gain_db=float(rng.uniform(-4.0, 4.0)),
    )


def _smooth(field: np.ndarray, sigma_y: float, sigma_x: float) -> np.ndarray:
    """Gaussian filter (sigmas in pixels) by FFT, periodic boundaries."""
    ky = np.fft.fftfreq(field.shape[0])[:, None]
    if np.iscomplexobj(field):
        kx = np.fft.fftfreq(field.shape[1])[None, :]
        kernel = np.exp(-2.0 * np.pi**2 * ((ky * sigma_y) ** 2 + (kx * sigma_x) ** 2))
        return np.fft.ifft2(np.fft.fft2(field) * kernel)
    kx = np.fft.rfftfreq(field.shape[1])[None, :]
    kernel = np.exp(-2.0 * np.pi**2 * ((ky * sigma_y) ** 2 + (kx * sigma_x) ** 2))
    return np.fft.irfft2(np.fft.rfft2(field) * kernel, s=field.shape)


def _random_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Smooth Gaussian random field with zero mean and unit variance."""
    field = _smooth(rng.standard_normal(shape), sigma_px, sigma_px)
    return (field - field.mean()) / (field.std() + 1e-12)


def _wavy(rng: np.random.Generator, x_mm: np.ndarray, depth_mm: float, amp_mm: float) -> np.ndarray:
    """Depth (mm) of a tissue boundary that undulates across the image."""
    wavelength = rng.uniform(15.0, 45.0, size=2)
    phase = rng.uniform(0.0, 2 * np.pi, size=2)
    return depth_mm + amp_mm * (
        np.sin(2 * np.pi * x_mm / wavelength[0] + phase[0])
        + 0.5 * np.sin(2 * np.pi * x_mm / wavelength[1] + phase[1])
    )


def _lesion_mask(
    lesion: LesionParams, x_mm: np.ndarray, y_mm: np.ndarray, pose: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Soft lesion mask in [0, 1] and the normalised distance outside the boundary."""
    width = lesion.width_mm * pose["scale"]
    semi_x = width / 2.0
    semi_y = width * lesion.aspect_ratio / 2.0
    angle = np.deg2rad(lesion.tilt_deg + pose["tilt_deg"])
    dx = x_mm - (lesion.center_x_mm + pose["shift_x_mm"])
    dy = y_mm - (lesion.center_depth_mm + pose["shift_depth_mm"])
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / semi_x
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / semi_y
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    phases = lesion.shape_phases
    boundary = np.ones_like(theta)
    for k, harmonic in enumerate(range(2, 6)):
        boundary += lesion.lobulation / (1 + 0.5 * k) * np.cos(harmonic * theta + phases[k])
    for j in range(lesion.num_spicules):
        direction = phases[4 + j] if 4 + j < len(phases) else j * 2 * np.pi / lesion.num_spicules
        gap = (theta - direction + np.pi) % (2 * np.pi) - np.pi
        boundary += lesion.spiculation * (0.6 + 0.4 * np.cos(3 * direction)) * np.exp(
            -0.5 * (gap / 0.08) ** 2
        )
    mean_semi = np.sqrt(semi_x * semi_y)
    distance_mm = (rho - boundary) * mean_semi  # > 0 outside, approximate mm.
    blur = lesion.margin_blur_mm
    mask = 1.0 / (1.0 + np.exp(np.clip(distance_mm / (0.35 * blur), -50, 50)))
    return mask, distance_mm


def render_image(
    rng: np.random.Generator,
    lesion: LesionParams,
    tissue: TissueParams,
    size: int = 128,
) -> tuple[np.ndarray, dict[str, float]]:
    """Renders one B-mode view of a lesion with a fresh pose, texture and speckle.

    The lesion's outline is not returned; `render_view` returns it as well.

    Args:
        rng: Source of randomness for this view (pose, texture, speckle).
        lesion: The lesion, e.g. from `sample_lesion`.
        tissue: The anatomy, e.g. from `sample_tissue`.
        size: Image height and width in pixels (>= 16). The field of view is always
            `FIELD_OF_VIEW_MM`, so the pixel spacing is `FIELD_OF_VIEW_MM / size` mm.

    Returns:
        A tuple `(image, pose)`: `image` is uint8 of shape (size, size, 3), one
        greyscale image replicated to three channels, values 0-255; `pose` holds this
        view's `shift_x_mm`, `shift_depth_mm` (+-3 mm), `tilt_deg` (+-8 degrees,
        added to the lesion's tilt) and `scale` (0.9-1.1, probe pressure and plane).

    Raises:
        ValueError: If `size` is smaller than 16.
    """
    image, _, pose = render_view(rng, lesion, tissue, size)
    return image, pose


def render_view(
    rng: np.random.Generator,
    lesion: LesionParams,
    tissue: TissueParams,
    size: int = 128,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Renders one view as `render_image` does and returns the lesion's exact outline.

    Args:
        rng: Source of randomness for this view (pose, texture, speckle); the same
            state gives the same image as `render_image`.
        lesion: The lesion, e.g. from `sample_lesion`.
        tissue: The anatomy, e.g. from `sample_tissue`.
        size: Image height and width in pixels (>= 16).

    Returns:
        A tuple `(image, lesion_mask, pose)`: `image` and `pose` as in
        `render_image`; `lesion_mask` is bool of shape (size, size), True where the
        pixel's centre lies inside the lesion boundary (signed distance < 0, where
        the soft mask that blends the lesion into the tissue exceeds 0.5), computed
        from the very boundary the image was rendered with. Spicules count as lesion;
        the echogenic halo outside the boundary does not.

    Raises:
        ValueError: If `size` is smaller than 16.
    """
    if size < 16:
        raise ValueError(f"`size` must be at least 16 pixels. Received: size={size}")
    pixel_mm = FIELD_OF_VIEW_MM / size
    pose = {
        "shift_x_mm": float(rng.uniform(-3.0, 3.0)),
        "shift_depth_mm": float(rng.uniform(-3.0, 3.0)),
        "tilt_deg": float(rng.uniform(-8.0, 8.0)),
        "scale": float(rng.uniform(0.9, 1.1)),
    }
    coords = (np.arange(size) + 0.5) * pixel_mm
    y_mm = coords[:, None] * np.ones((1, size))
    x_mm = np.ones((size, 1)) * (coords[None, :] - FIELD_OF_VIEW_MM / 2.0)
    x_line = x_mm[0]

    # Tissue reflectivity (echogenicity, fat = 1) in anatomical layers.
    skin = _wavy(rng, x_line, tissue.skin_mm, 0.15)
    fat_end = _wavy(rng, x_line, tissue.fat_mm, 1.5)
    gland_end = _wavy(rng, x_line, tissue.gland_mm, 2.0)
    muscle = np.maximum(_wavy(rng, x_line, tissue.muscle_mm, 1.0), gland_end + 1.5)
    lobules = _random_field(rng, (size, size), 1.6 / pixel_mm)
    texture = _random_field(rng, (size, size), 0.6 / pixel_mm)
    echo = np.ones((size, size))
    gland = (y_mm >= fat_end) & (y_mm < gland_end)
    # Fibroglandular tissue is bright with dark fat lobules mixed in.
    echo = np.where(gland, tissue.gland_echo * np.where(lobules > 0.6, 0.45, 1.0), echo)
    # Subcutaneous fat: dark lobules separated by bright Cooper's ligaments.
    ligaments = np.exp(-(((lobules - 0.0) / 0.12) ** 2))
    echo = np.where((y_mm >= skin) & (y_mm < fat_end), 0.8 + 4.0 * ligaments, echo)
    striation = 1.0 + 3.0 * np.cos(2 * np.pi * (y_mm + 0.3 * x_mm) / 1.6) ** 8
    echo = np.where(y_mm >= muscle, 1.5 * striation, echo)
    echo = np.where(y_mm < skin, 12.0, echo)
    echo *= np.exp(0.35 * texture)

    # The lesion, its echogenic halo and its internal pattern.
    mask, distance_mm = _lesion_mask(lesion, x_mm, y_mm, pose)
    internal_texture = _random_field(rng, (size, size), 0.8 / pixel_mm)
    inner = lesion.internal_echo * np.exp(lesion.heterogeneity * internal_texture)
    rim = np.exp(-0.5 * (distance_mm - 1.0) ** 2) * (distance_mm > -0.5)
    halo = 1.0 + lesion.halo * rim
    echo = (echo * halo) * (1.0 - mask) + inner * mask

    # Posterior acoustic feature: attenuation proportional to lesion path length,
    # blurred laterally by the beam; then residual depth attenuation.
    path_mm = np.cumsum(mask, axis=0) * pixel_mm
    padded = np.pad(path_mm, ((0, 0), (size, size)), mode="edge")  # No wrap-around.
    path_mm = _smooth(padded, 0.0, 0.6 / pixel_mm)[:, size:-size]
    log_gain = -lesion.posterior_attenuation * path_mm
    log_gain -= tissue.attenuation_db_per_mm * y_mm * np.log(10.0) / 20.0
    amplitude = np.sqrt(echo) * np.exp(log_gain)

    # Fully developed speckle: complex Gaussian scatterers through the PSF.
    scatterers = rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))
    intensity = np.abs(_smooth(amplitude * scatterers, 0.25 / pixel_mm, 0.55 / pixel_mm)) ** 2
    # The scanner's image is finer than `size`: average the intensity over a pixel.
    intensity = np.maximum(_smooth(intensity, 0.6, 0.6), 0.0) + 1e-12

    # Log compression with a fixed dynamic range, the top 1% near white.
    level_db = 10.0 * np.log10(intensity)
    reference_db = np.percentile(level_db, 99.0) - tissue.gain_db
    grey = (level_db - (reference_db - _DYNAMIC_RANGE_DB)) / _DYNAMIC_RANGE_DB
    grey = np.clip(grey, 0.0, 1.0) ** 2.2 * 255.0
    image = np.round(grey).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2), distance_mm < 0.0, pose


def simulate_case(
    rng: np.random.Generator, malignant: bool, size: int = 128
) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulates one image of a new lesion in a new patient.

    Args:
        rng: Source of randomness; the same generator state gives the same case.
        malignant: Class of the lesion.
        size: Image height and width in pixels (default 128; field of view 40 mm).

    Returns:
        A tuple `(image, params)`: `image` is uint8 of shape (size, size, 3);
        `params` merges the `LesionParams`, `TissueParams` and view pose fields
        (the pose fields prefixed `pose_`), in mm, degrees and 1/mm.

    Example:
        >>> image, params = simulate_case(np.random.default_rng(1), False, size=32)
        >>> image.shape, params["malignant"]
        ((32, 32, 3), False)
    """
    lesion = sample_lesion(rng, malignant)
    tissue = sample_tissue(rng)
    image, pose = render_image(rng, lesion, tissue, size)
    return image, case_params(lesion, tissue, pose)


def case_params(
    lesion: LesionParams, tissue: TissueParams, pose: dict[str, float]
) -> dict[str, Any]:
    """Flattens a lesion, an anatomy and a view pose into one params dict."""
    params = dataclasses.asdict(lesion)
    params.pop("shape_phases")
    params.update(dataclasses.asdict(tissue))
    params.update({f"pose_{name}": value for name, value in pose.items()})
    return params


def sample_patient(index: int, seed: int) -> Patient:
    """Draws patient `index` of a cohort; depends only on `(seed, index)`.

    Args:
        index: Position of the patient in the cohort, >= 0.
        seed: Cohort seed.

    Returns:
        The patient: class drawn with probability `MALIGNANT_PREVALENCE`, number of
        views from `IMAGES_PER_PATIENT_PROBS`, lesion and anatomy.
    """
    patient_seed = (int(seed), int(index))
    rng = np.random.default_rng(patient_seed)
    malignant = bool(rng.random() < MALIGNANT_PREVALENCE)
    counts = list(IMAGES_PER_PATIENT_PROBS)
    num_images = int(rng.choice(counts, p=[IMAGES_PER_PATIENT_PROBS[c] for c in counts]))
    return Patient(
        index=index,
        patient_id=f"SYN{index:04d}",
        lesion=sample_lesion(rng, malignant),
        tissue=sample_tissue(rng),
        num_images=num_images,
        seed=patient_seed,
    )


def render_patient_image(
    patient: Patient, view: int, size: int = 128
) -> tuple[np.ndarray, dict[str, Any]]:
    """Renders view `view` of a patient; depends only on the patient and `view`.

    Args:
        patient: The patient, from `sample_patient`.
        view: Index of the view, 0 <= view < patient.num_images.
        size: Image height and width in pixels.

    Returns:
        `(image, params)` as in `simulate_case`.

    Raises:
        ValueError: If `view` is out of range.
    """
    image, _, params = render_patient_view(patient, view, size)
    return image, params


def render_patient_view(
    patient: Patient, view: int, size: int = 128
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Renders view `view` of a patient with its exact lesion outline.

    Args:
        patient: The patient, from `sample_patient`.
        view: Index of the view, 0 <= view < patient.num_images.
        size: Image height and width in pixels.

    Returns:
        `(image, lesion_mask, params)`: `image` and `params` are those of
        `render_patient_image`; `lesion_mask` is bool (size, size), see `render_view`.

    Raises:
        ValueError: If `view` is out of range.
    """
    if not 0 <= view < patient.num_images:
        raise ValueError(
            f"`view` must be in [0, {patient.num_images}) for patient {patient.patient_id}. "
            f"Received: view={view}"
        )
    rng = np.random.default_rng(patient.seed + (view,))
    image, lesion_mask, pose = render_view(rng, patient.lesion, patient.tissue, size)
    return image, lesion_mask, case_params(patient.lesion, patient.tissue, pose)


def simulate_cohort(
    num_patients: int, seed: int, size: int = 128
) -> Iterator[tuple[Patient, int, np.ndarray, dict[str, Any]]]:
    """Yields every view of every patient of a cohort, in patient then view order.

    Args:
        num_patients: Number of patients, >= 1.
        seed: Cohort seed.
        size: Image height and width in pixels.

    Yields:
        Tuples `(patient, view, image, params)`.
    """
    for index in range(num_patients):
        patient = sample_patient(index, seed)
        for view in range(patient.num_images):
            image, params = render_patient_image(patient, view, size)
            yield patient, view, image, params
