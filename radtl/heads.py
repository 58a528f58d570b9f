"""Classification heads: pooled backbone features (batch, F) -> class probabilities.

Every head is a registered, serializable `keras.layers.Layer` that maps a float feature
vector of shape `(batch, F)` (global-average-pooled backbone output) to softmax
probabilities of shape `(batch, num_classes)`. The output `Dense` layer always runs in
float32 (`dtype="float32"`), so the probabilities stay float32 under the
`mixed_float16` / `mixed_bfloat16` dtype policies.

| name | structure | source |
|---|---|---|
| `linear` | Dropout -> Dense | official RadImageNet Keras scripts (Dropout 0.5) |
| `mlp` | Dense -> BN -> LeakyReLU -> Dropout -> Dense | Frees et al. "NonLinear" |
| `conv1d` | Conv1D -> BN -> LeakyReLU -> Dropout -> flatten -> MLP | Frees et al. "Conv" |
| `conv1d_skip` | as `conv1d` plus a Dense -> BN -> ReLU skip branch | Frees et al. "ConvSkip" |

Heads build lazily: their size depends on F, known when the layer first sees its
input. `head_param_count(name, F, ...)` gives the parameter count without building, and
building a head over `LARGE_HEAD_PARAMS` parameters logs a warning with its count and
float32 memory.

Heads are built by name through `REGISTRY` (a `radtl.registry.Registry` of kind
"head", registered with the run context `num_classes`, so `num_classes` is not a
`head_options` key); `build_head(name, num_classes=K, **options)` is the shortcut.
Each head's options are its explicit constructor arguments, plus the layer's own
`name`, `dtype` and `trainable`. Every class is registered with
`keras.saving.register_keras_serializable(package="radtl")`, so importing this module
(which `import radtl` does) lets `keras.models.load_model` rebuild a saved model's head.

Example:

```python
import keras
from radtl import heads

head = heads.build_head("conv1d_skip", num_classes=2)
inputs = keras.Input((64,))
model = keras.Model(inputs, head(inputs))
probs = model.predict(keras.random.normal((4, 64)), verbose=0)  # (4, 2), rows sum to 1
```
"""
import logging

import keras
from keras import ops

from radtl._checks import check_int
from radtl._checks import check_number
from radtl.registry import Registry
from radtl.registry import RunContext

__all__ = [
    "REGISTRY",
    "names",
    "build_head",
    "head_param_count",
    "hidden_size",
    "LinearHead",
    "MLPHead",
    "Conv1DHead",
    "Conv1DSkipHead",
    "FREES_CONV_OPTIONS",
    "LARGE_HEAD_PARAMS",
]

logger = logging.getLogger(__name__)

#: The head registry: name -> layer class (kind "head", config keys `head`/`head_options`).
REGISTRY = Registry("head")

# Building a head with more parameters than this logs a warning (count and memory).
LARGE_HEAD_PARAMS = 50_000_000

# The configuration Frees et al. actually trained (`ConvClassifierWithSkip` at commit
# 5139a8d: `load_model` passed only `num_filters`, so kernel 2, dropout 0.5 and hidden
# ratio 0.5 applied whatever the command line said). With ResNet50 features (F = 2048)
# `build_head("conv1d_skip", **FREES_CONV_OPTIONS)` has about 603.7 M parameters.
FREES_CONV_OPTIONS = {
    "num_filters": 16,
    "kernel_size": 2,
    "strides": 1,
    "hidden_ratio": 0.5,
    "max_hidden_units": None,
    "dropout": 0.5,
}

# BatchNormalization holds 4 weights per channel: gamma, beta (trainable) and the
# moving mean and variance (non-trainable); `count_params()` counts all four.
_BN_WEIGHTS_PER_CHANNEL = 4
_BYTES_PER_FLOAT32 = 4


