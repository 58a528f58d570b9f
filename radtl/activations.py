"""Activations at a backbone's stages, and the per-stage similarity of two models.

A stage is the output of one block group of the backbone registry (`radtl.backbones`):
`stage_layers(backbone)` names the layer per group (`BackboneSpec.stage_layers`). For
ResNet50 these are the five layers Juodelyte et al. (2023) compare, `conv1_relu`,
`conv2_block3_out`, `conv3_block4_out`, `conv4_block6_out`, `conv5_block3_out`.

Datapoints are spatial positions, as in Juodelyte et al.'s `src/CCA.py`
(DovileDo/revisiting-transfer @ 33eace2): a stage's (batch, h, w, c) activations become
(batch * h * w, c) rows, and 64 random channels are compared, averaged over 5 repeats.
Their script takes every position of one random batch of round(10000 / (h * w)) images
(about 10,000 datapoints); `stage_activations` instead draws `max_datapoints` positions
uniformly from all positions of all the dataset's images (priority reservoir sampling,
one pass, so memory stays at `max_datapoints x channels` per stage whatever the dataset
size). A dataset of at most round(10000 / (h * w)) images gives exactly their datapoints.

Positions and channels are drawn from `seed` and the stage's name alone, never from the
activations: two models of one architecture and input size, fed the same batches in the
same order, get the same positions and channels, row for row. `compare_stages` feeds
both models each batch in one pass, so even a dataset that reshuffles on every iteration
compares the same images.

Reference:
    Juodelyte, Jimenez-Sanchez, Cheplygina. "Revisiting Hidden Representations in
    Transfer Learning for Medical Imaging." arXiv:2302.08272 (2023).

Example:

```python
import numpy as np
from radtl import activations, models

model = models.build_model("resnet50", None, input_shape=(32, 32, 3))
images = [np.random.default_rng(i).uniform(0, 255, (8, 32, 32, 3)) for i in range(2)]
acts = activations.stage_activations(model, images, max_datapoints=500, channels=16)
{name: a.shape for name, a in acts.items()}
# {"conv1_relu": (500, 16), "conv2_block3_out": (500, 16), ...,
#  "conv5_block3_out": (16, 16)}  (16 images x 1 x 1 positions)
activations.compare_stages(model, model, images, channels=8, max_datapoints=500)
# DataFrame: similarity 1.0 for every stage and method
```
"""
import logging
import zlib

import keras
import numpy as np
import pandas as pd

from radtl import backbones
from radtl import models as models_lib
from radtl import similarity
from radtl._checks import check_int

__all__ = ["METHODS", "stage_layers", "stage_activations", "compare_stages", "compare_runs"]

logger = logging.getLogger(__name__)

#: Similarity measures `compare_stages` accepts: functions of `radtl.similarity`.
METHODS = ("mean_cca", "svcca", "pwcca", "linear_cka", "rbf_cka")


def _named_operations(backbone):
    """`{name: operation}` by canonical name, then the operations' own names.

    Canonical names (`radtl.backbones.canonical_layer_names`) are computed for layers
    and, separately, for the operations that are not layers (ConvNeXt's residual `+`).
    """
    layers = list(backbone.layers)
    ops = [op for op in backbone.operations if not isinstance(op, keras.layers.Layer)]
    named = {}
    for group in (layers, ops):
        for op, name in zip(group, backbones.canonical_layer_names(group)):
            named.setdefault(name, op)
    for op in layers + ops:
        named.setdefault(op.name, op)
    return named


def _check_stage_order(backbone, spec, names, named):
    """Each stage must follow its group's spatial weighted layers and precede the next's."""
    position = {id(op): i for i, op in enumerate(backbone.operations)}
    groups = backbones.block_groups(backbone, spec)
    for k, ((group, layers), name) in enumerate(zip(groups, names)):
        at = position[id(named[name])]
        # The last group may hold layers after the global pooling (ConvNeXt's norm).
        after = max(position[id(layer)] for layer in layers if len(layer.output.shape) == 4)
        before = (min(position[id(layer)] for layer in groups[k + 1][1])
                  if k + 1 < len(groups) else len(position))
        if not after <= at < before:
            raise ValueError(
                f"Stage layer `{name}` of `{spec.name}` is not the end of block group "
                f"`{group}`: layers of that group follow it, or of the next precede it "
                f"(a deeper model of the family?). Pass `stages=` layer names. "
                f"Received: backbone.name={backbone.name!r}"
            )


