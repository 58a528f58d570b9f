"""Pretrained weights per backbone: pre-flight check, fetch-and-verify, status.

What needs an architecture sits here, above the file-level modules, as keras'
`applications/resnet.py` sits above `keras.utils.get_file`:

    radtl.weights   (manifest, lookup, checks, HDF5, loading)   imports nothing of radtl
    radtl.download  (HTTP, Google Drive, zips)                  imports radtl.weights
    radtl.backbones (registry, load_backbone)                   imports radtl.weights
    radtl.pretrained (this module)                              imports all three

- `check_available(backbone, weights)`: the file a run will load, checked cheaply
  (present, Keras HDF5, not an HTML page or truncated, size and hash) without building
  a model; the trainer calls it before creating a run directory.
- `fetch(source, backbones)`: download (RadImageNet: the official Google Drive zip;
  ImageNet: `keras.utils.get_file`), place and verify each file by loading it into its
  architecture.
- `status()`: the table `radtl weights list` prints, with the reason for every row
  that is not OK.

Example:

```python
from radtl import pretrained

pretrained.check_available("resnet50", None)          # None: random initialisation
print(pretrained.status(source="radimagenet"))         # where radtl looks, what is there
```
"""
import dataclasses
import textwrap
import warnings
import zipfile
from pathlib import Path

from radtl import backbones as backbones_lib
from radtl import download as download_lib
from radtl import weights as weights_lib

SOURCES = backbones_lib.SOURCES


def check_available(backbone, weights, weights_dir=None, *, sha256=None):
    """Resolve and check the weight file a run will load, without building a model.

    Cheap: looks the file up where `load_backbone` would, reads its first bytes, opens
    it with h5py (no array is read) and checks its size and hash against the manifest
    (hashing reads the file once). A size or hash mismatch with a Keras or third-party
    checksum only warns (`radtl.weights.WeightsChecksumWarning`), as loading does.

    Args:
        backbone: str. Registry name (`radtl.backbones.names()`).
        weights: "radimagenet", "imagenet", None or "none" (any case; random
            initialisation), or a path to a legacy Keras HDF5 file.
        weights_dir: str or Path, searched first. Defaults to None.
        sha256: str. User-pinned sha256 of the file; a mismatch is an error.
            Defaults to None.

    Returns:
        pathlib.Path of the file the run will load, or None when it loads none: random
        initialisation, or `weights="imagenet"` while no search folder (the Keras cache
        included) holds Keras' file, which `load_backbone` then downloads with
        `keras.utils.get_file` into the Keras cache (network needed).

    Raises:
        ValueError: unknown backbone, or a `weights` value the backbone cannot take.
        radtl.weights.WeightsNotFoundError: the file is missing (the message lists the
            folders searched, the `radtl weights fetch` command and the manual download).
        radtl.weights.WeightsFormatError: an HTML page (e.g. Google Drive's) saved
            instead of the file, a zip, a truncated or non-HDF5 file.
        radtl.weights.WeightsChecksumError: size or hash differs from a pinned checksum.

    Example:

    ```python
    check_available("mobilenet_v2", "none")   # None
    ```
    """
    weights = weights_lib.normalize_weights(weights)
    spec = backbones_lib.get(backbone)
    source = backbones_lib.check_source(spec, weights)
    if source is None:
        return None
    if source == "file":
        return weights_lib.check_file(weights, sha256, arch=backbone)
    filename = spec.weight_file(source)
    if source == "imagenet" and weights_lib.find(filename, weights_dir) is None:
        return None
    return weights_lib.resolve(filename, weights_dir=weights_dir, sha256=sha256,
                               download=False, arch=backbone)


# ------------------------------------------------------------------------ status


