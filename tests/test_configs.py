"""Single-run configs shipped in configs/runs/ are valid TrainConfigs with registered names."""
from pathlib import Path

import pytest
import yaml

import radtl.backbones
import radtl.heads
import radtl.losses
import radtl.schedules
from radtl.config import TrainConfig

RUN_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "runs").glob("*.yaml"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_run_config_is_valid(path):
    config = TrainConfig.from_dict(yaml.safe_load(path.read_text()))
    assert config.backbone in radtl.backbones.names()
    assert config.head in radtl.heads.names()
    assert config.loss in radtl.losses.names()
    assert config.schedule in radtl.schedules.names()


def test_unknown_keys_and_bad_values_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown config keys \['lr'\]"):
        TrainConfig.from_dict({"lr": 1e-3})
    with pytest.raises(ValueError, match="`fold` must be >= 1"):
        TrainConfig(fold=0)
    with pytest.raises(ValueError, match=r"`fold` must be one of 1..5 \(synthetic_lesions has 5 folds\)"):
        TrainConfig(fold=6)
    with pytest.raises(ValueError, match="`epochs` must be >= 1"):
        TrainConfig(epochs=0)
    assert TrainConfig(weights="none").weights is None
