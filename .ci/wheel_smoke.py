"""Wheel smoke test, run from outside the checkout by .ci/wheel_smoke.sh.

Checks what a user of `pip install radtl-*.whl` gets: the package imports from the
virtual environment (not the checkout), the weights manifest is there, the embedded
dataset builds from the installed builders, and a legacy-HDF5 weight file written here
loads and verifies.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

checkout_tests = Path(sys.argv[1])  # the checkout's tests/ folder, for the HDF5 writer only
sys.path.insert(0, str(checkout_tests))

import keras2_h5  # noqa: E402  (writes files exactly as tf.keras 2.x did)
import radtl  # noqa: E402

where = Path(radtl.__file__).resolve()
assert sys.prefix in str(where), f"radtl imported from {where}, not from the wheel install in {sys.prefix}"
print(f"radtl {radtl.__version__} from {where.parent}")

from radtl import backbones, weights  # noqa: E402

manifest = weights.manifest()
assert "RadImageNet-ResNet50_notop.h5" in manifest.files, sorted(manifest.files)
print(f"manifest: {len(manifest.files)} files")

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "mobilenet_v2_weights.h5"
    model = backbones.build(backbones.get("mobilenet_v2"), input_shape=(32, 32, 3))
    keras2_h5.write(path, model, keras2_h5.random_arrays(model))
    loaded = radtl.load_backbone("mobilenet_v2", weights=str(path), input_shape=(32, 32, 3))
    print(f"loaded and verified {path.name} into {loaded.name} ({loaded.count_params()} parameters)")

    data_dir = Path(tmp) / "tfds"
    out = subprocess.run([sys.executable, "-m", "radtl.cli", "data", "info", "synthetic_lesions",
                          "--data-dir", str(data_dir)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "benign" in out.stdout and "malignant" in out.stdout, out.stdout
    print(out.stdout.strip())
print("wheel smoke test passed")
