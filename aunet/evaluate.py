"""Evaluation of a trained run on its held-out cases: per-case metrics and a mean +- std summary.

`evaluate_run(RUN_DIR)` (CLI: `aunet evaluate RUN_DIR`) loads the run's best checkpoint, predicts every
test case by sliding-window inference and writes the run's evaluation (aunet.run.RunFolder): one row per
case (Dice, precision, recall, S2S and HD95 per class, inference seconds) and the mean and std per column.
Metrics are computed on the preprocessed grid (canonical orientation, cfg.spacing mm isotropic), as
in the paper's 2 mm experiments.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from aunet.config import Config
from aunet.device import pick_device
from aunet.errors import AunetError
from aunet.labels import class_names
from aunet.run import RunFolder
from aunet.text import mean_std


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", data: Any = None,
                 data_dir: str | None = None,
                 progress: bool = True) -> tuple[list[dict], dict[str, tuple[float, float]]]:
    """Predict and score every case of `split`; returns (rows, summary) and writes both into run_dir."""
    run = RunFolder(run_dir)
    run.read_config()  # AunetError naming the folder when it is not a run folder
    with run.writing():  # refused now, not after every case is scored, when another process writes the folder
        return _evaluate(run, split, checkpoint, data, data_dir, progress)


def _evaluate(run: RunFolder, split: str, checkpoint: str, data: Any, data_dir: str | None,
              progress: bool) -> tuple[list[dict], dict[str, tuple[float, float]]]:
    from aunet.data import prepare_dataset
    from aunet.inference import sliding_window_predict
    from aunet.metrics import evaluate_case, summarise

    model, cfg = run.load_model(checkpoint)
    if data_dir:
        cfg = Config.from_dict({**cfg.to_dict(), "data_dir": data_dir})
    data = data if data is not None else prepare_dataset(cfg, progress=progress)
    cases = getattr(data, split, None)
    if cases is None or not len(cases):
        raise AunetError(f"The dataset in {cfg.data_dir} has no {split!r} cases; expected one of train, val, test.")
    device = pick_device(cfg.device)
    model.to(device)
    names = {name: k for k, name in class_names(cfg.num_classes).items()}
    rows = []
    for case_id in tqdm(cases, desc=f"evaluate {split}", disable=not progress):
        volume = data.load(case_id)
        start = time.perf_counter()
        pred = sliding_window_predict(model, volume.image, cfg.inference_patch_size, overlap=cfg.overlap,
                                      num_classes=cfg.num_classes, device=device, progress=False, amp=cfg.amp)
        seconds = time.perf_counter() - start
        rows.append({"case": case_id, **evaluate_case(pred.labels, volume.label, volume.spacing, names),
                     "inference_seconds": seconds})
    summary = summarise(rows)
    run.write_evaluation(split, rows, summary)
    return rows, summary


def format_summary(summary: dict[str, tuple[float, float]]) -> str:
    """One line per metric: its name, mean ± std (aunet.text)."""
    return "\n".join(f"{name:28s} {mean_std(m, s)}" for name, (m, s) in summary.items())
