"""Reading one image file of a user's collection as the 8-bit RGB array radtl's datasets store.

`radtl data import` accepts PNG, JPEG and DICOM files. Every builder stores images as
uint8 RGB `(H, W, 3)`; `read_image` turns one file into that array and returns a
`Conversion` that records how, so the choice can be reported and reviewed. The file's
format is taken from its content (PNG/JPEG signature, or `DICM` at byte 128), not from
its name; a file named `.dcm` / `.dicom` is always read as DICOM.

Conversion rules:

* **8-bit PNG and JPEG** (Pillow modes 1, L, LA, P, RGB, RGBA, CMYK, ...): exactly what the
  RadImageNet builders do, `PIL.Image.open(path).convert("RGB")`: greyscale is
  replicated to 3 channels, alpha is dropped, palettes are expanded. No EXIF rotation.
  Method `"8-bit"`, source `"png8"` or `"jpeg"`.
* **16-bit greyscale PNG** (Pillow modes `I;16`, `I;16B`, `I`): a *percentile window*
  computed on the image itself, ``low, high = numpy.percentile(pixels, percentiles)``
  (default 0.5 and 99.5, linear interpolation), then
  ``out = rint(clip((x - low) / (high - low), 0, 1) * 255)`` replicated to RGB (`rint`
  rounds to the nearest integer, ties to even). Values <= `low` give 0 and values >=
  `high` give 255; when ``high == low`` (e.g. a constant image) values <= `low` give 0
  and values above it 255, so a constant image is all zeros. Method
  `"percentile-window"`, source `"png16"`.
* **16-bit colour or 16-bit grey+alpha PNG**: refused (`ImageReadError`). Pillow reads
  them only by silently dropping the low byte; convert such files to 8-bit RGB or to
  16-bit greyscale first.
* **DICOM** (read with `pydicom.dcmread`; single frame only, a multi-frame file is refused:
  export its frames as separate files):

  - greyscale (MONOCHROME1/2): the modality LUT is applied first
    (`pydicom.pixels.apply_modality_lut`: Rescale Slope/Intercept or a Modality LUT
    Sequence), then
      1. if the file holds WindowCenter and WindowWidth (the first value of each when
         multi-valued), the DICOM linear VOI function (PS3.3 C.11.2.1.2.1), with
         ``c`` the centre and ``w`` the width: values ``<= c - 0.5 - (w - 1) / 2`` give 0,
         values ``> c - 0.5 + (w - 1) / 2`` give 255, others
         ``rint(((x - (c - 0.5)) / (w - 1) + 0.5) * 255)``. Method `"dicom-window"`, its
         `window` holds these two edges (in modality units, e.g. HU).
         Only VOILUTFunction LINEAR (the default) is supported; LINEAR_EXACT and
         SIGMOID are refused.
      2. else, for 8-bit unsigned pixels with no modality rescale (values already 0..255),
         the values as they are (method `"8-bit"`), as for an 8-bit PNG;
      3. else the percentile window above, on the modality values (method
         `"percentile-window"`).

    MONOCHROME1 (higher values darker) is inverted after windowing: ``255 - v``
    (`Conversion.inverted`). The result is replicated to RGB.
  - colour (SamplesPerPixel 3, 8 bits allocated): RGB is stored as it is; YBR_FULL and
    YBR_FULL_422 are converted to RGB by pydicom while decoding (`pixel_array` with
    `as_rgb=True`, which calls `pydicom.pixels.convert_color_space`); JPEG 2000's
    YBR_ICT/YBR_RCT come out of the decoder as RGB. Method `"8-bit"`. 16-bit colour and
    PALETTE COLOR are refused.
  - compressed transfer syntaxes need pydicom's decoder plugins (JPEG Baseline via
    Pillow and RLE work as installed); without them the error names the transfer syntax
    and the fix (`pip install pylibjpeg pylibjpeg-libjpeg`, `pylibjpeg-openjpeg` for JPEG
    2000, or convert the files to an uncompressed transfer syntax).

Every problem (a missing file, a file that is not an image, a truncated file, an
unsupported variant) raises `ImageReadError` naming the file, the problem and the fix;
no Pillow or pydicom exception escapes (the original is chained as `__cause__`).

Pure numpy + Pillow + pydicom: no TensorFlow import.

Example:

>>> import pathlib, tempfile
>>> import numpy as np, PIL.Image
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> PIL.Image.fromarray(np.array([[0, 1000], [2000, 4000]], np.uint16)).save(folder / "a.png")
>>> image, how = read_image(folder / "a.png", percentiles=(0, 100))
>>> image.shape, image.dtype, image[..., 0].tolist()
((2, 2, 3), dtype('uint8'), [[0, 64], [128, 255]])
>>> how.describe()
'16-bit PNG, percentile window 0-100 % of the image: values <= 0 -> 0, >= 4000 -> 255'
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import PIL.Image
import pydicom
import pydicom.errors
import pydicom.multival
import pydicom.pixels

__all__ = ["ImageReadError", "Conversion", "METHODS", "SOURCES", "DEFAULT_PERCENTILES", "SUFFIXES",
           "read_image", "is_dicom"]

METHODS = ("8-bit", "dicom-window", "percentile-window")
"""How a file's values became 0..255 (`Conversion.method`)."""

