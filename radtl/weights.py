"""Pretrained weight files: lookup, manifest, hashing, verified loading, fetch, status.

radtl loads the official RadImageNet Keras files and Keras' own ImageNet files, all
legacy Keras-2 HDF5 files in one of two layouts:

- full-model (`model.save()`): a `model_weights` group holding the layout below;
- weights-only (`save_weights()`): root attribute `layer_names`, one group per layer with
  attribute `weight_names` (e.g. `conv1_conv/kernel:0`) naming its datasets.

Known files are described in `weights/manifest.json` (file name, accepted spellings,
architecture, size, hash and where the hash comes from, download URL). No official
checksums exist for the RadImageNet files; the one known hash (ResNet50) is third-party,
so a mismatch with it only warns and the structural check decides. A hash the user pins
(the `sha256` argument, or a `manifest.json` placed in `weights_dir` /
`$RADTL_WEIGHTS_DIR`, whose entries override the repository's) must match.

Files are looked up, in order, in: the `weights_dir` argument, `$RADTL_WEIGHTS_DIR`, the
repository's `weights/` folder, and the Keras cache `$KERAS_HOME/models`
(`~/.keras/models`). For each RadImageNet file both the distributed spelling
(`RadImageNet-ResNet50_notop.h5`) and the official scripts' spelling
(`RadImageNet-ResNet50-notop.h5`) are accepted.

`load_into(model, path)` pairs the file's layers with the model's layers with weights in
topological order (Keras' rule for these files; InceptionV3's automatically named layers
carry session-dependent names), checks counts, shapes and names, assigns the arrays and
then compares every variable with the file, so a file that loads nothing or the wrong
thing is an error, never a silent random backbone.

Example:

```python
from radtl import weights

print(weights.status())          # known files, where radtl looks, what is present
weights.fetch("radimagenet", ["resnet50"])   # needs network access to Google Drive
```
"""
import dataclasses
import hashlib
import html
import http.cookiejar
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np

logger = logging.getLogger(__name__)

# The repository's `weights/` folder (manifest, README, and where users put files).
REPO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST_NAME = "manifest.json"
MANIFEST_PATH = REPO_WEIGHTS_DIR / MANIFEST_NAME
README_PATH = REPO_WEIGHTS_DIR / "README.md"
ENV_VAR = "RADTL_WEIGHTS_DIR"

# What a hash mismatch does, by where the hash comes from.
HASH_MISMATCH = {"user": "error", "keras": "warn", "third-party": "warn"}

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A weight file is unreadable, of another architecture, or fails its checksum."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weight file is in none of the folders radtl searches."""


