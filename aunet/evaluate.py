"""Evaluation of a trained run on its held-out cases: per-case metrics and a mean +- std summary.

`aunet evaluate RUN_DIR` loads RUN_DIR/best.pt, predicts every test case by sliding-window inference
and writes RUN_DIR/evaluation_<split>.csv (one row per case: Dice, precision, recall, S2S and HD95 per
class, inference seconds) and RUN_DIR/evaluation_<split>_summary.json (mean and std per column).
Metrics are computed on the preprocessed grid (canonical orientation, cfg.spacing mm isotropic), as
in the paper's 2 mm experiments.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from aunet.config import Config
from aunet.device import pick_device
from aunet.errors import AunetError
from aunet.io import atomic_write_csv, atomic_write_text
from aunet.train import class_names


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", data: Any = None,
                 data_dir: str | None = None, progress: bool = True) -> tuple[list[dict], dict[str, tuple[float, float]]]:
    """Predict and score every case of `split`; returns (rows, summary) and writes both into run_dir."""
    from aunet.data import prepare_dataset
    from aunet.inference import load_model, sliding_window_predict
    from aunet.metrics import evaluate_case, summarise

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise AunetError(f"{run_dir} is not an aunet run folder (no config.json); pass the --out-dir of a training run.")
    model, cfg = load_model(run_dir / f"{checkpoint}.pt")
    if data_dir:
        cfg = Config.from_dict({**cfg.to_dict(), "data_dir": data_dir})
    data = data if data is not None else prepare_dataset(cfg)
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
    atomic_write_csv(run_dir / f"evaluation_{split}.csv", rows)
    atomic_write_text(run_dir / f"evaluation_{split}_summary.json",
                      json.dumps({k: {"mean": m, "std": s} for k, (m, s) in summary.items()}, indent=2) + "\n")
    return rows, summary


def format_summary(summary: dict[str, tuple[float, float]]) -> str:
    """One line per metric: name mean +- std."""
    return "\n".join(f"{name:28s} {m:.3f} ± {s:.3f}" for name, (m, s) in summary.items())


def register(subparsers: argparse._SubParsersAction) -> None:
    """`aunet evaluate RUN_DIR`: per-case metrics CSV and mean +- std summary on held-out cases."""
    p = subparsers.add_parser("evaluate", help="evaluate a trained run", description=register.__doc__)
    p.add_argument("run_dir", help="a run folder written by `aunet train`")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--data-dir", default=None, help="evaluate on another dataset folder (same labels)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    rows, summary = evaluate_run(args.run_dir, args.split, args.checkpoint, data_dir=args.data_dir)
    print(f"{len(rows)} {args.split} cases of {args.run_dir} (per-case rows in evaluation_{args.split}.csv):")
    print(format_summary(summary))
    return 0
