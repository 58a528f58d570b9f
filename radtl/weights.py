"""Pretrained weight files: manifest, lookup, checks, legacy-HDF5 reading, verified loading.

The low level of radtl's weights: it knows files, never architectures, and imports
nothing else from radtl. `radtl.download` (HTTP, Google Drive, zips) sits on it;
`radtl.backbones` loads files through it; `radtl.pretrained` (fetch, status, the
pre-flight `check_available`) builds architectures on top of both.

radtl loads the official RadImageNet Keras files and Keras' own ImageNet files, all
legacy Keras-2 HDF5 files in one of two layouts:

- full-model (`model.save()`): a `model_weights` group holding the layout below;
- weights-only (`save_weights()`): root attribute `layer_names`, one group per layer with
  attribute `weight_names` (e.g. `conv1_conv/kernel:0`) naming its datasets.

Known files are described in the package data file `radtl/weights_manifest.json` (file
name, accepted spellings, architecture, size, hash and where the hash comes from,
download URL). No official checksums exist for the RadImageNet files; the one known
hash (ResNet50) is third-party, so a mismatch with it only warns
(`WeightsChecksumWarning`) and the structural check decides. A hash the user pins (the
`sha256` argument, or a `manifest.json` placed in `weights_dir` / `$RADTL_WEIGHTS_DIR`,
whose entries override the packaged ones) must match.

Files are looked up, in order, in: the `weights_dir` argument, `$RADTL_WEIGHTS_DIR`, the
`weights/` folder of a source checkout (only when radtl runs from one and the folder
exists), and the Keras cache `$KERAS_HOME/models` (`~/.keras/models`). For each
RadImageNet file both the distributed spelling (`RadImageNet-ResNet50_notop.h5`) and the
official scripts' spelling (`RadImageNet-ResNet50-notop.h5`) are accepted.

Before any array is read, `check_file` rejects, with the fix in the message: a missing
file, an HTML page saved under the file's name (Google Drive's virus-scan or quota page),
a file that is not HDF5 or is truncated, and a size or hash that contradicts an
authoritative checksum. `load_into(model, path)` then pairs the file's layers with the
model's layers with weights in topological order (Keras' rule for these files;
InceptionV3's automatically named layers carry session-dependent names), checks counts,
shapes and names, assigns the arrays and compares every variable with the file, so a
file that loads nothing or the wrong thing is an error, never a silent random backbone.

Example:

```python
from radtl import weights

weights.search_dirs()                         # where radtl looks, in order
path = weights.find("RadImageNet-ResNet50_notop.h5")   # Path or None
if path is not None:
    weights.check_file(path, entry=weights.manifest().entry(path.name))
```
"""
import dataclasses
import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path

import h5py
import numpy as np

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
# Package data (setup.cfg ships radtl/*.json): the files radtl knows.
MANIFEST_PATH = _PACKAGE_DIR / "weights_manifest.json"
# Name of a user's override file in `weights_dir` or `$RADTL_WEIGHTS_DIR`.
OVERRIDE_NAME = "manifest.json"
ENV_VAR = "RADTL_WEIGHTS_DIR"
# The `weights/` folder of a source checkout (None when radtl is installed from a
# wheel: then the package's parent is site-packages, which has no setup.cfg).
REPO_WEIGHTS_DIR = (
    _PACKAGE_DIR.parent / "weights" if (_PACKAGE_DIR.parent / "setup.cfg").is_file()
    else None
)

# What a size or hash mismatch does, by where the hash comes from.
HASH_MISMATCH = {"user": "error", "keras": "warn", "third-party": "warn"}

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
_CHUNK = 1 << 20
_SNIFF_BYTES = 1024


class WeightsError(RuntimeError):
    """A weight file is unreadable, of another architecture, or fails its checksum."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weight file is in none of the folders radtl searches."""


class WeightsFormatError(WeightsError):
    """A file is not a complete Keras HDF5 weights file (HTML page, other format,
    truncated, or HDF5 without Keras' weight layout)."""


class WeightsChecksumError(WeightsError):
    """A file's size or hash contradicts an authoritative (user-pinned) checksum."""


class WeightsDownloadError(WeightsError, ConnectionError):
    """A download failed (offline, refused, HTML instead of the file, too small)."""


class WeightsChecksumWarning(UserWarning):
    """A file's size or hash differs from a non-authoritative (Keras or third-party)
    checksum; the structural check of the file decides."""


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One known weight file (a `files` entry of `radtl/weights_manifest.json`).

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
        size_origin: str or None. Who measured `size`; None: as `hash_origin`.
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
    size_origin: str = None

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