class WeightsDownloadError(WeightsError, ConnectionError):
    """A download failed (offline, refused, HTML instead of the file, too small)."""


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One known weight file (a `files` entry of `weights/manifest.json`).

    Attributes:
        filename: str. Canonical file name.
        source: str. "radimagenet" or "imagenet".
        architecture: str. The architecture the file was saved from.
        url: str. Where to download it (a direct URL for ImageNet files, the official
            Drive folder for RadImageNet files).
        aliases: tuple of str. Other accepted spellings.
        size: int or None. Size in bytes, where known.
        file_hash: str or None. sha256 (64 hex digits) or md5 (32), where known.
        hash_origin: str or None. "keras", "third-party" or "user" (see HASH_MISMATCH).
        note: str. Provenance notes.
    """

    filename: str
    source: str
    architecture: str
    url: str
    aliases: tuple = ()
    size: int = None
    file_hash: str = None
    hash_origin: str = None
    note: str = ""

    @property
    def names(self):
        """Accepted file names, canonical first."""
        return (self.filename, *self.aliases)


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A downloadable archive holding several weight files (`bundles` in the manifest).

    Attributes:
        name: str. Source it provides ("radimagenet").
        filename: str. The archive's file name.
        url: str. Human-facing link.
        download_url: str. Direct download URL.
        size: int or None. Size in bytes, where known.
        min_bytes: int. A smaller payload is rejected (an error page, not the archive).
        mirrors: tuple of str. Other places to get the files by hand.
    """

    name: str
    filename: str
    url: str
    download_url: str
    size: int = None
    min_bytes: int = 1_000_000
    mirrors: tuple = ()


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Known files and bundles, with user overrides applied."""

    files: dict
    bundles: dict

    def entry(self, filename):
        """The entry whose canonical name or alias is `filename`."""
        for entry in self.files.values():
            if filename in entry.names:
                return entry
        raise ValueError(
            f"`filename` must be a file listed in {MANIFEST_PATH}: "
            f"{sorted(self.files)}. Received: filename={filename!r}"
        )


@dataclasses.dataclass(frozen=True)
class FileStatus:
    """Where a known file is and whether it checked out (one row of `status()`)."""

    filename: str
    source: str
    architecture: str
    path: Path = None
    size: int = None
    hash_ok: bool = None
    verified: bool = None
    message: str = ""

    @property
    def present(self):
        return self.path is not None


@dataclasses.dataclass(frozen=True)
class Status:
    """Result of `status()`: the folders searched and one `FileStatus` per known file."""

    search_dirs: list
    files: list

    def __str__(self):
        lines = ["radtl looks for weight files in (first match wins):"]
        lines += [f"  {i}. {d}{'' if d.is_dir() else '  (missing)'}"
                  for i, d in enumerate(self.search_dirs, 1)]
        lines.append("")
        header = ("file", "source", "present", "hash", "verified", "path / note")
        rows = [header] + [
            (
                f.filename, f.source, "yes" if f.present else "no",
                _tick(f.hash_ok), _tick(f.verified),
                str(f.path) if f.present else f.message,
            )
            for f in self.files
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row, widths)]
            lines.append("  ".join(cells + [row[-1]]).rstrip())
        return "\n".join(lines)


def _tick(value):
    return {True: "ok", False: "FAIL", None: "-"}[value]


# --------------------------------------------------------------------------- lookup


def keras_cache_dir():
    """The folder `keras.utils.get_file(..., cache_subdir="models")` uses."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def search_dirs(weights_dir=None):
    """Folders searched for weight files, in order (duplicates removed).

    Args:
        weights_dir: str or Path, searched first. Defaults to None.

    Returns:
        list of Path: `weights_dir`, `$RADTL_WEIGHTS_DIR`, the repository's `weights/`,
        the Keras cache.
    """
    candidates = [weights_dir, os.environ.get(ENV_VAR) or None, REPO_WEIGHTS_DIR,
                  keras_cache_dir()]
    dirs = []
    for candidate in candidates:
        if candidate is not None and Path(candidate).expanduser() not in dirs:
            dirs.append(Path(candidate).expanduser())
    return dirs


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(
            f"Could not read the weights manifest {path}: {error}. Fix the JSON or "
            "delete the file."
        ) from error


def manifest(weights_dir=None):
    """Load `weights/manifest.json` and apply user overrides.

    A `manifest.json` in `weights_dir` or `$RADTL_WEIGHTS_DIR` may override fields of
    any entry (e.g. `{"files": {"RadImageNet-ResNet50_notop.h5": {"file_hash": "..."}}}`
    or a mirror `url`); a hash given there is user-pinned (a mismatch is an error).

    Args:
        weights_dir: str or Path. Defaults to None.

    Returns:
        Manifest.
    """
    data = _read_json(MANIFEST_PATH)
    files = {name: dict(fields, filename=name) for name, fields in data["files"].items()}
    for folder in (weights_dir, os.environ.get(ENV_VAR) or None):
        override = Path(folder).expanduser() / MANIFEST_NAME if folder else None
        if override is None or not override.is_file() or override == MANIFEST_PATH:
            continue
        for name, fields in _read_json(override).get("files", {}).items():
            if name not in files:
                raise WeightsError(
                    f"{override} overrides unknown file {name!r}. Overrides must name a "
                    f"file of {MANIFEST_PATH}: {sorted(files)}. Fix the file name."
                )
            merged = files[name]
            merged.update(fields)
            if "file_hash" in fields:
                merged["hash_origin"] = "user"
    entries = {
        name: FileEntry(**{**fields, "aliases": tuple(fields.get("aliases", ()))})
        for name, fields in files.items()
    }
    bundles = {
        name: Bundle(name=name, **{**fields, "mirrors": tuple(fields.get("mirrors", ()))})
        for name, fields in data.get("bundles", {}).items()
    }
    return Manifest(files=entries, bundles=bundles)