def stage_layers(backbone):
    """The layer names whose outputs are `backbone`'s stages, one per block group.

    The names come from the registry (`BackboneSpec.stage_layers`; see
    `radtl.backbones`) and are canonical (`radtl.backbones.canonical_layer_names`):
    the layers' own names in a backbone built by `radtl.backbones.load_backbone`, and
    the names a fresh process gives in a `keras.applications` model. ConvNeXt's
    stages end in residual sums, which Keras 3 records as operations (`add_2`), not
    layers. Each name is checked to exist, to give a 4-D (batch, h, w, c) output and
    to sit between its block group's last weighted layer with a 4-D output and the
    next group's first weighted layer.

    Args:
        backbone: keras.Model. A registered backbone (or a `keras.applications` model
            of one), or a model holding one as a sub-model (`radtl.models.build_model`).

    Returns:
        list of str, ordered input -> output. ResNet50: `["conv1_relu",
        "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"]`.

    Raises:
        ValueError: `backbone` is no registered backbone and holds none, or its
            layers do not fit the registered stage layers.

    Example:

    ```python
    stage_layers(radtl.backbones.load_backbone("densenet121", None,
                                               input_shape=(32, 32, 3)))
    # ["conv1_relu", "pool2_pool", "pool3_pool", "pool4_pool", "relu"]
    ```
    """
    backbone, _ = _backbone_and_preprocessing(backbone)
    spec = backbones.identify(backbone)  # found by name or layers: never None here
    names = list(spec.stage_layers)
    named = _named_operations(backbone)
    missing = [name for name in names if name not in named]
    if missing or len(names) != len(spec.block_groups):
        raise ValueError(
            f"The stage layers registered for `{spec.name}` ({names}) must name one layer "
            f"per block group ({len(spec.block_groups)}) of `backbone`; missing: {missing}. "
            "Fix `stage_layers` in radtl/backbones.py, or pass `stages=` layer names. "
            f"Received: backbone.name={backbone.name!r}"
        )
    _check_stage_order(backbone, spec, names, named)
    for name in names:
        _check_spatial(name, named[name].output)
    return names


def _check_spatial(name, tensor):
    if len(tensor.shape) != 4:
        raise ValueError(
            f"Stage `{name}` must have a spatial (batch, h, w, channels) output; it has "
            f"shape {tuple(tensor.shape)}. Pass `stages=` names of 4-D layers "
            "(`model.summary()` lists them)."
        )


def _backbone_and_preprocessing(model):
    """`(backbone, preprocessing layer or None)` of a model, or `(model, None)`."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a keras.Model: a radtl model (`radtl.models.build_model`), "
            "a model holding a registered backbone, or a backbone. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )
    if backbones.identify(model) is not None:
        return model, None
    backbone = models_lib.get_backbone(model)
    names = [layer.name for layer in model.layers]
    return backbone, model.get_layer("preprocessing") if "preprocessing" in names else None


class _Extractor:
    """Raw [0, 255] images -> the stages' activations, as numpy arrays."""

    def __init__(self, model, stages):
        backbone, preprocess = _backbone_and_preprocessing(model)
        if stages is None:
            stages = stage_layers(backbone)
        elif (isinstance(stages, str) or not stages
              or not all(isinstance(s, str) for s in stages)):
            raise ValueError(
                "`stages` must be None (the registered stages, `stage_layers(model)`) or "
                f"a non-empty list of layer names. Received: stages={stages!r}"
            )
        named = _named_operations(backbone)
        unknown = [name for name in stages if name not in named]
        if unknown:
            raise ValueError(
                f"`stages` must name layers of the backbone `{backbone.name}`; unknown: "
                f"{unknown}. Registered stages: `radtl.activations.stage_layers(model)`. "
                f"Received: stages={list(stages)!r}"
            )
        outputs = [named[name].output for name in stages]
        for name, tensor in zip(stages, outputs):
            _check_spatial(name, tensor)
        self.stages = list(stages)
        self.backbone = backbone
        self.input_shape = tuple(backbone.input_shape[1:])
        stage_model = keras.Model(backbone.input, outputs, name=f"{backbone.name}_stages")
        if preprocess is None:
            self.model = stage_model
        else:
            inputs = keras.Input(self.input_shape, name="image")
            self.model = keras.Model(inputs, stage_model(preprocess(inputs)))

    def __call__(self, images):
        outputs = self.model.predict_on_batch(images)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [np.asarray(x, dtype="float32") for x in outputs]


