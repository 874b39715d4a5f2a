"""Training: Adam + step decay as in the paper, validation Dice per epoch, checkpoints, attention snapshots.

Everything a run writes goes into its run folder (`aunet.run.RunFolder`: config, device, history, last.pt and
best.pt, attention snapshots). Resuming (`resume=True`) continues from last.pt; `resume="auto"` does so
when the folder holds a run and starts one otherwise. One resume policy serves the notebooks and the CLI:
a run continues only with the settings it was trained with, except the fields in RESUMABLE_CHANGES
(more epochs, another device, other snapshot epochs, a moved folder); `resume_config` builds such a
Config from the saved one. Training batches are a pure function of (seed, epoch, step) (see
aunet.data.PatchDataset), so a resumed run, even after a kill mid-epoch, ends with the same weights as
an uninterrupted one on the CPU. Fine-tuning (`init_checkpoint`) starts a new run from another run's model
weights, with a fresh optimiser and schedule.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from aunet.config import Config
from aunet.device import autocast, describe_device, needs_grad_scaler, pick_device, reuse_cpu_memory, seed_everything
from aunet.errors import AunetError
from aunet.labels import class_names
from aunet.run import RunFolder, checkpoint_config, read_checkpoint
from aunet.snapshots import AttentionSnapshotter, snapshot_schedule

RESUMABLE_CHANGES = ("epochs", "device", "snapshot_epochs", "out_dir")  # may differ when continuing (a moved folder)


def check_resumable(saved: Config, cfg: Config, source: str | Path) -> None:
    """AunetError unless `cfg` continues the run of `saved`: same settings but for RESUMABLE_CHANGES."""
    changed = [f"{k} {v!r} -> {getattr(cfg, k)!r}" for k, v in saved.to_dict().items()
               if k not in RESUMABLE_CHANGES and v != getattr(cfg, k)]
    if changed:
        raise AunetError(f"Cannot resume {source}: it was trained with other settings ({'; '.join(changed)}); "
                         f"use the same settings or another out_dir.")


def resume_config(run_dir: str | Path, **changes: Any) -> Config:
    """The saved Config of the run in run_dir with `changes` (only RESUMABLE_CHANGES may differ)."""
    saved = RunFolder(run_dir).read_config()
    cfg = Config.from_dict({**saved.to_dict(), "out_dir": str(run_dir), **changes})
    check_resumable(saved, cfg, run_dir)
    return cfg


class Trainer:
    """Trains one model on one prepared dataset into one run folder."""

    def __init__(self, cfg: Config, data: Any = None, progress: bool = True) -> None:
        from aunet.data import PatchDataset, prepare_dataset
        from aunet.losses import build_loss

        self.cfg, self.progress = cfg, progress
        self.run_dir = Path(cfg.out_dir)
        self.run = RunFolder(self.run_dir)
        self.device = pick_device(cfg.device)
        self.data = data if data is not None else prepare_dataset(cfg, progress=progress)
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
        self.snapshots = AttentionSnapshotter(self.data, cfg, self.run)
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
    def fit(self, resume: bool | str = False) -> list[dict[str, float]]:
        """Train to cfg.epochs and return the history rows.

        resume: True continues from last.pt; "auto" continues when the folder holds a run, else starts one;
        False starts a run and refuses a folder that already holds one.
        """
        if resume == "auto":
            resume = self.run.has_checkpoint("last")
        if resume:
            self.load_checkpoint()
        elif self.run.has_checkpoint("last"):
            raise AunetError(f"Run folder {self.run_dir} already holds a run; pass --resume to continue it "
                             f"or choose another --out-dir.")
        elif self.cfg.init_checkpoint:
            self.load_initial_weights(Path(self.cfg.init_checkpoint))
        self.run.write_config(self.cfg)
        self.run.write_device(describe_device(self.device))
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
                self.run.write_checkpoint("last", self.checkpoint_state())
                if improved:
                    self.run.write_checkpoint("best", self.checkpoint_state())
                self.run.write_history(self.history)
                epochs.set_postfix(loss=f"{loss:.3f}", val_dice=f"{row['val_mean_dice']:.3f}")
        return self.history

    # --- checkpoints -------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """The one checkpoint dict: everything needed to resume, loadable with weights_only=True."""
        return {
            "model": self.model.state_dict(), "model_name": self.cfg.model, "config": self.cfg.to_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "epoch": self.epoch, "best": self.best,
            "history": self.history, "torch_rng": torch.get_rng_state(),
        }

    def load_initial_weights(self, path: Path) -> None:
        """Fine-tuning: take the model weights of another run's checkpoint; optimiser and epochs start afresh."""
        state = read_checkpoint(path, self.device)
        if state.get("model_name") != self.cfg.model:
            raise AunetError(f"init_checkpoint {path} holds a {state.get('model_name')!r} model but "
                             f"model={self.cfg.model!r} is being trained; start from a checkpoint of the same model.")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:  # same model class, other widths or classes
            raise AunetError(f"init_checkpoint {path} holds weights of another shape than the configured "
                             f"{self.cfg.model} (base_filters, num_classes, gates); use the settings it was "
                             f"trained with.") from None

    def load_checkpoint(self) -> None:
        """Restore the run from its last.pt (resume)."""
        path = self.run.checkpoint_path("last")
        if not path.exists():
            raise AunetError(f"Cannot resume: {path} does not exist; start the run without --resume.")
        state = read_checkpoint(path, self.device)
        if state.get("model_name") != self.cfg.model:
            raise AunetError(f"Cannot resume: {path} holds a {state.get('model_name')!r} model but "
                             f"model={self.cfg.model!r} was requested.")
        check_resumable(checkpoint_config(state, path), self.cfg, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])
        torch.set_rng_state(state["torch_rng"].cpu())


def train(cfg: Config, resume: bool | str = False, progress: bool = True, data: Any = None) -> Trainer:
    """Train a model as configured; returns the Trainer (its .history, .model and .run).

    resume: False (a new run), True (continue last.pt) or "auto" (continue when there is a run).
    """
    trainer = Trainer(cfg, data=data, progress=progress)
    trainer.fit(resume=resume)
    return trainer