@dataclasses.dataclass(frozen=True)
class FileStatus:
    """Where a known file is and whether it checked out (one row of `status()`).

    Attributes:
        filename: str. Canonical file name.
        source: str. "radimagenet" or "imagenet".
        architecture: str. From the manifest.
        path: Path or None. Where it was found.
        size: int or None. Its size in bytes.
        hash_ok: True / False / None (no known hash, or not checked).
        verified: True / False / None (not loaded into its architecture).
        message: str. What happened ("downloaded", "already present", how to get it).
        errors: tuple of str. Why the file cannot be used (format, pinned checksum,
            verification failure).
        warnings: tuple of str. Non-authoritative checksum mismatches.
    """

    filename: str
    source: str
    architecture: str
    path: Path = None
    size: int = None
    hash_ok: bool = None
    verified: bool = None
    message: str = ""
    errors: tuple = ()
    warnings: tuple = ()

    @property
    def present(self):
        return self.path is not None

    @property
    def state(self):
        """"missing", "FAIL" (errors), "warn" (warnings only) or "ok"."""
        if not self.present:
            return "missing"
        return "FAIL" if self.errors else "warn" if self.warnings else "ok"

    @property
    def reasons(self):
        """Why the row is not "ok" (empty for an "ok" row)."""
        if not self.present:
            return (self.message,)
        return self.errors + self.warnings


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
        header = ("file", "source", "state", "hash", "verified", "path")
        rows = [header] + [
            (f.filename, f.source, f.state, _tick(f.hash_ok), _tick(f.verified),
             str(f.path) if f.present else "-")
            for f in self.files
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        for row, file in zip(rows, [None, *self.files]):
            cells = [c.ljust(w) for c, w in zip(row, widths)]
            lines.append("  ".join(cells + [row[-1]]).rstrip())
            for reason in (file.reasons if file else ()):
                lines += textwrap.wrap(reason, 100, initial_indent="    - ",
                                       subsequent_indent="      ",
                                       break_long_words=False, break_on_hyphens=False)
        return "\n".join(lines)


def _tick(value):
    return {True: "ok", False: "FAIL", None: "-"}[value]


def _verify_placed(spec, path):
    """Structural check of a file: load it into `spec`'s architecture at minimum size."""
    size = spec.min_input_size
    backbones_lib.load_backbone(spec.name, path, input_shape=(size, size, 3))


def _missing_reason(entry, arch):
    command = weights_lib.fetch_command(entry.source, arch)
    if entry.source == "imagenet":
        return (
            f"not downloaded yet: Keras downloads it into {weights_lib.keras_cache_dir()} "
            f"on first use, or run `{command}` (offline: download {entry.url})."
        )
    return f"missing: run `{command}`, or download it by hand from {entry.url}."


def _row(entry, path, spec, *, verify=False, message="", strict=False):
    """Check the file at `path` (cheap checks, then optionally verification).

    With `strict`, an error is raised and checksum warnings are re-emitted; otherwise
    both are recorded in the returned FileStatus. Other warnings pass through.
    """
    arch = spec.name if spec else None
    if path is None:
        return FileStatus(
            filename=entry.filename, source=entry.source,
            architecture=entry.architecture,
            message=message or _missing_reason(entry, arch),
        )
    failure, hash_ok, verified, stage = None, None, None, "check"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", weights_lib.WeightsChecksumWarning)
        try:
            weights_lib.check_file(path, entry=entry, arch=arch)
            hash_ok = True if entry.file_hash else None
            if verify and spec is not None:
                stage = "verify"
                _verify_placed(spec, path)
                verified = True
        except weights_lib.WeightsChecksumError as error:
            failure, hash_ok = error, False
        except weights_lib.WeightsError as error:
            failure = error
            verified = False if stage == "verify" else None
    notes = []
    for caught_warning in caught:
        if issubclass(caught_warning.category, weights_lib.WeightsChecksumWarning):
            notes.append(str(caught_warning.message))
        else:  # not ours to record: pass it on
            warnings.warn_explicit(caught_warning.message, caught_warning.category,
                                   caught_warning.filename, caught_warning.lineno)
    if notes:
        hash_ok = False
    if strict:
        for note in notes:
            warnings.warn(note, weights_lib.WeightsChecksumWarning, stacklevel=3)
        if failure is not None:
            raise failure
    errors = () if failure is None else (str(failure),)
    return FileStatus(
        filename=entry.filename, source=entry.source, architecture=entry.architecture,
        path=path, size=path.stat().st_size, hash_ok=hash_ok,
        verified=verified, message=message, errors=errors, warnings=tuple(notes),
    )


def _spec_of_file():
    """Manifest file name -> the BackboneSpec that loads it."""
    return {
        backbones_lib.get(name).weight_file(source): backbones_lib.get(name)
        for name in backbones_lib.names()
        for source in backbones_lib.get(name).sources
    }


def status(weights_dir=None, *, source=None, verify=False):
    """Known weight files, where radtl looks, which are present, usable and verified.

    Every present file gets the cheap checks of `radtl.weights.check_file` (HTML page,
    not HDF5, truncated, size, hash); with `verify` it is also loaded into its
    architecture. `str(status())` is a table with the reason under every row that is
    not OK (missing, wrong size, hash mismatch, not HDF5 / HTML, failed verification).

    Args:
        weights_dir: str or Path. Searched first. Defaults to None.
        source: "radimagenet", "imagenet" or None (both). Defaults to None.
        verify: bool. Also load each present file into its architecture (slow: builds
            each backbone). Defaults to False.

    Returns:
        Status.
    """
    if source is not None and source not in SOURCES:
        raise ValueError(
            f"`source` must be one of {list(SOURCES)} or None. Received: source={source!r}"
        )
    info = weights_lib.manifest(weights_dir)
    spec_of = _spec_of_file()
    rows = [
        _row(entry, weights_lib.find(entry.filename, weights_dir),
             spec_of.get(entry.filename), verify=verify)
        for entry in info.files.values()
        if source is None or entry.source == source
    ]
    return Status(search_dirs=weights_lib.search_dirs(weights_dir), files=rows)


# ------------------------------------------------------------------------- fetch


def _requested(source, names):
    """[(spec, entry)] for the backbones `names` (default: all with a `source` file)."""
    if source not in SOURCES:
        raise ValueError(
            f"`source` must be one of {list(SOURCES)}. Received: source={source!r}"
        )
    valid = [n for n in backbones_lib.names() if source in backbones_lib.get(n).sources]
    names = list(names) if names else valid
    if any(name not in valid for name in names):
        raise ValueError(
            f"`backbones` must be among {valid} for {source}. "
            f"Received: backbones={names!r}"
        )
    info = weights_lib.manifest()
    return [(backbones_lib.get(n), info.entry(backbones_lib.get(n).weight_file(source)))
            for n in names]


def fetch(source="radimagenet", backbones=None, *, dest=None, url=None, timeout=60.0,
          keep_archive=False):
    """Download, verify and place weight files.

    RadImageNet: downloads the official single-file zip from Google Drive (confirming
    the virus-scan page), rejects HTML or too-small payloads, extracts the requested
    files into `dest`, and loads each into its architecture to verify it (a file that
    fails is deleted). Files already present anywhere radtl looks are checked, not
    downloaded again. ImageNet: `keras.utils.get_file` per backbone into the Keras
    cache, as `load_backbone` would (files already present are used).

    Args:
        source: "radimagenet" or "imagenet". Defaults to "radimagenet".
        backbones: list of registry names. Defaults to all with a file of `source`.
        dest: str or Path, where RadImageNet files go (searched first). Defaults to
            `radtl.weights.default_fetch_dir()`: `$RADTL_WEIGHTS_DIR`, else the
            checkout's `weights/` if radtl runs from a checkout, else the Keras cache
            `~/.keras/models` (`$KERAS_HOME/models`).
        url: str. Download URL of the RadImageNet zip. Defaults to the manifest's.
        timeout: float. Seconds per connection attempt. Defaults to 60.
        keep_archive: bool. Keep the downloaded zip in `dest`. Defaults to False.

    Returns:
        list of FileStatus, one per requested file.

    Raises:
        ValueError: unknown `source`, or a backbone without a file of `source`.
        radtl.weights.WeightsDownloadError: offline or a bad payload; the message gives
            manual steps.
        radtl.weights.WeightsError: a file already present is unusable (delete it), or
            a downloaded file fails verification (it is deleted).
    """
    wanted = _requested(source, backbones)
    if source == "imagenet":
        results = []
        for spec, entry in wanted:
            path = weights_lib.find(entry.filename, dest) or weights_lib.resolve(
                entry.filename, weights_dir=dest, arch=spec.name)
            results.append(_row(entry, path, spec, message="available", strict=True))
        return results
    info = weights_lib.manifest(dest)
    dest = Path(dest).expanduser() if dest else weights_lib.default_fetch_dir()
    results, todo = {}, []
    for spec, entry in wanted:
        present = weights_lib.find(entry.filename, dest)
        if present is not None:
            results[entry.filename] = _row(entry, present, spec,
                                           message="already present", strict=True)
        else:
            todo.append((spec, entry))
    if todo:
        _download_into(info, todo, dest, url, timeout, keep_archive)
        for spec, entry in todo:
            path = dest / entry.filename
            try:
                results[entry.filename] = _row(entry, path, spec, verify=True,
                                               message="downloaded", strict=True)
            except weights_lib.WeightsError:
                path.unlink()
                raise
    return [results[entry.filename] for _, entry in wanted]


def _download_into(info, todo, dest, url, timeout, keep_archive):
    """Download the RadImageNet bundle (or one file from `url`) and place `todo`'s files."""
    bundle = info.bundles["radimagenet"]
    steps = download_lib.manual_steps(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive = download_lib.download(url or bundle.download_url, dest / bundle.filename,
                                    timeout=timeout, min_bytes=bundle.min_bytes,
                                    instructions=steps)
    try:
        if zipfile.is_zipfile(archive):
            download_lib.extract(archive, [e for _, e in todo], dest, instructions=steps)
        elif len(todo) == 1:
            archive.replace(dest / todo[0][1].filename)
        else:
            raise weights_lib.WeightsDownloadError(
                f"{url or bundle.download_url} returned a single HDF5 file, but "
                f"{len(todo)} files were requested. Request one backbone per URL."
            )
    finally:
        if archive.exists() and zipfile.is_zipfile(archive) and not keep_archive:
            archive.unlink()
