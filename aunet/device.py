"""Device choice and mixed precision: CUDA (with autocast) when present, the CPU otherwise; CPU memory reuse."""
from __future__ import annotations

import contextlib
import ctypes
import platform
import random
import sys
from typing import Iterator

import numpy as np
import torch

from aunet import speedups
from aunet.errors import AunetError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AunetError(f"device={name!r} was requested but PyTorch sees no CUDA GPU; use device='auto' or 'cpu'.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise AunetError(f"device={name!r} is not a device PyTorch knows; expected 'auto', 'cpu' or 'cuda'.") from None


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op on the CPU."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def needs_grad_scaler(device: torch.device, enabled: bool = True) -> bool:
    """float16 autocast needs loss scaling; bfloat16 and float32 do not."""
    return device.type == "cuda" and enabled and not torch.cuda.is_bf16_supported()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for a repeatable run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# glibc's mallopt parameters (malloc.h) and what reuse_cpu_memory leaves behind when it ends
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_AFTER = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 64 * 2**20))
_reuse_depth = 0


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 -- both exist only in glibc
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def reuse_cpu_memory(enabled: bool = True) -> Iterator[bool]:
    """Inside this block, freed CPU memory stays in the process and serves the next tensor (glibc only).

    Why. glibc gives every allocation above 32 MiB its own fresh pages from the kernel and returns
    them on free, and the kernel zero-fills each 4 KiB page on first touch. At batch 1 and 160x160x96
    every activation of the first levels is such an allocation, and most of a CPU forward+backward of
    AttentionUNet goes to those page faults; with the memory kept (no mmap, no trimming) the faults stop
    once the first steps have grown the heap. docs/benchmarks.md ("CPU memory reuse") measures both: time
    per step, page faults per step, peak memory. The cost: the process keeps its peak memory, and some
    more (fragmentation), until the block ends, when the free memory goes back to the kernel
    (`malloc_trim`) and glibc's large-allocation behaviour is restored (mmap above 32 MiB).

    Yields whether it is in effect (False off Linux/glibc, with enabled=False, or with the speed-up
    "reuse_cpu_memory" off in `aunet.speedups`, e.g. AUNET_FAST=0). Blocks nest; the
    outermost one restores. aunet's trainer runs inside one. Sliding-window inference does not by
    default, because there memory matters more: for a 512x512x200 CT it was faster inside the block but
    its peak memory was higher (docs/benchmarks.md); wrap the call to choose speed:

        with reuse_cpu_memory():
            prediction = sliding_window_predict(model, image, patch_size)
    """
    global _reuse_depth
    libc = _glibc() if enabled and speedups.enabled("reuse_cpu_memory") else None
    if libc is None:
        yield False
        return
    if _reuse_depth == 0:
        libc.mallopt(_M_MMAP_MAX, 0)  # every allocation from the heap, which is reused
        libc.mallopt(_M_TRIM_THRESHOLD, -1)  # never give free memory back (mallopt(3): -1 disables trimming)
    _reuse_depth += 1
    try:
        yield True
    finally:
        _reuse_depth -= 1
        if _reuse_depth == 0:
            for param, value in _AFTER:
                libc.mallopt(param, value)
            libc.malloc_trim(0)


def cpu_model() -> str:
    """The CPU's model name as Linux reports it ('unknown' elsewhere)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_device(device: torch.device, processes: int = 1) -> dict[str, object]:
    """What a run trained on, for its device record: type, name, threads or GPU count, torch version."""
    info: dict[str, object] = {"type": device.type, "processes": processes, "torch": torch.__version__}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        info["name"] = cpu_model()
        info["threads"] = torch.get_num_threads()
    return info
