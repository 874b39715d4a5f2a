"""Training: a run folder with config, history, checkpoints and snapshots; resume == uninterrupted."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from aunet.cli import main
from aunet.config import Config
from aunet.errors import AunetError
from aunet.evaluate import evaluate_run
from aunet.run import RunFolder, load_model
from aunet.snapshots import snapshot_schedule
from aunet.train import train

from conftest import TINY, tiny_config


def test_run_folder_and_evaluation(phantom, tmp_path):
    cfg = tiny_config(phantom, tmp_path / "run", epochs=3)
    trainer = train(cfg, progress=False)
    run = Path(cfg.out_dir)
    assert {"config.json", "history.csv", "last.pt", "best.pt"} <= {p.name for p in run.iterdir()}
    assert Config.load(run / "config.json") == cfg
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("epoch,train_loss,val_spleen_dice,val_pancreas_dice")
    state = torch.load(run / "last.pt", weights_only=True)  # loads without unpickling code
    assert state["epoch"] == 3 and state["model_name"] == "attention_unet"
    snaps = RunFolder(run).read_snapshots()
    assert sorted(snaps) == [0, 1, 2, 3]
    assert set(snaps[0]) >= {"image", "label", "level2", "level3", "level4"}
    assert np.all(snaps[0]["level2"] == np.float16(0.5))  # uniform at initialisation
    assert not np.all(snaps[3]["level2"] == snaps[0]["level2"])  # and it moved
    device = json.loads((run / "device.json").read_text())
    assert device["speedups"] == trainer.training_step.describe()  # which speed-ups ran (aunet.speedups)
    model, loaded_cfg = load_model(run / "best.pt")
    assert loaded_cfg == cfg and sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in trainer.model.parameters())
    case_rows, summary = evaluate_run(run, progress=False)
    assert len(case_rows) == 1 and 0.0 <= summary["pancreas_dice"][0] <= 1.0
    assert (run / "evaluation_test.csv").exists() and (run / "evaluation_test_summary.json").exists()


def final_weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_resume_after_kill_matches_uninterrupted_run(phantom, tmp_path):
    epochs = 4
    reference = tiny_config(phantom, tmp_path / "straight", epochs=epochs)
    train(reference, progress=False)

    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "aunet", "train", "--profile", "quick", "--epochs", str(epochs),
            "--data-dir", str(phantom), "--out-dir", str(killed)]
    for key, value in TINY.items():
        value = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        args += [f"--{key.replace('_', '-')}", value]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "history.csv").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.05)  # somewhere inside the next epochs
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = torch.load(killed / "last.pt", weights_only=True)["epoch"]
    assert done < epochs, "the run finished before it could be killed; the test proved nothing"
    assert main(args[3:] + ["--resume"]) == 0
    resumed, straight = final_weights(killed), final_weights(Path(reference.out_dir))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    assert len((killed / "history.csv").read_text().splitlines()) == 1 + epochs


def test_existing_run_needs_resume(phantom, tmp_path):
    cfg = tiny_config(phantom, tmp_path / "run", epochs=1, model="unet")
    train(cfg, progress=False)
    assert main(["train", "--profile", "quick", "--data-dir", str(phantom), "--out-dir", cfg.out_dir,
                 "--epochs", "1"]) == 2
    # a U-Net checkpoint cannot be resumed as an Attention U-Net
    with pytest.raises(Exception, match="holds a 'unet' model"):
        train(tiny_config(phantom, Path(cfg.out_dir), epochs=2), resume=True, progress=False)


def test_missing_dataset_is_one_line(tmp_path, capsys):
    assert main(["train", "--profile", "quick", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and err.count("\n") == 0


def test_snapshot_schedule_scales_to_run_length():
    paper = Config().snapshot_epochs  # the epochs of the paper's figure
    assert snapshot_schedule(200, paper) == [3, 6, 10, 60, 150]
    assert snapshot_schedule(20, paper) == [1, 2, 3, 8, 20]
    assert snapshot_schedule(20, (1, 2, 4, 8, 16)) == [1, 2, 4, 8, 16]


def test_patch_validation_every_epoch_whole_volumes_every_val_every(phantom, tmp_path):
    cfg = tiny_config(phantom, tmp_path / "run", epochs=3, val_every=2, snapshot_epochs=(3,))
    trainer = train(cfg, progress=False)
    rows = RunFolder(cfg.out_dir).read_history()
    assert [np.isnan(r["val_mean_dice"]) for r in rows] == [True, False, False]  # epochs 2 and 3 (the last)
    assert all(0 <= r["patch_mean_dice"] <= 1 and 0 <= r["patch_pancreas_dice"] <= 1 for r in rows)
    assert all(r["seconds"] >= r["train_seconds"] >= r["data_seconds"] >= 0 and r["val_seconds"] >= 0 for r in rows)
    # best.pt: the epoch with the highest whole-volume validation mean Dice (ties: the first)
    best = torch.load(Path(cfg.out_dir) / "best.pt", weights_only=True)
    judged = [r for r in rows if not np.isnan(r["val_mean_dice"])]
    assert best["epoch"] == max(judged, key=lambda r: (r["val_mean_dice"], -r["epoch"]))["epoch"]
    assert trainer.best == max(r["val_mean_dice"] for r in judged)


def cli_args(phantom: Path, out_dir: Path, **overrides) -> list[str]:
    """`aunet train` options for the tiny run of TINY, with `overrides` (Config fields)."""
    args = ["train", "--profile", "quick", "--data-dir", str(phantom), "--out-dir", str(out_dir)]
    for key, value in {**TINY, **overrides}.items():
        value = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        args += [f"--{key.replace('_', '-')}", value]
    return args


def test_two_trainings_into_one_folder_one_is_refused(phantom, tmp_path):
    run = tmp_path / "run"
    procs = {model: subprocess.Popen([sys.executable, "-m", "aunet", *cli_args(phantom, run, model=model, epochs=3)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for model in ("unet", "attention_unet")}
    results = {model: (p.wait(timeout=300), p.stderr.read().strip()) for model, p in procs.items()}
    refused = [model for model, (code, _) in results.items() if code == 2]
    assert sorted(code for code, _ in results.values()) == [0, 2], results
    stderr = results[refused[0]][1]
    message = stderr.splitlines()[-1]  # after the progress bars: one line
    assert message.startswith("aunet train: error:") and str(run) in message and "Traceback" not in stderr
    assert "being written by process" in message or "already holds a run" in message
    # the folder is one run's: config, checkpoints and history agree
    winner = Config.load(run / "config.json").model
    assert winner != refused[0]
    for name in ("last", "best"):
        assert torch.load(run / f"{name}.pt", weights_only=True)["model_name"] == winner
    assert len(RunFolder(run).read_history()) == 3
    load_model(run / "best.pt")  # weights, config and model name agree


def test_a_held_folder_is_refused_naming_the_holder_and_freed_by_its_death(phantom, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from aunet.run import RunFolder\n"
                               "with RunFolder(sys.argv[1]).writing():\n    print('held', flush=True); time.sleep(600)",
                               str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AunetError, match=f"Run folder {run} is being written by process {holder.pid};"):
            train(tiny_config(phantom, run, epochs=1), progress=False)
        assert RunFolder(run).run_files() == []  # nothing was written
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, and the kernel drops the lock with the process
        holder.wait()
    train(tiny_config(phantom, run, epochs=1), progress=False)
    assert RunFolder(run).epochs_done() == 1


def test_a_new_run_refuses_another_runs_files_from_any_epoch(phantom, tmp_path, capsys):
    run = tmp_path / "run"
    RunFolder(run).write_config(tiny_config(phantom, run, epochs=1, model="unet"))  # a run killed in epoch 1
    cfg = tiny_config(phantom, run, epochs=1)
    for resume in (False, "auto"):
        with pytest.raises(AunetError, match=r"already holds a run \(config.json\); pass --resume"):
            train(cfg, resume=resume, progress=False)
    assert main(cli_args(phantom, run, epochs=1)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(cli_args(phantom, run, epochs=1) + ["--overwrite"]) == 0
    assert RunFolder(run).read_config().model == "attention_unet"
    # the same run stopped before its first epoch ended starts again when resumed
    (run / "last.pt").unlink()
    assert train(cfg, resume="auto", progress=False).epoch == 1
