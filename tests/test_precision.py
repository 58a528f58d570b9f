"""Tests for radtl.precision: automatic choice, overrides, errors, global policy."""
import dataclasses
import logging

import keras
import pytest

from radtl import precision
from radtl.precision import Hardware

CPU_BF16 = Hardware(cpu_name="AMD EPYC", cpu_flags=frozenset({"avx2", "avx512_bf16"}))
CPU_AMX = Hardware(cpu_name="Xeon", cpu_flags=frozenset({"amx_bf16", "amx_tile"}))
CPU_PLAIN = Hardware(cpu_name="Old CPU", cpu_flags=frozenset({"sse4_2", "avx2"}))
HOPPER = Hardware(gpu_name="NVIDIA H100", compute_capability=(9, 0),
                  cpu_flags=CPU_BF16.cpu_flags)
AMPERE = Hardware(gpu_name="NVIDIA A100", compute_capability=(8, 0))
TURING = Hardware(gpu_name="Tesla T4", compute_capability=(7, 5),
                  cpu_flags=CPU_BF16.cpu_flags)
PASCAL = Hardware(gpu_name="Tesla P100", compute_capability=(6, 0))


@pytest.fixture(autouse=True)
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize(
    "hardware,policy,xla",
    [
        (HOPPER, "mixed_bfloat16", True),
        (AMPERE, "mixed_bfloat16", True),
        (TURING, "mixed_float16", True),  # a bf16 CPU does not matter with a GPU
        (PASCAL, "float32", True),
        (CPU_BF16, "mixed_bfloat16", False),
        (CPU_AMX, "mixed_bfloat16", False),
        (CPU_PLAIN, "float32", False),
    ],
)
def test_auto_choice_per_hardware(hardware, policy, xla):
    choice = precision.configure(hardware=hardware)
    assert (choice.policy, choice.xla) == (policy, xla)
    assert keras.config.dtype_policy().name == policy
    assert "(auto)" in choice.reason
    assert choice.device == hardware.describe()


def test_auto_on_this_machine_matches_its_cpu_flags():
    hardware = precision.probe()
    if hardware.has_gpu:
        pytest.skip("this test describes the CPU-only machine")
    _, flags = precision.read_cpu_flags()
    expected = "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"
    choice = precision.configure()
    assert choice.policy == expected
    assert choice.xla is False
    assert keras.config.dtype_policy().name == expected
    assert choice.device.startswith("CPU ")


def test_device_descriptions():
    assert AMPERE.describe() == "GPU NVIDIA A100 (compute capability 8.0)"
    assert CPU_BF16.describe() == "CPU AMD EPYC (avx512_bf16)"
    assert CPU_PLAIN.describe() == "CPU Old CPU (no bfloat16 instructions)"
    assert Hardware(gpu_name="GPU 0").describe().endswith("(compute capability unknown)")


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("xla", [True, False])
def test_overrides_are_obeyed_and_set_globally(policy, xla):
    choice = precision.configure(policy, xla, hardware=HOPPER)
    assert (choice.policy, choice.xla) == (policy, xla)
    assert keras.config.dtype_policy().name == policy
    switch = "on" if xla else "off"
    assert choice.reason == f"{policy} (requested); XLA {switch} (requested)"


def test_mixed_float16_compiles_with_loss_scaling():
    precision.configure("mixed_float16", hardware=TURING)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(), "mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_slow_override_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="radtl.precision"):
        precision.configure("mixed_float16", hardware=CPU_BF16)
        assert "mixed_float16 was requested" in caplog.text
        caplog.clear()
        precision.configure("mixed_bfloat16", hardware=CPU_BF16)
        precision.configure("float32", hardware=CPU_PLAIN)
        assert caplog.records == []


def test_choice_is_logged_and_recordable(caplog):
    with caplog.at_level(logging.INFO, logger="radtl.precision"):
        choice = precision.configure(hardware=AMPERE)
    assert "Precision: mixed_bfloat16, XLA on on GPU NVIDIA A100" in caplog.text
    record = dataclasses.asdict(choice)
    assert set(record) == {"policy", "xla", "device", "reason"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.policy = "float32"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"precision": "fp16"},
         "`precision` must be one of .* Received: precision='fp16'"),
        ({"precision": None}, "Received: precision=None"),
        ({"xla": "yes"},
         r"`xla` must be one of \('auto', True, False\). Received: xla='yes'"),
        ({"xla": 1}, "Received: xla=1"),
        ({"hardware": "gpu"}, "Received: hardware='gpu'"),
    ],
)
def test_bad_values_raise_and_leave_the_policy_alone(kwargs, match):
    before = keras.config.dtype_policy().name
    with pytest.raises(ValueError, match=match):
        precision.configure(**kwargs)
    assert keras.config.dtype_policy().name == before


def test_read_cpu_flags_parses_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu AVX512_BF16 sse\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx512_bf16 sse\n"
    )
    name, flags = precision.read_cpu_flags(str(cpuinfo))
    assert name == "AMD EPYC 9B14"
    assert flags == frozenset({"fpu", "avx512_bf16", "sse"})
    assert precision.read_cpu_flags(str(tmp_path / "missing")) == ("", frozenset())
    hardware = precision.probe(cpuinfo=str(cpuinfo))
    if not hardware.has_gpu:
        assert hardware == Hardware(cpu_name=name, cpu_flags=flags)
