"""Worker processes that end with their parent: a killed `aunet` leaves no worker behind.

A pool's workers (`aunet data prepare --workers N`, the DataLoader's batch builders, aunet.pool's training
processes) wait for work from their parent; when the parent is killed (SIGKILL: no clean-up runs) they would
wait for ever, each holding its memory. Each worker calls `die_with_parent(parent_pid)` first: on Linux the
kernel sends it SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread checks the
parent's pid every second. multiprocessing's resource tracker then ends by itself: it exits when the last
process holding its pipe (the parent and these workers) has gone.

    ProcessPoolExecutor(n, initializer=die_with_parent, initargs=(os.getpid(),))
    DataLoader(..., worker_init_fn=functools.partial(die_with_worker_parent, os.getpid()))
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """End this process (SIGKILL) as soon as process `parent`, which started it, dies."""
    if not _parent_death_signal():
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="aunet-die-with-parent").start()
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def die_with_worker_parent(parent: int, worker_id: int) -> None:
    """die_with_parent as a DataLoader worker_init_fn (which also receives the worker's number)."""
    die_with_parent(parent)


def _parent_death_signal() -> bool:
    """Ask the Linux kernel for SIGKILL when the parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
