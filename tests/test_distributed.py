"""torchrun: two CPU processes (gloo) train what one process trains; resume onto one; a dead process stops the run."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aunet.cli import main
from aunet.run import RunFolder
from aunet.train import train

from conftest import TINY, tiny_config


def train_args(phantom: Path, out_dir: Path, epochs: int) -> list[str]:
    args = ["train", "--profile", "quick", "--epochs", str(epochs), "--data-dir", str(phantom),
            "--out-dir", str(out_dir)]
    for key, value in TINY.items():
        args += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return args


def torchrun(args: list[str], processes: int = 2, **popen) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node N -m aunet ARGS`, one CPU thread per process (2 cores here)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "aunet", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def losses(run: Path) -> list[float]:
    return [row["train_loss"] for row in RunFolder(run).read_history()]


def test_two_processes_match_one_and_resume_on_one(phantom, tmp_path):
    # float32 (amp false): a bfloat16 step (aunet.speedups, CPUs with AMX) rounds a share of the batch
    # otherwise than the whole batch, and this test checks that the processes add up the same sums
    one = tiny_config(phantom, tmp_path / "one", epochs=3, amp=False)
    train(one, progress=False)  # one process, the same global batch of 2

    two = tmp_path / "two"
    proc = torchrun(train_args(phantom, two, epochs=2) + ["--amp", "false"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert out.count("Trained attention_unet for 2 epochs") == 1  # rank 0 reports, once
    assert len(RunFolder(two).read_history()) == 2  # one row per epoch
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in Path(one.out_dir).iterdir())  # no extras
    assert json.loads((two / "device.json").read_text())["processes"] == 2
    state = torch.load(two / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # plain weight names
    first = losses(Path(one.out_dir))
    assert losses(two) == pytest.approx(first[:2], rel=1e-3), (losses(two), first)

    # the 2-process run continues on one process, and still follows the one-process run
    assert main(train_args(phantom, two, epochs=3) + ["--amp", "false", "--resume"]) == 0
    assert len(RunFolder(two).read_history()) == 3
    assert losses(two) == pytest.approx(losses(Path(one.out_dir)), rel=1e-3)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds torchrun's workers through /proc")
def test_killing_one_process_stops_the_other_with_one_line(phantom, tmp_path):
    run = tmp_path / "run"
    proc = torchrun(train_args(phantom, run, epochs=500))
    try:
        deadline = time.time() + 300
        while not (run / "history.csv").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        workers = children(proc.pid)
        rank1 = [p for p in workers if b"RANK=1\0" in Path(f"/proc/{p}/environ").read_bytes()]
        assert len(workers) == 2 and len(rank1) == 1, workers
        os.kill(rank1[0], signal.SIGKILL)
        killed = time.time()
        out, _ = proc.communicate(timeout=60)
        assert time.time() - killed < 60
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    stopped = "aunet train: error: training process 0 of 2 stopped"
    lines = [line for line in out.splitlines() if line.startswith(stopped)]
    assert len(lines) == 1, out[-3000:]
    assert not re.search(r'File ".*/aunet/\w+\.py"', out)  # no traceback through aunet's code (torchrun prints its own)
