"""Independent runs side by side: a pool of processes of one thread each, in dependency order.

On a small CPU, two training processes of one thread each get more work done than one process with two
threads (3D convolutions at batch 2 do not keep two threads busy all the time; measured 1.24x at the
quick size), and the runs of a results table are independent of each other, except that a fine-tune
starts from another run's checkpoint. `run_tasks` starts every task whose prerequisites are done, as
soon as a process is free, and returns what each task returned.

Runs stay reproducible: every task is a pure function of its arguments (the trainer seeds itself from
its Config), and every task runs on one thread (`threads`), however many processes there are, in the pool
or here (workers=1): float sums over threads come out in another order with another thread count, so
the same run trained on one thread and on two does not end with the same weights. `threads=2` exists to
test that the conclusions do not hinge on such roundings (tests/test_experiments.py).

Progress: the processes train quietly; every few seconds the parent reads the history of each running task's
run folder (`Task.run_dir`) and prints one line per new epoch (`epoch_line`), then one line per finished task:

    ct150_120_30/unet/1: epoch 7/20, loss 0.612, val Dice 0.42 (9 s)
    ct150_120_30/unet/1: trained
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import math
import multiprocessing
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from tqdm.auto import tqdm

from aunet.errors import AunetError
from aunet.run import RunFolder
from aunet.workers import die_with_parent

POLL_SECONDS = 2.0  # how often the parent reads the running tasks' run histories
EPOCH_LINE = re.compile(r"^\S+: epoch \d+/\d+, ")  # what an epoch_line starts with (aunet.reproduce echoes these)


@dataclass(frozen=True)
class Task:
    """fn(**kwargs, progress=...) once every task in `after` has finished; its epochs are read from run_dir."""

    key: Hashable
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    after: Sequence[Hashable] = field(default_factory=tuple)
    run_dir: str = ""  # the run folder the task trains ("" = none): the pool reports its new epochs


def epoch_line(label: str, row: dict[str, float], epochs: int | str) -> str:
    """One history row as a line: label, epoch of epochs, training loss, validation Dice (volumes, else patches)."""
    val = row.get("val_mean_dice", math.nan)
    dice = f"val Dice {val:.2f}" if math.isfinite(val) else f"patch Dice {row.get('patch_mean_dice', math.nan):.2f}"
    return (f"{label}: epoch {int(row['epoch'])}/{epochs}, loss {row.get('train_loss', math.nan):.3f}, {dice} "
            f"({row.get('seconds', math.nan):.0f} s)")


class _Epochs:
    """The epochs of one task's run folder not reported yet."""

    def __init__(self, task: Task) -> None:
        self.label, self.run = _label(task.key), RunFolder(task.run_dir) if task.run_dir else None
        self.seen = len(self._rows())  # rows from before this task (a run it resumes) are not news

    def _rows(self) -> list[dict[str, float]]:
        try:
            return self.run.read_history() if self.run else []
        except (OSError, ValueError, csv.Error):  # unreadable just now: try again at the next poll
            return []

    def new_lines(self) -> list[str]:
        """A line per epoch written since the last call (none when the folder cannot be read just now)."""
        rows = self._rows()
        if len(rows) < self.seen:  # the folder was cleared and the run started again
            self.seen = 0
        if len(rows) == self.seen:
            return []
        try:
            epochs: int | str = self.run.read_config().epochs
        except (OSError, AunetError):
            epochs = "?"
        lines = [epoch_line(self.label, row, epochs) for row in rows[self.seen:] if "epoch" in row]
        self.seen = len(rows)
        return lines


def _worker_start(parent: int, threads: int) -> None:
    """A worker's start: `threads` threads, and it ends with the pool's process (a killed parent leaves none)."""
    import torch

    die_with_parent(parent)
    torch.set_num_threads(threads)


def _label(key: Hashable) -> str:
    return "/".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _ordered(tasks: Sequence[Task]) -> list[Task]:
    """Tasks with every prerequisite (among these tasks) before the tasks that need it."""
    by_key, done, out = {t.key: t for t in tasks}, set(), []

    def visit(task: Task, path: tuple) -> None:
        if task.key in done:
            return
        if task.key in path:
            raise AunetError(f"Tasks {', '.join(_label(k) for k in path)} wait for each other in a cycle.")
        for key in task.after:
            if key in by_key:
                visit(by_key[key], path + (task.key,))
        done.add(task.key)
        out.append(task)

    for task in tasks:
        visit(task, ())
    return out


def run_tasks(tasks: Sequence[Task], workers: int = 1, progress: bool = True, threads: int = 1) -> dict[Hashable, Any]:
    """Run the tasks (prerequisites first) in this process (workers=1) or in `workers` processes, on `threads` each."""
    import torch

    if workers < 1 or threads < 1:
        raise AunetError(f"workers={workers}, threads={threads} is not valid; expected positive numbers.")
    tasks = _ordered(tasks)
    results: dict[Hashable, Any] = {}
    if workers == 1 or len(tasks) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)  # as a pool process would: the same run, the same weights
        try:
            for task in tasks:
                results[task.key] = task.fn(**task.kwargs, progress=progress)
                if progress:
                    print(f"{_label(task.key)}: {results[task.key]}")
        finally:
            torch.set_num_threads(before)
        return results
    keys = {t.key for t in tasks}
    waiting, running, epochs = list(tasks), {}, {}
    bar = tqdm(total=len(tasks), desc=f"runs ({workers} processes)", unit="run", disable=not progress)
    context = multiprocessing.get_context("spawn")  # no forked copies of a parent's threads or open files
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start,
                                initargs=(os.getpid(), threads)) as pool:
        try:
            while waiting or running:
                for task in [t for t in waiting if all(k in results or k not in keys for k in t.after)]:
                    waiting.remove(task)
                    if progress:
                        epochs[task.key] = _Epochs(task)
                    running[pool.submit(task.fn, **task.kwargs, progress=False)] = task
                finished, _ = cf.wait(running, timeout=POLL_SECONDS if progress else None,
                                      return_when=cf.FIRST_COMPLETED)
                for task in running.values() if progress else ():  # finished ones too: last epochs, then result
                    for line in epochs[task.key].new_lines():
                        tqdm.write(line)
                for future in finished:
                    task = running.pop(future)
                    try:
                        results[task.key] = future.result()  # a task's error stops the pool and reaches the caller
                    except cf.process.BrokenProcessPool:
                        busy = ", ".join(_label(t.key) for t in [task, *running.values()])
                        raise AunetError(f"A training process died (killed, or out of memory) while running {busy}; "
                                         f"run the same call again to continue: finished runs are kept and "
                                         f"interrupted ones resume.") from None
                    bar.update()
                    if progress:
                        tqdm.write(f"{_label(task.key)}: {results[task.key]}")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
    return {t.key: results[t.key] for t in tasks}
