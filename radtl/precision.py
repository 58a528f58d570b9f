"""Mixed precision and XLA: pick the fastest safe setting for this machine, or obey.

`configure()` sets Keras' global dtype policy (call it before building models) and
returns a `PrecisionChoice` to record with the run (`dataclasses.asdict(choice)`). The
XLA choice is returned, not applied: pass `jit_compile=choice.xla` to `model.compile`.

Automatic policy: the first of `mixed_bfloat16`, `mixed_float16`, `float32` that the
hardware runs fast (`_POLICIES`):
- GPU with compute capability >= 8.0 (Ampere, Hopper, ...): `mixed_bfloat16`. Their
  tensor cores run bfloat16 as fast as float16, and bfloat16 keeps float32's exponent
  range, so it needs no loss scaling and cannot overflow on large logits or gradients.
  float16 keeps 3 more mantissa bits; ask for `precision="mixed_float16"` to prefer it.
- GPU with compute capability 7.x (Volta, Turing): `mixed_float16`. Keras' `compile()`
  wraps the optimizer in a `LossScaleOptimizer` (dynamic loss scaling) for that policy
  (`auto_scale_loss=True`, the default); a custom `train_step` must call
  `optimizer.scale_loss`.
- CPU with bfloat16 instructions (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo):
  `mixed_bfloat16`, measured 1.4-1.5x faster than float32 for ResNet50 training on the
  project's AVX512_BF16 CPU.
- Anything else (older GPUs, CPUs without bfloat16): `float32`.

Automatic XLA: on with a GPU (fused kernels, usually faster), off on CPU (measured
1.5x slower for ResNet50 training on the project's machine, with or without bfloat16).

Example:

```python
import dataclasses
from radtl import precision

choice = precision.configure()  # e.g. mixed_bfloat16, xla=False on a bf16 CPU
record = dataclasses.asdict(choice)
model.compile(optimizer, loss, jit_compile=choice.xla)
```
"""
import dataclasses
import logging
from typing import Callable

import keras

logger = logging.getLogger(__name__)

# CPU flags (Linux /proc/cpuinfo spelling) that mean native bfloat16 arithmetic.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What `configure` needs to know about the machine (from `probe()`, or made up).

    Args:
        gpu_name: str or None. Name of the first visible GPU; None without a GPU.
        compute_capability: tuple (major, minor) or None. CUDA compute capability of
            that GPU; None without a GPU or when unknown.
        cpu_name: str. CPU model name. Defaults to "".
        cpu_flags: frozenset of str. CPU feature flags, lower case, as in
            /proc/cpuinfo. Defaults to empty.
    """

    gpu_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    cpu_name: str = ""
    cpu_flags: frozenset = frozenset()

    @property
    def has_gpu(self):
        return self.gpu_name is not None

    def gpu_at_least(self, major, minor=0):
        cc = self.compute_capability
        return self.has_gpu and cc is not None and tuple(cc) >= (major, minor)

    @property
    def cpu_bf16(self):
        return bool(BF16_CPU_FLAGS & self.cpu_flags)

    def describe(self):
        """One line naming the device that will run the model."""
        if self.has_gpu:
            cc = self.compute_capability
            capability = ".".join(map(str, cc)) if cc else "unknown"
            return f"GPU {self.gpu_name} (compute capability {capability})"
        bf16 = sorted(BF16_CPU_FLAGS & self.cpu_flags)
        flags = f" ({', '.join(bf16)})" if bf16 else " (no bfloat16 instructions)"
        return f"CPU {self.cpu_name or 'unknown'}{flags}"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The precision and XLA setting a run uses, and why.

    Args:
        policy: str. Keras dtype policy set globally: "float32", "mixed_float16" or
            "mixed_bfloat16".
        xla: bool. Whether to compile with XLA (`model.compile(jit_compile=xla)`).
        device: str. The device description, e.g. "GPU NVIDIA A100 (compute
            capability 8.0)".
        reason: str. Why this policy and XLA setting were chosen.
    """

    policy: str
    xla: bool
    device: str
    reason: str


@dataclasses.dataclass(frozen=True)
class _Policy:
    fast_on: Callable[[Hardware], bool]
    why: str


# Dtype policy -> when it is fast, and why. Order is the automatic preference.
_POLICIES = {
    "mixed_bfloat16": _Policy(
        fast_on=lambda hw: hw.gpu_at_least(8) or (not hw.has_gpu and hw.cpu_bf16),
        why="bfloat16 hardware (GPU compute capability >= 8.0, or CPU AVX512_BF16/"
        "AMX-BF16): float32 exponent range, no loss scaling needed",
    ),
    "mixed_float16": _Policy(
        fast_on=lambda hw: hw.gpu_at_least(7),
        why="float16 tensor cores (GPU compute capability >= 7.0); Keras compile() "
        "adds dynamic loss scaling",
    ),
    "float32": _Policy(
        fast_on=lambda hw: True,
        why="no mixed-precision hardware (GPU compute capability >= 7.0 or a CPU "
        "with bfloat16 instructions) found",
    ),
}

