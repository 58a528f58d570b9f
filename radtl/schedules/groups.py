"""Finding the backbone, its block groups and the head inside a model.

Three model shapes are understood:

- nested: the backbone is one layer of the model, a sub-model (`radtl.build_model`,
  or `outputs = head(base(inputs))` with a `keras.applications` model under any
  name, found by its layers through `radtl.backbones.identify`);
- flattened: the backbone's layers are the model's own
  (`keras.Model(base.input, head(base.output))`); its block groups are matched over
  the model's layers and the weighted layers after them are the head;
- anything else, given `backbone=` (a layer or its name, or a registered backbone
  name) and, for schedules that split the backbone, `block_groups=`.
"""

import dataclasses

import keras

from radtl import backbones as backbones_lib
from radtl import models as models_lib


@dataclasses.dataclass(frozen=True)
class Split:
    """A model split into backbone block groups and head.

    Attributes:
        name: str. The backbone's name, for messages.
        layers: list of the backbone's Keras layers, input -> output (weightless
            ones included). For a flattened backbone: the model's layers from the
            first to the last one in a block group.
        groups: list of `(group_name, [layers])`, ordered input -> output.
        head: list of the model's other layers with weights.
        container: the backbone sub-model (a direct layer of the model), or None
            when the backbone is flattened into the model.
    """

    name: str
    layers: list
    groups: list
    head: list
    container: object = None


_FLATTENED = (
    "For a backbone flattened into the model (`keras.Model(base.input, "
    "head(base.output))`), pass `backbone=<registered name>` (one of {names}) whose "
    "layer names it has (e.g. backbone='mobilenet_v2' for keras.applications."
    "MobileNetV2), or `block_groups=[(name, regex), ...]` covering the backbone's "
    "layers (weighted layers after them are the head); or nest it: "
    "`outputs = head(base(inputs))`."
)


def split_model(model, backbone=None, block_groups=None, required=True):
    """Splits `model` into its backbone's block groups and its head.

    Args:
        model: the model being trained.
        backbone: `None` (found automatically: the registered backbone sub-model,
            the single sub-model, or a registered backbone flattened into the
            model), a direct layer of the model or its name, or a registered backbone
            name (`radtl.backbones.names()`) whose layers the model holds, nested
            under another name or flattened.
        block_groups: `None` (the registered groups of the backbone), or a list of
            `(name, regex)` pairs, each regex matched with `re.fullmatch` against the
            backbone's layer names, or of `(name, [layer, ...])` pairs, ordered
            input -> output. Each weighted backbone layer must be in exactly one group.
        required: if False and the backbone is an unregistered sub-model without
            `block_groups`, it is one group named `"backbone"` (enough for schedules
            that never split it).

    Returns:
        A `Split`.

    Raises:
        ValueError: the backbone or its groups cannot be found; the message says
            what was found and which argument fixes it.
    """
    if isinstance(backbone, keras.layers.Layer):
        return _nested(model, _direct_layer(model, backbone), block_groups, required)
    if isinstance(backbone, str):
        if backbone in [layer.name for layer in model.layers]:
            return _nested(model, model.get_layer(backbone), block_groups, required)
        if backbone in backbones_lib.names():
            return _by_registered_name(model, backbones_lib.get(backbone), block_groups)
        raise ValueError(
            "`backbone` must name a layer of the model "
            f"({[layer.name for layer in model.layers]}) or a registered backbone "
            f"({backbones_lib.names()}). Received: backbone={backbone!r}"
        )
    return _automatic(model, block_groups, required)


def _sub_models(model):
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _direct_layer(model, layer):
    if not any(layer is other for other in model.layers):
        raise ValueError(
            "`backbone` must be a direct layer of the model. Received: "
            f"backbone={layer.name!r}; layers: {[l.name for l in model.layers]}"
        )
    return layer


