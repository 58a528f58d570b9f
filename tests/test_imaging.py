"""radtl.imaging: real PNG, JPEG and DICOM files (written here) read as 8-bit RGB."""
import dataclasses
import doctest
import json
import re
import struct
import warnings
import zlib

import numpy as np
import PIL.Image
import pydicom
import pydicom.pixels
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, SecondaryCaptureImageStorage, generate_uid

from radtl import imaging
from radtl.imaging import Conversion, ImageReadError, is_dicom, read_image

# ----------------------------------------------------------------------------- writers


def _write_dicom(path, pixels, photometric="MONOCHROME2", **elements):
    """An uncompressed (Explicit VR Little Endian) DICOM file with `pixels` and `elements`."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    for name, value in elements.items():
        setattr(ds, name, value)
    ds.set_pixel_data(pixels, photometric, pixels.dtype.itemsize * 8)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_png_raw(path, pixels, bit_depth, colour_type):
    """A PNG written byte by byte (Pillow cannot write 16-bit colour); `pixels` (H, W[, C]) big-endian."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def _percentile_reference(values, percentiles=imaging.DEFAULT_PERCENTILES):
    """The documented formula, written out independently of the module."""
    values = np.asarray(values, dtype=np.float64)
    low, high = np.percentile(values, percentiles)
    return np.rint(np.clip((values - low) / (high - low), 0, 1) * 255).astype(np.uint8), (low, high)


def _grey(image):
    """The one channel of a replicated greyscale RGB image (checks the replication)."""
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    return image[..., 0]


# ----------------------------------------------------------------------------- 8-bit PNG / JPEG

_RNG = np.random.default_rng(0)
_RGB = _RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "1"])
def test_8bit_png_is_read_as_pillow_convert_rgb(tmp_path, mode):
    path = tmp_path / f"x_{mode}.png"
    PIL.Image.fromarray(_RGB).convert(mode).save(path)
    image, how = read_image(path)
    with PIL.Image.open(path) as reference:
        assert reference.mode == mode
        np.testing.assert_array_equal(image, np.asarray(reference.convert("RGB")))
    assert image.dtype == np.uint8 and image.shape == (12, 10, 3)
    assert how == Conversion("8-bit", "png8")


def test_grey_png_is_replicated_to_three_channels(tmp_path):
    grey = _RGB[..., 0]
    PIL.Image.fromarray(grey).save(tmp_path / "g.png")
    image, _ = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(_grey(image), grey)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_is_read_as_pillow_convert_rgb(tmp_path, mode):
    path = tmp_path / "x.jpg"
    PIL.Image.fromarray(_RGB).convert(mode).save(path, quality=90)
    image, how = read_image(str(path))
    with PIL.Image.open(path) as reference:
        np.testing.assert_array_equal(image, np.asarray(reference.convert("RGB")))
    assert how == Conversion("8-bit", "jpeg")


# ----------------------------------------------------------------------------- 16-bit PNG


def test_16bit_png_round_trips_through_the_percentile_window(tmp_path):
    # A 0..4095 ramp plus a few outliers: the 0.5/99.5 % window ignores them, min-max would not.
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    values[0, :5] = 65535
    values[1, :3] = 60000
    PIL.Image.fromarray(values).save(tmp_path / "ct.png")
    with PIL.Image.open(tmp_path / "ct.png") as check:
        assert check.mode.startswith("I")
    image, how = read_image(tmp_path / "ct.png")
    expected, (low, high) = _percentile_reference(values)
    np.testing.assert_array_equal(_grey(image), expected)
    assert how.method == "percentile-window" and how.source == "png16"
    assert how.window == pytest.approx((low, high)) and how.percentiles == (0.5, 99.5)
    assert 15 < low < 30 and 4000 < high < 4100  # the percentiles, not the extremes
    assert (_grey(image)[-1, -10:] == 255).all() and _grey(image)[0, 10] == 0


def test_16bit_png_with_other_percentiles_and_rounding(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], np.uint16)
    PIL.Image.fromarray(values).save(tmp_path / "a.png")
    image, how = read_image(tmp_path / "a.png", percentiles=(0, 100))
    # 1000/4000*255 = 63.75 -> 64; 2000/4000*255 = 127.5 -> 128 (ties to even).
    np.testing.assert_array_equal(_grey(image), [[0, 64], [128, 255]])
    assert how.window == (0.0, 4000.0) and how.percentiles == (0.0, 100.0)