# XLA setting -> why; the automatic choice is XLA on a GPU only.
_XLA_WHY = {
    True: "GPU: XLA fuses kernels and is usually faster",
    False: "CPU: XLA measured about 1.5x slower for training here",
}

PRECISIONS = ("auto", *_POLICIES)
XLA_CHOICES = ("auto", True, False)


def read_cpu_flags(path="/proc/cpuinfo"):
    """CPU model name and feature flags from a Linux cpuinfo file.

    Args:
        path: str. File in /proc/cpuinfo format. Defaults to "/proc/cpuinfo".

    Returns:
        (name, flags): str and frozenset of lower-case flags; ("", frozenset()) when the
        file does not exist (not Linux).
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return "", frozenset()
    fields = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = frozenset(fields.get("flags", "").lower().split())
    return fields.get("model name", ""), flags


def probe(cpuinfo="/proc/cpuinfo"):
    """Inspect this machine: the first visible GPU (via TensorFlow) and the CPU flags.

    Args:
        cpuinfo: str. Path of the cpuinfo file. Defaults to "/proc/cpuinfo".

    Returns:
        Hardware.
    """
    import tensorflow as tf

    cpu_name, cpu_flags = read_cpu_flags(cpuinfo)
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Hardware(cpu_name=cpu_name, cpu_flags=cpu_flags)
    details = tf.config.experimental.get_device_details(gpus[0])
    return Hardware(
        gpu_name=details.get("device_name", gpus[0].name),
        compute_capability=details.get("compute_capability"),
        cpu_name=cpu_name,
        cpu_flags=cpu_flags,
    )


def _check_arguments(precision, xla, hardware):
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {PRECISIONS}. Received: precision={precision!r}"
        )
    if not (xla == "auto" or xla is True or xla is False):
        raise ValueError(f"`xla` must be one of {XLA_CHOICES}. Received: xla={xla!r}")
    if hardware is not None and not isinstance(hardware, Hardware):
        raise ValueError(
            "`hardware` must be a radtl.precision.Hardware (or None to probe this "
            f"machine). Received: hardware={hardware!r}"
        )


def configure(precision="auto", xla="auto", *, hardware=None):
    """Choose and set the dtype policy, and choose XLA, for this machine.

    Sets `keras.config.set_dtype_policy(policy)` (so call it before building models)
    and logs the choice. See the module docstring for the automatic rules.

    Args:
        precision: str. "auto" (pick for the hardware), "float32", "mixed_float16" or
            "mixed_bfloat16". Defaults to "auto". A requested mixed policy that the
            hardware runs slowly is honoured with a warning.
        xla: "auto", True or False. "auto" is True with a GPU, False on CPU.
            Defaults to "auto".
        hardware: Hardware or None. The machine to decide for; None probes this one
            (`probe()`). Pass a `Hardware` to decide for another machine or in tests.

    Returns:
        PrecisionChoice (frozen; `dataclasses.asdict` gives a JSON-ready dict).

    Raises:
        ValueError: for a `precision` or `xla` outside the choices above.
    """
    _check_arguments(precision, xla, hardware)
    hardware = probe() if hardware is None else hardware
    if precision == "auto":
        policy = next(name for name, p in _POLICIES.items() if p.fast_on(hardware))
        policy_reason = f"{policy} (auto): {_POLICIES[policy].why}"
    else:
        policy = precision
        policy_reason = f"{policy} (requested)"
        if not _POLICIES[policy].fast_on(hardware):
            logger.warning(
                "%s was requested but %s has no fast hardware for it; expect it to run "
                "slower than float32. Use precision='auto' to pick for this device.",
                policy, hardware.describe(),
            )
    use_xla = hardware.has_gpu if xla == "auto" else xla
    xla_reason = f"XLA {'on' if use_xla else 'off'} " + (
        f"(auto): {_XLA_WHY[use_xla]}" if xla == "auto" else "(requested)"
    )
    choice = PrecisionChoice(
        policy=policy,
        xla=use_xla,
        device=hardware.describe(),
        reason=f"{policy_reason}; {xla_reason}",
    )
    keras.config.set_dtype_policy(policy)
    logger.info("Precision: %s, XLA %s on %s. %s", choice.policy,
                "on" if use_xla else "off", choice.device, choice.reason)
    return choice
