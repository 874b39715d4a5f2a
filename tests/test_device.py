"""aunet.device.reuse_cpu_memory: freed CPU memory is reused inside the block and given back after it."""
from __future__ import annotations

import resource

import psutil
import pytest
import torch

from aunet import device

pytestmark = pytest.mark.usefixtures("speedups_on")  # tests/conftest.py

glibc = pytest.mark.skipif(device._glibc() is None, reason="reuse_cpu_memory needs glibc (Linux)")
SIZES_MIB = (48, 96, 36, 68)  # one "forward pass" of large tensors, each above glibc's largest mmap threshold
PAGES = sum(SIZES_MIB) * 2**20 // 4096  # 63,488 pages of 4 KiB


def faults_per_step(steps: int) -> list[int]:
    """Minor page faults of each step; a step allocates and writes the tensors, then frees them all."""
    out = []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tensors = [torch.ones(n * 2**20 // 4) for n in SIZES_MIB]
        del tensors
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return out


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


@glibc
def test_reuse_skips_page_faults_inside_and_gives_memory_back_after():
    device._glibc().malloc_trim(0)  # no free pages left resident by earlier tests
    outside = faults_per_step(3)
    assert min(outside) > PAGES // 600  # fresh pages every step (even at 2 MiB per fault: > 100)
    with device.reuse_cpu_memory() as in_effect:
        assert in_effect
        inside = faults_per_step(10)
        held = rss_bytes()
    # the heap settles within a few steps (holes coalesce; how fast depends on what the process did
    # before), then steps reuse its pages: the last four together fault less than one step outside
    assert sum(inside[-4:]) < min(outside), (outside, inside)
    assert rss_bytes() < held - 100 * 2**20  # the free memory went back to the kernel at the end


@glibc
def test_blocks_nest_and_the_outermost_restores():
    with device.reuse_cpu_memory():
        with device.reuse_cpu_memory() as inner:
            assert inner and device._reuse_depth == 2
        assert device._reuse_depth == 1
        assert sum(faults_per_step(10)[-4:]) < PAGES // 2  # still reusing after the inner block ended
    assert device._reuse_depth == 0


def test_disabled_is_a_no_op():
    with device.reuse_cpu_memory(enabled=False) as in_effect:
        assert in_effect is False
        assert device._reuse_depth == 0


def test_off_glibc_it_is_not_in_effect(monkeypatch):
    monkeypatch.setattr(device.sys, "platform", "darwin")
    assert device._glibc() is None
    with device.reuse_cpu_memory() as in_effect:
        assert in_effect is False
