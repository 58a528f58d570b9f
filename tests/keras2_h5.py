"""Test helper: write legacy Keras-2 HDF5 weight files exactly as tf.keras 2.x did.

Mirrors `tf.keras` 2.x `hdf5_format.save_weights_to_hdf5_group` (weights-only,
`model.save_weights("x.h5")`) and `save_model_to_hdf5` (full model, `model.save("x.h5")`,
the RadImageNet files' layout): root or `model_weights` attributes `layer_names`,
`backend`, `keras_version`; one group per layer (in `model.layers` order) with attribute
`weight_names` such as `conv1_conv/kernel:0`, each name a dataset path inside the group;
weights in the legacy order trainable, then non-trainable.
"""
import json
import socket
from pathlib import Path

import h5py
import numpy as np
import pytest

# Keras 2 split attributes larger than the HDF5 object header limit into chunks.
HDF5_OBJECT_HEADER_LIMIT = 64512


def _save_attributes(group, name, data):
    data = np.asarray(data)
    chunks = 1
    while data.nbytes / chunks > HDF5_OBJECT_HEADER_LIMIT:
        chunks += 1
    if chunks == 1:
        group.attrs[name] = data
        return
    for i, chunk in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{name}{i}"] = chunk


def random_arrays(model, seed=0):
    """Known random values for every layer with weights: {layer_name: [arrays]}.

    Moving variances are positive so a model holding them predicts finite numbers.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for layer in model.layers:
        variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        if not variables:
            continue
        values = []
        for v in variables:
            shape = tuple(v.shape)
            dtype = np.dtype(v.dtype)
            if "variance" in v.name:
                values.append(rng.uniform(0.5, 1.5, shape).astype(dtype))
            elif not np.issubdtype(dtype, np.floating):
                values.append(rng.integers(1, 100, shape).astype(dtype))
            else:
                values.append((0.05 * rng.standard_normal(shape)).astype(dtype))
        arrays[layer.name] = values
    return arrays


def write(path, model, arrays, layout="full-model", keras_version="2.6.0"):
    """Write `arrays` (from `random_arrays`) for `model` as a Keras-2 HDF5 file.

    Args:
        path: destination (.h5).
        model: the keras.Model whose layer names and order the file follows.
        arrays: {layer_name: [arrays in legacy order]}.
        layout: "full-model" (`model_weights` group) or "weights-only".
        keras_version: str written to the `keras_version` attributes.
    """
    with h5py.File(path, "w") as f:
        if layout == "full-model":
            f.attrs["keras_version"] = keras_version.encode()
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps(
                {"class_name": "Functional", "config": {"name": model.name}}
            ).encode()
            group = f.create_group("model_weights")
        elif layout == "weights-only":
            group = f
        else:
            raise ValueError(f"layout must be full-model or weights-only: {layout!r}")
        _save_attributes(group, "layer_names", [l.name.encode() for l in model.layers])
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = keras_version.encode()
        for layer in model.layers:
            layer_group = group.create_group(layer.name)
            variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
            names = [f"{layer.name}/{v.name}:0".encode() for v in variables]
            _save_attributes(layer_group, "weight_names", names)
            for name, value in zip(names, arrays.get(layer.name, [])):
                dataset = layer_group.create_dataset(name.decode(), value.shape,
                                                     dtype=value.dtype)
                dataset[()] = value  # also scalars, e.g. Normalization's count


def unreachable_url(path="file.h5"):
    """An http URL on a local port nobody listens on: connecting fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"


def write_manifest_override(folder, entries):
    """Write `folder/manifest.json` overriding fields of manifest entries."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"files": entries}))
    return folder


def write_html_page(path, title="Google Drive - Virus scan warning"):
    """Write the kind of HTML page Google Drive serves instead of a large file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        "Google Drive can't scan this file for viruses.</body></html>"
    )
    return Path(path)


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    """Make every folder radtl searches empty: no $RADTL_WEIGHTS_DIR, a checkout
    `weights/` stand-in (`tmp/repo_weights`, searched only once created) and an empty
    Keras cache (`tmp/keras_home/models`). Yields the tmp folder."""
    from radtl import weights

    monkeypatch.delenv("RADTL_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", tmp_path / "repo_weights")
    return tmp_path