SOURCES = ("png8", "jpeg", "png16", "dicom")
"""What a file was (`Conversion.source`)."""

DEFAULT_PERCENTILES = (0.5, 99.5)
"""Percentiles (in %) of an image's own values mapped to 0 and 255 by a percentile window."""

SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
"""File name suffixes (lower case) that `radtl data import --folders` picks up."""

_DICOM_SUFFIXES = (".dcm", ".dicom")
_ACCEPTED = ("accepted formats: PNG (8-bit, or 16-bit greyscale), JPEG, DICOM; convert the file "
             "to one of them or remove it from the collection")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_16BIT_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")
_DECODER_FIX = ("install a decoder plugin (`pip install pylibjpeg pylibjpeg-libjpeg` for JPEG "
                "and JPEG-LS, `pip install pylibjpeg pylibjpeg-openjpeg` for JPEG 2000) or convert "
                "the files to an uncompressed transfer syntax (e.g. `gdcmconv --raw in.dcm out.dcm` "
                "or dcmtk's `dcmdjpeg in.dcm out.dcm`)")


class ImageReadError(ValueError):
    """An image file cannot be read or converted; the message names the file, the problem and the fix."""


def _error(path: str, problem: str, fix: str) -> ImageReadError:
    return ImageReadError(f"{path}: {problem}. Fix: {fix}.")


def _number(value: float) -> str:
    return f"{value:.10g}"


