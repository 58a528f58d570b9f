"""radtl.weights, radtl.download, radtl.pretrained: legacy HDF5 layouts, manifest, lookup,
file checks, verified loading, the pre-flight check, fetch, status, the import boundary.

Weight files are written by the tests (tests/keras2_h5.py, as tf.keras 2.x did) with
known random values; file-level tests use a tiny model, backbone-level ones ResNet50 at
32 px. No test touches the network (downloads go to a local HTTP server or to a closed
local port).
"""
import ast
import configparser
import fnmatch
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import keras2_h5
from keras2_h5 import isolated_weights  # noqa: F401  (fixture)
from radtl import backbones
from radtl import download
from radtl import pretrained
from radtl import weights

SIZE = 32
RESNET_FILE = "RadImageNet-ResNet50_notop.h5"
RESNET_HYPHEN = "RadImageNet-ResNet50-notop.h5"
RESNET_SIZE = "94,852,768"  # the manifest's (third-party) size
IMAGENET_RESNET = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
DRIVE_FOLDER = "drive.google.com/drive/folders/1Es7cK1hv7zNHJoUW0tI0e6nLFVYTqPqK"
ROOT = Path(__file__).resolve().parent.parent


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(x), name="tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny conv/BN/dense model's random arrays in both legacy layouts."""
    root = tmp_path_factory.mktemp("tiny_files")
    arrays = keras2_h5.random_arrays(_tiny_model(), seed=2)
    files = {}
    for layout in ("full-model", "weights-only"):
        files[layout] = root / f"{layout}.h5"
        keras2_h5.write(files[layout], _tiny_model(), arrays, layout)
    return {"arrays": arrays, **files}


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """One ResNet50 (random init) and its random arrays in both legacy layouts."""
    root = tmp_path_factory.mktemp("resnet_files")
    model = backbones.build(backbones.get("resnet50"), (SIZE, SIZE, 3))
    arrays = keras2_h5.random_arrays(model, seed=1)
    full = root / "full" / RESNET_FILE
    only = root / "weights_only" / RESNET_HYPHEN
    for path, layout in ((full, "full-model"), (only, "weights-only")):
        path.parent.mkdir()
        keras2_h5.write(path, model, arrays, layout)
    return {"model": model, "arrays": arrays, "full": full, "weights_only": only}


def _assert_holds(model, arrays):
    layers = [layer for layer in model.layers if layer.weights]
    assert [layer.name for layer in layers] == list(arrays)
    for layer in layers:
        values = [v.numpy() for v in layer.trainable_weights + layer.non_trainable_weights]
        assert len(values) == len(arrays[layer.name])
        for value, expected in zip(values, arrays[layer.name]):
            np.testing.assert_array_equal(value, expected)


def _load(weights_arg="radimagenet", **kwargs):
    return backbones.load_backbone(
        "resnet50", weights_arg, input_shape=(SIZE, SIZE, 3), **kwargs
    )


def _both(weights_arg="radimagenet", error=weights.WeightsError, **kwargs):
    """The error of the pre-flight check and of loading: the same type and message."""
    with pytest.raises(error) as checked:
        pretrained.check_available("resnet50", weights_arg, **kwargs)
    with pytest.raises(error) as loaded:
        _load(weights_arg, **kwargs)
    assert str(checked.value) == str(loaded.value)
    return str(checked.value)


# ----------------------------------------------------------------------- layouts


def test_written_files_have_the_keras2_layouts(resnet):
    with h5py.File(resnet["full"], "r") as f:
        assert {"keras_version", "backend", "model_config"} <= set(f.attrs)
        assert "layer_names" not in f.attrs
        group = f["model_weights"]
        assert "conv1_conv" in list(group.attrs["layer_names"].astype(str))
        names = list(group["conv1_conv"].attrs["weight_names"].astype(str))
        assert names == ["conv1_conv/kernel:0", "conv1_conv/bias:0"]
        assert group["conv1_conv"]["conv1_conv"]["kernel:0"].shape == (7, 7, 3, 64)
        bn = list(group["conv1_bn"].attrs["weight_names"].astype(str))
        assert bn == [f"conv1_bn/{w}:0" for w in
                      ("gamma", "beta", "moving_mean", "moving_variance")]
    with h5py.File(resnet["weights_only"], "r") as f:
        assert "model_weights" not in f
        assert "conv1_conv" in list(f.attrs["layer_names"].astype(str))
        assert f["conv1_conv"]["conv1_conv"]["bias:0"].shape == (64,)


