"""Timing and memory primitives of the benchmark: interleaved medians, peak memory, matmul GFLOP/s.

Timing (`interleaved`, the one timing helper: every measurement goes through it): wall clock
(`time.perf_counter`) around each call, with `torch.cuda.synchronize()` before and after on CUDA so
that queued kernels are counted. Models being compared are timed in turns (A, B, A, B, ...) so that
background load on a shared machine affects them alike; we report medians.
Memory: on the CPU the peak resident set size (RSS) of a fresh process (`benchmarks.fresh`), minus
its RSS just before the measured call (allocators keep freed pages, so only a fresh process gives an
honest peak); on CUDA `torch.cuda.max_memory_allocated` minus what was allocated before the call.
"""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import psutil
import torch
import torch.nn.functional as F
from torch import nn

from aunet.device import autocast, needs_grad_scaler

Step = Callable[[], None]


def sync(device: torch.device) -> None:
    """Wait for queued CUDA kernels (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Step, device: torch.device) -> float:
    """Seconds taken by one call of `step`."""
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - start


def interleaved(steps: dict[str, Step], device: torch.device, warmup: int, repeats: int,
                label: str | None = None) -> dict[str, list[float]]:
    """Seconds of each step, called in turns (A, B, A, B, ...); the first `warmup` rounds are dropped.

    With a label, prints one line of medians (a long run shows where it is).
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            t = _timed(step, device)
            if round_ >= warmup:
                times[name].append(t)
    if label:
        print(f"  {label}: " + ", ".join(f"{n} {median(t):.3f}s" for n, t in times.items()), flush=True)
    return times


def once(step: Step, device: torch.device) -> float:
    """Seconds of one call of `step` (no warm-up): `interleaved` with one step and one repeat."""
    return interleaved({"step": step}, device, warmup=0, repeats=1)["step"][0]


def median(times: list[float]) -> float:
    """The median of a list of times."""
    return statistics.median(times)


def make_input(size: tuple[int, ...], batch: int, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """A random (batch, 1, *size) volume."""
    x = torch.randn(batch, 1, *size, device=device)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x


def forward_step(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool) -> Step:
    """Inference: eval mode, `torch.inference_mode`, mixed precision on CUDA."""
    def step() -> None:
        model.eval()
        with torch.inference_mode(), autocast(device, amp):
            model(x)
    return step


def backward_step(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool) -> Step:
    """Forward + backward in train mode (no optimiser step)."""
    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out = model(x)
        out.float().mean().backward()
    return step


def train_step(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool) -> Step:
    """One optimiser step: forward, cross-entropy on random labels, backward, Adam (lr 1e-4)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6)
    scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(device, amp))
    target = torch.randint(0, 4, (x.shape[0], *x.shape[2:]), device=device)

    def step() -> None:
        model.train()
        optimiser.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out = model(x)
        scaler.scale(F.cross_entropy(out.float(), target)).backward()
        scaler.step(optimiser)
        scaler.update()
    return step


def cuda_peak_bytes(step: Step, device: torch.device) -> int:
    """Peak CUDA memory allocated by one call of `step`, above what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def minor_faults() -> int:
    """Minor page faults of this process so far (each one a fresh page the kernel had to map and zero)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes."""
    return psutil.Process().memory_info().rss


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: write 5 to /proc/self/clear_refs); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS of this process since start or the last reset_peak_rss (VmHWM), in bytes."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def matmul_gflops(device: torch.device, n: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    """The machine's own dense float32 (or dtype) matrix-multiply rate, GFLOP/s (median of repeats)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = interleaved({"mm": lambda: torch.matmul(a, b)}, device, warmup=1, repeats=repeats)["mm"]
    return 2 * n**3 / median(times) / 1e9
