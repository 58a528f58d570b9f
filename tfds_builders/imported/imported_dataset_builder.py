"""The generic builder of datasets imported with `radtl data import` (see `import_record`).

One builder class serves every imported dataset; `builder_class(import_dir)` makes the
class of one of them (its TFDS `name` is the dataset's name, its configs `fold1`..`foldK`)
from the record and split lists in `import_dir`. The features are those of the other
radtl builders (`radimagenet_common.features`): `image` (uint8 (H, W, 3), PNG), `label`
(ClassLabel, the record's class order), `filename` (as in the split lists, relative to
`image_root`) and `exam_id` (the group, e.g. the patient). Images are converted to 8-bit
RGB by `radtl.imaging.read_image` (8-bit files as Pillow's `convert("RGB")`; 16-bit PNG
and DICOM windowed: see that module).

Build it through radtl (`radtl.data.build(name, fold)`, `radtl data build NAME`), which
finds the import folder in the data directory; `radtl data import` builds every fold.
"""
from __future__ import annotations

import functools
import types
from collections.abc import Sequence
from pathlib import Path

import tensorflow_datasets as tfds

from radtl import imaging
from radtl import splits as splits_lib
from tfds_builders import radimagenet_common as common
from tfds_builders.imported import import_record

VERSION = tfds.core.Version("1.0.0")


def read_folds(import_dir, record: import_record.ImportRecord) -> list[splits_lib.Fold]:
    """The folds of an import, from its split lists, after checking they are unchanged.

    Raises:
        ManualDataError: a split list is missing or differs from the one recorded at
            import time (the message names it and says how to restore the split).
    """
    directory = Path(import_dir) / import_record.SPLITS_DIR
    changed = []
    for file_name, digest in sorted(record.split_files.items()):
        path = directory / file_name
        if not path.is_file():
            changed.append(f"{path} (missing)")
        elif import_record.file_sha256(path) != digest:
            changed.append(f"{path} (edited since the import)")
    if changed:
        raise common.ManualDataError(
            f"The split lists of the imported dataset {record.name} are not those recorded in "
            f"{Path(import_dir) / import_record.RECORD_FILE}:\n{common.listing(changed)}\n"
            "Fix: restore them (they were written by `radtl data import`), or import the data again "
            "under a new name, with `--splits DIR` to use edited lists.")
    try:
        return splits_lib.read_split_csvs(directory, path_col="filename", label_col="label", group_col="group")
    except splits_lib.SplitError as err:
        raise common.ManualDataError(str(err)) from None


class ImportedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the per-dataset classes made by `builder_class`; not used directly."""

    VERSION = VERSION
    RELEASE_NOTES = {"1.0.0": "First import format."}
    IMPORT_DIR: Path
    RECORD: import_record.ImportRecord

    def _info(self) -> tfds.core.DatasetInfo:
        record = self.RECORD
        return self.dataset_info_from_configs(
            description=(f"{record.name}: imported with `radtl data import` from {record.source.get('kind')} "
                         f"({record.images} images, {record.groups} groups, classes {record.class_names})."),
            features=common.features(record.class_names),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(record.to_dict()),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # the images are read from the record's image_root
        fold = read_folds(self.IMPORT_DIR, self.RECORD)[self.builder_config.fold - 1]
        return {split: self._generate_examples(items) for split, items in fold.items()}

    def _generate_examples(self, items: Sequence[splits_lib.Item]):
        root = Path(self.RECORD.image_root)
        percentiles = tuple(self.RECORD.conversion["percentiles"])
        for item in items:
            try:
                image, _ = imaging.read_image(root / item.filename, percentiles=percentiles)
            except imaging.ImageReadError as err:
                raise common.UnreadableImageError(
                    f"{err}\n(The image was readable at import time: restore it in {root}.)") from None
            yield item.filename, {"image": image, "label": item.label, "filename": item.filename,
                                  "exam_id": item.group}


@functools.lru_cache(maxsize=None)
def _builder_class(import_dir: Path, mtime_ns: int) -> type[ImportedBuilder]:
    del mtime_ns  # part of the cache key: a re-import makes a new class
    record = import_record.read(import_dir)
    configs = [common.FoldConfig(name=f"fold{k}", fold=k,
                                 description=f"{record.name}: fold {k} of {record.num_folds} (split lists "
                                             f"train/val/test_fold{k}.csv)")
               for k in range(1, record.num_folds + 1)]
    body = {"name": record.name, "BUILDER_CONFIGS": configs, "IMPORT_DIR": import_dir, "RECORD": record,
            "__module__": __name__}
    return types.new_class(f"Imported_{record.name}", (ImportedBuilder,), {"skip_registration": True},
                           lambda namespace: namespace.update(body))


def builder_class(import_dir) -> type[ImportedBuilder]:
    """The TFDS builder class of the dataset imported into `import_dir` (`<data_dir>/<name>`).

    Instantiate it as TFDS builders are: `cls(config="fold1", data_dir=<data_dir>)`.
    """
    import_dir = Path(import_dir).resolve()
    return _builder_class(import_dir, (import_dir / import_record.RECORD_FILE).stat().st_mtime_ns)