def find(filename, weights_dir=None):
    """Return the first existing file among `filename`'s accepted spellings, or None.

    Args:
        filename: str. A file name from the manifest (canonical or alias).
        weights_dir: str or Path. Searched first. Defaults to None.

    Returns:
        Path or None.
    """
    entry = manifest(weights_dir).entry(filename)
    for folder in search_dirs(weights_dir):
        for name in entry.names:
            if (folder / name).is_file():
                return folder / name
    return None


# -------------------------------------------------------------------------- hashing


def file_hash(path, algorithm="sha256"):
    """Hex digest of a file ("sha256" or "md5")."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _algorithm(expected):
    return "sha256" if len(expected) == 64 else "md5"


def check_hash(path, expected, origin):
    """Compare a file's hash with `expected`; error or warn per `HASH_MISMATCH[origin]`.

    Args:
        path: Path of the file.
        expected: str. sha256 (64 hex) or md5 (32 hex) digest.
        origin: str. "user", "keras" or "third-party".

    Returns:
        bool: whether the hash matched.

    Raises:
        WeightsError: mismatch with a user-pinned hash.
    """
    actual = file_hash(path, _algorithm(expected))
    if actual == expected.lower():
        return True
    message = (
        f"Weight file {path} has {_algorithm(expected)} {actual}, expected {expected} "
        f"({origin} hash), size {Path(path).stat().st_size:,} bytes."
    )
    if HASH_MISMATCH[origin] == "error":
        raise WeightsError(
            f"{message} The pinned checksum does not match: the file is corrupt, "
            "truncated or a different file. Fix: download it again (see "
            f"{README_PATH}), or pin the hash of the file you trust."
        )
    warnings.warn(
        f"{message} That hash is not authoritative, so radtl goes on and relies on the "
        "structural check of the file against the architecture.",
        stacklevel=3,
    )
    return False


def check_file(path, sha256=None):
    """Return `path` as a Path after checking it exists (and matches `sha256` if given).

    Raises:
        WeightsNotFoundError: no such file.
        WeightsError: `sha256` given and different.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Weight file {path} does not exist. Expected a legacy Keras HDF5 (.h5) "
            "file. Fix: check the path, or pass weights='radimagenet' / 'imagenet' to "
            "use the registered files."
        )
    if sha256:
        check_hash(path, sha256, "user")
    return path


def _missing_message(entry, weights_dir):
    folders = "\n".join(f"  - {d}" for d in search_dirs(weights_dir))
    return (
        f"{entry.source} weight file {entry.filename} ({entry.architecture}) not found. "
        f"Accepted names: {list(entry.names)}. radtl looked in:\n{folders}\n"
    )


def resolve(filename, *, weights_dir=None, sha256=None, download=True):
    """Locate a known weight file, downloading ImageNet files if needed; check its hash.

    ImageNet files missing from every search folder are downloaded with
    `keras.utils.get_file` into the Keras cache (`$KERAS_HOME/models`), verified against
    Keras' published hash, exactly as `keras.applications` does. RadImageNet files are
    never downloaded here (see `fetch`).

    Args:
        filename: str. A manifest file name.
        weights_dir: str or Path. Searched first. Defaults to None.
        sha256: str. User-pinned sha256; a mismatch is an error. Defaults to None.
        download: bool. Allow the ImageNet download. Defaults to True.

    Returns:
        Path of the file.

    Raises:
        WeightsNotFoundError: a RadImageNet file is missing (or download=False).
        WeightsDownloadError: the ImageNet download failed.
        WeightsError: hash mismatch with a pinned hash.
    """
    entry = manifest(weights_dir).entry(filename)
    path = find(entry.filename, weights_dir)
    if path is None and entry.source == "imagenet" and download:
        path = _keras_download(entry, weights_dir, sha256)
    if path is None:
        raise WeightsNotFoundError(_missing_message(entry, weights_dir) + _fix(entry))
    if sha256:
        check_hash(path, sha256, "user")
    elif entry.file_hash:
        check_hash(path, entry.file_hash, entry.hash_origin or "third-party")
    return path


