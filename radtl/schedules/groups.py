"""Finding the backbone, its block groups and the head inside a model."""

import re

import keras


def resolve_backbone(model, backbone=None):
    """Returns the backbone layer of `model`.

    Args:
        model: the model being trained.
        backbone: `None` (the single nested `keras.Model` among `model.layers`, or
            if there are several, e.g. a sub-model head, the single one named after
            a `radtl.backbones` entry, as in models from `radtl.build_model`), a
            layer name, or the layer itself.

    Raises:
        ValueError: if the backbone cannot be found, with the names to choose from.
    """
    if isinstance(backbone, keras.layers.Layer):
        if backbone not in model.layers:
            raise ValueError(
                "`backbone` must be a direct layer of the model. Received: "
                f"backbone={backbone.name!r}; layers: {[l.name for l in model.layers]}"
            )
        return backbone
    if isinstance(backbone, str):
        names = [layer.name for layer in model.layers]
        if backbone not in names:
            raise ValueError(
                f"`backbone` must name a layer of the model, one of {names}. "
                f"Received: backbone={backbone!r}"
            )
        return model.get_layer(backbone)
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) > 1:
        registered = _registered_names()
        nested = [layer for layer in nested if layer.name in registered] or nested
    if len(nested) != 1:
        raise ValueError(
            "Cannot find the backbone automatically: the model must contain exactly "
            "one nested keras.Model (or one named after a registered backbone). Found: "
            f"{[layer.name for layer in nested]}. Pass `backbone=<layer name>`."
        )
    return nested[0]


def head_layers(model, backbone):
    """Every direct layer of `model` that has weights and is not the backbone."""
    return [
        layer for layer in model.layers if layer is not backbone and layer.weights
    ]


def _check_partition(backbone, groups):
    seen = {}
    for name, layers in groups:
        for layer in layers:
            if id(layer) in seen:
                raise ValueError(
                    f"Layer {layer.name!r} is in two block groups: "
                    f"{seen[id(layer)]!r} and {name!r}. Each layer must be in one group."
                )
            seen[id(layer)] = name
    missing = [
        layer.name
        for layer in backbone.layers
        if layer.weights and id(layer) not in seen
    ]
    if missing:
        raise ValueError(
            "Every weighted backbone layer must be in a block group; these are in "
            f"none: {missing}. Add a group (or widen a pattern) that covers them."
        )
    empty = [name for name, layers in groups if not layers]
    if empty:
        raise ValueError(
            f"Block groups {empty} match no layer of backbone {backbone.name!r}."
        )


def _from_patterns(backbone, groups):
    resolved = []
    for name, members in groups:
        if isinstance(members, str):
            pattern = re.compile(members)
            layers = [
                layer
                for layer in backbone.layers
                if layer.weights and pattern.fullmatch(layer.name)
            ]
        else:
            layers = list(members)
        resolved.append((str(name), layers))
    return resolved


def resolve_block_groups(backbone, block_groups=None, required=True):
    """Returns the block groups of `backbone` as `[(name, [layer, ...]), ...]`.

    Args:
        backbone: the backbone layer.
        block_groups: `None` (from `radtl.backbones.block_groups` when the backbone's
            name is registered there), or a list of `(name, regex)` pairs, each
            regex matched with `re.fullmatch` against the layer names (as in the
            backbone registry: `"conv2_.*"`), or of `(name, [layer, ...])` pairs. Ordered input -> output; each weighted layer
            of the backbone must be in exactly one group.
        required: if False and no groups can be found, the whole backbone is one
            group named `"backbone"` (enough for schedules that never split it).

    Raises:
        ValueError: when groups are needed and not found, or do not partition the
            backbone's weighted layers.
    """
    if block_groups is None:
        block_groups = _registry_groups(backbone)
        if block_groups is None:
            if not required:
                return [("backbone", [backbone])]
            raise ValueError(
                f"No block groups are registered for backbone {backbone.name!r}. "
                "Pass `block_groups=[(name, regex), ...]` (ordered input -> output), "
                "e.g. [('stem', 'conv1_.*'), ('conv2', 'conv2_.*'), ...]."
            )
    groups = _from_patterns(backbone, block_groups)
    _check_partition(backbone, groups)
    return groups


def _backbones_module():
    """`radtl.backbones` if it is importable and has the registry API, else None."""
    try:
        from radtl import backbones
    except ImportError:
        return None
    if not (hasattr(backbones, "block_groups") and hasattr(backbones, "names")):
        return None
    return backbones


def _registered_names():
    backbones = _backbones_module()
    return set(backbones.names()) if backbones else set()


def _registry_groups(backbone):
    # Only registered names are looked up; errors of the registry (e.g. a layer in
    # no group) then surface as they are.
    if backbone.name not in _registered_names():
        return None
    return _backbones_module().block_groups(backbone)