def _architecture(backbone):
    """What must match for two backbones' stages and positions to correspond."""
    spec = backbones.identify(backbone)
    weighted = sum(1 for layer in backbone.layers if layer.weights)
    return (f"{spec.name if spec else backbone.name} ({weighted} layers with weights) "
            f"at input {tuple(backbone.input_shape[1:])}")


def _images(batch, input_shape):
    """The image batch in a dataset element, as float32 (B, H, W, C)."""
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if isinstance(batch, dict) and "image" in batch:
        batch = batch["image"]
    images = np.asarray(batch, dtype="float32")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"`dataset` must yield image batches (batch, {', '.join(map(str, input_shape))}) "
            "of raw [0, 255] values, or (images, labels[, meta]) tuples; batch a dataset "
            "of single images (`ds.batch(32)`) and resize to the model's input size. "
            f"Received: a batch of shape {images.shape}"
        )
    return images


class _Reservoir:
    """A uniform sample of at most `size` rows of a stream (priority sampling).

    Each row gets a uniform random key from a generator seeded by (seed, stage name);
    the rows with the `size` smallest keys are kept. Keys depend only on the number of
    rows seen, so the same stream shape gives the same rows, whatever their values.
    """

    def __init__(self, name, size, channels, num_channels, seed):
        entropy = [seed, zlib.crc32(name.encode("utf-8"))]
        self.size = size
        if channels is None or channels >= num_channels:
            self.channels = np.arange(num_channels)
        else:
            choose = np.random.default_rng([*entropy, 1])
            self.channels = np.sort(choose.choice(num_channels, channels, replace=False))
        self.keys_rng = np.random.default_rng([*entropy, 0])
        self.seen = 0
        self.keys = np.empty(0)
        self.index = np.empty(0, dtype=np.int64)
        self.rows = np.empty((0, len(self.channels)), dtype="float32")

    def add(self, activations):
        rows = activations.reshape(-1, activations.shape[-1])
        keys = self.keys_rng.random(len(rows))
        index = np.arange(self.seen, self.seen + len(rows))
        self.seen += len(rows)
        if len(self.keys) == self.size:
            keep = keys < self.keys.max()
            keys, index, rows = keys[keep], index[keep], rows[keep]
        keys = np.concatenate([self.keys, keys])
        index = np.concatenate([self.index, index])
        rows = np.concatenate([self.rows, rows[:, self.channels]])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[:self.size]
            keys, index, rows = keys[keep], index[keep], rows[keep]
        self.keys, self.index, self.rows = keys, index, rows

    def result(self):
        """The kept rows in stream order, (n_datapoints, n_channels) float32."""
        return np.ascontiguousarray(self.rows[np.argsort(self.index)])


def _collect(extractors, dataset, *, seeds, max_datapoints, channels, keys):
    """One pass over `dataset`: `[seed][model] -> {key: array}` for every model and seed."""
    reservoirs = None
    for batch in dataset:
        images = _images(batch, extractors[0].input_shape)
        outputs = [extractor(images) for extractor in extractors]
        if reservoirs is None:
            reservoirs = [[[_Reservoir(key, max_datapoints, channels, acts.shape[-1], seed)
                            for key, acts in zip(keys, model_outputs)]
                           for model_outputs in outputs] for seed in seeds]
        for per_seed in reservoirs:
            for model_reservoirs, model_outputs in zip(per_seed, outputs):
                for reservoir, acts in zip(model_reservoirs, model_outputs):
                    reservoir.add(acts)
    if reservoirs is None:
        raise ValueError("`dataset` must yield at least one batch of images. Received: an "
                         "empty dataset")
    return [[{key: r.result() for key, r in zip(keys, model_reservoirs)}
             for model_reservoirs in per_seed] for per_seed in reservoirs]