def _fix(entry):
    if entry.source == "radimagenet":
        return (
            "Fix: run `python cli.py weights fetch radimagenet`, or download it by hand "
            f"as described in {README_PATH} and put it in one of "
            f"those folders (or set ${ENV_VAR})."
        )
    return (
        f"Fix: download {entry.url} and put it in one of those folders "
        f"(or set ${ENV_VAR})."
    )


def _keras_download(entry, weights_dir, sha256):
    import keras  # deferred: plain file lookup does not need Keras

    cache = keras_cache_dir()
    try:
        return Path(
            keras.utils.get_file(
                entry.filename,
                entry.url,
                cache_subdir="models",
                cache_dir=str(cache.parent),
                file_hash=sha256 or entry.file_hash,
            )
        )
    except Exception as error:  # get_file raises bare Exception on URL failures
        raise WeightsDownloadError(
            _missing_message(entry, weights_dir)
            + f"Downloading it from {entry.url} failed ({error}). If this machine is "
            f"offline, download {entry.url} elsewhere and put "
            f"{entry.filename} in one of the folders above (or set ${ENV_VAR})."
        ) from error


# ------------------------------------------------------------------- HDF5 reading


@dataclasses.dataclass(frozen=True)
class LegacyWeights:
    """Arrays of a legacy Keras HDF5 file: [(layer_name, [array, ...]), ...].

    Only layers with weights, in the file's `layer_names` (topological) order; each
    layer's arrays in its `weight_names` order (trainable, then non-trainable).
    """

    path: Path
    layout: str  # "full-model" or "weights-only"
    layers: list


def _attribute_list(group, name):
    """A string-list attribute, including Keras' chunked `<name>0`, `<name>1`, ..."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v)
            for chunk in chunks for v in np.atleast_1d(chunk)]


def read_legacy_h5(path, expected_size=None):
    """Read every weighted layer's arrays from a legacy Keras-2 HDF5 file.

    Args:
        path: str or Path.
        expected_size: int. The file's known size in bytes, quoted in errors.
            Defaults to None.

    Returns:
        LegacyWeights.

    Raises:
        WeightsError: the file is not readable HDF5 (truncated / corrupt download) or
            not a Keras HDF5 weights file.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs or "layer_names0" in f.attrs:
                group, layout = f, "weights-only"
            elif "model_weights" in f:
                group, layout = f["model_weights"], "full-model"
            else:
                raise WeightsError(
                    f"{path} is HDF5 but not a Keras HDF5 weights file: no `layer_names` "
                    f"attribute and no `model_weights` group (found {sorted(f)[:5]}). "
                    "Expected the no-top .h5 file of the architecture (Keras-2 "
                    "`model.save()` or `save_weights()` layout). Fix: pass the right "
                    "file."
                )
            layers = []
            for name in _attribute_list(group, "layer_names"):
                weight_names = _attribute_list(group[name], "weight_names")
                if weight_names:
                    layers.append(
                        (name, [np.asarray(group[name][w]) for w in weight_names])
                    )
    except (OSError, KeyError) as error:
        size = path.stat().st_size if path.exists() else 0
        expected = f", expected {expected_size:,}" if expected_size else ""
        raise WeightsError(
            f"Weight file {path} ({size:,} bytes{expected}) could not be read as a "
            f"complete Keras HDF5 file: {error}. It is probably truncated or corrupt "
            "(an interrupted download, or an HTML error page saved as .h5). Fix: delete "
            f"it and download it again (see {README_PATH})."
        ) from error
    return LegacyWeights(path=path, layout=layout, layers=layers)


