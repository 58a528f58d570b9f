"""Shared set-up of the command-line tests: the tiny run's options and the data folder."""
import contextlib
import os

# A tiny real run on the embedded dataset: VGG16 (no BatchNorm, so a 1-epoch model from
# random weights does not collapse to one constant prediction) at 32 px.
TINY = ["--dataset", "synthetic_lesions", "--backbone", "vgg16", "--weights", "none",
        "--preprocessing", "native", "--image-size", "32", "--batch-size", "64", "--epochs", "1",
        "--lr", "1e-4", "--precision", "float32", "--xla", "off", "--verbose", "0"]


@contextlib.contextmanager
def radtl_data_dir(path):
    """Points `$RADTL_DATA_DIR` at `path` for the duration, then restores it."""
    previous = os.environ.get("RADTL_DATA_DIR")
    os.environ["RADTL_DATA_DIR"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("RADTL_DATA_DIR")
        else:
            os.environ["RADTL_DATA_DIR"] = previous