@pytest.mark.parametrize("layout", ["full-model", "weights-only"])
def test_keras_own_loader_reads_the_written_file_identically(tiny, layout):
    # Cross-check of the test writer against Keras' own legacy-HDF5 loader.
    model = _tiny_model()
    model.load_weights(str(tiny[layout]))
    _assert_holds(model, tiny["arrays"])


def test_read_legacy_h5_both_layouts(tiny):
    full = weights.read_legacy_h5(tiny["full-model"])
    only = weights.read_legacy_h5(tiny["weights-only"])
    assert (full.layout, only.layout) == ("full-model", "weights-only")
    assert [n for n, _ in full.layers] == [n for n, _ in only.layers] == list(
        tiny["arrays"])


def test_load_into_assigns_and_verify_detects_values_not_loaded(tiny):
    model = _tiny_model()
    # A random-init model (what silent by-name loading leaves) fails verification.
    with pytest.raises(weights.WeightsError, match="does not hold the weights") as info:
        weights.verify(model, tiny["full-model"])
    assert "conv" in str(info.value)
    legacy = weights.load_into(model, tiny["full-model"])
    assert legacy.layout == "full-model"
    _assert_holds(model, tiny["arrays"])
    weights.verify(model, tiny["weights-only"])


@pytest.mark.usefixtures("isolated_weights")
def test_full_model_layout_loads_exact_values_from_weights_dir(resnet):
    with pytest.warns(weights.WeightsChecksumWarning, match="third-party size"):
        backbone = _load(weights_dir=resnet["full"].parent)
    assert backbone.name == "resnet50"
    _assert_holds(backbone, resnet["arrays"])


def test_weights_only_hyphen_spelling_loads_from_env_dir(resnet, isolated_weights,
                                                        monkeypatch):
    monkeypatch.setenv("RADTL_WEIGHTS_DIR", str(resnet["weights_only"].parent))
    # The hyphen file is found under the canonical entry; its size differs (warns).
    with pytest.warns(weights.WeightsChecksumWarning, match="third-party"):
        backbone = _load()
    _assert_holds(backbone, resnet["arrays"])


@pytest.mark.usefixtures("isolated_weights")
def test_explicit_path_loads_exact_values(resnet):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit path has no manifest checksum
        assert pretrained.check_available("resnet50", str(resnet["weights_only"])) == (
            resnet["weights_only"])
        backbone = _load(str(resnet["weights_only"]))
    _assert_holds(backbone, resnet["arrays"])


def test_file_of_another_architecture(resnet):
    with pytest.raises(weights.WeightsError) as info:
        backbones.load_backbone("vgg16", str(resnet["full"]), input_shape=(SIZE, SIZE, 3))
    message = str(info.value)
    assert str(resnet["full"]) in message
    assert "does not match the `vgg16` architecture" in message
    assert "13" in message and "106" in message  # layer counts: vgg16 vs file
    assert "Fix:" in message


# ------------------------------------------------------------------------ lookup


def test_lookup_order(isolated_weights, monkeypatch):
    tmp = isolated_weights
    folders = {key: tmp / key for key in ("arg", "env", "repo_weights",
                                          "keras_home/models")}
    monkeypatch.setenv("RADTL_WEIGHTS_DIR", str(folders["env"]))
    folders["repo_weights"].mkdir()  # the checkout's weights/ is searched if it exists
    assert weights.search_dirs(folders["arg"]) == list(folders.values())
    for folder in reversed(list(folders.values())):  # each folder shadows the later
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESNET_HYPHEN).write_bytes(b"")
        assert weights.find(RESNET_FILE, folders["arg"]) == folder / RESNET_HYPHEN
    (folders["arg"] / RESNET_FILE).write_bytes(b"")  # canonical spelling first
    assert weights.find(RESNET_HYPHEN, folders["arg"]) == folders["arg"] / RESNET_FILE