# ------------------------------------------------------------- loading and checks


def _legacy_variables(layer):
    # Keras-2 HDF5 order: trainable, then non-trainable (keras legacy_h5_format).
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _base_name(name):
    return re.sub(r"_\d+$", "", name)


def _structure_problems(model, legacy):
    """Differences in layer count, names and shapes between `model` and a file."""
    model_layers = [layer for layer in model.layers if layer.weights]
    problems = []
    if len(model_layers) != len(legacy.layers):
        problems.append(
            f"the file has {len(legacy.layers)} layers with weights, `{model.name}` "
            f"has {len(model_layers)}"
        )
    for layer, (name, arrays) in zip(model_layers, legacy.layers):
        expected = [tuple(v.shape) for v in _legacy_variables(layer)]
        received = [tuple(a.shape) for a in arrays]
        if _base_name(layer.name) != _base_name(name) or expected != received:
            problems.append(
                f"layer {layer.name!r} expects shapes {expected}, the file's layer "
                f"{name!r} has {received}"
            )
        if len(problems) >= 4:
            break
    return problems


def _value_problems(model, legacy):
    """Model layers whose variables differ from the file's arrays."""
    model_layers = [layer for layer in model.layers if layer.weights]
    problems = []
    for layer, (name, arrays) in zip(model_layers, legacy.layers):
        values = [np.asarray(v.numpy()) for v in _legacy_variables(layer)]
        if len(values) != len(arrays) or not all(
            v.shape == a.shape and np.array_equal(v, a.astype(v.dtype))
            for v, a in zip(values, arrays)
        ):
            problems.append(f"{layer.name} (file layer {name!r})")
    if len(model_layers) != len(legacy.layers):
        problems.append(
            f"{abs(len(model_layers) - len(legacy.layers))} layers without a counterpart"
        )
    return problems


def verify(model, path, legacy=None):
    """Check that every layer with weights in `model` holds the values in `path`.

    Args:
        model: keras.Model.
        path: str or Path of a legacy Keras HDF5 file.
        legacy: LegacyWeights already read from `path`. Defaults to None (read it).

    Raises:
        WeightsError: layers whose values differ from the file (listed).
    """
    legacy = legacy or read_legacy_h5(path)
    problems = _structure_problems(model, legacy) or _value_problems(model, legacy)
    if problems:
        raise WeightsError(
            f"`{model.name}` does not hold the weights of {path}: "
            f"{len(problems)} problem(s), e.g. {problems[:5]}. Fix: load the file with "
            "radtl.backbones.load_backbone(..., weights=<path>)."
        )


def load_into(model, path, *, expected_size=None):
    """Load a legacy Keras HDF5 file into `model`, checked before and verified after.

    Layers are paired in topological order (as `keras.Model.load_weights` does for
    these files); the count, each pair's shapes and names (up to a `_<n>` suffix) must
    agree. After assignment every variable is compared with the file (`verify`).

    Args:
        model: keras.Model built without top (e.g. `radtl.backbones.build`).
        path: str or Path.
        expected_size: int. The file's known size in bytes, quoted in errors.
            Defaults to None.

    Returns:
        LegacyWeights that were loaded.

    Raises:
        WeightsError: unreadable file, a file of another architecture, or values that
            did not arrive.
    """
    legacy = read_legacy_h5(path, expected_size)
    problems = _structure_problems(model, legacy)
    if problems:
        raise WeightsError(
            f"Weight file {path} does not match the `{model.name}` architecture "
            f"(input shape {tuple(model.input_shape[1:])}): {'; '.join(problems)}. "
            f"Expected a no-top Keras HDF5 file saved from `{model.name}` with 3 input "
            "channels. Fix: pass the file made for this backbone (`radtl.weights."
            "status()` lists them), or choose the backbone this file belongs to."
        )
    model_layers = [layer for layer in model.layers if layer.weights]
    for layer, (_, arrays) in zip(model_layers, legacy.layers):
        for variable, array in zip(_legacy_variables(layer), arrays):
            variable.assign(array)
    verify(model, path, legacy)
    logger.info("Loaded and verified %d layers of %s (%s layout) into %s",
                len(legacy.layers), path, legacy.layout, model.name)
    return legacy