# ------------------------------------------------------------------------- manifest


def _read_json(path, *, packaged):
    """Parse a manifest; `packaged` says whether it is radtl's own (fix: reinstall)."""
    path = Path(path)
    if packaged:
        fix = (
            "It is package data of radtl (setup.cfg `package_data`: radtl/*.json), so "
            "this installation is incomplete. Fix: reinstall radtl (`pip install "
            "--force-reinstall radtl`, or `pip install .` in a checkout)."
        )
    else:
        fix = (
            f"It is a user override of {MANIFEST_PATH.name} (see `radtl.weights."
            "manifest`). Fix the JSON or delete the file."
        )
    if not path.is_file():
        raise WeightsError(f"The weights manifest {path} does not exist. {fix}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(
            f"Could not read the weights manifest {path}: {error}. {fix}"
        ) from error
    if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
        raise WeightsError(
            f"The weights manifest {path} must be a JSON object whose `files` maps file "
            f"names to fields. Received: {type(data).__name__} with keys "
            f"{sorted(data)[:5] if isinstance(data, dict) else '-'}. {fix}"
        )
    return data


def manifest(weights_dir=None):
    """Load `radtl/weights_manifest.json` and apply user overrides.

    A `manifest.json` in `weights_dir` or `$RADTL_WEIGHTS_DIR` may override fields of
    any entry (e.g. `{"files": {"RadImageNet-ResNet50_notop.h5": {"file_hash": "..."}}}`
    or a mirror `url`); a hash or size given there is user-pinned (a mismatch is an
    error). Pinning a hash without a size drops the packaged size.

    Args:
        weights_dir: str or Path. Defaults to None.

    Returns:
        Manifest.

    Raises:
        WeightsError: the packaged manifest is missing or unreadable (reinstall), or an
            override is unreadable or names an unknown file.
    """
    data = _read_json(MANIFEST_PATH, packaged=True)
    files = {name: dict(fields, filename=name) for name, fields in data["files"].items()}
    for folder in (weights_dir, os.environ.get(ENV_VAR) or None):
        override = Path(folder).expanduser() / OVERRIDE_NAME if folder else None
        if override is None or not override.is_file():
            continue
        for name, fields in _read_json(override, packaged=False).get("files", {}).items():
            if name not in files:
                raise WeightsError(
                    f"{override} overrides unknown file {name!r}. Overrides must name a "
                    f"file of {MANIFEST_PATH}: {sorted(files)}. Fix the file name."
                )
            merged = files[name]
            merged.update(fields)
            if "file_hash" in fields:
                merged["hash_origin"] = "user"
                if "size" not in fields:  # the packaged size describes another file
                    merged["size"] = None
            if "size" in fields:
                merged["size_origin"] = "user"
    entries = {
        name: FileEntry(**{**fields, "aliases": tuple(fields.get("aliases", ()))})
        for name, fields in files.items()
    }
    bundles = {
        name: Bundle(name=name, **{**fields, "mirrors": tuple(fields.get("mirrors", ()))})
        for name, fields in data.get("bundles", {}).items()
    }
    return Manifest(files=entries, bundles=bundles)


# --------------------------------------------------------------------------- lookup


def normalize_weights(weights):
    """`weights` with "none" (any case) read as None (random initialisation).

    The CLI and YAML configs spell random initialisation "none"; the library's value
    is None. Every other value is returned unchanged (validated by
    `radtl.backbones.check_source`).

    Args:
        weights: "radimagenet", "imagenet", None, "none", or a weight file path.

    Returns:
        None for None or "none"; otherwise `weights`.
    """
    if isinstance(weights, str) and weights.strip().lower() == "none":
        return None
    return weights