def _kaiming_normal():
    """He/Kaiming normal init as PyTorch's `kaiming_normal_` (fan_in, gain sqrt(2))."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal"
    )


def hidden_size(in_size, hidden_units=None, hidden_ratio=0.5, max_hidden_units=None):
    """Width of a hidden layer: explicit, or a ratio of its input, optionally capped.

    Args:
        in_size: int. Width of the layer's input.
        hidden_units: int or None. Explicit width; overrides `hidden_ratio` and the cap.
        hidden_ratio: float. Width as a fraction of `in_size`, rounded to the nearest
            integer (at least 1). Frees et al. truncate with `int()`; the two agree for
            their configurations.
        max_hidden_units: int or None. Upper bound on the ratio-derived width.

    Returns:
        int, the hidden width.
    """
    if hidden_units is not None:
        return hidden_units
    units = max(1, round(hidden_ratio * in_size))
    if max_hidden_units is not None:
        units = min(units, max_hidden_units)
    return units


class _Head(keras.layers.Layer):
    """Shared plumbing: float32 softmax output, size warning, config of shared args."""

    def __init__(self, num_classes=2, dropout=0.5, *, name=None, dtype=None, trainable=True):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        check_int("num_classes", num_classes, 1)
        check_number("dropout", dropout, 0.0, 1.0, include_high=False)
        # === Config ===
        self.num_classes = num_classes
        self.dropout = dropout
        # === Layers that do not depend on F ===
        self.output_dense = keras.layers.Dense(
            num_classes,
            activation="softmax",
            kernel_initializer=self._output_initializer(),
            dtype="float32",
            name="predictions",
        )

    def _output_initializer(self):
        return _kaiming_normal()

    def _sublayer_args(self):
        return {"dtype": self.dtype_policy}

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects pooled features of shape (batch, F) "
                f"with a known F. Received: input_shape={tuple(input_shape)}. Pool the "
                "backbone output first (e.g. GlobalAveragePooling2D)."
            )
        in_features = int(input_shape[-1])
        count = self.param_count(in_features)
        if count > LARGE_HEAD_PARAMS:
            gigabytes = count * _BYTES_PER_FLOAT32 / 1e9
            logger.warning(
                "Building head %r (%s) over F=%d features: %s parameters, %.2f GB of "
                "float32 weights (Adam keeps two more copies). Reduce num_filters, "
                "raise strides, or cap the hidden layer with max_hidden_units.",
                self.name, type(self).__name__, in_features, f"{count:,}", gigabytes,
            )
        features = self._build_body(in_features)
        self.output_dense.build((None, features))

    def call(self, inputs, training=None):
        return self.output_dense(self._body(inputs, training=training))

    def param_count(self, in_features):
        """Number of weights (trainable and BN statistics) this head has over F inputs.

        Args:
            in_features: int. F, the width of the pooled backbone features.

        Returns:
            int, equal to `count_params()` of the built layer; computed without building.
        """
        features = self._body_param_count(in_features)
        width = self._body_width(in_features)
        return features + width * self.num_classes + self.num_classes

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="radtl")
class LinearHead(_Head):
    """Linear head: Dropout -> Dense(num_classes, softmax).

    The head of the official RadImageNet Keras fine-tuning scripts
    (GlobalAveragePooling2D -> Dropout(0.5) -> Dense(2, softmax)), with Keras' default
    Glorot-uniform init on the output layer as there.

    Reference:
        Mei et al., "RadImageNet: An Open Radiologic Deep Learning Research Dataset for
        Effective Transfer Learning", Radiology: Artificial Intelligence 4(5), 2022.

    Args:
        num_classes: int. Number of classes K. Defaults to 2.
        dropout: float in [0, 1). Dropout rate on the features. Defaults to 0.5.
        name: str or None. The layer's name. Defaults to None (automatic).
        dtype: str, `keras.DTypePolicy` or None. The layer's dtype policy (the output
            layer stays float32). Defaults to None (the global policy).
        trainable: bool. Defaults to True.

    Input shape: (batch, F) float. Output shape: (batch, K) float32 probabilities.
    """

    def __init__(self, num_classes=2, dropout=0.5, *, name=None, dtype=None, trainable=True):
        super().__init__(num_classes=num_classes, dropout=dropout, name=name, dtype=dtype,
                         trainable=trainable)
        self.dropout_layer = keras.layers.Dropout(dropout, **self._sublayer_args())

    def _output_initializer(self):
        return "glorot_uniform"

    def _build_body(self, in_features):
        return in_features

    def _body(self, inputs, training=None):
        return self.dropout_layer(inputs, training=training)

    def _body_width(self, in_features):
        return in_features

    def _body_param_count(self, in_features):
        return 0


class _HiddenHead(_Head):
    """Adds the hidden block Dense(no bias) -> BN -> LeakyReLU -> Dropout."""

    def __init__(
        self,
        num_classes=2,
        hidden_ratio=0.5,
        hidden_units=None,
        max_hidden_units=None,
        dropout=0.5,
        negative_slope=0.01,
        *,
        name=None,
        dtype=None,
        trainable=True,
    ):
        super().__init__(num_classes=num_classes, dropout=dropout, name=name, dtype=dtype,
                         trainable=trainable)
        check_number("hidden_ratio", hidden_ratio, 0.0, include_low=False)
        check_int("hidden_units", hidden_units, 1, allow_none=True)
        check_int("max_hidden_units", max_hidden_units, 1, allow_none=True)
        check_number("negative_slope", negative_slope, 0.0, 1.0, include_high=True)
        # === Config ===
        self.hidden_ratio = hidden_ratio
        self.hidden_units = hidden_units
        self.max_hidden_units = max_hidden_units
        self.negative_slope = negative_slope
        # === Layers that do not depend on F ===
        args = self._sublayer_args()
        self.hidden_bn = keras.layers.BatchNormalization(name="hidden_bn", **args)
        self.hidden_act = keras.layers.LeakyReLU(negative_slope, **args)
        self.hidden_dropout = keras.layers.Dropout(dropout, **args)
        self.hidden_dense = None  # width depends on F: created in build()

    def _hidden_width(self, in_size):
        return hidden_size(
            in_size, self.hidden_units, self.hidden_ratio, self.max_hidden_units
        )

    def _build_hidden(self, in_size):
        width = self._hidden_width(in_size)
        self.hidden_dense = keras.layers.Dense(
            width,
            use_bias=False,
            kernel_initializer=_kaiming_normal(),
            name="hidden",
            **self._sublayer_args(),
        )
        self.hidden_dense.build((None, in_size))
        self.hidden_bn.build((None, width))
        return width

    def _hidden(self, x, training=None):
        x = self.hidden_act(self.hidden_bn(self.hidden_dense(x), training=training))
        return self.hidden_dropout(x, training=training)

    def _hidden_param_count(self, in_size):
        width = self._hidden_width(in_size)
        return in_size * width + _BN_WEIGHTS_PER_CHANNEL * width

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_ratio": self.hidden_ratio,
                "hidden_units": self.hidden_units,
                "max_hidden_units": self.max_hidden_units,
                "negative_slope": self.negative_slope,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="radtl")
class MLPHead(_HiddenHead):
    """Non-linear head: Dense(F -> H, no bias) -> BN -> LeakyReLU -> Dropout -> Dense(K).

    Frees et al.'s `NonLinearClassifier`, Kaiming-normal init on both dense layers.
    H = `hidden_units`, or round(`hidden_ratio` * F) capped at `max_hidden_units`.

    Reference:
        Frees, Bolling, Bhagirath, "Towards Optimal Convolutional Transfer Learning
        Architectures for Breast Lesion Classification and ACL Tear Detection",
        arXiv 2508.17567 (2025); code github.com/danielfrees/RadImageNet `src/model.py`.

    Args:
        num_classes: int. Number of classes K. Defaults to 2.
        hidden_ratio: float > 0. H as a fraction of F. Defaults to 0.5 (Frees' default).
        hidden_units: int or None. Explicit H, overriding the ratio. Defaults to None.
        max_hidden_units: int or None. Cap on the ratio-derived H. Defaults to None.
        dropout: float in [0, 1). Dropout rate after the hidden block. Defaults to 0.5.
        negative_slope: float in [0, 1]. LeakyReLU slope. Defaults to 0.01.
        name, dtype, trainable: as `LinearHead`.

    Input shape: (batch, F) float. Output shape: (batch, K) float32 probabilities.
    """

    def _build_body(self, in_features):
        return self._build_hidden(in_features)

    def _body(self, inputs, training=None):
        return self._hidden(inputs, training=training)

    def _body_width(self, in_features):
        return self._hidden_width(in_features)

    def _body_param_count(self, in_features):
        return self._hidden_param_count(in_features)


@keras.saving.register_keras_serializable(package="radtl")
class Conv1DHead(_HiddenHead):
    """1-D convolutional head over the pooled feature vector (Frees et al. "Conv").

    The F pooled features are read as a 1-channel sequence of length F:
    Conv1D(num_filters, kernel_size, strides, valid, no bias) -> BN -> LeakyReLU ->
    Dropout -> flatten to C = num_filters * L with L = (F - kernel_size) // strides + 1,
    then the hidden block Dense(C -> H, no bias) -> BN -> LeakyReLU -> Dropout and the
    float32 softmax Dense(K). Kaiming-normal init on the conv and dense kernels.

    Defaults are deliberately modest (num_filters 8, kernel 4, strides 4, H capped at
    512): about 2.1 M parameters for ResNet50 features (F = 2048). Frees et al.'s
    configuration (num_filters 16, kernel 2, strides 1, ratio 0.5, no cap; see
    `FREES_CONV_OPTIONS`) has about 536 M parameters at F = 2048 and logs a warning.
    The flatten order is position-major (Keras channels_last), a fixed permutation of
    PyTorch's channel-major order.

    Reference:
        Frees, Bolling, Bhagirath, arXiv 2508.17567 (2025), `ConvClassifier`.

    Args:
        num_classes: int. Number of classes K. Defaults to 2.
        num_filters: int. Conv1D filters. Defaults to 8.
        kernel_size: int. Conv1D kernel length, <= F. Defaults to 4.
        strides: int. Conv1D stride; 1 reproduces Frees. Defaults to 4.
        hidden_ratio: float > 0. H as a fraction of C. Defaults to 0.5.
        hidden_units: int or None. Explicit H, overriding ratio and cap. Defaults to None.
        max_hidden_units: int or None. Cap on the ratio-derived H; None for no cap.
            Defaults to 512.
        dropout: float in [0, 1). Dropout after the conv and the hidden block.
            Defaults to 0.5.
        negative_slope: float in [0, 1]. LeakyReLU slope. Defaults to 0.01.
        name, dtype, trainable: as `LinearHead`.

    Input shape: (batch, F) float. Output shape: (batch, K) float32 probabilities.
    """

    def __init__(
        self,
        num_classes=2,
        num_filters=8,
        kernel_size=4,
        strides=4,
        hidden_ratio=0.5,
        hidden_units=None,
        max_hidden_units=512,
        dropout=0.5,
        negative_slope=0.01,
        *,
        name=None,
        dtype=None,
        trainable=True,
    ):
        super().__init__(
            num_classes=num_classes,
            hidden_ratio=hidden_ratio,
            hidden_units=hidden_units,
            max_hidden_units=max_hidden_units,
            dropout=dropout,
            negative_slope=negative_slope,
            name=name,
            dtype=dtype,
            trainable=trainable,
        )
        check_int("num_filters", num_filters, 1)
        check_int("kernel_size", kernel_size, 1)
        check_int("strides", strides, 1)
        # === Config ===
        self.num_filters = num_filters
        self.kernel_size = kernel_size
        self.strides = strides
        # === Layers ===
        args = self._sublayer_args()
        self.conv = keras.layers.Conv1D(
            num_filters,
            kernel_size,
            strides=strides,
            padding="valid",
            use_bias=False,
            kernel_initializer=_kaiming_normal(),
            name="conv",
            **args,
        )
        self.conv_bn = keras.layers.BatchNormalization(name="conv_bn", **args)
        self.conv_act = keras.layers.LeakyReLU(negative_slope, **args)
        self.conv_dropout = keras.layers.Dropout(dropout, **args)
        self.flatten = keras.layers.Flatten(**args)
        self._init_branch()

    def _init_branch(self):
        """Hook for layers of extra branches that do not depend on F (none here)."""

    def conv_width(self, in_features):
        """C = num_filters * L, the flattened conv output width over F features."""
        if self.kernel_size > in_features:
            raise ValueError(
                f"`kernel_size` must be <= the number of input features F={in_features}. "
                f"Received: kernel_size={self.kernel_size}"
            )
        length = (in_features - self.kernel_size) // self.strides + 1
        return self.num_filters * length

    def _build_body(self, in_features):
        self.conv.build((None, in_features, 1))
        self.conv_bn.build((None, None, self.num_filters))
        width = self.conv_width(in_features)
        self._build_branch(in_features, width)
        return self._build_hidden(width)

    def _build_branch(self, in_features, width):
        """Hook for extra branches added to the flattened conv output (none here)."""

    def _branch(self, inputs, training=None):
        return None

    def _body(self, inputs, training=None):
        x = self.conv(ops.expand_dims(inputs, axis=-1))
        x = self.conv_act(self.conv_bn(x, training=training))
        x = self.flatten(self.conv_dropout(x, training=training))
        branch = self._branch(inputs, training=training)
        if branch is not None:
            x = x + branch
        return self._hidden(x, training=training)

    def _body_width(self, in_features):
        return self._hidden_width(self.conv_width(in_features))

    def _branch_param_count(self, in_features, width):
        return 0

    def _body_param_count(self, in_features):
        width = self.conv_width(in_features)
        conv = self.kernel_size * self.num_filters
        conv += _BN_WEIGHTS_PER_CHANNEL * self.num_filters
        branch = self._branch_param_count(in_features, width)
        return conv + branch + self._hidden_param_count(width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_filters": self.num_filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="radtl")
class Conv1DSkipHead(Conv1DHead):
    """1-D convolutional head with a dense skip branch (Frees et al. "ConvSkip").

    As `Conv1DHead`, plus a skip branch Dense(F -> C, no bias) -> BN -> ReLU whose output
    is added to the flattened conv output before the hidden block. Frees et al. report
    this head (ResNet50, partial unfreezing) as their best for ACL tear and breast
    lesion classification. Their trained configuration is `FREES_CONV_OPTIONS` (about
    603.7 M parameters at F = 2048, logged as a warning); the defaults here give about
    10.5 M at F = 2048.

    Reference:
        Frees, Bolling, Bhagirath, arXiv 2508.17567 (2025), `ConvClassifierWithSkip`.

    Args:
        Same as `Conv1DHead`.

    Input shape: (batch, F) float. Output shape: (batch, K) float32 probabilities.
    """

    def _init_branch(self):
        sub = self._sublayer_args()
        self.skip_bn = keras.layers.BatchNormalization(name="skip_bn", **sub)
        self.skip_act = keras.layers.ReLU(**sub)
        self.skip_dense = None  # width depends on F: created in build()

    def _build_branch(self, in_features, width):
        self.skip_dense = keras.layers.Dense(
            width,
            use_bias=False,
            kernel_initializer=_kaiming_normal(),
            name="skip",
            **self._sublayer_args(),
        )
        self.skip_dense.build((None, in_features))
        self.skip_bn.build((None, width))

    def _branch(self, inputs, training=None):
        return self.skip_act(self.skip_bn(self.skip_dense(inputs), training=training))

    def _branch_param_count(self, in_features, width):
        return in_features * width + _BN_WEIGHTS_PER_CHANNEL * width


REGISTRY.register("linear", LinearHead, context=("num_classes",))
REGISTRY.register("mlp", MLPHead, context=("num_classes",))
REGISTRY.register("conv1d", Conv1DHead, context=("num_classes",))
REGISTRY.register("conv1d_skip", Conv1DSkipHead, context=("num_classes",))


def names():
    """Registered head names, in registration order (`REGISTRY.names()`)."""
    return REGISTRY.names()


def build_head(name, /, *, num_classes=2, **options):
    """Build a classification head by registry name.

    Args:
        name: str. One of `names()`: "linear", "mlp", "conv1d", "conv1d_skip".
        num_classes: int. Number of classes K. Defaults to 2.
        **options: the head class's constructor arguments (`dropout`, `hidden_ratio`,
            `num_filters`, `kernel_size`, ..., and the layer's own `name`/`dtype`; `name`
            is the registry name only as the first, positional argument); an option the
            head does not take raises rather than being ignored.

    Returns:
        An unbuilt `keras.layers.Layer` mapping (batch, F) features to (batch, K)
        float32 softmax probabilities.

    Raises:
        ValueError: for an unknown `name` or option, or an invalid option value.
    """
    REGISTRY.check_options(name, options)
    return REGISTRY.build(name, options, RunContext(num_classes=num_classes))


def head_param_count(name, in_features, /, num_classes=2, **options):
    """Parameter count of a head over F features, without allocating its weights.

    Args:
        name: str. Registry name, as for `build_head`.
        in_features: int. F, the pooled feature width (2048 for ResNet50).
        num_classes: int. Number of classes K. Defaults to 2.
        **options: as for `build_head`.

    Returns:
        int, equal to `count_params()` of the built head (BN moving statistics included).
    """
    return build_head(name, num_classes=num_classes, **options).param_count(in_features)
