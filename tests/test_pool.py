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


def _two_epochs(run_dir: str, go: str, progress: bool) -> str:
    """Train-like: config.json, epoch 1's history row, wait for the parent to report it, then epoch 2."""
    import math
    import time
    from pathlib import Path

    from aunet.config import Config
    from aunet.run import RunFolder

    run = RunFolder(run_dir)
    rows = run.read_history()  # a resumed run's rows come first
    first = len(rows) + 1
    run.write_config(Config(epochs=first + 1, out_dir=run_dir))
    for epoch in (first, first + 1):
        rows.append({"epoch": epoch, "train_loss": 0.5 / epoch, "val_mean_dice": math.nan if epoch % 2 else 0.4,
                     "patch_mean_dice": 0.3, "seconds": 1.0})
        run.write_history(rows)
        deadline = time.monotonic() + 60
        while epoch == first and not Path(go).exists():  # is the first new epoch reported while the task runs?
            if time.monotonic() > deadline:
                raise RuntimeError("the pool did not report the first epoch while the task ran")
            time.sleep(0.02)
    return "trained"


def test_epochs_reported_while_the_runs_go(tmp_path, monkeypatch):
    import aunet.pool as pool
    from aunet.run import RunFolder

    old = tmp_path / "resumed"
    RunFolder(old).write_history([{"epoch": 1, "train_loss": 0.9, "val_mean_dice": 0.1, "seconds": 1.0}])
    lines: list[str] = []

    def write(line: str, *args, **kwargs) -> None:
        lines.append(line)
        for name in ("new", "resumed"):
            if line.startswith(f"{name}: epoch") and len([x for x in lines if x.startswith(f"{name}: ")]) == 1:
                (tmp_path / f"go_{name}").touch()  # lets the task go on to its next epoch

    monkeypatch.setattr(pool, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(pool.tqdm, "write", write)
    tasks = [Task(name, _two_epochs, {"run_dir": str(tmp_path / name), "go": str(tmp_path / f"go_{name}")},
                  run_dir=str(tmp_path / name)) for name in ("new", "resumed")]
    assert run_tasks(tasks, workers=2, progress=True) == {"new": "trained", "resumed": "trained"}
    assert [x for x in lines if x.startswith("new: ")] == [
        "new: epoch 1/2, loss 0.500, patch Dice 0.30 (1 s)", "new: epoch 2/2, loss 0.250, val Dice 0.40 (1 s)",
        "new: trained"]
    assert [x for x in lines if x.startswith("resumed: ")] == [  # epoch 1 was there before: not reported again
        "resumed: epoch 2/3, loss 0.250, val Dice 0.40 (1 s)", "resumed: epoch 3/3, loss 0.167, patch Dice 0.30 (1 s)",
        "resumed: trained"]
    assert all(pool.EPOCH_LINE.match(x) for x in lines if ": epoch " in x)