# ----------------------------------------------------------------------- download


def manual_steps(dest=None):
    """Human-readable steps to get the RadImageNet files by hand.

    Args:
        dest: str or Path, where to put them. Defaults to the first writable folder
            radtl searches (`$RADTL_WEIGHTS_DIR` or the repository's `weights/`).

    Returns:
        str.
    """
    info = manifest()
    bundle = info.bundles["radimagenet"]
    dest = Path(dest) if dest else _default_dest()
    names = [e.filename for e in info.files.values() if e.source == "radimagenet"]
    mirrors = "".join(f"\n     or the mirror: {m}" for m in bundle.mirrors)
    folder = next(
        (e.url for e in info.files.values() if e.source == "radimagenet"), bundle.url
    )
    return (
        "To install the RadImageNet weights by hand:\n"
        f"  1. Download the Drive folder {folder}\n"
        f"     or the single zip {bundle.url} ({bundle.filename}){mirrors}\n"
        f"  2. Put these files (unzipped) in {dest}:\n"
        + "".join(f"       {n}\n" for n in names)
        + f"     (or in a folder named by ${ENV_VAR}; the '-notop.h5' spelling works"
        " too)\n"
        "  3. Check them: python cli.py weights list"
    )


def _default_dest():
    return Path(os.environ.get(ENV_VAR) or REPO_WEIGHTS_DIR).expanduser()


class _HTMLPage(Exception):
    def __init__(self, text):
        super().__init__("HTML page")
        self.text = text


def drive_confirm_url(page, url):
    """The URL that confirms a Google Drive "can't scan for viruses" download page.

    Handles the current page (a form posting to drive.usercontent.google.com with
    hidden `id`, `export`, `confirm`, `uuid` inputs) and the older one (a link or
    cookie carrying `confirm=<token>`).

    Args:
        page: str. The HTML Google Drive returned instead of the file.
        url: str. The URL that returned it.

    Returns:
        str, or None when the page holds no confirmation (quota exceeded, no access).
    """
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', page)
    if form:
        fields = dict(re.findall(
            r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
        action = html.unescape(form.group(1))
        return f"{action}?{urllib.parse.urlencode(fields)}" if fields else action
    link = re.search(r'href="(/uc\?export=download[^"]*confirm=[^"]+)"', page)
    if link:
        return urllib.parse.urljoin(url, html.unescape(link.group(1)))
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token:
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query), confirm=token.group(1))
        query = urllib.parse.urlencode(query)
        return urllib.parse.urlunsplit(parts._replace(query=query))
    return None


def _stream(opener, url, target, timeout):
    """Write `url`'s body to `target`; raise _HTMLPage when the body is HTML."""
    request = urllib.request.Request(url, headers={"User-Agent": "radtl"})
    with opener.open(request, timeout=timeout) as response:
        first = response.read(_CHUNK)
        content_type = response.headers.get("Content-Type", "")
        if "text/html" in content_type or first.lstrip()[:1] == b"<":
            raise _HTMLPage((first + response.read(4 * _CHUNK)).decode("utf8", "replace"))
        with open(target, "wb") as out:
            out.write(first)
            shutil.copyfileobj(response, out, _CHUNK)


