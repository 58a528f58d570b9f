"""Backbone registry: the CNNs radtl fine-tunes, as data, and their construction.

Each registered backbone is a frozen `BackboneSpec` (pure data): its
`keras.applications` constructor, the weight files it can load (RadImageNet and/or
ImageNet, described in `radtl/weights_manifest.json`), its minimum input size, its native
preprocessing and its block groups (the stages fine-tuning schedules unfreeze).

| name | RadImageNet file | native preprocessing | min size |
|---|---|---|---|
| `resnet50` | `RadImageNet-ResNet50_notop.h5` | caffe | 32 |
| `densenet121` | `RadImageNet-DenseNet121_notop.h5` | torch | 32 |
| `inception_v3` | `RadImageNet-InceptionV3_notop.h5` | tf | 75 |
| `inception_resnet_v2` | `RadImageNet-IRV2_notop.h5` | tf | 75 |
| `vgg16`, `vgg19` | (ImageNet only) | caffe | 32 |
| `mobilenet_v2` | (ImageNet only) | tf | 32 |
| `efficientnet_b0`, `convnext_tiny` | (ImageNet only) | none (built into the model) | 32 |

`load_backbone` always builds the architecture with `weights=None` and then loads the
weight file itself through `radtl.weights.load_into`, which checks the file against the
architecture and verifies that every layer with weights received the file's values.

Layer names are canonical: Keras numbers automatically named layers (`conv2d_57`) with a
process-wide counter, so InceptionV3 / InceptionResNetV2 built twice in one process get
different names. `load_backbone` renames such layers to the names a fresh process gives
(`conv2d`, `conv2d_1`, ... in topological order), so block-group patterns and saved
models are reproducible.

Example:

```python
from radtl import backbones

backbone = backbones.load_backbone("resnet50", weights=None, input_shape=(64, 64, 3))
backbone.name                      # "resnet50"; output shape (batch, 2048)
[name for name, _ in backbones.block_groups(backbone)]
# ["stem", "conv2", "conv3", "conv4", "conv5"]
```
"""
import dataclasses
import math
import os
import re

import keras
from keras.src.utils.naming import to_snake_case

from radtl.registry import Registry

from radtl import weights as weights_lib