def test_constant_16bit_png_gives_zeros_without_warnings(tmp_path):
    PIL.Image.fromarray(np.full((8, 6), 1234, np.uint16)).save(tmp_path / "flat.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image, how = read_image(tmp_path / "flat.png")
    assert image.shape == (8, 6, 3) and not image.any()
    assert how.window == (1234.0, 1234.0)


def test_16bit_png_with_equal_percentiles_is_a_threshold(tmp_path):
    values = np.zeros((20, 20), np.uint16)
    values[0, 0] = 500  # 1 pixel of 400: both percentiles are 0
    PIL.Image.fromarray(values).save(tmp_path / "dot.png")
    image, how = read_image(tmp_path / "dot.png")
    assert how.window == (0.0, 0.0)
    assert _grey(image)[0, 0] == 255 and _grey(image).sum() == 255


@pytest.mark.parametrize("colour_type, channels, kind", [(2, 3, "RGB"), (6, 4, "RGBA"), (4, 2, "greyscale + alpha")])
def test_16bit_colour_png_is_refused_not_truncated(tmp_path, colour_type, channels, kind):
    pixels = (np.arange(4 * 5 * channels).reshape(4, 5, channels) * 1000).astype(">u2")
    path = _write_png_raw(tmp_path / "colour16.png", pixels, 16, colour_type)
    with PIL.Image.open(path) as check:  # Pillow opens it, silently at 8 bits
        check.load()
    with pytest.raises(ImageReadError, match=rf"colour16\.png: is a 16-bit {re.escape(kind)} PNG.*Fix: convert it"):
        read_image(path)


# ----------------------------------------------------------------------------- DICOM

# Modality values (e.g. HU) around the window centre 40, width 400: edges -160 and 239.
_HU = np.array([[-1024, -160, -158], [40, 238, 240], [1000, 3000, -500]], np.float64)
# (x - 39.5) / 399 + 0.5, times 255, rounded: -158 -> 1.28 -> 1; 40 -> 127.8 -> 128; 238 -> 254.4 -> 254.
_HU_WINDOWED = np.array([[0, 0, 1], [128, 254, 255], [255, 255, 0]], np.uint8)


@pytest.mark.parametrize("dtype, slope, intercept", [(np.uint16, 1, -1024), (np.int16, 2, 0)])
def test_dicom_window_applies_rescale_then_the_linear_voi_function(tmp_path, dtype, slope, intercept):
    stored = ((_HU - intercept) / slope).astype(dtype)
    if dtype == np.int16:
        assert (stored < 0).any()  # signed stored values exercise PixelRepresentation 1
    path = _write_dicom(tmp_path / "ct.dcm", stored, RescaleSlope=slope, RescaleIntercept=intercept,
                        WindowCenter=40, WindowWidth=400)
    assert pydicom.dcmread(path).PixelRepresentation == (dtype == np.int16)
    image, how = read_image(path)
    np.testing.assert_array_equal(_grey(image), _HU_WINDOWED)
    assert how == Conversion("dicom-window", "dicom", window=(-160.0, 239.0))
    assert how.describe().startswith("DICOM window centre 40, width 400 (file)")


def test_dicom_multi_valued_window_uses_the_first_values(tmp_path):
    stored = (_HU + 1024).astype(np.uint16)
    path = _write_dicom(tmp_path / "ct.dcm", stored, RescaleSlope=1, RescaleIntercept=-1024,
                        WindowCenter=[40, 400], WindowWidth=[400, 2000])
    image, how = read_image(path)
    np.testing.assert_array_equal(_grey(image), _HU_WINDOWED)
    assert how.window == (-160.0, 239.0)


def test_dicom_width_1_window_is_a_threshold(tmp_path):
    stored = np.array([[10, 11], [12, 13]], np.uint16)
    image, how = read_image(_write_dicom(tmp_path / "t.dcm", stored, WindowCenter=12, WindowWidth=1))
    # c - 0.5 = 11.5: values <= 11.5 -> 0, > 11.5 -> 255.
    np.testing.assert_array_equal(_grey(image), [[0, 0], [255, 255]])
    assert how.window == (11.5, 11.5)


def test_dicom_without_window_uses_the_percentile_window_on_modality_values(tmp_path):
    stored = np.arange(30 * 40, dtype=np.uint16).reshape(30, 40)
    stored[0, 0] = 60000
    path = _write_dicom(tmp_path / "mr.dcm", stored, RescaleSlope=2, RescaleIntercept=-10)
    image, how = read_image(path)
    expected, (low, high) = _percentile_reference(stored * 2.0 - 10)
    np.testing.assert_array_equal(_grey(image), expected)
    assert how.method == "percentile-window" and how.source == "dicom" and not how.inverted
    assert how.window == pytest.approx((low, high))  # in modality units, not stored values
    assert how.window[0] == pytest.approx(np.percentile(stored, 0.5) * 2 - 10)


def test_dicom_monochrome1_is_inverted_after_windowing(tmp_path):
    stored = (_HU + 1024).astype(np.uint16)
    path = _write_dicom(tmp_path / "cr.dcm", stored, photometric="MONOCHROME1", RescaleSlope=1,
                        RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400)
    image, how = read_image(path)
    np.testing.assert_array_equal(_grey(image), 255 - _HU_WINDOWED)
    assert how.inverted and how.describe().endswith("inverted (MONOCHROME1)")


def test_dicom_monochrome1_without_window_is_inverted(tmp_path):
    stored = np.arange(100, dtype=np.uint16).reshape(10, 10) * 40
    image, how = read_image(_write_dicom(tmp_path / "cr.dcm", stored, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(_grey(image), 255 - _percentile_reference(stored)[0])
    assert how.method == "percentile-window" and how.inverted


def test_8bit_grey_dicom_without_rescale_or_window_is_stored_as_is(tmp_path):
    grey = _RGB[..., 1]
    image, how = read_image(_write_dicom(tmp_path / "us.dcm", grey))
    np.testing.assert_array_equal(_grey(image), grey)
    assert how == Conversion("8-bit", "dicom")


def test_8bit_grey_dicom_with_rescale_uses_the_percentile_window(tmp_path):
    grey = _RGB[..., 1]
    image, how = read_image(_write_dicom(tmp_path / "us.dcm", grey, RescaleSlope=1, RescaleIntercept=-100))
    np.testing.assert_array_equal(_grey(image), _percentile_reference(grey - 100.0)[0])
    assert how.method == "percentile-window"


def test_rgb_dicom_is_stored_as_is(tmp_path):
    image, how = read_image(_write_dicom(tmp_path / "photo.dcm", _RGB, photometric="RGB"))
    np.testing.assert_array_equal(image, _RGB)
    assert how == Conversion("8-bit", "dicom")


def test_ybr_dicom_is_converted_to_rgb(tmp_path):
    ybr = pydicom.pixels.convert_color_space(_RGB, "RGB", "YBR_FULL")
    image, how = read_image(_write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"))
    np.testing.assert_array_equal(image, pydicom.pixels.convert_color_space(ybr, "YBR_FULL", "RGB"))
    assert np.abs(image.astype(int) - _RGB).max() <= 2  # back to (nearly) the original colours
    assert how == Conversion("8-bit", "dicom")


def test_multiframe_dicom_is_refused(tmp_path):
    path = _write_dicom(tmp_path / "stack.dcm", np.zeros((3, 4, 4), np.uint16))
    with pytest.raises(ImageReadError, match=r"stack\.dcm: holds 3 frames.*export the frames"):
        read_image(path)


def test_dicom_without_suffix_is_recognised(tmp_path):
    path = _write_dicom(tmp_path / "IM0001", (_HU + 1024).astype(np.uint16), RescaleSlope=1,
                        RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400)
    assert is_dicom(path) and is_dicom(str(path))
    PIL.Image.fromarray(_RGB).save(tmp_path / "x.png")
    assert not is_dicom(tmp_path / "x.png")
    image, how = read_image(path)
    np.testing.assert_array_equal(_grey(image), _HU_WINDOWED)
    assert how.source == "dicom"


def test_unsupported_voi_function_is_refused(tmp_path):
    path = _write_dicom(tmp_path / "pet.dcm", np.ones((4, 4), np.uint16), WindowCenter=1, WindowWidth=4,
                        VOILUTFunction="SIGMOID")
    with pytest.raises(ImageReadError, match=r"pet\.dcm: has VOILUTFunction 'SIGMOID'.*delete the VOILUTFunction"):
        read_image(path)


@pytest.mark.skipif(pydicom.pixels.get_decoder(JPEGLSLossless).is_available,
                    reason="a JPEG-LS decoder plugin is installed")
def test_compressed_dicom_without_decoder_names_the_syntax_and_the_fix(tmp_path):
    path = _write_dicom(tmp_path / "ls.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8 not really jpeg-ls \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(ImageReadError, match=r"ls\.dcm: uses the compressed transfer syntax JPEG-LS Lossless.*"
                                             r"1\.2\.840\.10008\.1\.2\.4\.80.*pip install pylibjpeg pylibjpeg-libjpeg"):
        read_image(path)


# ----------------------------------------------------------------------------- bad files


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere\.png: no such file"):
        read_image(tmp_path / "nothere.png")
    with pytest.raises(ImageReadError, match=r"nothere: no such file"):
        is_dicom(tmp_path / "nothere")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("name", ["notes.png", "notes.jpg", "notes"])
def test_text_file_is_not_an_image(tmp_path, name):
    path = tmp_path / name
    path.write_text("patient,label\n1,0\n" * 20)
    with pytest.raises(ImageReadError, match=rf"{name}: is not a PNG, JPEG or DICOM image.*accepted formats"):
        read_image(path)


def test_text_file_named_dcm_is_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not a dicom file " * 20)
    assert not is_dicom(path)
    with pytest.raises(ImageReadError, match=r"notes\.dcm: is not a DICOM Part 10 file"):
        read_image(path)


def test_other_image_format_is_refused(tmp_path):
    PIL.Image.fromarray(_RGB).save(tmp_path / "x.gif")
    (tmp_path / "x.png").write_bytes((tmp_path / "x.gif").read_bytes())
    with pytest.raises(ImageReadError, match=r"x\.png: is a GIF image.*accepted formats"):
        read_image(tmp_path / "x.png")


@pytest.mark.parametrize("suffix, values", [(".png", _RGB), (".png", np.arange(400, dtype=np.uint16).reshape(20, 20)),
                                            (".jpg", _RGB)])
def test_truncated_png_or_jpeg(tmp_path, suffix, values):
    path = tmp_path / f"cut{suffix}"
    PIL.Image.fromarray(values).save(path)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ImageReadError, match=rf"cut\{suffix}: cannot be decoded, the file is truncated or corrupt"):
        read_image(path)


def test_truncated_dicom(tmp_path):
    path = _write_dicom(tmp_path / "cut.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(ImageReadError, match=r"cut\.dcm: .*truncated or corrupt"):
        read_image(path)
    path.write_bytes(data[:140])  # the marker, then nothing
    with pytest.raises(ImageReadError, match=r"cut\.dcm: "):
        read_image(path)


# ----------------------------------------------------------------------------- Conversion and arguments


def test_describe_each_method():
    assert Conversion("8-bit", "png8").describe().startswith("8-bit PNG, read as Pillow convert('RGB')")
    assert Conversion("8-bit", "jpeg").describe().startswith("JPEG, read as Pillow convert('RGB')")
    assert Conversion("8-bit", "dicom").describe().startswith("8-bit DICOM, values stored as they are")
    assert (Conversion("dicom-window", "dicom", window=(-160, 239)).describe()
            == "DICOM window centre 40, width 400 (file): values <= -160 -> 0, > 239 -> 255")
    assert (Conversion("percentile-window", "png16", window=(12, 3800.5), percentiles=(0.5, 99.5)).describe()
            == "16-bit PNG, percentile window 0.5-99.5 % of the image: values <= 12 -> 0, >= 3800.5 -> 255")
    assert (Conversion("percentile-window", "dicom", window=(0, 1), percentiles=(1, 99), inverted=True).describe()
            == "DICOM without a window, percentile window 1-99 % of the image: values <= 0 -> 0, >= 1 -> 255, "
               "then inverted (MONOCHROME1)")


def test_conversion_round_trips_through_json_and_checks_its_fields():
    how = Conversion("percentile-window", "dicom", window=(-3.5, 70), percentiles=(0.5, 99.5), inverted=True)
    assert Conversion(**json.loads(json.dumps(dataclasses.asdict(how)))) == how
    with pytest.raises(ValueError, match="`method` must be one of"):
        Conversion("minmax", "png16")
    with pytest.raises(ValueError, match="`source` must be one of"):
        Conversion("8-bit", "tiff")
    with pytest.raises(ValueError, match="`window` must be None exactly for method '8-bit'"):
        Conversion("dicom-window", "dicom")
    with pytest.raises(ValueError, match="`percentiles` must be given"):
        Conversion("percentile-window", "png16", window=(0, 1))


@pytest.mark.parametrize("percentiles", [(99.5, 0.5), (5, 5), (-1, 50), (1, 101), (1,), "ab", (True, 50)])
def test_bad_percentiles(tmp_path, percentiles):
    PIL.Image.fromarray(_RGB).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`percentiles` must be two numbers .* Received: percentiles="):
        read_image(tmp_path / "x.png", percentiles=percentiles)


def test_suffixes_and_module_docstring_example():
    assert imaging.SUFFIXES == (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
    assert imaging.METHODS == ("8-bit", "dicom-window", "percentile-window")
    assert doctest.testmod(imaging).failed == 0