def test_search_and_fetch_folders_of_an_installed_wheel(isolated_weights, monkeypatch):
    # Installed from a wheel there is no checkout: its weights/ is neither searched
    # nor a destination; fetch defaults to $RADTL_WEIGHTS_DIR, else the Keras cache.
    cache = isolated_weights / "keras_home" / "models"
    arg, env = isolated_weights / "arg", isolated_weights / "env"
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", None)
    assert weights.search_dirs(arg) == [arg, cache]
    assert weights.default_fetch_dir() == cache
    assert f"Put these files (unzipped) in {cache}" in download.manual_steps()
    monkeypatch.setenv("RADTL_WEIGHTS_DIR", str(env))
    assert weights.search_dirs(arg) == [arg, env, cache]
    assert weights.default_fetch_dir() == env
    # In a checkout whose weights/ exists, that folder is searched and the default.
    monkeypatch.delenv("RADTL_WEIGHTS_DIR")
    checkout = isolated_weights / "checkout_weights"
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", checkout)
    assert weights.search_dirs() == [cache]  # not yet created
    checkout.mkdir()
    assert weights.search_dirs() == [checkout, cache]
    assert weights.default_fetch_dir() == checkout


# ----------------------------------------------------------------------- manifest


def test_manifest_is_package_data():
    assert weights.MANIFEST_PATH == Path(weights.__file__).parent / "weights_manifest.json"
    assert weights.MANIFEST_PATH.is_file()
    assert not (ROOT / "weights" / "manifest.json").exists()
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    shipped = config["options.package_data"]  # per package: "radtl" or "*" (all)
    patterns = [p for key in ("radtl", "*") for p in shipped.get(key, "").split()]
    assert any(fnmatch.fnmatch(weights.MANIFEST_PATH.name, p) for p in patterns)


def test_missing_packaged_manifest_says_reinstall(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "MANIFEST_PATH", tmp_path / "weights_manifest.json")
    with pytest.raises(weights.WeightsError) as info:
        weights.manifest()
    message = str(info.value)
    assert f"{tmp_path / 'weights_manifest.json'} does not exist" in message
    assert "reinstall radtl" in message and "pip install" in message
    assert "Fix the JSON" not in message  # not the user's file to fix


def test_corrupt_manifests_name_the_right_fix(isolated_weights, monkeypatch):
    packaged = isolated_weights / "weights_manifest.json"
    packaged.write_text('{"files": {')
    override = isolated_weights / "mine" / "manifest.json"
    override.parent.mkdir()
    override.write_text("not json")
    with pytest.raises(weights.WeightsError, match="Fix the JSON or delete the file"):
        weights.manifest(override.parent)  # a user override: the user fixes it
    monkeypatch.setattr(weights, "MANIFEST_PATH", packaged)
    with pytest.raises(weights.WeightsError) as info:
        weights.manifest()
    assert str(packaged) in str(info.value) and "reinstall radtl" in str(info.value)
    assert "Fix the JSON" not in str(info.value)


def test_manifest_covers_every_registered_file():
    info = weights.manifest()
    for name in backbones.names():
        spec = backbones.get(name)
        for source in spec.sources:
            entry = info.entry(spec.weight_file(source))
            assert entry.source == source and entry.url.startswith("https://")
    with pytest.raises(ValueError, match="Received: filename='nope.h5'"):
        info.entry("nope.h5")


def test_manifest_override_of_unknown_file_is_an_error(isolated_weights):
    folder = keras2_h5.write_manifest_override(isolated_weights / "typo",
                                               {"RadImageNet-ResNet_notop.h5": {}})
    with pytest.raises(weights.WeightsError, match="overrides unknown file"):
        weights.manifest(folder)


# --------------------------------------------------------- bad or missing files


def test_missing_radimagenet_file(isolated_weights):
    message = _both(weights_dir=isolated_weights / "empty",
                    error=weights.WeightsNotFoundError)
    for expected in (RESNET_FILE, RESNET_HYPHEN, str(isolated_weights / "empty"),
                     "keras_home", "radtl weights fetch radimagenet --arch resnet50",
                     DRIVE_FOLDER, "RADTL_WEIGHTS_DIR"):
        assert expected in message
    assert "\n" not in message  # one paragraph


def test_missing_explicit_path(tmp_path):
    message = _both(str(tmp_path / "nope" / "x.h5"), error=weights.WeightsNotFoundError)
    assert "does not exist" in message


def test_html_page_saved_as_the_weight_file(isolated_weights):
    folder = isolated_weights / "html"
    keras2_h5.write_html_page(folder / RESNET_FILE)
    message = _both(weights_dir=folder, error=weights.WeightsFormatError)
    for expected in (str(folder / RESNET_FILE), "is an HTML page",
                     "'Google Drive - Virus scan warning'", "Fix: delete it",
                     "radtl weights fetch radimagenet --arch resnet50", DRIVE_FOLDER):
        assert expected in message