# Values of `weights` that name a pretraining source (anything else must be a file path).
SOURCES = ("radimagenet", "imagenet")
POOLINGS = ("avg", "max", None)
NATIVE_PREPROCESSING = ("caffe", "torch", "tf", "none")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone (pure data).

    Attributes:
        name: str. Registry name; also the Keras `.name` of the built model.
        constructor: str. Attribute of `keras.applications` that builds it.
        preprocess_module: str. `keras.applications` submodule whose `preprocess_input`
            is the native preprocessing (e.g. "resnet50").
        preprocessing: str. Native preprocessing mode of the ImageNet weights: "caffe",
            "torch", "tf", or "none" (the model normalises its [0, 255] input itself).
        min_input_size: int. Smallest accepted height/width in pixels.
        block_groups: tuple of (group_name, layer_name_regex), ordered input -> output.
            Every layer with weights matches exactly one pattern (`re.fullmatch`).
        imagenet_file: str. Keras' no-top ImageNet file name (`radtl/weights_manifest.json`).
        radimagenet_file: str or None. Official RadImageNet file name, if one exists.
        imagenet_extra_scale: None, or (layer_name, per-channel factors): Keras inserts
            `Rescaling(factors)` after that layer only when it builds the model with
            `weights="imagenet"` (EfficientNet; tensorflow/tensorflow#49930). radtl builds
            with `weights=None` and inserts the same layer for ImageNet weights.
        description: str. One line for listings.
        stage_layers: tuple of str, one per block group, in the same order: the
            canonical name (`canonical_layer_names`) of the layer whose 4-D output is
            that group's output, the tensor the next group consumes (for the last
            group, the feature map before global pooling), except that a stem is read
            before its trailing max pool, as Juodelyte et al. (2023) read ResNet50 at
            `conv1_relu`. A residual sum that is an operation, not a layer
            (ConvNeXt's `inputs + x`), is named as canonical names name operations
            (`add_2`: the third `Add`). Read by `radtl.activations.stage_layers`.
    """

    name: str
    constructor: str
    preprocess_module: str
    preprocessing: str
    min_input_size: int
    block_groups: tuple
    imagenet_file: str
    radimagenet_file: str = None
    imagenet_extra_scale: tuple = None
    description: str = ""
    stage_layers: tuple = ()

    @property
    def sources(self):
        """Pretraining sources with a weight file for this backbone."""
        files = {"imagenet": self.imagenet_file, "radimagenet": self.radimagenet_file}
        return tuple(source for source in SOURCES if files[source])

    def weight_file(self, source):
        """Registered file name for `source` ("radimagenet" or "imagenet")."""
        check_source(self, source)
        return self.radimagenet_file if source == "radimagenet" else self.imagenet_file


def _numbered(first, last, prefixes=("conv2d", "batch_normalization")):
    """Regex for canonical auto-named layers `<prefix>`, `<prefix>_<i>`, i in [first, last].

    Index 0 is the unsuffixed name, as Keras names the first such layer of a process.
    """
    suffixes = "|".join(("" if i == 0 else f"_{i}") for i in range(first, last + 1))
    return f"(?:{'|'.join(prefixes)})(?:{suffixes})"


def _either(*patterns):
    return "|".join(f"(?:{p})" for p in patterns)


# Auto-named conv/BN index ranges were read off the canonical Keras 3.15 graphs; the
# test suite checks that groups cover every weighted layer once, in topological order.
_INCEPTION_V3_GROUPS = (
    ("stem", _numbered(0, 4)),           # 3 convs at 1/2, 2 at 1/4, 1/8 resolution
    ("inception_a", _numbered(5, 25)),   # mixed0-mixed2 (35 x 35 at 299 px)
    ("reduction_a", _numbered(26, 29)),  # mixed3
    ("inception_b", _numbered(30, 69)),  # mixed4-mixed7 (17 x 17)
    ("reduction_b", _numbered(70, 75)),  # mixed8
    ("inception_c", _numbered(76, 93)),  # mixed9-mixed10 (8 x 8)
)
_INCEPTION_RESNET_V2_GROUPS = (
    ("stem", _numbered(0, 11)),  # stem convs and mixed_5b
    ("block35", _either(_numbered(12, 71), r"block35_\d+_conv")),
    ("reduction_a", _numbered(72, 75)),  # mixed_6a
    ("block17", _either(_numbered(76, 155), r"block17_\d+_conv")),
    ("reduction_b", _numbered(156, 162)),  # mixed_7a
    ("block8", _either(_numbered(163, 202), r"block8_\d+_conv", r"conv_7b(?:_bn)?")),
)


def _vgg_groups(num_blocks=5):
    return tuple((f"block{i}", rf"block{i}_.*") for i in range(1, num_blocks + 1))


def _convnext_groups(name):
    stages = [("stem", rf"{name}_stem")]
    for i in range(4):
        parts = [rf"{name}_stage_{i}_.*"]
        if i:
            parts.append(rf"{name}_downsampling_block_{i - 1}")
        if i == 3:
            parts.append(r"layer_normalization")  # the norm after global pooling
        stages.append((f"stage_{i}", _either(*parts)))
    return tuple(stages)


# 1 / sqrt(ImageNet RGB std), as in keras/src/applications/efficientnet.py.
_EFFICIENTNET_IMAGENET_SCALE = (
    "normalization", tuple(1.0 / math.sqrt(s) for s in (0.229, 0.224, 0.225))
)

REGISTRY = Registry("backbone")
for _spec in (
        BackboneSpec(
            name="resnet50",
            constructor="ResNet50",
            preprocess_module="resnet50",
            preprocessing="caffe",
            min_input_size=32,
            block_groups=(
                ("stem", r"(?:conv1|pool1)_.*"),
                ("conv2", r"conv2_.*"),
                ("conv3", r"conv3_.*"),
                ("conv4", r"conv4_.*"),
                ("conv5", r"conv5_.*"),
            ),
            imagenet_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            radimagenet_file="RadImageNet-ResNet50_notop.h5",
            description="ResNet50 v1 (He et al. 2016), 2048 features",
            stage_layers=("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                          "conv5_block3_out"),
        ),
        BackboneSpec(
            name="densenet121",
            constructor="DenseNet121",
            preprocess_module="densenet",
            preprocessing="torch",
            min_input_size=32,
            block_groups=(
                ("stem", r"conv1_.*"),
                ("conv2", r"(?:conv2|pool2)_.*"),  # dense block 1 + transition 1
                ("conv3", r"(?:conv3|pool3)_.*"),
                ("conv4", r"(?:conv4|pool4)_.*"),
                ("conv5", r"conv5_.*|bn"),        # dense block 4 + final BN
            ),
            imagenet_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            radimagenet_file="RadImageNet-DenseNet121_notop.h5",
            description="DenseNet121 (Huang et al. 2017), 1024 features",
            stage_layers=("conv1_relu", "pool2_pool", "pool3_pool", "pool4_pool", "relu"),
        ),
        BackboneSpec(
            name="inception_v3",
            constructor="InceptionV3",
            preprocess_module="inception_v3",
            preprocessing="tf",
            min_input_size=75,
            block_groups=_INCEPTION_V3_GROUPS,
            imagenet_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            radimagenet_file="RadImageNet-InceptionV3_notop.h5",
            description="InceptionV3 (Szegedy et al. 2016), 2048 features",
            stage_layers=("activation_4", "mixed2", "mixed3", "mixed7", "mixed8", "mixed10"),
        ),
        BackboneSpec(
            name="inception_resnet_v2",
            constructor="InceptionResNetV2",
            preprocess_module="inception_resnet_v2",
            preprocessing="tf",
            min_input_size=75,
            block_groups=_INCEPTION_RESNET_V2_GROUPS,
            imagenet_file=(
                "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
            radimagenet_file="RadImageNet-IRV2_notop.h5",
            description="InceptionResNetV2 (Szegedy et al. 2017), 1536 features",
            stage_layers=("mixed_5b", "block35_10_ac", "mixed_6a", "block17_20_ac", "mixed_7a",
                          "conv_7b_ac"),
        ),
        BackboneSpec(
            name="vgg16",
            constructor="VGG16",
            preprocess_module="vgg16",
            preprocessing="caffe",
            min_input_size=32,
            block_groups=_vgg_groups(),
            imagenet_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            description="VGG16 (Simonyan & Zisserman 2015), 512 features",
            stage_layers=tuple(f"block{i}_pool" for i in range(1, 6)),
        ),
        BackboneSpec(
            name="vgg19",
            constructor="VGG19",
            preprocess_module="vgg19",
            preprocessing="caffe",
            min_input_size=32,
            block_groups=_vgg_groups(),
            imagenet_file="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            description="VGG19 (Simonyan & Zisserman 2015), 512 features",
            stage_layers=tuple(f"block{i}_pool" for i in range(1, 6)),
        ),
        BackboneSpec(
            name="mobilenet_v2",
            constructor="MobileNetV2",
            preprocess_module="mobilenet_v2",
            preprocessing="tf",
            min_input_size=32,
            block_groups=(
                ("stem", r"Conv1|bn_Conv1|expanded_conv_.*"),  # 1/2 resolution
                ("stage2", r"block_[12]_.*"),                  # 1/4
                ("stage3", r"block_[3-5]_.*"),                 # 1/8
                ("stage4", r"block_(?:[6-9]|1[0-2])_.*"),      # 1/16
                ("stage5", r"block_1[3-6]_.*|Conv_1(?:_bn)?"),  # 1/32 + last 1x1 conv
            ),
            # The 224-px file; radtl uses it for every input size.
            imagenet_file=(
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
            ),
            description="MobileNetV2 alpha=1.0 (Sandler et al. 2018), 1280 features",
            stage_layers=("expanded_conv_project_BN", "block_2_add", "block_5_add", "block_12_add",
                          "out_relu"),
        ),
        BackboneSpec(
            name="efficientnet_b0",
            constructor="EfficientNetB0",
            preprocess_module="efficientnet",
            preprocessing="none",
            min_input_size=32,
            block_groups=(
                ("stem", r"normalization|rescaling(?:_\d+)?|stem_.*"),
                *((f"block{i}", rf"block{i}[a-z]_.*") for i in range(1, 8)),
                ("top", r"top_.*"),
            ),
            imagenet_file="efficientnetb0_notop.h5",
            imagenet_extra_scale=_EFFICIENTNET_IMAGENET_SCALE,
            description="EfficientNetB0 (Tan & Le 2019), 1280 features",
            stage_layers=("stem_activation", "block1a_project_bn", "block2b_add", "block3b_add",
                          "block4c_add", "block5c_add", "block6d_add", "block7a_project_bn",
                          "top_activation"),
        ),
        BackboneSpec(
            name="convnext_tiny",
            constructor="ConvNeXtTiny",
            preprocess_module="convnext",
            preprocessing="none",
            min_input_size=32,
            block_groups=_convnext_groups("convnext_tiny"),
            imagenet_file="convnext_tiny_notop.h5",
            description="ConvNeXt-Tiny (Liu et al. 2022), 768 features",
            stage_layers=("convnext_tiny_stem", "add_2", "add_5", "add_14", "add_17"),
        ),
):
    REGISTRY.register(_spec.name, _spec)
del _spec


def names():
    """Registered backbone names, in registry order."""
    return REGISTRY.names()


def radimagenet_names():
    """Backbones with an official RadImageNet weight file."""
    return [name for name in REGISTRY.names() if REGISTRY.get(name).radimagenet_file]


def get(name):
    """Return the `BackboneSpec` registered as `name`.

    Raises:
        ValueError: `name` is not registered; the message lists the valid names.
    """
    return REGISTRY.get(name)


def check_source(spec, weights):
    """Validate `weights` for `spec` and return its kind.

    Args:
        spec: BackboneSpec.
        weights: "radimagenet", "imagenet", None, or a path (str / os.PathLike) to a
            legacy Keras HDF5 file.

    Returns:
        "radimagenet", "imagenet", None, or "file".

    Raises:
        ValueError: an unknown source string, or a source without a file for `spec`.
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike):
        return "file"
    if not isinstance(weights, str):
        raise ValueError(
            f"`weights` must be one of {list(SOURCES)}, None, or the path to a .h5 file. "
            f"Received: weights={weights!r} (of type {type(weights).__name__})"
        )
    if weights in SOURCES:
        if weights not in spec.sources:
            raise ValueError(
                f"`weights={weights!r}` is not available for `{spec.name}`: it has "
                f"{list(spec.sources)}. Backbones with RadImageNet weights: "
                f"{radimagenet_names()}. "
                f"Received: name={spec.name!r}, weights={weights!r}"
            )
        return weights
    if weights.lower().endswith((".h5", ".hdf5")) or os.sep in weights:
        return "file"
    raise ValueError(
        f"`weights` must be one of {list(SOURCES)}, None, or the path to a .h5 file. "
        f"Received: weights={weights!r}"
    )


