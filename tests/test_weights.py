"""radtl.weights: legacy HDF5 layouts, lookup, hashes, verification, fetch, status.

Weight files are written by the tests (tests/keras2_h5.py, as tf.keras 2.x did) with
known random values; no test touches the network (downloads go to a local HTTP server
or to a closed local port).
"""
import hashlib
import http.server
import shutil
import threading
import time
import urllib.parse
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest

import keras2_h5
from keras2_h5 import isolated_weights  # noqa: F401  (fixture)
from radtl import backbones
from radtl import weights

SIZE = 32
RESNET_FILE = "RadImageNet-ResNet50_notop.h5"
RESNET_HYPHEN = "RadImageNet-ResNet50-notop.h5"
IMAGENET_RESNET = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


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


def _assert_holds(backbone, arrays):
    layers = [layer for layer in backbone.layers if layer.weights]
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


def test_keras_own_loader_reads_the_written_file_identically(resnet):
    # Cross-check of the test writer against keras.applications' own legacy loader.
    reference = keras.applications.ResNet50(
        include_top=False, weights=str(resnet["weights_only"]),
        input_shape=(SIZE, SIZE, 3), pooling="avg",
    )
    _assert_holds(reference, resnet["arrays"])


def test_read_legacy_h5_both_layouts(resnet):
    full = weights.read_legacy_h5(resnet["full"])
    only = weights.read_legacy_h5(resnet["weights_only"])
    assert (full.layout, only.layout) == ("full-model", "weights-only")
    assert [n for n, _ in full.layers] == [n for n, _ in only.layers] == list(
        resnet["arrays"]
    )


@pytest.mark.usefixtures("isolated_weights")
def test_full_model_layout_loads_exact_values_from_weights_dir(resnet):
    with pytest.warns(UserWarning, match="third-party hash"):
        backbone = _load(weights_dir=resnet["full"].parent)
    assert backbone.name == "resnet50"
    _assert_holds(backbone, resnet["arrays"])


def test_weights_only_hyphen_spelling_loads_from_env_dir(resnet, isolated_weights,
                                                        monkeypatch):
    monkeypatch.setenv("RADTL_WEIGHTS_DIR", str(resnet["weights_only"].parent))
    # The hyphen file is found under the canonical entry; its hash differs (warns).
    with pytest.warns(UserWarning, match="third-party"):
        backbone = _load()
    _assert_holds(backbone, resnet["arrays"])


@pytest.mark.usefixtures("isolated_weights")
def test_explicit_path_loads_exact_values(resnet):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit path has no manifest hash
        backbone = _load(str(resnet["weights_only"]))
    _assert_holds(backbone, resnet["arrays"])


# ------------------------------------------------------------------------ lookup


def test_lookup_order(isolated_weights, monkeypatch):
    tmp = isolated_weights
    folders = {key: tmp / key for key in ("arg", "env", "repo_weights",
                                          "keras_home/models")}
    monkeypatch.setenv("RADTL_WEIGHTS_DIR", str(folders["env"]))
    assert weights.search_dirs(folders["arg"]) == list(folders.values())
    for folder in reversed(list(folders.values())):  # each folder shadows the later
        folder.mkdir(parents=True)
        (folder / RESNET_HYPHEN).write_bytes(b"")
        assert weights.find(RESNET_FILE, folders["arg"]) == folder / RESNET_HYPHEN
    (folders["arg"] / RESNET_FILE).write_bytes(b"")  # canonical spelling first
    assert weights.find(RESNET_HYPHEN, folders["arg"]) == folders["arg"] / RESNET_FILE


# ------------------------------------------------------------------- bad files


def test_missing_radimagenet_file(isolated_weights):
    with pytest.raises(weights.WeightsNotFoundError) as info:
        _load(weights_dir=isolated_weights / "empty")
    message = str(info.value)
    for expected in (RESNET_FILE, RESNET_HYPHEN, str(isolated_weights / "empty"),
                     "keras_home", "cli.py weights fetch radimagenet", "README.md"):
        assert expected in message


def test_missing_explicit_path(tmp_path):
    with pytest.raises(weights.WeightsNotFoundError, match="does not exist"):
        _load(str(tmp_path / "nope" / "x.h5"))


