"""The fine-tuning rules themselves, as pure functions (no TensorFlow, no Keras).

Each rule answers two questions for a backbone cut into `num_groups` block groups
(ordered input -> output) plus a head: which groups train at epoch `epoch`
(a `Stage`), and which learning-rate multiplier each group gets. The callbacks in
`radtl.schedules` only translate these answers into Keras state, so the rules can be
read, cited and tested on their own.

Epochs are 0-based, as in Keras callbacks.
"""

import dataclasses
import math

from radtl import _checks

ORDERS = ("last_to_first", "first_to_last")
RADIMAGENET_SCENARIOS = ("freezeall", "unfreezeall", "unfreezetop10")
# `base_model.layers[:-10]` is frozen by the official RadImageNet scripts.
RADIMAGENET_TOP_LAYERS = 10


@dataclasses.dataclass(frozen=True)
class Stage:
    """Which parts of the model train during one stage of a schedule.

    Attributes:
        index: 0-based stage number (0 for single-stage schedules).
        backbone: one bool per backbone group, ordered input -> output; True = trains.
        head: whether the head (everything outside the backbone) trains.
    """

    index: int
    backbone: tuple
    head: bool = True

    @property
    def trainable(self):
        """The trainable flags as one hashable value: `(backbone, head)`."""
        return (self.backbone, self.head)


# Keras-style argument checks, shared with the rest of radtl.
check_positive_int = _checks.check_int
check_number = _checks.check_number
check_choice = _checks.check_choice


def full_fine_tune(num_groups):
    """FT: every group and the head train, from the first epoch."""
    return Stage(0, (True,) * num_groups)


def linear_probe(num_groups):
    """LP: the backbone is frozen; only the head trains."""
    return Stage(0, (False,) * num_groups)


def lp_ft(epoch, num_groups, probe_epochs):
    """LP-FT (Kumar et al. 2022): stage 0 = LP for `probe_epochs` epochs, then stage 1 = FT."""
    if epoch < probe_epochs:
        return linear_probe(num_groups)
    return Stage(1, (True,) * num_groups)


def gradual_unfreeze(epoch, num_groups, epochs_per_stage, order="last_to_first"):
    """Gradual unfreezing (Howard & Ruder 2018, ULMFiT).

    Stage 0 trains the head only; each following stage, `epochs_per_stage` epochs
    long, unfreezes one more group, starting from the output side
    (`"last_to_first"`, ULMFiT's order) or from the stem (`"first_to_last"`). After
    `num_groups` stages everything trains.
    """
    check_choice("order", order, ORDERS)
    index = min(epoch // epochs_per_stage, num_groups)
    if order == "last_to_first":
        flags = tuple(g >= num_groups - index for g in range(num_groups))
    else:
        flags = tuple(g < index for g in range(num_groups))
    return Stage(index, flags)


def partial_unfreeze(num_groups, top):
    """Frees et al.'s `unfreezetopN`: the last `top` groups train, the others are frozen.

    `top` larger than `num_groups` unfreezes everything.
    """
    return Stage(0, tuple(g >= num_groups - top for g in range(num_groups)))


def radimagenet(scenario, num_layers):
    """A RadImageNet scenario over the backbone's `num_layers` Keras layers.

    As in the official scripts: `freezeall` freezes every base layer, `unfreezeall`
    trains every one, `unfreezetop10` freezes `base_model.layers[:-10]`, so the last
    10 Keras layers (weightless ones included) train. Groups here are single layers.
    """
    check_choice("scenario", scenario, RADIMAGENET_SCENARIOS)
    if scenario == "freezeall":
        return linear_probe(num_layers)
    if scenario == "unfreezeall":
        return full_fine_tune(num_layers)
    return partial_unfreeze(num_layers, RADIMAGENET_TOP_LAYERS)


def union(stages):
    """The flags of every part that trains in at least one of `stages`."""
    stages = list(stages)
    backbone = tuple(any(flags) for flags in zip(*(s.backbone for s in stages)))
    return Stage(-1, backbone, any(s.head for s in stages))


def discriminative_multipliers(num_groups, factor):
    """Per-group learning-rate multipliers of discriminative fine-tuning (ULMFiT).

    The head gets 1; each group below gets the multiplier of the group above divided
    by `factor` (ULMFiT: 2.6), so the top backbone group gets `1 / factor` and the
    stem `1 / factor ** num_groups`.

    Returns:
        `(backbone_multipliers, head_multiplier)`, the former ordered input -> output.
    """
    return tuple(factor ** -(num_groups - g) for g in range(num_groups)), 1.0


def relative_gradient_norm_multipliers(gradient_norms, parameter_norms):
    """Auto-RGN multipliers (Lee et al. 2023): `rgn_i / max_j rgn_j`, `rgn = ||g|| / ||theta||`.

    Args:
        gradient_norms: per tensor, the L2 norm of its gradient (already averaged
            over the batches used, or one value per tensor).
        parameter_norms: per tensor, the L2 norm of its value.

    Returns:
        A tuple of multipliers in [0, 1]. A tensor whose parameter norm is 0 (e.g. a
        freshly zero-initialised bias) has an undefined RGN; it is left out of the
        max and gets 1. (The official code would divide by zero there.) If every
        RGN is 0, every multiplier is 0.
    """
    ratios = [
        None if p == 0 else g / p for g, p in zip(gradient_norms, parameter_norms)
    ]
    defined = [r for r in ratios if r is not None]
    largest = max(defined, default=0.0)
    return tuple(
        1.0 if r is None else (r / largest if largest > 0 else 0.0) for r in ratios
    )


def mean_relative_gradient_norms(per_batch_gradient_norms, parameter_norms):
    """Averages `||g|| / ||theta||` over batches, tensor by tensor (official Auto-RGN).

    Args:
        per_batch_gradient_norms: a list over batches of per-tensor gradient norms.
        parameter_norms: per tensor, the L2 norm of its value.

    Returns:
        The multipliers of `relative_gradient_norm_multipliers` applied to the
        batch-averaged RGNs.
    """
    count = len(per_batch_gradient_norms)
    if count == 0:
        raise ValueError("Auto-RGN needs at least one batch of gradients.")
    means = [math.fsum(norms) / count for norms in zip(*per_batch_gradient_norms)]
    # The mean of g_b / p equals (mean of g_b) / p: pass the mean gradient norm.
    return relative_gradient_norm_multipliers(means, parameter_norms)


def starting_point_penalty(values, references, norm, strength):
    """The SP penalty of one tensor in plain Python floats (reference for tests).

    `"l2"`: `strength / 2 * sum((w - w0) ** 2)`; `"l1"`: `strength * sum(|w - w0|)`.
    With `references` all 0 this is the plain L2 / L1 penalty used on the head.
    """
    check_choice("norm", norm, ("l1", "l2"))
    diffs = [w - w0 for w, w0 in zip(values, references)]
    if norm == "l2":
        return strength / 2 * math.fsum(d * d for d in diffs)
    return strength * math.fsum(abs(d) for d in diffs)
