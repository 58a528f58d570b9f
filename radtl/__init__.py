"""radtl: reproducible transfer-learning studies in medical imaging, for Keras 3.

Modules (one concept each), imported on first use (`radtl.schedules` works after a
plain `import radtl`, and `import radtl` stays cheap until one is touched):
`data`, `augmentation`, `preprocessing`, `backbones`, `weights`, `pretrained`,
`heads`, `models`, `schedules`, `losses`, `precision`, `metrics`, `stats`, `config`,
`rundir`, `train`, `sweep`, `analysis`, `plots`, `health`, `registry`, `similarity`,
`activations`, `ensembles`, `confounders`, `interpret`, `imaging`, `splits`, `importing`.

Saved models: the custom Keras objects a radtl model or checkpoint holds (the
preprocessing layer, heads, losses, training metrics) are registered as soon as Keras
is imported, whether before or after `import radtl`, so `keras.models.load_model`
works after `import radtl` with nothing else to import.
"""
import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_SUBMODULES = (
    "activations", "analysis", "augmentation", "backbones", "config", "confounders", "interpret", "probing", "data", "download", "health", "heads", "keras_metrics",
    "losses", "metrics", "models", "plots", "precision", "preprocessing", "pretrained", "registry", "rundir",
    "schedules", "similarity", "stats", "sweep", "train", "weights", "ensembles", "imaging", "splits", "importing",
)

# Public name -> module that defines it.
_EXPORTS = {
    "load_backbone": "radtl.backbones",
    "build_model": "radtl.models",
    "TrainConfig": "radtl.config",
    "RunDir": "radtl.rundir",
}

#: Modules that register custom Keras objects (`register_keras_serializable(package="radtl")`).
KERAS_OBJECT_MODULES = ("radtl.preprocessing", "radtl.heads", "radtl.losses", "radtl.keras_metrics")

__all__ = ["__version__", *_SUBMODULES, *_EXPORTS]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"radtl.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'radtl' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


def register_keras_objects() -> None:
    """Imports the modules that register radtl's custom Keras objects (idempotent)."""
    for module in KERAS_OBJECT_MODULES:
        importlib.import_module(module)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Registers radtl's Keras objects right after `keras` is first imported.

    Keras itself stays unimported until somebody imports it, so `import radtl` (and
    `radtl --help`) do not pay for TensorFlow. The finder stays in place until the keras
    module actually runs (TensorFlow looks keras up with `find_spec` long before it
    imports it), and a failure to register only warns: it never breaks `import keras`.
    """

    _looking = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._looking:
            return None
        self._looking = True  # the lookup below must not find this finder again
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self._looking = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module
        finder = self

        def exec_then_register(module):
            exec_module(module)
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            try:
                register_keras_objects()
            except Exception as err:  # noqa: BLE001 - never break `import keras`
                import warnings

                warnings.warn(f"radtl could not register its Keras objects ({err!r}); import radtl.preprocessing, "
                              "radtl.heads, radtl.losses and radtl.keras_metrics before loading a radtl model.")

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    register_keras_objects()
elif not any(isinstance(finder, _RegisterAfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