def _varying(activations):
    """The columns that vary over the datapoints (all of them if none does)."""
    varying = np.any(activations != activations[:1], axis=0)
    return activations[:, varying] if varying.any() else activations


def _check_sampling(max_datapoints, channels, seed):
    check_int("max_datapoints", max_datapoints, 1)
    check_int("channels", channels, 1, allow_none=True)
    check_int("seed", seed, 0)


def stage_activations(model, dataset, stages=None, max_datapoints=10_000, channels=None,
                      seed=0):
    """Activations at the backbone's stages, spatial positions as datapoints.

    Each stage's (batch, h, w, c) output becomes (batch * h * w, c) rows, of which
    `max_datapoints` are drawn uniformly at random over the whole dataset in one
    streaming pass (see the module docstring; Juodelyte et al. 2023, `src/CCA.py`,
    take every position of round(10000 / (h * w)) random images instead). Images go
    through the model's own preprocessing layer (the layer named "preprocessing" in
    a radtl model) and then the backbone; other layers before the backbone are not
    applied, and a backbone passed alone receives the images as they are.

    Positions and channels depend only on `seed`, the stage's name and the number
    of positions per batch: for two models of one architecture and input size fed
    the same batches in the same order, row i of one model's array and row i of the
    other's are the same image and position, column j the same channel. A
    `tf.data.Dataset` that reshuffles on every iteration gives other images each
    call: use `compare_stages`, which feeds both models in one pass.

    Reference:
        Juodelyte, Jimenez-Sanchez, Cheplygina. "Revisiting Hidden Representations
        in Transfer Learning for Medical Imaging." arXiv:2302.08272 (2023).

    Args:
        model: keras.Model. A radtl model (`radtl.models.build_model`), any model
            whose backbone `radtl.models.get_backbone` finds, or a backbone itself.
        dataset: iterable of float RGB image batches (B, H, W, 3) in [0, 255] at the
            model's input size, or of `(images, labels[, meta])` tuples (a
            `tf.data.Dataset` from `radtl.data`, a list of numpy arrays, ...).
        stages: list of str, layer names of the backbone with 4-D outputs. Defaults
            to None: `stage_layers(model)`, one per block group.
        max_datapoints: int >= 1. Rows kept per stage. Defaults to 10,000.
        channels: int >= 1 or None. Channels kept per stage, drawn at random
            (sorted); all when None or when a stage has fewer. Defaults to None.
        seed: int >= 0. Seeds the positions and channels. Defaults to 0.

    Returns:
        dict `{stage name: float32 array (n_datapoints, n_channels)}` in stage order,
        n_datapoints = min(max_datapoints, positions in the dataset), rows in dataset
        order. Memory: the current batch plus `max_datapoints x n_channels` per stage.

    Raises:
        ValueError: bad arguments, unknown or non-spatial stages, a batch of the
            wrong shape, or an empty dataset.

    Example:

    ```python
    model = radtl.models.build_model("densenet121", None, input_shape=(32, 32, 3))
    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    acts = stage_activations(model, [images[:8], images[8:]], max_datapoints=1000)
    acts["conv1_relu"].shape  # (1000, 64): of 16 x 16 x 16 positions
    acts["relu"].shape        # (16, 1024): 16 images x 1 x 1 positions
    ```
    """
    _check_sampling(max_datapoints, channels, seed)
    extractor = _Extractor(model, stages)
    [[result]] = _collect([extractor], dataset, seeds=[seed], max_datapoints=max_datapoints,
                          channels=channels, keys=extractor.stages)
    return result