def download(url, target, *, timeout=60.0, min_bytes=1_000_000, instructions=""):
    """Download `url` to `target`, following Google Drive's virus-scan confirmation.

    Args:
        url: str. http(s) URL.
        target: Path. Written atomically (via `<target>.part`).
        timeout: float. Seconds per connection attempt. Defaults to 60.
        min_bytes: int. Smaller payloads are rejected. Defaults to 1 MB.
        instructions: str. Appended to every error (e.g. `manual_steps()`).

    Returns:
        Path of the file.

    Raises:
        WeightsDownloadError: unreachable URL, HTML instead of the file, a payload that
            is neither zip nor HDF5, or smaller than `min_bytes`.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    current = url
    try:
        for _ in range(2):  # the file, or the confirmation page and then the file
            try:
                _stream(opener, current, part, timeout)
                break
            except _HTMLPage as page:
                confirmed = drive_confirm_url(page.text, current)
                if confirmed is None or confirmed == current:
                    raise WeightsDownloadError(
                        f"{url} returned an HTML page instead of the file (Google Drive "
                        "quota exceeded, access denied, or a changed confirmation "
                        "page).\n" + instructions
                    ) from None
                current = confirmed
        else:
            raise WeightsDownloadError(
                f"{url} kept returning HTML after the virus-scan confirmation.\n"
                + instructions
            )
    except (urllib.error.URLError, OSError) as error:
        part.unlink(missing_ok=True)
        raise WeightsDownloadError(
            f"Could not download {current}: {getattr(error, 'reason', error)}. This "
            "machine seems to be offline or cannot reach the host.\n" + instructions
        ) from error
    size = part.stat().st_size
    with open(part, "rb") as f:
        head = f.read(8)
    if not (head.startswith(ZIP_SIGNATURE) or head == HDF5_SIGNATURE) or size < min_bytes:
        part.unlink()
        raise WeightsDownloadError(
            f"{url} returned {size:,} bytes starting with {head!r}: expected a zip or "
            f"HDF5 file of at least {min_bytes:,} bytes. Google Drive may have served an "
            "error page.\n" + instructions
        )
    part.replace(target)
    return target


def _extract(archive, wanted, dest):
    """Extract the members whose base name is an accepted name of a wanted entry."""
    placed = {}
    with zipfile.ZipFile(archive) as zf:
        members = zf.namelist()
        for entry in wanted:
            member = next(
                (m for m in members if Path(m).name in entry.names), None
            )
            if member is None:
                raise WeightsDownloadError(
                    f"The archive {archive} holds no {entry.filename} (accepted names "
                    f"{list(entry.names)}); it holds {members[:10]}.\n"
                    + manual_steps(dest)
                )
            target = dest / entry.filename
            with zf.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            placed[entry.filename] = target
    return placed


def _radimagenet_entries(info, backbone_names):
    from radtl import backbones  # deferred: backbones imports this module

    names = backbone_names or backbones.radimagenet_names()
    entries = []
    for name in names:
        spec = backbones.get(name)
        if not spec.radimagenet_file:
            raise ValueError(
                f"`backbones` must be among {backbones.radimagenet_names()} for "
                f"RadImageNet. Received: backbones={list(names)!r}"
            )
        entries.append((spec, info.entry(spec.radimagenet_file)))
    return entries


def _verify_placed(spec, path):
    """Structural check of a file: load it into `spec`'s architecture at minimum size."""
    from radtl import backbones  # deferred: backbones imports this module

    size = spec.min_input_size
    backbones.load_backbone(spec.name, path, input_shape=(size, size, 3))


