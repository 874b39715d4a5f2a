"""Training: Adam + step decay as in the paper, validation Dice per epoch, checkpoints, attention snapshots.

A run folder holds everything about one run:

    config.json          the Config it ran with
    history.csv          one row per epoch: loss, validation Dice per class, learning rate, seconds
    last.pt, best.pt     checkpoints (atomic; torch.load(..., weights_only=True) reads them)
    attention/epoch_XXX.npz   every gated level's alpha on fixed validation slices

Resuming (`resume=True`, CLI `--resume`) continues from last.pt. Training batches are a pure function of
(seed, epoch, step) (see aunet.data.PatchDataset), so a resumed run, even after a kill mid-epoch, ends
with the same weights as an uninterrupted one on the CPU. Fine-tuning (`init_checkpoint`) starts a new run from
another run's model weights, with a fresh optimiser and schedule.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from aunet.config import Config
from aunet.device import autocast, needs_grad_scaler, pick_device, reuse_cpu_memory, seed_everything
from aunet.errors import AunetError
from aunet.io import atomic_write, atomic_write_csv
from aunet.snapshots import AttentionSnapshotter, snapshot_schedule

RESUMABLE_CHANGES = ("epochs", "device", "snapshot_epochs", "out_dir")  # may differ when continuing (a moved folder)
CLASS_NAMES = {1: "spleen", 2: "pancreas", 3: "kidney"}  # CT-150 labels of the 4-class model


def class_names(num_classes: int) -> dict[int, str]:
    """Foreground label -> name (CT-150 names where they apply, else 'class<k>')."""
    return {k: CLASS_NAMES.get(k, f"class{k}") if num_classes == 4 else f"class{k}" for k in range(1, num_classes)}


class Trainer:
    """Trains one model on one prepared dataset into one run folder."""

    def __init__(self, cfg: Config, data: Any = None, progress: bool = True) -> None:
        from aunet.data import PatchDataset, prepare_dataset
        from aunet.losses import build_loss

        self.cfg, self.progress = cfg, progress
        self.run_dir = Path(cfg.out_dir)
        self.device = pick_device(cfg.device)
        self.data = data if data is not None else prepare_dataset(cfg)
        if not self.data.train:
            raise AunetError(f"The dataset in {cfg.data_dir} has no training cases after the split; add cases.")
        seed_everything(cfg.seed)
        self.model = cfg.build_model().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(self.device, cfg.amp))
        self.loss_fn = build_loss(cfg.loss)
        self.patches = PatchDataset(self.data, self.data.train, cfg, seed=cfg.seed)
        self.iterations = cfg.iterations_per_epoch or math.ceil(len(self.data.train) / cfg.batch_size)
        self.snapshots = AttentionSnapshotter(self.data, cfg, self.run_dir / "attention")
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs completed
        self.best = -1.0

    # --- one epoch ---------------------------------------------------------------------------
    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of (epoch, step): images (B, 1, X, Y, Z), labels (B, X, Y, Z)."""
        first = ((epoch - 1) * self.iterations + step) * self.cfg.batch_size
        items = [self.patches[first + k] for k in range(self.cfg.batch_size)]
        images, labels = (torch.stack(t) for t in zip(*items))
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def train_epoch(self, epoch: int) -> float:
        """One epoch of optimiser steps; returns the mean training loss."""
        self.model.train()
        losses = []
        steps = tqdm(range(self.iterations), desc=f"epoch {epoch}", leave=False, disable=not self.progress)
        for step in steps:
            images, labels = self.batch(epoch, step)
            with autocast(self.device, self.cfg.amp):
                logits = self.model(images)
            loss = self.loss_fn(logits.float(), labels)
            if not torch.isfinite(loss):
                raise AunetError(f"The loss became {loss.item()} at epoch {epoch}, step {step}; "
                                 f"lower lr (now {self.cfg.lr}) or check the input intensities.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(loss.item())
            steps.set_postfix(loss=f"{losses[-1]:.4f}")
        self.scheduler.step()
        return float(np.mean(losses))

    def validate(self) -> dict[str, float]:
        """Dice per foreground class on the whole validation volumes (sliding window)."""
        from aunet.inference import sliding_window_predict
        from aunet.metrics import dice

        names = class_names(self.cfg.num_classes)
        scores: dict[str, list[float]] = {f"val_{n}_dice": [] for n in names.values()}
        for case_id in self.data.val:
            volume = self.data.load(case_id)
            pred = sliding_window_predict(self.model, volume.image, self.cfg.inference_patch_size, overlap=self.cfg.overlap,
                                          num_classes=self.cfg.num_classes, device=self.device, progress=False,
                                          amp=self.cfg.amp)
            for k, n in names.items():
                scores[f"val_{n}_dice"].append(dice(pred.labels == k, volume.label == k))
        out = {key: float(np.nanmean(v)) if v else float("nan") for key, v in scores.items()}
        out["val_mean_dice"] = float(np.nanmean(list(out.values()))) if self.data.val else float("nan")
        return out

    # --- the run -----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        """Train to cfg.epochs (continuing from last.pt when resume) and return the history rows."""
        if resume:
            self.load_checkpoint(self.run_dir / "last.pt")
        elif (self.run_dir / "last.pt").exists():
            raise AunetError(f"Run folder {self.run_dir} already holds a run; pass --resume to continue it "
                             f"or choose another --out-dir.")
        elif self.cfg.init_checkpoint:
            self.load_initial_weights(Path(self.cfg.init_checkpoint))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.run_dir / "config.json")
        schedule = snapshot_schedule(self.cfg.epochs, self.cfg.snapshot_epochs)
        if self.epoch == 0:
            self.snapshots.save(self.model, 0)  # alpha at initialisation: uniform
        epochs = tqdm(range(self.epoch + 1, self.cfg.epochs + 1), desc=f"train {self.cfg.model}",
                      initial=self.epoch, total=self.cfg.epochs, disable=not self.progress)
        with reuse_cpu_memory(self.device.type == "cpu"):  # faster CPU steps (see its docstring)
            for epoch in epochs:
                start = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                loss = self.train_epoch(epoch)
                row = {"epoch": epoch, "train_loss": loss, **self.validate(), "lr": lr,
                       "seconds": time.perf_counter() - start}
                if self.device.type == "cuda":  # peak memory of the epoch, for docs and benchmarks
                    row["gpu_peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                    torch.cuda.reset_peak_memory_stats(self.device)
                self.history.append(row)
                self.epoch = epoch
                if epoch in schedule:
                    self.snapshots.save(self.model, epoch)
                improved = row["val_mean_dice"] > self.best or not self.data.val
                self.best = max(self.best, row["val_mean_dice"]) if self.data.val else self.best
                self.save_checkpoint(self.run_dir / "last.pt")
                if improved:
                    self.save_checkpoint(self.run_dir / "best.pt")
                self.write_history()
                epochs.set_postfix(loss=f"{loss:.3f}", val_dice=f"{row['val_mean_dice']:.3f}")
        return self.history

    def write_history(self) -> None:
        """Rewrite history.csv from the in-memory rows (atomic, so it always matches last.pt)."""
        if self.history:
            atomic_write_csv(self.run_dir / "history.csv", self.history)

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        """Everything needed to resume, in a file that loads with weights_only=True."""
        state = {
            "model": self.model.state_dict(), "model_name": self.cfg.model, "config": self.cfg.to_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "epoch": self.epoch, "best": self.best,
            "history": self.history, "torch_rng": torch.get_rng_state(),
        }
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def load_initial_weights(self, path: Path) -> None:
        """Fine-tuning: take the model weights of another run's checkpoint; optimiser and epochs start afresh."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except FileNotFoundError:
            raise AunetError(f"init_checkpoint {path} does not exist; expected a .pt file written by "
                             f"`aunet train`.") from None
        except Exception as e:  # torch raises many types for a truncated or foreign file
            raise AunetError(f"init_checkpoint {path} is not a readable aunet checkpoint "
                             f"({type(e).__name__}).") from None
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
            raise AunetError(f"init_checkpoint {path} is not an aunet checkpoint; expected a dict with "
                             f"'model' weights.")
        if state.get("model_name") != self.cfg.model:
            raise AunetError(f"init_checkpoint {path} holds a {state.get('model_name')!r} model but "
                             f"model={self.cfg.model!r} is being trained; start from a checkpoint of the same model.")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:  # same model class, other widths or classes
            raise AunetError(f"init_checkpoint {path} holds weights of another shape than the configured "
                             f"{self.cfg.model} (base_filters, num_classes, gates); use the settings it was "
                             f"trained with.") from None

    def load_checkpoint(self, path: Path) -> None:
        """Restore a run saved by save_checkpoint (for --resume)."""
        if not path.exists():
            raise AunetError(f"Cannot resume: {path} does not exist; start the run without --resume.")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise AunetError(f"Cannot resume: {path} is not a readable aunet checkpoint ({type(e).__name__}).") from None
        if state.get("model_name") != self.cfg.model:
            raise AunetError(f"Cannot resume: {path} holds a {state.get('model_name')!r} model but "
                             f"model={self.cfg.model!r} was requested.")
        changed = [f"{k} {v!r} -> {getattr(self.cfg, k)!r}" for k, v in Config.from_dict(state["config"]).to_dict().items()
                   if k not in RESUMABLE_CHANGES and v != getattr(self.cfg, k)]
        if changed:
            raise AunetError(f"Cannot resume {path}: it was trained with other settings ({'; '.join(changed)}); "
                             f"use the same settings or another out_dir.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])
        torch.set_rng_state(state["torch_rng"].cpu())


def train(cfg: Config, resume: bool = False, progress: bool = True, data: Any = None) -> Trainer:
    """Train a model as configured; returns the Trainer (its .history, .model and .run_dir)."""
    trainer = Trainer(cfg, data=data, progress=progress)
    trainer.fit(resume=resume)
    return trainer


def register(subparsers: argparse._SubParsersAction) -> None:
    """`aunet train`: train U-Net or Attention U-Net on a Decathlon/nnU-Net folder."""
    from aunet.cli import add_config_arguments

    p = subparsers.add_parser("train", help="train a model", description=register.__doc__)
    add_config_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir from last.pt")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from aunet.cli import config_from_args

    cfg = config_from_args(args)
    if args.resume and (Path(cfg.out_dir) / "config.json").exists():
        saved = Config.load(Path(cfg.out_dir) / "config.json")
        cfg = Config.from_dict({**saved.to_dict(), "epochs": cfg.epochs if args.cfg_epochs else saved.epochs})
    trainer = train(cfg, resume=args.resume)
    last = trainer.history[-1] if trainer.history else {}
    print(f"Trained {cfg.model} for {trainer.epoch} epochs into {trainer.run_dir}; "
          f"last validation mean Dice {last.get('val_mean_dice', float('nan')):.3f}.")
    return 0