def _automatic(model, block_groups, required):
    nested = _sub_models(model)
    if not nested and block_groups is not None:
        return _flattened(model, model.name, block_groups=block_groups)
    try:
        return _nested(model, models_lib.get_backbone(model), block_groups, required)
    except ValueError:
        pass
    if len(nested) == 1:  # an unregistered backbone: groups from `block_groups`
        return _nested(model, nested[0], block_groups, required)
    spec = None if nested else backbones_lib.identify(model, outer=True)
    if spec is not None:
        return _flattened(model, spec.name, spec=spec)
    weighted = [layer.name for layer in model.layers if layer.weights]
    shown = ", ".join(weighted[:5]) + (", ..." if len(weighted) > 5 else "")
    found = (f"sub-models {[layer.name for layer in nested]}, none a registered "
             "backbone" if nested else "no sub-model, and its own layers follow no "
             "registered backbone's names")
    raise ValueError(
        f"Cannot find the backbone of model {model.name!r}: it has {found} (layers "
        f"with weights: {shown}). "
        + ("Pass `backbone=<layer name>` for the sub-model that is the backbone. "
           if nested else "") + _FLATTENED.format(names=backbones_lib.names())
    )


def _by_registered_name(model, spec, block_groups):
    """The backbone that `backbone=<registered name>` names: nested or flattened."""
    nested = [layer for layer in _sub_models(model)
              if backbones_lib.identify(layer) == spec]
    if len(nested) == 1:
        return _nested(model, nested[0], block_groups, True, spec)
    try:
        return _flattened(model, spec.name, spec=None if block_groups else spec,
                          block_groups=block_groups)
    except ValueError as error:
        raise ValueError(
            f"`backbone={spec.name!r}` names a registered backbone, but neither a "
            "sub-model nor the model's own layers follow its layer names "
            f"({error}) Pass `backbone=<layer name>` for a sub-model, or "
            f"`block_groups=[(name, regex), ...]`. Received: backbone={spec.name!r}"
        ) from None


def _nested(model, container, block_groups, required, spec=None):
    layers = getattr(container, "layers", [container])
    if block_groups is not None:
        groups = backbones_lib.match_block_groups(
            layers, block_groups,
            fix=f"Add a group (or widen a pattern) so that every weighted layer of "
                f"backbone {container.name!r} is in exactly one. "
                f"Received: block_groups={block_groups!r}")
    else:
        spec = spec or (backbones_lib.identify(container)
                        if isinstance(container, keras.Model) else None)
        groups = None
        if spec is not None:
            try:
                groups = backbones_lib.block_groups(container, spec)
            except ValueError:
                if required:
                    raise
        if groups is None and not required:
            groups = [("backbone", [container])]
        elif groups is None:
            raise ValueError(
                f"No block groups are registered for backbone {container.name!r}: its "
                f"layers follow none of {backbones_lib.names()}. Pass "
                "`block_groups=[(name, regex), ...]` (ordered input -> output), e.g. "
                "[('stem', 'conv1_.*'), ('conv2', 'conv2_.*'), ...]."
            )
    head = [layer for layer in model.layers if layer is not container and layer.weights]
    return Split(container.name, list(layers), groups, head, container)


def _flattened(model, name, *, spec=None, block_groups=None):
    """The split of a model whose own layers are the backbone's, then the head's.

    The backbone's layers are found by `spec`'s registered block groups (matched on
    canonical layer names) or by `block_groups` (matched on the layers' names).
    """
    layers = model.layers
    if spec is not None:  # registered patterns: canonical layer names
        groups = backbones_lib.match_block_groups(layers, spec.block_groups,
                                                  canonical=True, outer=True)
    else:
        groups = backbones_lib.match_block_groups(
            layers, block_groups, outer=True,
            fix=f"{_FLATTENED.format(names=backbones_lib.names())} "
                f"Received: block_groups={block_groups!r}")
    grouped = {id(layer) for _, members in groups for layer in members}
    at = [i for i, layer in enumerate(layers) if id(layer) in grouped]
    span = layers[at[0]:at[-1] + 1]
    inside = {id(layer) for layer in span}
    head = [layer for layer in layers if layer.weights and id(layer) not in inside]
    return Split(name, list(span), groups, head, None)