def keras_cache_dir():
    """The folder `keras.utils.get_file(..., cache_subdir="models")` uses."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def checkout_weights_dir():
    """The `weights/` folder of the source checkout radtl runs from, or None.

    None when radtl is installed from a wheel (no checkout) or the folder is absent.
    """
    if REPO_WEIGHTS_DIR is not None and Path(REPO_WEIGHTS_DIR).is_dir():
        return Path(REPO_WEIGHTS_DIR)
    return None


def search_dirs(weights_dir=None):
    """Folders searched for weight files, in order (duplicates removed).

    Args:
        weights_dir: str or Path, searched first. Defaults to None.

    Returns:
        list of Path: `weights_dir`, `$RADTL_WEIGHTS_DIR`, the checkout's `weights/`
        (only when it exists), the Keras cache (`$KERAS_HOME/models`, where Keras
        downloads ImageNet files).
    """
    candidates = [weights_dir, os.environ.get(ENV_VAR) or None, checkout_weights_dir(),
                  keras_cache_dir()]
    dirs = []
    for candidate in candidates:
        if candidate is not None and Path(candidate).expanduser() not in dirs:
            dirs.append(Path(candidate).expanduser())
    return dirs


def default_fetch_dir():
    """Where `radtl weights fetch` puts files when no destination is given.

    Returns:
        Path: `$RADTL_WEIGHTS_DIR` if set, else the checkout's `weights/` if radtl runs
        from a checkout that has it, else the Keras cache (`$KERAS_HOME/models`,
        default `~/.keras/models`). Each is a folder `search_dirs` includes.
    """
    folder = os.environ.get(ENV_VAR) or checkout_weights_dir() or keras_cache_dir()
    return Path(folder).expanduser()


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


# ------------------------------------------------------------------ fixes in messages


def fetch_command(source, arch=None):
    """The CLI command that downloads and verifies `source`'s file(s)."""
    return f"radtl weights fetch {source}" + (f" --arch {arch}" if arch else "")


def _how_to_get(entry, arch=None, info=None):
    """How to get `entry`'s file: the fetch command, then the manual download.

    Args:
        entry: FileEntry.
        arch: str. Backbone registry name for `--arch`. Defaults to None.
        info: Manifest, for the source's bundle (the RadImageNet zip). Defaults to
            None (the packaged manifest).

    Returns:
        str, one sentence.
    """
    info = info or manifest()
    by_hand = f"download {entry.url}"
    bundle = info.bundles.get(entry.source)
    if bundle is not None:
        by_hand = f"download the Drive folder {entry.url} (or the zip {bundle.url})"
    return (
        f"run `{fetch_command(entry.source, arch)}`, or {by_hand} by hand and put "
        f"{entry.filename} in one of those folders (or in a folder named by "
        f"${ENV_VAR})."
    )


def missing_message(entry, weights_dir=None, arch=None):
    """One paragraph: which file is missing, where radtl looked, how to get it.

    Args:
        entry: FileEntry.
        weights_dir: str or Path searched first. Defaults to None.
        arch: str. Backbone registry name, for the `--arch` of the fetch command.
            Defaults to None.

    Returns:
        str.
    """
    folders = "; ".join(str(d) for d in search_dirs(weights_dir))
    return (
        f"{entry.source} weight file {entry.filename} ({entry.architecture}) not found. "
        f"Accepted names: {list(entry.names)}. radtl looked in: {folders}. Fix: "
        + _how_to_get(entry, arch, manifest(weights_dir))
    )


def _replace_fix(entry, arch):
    """The fix for a present but bad file."""
    if entry is None:
        return (
            "Fix: pass a complete legacy Keras HDF5 file (Keras-2 `model.save('x.h5')` "
            "or `save_weights('x.h5')`), or weights='radimagenet' / 'imagenet' for the "
            "registered files."
        )
    return (
        f"Fix: delete it, then run `{fetch_command(entry.source, arch)}`, or download "
        f"{entry.url} by hand (`radtl weights list` shows the folders radtl searches)."
    )


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


def _mismatch(message, origin, fix):
    """Raise or warn about a size/hash mismatch per `HASH_MISMATCH[origin]`."""
    if HASH_MISMATCH[origin] == "error":
        raise WeightsChecksumError(
            f"{message} The pinned checksum does not match: the file is corrupt, "
            f"truncated or a different file. {fix} Or pin the hash of the file you "
            "trust."
        )
    warnings.warn(
        f"{message} That checksum is not authoritative, so radtl goes on and relies on "
        "the structural check of the file against the architecture.",
        WeightsChecksumWarning,
        stacklevel=4,
    )
    return False


def check_hash(path, expected, origin, *, fix=""):
    """Compare a file's hash with `expected`; error or warn per `HASH_MISMATCH[origin]`.

    Args:
        path: Path of the file.
        expected: str. sha256 (64 hex) or md5 (32 hex) digest.
        origin: str. "user", "keras" or "third-party".
        fix: str. The fix quoted in the error. Defaults to "".

    Returns:
        bool: whether the hash matched (a mismatch warns with WeightsChecksumWarning).

    Raises:
        WeightsChecksumError: mismatch with a user-pinned hash.
    """
    actual = file_hash(path, _algorithm(expected))
    if actual == expected.lower():
        return True
    return _mismatch(
        f"Weight file {path} has {_algorithm(expected)} {actual}, expected {expected} "
        f"({origin} hash), size {Path(path).stat().st_size:,} bytes.",
        origin, fix,
    )


