"""The record of one `radtl data import`: what the generic `imported` builder is configured from.

An imported dataset lives in `<data_dir>/<name>/`:

    import.json            this record (how the data was imported, the classes, the folds)
    splits/                the split lists, `{train,val,test}_fold{k}.csv` (filename,label,group)
    fold1/1.0.0/ ...       the TFDS dataset of each fold, built from the two above

The split lists are the source of truth for membership: they are human-readable, can be
reviewed and shared, and the build checks their SHA-256 against this record, so a
rebuild (`radtl data build NAME`) reproduces the import's membership exactly. The images
are read again from `image_root`, where they were at import time.

This module imports neither TensorFlow nor TFDS: `radtl.data` reads records to list
and look up imported datasets cheaply.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["ImportRecord", "RECORD_FILE", "SPLITS_DIR", "FORMAT_VERSION", "NAME_PATTERN", "read", "write",
           "is_import_dir", "file_sha256"]

RECORD_FILE = "import.json"
SPLITS_DIR = "splits"
FORMAT_VERSION = 1
#: A TFDS dataset name: lower case, digits and underscores, starting with a letter.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class ImportRecord:
    """How one dataset was imported.

    Attributes:
        name: str. The dataset name (a TFDS name: `NAME_PATTERN`).
        class_names: list of str. The `ClassLabel` names in index order; for a binary
            task the second is the positive class (the one AUC scores).
        num_folds: int. Number of `fold{k}` configs (1..num_folds).
        image_root: str. Absolute folder the split lists' filenames are relative to.
        source: dict. Where the list of images came from: `kind` ("csv", "folders" or
            "splits") and the options (`csv`, `path_col`, `label_col`, `group_col`,
            `group_regex`, `splits_dir`).
        split: dict. How the folds were made: `method` ("stratified-group-kfold" or
            "given"), `seed`, `val_fraction`, and `sizes` (per fold, images per split).
        conversion: dict. `percentiles` used for 16-bit and DICOM files without a window,
            and `counts`: images per conversion method (`radtl.imaging.METHODS`).
        images: int. Number of distinct images.
        groups: int. Number of distinct groups (patients).
        mixed_label_groups: int. Groups whose images carry different labels.
        split_files: dict. Split-list file name -> SHA-256 of its bytes.
        created: str. ISO 8601 time of the import (UTC).
        radtl_version: str. The radtl version that imported it.
        format_version: int. Version of this record's layout.
    """

    name: str
    class_names: list
    num_folds: int
    image_root: str
    source: dict
    split: dict
    conversion: dict
    images: int
    groups: int
    mixed_label_groups: int
    split_files: dict
    created: str
    radtl_version: str
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_import_dir(path) -> bool:
    """Whether `path` (a `<data_dir>/<name>` folder) holds an import record."""
    return (Path(path) / RECORD_FILE).is_file()


def read(import_dir) -> ImportRecord:
    """Reads `<import_dir>/import.json`.

    Raises:
        FileNotFoundError: there is no record.
        ValueError: the record is not valid JSON or lacks fields (the message names the
            file and says to import the dataset again).
    """
    path = Path(import_dir) / RECORD_FILE
    text = path.read_text(encoding="utf-8")
    fix = f"Fix: import the dataset again (`radtl data import {Path(import_dir).name} ...`) into a new folder."
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}). {fix}") from None
    names = {f.name for f in dataclasses.fields(ImportRecord)}
    missing = sorted(n for n in names if n not in values and n != "format_version")
    if not isinstance(values, dict) or missing:
        raise ValueError(f"{path} is not a radtl import record (missing {missing}). {fix}")
    if values.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer radtl (record format {values['format_version']}, "
                         f"this radtl reads {FORMAT_VERSION}). Fix: upgrade radtl.")
    return ImportRecord(**{k: v for k, v in values.items() if k in names})


def write(import_dir, record: ImportRecord) -> Path:
    """Writes the record as `<import_dir>/import.json` (atomically, mode 0644)."""
    path = Path(import_dir) / RECORD_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
