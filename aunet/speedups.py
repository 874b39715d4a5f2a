"""aunet's optional CPU speed-ups and the one switch that turns them off.

The first four compute the same function as the plain PyTorch code written next to them, only faster
on the CPU; `reuse_cpu_memory` changes only where memory comes from; the last three change how the
training step runs (see the modules named below, and docs/benchmarks.md for what each one brings):

    fastconv          3x3x3 convolutions through oneDNN, backward on two depth halves  (aunet/fastconv.py)
    upsample          exact integer-factor (bi/tri)linear upsampling, one pass per axis (aunet/upsample.py)
    fold_gates        eval-mode gates composed into one 1x1 conv                       (GatedSkip, aunet/gate.py)
    fused_head        deep-supervision fusion without the full-size concatenation      (UNet.head, aunet/unet.py)
    reuse_cpu_memory  freed CPU memory kept for the next tensor                        (aunet/device.py)
    bf16              the training step's forward in bfloat16 (CPU autocast)           (aunet/step.py)
    channels_last     model and batches in channels_last_3d order in that step         (aunet/step.py)
    fused_adam        Adam's update as one fused CPU kernel (same formula)             (aunet/step.py)

`bf16` changes the arithmetic (bfloat16 convolutions: float32 accumulation of bfloat16 products), so
it is taken only where oneDNN computes bfloat16 natively and it paid when measured: the CPU has AMX
(amx_bf16, amx_tile) and no ONEDNN_MAX_CPU_ISA below AVX512_CORE_AMX holds oneDNN back. With
avx512_bf16 but no AMX (simulated with the cap AVX512_CORE_BF16) the bfloat16 step was slower than the
float32 one, and with AVX2 alone oneDNN falls back to slow reference kernels. `channels_last` is taken
where oneDNN may use AVX-512 (cap AVX512_CORE or above): there its channels-last kernels spare the
reorder of every activation (float32 or bfloat16); with AVX2 alone it did not pay. `cpu_pays_for` holds these
rules; PyTorch's own flag checks do not see ONEDNN_MAX_CPU_ISA, so the cap is read here. The loss is always computed in
float32; tests/test_speedups.py checks that a bfloat16 step's loss curve follows the float32 one.

As in timm (`layers/config.py`), the choice is read when a module is built and copied onto it
(`self.fastconv = speedups.enabled("fastconv")`), and its `forward` shows both paths
(`if self.fastconv: ... else: ...`), so a model built with a speed-up off runs the plain code
(`reuse_cpu_memory` asks when its block is entered; the trainer copies `bf16`, `channels_last` and
`fused_adam` when it is built). The environment variable AUNET_FAST=0 turns every speed-up off;
unset, or AUNET_FAST=1, leaves them on (where the CPU can run them). Tests and benchmarks build
models inside `off()` instead. Whatever the switch says, the model's fast paths are only taken for
float32 CPU tensors outside autocast (`cpu_float32`), and exact upsampling also for the bfloat16 ones
of a bfloat16 step (`cpu_bf16`); CUDA runs PyTorch's code. `describe()` is what a run records.
"""
from __future__ import annotations

import functools
import os
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import torch

from aunet.errors import AunetError

NAMES = ("fastconv", "upsample", "fold_gates", "fused_head", "reuse_cpu_memory", "bf16", "channels_last",
         "fused_adam")
ON_CAPABLE_CPUS = ("bf16", "channels_last")  # on only where cpu_pays_for(name)
ENV_VAR = "AUNET_FAST"
ISA_ENV_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # oneDNN's cap on the instructions it may use
# ONEDNN_MAX_CPU_ISA values (oneDNN's dnnl_cpu_isa names and aliases) that still allow AMX, or AVX-512, kernels
_AMX_CAPS = ("ALL", "DEFAULT", "AVX10_1_512_AMX", "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16",
             "AVX10_2_512_AMX_2")
_AVX512_CAPS = _AMX_CAPS + ("AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
                            "AVX10_2_512")
_switched_off: Counter[str] = Counter()  # names turned off by the off() blocks now open (they nest)


def fast_by_env() -> bool:
    """Whether AUNET_FAST allows the speed-ups: unset or '1' yes, '0' no."""
    value = os.environ.get(ENV_VAR, "1").strip()
    if value not in ("0", "1"):
        raise AunetError(f"{ENV_VAR}={value!r} is not understood; expected 0 (every CPU speed-up off) "
                         f"or 1 (the default: on).")
    return value == "1"


def onednn_isa_cap() -> str | None:
    """The ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) this process runs under, upper case; None when unset."""
    for var in ISA_ENV_VARS:
        value = os.environ.get(var, "").strip().upper()
        if value:
            return value
    return None


@functools.cache
def cpu_pays_for(name: str) -> bool:
    """Whether this CPU, as oneDNN may use it, runs speed-up `name` faster (the rules in the module docstring)."""
    cap = onednn_isa_cap()
    if not torch.backends.mkldnn.is_available():
        return False
    if name == "bf16":  # AMX bf16 tiles (an unknown cap counts as a lower one)
        return (torch.cpu._is_amx_tile_supported() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
                and (cap is None or cap in _AMX_CAPS))
    if name == "channels_last":  # oneDNN's AVX-512 channels-last convolutions
        return torch.cpu._is_avx512_supported() and (cap is None or cap in _AVX512_CAPS)
    return True


def _check(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown speed-up {unknown[0]!r}; expected one of {', '.join(NAMES)}.")


def enabled(name: str) -> bool:
    """Whether speed-up `name` is on for what is built now: AUNET_FAST allows it, no off() block covers it,
    and, for those in ON_CAPABLE_CPUS, the CPU pays for it (`cpu_pays_for`)."""
    _check((name,))
    return fast_by_env() and _switched_off[name] == 0 and (name not in ON_CAPABLE_CPUS or cpu_pays_for(name))


@contextmanager
def off(*names: str) -> Iterator[None]:
    """Models built inside this block use the plain PyTorch path for `names` (every speed-up when none given)."""
    names = names or NAMES
    _check(names)
    _switched_off.update(names)
    try:
        yield
    finally:
        _switched_off.subtract(names)


def status() -> dict[str, bool]:
    """Each speed-up and whether it is on for what is built now."""
    return {name: enabled(name) for name in NAMES}


def describe() -> dict[str, object]:
    """What a run records (its device record, the reproduction's manifest): each speed-up on or off, and why."""
    return {"AUNET_FAST": os.environ.get(ENV_VAR, "unset"), "on": [n for n, on in status().items() if on],
            "off": [n for n, on in status().items() if not on],
            "cpu_pays_for": {n: cpu_pays_for(n) for n in ON_CAPABLE_CPUS},
            "amx_tile": torch.cpu._is_amx_tile_supported(), "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "onednn_max_cpu_isa": onednn_isa_cap(), "aten_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def cpu_float32(t: torch.Tensor) -> bool:
    """Whether t may take a fast path at all: a float32 CPU tensor, outside CPU autocast."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def cpu_bf16(t: torch.Tensor) -> bool:
    """Whether t is a bfloat16 CPU tensor inside CPU autocast to bfloat16 (the bfloat16 training step's)."""
    return (t.device.type == "cpu" and t.dtype == torch.bfloat16 and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)
