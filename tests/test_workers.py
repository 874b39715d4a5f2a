"""Worker processes end with their parent: a SIGKILLed `aunet data prepare` or training leaves no process behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aunet.data import write_phantom_dataset


def children(pid: int) -> set[int]:
    """Every process whose parent is `pid`, from /proc (psutil may not be installed)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its reaper)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_parent_once_it_has(args: list[str], count: int, wait: float = 120.0) -> set[int]:
    """Start `args`; when it has `count` child processes, SIGKILL it; return those children."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    deadline = time.time() + wait
    try:
        while len(children(proc.pid)) < count and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        found = children(proc.pid)
        assert proc.poll() is None and len(found) >= count, "the command ended before its workers started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return found
    finally:
        if proc.poll() is None:
            proc.kill()


def survivors(pids: set[int], within: float = 20.0) -> set[int]:
    """The processes of `pids` still running after `within` seconds (killed then, so no test leaves any)."""
    deadline = time.time() + within
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    left = {p for p in pids if alive(p)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "ph", cases=6, seed=0, size=(64, 48, 32),
                                 progress=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_prepare_leaves_no_worker_and_no_resource_tracker(phantom, tmp_path):
    args = [sys.executable, "-m", "aunet", "data", "prepare", "--profile", "quick", "--data-dir", str(phantom),
            "--cache-dir", str(tmp_path / "cache"), "--workers", "2", "--quiet"]
    spawned = kill_parent_once_it_has(args, 3)  # two workers and multiprocessing's resource tracker
    assert survivors(spawned) == set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_training_leaves_no_batch_worker(phantom, tmp_path):
    args = [sys.executable, "-m", "aunet", "train", "--profile", "quick", "--data-dir", str(phantom),
            "--out-dir", str(tmp_path / "run"), "--epochs", "50", "--num-workers", "2", "--base-filters", "2",
            "--patch-size", "32,32,32", "--spacing", "8", "--iterations-per-epoch", "2", "--device", "cpu"]
    spawned = kill_parent_once_it_has(args, 2)
    assert survivors(spawned, within=3.0) == set()
