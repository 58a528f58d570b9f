"""Run health: is a run's result a result, or did training diverge or collapse?

A run that diverged (a NaN/inf loss), saturated (a loss stuck far above chance) or
collapsed (one constant prediction for every image) has no meaningful AUC: an AUC of
0.5 with a CI of 0.5-0.5 is a symptom, not a finding. The trainer checks these after
training and marks such a run failed (`RunDir.write_failure`) instead of reporting it.

Pure numpy: no TensorFlow import.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["Failure", "check_history", "check_loss_level", "check_predictions",
           "CONSTANT_TOLERANCE", "SATURATION_FACTOR"]

#: Predictions whose per-class range over all images is below this are one constant.
CONSTANT_TOLERANCE = 1e-5
#: A final training loss above this multiple of the chance loss is "stuck".
SATURATION_FACTOR = 4.0


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a run has no result.

    Attributes:
        kind: str. "diverged", "saturated" or "collapsed".
        reason: str. One sentence with the values seen and what to try.
    """

    kind: str
    reason: str


def check_history(loss_values, *, learning_rate: float | None = None) -> Failure | None:
    """A NaN/inf training loss in any epoch -> "diverged"; else None.

    Args:
        loss_values: sequence of float. The training loss per epoch (history order).
        learning_rate: float or None. Named in the advice.
    """
    for epoch, value in enumerate(loss_values, 1):
        if not math.isfinite(float(value)):
            lr = f" (now {learning_rate:g})" if learning_rate is not None else ""
            return Failure("diverged", f"the training loss became {float(value)} in epoch {epoch}; training "
                                       f"stopped. Try a lower learning_rate{lr}, precision float32, or check "
                                       "the data for corrupt images.")
    return None


def check_loss_level(final_loss: float, chance_loss: float, *, learning_rate: float | None = None
                     ) -> Failure | None:
    """A last-epoch training loss above `SATURATION_FACTOR` x the chance loss -> "saturated".

    Args:
        final_loss: float. The last epoch's training loss.
        chance_loss: float. The same loss for uniform predictions (1/K each) on the
            same labels: what a model that learnt nothing scores.
    """
    if chance_loss > 0 and final_loss > SATURATION_FACTOR * chance_loss:
        lr = f" (now {learning_rate:g})" if learning_rate is not None else ""
        return Failure("saturated", f"the training loss ended at {final_loss:.4g}, {final_loss / chance_loss:.1f}x "
                                    f"the chance level {chance_loss:.4g} (uniform predictions): the model saturated "
                                    f"instead of learning. Try a lower learning_rate{lr}.")
    return None


def check_predictions(probs, split: str = "test") -> Failure | None:
    """One constant prediction for every image -> "collapsed"; else None.

    Args:
        probs: (N, K) float array of class probabilities.
        split: str. Named in the message.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < 2:
        return None
    if not np.isfinite(probs).all():
        return Failure("diverged", f"the {split} predictions hold NaN/inf: the checkpoint's weights are not finite.")
    spread = float(np.ptp(probs, axis=0).max())
    if spread < CONSTANT_TOLERANCE:
        values = ", ".join(f"{p:.6g}" for p in probs[0])
        return Failure("collapsed", f"the model predicts one constant for all {len(probs)} {split} images "
                                    f"(probabilities [{values}], largest range {spread:.1e}): it collapsed and "
                                    "its AUC would be meaningless. Try a lower learning rate, another schedule, "
                                    "or more epochs.")
    return None