def test_truncated_file(resnet, isolated_weights):
    folder = isolated_weights / "truncated"
    folder.mkdir()
    data = resnet["full"].read_bytes()
    (folder / RESNET_FILE).write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="third-party"):
        with pytest.raises(weights.WeightsError) as info:
            _load(weights_dir=folder)
    message = str(info.value)
    assert str(folder / RESNET_FILE) in message
    assert "truncated" in message and "Fix:" in message
    assert "expected 94,852,768" in message  # the manifest's size


def test_file_of_another_architecture(resnet):
    with pytest.raises(weights.WeightsError) as info:
        backbones.load_backbone("vgg16", str(resnet["full"]), input_shape=(SIZE, SIZE, 3))
    message = str(info.value)
    assert str(resnet["full"]) in message
    assert "does not match the `vgg16` architecture" in message
    assert "13" in message and "106" in message  # layer counts: vgg16 vs file
    assert "Fix:" in message


def test_not_a_keras_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(weights.WeightsError, match="not a Keras HDF5 weights file"):
        _load(str(path))


@pytest.mark.usefixtures("isolated_weights")
def test_pinned_checksum(resnet):
    digest = hashlib.sha256(resnet["full"].read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matching pin replaces the third-party hash
        _assert_holds(_load(weights_dir=resnet["full"].parent, sha256=digest),
                      resnet["arrays"])
    with pytest.raises(weights.WeightsError) as info:
        _load(weights_dir=resnet["full"].parent, sha256="0" * 64)
    assert str(resnet["full"]) in str(info.value)
    assert "pinned checksum does not match" in str(info.value)


def test_manifest_override_pins_a_hash(resnet, isolated_weights):
    folder = isolated_weights / "pinned"
    folder.mkdir()
    shutil.copy(resnet["full"], folder / RESNET_FILE)
    keras2_h5.write_manifest_override(folder, {RESNET_FILE: {"file_hash": "ab" * 32}})
    entry = weights.manifest(folder).entry(RESNET_FILE)
    assert (entry.hash_origin, entry.size) == ("user", 94_852_768)
    with pytest.raises(weights.WeightsError, match="pinned checksum"):
        _load(weights_dir=folder)


def test_verify_detects_values_that_were_not_loaded(resnet):
    # A random-init backbone (what silent by-name loading leaves) fails verification.
    random_init = backbones.load_backbone("resnet50", None, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(weights.WeightsError, match="does not hold the weights") as info:
        weights.verify(random_init, resnet["full"])
    assert "conv1_conv" in str(info.value)


# ---------------------------------------------------------------------- ImageNet


def test_imagenet_file_found_in_keras_cache(resnet, isolated_weights):
    cache = weights.keras_cache_dir()
    cache.mkdir(parents=True)
    shutil.copy(resnet["weights_only"], cache / IMAGENET_RESNET)
    with pytest.warns(UserWarning, match="keras hash"):
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
    for expected in (url, IMAGENET_RESNET, str(folder), "offline", "RADTL_WEIGHTS_DIR"):
        assert expected in message
    assert not list(weights.keras_cache_dir().glob("*.h5"))  # no partial file left


# ------------------------------------------------------------------------- fetch


class _FakeDrive(http.server.BaseHTTPRequestHandler):
    """Google Drive stand-in: /uc answers the virus-scan form, /download the file."""

    archive = None
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
def drive(resnet, tmp_path_factory):
    archive = tmp_path_factory.mktemp("drive") / "RadImageNet_models.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("RadImageNet_models/notes.txt", "not a weight file")
        zf.write(resnet["full"], f"RadImageNet_models/{RESNET_FILE}")
    _FakeDrive.archive = archive
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDrive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_confirms_drive_page_extracts_and_verifies(drive, resnet, isolated_weights):
    dest = isolated_weights / "dest"
    _FakeDrive.requests.clear()
    with pytest.warns(UserWarning, match="third-party"):
        result = weights.fetch("radimagenet", ["resnet50"], dest=dest,
                               url=f"{drive}/uc?export=download&id=abc")
    assert [p for p, _ in _FakeDrive.requests] == ["/uc", "/download"]
    assert _FakeDrive.requests[1][1] == {"id": "abc", "export": "download",
                                         "confirm": "t", "uuid": "u-123"}
    assert sorted(p.name for p in dest.iterdir()) == [RESNET_FILE]  # zip removed
    assert (dest / RESNET_FILE).read_bytes() == resnet["full"].read_bytes()
    (status,) = result
    assert (status.filename, status.path, status.verified) == (
        RESNET_FILE, dest / RESNET_FILE, True)


@pytest.mark.parametrize("path, match", [
    ("/quota", "HTML page instead of the file"),
    ("/small", "at least 1,000,000 bytes"),
])
def test_fetch_rejects_html_and_small_payloads(drive, isolated_weights, path, match):
    dest = isolated_weights / "dest"
    with pytest.raises(weights.WeightsDownloadError, match=match) as info:
        weights.fetch("radimagenet", ["resnet50"], dest=dest, url=drive + path)
    assert "To install the RadImageNet weights by hand" in str(info.value)
    assert not list(dest.iterdir())


def test_fetch_offline_fails_fast_with_manual_steps(isolated_weights):
    url = keras2_h5.unreachable_url("uc?export=download&id=abc")
    start = time.monotonic()
    with pytest.raises(weights.WeightsDownloadError) as info:
        weights.fetch("radimagenet", dest=isolated_weights / "dest", url=url)
    assert time.monotonic() - start < 10
    message = str(info.value)
    for expected in ("offline", "drive.google.com/drive/folders/1Es7cK1hv7zNHJoUW0tI0e6nL",
                     "1UgYviv2K6QPM1SCexqqab5-yTgwoAFEc", "ipythonx/notop-wg-radimagenet",
                     "RadImageNet-IRV2_notop.h5", str(isolated_weights / "dest")):
        assert expected in message


def test_fetch_skips_files_already_present(resnet, isolated_weights):
    dest = isolated_weights / "dest"
    dest.mkdir()
    shutil.copy(resnet["weights_only"], dest / RESNET_HYPHEN)
    (status,) = weights.fetch("radimagenet", ["resnet50"], dest=dest,
                              url=keras2_h5.unreachable_url())
    assert (status.path, status.message) == (dest / RESNET_HYPHEN, "already present")


def test_fetch_argument_errors():
    with pytest.raises(ValueError, match="Received: source='timm'"):
        weights.fetch("timm")
    with pytest.raises(ValueError, match=r"Received: backbones=\['vgg16'\]"):
        weights.fetch("radimagenet", ["vgg16"], url=keras2_h5.unreachable_url())


def test_drive_confirm_url_variants():
    url = "https://drive.google.com/uc?export=download&id=F1"
    form = ('<form id="download-form" action="https://drive.usercontent.google.com/'
            'download" method="get"><input type="hidden" name="id" value="F1">'
            '<input type="hidden" name="confirm" value="t">'
            '<input type="hidden" name="uuid" value="U9"></form>')
    assert weights.drive_confirm_url(form, url) == (
        "https://drive.usercontent.google.com/download?id=F1&confirm=t&uuid=U9")
    old = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=Xy_1&amp;id=F1">'
    assert weights.drive_confirm_url(old, url) == (
        "https://drive.google.com/uc?export=download&confirm=Xy_1&id=F1")
    assert weights.drive_confirm_url("<html>Quota exceeded</html>", url) is None


# ------------------------------------------------------------------------ status


def test_status_lists_files_dirs_and_checks(resnet, isolated_weights):
    folder = isolated_weights / "mine"
    folder.mkdir()
    shutil.copy(resnet["full"], folder / RESNET_FILE)
    report = weights.status(folder, source="radimagenet", verify=True)
    assert report.search_dirs[0] == folder
    rows = {row.filename: row for row in report.files}
    assert sorted(rows) == sorted(
        backbones.get(n).radimagenet_file for n in backbones.radimagenet_names())
    mine = rows[RESNET_FILE]
    assert (mine.path, mine.hash_ok, mine.verified) == (folder / RESNET_FILE, False, True)
    absent = rows["RadImageNet-IRV2_notop.h5"]
    assert (absent.present, absent.verified) == (False, None)
    assert "drive.google.com" in absent.message
    text = str(report)
    assert str(folder) in text and "RadImageNet-IRV2_notop.h5" in text
    assert "FAIL" in text  # the third-party hash mismatch is shown


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


def test_fetch_imagenet_uses_local_file_or_keras_download(resnet, isolated_weights):
    dest = isolated_weights / "dest"
    dest.mkdir()
    shutil.copy(resnet["weights_only"], dest / IMAGENET_RESNET)
    with pytest.warns(UserWarning, match="keras hash"):
        (status,) = weights.fetch("imagenet", ["resnet50"], dest=dest)
    assert (status.path, status.hash_ok) == (dest / IMAGENET_RESNET, False)
