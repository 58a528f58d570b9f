"""imported: the generic TFDS builder of datasets imported with `radtl data import`.

`imported_dataset_builder.builder_class(<data_dir>/<name>)` makes one dataset's builder
from its `import_record` (`import.json`) and split lists.
"""