@dataclasses.dataclass(frozen=True)
class Conversion:
    """How one file became 8-bit RGB.

    Attributes:
        method: str, one of `METHODS`.
        source: str, one of `SOURCES`: what the file was.
        window: (low, high) floats in the file's values (after the DICOM modality LUT)
            that map to 0 and 255; None for `"8-bit"`.
        percentiles: (low, high) percentiles in % that gave `window` for
            `"percentile-window"`, else None.
        inverted: bool, the result was inverted (255 - v) because the DICOM file is
            MONOCHROME1.

    Lists are accepted for the pairs (as read back from JSON) and stored as tuples of
    floats; `dataclasses.asdict` gives the record to store.
    """

    method: str
    source: str
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] | None = None
    inverted: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {list(METHODS)}. Received: method={self.method!r}")
        if self.source not in SOURCES:
            raise ValueError(f"`source` must be one of {list(SOURCES)}. Received: source={self.source!r}")
        for name in ("window", "percentiles"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 2:
                    raise ValueError(f"`{name}` must be a pair (low, high) or None. Received: {name}={value!r}")
                object.__setattr__(self, name, (float(value[0]), float(value[1])))
        if (self.window is None) != (self.method == "8-bit"):
            raise ValueError(f"`window` must be None exactly for method '8-bit'. Received: "
                             f"method={self.method!r}, window={self.window!r}")
        if (self.percentiles is None) != (self.method != "percentile-window"):
            raise ValueError(f"`percentiles` must be given exactly for method 'percentile-window'. "
                             f"Received: method={self.method!r}, percentiles={self.percentiles!r}")

    def describe(self) -> str:
        """One human-readable line, e.g. "DICOM window centre 40, width 400 (file): ..."."""
        if self.method == "8-bit":
            text = {
                "png8": "8-bit PNG, read as Pillow convert('RGB') (greyscale replicated)",
                "jpeg": "JPEG, read as Pillow convert('RGB') (greyscale replicated)",
                "dicom": "8-bit DICOM, values stored as they are (greyscale replicated, YBR converted to RGB)",
            }[self.source]
        elif self.method == "dicom-window":
            low, high = self.window
            centre, width = (low + high) / 2 + 0.5, high - low + 1
            text = (f"DICOM window centre {_number(centre)}, width {_number(width)} (file): "
                    f"values <= {_number(low)} -> 0, > {_number(high)} -> 255")
        else:
            low, high = self.window
            kind = {"png16": "16-bit PNG", "dicom": "DICOM without a window"}.get(self.source, self.source)
            text = (f"{kind}, percentile window {_number(self.percentiles[0])}-{_number(self.percentiles[1])} % "
                    f"of the image: values <= {_number(low)} -> 0, >= {_number(high)} -> 255")
        if self.inverted:
            text += ", then inverted (MONOCHROME1)"
        return text


# ----------------------------------------------------------------------------- public API


def is_dicom(path) -> bool:
    """Whether a file is a DICOM Part 10 file: `b"DICM"` at byte 128 (whatever its name).

    Args:
        path: str or os.PathLike, the file.

    Returns:
        bool.

    Raises:
        ImageReadError: the file does not exist or cannot be read.
    """
    path = os.fspath(path)
    _check_exists(path)
    try:
        with open(path, "rb") as file:
            head = file.read(132)
    except OSError as e:
        raise _error(path, f"cannot be opened ({type(e).__name__}: {e})",
                     "check that the file is readable (permissions, network mount)") from e
    return head[128:132] == b"DICM"


def read_image(path, *, percentiles=DEFAULT_PERCENTILES) -> tuple[np.ndarray, Conversion]:
    """Reads one PNG, JPEG or DICOM file as 8-bit RGB, by the rules in the module docstring.

    Args:
        path: str or os.PathLike, the file.
        percentiles: (low, high) numbers in [0, 100], low < high: the percentiles (in %)
            of an image's own values mapped to 0 and 255 when a percentile window is used
            (16-bit PNG, DICOM without a window). Default `DEFAULT_PERCENTILES`.

    Returns:
        (image, conversion): uint8 array (H, W, 3) in RGB order, and the `Conversion`.

    Raises:
        ImageReadError: missing, unreadable, truncated or unsupported file.
        ValueError: `percentiles` is not a valid pair.
    """
    percentiles = _check_percentiles(percentiles)
    path = os.fspath(path)
    if is_dicom(path) or os.path.splitext(path)[1].lower() in _DICOM_SUFFIXES:
        return _read_dicom(path, percentiles)
    return _read_pillow(path, percentiles)


# ----------------------------------------------------------------------------- value mappings


def _percentile_window(values: np.ndarray, percentiles: tuple[float, float]):
    """Maps a 2-D array of numbers to uint8 by a window at the image's own percentiles.

    Returns:
        (uint8 array of the same shape, (low, high) floats).
    """
    values = np.asarray(values, dtype=np.float64)
    low, high = (float(v) for v in np.percentile(values, percentiles))
    return _window(values, low, high), (low, high)


def _dicom_window(values: np.ndarray, centre: float, width: float):
    """The DICOM linear VOI function (PS3.3 C.11.2.1.2.1) to 0..255.

    With ``low = c - 0.5 - (w - 1) / 2`` and ``high = c - 0.5 + (w - 1) / 2`` the standard's
    ``((x - (c - 0.5)) / (w - 1) + 0.5)`` is ``(x - low) / (high - low)``, and a width of 1
    (``low == high``) is a threshold: the same mapping as a percentile window.

    Returns:
        (uint8 array of the same shape, (low, high) the edges: <= low -> 0, > high -> 255).
    """
    low, high = centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2
    return _window(np.asarray(values, dtype=np.float64), low, high), (low, high)


def _window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 of `rint(clip((x - low) / (high - low), 0, 1) * 255)`; for low == high: 0 at <= low, else 255."""
    out = np.where(values > low, 255.0, 0.0)
    if high > low:
        middle = (values > low) & (values < high)
        out[middle] = np.rint((values[middle] - low) / (high - low) * 255)
    return out.astype(np.uint8)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """Replicates a (H, W) uint8 greyscale image to (H, W, 3), as Pillow's `convert("RGB")`."""
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


# ----------------------------------------------------------------------------- PNG / JPEG


def _read_pillow(path: str, percentiles) -> tuple[np.ndarray, Conversion]:
    try:
        with PIL.Image.open(path) as image:
            image_format, mode = image.format, image.mode
            if image_format not in ("PNG", "JPEG"):
                raise _error(path, f"is a {image_format} image, not PNG, JPEG or DICOM", _ACCEPTED)
            if image_format == "PNG":
                bit_depth, colour_type = _png_header(path)
                if bit_depth == 16 and colour_type != 0:
                    kind = {2: "RGB", 4: "greyscale + alpha", 6: "RGBA"}.get(colour_type, f"colour type {colour_type}")
                    raise _error(
                        path, f"is a 16-bit {kind} PNG; only 16-bit greyscale PNGs are read (Pillow would "
                        "silently drop the low byte of each value)",
                        "convert it to 8-bit RGB (`magick in.png -depth 8 out.png`) or to 16-bit greyscale "
                        "(`magick in.png -alpha off -colorspace Gray -depth 16 out.png`)")
            if mode in _PNG_16BIT_GREY_MODES:
                values = np.asarray(image)
            else:
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ImageReadError:
        raise
    except PIL.UnidentifiedImageError as e:
        raise _error(path, "is not a PNG, JPEG or DICOM image (Pillow cannot identify it, and there is no "
                     "'DICM' marker at byte 128)", _ACCEPTED) from e
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error, ... on bad data.
        raise _error(path, f"cannot be decoded, the file is truncated or corrupt ({type(e).__name__}: {e})",
                     "re-export or re-copy the file, or remove it from the collection") from e
    if mode in _PNG_16BIT_GREY_MODES:
        grey, window = _percentile_window(values, percentiles)
        return grey_to_rgb(grey), Conversion("percentile-window", "png16", window=window, percentiles=percentiles)
    return rgb, Conversion("8-bit", "png8" if image_format == "PNG" else "jpeg")


def _png_header(path: str) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR chunk (PNG spec 11.2.2)."""
    with open(path, "rb") as file:
        head = file.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise OSError("no IHDR chunk at the start of the PNG")
    return head[24], head[25]


# ----------------------------------------------------------------------------- DICOM


def _read_dicom(path: str, percentiles) -> tuple[np.ndarray, Conversion]:
    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError as e:
        raise _error(path, "is not a DICOM Part 10 file (no 'DICM' marker at byte 128)",
                     "if it is a DICOM dataset without the file header, re-save it with pydicom "
                     "(`pydicom.dcmread(path, force=True).save_as(out, enforce_file_format=True)`); "
                     "otherwise remove it from the collection (accepted formats: PNG, JPEG, DICOM)") from e
    except Exception as e:  # pydicom raises many types on corrupt files.
        raise _error(path, f"cannot be read as DICOM, the file is truncated or corrupt ({type(e).__name__}: {e})",
                     "re-export or re-copy the file, or remove it from the collection") from e
    if "PixelData" not in ds:
        raise _error(path, "has no pixel data (PixelData element missing: the file is truncated or holds no image)",
                     "re-export the image, or remove the file from the collection")
    frames = _int_or(ds.get("NumberOfFrames"), 1)
    if frames > 1:
        raise _error(path, f"holds {frames} frames (NumberOfFrames); one image per file is read",
                     "export the frames (slices) as separate single-frame files")
    samples = _int_or(ds.get("SamplesPerPixel"), 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    bits = _int_or(ds.get("BitsAllocated"), 0)
    if samples == 3 and bits != 8:
        raise _error(path, f"is a {bits}-bit colour DICOM ({photometric}); only 8-bit colour is read",
                     "convert it to 8-bit RGB, or export the image as PNG")
    if samples not in (1, 3) or (samples == 1 and photometric not in ("MONOCHROME1", "MONOCHROME2")):
        raise _error(path, f"has SamplesPerPixel {samples} and PhotometricInterpretation {photometric!r}; "
                     "MONOCHROME1, MONOCHROME2 and 8-bit RGB/YBR are read",
                     "export the image as RGB (PNG or DICOM)")
    pixels = _decode(ds, path)
    if samples == 3:
        return np.ascontiguousarray(pixels, dtype=np.uint8), Conversion("8-bit", "dicom")

    try:
        values = pydicom.pixels.apply_modality_lut(pixels, ds)
    except Exception as e:
        raise _error(path, f"its modality LUT (Rescale Slope/Intercept or Modality LUT Sequence) cannot be "
                     f"applied ({type(e).__name__}: {e})", "fix or remove the rescale elements") from e
    inverted = photometric == "MONOCHROME1"
    window = _window_of(ds, path)
    if window is not None:
        grey, edges = _dicom_window(values, *window)
        conversion = Conversion("dicom-window", "dicom", window=edges, inverted=inverted)
    elif bits == 8 and pixels.dtype == np.uint8 and _no_modality_rescale(ds):
        grey, conversion = pixels, Conversion("8-bit", "dicom", inverted=inverted)
    else:
        grey, edges = _percentile_window(values, percentiles)
        conversion = Conversion("percentile-window", "dicom", window=edges, percentiles=percentiles,
                                inverted=inverted)
    if inverted:
        grey = 255 - grey
    return grey_to_rgb(np.asarray(grey, dtype=np.uint8)), conversion


def _decode(ds, path: str) -> np.ndarray:
    """The pixel array of a single-frame dataset (YBR converted to RGB), errors made actionable."""
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is None:
        raise _error(path, "has no Transfer Syntax UID in its file meta information",
                     "re-save the file with a file meta header (pydicom `save_as(out, enforce_file_format=True)`)")
    name = f"{syntax.name} ({syntax})"
    try:
        decoder = pydicom.pixels.get_decoder(syntax)
    except NotImplementedError as e:
        raise _error(path, f"uses transfer syntax {name}, which pydicom cannot decode",
                     "convert the files to an uncompressed transfer syntax (e.g. `gdcmconv --raw in.dcm out.dcm`)") from e
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise _error(path, f"uses the compressed transfer syntax {name}, and no pydicom decoder plugin for it "
                     f"is installed (pydicom lists: {missing})", _DECODER_FIX)
    try:
        return pydicom.pixels.pixel_array(ds, as_rgb=True)
    except Exception as e:
        raise _error(path, f"its pixel data ({name}) cannot be decoded, the file is truncated or corrupt "
                     f"({type(e).__name__}: {e})",
                     "re-export or re-copy the file, or remove it from the collection") from e


def _window_of(ds, path: str) -> tuple[float, float] | None:
    """(centre, width) from WindowCenter/WindowWidth (first values), or None when absent."""
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or width is None:
        return None
    centre, width = float(centre), float(width)
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function != "LINEAR":
        raise _error(path, f"has VOILUTFunction {function!r}; only the LINEAR window function is applied",
                     "delete the VOILUTFunction element (the linear function then applies) or export the image "
                     "as PNG")
    if not (math.isfinite(centre) and math.isfinite(width)) or width < 1:
        raise _error(path, f"has an invalid window: WindowCenter {centre}, WindowWidth {width} (the width must be "
                     ">= 1)", "correct or delete WindowCenter/WindowWidth (without them a percentile window is used)")
    return centre, width


def _first(value):
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    return None if value is None or value == "" else value


def _int_or(value, default: int) -> int:
    value = _first(value)
    return default if value is None else int(value)


def _no_modality_rescale(ds) -> bool:
    """True when the modality LUT is the identity (no LUT sequence, slope 1, intercept 0)."""
    slope, intercept = _first(ds.get("RescaleSlope")), _first(ds.get("RescaleIntercept"))
    return ("ModalityLUTSequence" not in ds and (slope is None or float(slope) == 1.0)
            and (intercept is None or float(intercept) == 0.0))


# ----------------------------------------------------------------------------- checks


def _check_exists(path: str) -> None:
    if os.path.isdir(path):
        raise _error(path, "is a folder, not an image file", "give the path of an image file")
    if not os.path.exists(path):
        raise _error(path, "no such file", "check the path (and the image root it is relative to)")


def _check_percentiles(percentiles) -> tuple[float, float]:
    ok = False
    try:
        low, high = (float(v) for v in percentiles)
        ok = (not any(isinstance(v, bool) for v in percentiles)) and 0 <= low < high <= 100
    except (TypeError, ValueError):
        pass
    if not ok:
        raise ValueError("`percentiles` must be two numbers (low, high) with 0 <= low < high <= 100. "
                         f"Received: percentiles={percentiles!r}")
    return low, high