def test_truncated_file(resnet, isolated_weights):
    folder = isolated_weights / "truncated"
    folder.mkdir()
    data = resnet["full"].read_bytes()
    (folder / RESNET_FILE).write_bytes(data[: len(data) // 2])
    message = _both(weights_dir=folder, error=weights.WeightsFormatError)
    assert str(folder / RESNET_FILE) in message
    assert "truncated" in message and "Fix: delete it" in message
    assert f"expected {RESNET_SIZE}" in message


@pytest.mark.parametrize("content, match", [
    (b"\x00\x01binary junk" * 10, "is not an HDF5 file"),
    (weights.ZIP_SIGNATURE + b"\x00" * 100, "is a zip archive"),
])
def test_files_that_are_not_hdf5(tmp_path, content, match):
    path = tmp_path / "other.h5"
    path.write_bytes(content)
    assert match in _both(str(path), error=weights.WeightsFormatError)


def test_hdf5_that_is_not_a_keras_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    message = _both(str(path), error=weights.WeightsFormatError)
    assert "not a Keras HDF5 weights file" in message


@pytest.mark.usefixtures("isolated_weights")
def test_pinned_checksum(resnet):
    digest = hashlib.sha256(resnet["full"].read_bytes()).hexdigest()
    folder = resnet["full"].parent
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matching pin replaces the third-party checks
        _assert_holds(_load(weights_dir=folder, sha256=digest), resnet["arrays"])
    message = _both(weights_dir=folder, sha256="0" * 64,
                    error=weights.WeightsChecksumError)
    assert str(resnet["full"]) in message
    assert "pinned checksum does not match" in message


def test_manifest_override_pins_a_hash(resnet, isolated_weights):
    folder = isolated_weights / "pinned"
    folder.mkdir()
    shutil.copy(resnet["full"], folder / RESNET_FILE)
    keras2_h5.write_manifest_override(folder, {RESNET_FILE: {"file_hash": "ab" * 32}})
    entry = weights.manifest(folder).entry(RESNET_FILE)
    # The packaged size describes another file: a pinned hash decides alone.
    assert (entry.hash_origin, entry.size) == ("user", None)
    assert "pinned checksum" in _both(weights_dir=folder,
                                      error=weights.WeightsChecksumError)


def test_manifest_override_pins_a_size(tiny, isolated_weights):
    folder = isolated_weights / "pinned"
    folder.mkdir()
    shutil.copy(tiny["full-model"], folder / RESNET_FILE)
    keras2_h5.write_manifest_override(folder, {RESNET_FILE: {"size": 123}})
    message = _both(weights_dir=folder, error=weights.WeightsChecksumError)
    assert "expected 123 (user size)" in message and "Fix: delete it" in message


@pytest.mark.usefixtures("isolated_weights")
def test_check_available_warns_on_a_third_party_size_and_returns_the_path(resnet):
    folder = resnet["full"].parent
    with pytest.warns(weights.WeightsChecksumWarning, match=f"expected {RESNET_SIZE}"):
        assert pretrained.check_available("resnet50", "radimagenet", folder) == (
            folder / RESNET_FILE)


@pytest.mark.parametrize("value", [None, "none", "NONE", "None"])
def test_check_available_random_init(value):
    assert pretrained.check_available("inception_v3", value) is None


def test_check_available_argument_errors():
    with pytest.raises(ValueError, match="Received: .*'resnet51'"):
        pretrained.check_available("resnet51", None)
    with pytest.raises(ValueError, match="not available for `vgg16`"):
        pretrained.check_available("vgg16", "radimagenet")


def test_check_available_imagenet(tiny, isolated_weights):
    # No local Keras file: None (Keras downloads it when the backbone is loaded).
    assert pretrained.check_available("resnet50", "imagenet") is None
    cache = weights.keras_cache_dir()
    cache.mkdir(parents=True)
    shutil.copy(tiny["weights-only"], cache / IMAGENET_RESNET)
    with pytest.warns(weights.WeightsChecksumWarning, match="keras hash"):
        assert pretrained.check_available("resnet50", "imagenet") == (
            cache / IMAGENET_RESNET)


# ---------------------------------------------------------------------- ImageNet


def test_imagenet_file_found_in_keras_cache(resnet, isolated_weights):
    cache = weights.keras_cache_dir()
    cache.mkdir(parents=True)
    shutil.copy(resnet["weights_only"], cache / IMAGENET_RESNET)
    with pytest.warns(weights.WeightsChecksumWarning, match="keras hash"):
        backbone = _load("imagenet")
    _assert_holds(backbone, resnet["arrays"])


def test_imagenet_download_failure_fails_fast(isolated_weights):
    url = keras2_h5.unreachable_url(IMAGENET_RESNET)
    folder = keras2_h5.write_manifest_override(isolated_weights / "mirror",
                                               {IMAGENET_RESNET: {"url": url}})
    start = time.monotonic()
    with pytest.raises(weights.WeightsDownloadError) as info:
        _load("imagenet", weights_dir=folder)
    assert time.monotonic() - start < 10
    message = str(info.value)
    for expected in (url, IMAGENET_RESNET, str(folder), "offline", "RADTL_WEIGHTS_DIR",
                     "radtl weights fetch imagenet --arch resnet50"):
        assert expected in message
    assert not list(weights.keras_cache_dir().glob("*.h5"))  # no partial file left


# ------------------------------------------------------------------------- fetch


class _FakeDrive(http.server.BaseHTTPRequestHandler):
    """Google Drive stand-in: /uc answers the virus-scan form, /download the file."""

    archive = None  # holds RESNET_FILE
    wrong_archive = None  # holds a file of another architecture as RESNET_FILE
    requests = []

    def do_GET(self):  # noqa: N802 (http.server API)
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        type(self).requests.append((parts.path, query))
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        if parts.path == "/uc":
            self._send("text/html; charset=utf-8", (
                "<html><body>Google Drive can't scan this file for viruses."
                f'<form id="download-form" action="{host}/download" method="get">'
                '<input type="hidden" name="id" value="abc">'
                '<input type="hidden" name="export" value="download">'
                '<input type="hidden" name="confirm" value="t">'
                '<input type="hidden" name="uuid" value="u-123">'
                "</form></body></html>").encode())
        elif parts.path == "/download" and query.get("uuid") == "u-123":
            self._send("application/octet-stream", self.archive.read_bytes())
        elif parts.path == "/wrong":
            self._send("application/zip", self.wrong_archive.read_bytes())
        elif parts.path == "/quota":
            self._send("text/html", b"<html>Quota exceeded</html>")
        elif parts.path == "/small":
            self._send("application/zip", b"PK\x03\x04" + b"\0" * 100)
        else:
            self.send_error(404)

    def _send(self, content_type, body):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def drive(resnet, tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("drive")
    archive, wrong = folder / "RadImageNet_models.zip", folder / "wrong.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("RadImageNet_models/notes.txt", "not a weight file")
        zf.write(resnet["full"], f"RadImageNet_models/{RESNET_FILE}")
    with zipfile.ZipFile(wrong, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("padding.bin", np.random.default_rng(0).bytes(1_000_000))
        zf.write(tiny["full-model"], f"RadImageNet_models/{RESNET_FILE}")
    _FakeDrive.archive, _FakeDrive.wrong_archive = archive, wrong
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDrive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_confirms_drive_page_extracts_and_verifies(drive, resnet, isolated_weights):
    dest = isolated_weights / "dest"
    _FakeDrive.requests.clear()
    with pytest.warns(weights.WeightsChecksumWarning, match="third-party"):
        result = pretrained.fetch("radimagenet", ["resnet50"], dest=dest,
                                  url=f"{drive}/uc?export=download&id=abc")
    assert [p for p, _ in _FakeDrive.requests] == ["/uc", "/download"]
    assert _FakeDrive.requests[1][1] == {"id": "abc", "export": "download",
                                         "confirm": "t", "uuid": "u-123"}
    assert sorted(p.name for p in dest.iterdir()) == [RESNET_FILE]  # zip removed
    assert (dest / RESNET_FILE).read_bytes() == resnet["full"].read_bytes()
    (status,) = result
    assert (status.filename, status.path, status.verified, status.message) == (
        RESNET_FILE, dest / RESNET_FILE, True, "downloaded")


def test_fetch_deletes_a_downloaded_file_that_fails_verification(drive,
                                                                 isolated_weights):
    dest = isolated_weights / "dest"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", weights.WeightsChecksumWarning)
        with pytest.raises(weights.WeightsError,
                           match="does not match the `resnet50` architecture"):
            pretrained.fetch("radimagenet", ["resnet50"], dest=dest, url=drive + "/wrong")
    assert not list(dest.iterdir())


@pytest.mark.parametrize("path, match", [
    ("/quota", "HTML page instead of the file"),
    ("/small", "at least 1,000,000 bytes"),
])
def test_fetch_rejects_html_and_small_payloads(drive, isolated_weights, path, match):
    dest = isolated_weights / "dest"
    with pytest.raises(weights.WeightsDownloadError, match=match) as info:
        pretrained.fetch("radimagenet", ["resnet50"], dest=dest, url=drive + path)
    assert "To install the RadImageNet weights by hand" in str(info.value)
    assert not list(dest.iterdir())


def test_fetch_offline_fails_fast_with_manual_steps(isolated_weights):
    url = keras2_h5.unreachable_url("uc?export=download&id=abc")
    start = time.monotonic()
    with pytest.raises(weights.WeightsDownloadError) as info:
        pretrained.fetch("radimagenet", dest=isolated_weights / "dest", url=url)
    assert time.monotonic() - start < 10
    message = str(info.value)
    for expected in ("offline", DRIVE_FOLDER,
                     "1UgYviv2K6QPM1SCexqqab5-yTgwoAFEc", "ipythonx/notop-wg-radimagenet",
                     "RadImageNet-IRV2_notop.h5", str(isolated_weights / "dest"),
                     "radtl weights list"):
        assert expected in message


def test_fetch_checks_files_already_present(resnet, isolated_weights):
    dest = isolated_weights / "dest"
    dest.mkdir()
    shutil.copy(resnet["weights_only"], dest / RESNET_HYPHEN)
    with pytest.warns(weights.WeightsChecksumWarning):
        (status,) = pretrained.fetch("radimagenet", ["resnet50"], dest=dest,
                                     url=keras2_h5.unreachable_url())
    assert (status.path, status.message) == (dest / RESNET_HYPHEN, "already present")
    # A present HTML page is reported (delete it), not skipped as if it were the file.
    (dest / RESNET_HYPHEN).unlink()
    keras2_h5.write_html_page(dest / RESNET_FILE)
    with pytest.raises(weights.WeightsFormatError,
                       match="is an HTML page.*Fix: delete it"):
        pretrained.fetch("radimagenet", ["resnet50"], dest=dest,
                         url=keras2_h5.unreachable_url())


def test_fetch_argument_errors():
    with pytest.raises(ValueError, match="Received: source='timm'"):
        pretrained.fetch("timm")
    with pytest.raises(ValueError, match=r"Received: backbones=\['vgg16'\]"):
        pretrained.fetch("radimagenet", ["vgg16"], url=keras2_h5.unreachable_url())


def test_drive_confirm_url_variants():
    url = "https://drive.google.com/uc?export=download&id=F1"
    form = ('<form id="download-form" action="https://drive.usercontent.google.com/'
            'download" method="get"><input type="hidden" name="id" value="F1">'
            '<input type="hidden" name="confirm" value="t">'
            '<input type="hidden" name="uuid" value="U9"></form>')
    assert download.drive_confirm_url(form, url) == (
        "https://drive.usercontent.google.com/download?id=F1&confirm=t&uuid=U9")
    old = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=Xy_1&amp;id=F1">'
    assert download.drive_confirm_url(old, url) == (
        "https://drive.google.com/uc?export=download&confirm=Xy_1&id=F1")
    assert download.drive_confirm_url("<html>Quota exceeded</html>", url) is None


def test_fetch_imagenet_uses_local_file(tiny, isolated_weights):
    dest = isolated_weights / "dest"
    dest.mkdir()
    shutil.copy(tiny["weights-only"], dest / IMAGENET_RESNET)
    with pytest.warns(weights.WeightsChecksumWarning, match="keras hash"):
        (status,) = pretrained.fetch("imagenet", ["resnet50"], dest=dest)
    assert (status.path, status.hash_ok) == (dest / IMAGENET_RESNET, False)


# ------------------------------------------------------------------------ status


def _reasons_shown(report):
    """Every row that is not OK has a reason, and the table shows each reason."""
    text = " ".join(str(report).split())
    for row in report.files:
        assert (row.state == "ok") == (not row.reasons), row
        for reason in row.reasons:
            assert " ".join(reason.split()) in text
    return {row.filename: row for row in report.files}, text


def test_status_shows_why_each_radimagenet_file_fails(tiny, isolated_weights):
    folder = isolated_weights / "mine"
    folder.mkdir()
    # Another architecture's weights under ResNet50's name: fails verification.
    shutil.copy(tiny["full-model"], folder / RESNET_FILE)
    keras2_h5.write_html_page(folder / "RadImageNet-DenseNet121_notop.h5")
    report = pretrained.status(folder, source="radimagenet", verify=True)
    assert report.search_dirs[0] == folder
    rows, text = _reasons_shown(report)
    assert sorted(rows) == sorted(
        backbones.get(n).radimagenet_file for n in backbones.radimagenet_names())
    mine = rows[RESNET_FILE]
    assert (mine.path, mine.state, mine.hash_ok, mine.verified) == (
        folder / RESNET_FILE, "FAIL", False, False)
    assert "does not match the `resnet50` architecture" in mine.errors[0]
    assert f"expected {RESNET_SIZE} (third-party size)" in mine.warnings[0]
    html = rows["RadImageNet-DenseNet121_notop.h5"]
    assert (html.state, html.verified) == ("FAIL", None)  # not loaded: not HDF5
    assert "is an HTML page" in html.errors[0]
    absent = rows["RadImageNet-IRV2_notop.h5"]
    assert (absent.state, absent.verified) == ("missing", None)
    assert "radtl weights fetch radimagenet --arch inception_resnet_v2" in absent.message
    assert str(folder) in text and "FAIL" in text


def test_status_shows_why_each_imagenet_file_fails(tiny, resnet, isolated_weights):
    folder = isolated_weights / "mine"
    folder.mkdir()
    (folder / backbones.get("vgg16").imagenet_file).write_bytes(b"\x00junk" * 50)
    data = resnet["weights_only"].read_bytes()
    (folder / IMAGENET_RESNET).write_bytes(data[: len(data) // 3])
    mobilenet = backbones.get("mobilenet_v2").imagenet_file
    shutil.copy(tiny["full-model"], folder / mobilenet)
    keras2_h5.write_manifest_override(folder, {mobilenet: {"size": 123}})
    rows, text = _reasons_shown(pretrained.status(folder, source="imagenet"))
    assert "is not an HDF5 file" in rows[backbones.get("vgg16").imagenet_file].errors[0]
    assert "truncated" in rows[IMAGENET_RESNET].errors[0]
    assert "expected 123 (user size)" in rows[mobilenet].errors[0]
    assert rows[mobilenet].hash_ok is False
    convnext = rows[backbones.get("convnext_tiny").imagenet_file]
    assert convnext.state == "missing" and "Keras downloads it" in convnext.message
    assert all(row.verified is None for row in rows.values())  # verify=False


# ---------------------------------------------------------------- import boundary


def _radtl_imports(module):
    tree = ast.parse((ROOT / "radtl" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("radtl"):
            found |= ({f"{node.module}.{a.name}" for a in node.names}
                      if node.module == "radtl" else {node.module})
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("radtl")}
    return found


def test_dependencies_point_down():
    assert _radtl_imports("weights") == set()
    assert _radtl_imports("download") == {"radtl.weights"}
    assert "radtl.weights" in _radtl_imports("backbones")
    assert not _radtl_imports("backbones") & {"radtl.download", "radtl.pretrained"}
    assert {"radtl.weights", "radtl.download", "radtl.backbones"} <= _radtl_imports(
        "pretrained")


def test_low_level_weight_modules_import_alone_without_tensorflow():
    script = (
        "import json, sys\n"
        "import radtl.weights\n"
        "first = sorted(m for m in sys.modules if m.startswith('radtl'))\n"
        "import radtl.download\n"
        "second = sorted(m for m in sys.modules if m.startswith('radtl'))\n"
        "heavy = sorted(m for m in ('keras', 'tensorflow') if m in sys.modules)\n"
        "print(json.dumps([first, second, heavy]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    first, second, heavy = json.loads(out.splitlines()[-1])
    assert first == ["radtl", "radtl.weights"]
    assert second == ["radtl", "radtl.download", "radtl.weights"]
    assert heavy == []