def compare_stages(model_a, model_b, dataset, methods=("pwcca", "svcca", "linear_cka"),
                   repeats=5, channels=64, max_datapoints=10_000, seed=0, *, stages=None,
                   progress=None):
    """Per-stage similarity of two models of one backbone architecture.

    Both models see every batch of `dataset` in one pass; for each repeat r (seed
    `seed + r`) both get the same positions and channels (`stage_activations`), and
    each method compares model_a's (n_datapoints, n_channels) array with model_b's.
    This is Juodelyte et al.'s (2023) protocol (64 random channels, ~10,000 spatial
    positions, 5 repeats averaged), with their mean CCA available as "mean_cca".
    Channels constant over a repeat's datapoints in one model (dead ReLUs) are left
    out of that model's side, as google/svcca's `cca_core` drops neurons of
    near-zero variance; the CCA measures reject constant features otherwise.

    Reference:
        Juodelyte, Jimenez-Sanchez, Cheplygina. "Revisiting Hidden Representations
        in Transfer Learning for Medical Imaging." arXiv:2302.08272 (2023); the
        measures are `radtl.similarity`'s (Raghu et al. 2017, Morcos et al. 2018,
        Kornblith et al. 2019).

    Args:
        model_a, model_b: keras.Model. Radtl models, models holding a registered
            backbone, or backbones; same architecture and input size.
        dataset: iterable of raw [0, 255] image batches or `(images, labels[, meta])`
            tuples, as for `stage_activations`; iterated once.
        methods: sequence of str from `METHODS`. Defaults to ("pwcca", "svcca",
            "linear_cka").
        repeats: int >= 1. Seeds `seed`, `seed + 1`, ... averaged. Defaults to 5.
        channels: int >= 1 or None (all). Channels per stage and repeat. CCA needs
            more datapoints than channels. Defaults to 64.
        max_datapoints: int >= 1. Positions per stage and repeat. Defaults to 10,000.
        seed: int >= 0. Defaults to 0.
        stages: list of str or None. Layer names; defaults to `stage_layers(model_a)`.
        progress: callable taking one str, called once per stage. Defaults to None
            (`logging.info` on this module's logger).

    Returns:
        pandas.DataFrame, one row per (stage, method) in stage order: `stage` (str),
        `stage_index` (int, 0 = nearest the input), `method` (str), `similarity`
        (float, mean over repeats), `std` (float, population standard deviation over
        repeats; 0 for one repeat), `n_datapoints` and `n_channels` (int, per repeat).
        Memory: 2 x repeats x `max_datapoints x n_channels` float32 per stage.

    Raises:
        ValueError: bad arguments, different architectures or input sizes, or a
            measure's error (too few datapoints for the channels, constant
            activations), prefixed with the stage.

    Example:

    ```python
    a = radtl.models.build_model("resnet50", None, input_shape=(32, 32, 3))
    b = radtl.models.build_model("resnet50", None, input_shape=(32, 32, 3))
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 32, 32, 3))
    compare_stages(a, b, list(images), channels=8, repeats=2, max_datapoints=500)
    ```
    """
    if isinstance(methods, str) or not methods:
        raise ValueError(f"`methods` must be a non-empty list of names from {list(METHODS)}. "
                         f"Received: methods={methods!r}")
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"`methods` must hold names from {list(METHODS)}. "
                             f"Received: methods={list(methods)!r}")
    check_int("repeats", repeats, 1)
    _check_sampling(max_datapoints, channels, seed)
    if progress is not None and not callable(progress):
        raise ValueError("`progress` must be a callable taking one str, or None. "
                         f"Received: progress={progress!r}")
    progress = progress or logger.info
    extractor_a = _Extractor(model_a, stages)
    backbone_b, _ = _backbone_and_preprocessing(model_b)
    described = [_architecture(extractor_a.backbone), _architecture(backbone_b)]
    if described[0] != described[1]:
        raise ValueError(
            "`model_a` and `model_b` must have the same backbone architecture and input "
            "size, so that their stages and positions correspond. Received: "
            f"model_a: {described[0]}, model_b: {described[1]}. Compare models built "
            "with the same backbone and image size."
        )
    stage_names = extractor_a.stages
    extractors = [extractor_a, _Extractor(model_b, stage_names)]
    seeds = [seed + r for r in range(repeats)]
    collected = _collect(extractors, dataset, seeds=seeds, max_datapoints=max_datapoints,
                         channels=channels, keys=stage_names)
    rows = []
    for index, stage in enumerate(stage_names):
        pairs = [(per_seed[0][stage], per_seed[1][stage]) for per_seed in collected]
        n_datapoints, n_channels = pairs[0][0].shape
        summary = []
        for method in methods:
            measure = getattr(similarity, method)
            try:
                values = [float(measure(_varying(x), _varying(y))) for x, y in pairs]
            except ValueError as error:
                raise ValueError(
                    f"Stage `{stage}` ({n_datapoints} datapoints x {n_channels} channels), "
                    f"method {method!r}: {error} Use more or larger images, more "
                    "`max_datapoints` or fewer `channels`."
                ) from error
            rows.append({"stage": stage, "stage_index": index, "method": method,
                         "similarity": float(np.mean(values)), "std": float(np.std(values)),
                         "n_datapoints": n_datapoints, "n_channels": n_channels})
            summary.append(f"{method} {rows[-1]['similarity']:.4f}")
        progress(f"stage {index + 1}/{len(stage_names)} {stage}: {', '.join(summary)} "
                 f"({n_datapoints} datapoints x {n_channels} channels, {repeats} repeats)")
    return pd.DataFrame(rows, columns=["stage", "stage_index", "method", "similarity", "std",
                                       "n_datapoints", "n_channels"])