def _check_manifest_checksum(path, entry, fix):
    """Size (cheap), then hash, of `path` against `entry`; None if neither is known."""
    hash_origin = entry.hash_origin or "third-party"
    size_origin = entry.size_origin or hash_origin
    size = path.stat().st_size
    if entry.size and size != entry.size:
        return _mismatch(
            f"Weight file {path} has {size:,} bytes, expected {entry.size:,} "
            f"({size_origin} size).",
            size_origin, fix,
        )
    if entry.file_hash:
        return check_hash(path, entry.file_hash, hash_origin, fix=fix)
    return None


# ------------------------------------------------------------------- format checks


def _is_html(head):
    start = head.lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        start.startswith(b"<") and b"<html" in start
    )


def _format_error(path, head, expected_size, fix, reason=None):
    """WeightsFormatError for a file that is not a complete Keras HDF5 file."""
    size = path.stat().st_size if path.exists() else 0
    expected = f", expected {expected_size:,}" if expected_size else ""
    if _is_html(head):
        match = re.search(rb"<title>(.*?)</title>", head, re.I | re.S)
        title = match.group(1).decode("utf8", "replace").strip() if match else ""
        title = f" titled {title!r}" if title else ""
        what = (
            f"is an HTML page{title} ({size:,} bytes), not a Keras HDF5 file: most "
            "likely a Google Drive 'can't scan for viruses' or 'quota exceeded' page "
            "saved under the weight file's name"
        )
    elif head.startswith(ZIP_SIGNATURE):
        what = (
            f"is a zip archive ({size:,} bytes), not a Keras HDF5 file: extract the .h5 "
            "files from it"
        )
    elif not head.startswith(HDF5_SIGNATURE):
        what = (
            f"is not an HDF5 file ({size:,} bytes{expected}, starts with "
            f"{head[:16]!r}; HDF5 files start with {HDF5_SIGNATURE!r})"
        )
    else:
        what = (
            f"({size:,} bytes{expected}) could not be read as a complete Keras HDF5 "
            f"file: {reason}. It is probably truncated or corrupt (an interrupted "
            "download)"
        )
    return WeightsFormatError(f"Weight file {path} {what}. {fix}")


def _weights_group(f, path, fix):
    """The group holding the layers of an open legacy file, and the layout name."""
    if "layer_names" in f.attrs or "layer_names0" in f.attrs:
        return f, "weights-only"
    if "model_weights" in f:
        return f["model_weights"], "full-model"
    raise WeightsFormatError(
        f"{path} is HDF5 but not a Keras HDF5 weights file: no `layer_names` attribute "
        f"and no `model_weights` group (found {sorted(f)[:5]}). Expected the no-top .h5 "
        "file of the architecture (Keras-2 `model.save()` or `save_weights()` layout). "
        + fix
    )


def check_format(path, *, expected_size=None, fix=None):
    """Check cheaply that `path` is a complete Keras HDF5 weights file.

    Reads the first bytes and opens the file with h5py (HDF5 compares the stored
    end-of-file address with the file's size, so a truncated download fails here);
    no array is read.

    Args:
        path: str or Path of an existing file.
        expected_size: int. The file's known size in bytes, quoted in errors.
            Defaults to None.
        fix: str. The fix quoted in errors. Defaults to a generic one.

    Returns:
        str: the layout, "full-model" or "weights-only".

    Raises:
        WeightsFormatError: an HTML page, a zip, another format, a truncated HDF5 file,
            or HDF5 without Keras' weight layout.
    """
    path = Path(path)
    fix = fix or _replace_fix(None, None)
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if _is_html(head):
        raise _format_error(path, head, expected_size, fix)
    try:  # h5py also reads files whose HDF5 signature follows a user block
        with h5py.File(path, "r") as f:
            return _weights_group(f, path, fix)[1]
    except OSError as error:
        raise _format_error(path, head, expected_size, fix, error) from error


