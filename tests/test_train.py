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
from aunet.data import write_phantom_dataset
from aunet.evaluate import evaluate_run
from aunet.run import load_model
from aunet.run import RunFolder
from aunet.snapshots import snapshot_schedule
from aunet.train import train

TINY = dict(spacing=8.0, patch_size=(32, 32, 32), base_filters=2, batch_size=2, iterations_per_epoch=2,
            lr=1e-3, val_fraction=0.25, test_fraction=0.25, snapshot_epochs=(1, 2, 3), device="cpu")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "phantom"
    write_phantom_dataset(out, cases=4, seed=0, size=(80, 64, 32), progress=False)
    return out


def tiny_config(phantom: Path, out_dir: Path, **overrides) -> Config:
    return Config.from_profile("quick", **{**TINY, "data_dir": str(phantom), "out_dir": str(out_dir), **overrides})


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
    args = [sys.executable, "-m", "aunet.cli", "train", "--profile", "quick", "--epochs", str(epochs),
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
    assert snapshot_schedule(200) == [3, 6, 10, 60, 150]
    assert snapshot_schedule(20) == [1, 2, 3, 8, 20]
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
