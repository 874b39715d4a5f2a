"""aunet's optional CPU speed-ups and the one switch that turns them off.

The first four compute the same function as the plain PyTorch code written next to them, only faster
on the CPU; the last changes only where memory comes from (see the modules named below, and
docs/benchmarks.md for what each one brings):

    fastconv          3x3x3 convolutions through oneDNN, backward on two depth halves  (aunet/fastconv.py)
    upsample          exact x2 (bi/tri)linear upsampling in three one-axis passes      (aunet/upsample.py)
    fold_gates        eval-mode gates composed into one 1x1 conv                       (GatedSkip, aunet/gate.py)
    fused_head        deep-supervision fusion without the full-size concatenation      (UNet.head, aunet/unet.py)
    reuse_cpu_memory  freed CPU memory kept for the next tensor                        (aunet/device.py)

As in timm (`layers/config.py`), the choice is read when a module is built and copied onto it
(`self.fastconv = speedups.enabled("fastconv")`), and its `forward` shows both paths
(`if self.fastconv: ... else: ...`), so a model built with a speed-up off runs the plain code
(`reuse_cpu_memory` asks when its block is entered). The environment variable AUNET_FAST=0 turns
every speed-up off; unset, or AUNET_FAST=1, leaves them on.
Tests and benchmarks build models inside `off()` instead. Whatever the switch says, the fast paths
are only taken for float32 CPU tensors outside autocast (`cpu_float32`); CUDA runs PyTorch's code.
"""
from __future__ import annotations

import os
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import torch

from aunet.errors import AunetError

NAMES = ("fastconv", "upsample", "fold_gates", "fused_head", "reuse_cpu_memory")
ENV_VAR = "AUNET_FAST"
_switched_off: Counter[str] = Counter()  # names turned off by the off() blocks now open (they nest)


def fast_by_env() -> bool:
    """Whether AUNET_FAST allows the speed-ups: unset or '1' yes, '0' no."""
    value = os.environ.get(ENV_VAR, "1").strip()
    if value not in ("0", "1"):
        raise AunetError(f"{ENV_VAR}={value!r} is not understood; expected 0 (every CPU speed-up off) "
                         f"or 1 (the default: on).")
    return value == "1"


def _check(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown speed-up {unknown[0]!r}; expected one of {', '.join(NAMES)}.")


def enabled(name: str) -> bool:
    """Whether speed-up `name` is on for what is built now: AUNET_FAST allows it and no off() block covers it."""
    _check((name,))
    return fast_by_env() and _switched_off[name] == 0


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


def cpu_float32(t: torch.Tensor) -> bool:
    """Whether t may take a fast path at all: a float32 CPU tensor, outside CPU autocast."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
