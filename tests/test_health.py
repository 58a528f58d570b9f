"""radtl.health: diverged, saturated and collapsed runs are recognised, healthy ones are not."""
import math

import numpy as np

from radtl import health


def test_non_finite_loss_is_divergence_naming_the_epoch():
    failure = health.check_history([0.7, 0.6, math.nan], learning_rate=1e4)
    assert failure.kind == "diverged" and "epoch 3" in failure.reason and "10000" in failure.reason
    assert health.check_history([0.7, float("inf")]).kind == "diverged"
    assert health.check_history([0.7, 0.5, 0.4]) is None


def test_loss_far_above_chance_is_saturation():
    chance = math.log(2)
    assert health.check_loss_level(8.1, chance).kind == "saturated"
    assert health.check_loss_level(0.9, chance) is None  # above chance, but learning may just be slow


def test_constant_predictions_are_a_collapse():
    # What `--lr 1e4` produced: every probability about 0.99999994.
    probs = np.tile([[5.96e-8, 0.99999994]], (20, 1))
    probs[3] = [0.0, 1.0]
    failure = health.check_predictions(probs, "test")
    assert failure.kind == "collapsed" and "20 test images" in failure.reason


def test_varied_predictions_are_healthy():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.45, 0.55, size=20)
    assert health.check_predictions(np.stack([1 - p, p], axis=1)) is None


def test_non_finite_predictions_are_divergence():
    probs = np.full((4, 2), np.nan)
    assert health.check_predictions(probs).kind == "diverged"
