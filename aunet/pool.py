"""Independent runs side by side: a pool of processes of one thread each, in dependency order.

On a small CPU, two training processes of one thread each get more work done than one process with two
threads (3D convolutions at batch 2 do not keep two threads busy all the time; measured 1.24x at the
quick size), and the runs of a results table are independent of each other, except that a fine-tune
starts from another run's checkpoint. `run_tasks` starts every task whose prerequisites are done, as
soon as a process is free, and returns what each task returned.

Runs stay reproducible: every task is a pure function of its arguments (the trainer seeds itself from
its Config), and each process uses one thread, however many processes there are.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from tqdm.auto import tqdm

from aunet.errors import AunetError
from aunet.workers import die_with_parent


@dataclass(frozen=True)
class Task:
    """fn(**kwargs, progress=...) once every task in `after` has finished."""

    key: Hashable
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    after: Sequence[Hashable] = field(default_factory=tuple)


def _one_thread(parent: int) -> None:
    """A worker's start: one thread, and it ends with the pool's process (a killed parent leaves none training)."""
    import torch

    die_with_parent(parent)
    torch.set_num_threads(1)


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


def run_tasks(tasks: Sequence[Task], workers: int = 1, progress: bool = True) -> dict[Hashable, Any]:
    """Run the tasks (prerequisites first) in this process (workers=1) or in `workers` one-thread processes."""
    if workers < 1:
        raise AunetError(f"workers={workers} is not valid; expected a positive number of processes.")
    tasks = _ordered(tasks)
    results: dict[Hashable, Any] = {}
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            results[task.key] = task.fn(**task.kwargs, progress=progress)
            if progress:
                print(f"{_label(task.key)}: {results[task.key]}")
        return results
    keys = {t.key for t in tasks}
    waiting, running = list(tasks), {}
    bar = tqdm(total=len(tasks), desc=f"runs ({workers} processes)", unit="run", disable=not progress)
    context = multiprocessing.get_context("spawn")  # no forked copies of a parent's threads or open files
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_one_thread,
                                initargs=(os.getpid(),)) as pool:
        try:
            while waiting or running:
                for task in [t for t in waiting if all(k in results or k not in keys for k in t.after)]:
                    waiting.remove(task)
                    running[pool.submit(task.fn, **task.kwargs, progress=False)] = task
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
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
