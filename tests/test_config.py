"""radtl.config: one place parses, types and validates a run's settings."""
import pytest

from radtl.config import ConfigError
from radtl.config import TrainConfig
from radtl.config import load_yaml


def test_yaml_reads_exponent_numbers_as_floats(tmp_path):
    # YAML 1.1 (PyYAML's SafeLoader) reads `1e-3` as the string '1e-3'.
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 1e-3\nweight_decay: 5E-4\nepochs: 2\nweights: none\n")
    config = TrainConfig.from_yaml(path)
    assert config.learning_rate == pytest.approx(1e-3) and isinstance(config.learning_rate, float)
    assert config.weight_decay == pytest.approx(5e-4)
    assert config.weights is None


def test_ints_for_float_fields_become_floats():
    config = TrainConfig(learning_rate=1, weights=None)
    assert config.learning_rate == 1.0 and type(config.learning_rate) is float


@pytest.mark.parametrize("values, fragment", [
    ({"learning_rate": "1e-3"}, "`learning_rate` must be float"),
    ({"batch_size": 16.5}, "`batch_size` must be int"),
    ({"augment": "yes please"}, "`augment` must be bool"),
    ({"fold": 7}, "`fold` must be one of 1..5 (synthetic_lesions has 5 folds)"),
    ({"epochs": 0}, "`epochs` must be >= 1"),
    ({"learning_rate": 0.0}, "`learning_rate` must be > 0"),
    ({"optimizer": "adm"}, "Did you mean 'adam'?"),
    ({"lr_decay": "linear"}, "`lr_decay` must be one of ['constant', 'cosine']"),
    ({"xla": 1}, "`xla` must be str or bool"),
    ({"resize_method": "bicubic"}, "`resize_method` must be one of ['bilinear', 'nearest']"),
    ({"backbone": "resnet5"}, "Did you mean 'resnet50'?"),
    ({"schedule": "lpft"}, "`schedule` must be one of"),
    ({"loss": "focal"}, "`loss` must be one of"),
    ({"head": "transformer"}, "`head` must be one of"),
    ({"dataset": "mnist"}, "`dataset` must be a registered dataset"),
    ({"lerning_rate": 1e-3}, "Unknown config keys ['lerning_rate']. Did you mean 'learning_rate'?"),
    ({"head_options": {"dropuot": 0.1}}, "Unknown `head_options` ['dropuot']"),
    ({"schedule": "lp-ft", "schedule_options": {"probe_epoch": 1}}, "Unknown `schedule_options` ['probe_epoch']"),
    ({"loss_options": {"epsilon": 0.1}}, "Unknown `loss_options` ['epsilon']"),
    ({"loss": "ols", "loss_options": {"num_classes": 3}}, "`loss_options`"),
    ({"loss": "label_smoothing", "loss_options": {"epsilon": 2.0}}, "epsilon"),
    ({"head": "mlp", "head_options": {"dropout": 1.5}}, "dropout"),
    ({"head_options": [1, 2]}, "`head_options` must be dict"),
])
def test_every_invalid_setting_is_a_config_error_naming_it(values, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"weights": None, **values})
    assert fragment in str(info.value)


def test_valid_component_options_pass():
    config = TrainConfig.from_dict({"weights": None, "schedule": "lp-ft", "schedule_options": {"probe_epochs": 2},
                                    "loss": "label_smoothing", "loss_options": {"epsilon": 0.2},
                                    "head": "mlp", "head_options": {"dropout": 0.2}})
    assert config.schedule_options == {"probe_epochs": 2}


def test_from_yaml_names_the_file_and_the_line_of_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\n  batch_size: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_yaml(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_from_yaml_refuses_a_non_mapping_and_names_the_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainConfig.from_yaml(path)
    path.write_text("backbone: resnet5\n")
    with pytest.raises(ConfigError, match=f"{path}: .*resnet50"):
        TrainConfig.from_yaml(path)


def test_overrides_apply_after_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 2\nweights: none\n")
    assert TrainConfig.from_yaml(path, {"epochs": 3}).epochs == 3


def test_check_field_is_the_one_check_sweeps_use():
    assert TrainConfig.check_field("learning_rate", 1) == 1.0
    with pytest.raises(ConfigError, match="`batch_size` must be int"):
        TrainConfig.check_field("batch_size", 16.5)


def test_load_yaml_text():
    assert load_yaml(text="a: 1e-3") == {"a": 1e-3}


def test_differences_lists_changed_fields():
    a = TrainConfig(weights=None)
    b = a.replace(epochs=3)
    assert a.differences(b) == {"epochs": (30, 3)}


def test_choices_are_the_owning_modules_choices():
    from radtl import data, precision
    from radtl.config import CHOICES

    assert CHOICES["resize_method"] == data.RESIZE_METHODS
    assert set(CHOICES["precision"]) == set(precision.PRECISIONS)
    assert CHOICES["xla"] == precision.XLA_CHOICES


@pytest.mark.parametrize("values, fragment", [
    ({"backbone": "efficientnet_b0", "weights": None, "preprocessing": "official"}, "mode='native'"),
    ({"backbone": "vgg16", "weights": "radimagenet"}, "not available for `vgg16`"),
    ({"backbone": "inception_v3", "weights": None, "image_size": 32}, "needs height and width >= 75"),
])
def test_settings_that_do_not_hold_together(values, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig.from_dict(values)


def test_overrides_of_dict_fields_merge_with_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("weights: none\nschedule: lp-ft\nschedule_options: {probe_epochs: 3, learning_rate: 1e-5}\n")
    config = TrainConfig.from_yaml(path, {"schedule_options": {"probe_epochs": 1}})
    assert config.schedule_options == {"probe_epochs": 1, "learning_rate": 1e-5}


def test_options_of_components_that_need_training_data_are_checked_too():
    with pytest.raises(ConfigError, match="num_batches"):
        TrainConfig(weights=None, schedule="auto-rgn", schedule_options={"num_batches": 0})
