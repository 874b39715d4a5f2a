"""The pool of one-thread processes: prerequisites first, results by key, one sentence when a process dies."""
import os

import pytest

from aunet.errors import AunetError
from aunet.pool import Task, run_tasks


def _threads(x: int, progress: bool) -> tuple[int, int]:
    import torch

    return x, torch.get_num_threads()


def _die(progress: bool) -> None:
    os._exit(3)  # as if killed


def test_order_results_and_one_thread_each():
    tasks = [Task("b", _threads, {"x": 2}, after=["a"]), Task("a", _threads, {"x": 1}), Task("c", _threads, {"x": 3})]
    here = run_tasks(tasks, workers=1, progress=False)
    assert list(here) == ["a", "b", "c"] and here["b"][0] == 2
    pooled = run_tasks(tasks, workers=2, progress=False)
    assert list(pooled) == ["a", "b", "c"] and {v[1] for v in pooled.values()} == {1}
    with pytest.raises(AunetError, match="cycle"):
        run_tasks([Task("a", _threads, {"x": 1}, after=["b"]), Task("b", _threads, {"x": 1}, after=["a"])])
    with pytest.raises(AunetError, match="workers=0"):
        run_tasks(tasks, workers=0)


def test_a_dead_process_is_one_sentence():
    with pytest.raises(AunetError, match="A training process died .* while running .*dies.*; run the same call again"):
        run_tasks([Task("dies", _die, {}), Task("fine", _threads, {"x": 1})], workers=2, progress=False)