# --------------------------------------------------------------------------- runs

def compare_runs(run_a, run_b, *, split="test", methods=("pwcca", "svcca", "linear_cka"), at_init=False,
                 repeats=5, channels=64, max_datapoints=10_000, seed=0, progress=None) -> pd.DataFrame:
    """Per-stage similarity of two finished runs' backbones on the same images.

    Compares the two fine-tuned backbones; with `at_init`, also the two starting
    backbones (e.g. ImageNet vs RadImageNet before fine-tuning) and each run's start
    with its fine-tuned backbone, as Juodelyte et al. (2023) do.

    Args:
        run_a, run_b: paths or `RunDir`s of finished runs on the same dataset, fold and
            image size, with the same backbone architecture.
        split: str. The images compared. Defaults to "test".
        methods, repeats, channels, max_datapoints, seed: as for `compare_stages`.
        at_init: bool. Also compare the starting backbones. Defaults to False.
        progress: callable(str) or None. One line per comparison and stage.

    Returns:
        DataFrame with `compare_stages`' columns plus `comparison` ("fine-tuned A vs B",
        "initial A vs B", "A: initial vs fine-tuned", "B: initial vs fine-tuned"), `run_a`,
        `run_b` (the runs' directory names).

    Raises:
        RunDirectoryError: a run is not finished.
        ValueError: the runs differ in dataset, fold, image size or backbone.
    """
    from radtl import data as data_lib
    from radtl.rundir import RunDir

    progress = progress or logger.info
    runs = [RunDir(run_a), RunDir(run_b)]
    for run in runs:
        run.require_finished()
    config_a, config_b = (run.read_config() for run in runs)
    differing = {k: (getattr(config_a, k), getattr(config_b, k))
                 for k in ("dataset", "fold", "image_size", "resize_method", "backbone") if getattr(config_a, k) != getattr(config_b, k)}
    if differing:
        raise ValueError(f"The runs {runs[0].path} and {runs[1].path} must be on the same dataset, fold, image size, "
                         f"resize method and backbone to compare their stages on the same images; they differ in {differing}.")
    images = data_lib.open(config_a.dataset, config_a.fold, config_a.data_dir).load(
        split, image_size=config_a.image_size, batch_size=32, resize_method=config_a.resize_method)
    final = [run.load_model() for run in runs]
    pairs = [("fine-tuned A vs B", final[0], final[1])]
    if at_init:
        initial = [models_lib.build_from_config(config, len(run.class_names))
                   for config, run in ((config_a, runs[0]), (config_b, runs[1]))]
        pairs += [("initial A vs B", initial[0], initial[1]),
                  ("A: initial vs fine-tuned", initial[0], final[0]),
                  ("B: initial vs fine-tuned", initial[1], final[1])]
    tables = []
    for name, model_a, model_b in pairs:
        progress(f"{name}:")
        table = compare_stages(model_a, model_b, images, methods=methods, repeats=repeats, channels=channels,
                               max_datapoints=max_datapoints, seed=seed, progress=progress)
        tables.append(table.assign(comparison=name, run_a=runs[0].name, run_b=runs[1].name))
    return pd.concat(tables, ignore_index=True)
