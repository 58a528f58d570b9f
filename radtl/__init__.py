"""radtl: reproducible transfer-learning studies in medical imaging, for Keras 3.

Modules (one concept each): `data`, `augmentation`, `preprocessing`, `backbones`,
`weights`, `heads`, `models`, `schedules`, `losses`, `precision`, `metrics`, `stats`.
The most used entry points are re-exported here lazily, so `import radtl` stays cheap
until one of them is touched.
"""
import importlib

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "load_backbone": "radtl.backbones",
    "build_model": "radtl.models",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'radtl' has no attribute {name!r}")