def check_input_shape(spec, input_shape, pretrained):
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) for d in shape):
        raise ValueError(
            "`input_shape` must be (height, width, channels) integers. "
            f"Received: input_shape={input_shape!r}"
        )
    if min(shape[:2]) < spec.min_input_size:
        raise ValueError(
            f"`{spec.name}` needs height and width >= {spec.min_input_size} px. "
            f"Received: input_shape={input_shape!r}"
        )
    if pretrained and shape[2] != 3:
        raise ValueError(
            f"Pretrained `{spec.name}` weights expect 3 input channels; repeat greyscale "
            f"images to RGB. Received: input_shape={input_shape!r}"
        )
    return shape


def canonicalize_layer_names(model):
    """Rename automatically named layers to the names a fresh Keras process gives.

    A layer counts as automatically named when its name is the snake-case class name,
    optionally with `_<n>` (`conv2d_57`). Such layers are renamed `<prefix>`,
    `<prefix>_1`, ... in the order of `model.layers`. Explicitly named layers are kept.

    Args:
        model: keras.Model, modified in place.

    Returns:
        The same model.
    """
    for layer, name in zip(model.layers, canonical_layer_names(model.layers)):
        layer.name = name
    return model


def _insert_scale(model, layer_name, factors):
    """Clone `model` (sharing its layers) with `Rescaling(factors)` after `layer_name`."""
    scale = keras.layers.Rescaling(list(factors), name=f"{layer_name}_imagenet_scale")

    def call(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        return scale(outputs) if layer.name == layer_name else outputs

    inputs = keras.Input(batch_shape=model.input_shape, name=model.layers[0].name)
    clone = keras.models.clone_model(
        model, input_tensors=inputs, clone_function=lambda layer: layer,
        call_function=call,
    )
    clone.name = model.name
    return clone


def build(spec, input_shape=(224, 224, 3), pooling="avg", source=None):
    """Build `spec`'s architecture without top, randomly initialised, canonically named.

    Args:
        spec: BackboneSpec.
        input_shape: (H, W, C) ints. Defaults to (224, 224, 3).
        pooling: "avg", "max" or None (4-D feature map output). Defaults to "avg".
        source: the weights that will be loaded ("imagenet" adds the layers Keras adds
            for ImageNet weights, see `BackboneSpec.imagenet_extra_scale`).

    Returns:
        keras.Model named `spec.name`; output (batch, F) when pooled.
    """
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` must be one of {list(POOLINGS)}. Received: pooling={pooling!r}"
        )
    constructor = getattr(keras.applications, spec.constructor)
    model = constructor(
        include_top=False,
        weights=None,
        input_shape=tuple(input_shape),
        pooling=pooling,
        name=spec.name,
    )
    canonicalize_layer_names(model)
    if source == "imagenet" and spec.imagenet_extra_scale:
        model = _insert_scale(model, *spec.imagenet_extra_scale)
    return model


def load_backbone(
    name,
    weights="radimagenet",
    *,
    input_shape=(224, 224, 3),
    pooling="avg",
    weights_dir=None,
    sha256=None,
):
    """Build a registered backbone without top and load verified weights into it.

    RadImageNet and ImageNet files are looked up (in order) in `weights_dir`,
    `$RADTL_WEIGHTS_DIR`, the checkout's `weights/` folder (when radtl runs from one) and `~/.keras/models`
    (`$KERAS_HOME/models`). ImageNet files missing everywhere are downloaded through
    `keras.utils.get_file` into the Keras cache, as `keras.applications` does.
    After loading, every layer with weights is compared with the file's arrays.

    Args:
        name: str. Registry name, one of `names()`.
        weights: "radimagenet" (the official RadImageNet file), "imagenet",
            None (random initialisation) or a path to a legacy Keras HDF5 file (loaded
            into the plain graph: pass "imagenet" for Keras' EfficientNet ImageNet
            file, whose graph differs). Defaults to "radimagenet".
        input_shape: (H, W, C) ints, H and W >= the spec's `min_input_size`.
            Defaults to (224, 224, 3).
        pooling: "avg", "max" or None. Defaults to "avg".
        weights_dir: str or Path, searched first for weight files. Defaults to None.
        sha256: str. Pin the file's SHA-256: a mismatch is an error. Defaults to None
            (the manifest's hash, if any, is checked; third-party hashes only warn).

    Returns:
        keras.Model named `name`, input (batch, H, W, C) float, output (batch, F)
        when pooled.

    Raises:
        ValueError: unknown `name`, bad `weights` value or input shape.
        radtl.weights.WeightsNotFoundError: the weight file is missing.
        radtl.weights.WeightsError: the file is unreadable, of another architecture,
            or does not match a pinned checksum.
        radtl.weights.WeightsDownloadError: an ImageNet download failed.

    Example:

    ```python
    backbone = load_backbone("densenet121", weights=None, input_shape=(32, 32, 3))
    ```
    """
    spec = get(name)
    source = check_source(spec, weights_lib.normalize_weights(weights))
    shape = check_input_shape(spec, input_shape, pretrained=source is not None)
    path, size = None, None
    if source in SOURCES:
        filename = spec.weight_file(source)
        path = weights_lib.resolve(filename, weights_dir=weights_dir, sha256=sha256,
                                   arch=name)
        size = weights_lib.manifest(weights_dir).entry(filename).size
    elif source == "file":
        path = weights_lib.check_file(weights, sha256=sha256, arch=name)
    model = build(spec, shape, pooling, source)
    if path is not None:
        weights_lib.load_into(model, path, expected_size=size)
    return model


def canonical_layer_names(layers):
    """The names `canonicalize_layer_names` gives `layers`, without renaming them.

    Args:
        layers: list of Keras layers, ordered as in `model.layers`.

    Returns:
        list of str, one per layer: `<prefix>`, `<prefix>_1`, ... for automatically
        named layers (`conv2d_57` -> `conv2d` for the first Conv2D), the layer's own
        name otherwise.
    """
    counts, names = {}, []
    for layer in layers:
        prefix = to_snake_case(type(layer).__name__)
        if re.fullmatch(rf"{re.escape(prefix)}(?:_\d+)?", layer.name):
            index = counts.get(prefix, 0)
            counts[prefix] = index + 1
            names.append(prefix if index == 0 else f"{prefix}_{index}")
        else:
            names.append(layer.name)
    return names


def _first(items, count=5):
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "") or "none"


def _assign(layers, groups, canonical, outer):
    """Returns `(resolved, unmatched, ambiguous, empty)` for `match_block_groups`."""
    names = canonical_layer_names(layers) if canonical else [l.name for l in layers]
    compiled = [(str(group), re.compile(members) if isinstance(members, str) else
                 {id(layer) for layer in members}) for group, members in groups]
    resolved = {group: [] for group, _ in compiled}
    unmatched, ambiguous, grouped_at, hit = [], [], [], set()
    for index, (layer, name) in enumerate(zip(layers, names)):
        if not layer.weights:
            continue
        hits = [group for group, members in compiled
                if (id(layer) in members if isinstance(members, set)
                    else members.fullmatch(name))]
        hit.update(hits)
        if len(hits) == 1:
            resolved[hits[0]].append(layer)
            grouped_at.append(index)
        elif hits:
            ambiguous.append(f"{layer.name} ({', '.join(hits)})")
            grouped_at.append(index)
        else:
            unmatched.append((index, layer.name))
    if outer:  # weighted layers before the first or after the last grouped one: head
        span = range(min(grouped_at), max(grouped_at) + 1) if grouped_at else range(0)
        unmatched = [(i, name) for i, name in unmatched if i in span]
    empty = [group for group in resolved if group not in hit]
    return list(resolved.items()), [name for _, name in unmatched], ambiguous, empty


def match_block_groups(layers, groups, *, canonical=False, outer=False, fix=""):
    """Assigns the weighted layers among `layers` to block groups.

    Args:
        layers: list of Keras layers ordered input -> output (`model.layers`).
        groups: sequence of `(group_name, members)` ordered input -> output, where
            `members` is a regex matched with `re.fullmatch` against layer names
            (`"conv2_.*"`) or a list of layers.
        canonical: bool. Match regexes against the names `canonical_layer_names`
            gives (registered patterns are written for them), not the layers' own.
            Defaults to False.
        outer: bool. False: `layers` are a backbone's, and every layer with weights
            must be in exactly one group. True: `layers` are a whole model's, the
            backbone's layers in it directly (`keras.Model(base.input,
            head(base.output))`); weighted layers before the first or after the last
            grouped layer are the head and left out. Defaults to False.
        fix: str. The remedy appended to the error message.

    Returns:
        list of `(group_name, [layers with weights])`, in the order of `groups`.

    Raises:
        ValueError: a weighted (backbone) layer in no group or in several, or a
            group matching no layer.
    """
    resolved, unmatched, ambiguous, empty = _assign(layers, groups, canonical, outer)
    if unmatched or ambiguous or empty:
        no_layer = f"; groups matching no layer: {empty}" if empty else ""
        raise ValueError(
            "Block groups must hold every layer with weights exactly once. In no "
            f"group ({len(unmatched)}): {_first(unmatched)}; in several groups "
            f"({len(ambiguous)}): {_first(ambiguous)}{no_layer}. {fix}".rstrip()
        )
    return resolved


def identify(model, *, outer=False):
    """The registered backbone `model` is (or, with `outer=True`, holds flattened).

    A model named after a registered backbone (as `load_backbone` names it) is that
    backbone. Otherwise the first registered backbone, in registry order, whose
    block groups hold the model's weighted layers (canonical names, every group
    non-empty) is returned: this recognises `keras.applications` models under their
    own names (`mobilenetv2_0.35_32`, `efficientnetb0`, ...) and their family
    (ResNet101 follows the `resnet50` groups).

    Args:
        model: keras.Model.
        outer: bool. Look for a backbone flattened into `model` (its layers among
            `model.layers`, the head after them); see `match_block_groups`.
            Defaults to False.

    Returns:
        BackboneSpec, or None when no registered backbone fits.
    """
    if not outer and model.name in names():
        return get(model.name)
    for name in names():
        spec = get(name)
        _, unmatched, ambiguous, empty = _assign(
            model.layers, spec.block_groups, canonical=True, outer=outer)
        if not (unmatched or ambiguous or empty):
            return spec
    return None


def block_groups(backbone, spec=None, *, outer=False):
    """Resolve `spec.block_groups` on a built backbone.

    Patterns are matched against canonical layer names (`canonical_layer_names`),
    so a `keras.applications` model built anywhere in a process groups as one built
    by `load_backbone` does.

    Args:
        backbone: keras.Model, a registered backbone (`load_backbone`, or the
            `keras.applications` model under any name), or with `outer=True` a model
            holding one flattened (`keras.Model(base.input, head(base.output))`).
        spec: BackboneSpec. Defaults to the one `identify(backbone, outer=outer)`
            finds.
        outer: bool. See `match_block_groups`: layers outside the backbone's span
            (the head) are left out. Defaults to False.

    Returns:
        list of (group_name, [layers with weights]) ordered input -> output; every
        (backbone) layer with weights appears in exactly one group.

    Raises:
        ValueError: no registered backbone fits (listing the names), or a layer with
            weights matches no group or several groups.

    Example:

    ```python
    base = keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3),
                                          include_top=False, weights=None)
    [name for name, _ in block_groups(base)]  # ["stem", "stage2", ..., "stage5"]
    ```
    """
    spec = spec or identify(backbone, outer=outer)
    if spec is None:
        weighted = [layer.name for layer in backbone.layers if layer.weights]
        raise ValueError(
            f"`backbone` must be a registered backbone ({names()}) or follow the layer "
            f"names of one; layers with weights found: {_first(weighted)}. Pass `spec=` "
            f"(`radtl.backbones.get(name)`) or build it with "
            f"`radtl.backbones.load_backbone`. Received: backbone.name={backbone.name!r}"
        )
    try:
        return match_block_groups(backbone.layers, spec.block_groups, canonical=True,
                                  outer=outer)
    except ValueError as error:
        raise ValueError(
            f"Block groups of `{spec.name}` do not fit: {error} Build the backbone with "
            "`radtl.backbones.load_backbone`, or fix the patterns of "
            f"`{spec.name}`. Received: backbone.name={backbone.name!r}"
        ) from None