def check_file(path, sha256=None, *, entry=None, arch=None):
    """Check a weight file before loading it: present, Keras HDF5, size and hash.

    Cheap (no array is read; hashing reads the file once). A size or hash mismatch
    with a user-pinned hash (`sha256`, or a `manifest.json` override) is an error;
    with a Keras or third-party checksum it warns (`WeightsChecksumWarning`).

    Args:
        path: str or Path.
        sha256: str. User-pinned sha256; a mismatch is an error. Defaults to None.
        entry: FileEntry the file stands for (its size and hash are checked, and its
            URL quoted in errors). Defaults to None (an explicit path).
        arch: str. Backbone registry name, quoted in the fix command. Defaults to None.

    Returns:
        Path.

    Raises:
        WeightsNotFoundError: no such file.
        WeightsFormatError: not a complete Keras HDF5 weights file (see
            `check_format`).
        WeightsChecksumError: size or hash differs from a pinned checksum.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Weight file {path} does not exist. Expected a legacy Keras HDF5 (.h5) "
            "file. Fix: check the path, or pass weights='radimagenet' / 'imagenet' to "
            "use the registered files."
        )
    fix = _replace_fix(entry, arch)
    check_format(path, expected_size=entry.size if entry else None, fix=fix)
    if sha256:
        check_hash(path, sha256, "user", fix=fix)
    elif entry is not None:
        _check_manifest_checksum(path, entry, fix)
    return path


def resolve(filename, *, weights_dir=None, sha256=None, download=True, arch=None):
    """Locate a known weight file, downloading ImageNet files if needed; check it.

    ImageNet files missing from every search folder are downloaded with
    `keras.utils.get_file` into the Keras cache (`$KERAS_HOME/models`), verified against
    Keras' published hash, exactly as `keras.applications` does. RadImageNet files are
    never downloaded here (see `radtl.pretrained.fetch`). The file found is checked
    with `check_file`.

    Args:
        filename: str. A manifest file name.
        weights_dir: str or Path. Searched first. Defaults to None.
        sha256: str. User-pinned sha256; a mismatch is an error. Defaults to None.
        download: bool. Allow the ImageNet download. Defaults to True.
        arch: str. Backbone registry name, quoted in fix commands. Defaults to None.

    Returns:
        Path of the file.

    Raises:
        WeightsNotFoundError: a RadImageNet file is missing (or download=False).
        WeightsDownloadError: the ImageNet download failed.
        WeightsFormatError: not a complete Keras HDF5 file (HTML page, truncated, ...).
        WeightsChecksumError: size or hash differs from a pinned checksum.
    """
    entry = manifest(weights_dir).entry(filename)
    path = find(entry.filename, weights_dir)
    if path is None and entry.source == "imagenet" and download:
        path = _keras_download(entry, weights_dir, sha256, arch)
    if path is None:
        raise WeightsNotFoundError(missing_message(entry, weights_dir, arch))
    return check_file(path, sha256, entry=entry, arch=arch)


def _keras_download(entry, weights_dir, sha256, arch):
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
            f"Downloading {entry.filename} from {entry.url} failed ({error}); this "
            "machine may be offline. " + missing_message(entry, weights_dir, arch)
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
        WeightsFormatError: not readable as a Keras HDF5 weights file (HTML page,
            truncated or corrupt download, another format).
    """
    path = Path(path)
    check_format(path, expected_size=expected_size)
    fix = _replace_fix(None, None)
    try:
        with h5py.File(path, "r") as f:
            group, layout = _weights_group(f, path, fix)
            layers = []
            for name in _attribute_list(group, "layer_names"):
                weight_names = _attribute_list(group[name], "weight_names")
                if weight_names:
                    layers.append(
                        (name, [np.asarray(group[name][w]) for w in weight_names])
                    )
    except (OSError, KeyError) as error:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
        raise _format_error(path, head, expected_size, fix, error) from error
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
        WeightsFormatError: an unreadable file.
        WeightsError: a file of another architecture, or values that did not arrive.
    """
    legacy = read_legacy_h5(path, expected_size)
    problems = _structure_problems(model, legacy)
    if problems:
        raise WeightsError(
            f"Weight file {path} does not match the `{model.name}` architecture "
            f"(input shape {tuple(model.input_shape[1:])}): {'; '.join(problems)}. "
            f"Expected a no-top Keras HDF5 file saved from `{model.name}` with 3 input "
            "channels. Fix: pass the file made for this backbone (`radtl weights list` "
            "lists them), or choose the backbone this file belongs to."
        )
    model_layers = [layer for layer in model.layers if layer.weights]
    for layer, (_, arrays) in zip(model_layers, legacy.layers):
        for variable, array in zip(_legacy_variables(layer), arrays):
            variable.assign(array)
    verify(model, path, legacy)
    logger.info("Loaded and verified %d layers of %s (%s layout) into %s",
                len(legacy.layers), path, legacy.layout, model.name)
    return legacy