def fetch(source="radimagenet", backbones=None, *, dest=None, url=None, timeout=60.0,
          keep_archive=False):
    """Download, verify and place weight files.

    RadImageNet: downloads the official single-file zip from Google Drive (confirming
    the virus-scan page), rejects HTML or too-small payloads, extracts the requested
    files into `dest`, and loads each into its architecture to verify it. Files already
    present anywhere radtl looks are skipped. ImageNet: `keras.utils.get_file` per
    backbone, as `load_backbone` would.

    Args:
        source: "radimagenet" or "imagenet". Defaults to "radimagenet".
        backbones: list of registry names. Defaults to all with a file of `source`.
        dest: str or Path. Defaults to `$RADTL_WEIGHTS_DIR` or the repository's
            `weights/`.
        url: str. Download URL of the RadImageNet zip. Defaults to the manifest's.
        timeout: float. Seconds per connection attempt. Defaults to 60.
        keep_archive: bool. Keep the downloaded zip in `dest`. Defaults to False.

    Returns:
        list of FileStatus, one per requested file.

    Raises:
        WeightsDownloadError: offline or a bad payload; the message gives manual steps.
        WeightsError: a downloaded file fails verification (it is deleted).
    """
    from radtl import backbones as registry  # deferred: backbones imports this module

    if source not in ("radimagenet", "imagenet"):
        raise ValueError(
            "`source` must be one of ['radimagenet', 'imagenet']. "
            f"Received: source={source!r}"
        )
    if source == "imagenet":
        names = backbones or registry.names()
        results = []
        for name in names:
            filename = registry.get(name).imagenet_file
            path = resolve(filename, weights_dir=dest)
            results.append(_file_status(manifest(dest).entry(filename), path, None,
                                        "available (hash checked)"))
        return results
    info = manifest(dest)
    dest = Path(dest).expanduser() if dest else _default_dest()
    wanted = _radimagenet_entries(info, backbones)
    results, todo = {}, []
    for spec, entry in wanted:
        present = find(entry.filename, dest)
        if present is not None:
            results[entry.filename] = _file_status(entry, present, None,
                                                   "already present")
        else:
            todo.append((spec, entry))
    if todo:
        bundle = info.bundles["radimagenet"]
        dest.mkdir(parents=True, exist_ok=True)
        archive = download(url or bundle.download_url, dest / bundle.filename,
                           timeout=timeout, min_bytes=bundle.min_bytes,
                           instructions=manual_steps(dest))
        try:
            if zipfile.is_zipfile(archive):
                placed = _extract(archive, [e for _, e in todo], dest)
            elif len(todo) == 1:
                filename = todo[0][1].filename
                placed = {filename: archive.replace(dest / filename)}
            else:
                raise WeightsDownloadError(
                    f"{url or bundle.download_url} returned a single HDF5 file, but "
                    f"{len(todo)} files were requested. Request one backbone per URL."
                )
        finally:
            if archive.exists() and zipfile.is_zipfile(archive) and not keep_archive:
                archive.unlink()
        for spec, entry in todo:
            path = placed[entry.filename]
            try:
                if entry.file_hash:
                    check_hash(path, entry.file_hash, entry.hash_origin or "third-party")
                _verify_placed(spec, path)
            except WeightsError:
                path.unlink()
                raise
            results[entry.filename] = _file_status(entry, path, True, "downloaded")
    return [results[entry.filename] for _, entry in wanted]


# ------------------------------------------------------------------------- status


def _file_status(entry, path, verified, message=""):
    hash_ok = None
    if path is not None and entry.file_hash:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                hash_ok = check_hash(path, entry.file_hash, entry.hash_origin or "keras")
            except WeightsError:
                hash_ok = False
    return FileStatus(
        filename=entry.filename, source=entry.source, architecture=entry.architecture,
        path=path, size=path.stat().st_size if path else None, hash_ok=hash_ok,
        verified=verified, message=message or ("" if path else f"get it: {entry.url}"),
    )


def status(weights_dir=None, *, source=None, verify=False):
    """Known weight files, where radtl looks, which are present and verified.

    Args:
        weights_dir: str or Path. Searched first. Defaults to None.
        source: "radimagenet", "imagenet" or None (both). Defaults to None.
        verify: bool. Also load each present file into its architecture (slow: builds
            each backbone). Defaults to False.

    Returns:
        Status; `print(status())` shows a table.
    """
    from radtl import backbones  # deferred: backbones imports this module

    info = manifest(weights_dir)
    spec_of = {}
    for name in backbones.names():
        spec = backbones.get(name)
        for s in spec.sources:
            spec_of[spec.weight_file(s)] = spec
    rows = []
    for entry in info.files.values():
        if source and entry.source != source:
            continue
        path = find(entry.filename, weights_dir)
        verified, message = None, ""
        if path is not None and verify and entry.filename in spec_of:
            try:
                _verify_placed(spec_of[entry.filename], path)
                verified = True
            except WeightsError as error:
                verified, message = False, str(error).splitlines()[0]
        rows.append(_file_status(entry, path, verified, message))
    return Status(search_dirs=search_dirs(weights_dir), files=rows)
