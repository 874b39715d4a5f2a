"""Training: Adam + step decay as in the paper, validation per epoch, checkpoints, attention snapshots.

Everything a run writes goes into its run folder (`aunet.run.RunFolder`: config, device, history, last.pt and
best.pt, attention snapshots), which one process writes at a time: a training holds the folder's lock from
before its first write to its end, and a second one is refused, naming the first. Resuming (`resume=True`)
continues from last.pt; `resume="auto"` does so when the folder holds a run and starts one otherwise. A new
run never mixes with another's files: a folder holding any of them (from any epoch) is refused unless the
run resumes them or `overwrite=True` deletes them first; a run stopped before its first epoch ended (a
config of the same settings, no last.pt) starts again. One resume policy serves the notebooks and the CLI:
a run continues only with the settings it was trained with, except the fields in RESUMABLE_CHANGES
(more epochs, another device, other snapshot epochs, a moved folder, the speed settings); `resume_config`
builds such a Config from the saved one. Training batches are a pure function of (seed, epoch, step) (see
aunet.data.loader), whatever the number of worker processes, so a resumed run, even after a kill
mid-epoch, ends with the same weights as an uninterrupted one on the CPU. Fine-tuning (`init_checkpoint`)
starts a new run from another run's model weights, with a fresh optimiser and schedule.

Validation (aunet.validation): centre crops of cfg.val_patches validation cases every epoch, whole volumes
every cfg.val_every epochs and after the last one. best.pt is the model of the epoch with the highest
whole-volume validation mean Dice so far (the validation the test evaluation repeats), so it is judged only
on those epochs; a run without validation cases keeps best.pt equal to last.pt.

Under torchrun (aunet.distributed) every process runs this same code on its share of each batch; rank 0
alone writes the run folder, and the checkpoints hold the plain model's weights, so any number of
processes can resume them. One optimiser step (aunet.step.TrainingStep) chooses its precision and memory
layout per device: on CUDA mixed precision, cudnn.benchmark, and on request channels_last_3d and
torch.compile; on a CPU with AMX a bfloat16 forward in channels_last_3d order, elsewhere float32 with
aunet's CPU paths (aunet.speedups decides; the device record lists what ran). The CPU's memory reuse
never runs on CUDA.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from aunet import validation
from aunet.config import Config
from aunet.device import describe_device, pick_device, reuse_cpu_memory, seed_everything
from aunet.distributed import Processes
from aunet.errors import AunetError
from aunet.optim import build_schedule
from aunet.run import RunFolder, checkpoint_config, read_checkpoint
from aunet.snapshots import AttentionSnapshotter, snapshot_schedule
from aunet.step import TrainingStep

RESUMABLE_CHANGES = ("epochs", "device", "snapshot_epochs", "out_dir",  # may differ when continuing (a moved folder)
                     "num_workers", "compile", "channels_last")  # speed only: the same batches and model


def check_resumable(saved: Config, cfg: Config, source: str | Path) -> None:
    """AunetError unless `cfg` continues the run of `saved`: same settings but for RESUMABLE_CHANGES."""
    changed = [f"{k} {v!r} -> {getattr(cfg, k)!r}" for k, v in saved.to_dict().items()
               if k not in RESUMABLE_CHANGES and v != getattr(cfg, k)]
    if changed:
        raise AunetError(f"Cannot resume {source}: it was trained with other settings ({'; '.join(changed)}); "
                         f"use the same settings or another out_dir.")
    if saved.lr_schedule == "poly" and cfg.epochs != saved.epochs:  # a step schedule continues; poly would bend
        raise AunetError(f"Cannot resume {source} for {cfg.epochs} epochs: its poly learning-rate schedule falls to "
                         f"0 at epoch {saved.epochs}; resume it for {saved.epochs} epochs or train a new run.")


def resume_config(run_dir: str | Path, **changes: Any) -> Config:
    """The saved Config of the run in run_dir with `changes` (only RESUMABLE_CHANGES may differ)."""
    saved = RunFolder(run_dir).read_config()
    cfg = Config.from_dict({**saved.to_dict(), "out_dir": str(run_dir), **changes})
    check_resumable(saved, cfg, run_dir)
    return cfg


class Trainer:
    """Trains one model on one prepared dataset into one run folder."""

    def __init__(self, cfg: Config, data: Any = None, progress: bool = True) -> None:
        from aunet.data.loader import TrainingBatches

        self.cfg = cfg
        self.processes = Processes.from_environment()  # rank 0 of 1 unless torchrun started this process
        self.device = self.processes.join(pick_device(cfg.device))
        self.progress = progress and self.processes.is_main
        self.run_dir = Path(cfg.out_dir)
        self.run = RunFolder(self.run_dir)
        self.data = data if data is not None else self._prepare()
        if not self.data.train:
            raise AunetError(f"The dataset in {cfg.data_dir} has no training cases after the split; add cases.")
        seed_everything(cfg.seed)  # the same initial weights in every process
        self.training_step = TrainingStep(cfg, self.device, self.processes)  # model, Adam, loss, precision
        # self.model: the plain network (checkpoints, validation, snapshots); self.trained: what the steps run
        self.model, self.trained = self.training_step.model, self.training_step.trained
        self.optimizer, self.scaler = self.training_step.optimizer, self.training_step.scaler
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch size: let cuDNN pick its fastest kernels once
        self.scheduler = build_schedule(cfg, self.optimizer)
        self.iterations = cfg.iterations_per_epoch or math.ceil(len(self.data.train) / cfg.batch_size)
        self.batches = TrainingBatches(self.data, self.data.train, cfg, self.device, self.iterations,
                                       self.processes.rank, self.processes.world)
        self.snapshots = AttentionSnapshotter(self.data, cfg, self.run) if self.processes.is_main else None
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs completed
        self.best = -1.0
        self.data_seconds = 0.0  # of the last epoch: the time the loop waited for its batches

    def _prepare(self) -> Any:
        """The prepared dataset; several processes fill its cache together, each a share of the cases."""
        from aunet.data import prepare_dataset

        if self.processes.distributed:
            prepare_dataset(self.cfg, progress=False, share=(self.processes.rank, self.processes.world))
            self.processes.barrier()
        return prepare_dataset(self.cfg, progress=self.progress)

    # --- one epoch ---------------------------------------------------------------------------
    def train_epoch(self, epoch: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """One epoch of optimiser steps on `batches` (TrainingBatches.stream); returns the mean training loss.

        The loss is the global batch's (the mean over processes); self.data_seconds is the time this loop
        waited for its batches, the part of the epoch a faster pipeline could save.
        """
        self.trained.train()
        losses, self.data_seconds = [], 0.0
        steps = tqdm(range(self.iterations), desc=f"epoch {epoch}", leave=False, disable=not self.progress)
        for step in steps:
            start = time.perf_counter()
            images, labels = next(batches)
            self.data_seconds += time.perf_counter() - start
            loss = self.training_step.loss(images, labels)  # float32, whatever the forward's precision
            losses.append(self.processes.sum(loss.detach()).item() / self.processes.world)  # the global batch's
            if not math.isfinite(losses[-1]):  # every process sees the same loss here and stops with the others
                raise AunetError(f"The loss became {losses[-1]} at epoch {epoch}, step {step}; "
                                 f"lower lr (now {self.cfg.lr}) or check the input intensities.")
            self.training_step.update(loss)  # backward, Adam
            steps.set_postfix(loss=f"{losses[-1]:.4f}")
        self.scheduler.step()
        return float(np.mean(losses))

    def validate(self, volumes: bool = True) -> dict[str, float]:
        """Dice per foreground class: whole volumes (NaN unless `volumes`), then the fixed centre crops."""
        common = dict(model=self.model, data=self.data, cfg=self.cfg, device=self.device, processes=self.processes)
        whole = validation.volume_dice(cases=self.data.val, **common) if volumes \
            else validation.not_measured("val", self.cfg)
        return {**whole, **validation.patch_dice(cases=validation.patch_cases(self.data.val, self.cfg), **common)}

    # --- the run -----------------------------------------------------------------------------
    def fit(self, resume: bool | str = False, overwrite: bool = False) -> list[dict[str, float]]:
        """Train to cfg.epochs and return the history rows, as the run folder's one writer.

        resume: True continues from last.pt; "auto" continues when the folder holds a run, else starts one;
        False starts a run and refuses a folder that holds another run's files, unless `overwrite` (delete them).
        """
        with self.one_writer():
            self.begin(resume, overwrite)
            return self._fit()

    @contextlib.contextmanager
    def one_writer(self) -> Iterator[None]:
        """Process 0 holds the run folder's lock (RunFolder.writing); every process stops when it was refused."""
        refused = None
        with contextlib.ExitStack() as stack:
            if self.processes.is_main:
                try:
                    stack.enter_context(self.run.writing())
                except AunetError as e:
                    refused = e
            if self.processes.distributed and self.processes.sum(torch.tensor([float(refused is not None)])).item():
                refused = refused or AunetError(f"Run folder {self.run_dir} is being written by another process; "
                                                f"process 0 of this run says which.")
            if refused:
                raise refused
            yield

    def begin(self, resume: bool | str, overwrite: bool) -> None:
        """Resume, start afresh or refuse, by what the folder holds (the one policy; see the module docstring)."""
        if resume and overwrite:
            raise AunetError(f"--resume and --overwrite contradict each other for {self.run_dir}; pass one.")
        found = [p.name for p in self.run.run_files()]
        self.processes.barrier()  # every process has looked before process 0 clears anything
        if resume and self.run.has_checkpoint("last"):
            return self.load_checkpoint()
        if found and not overwrite and not (resume and self._stopped_in_first_epoch()):
            raise AunetError(f"Run folder {self.run_dir} already holds a run ({', '.join(found)}); pass --resume "
                             f"to continue it, --overwrite to replace it, or choose another --out-dir.")
        if resume is True and not found:
            raise AunetError(f"Cannot resume: {self.run_dir} holds no run; start the run without --resume.")
        if found and self.processes.is_main:
            self.run.clear()
        self.processes.barrier()  # the others see the folder cleared
        if self.cfg.init_checkpoint:
            self.load_initial_weights(Path(self.cfg.init_checkpoint))

    def _stopped_in_first_epoch(self) -> bool:
        """The folder holds this run's config (same settings) and no last.pt: nothing to resume, start again."""
        try:
            check_resumable(self.run.read_config(), self.cfg, self.run_dir)
        except AunetError:
            return False
        return not self.run.has_checkpoint("last")

    def _fit(self) -> list[dict[str, float]]:
        """The epochs from self.epoch + 1 to cfg.epochs, each one's records written into the run folder."""
        if self.processes.is_main:  # rank 0 alone writes the run folder
            self.run.write_config(self.cfg)
            self.run.write_device({**describe_device(self.device, self.processes.world),
                                   "speedups": self.training_step.describe()})
            if self.epoch == 0:
                self.snapshots.save(self.model, 0)  # alpha at initialisation: uniform
        schedule = snapshot_schedule(self.cfg.epochs, self.cfg.snapshot_epochs)
        epochs = tqdm(range(self.epoch + 1, self.cfg.epochs + 1), desc=f"train {self.cfg.model}",
                      initial=self.epoch, total=self.cfg.epochs, disable=not self.progress)
        batches = self.batches.stream(self.epoch + 1)  # built ahead by the workers, across epochs and validation
        try:
            with reuse_cpu_memory(self.device.type == "cpu"), self.processes.stopped_by_failure():
                for epoch in epochs:
                    row = self.run_epoch(epoch, batches)
                    self.history.append(row)
                    self.epoch = epoch
                    # best.pt: the highest whole-volume validation mean Dice so far (see the module docstring)
                    improved = not self.data.val or row["val_mean_dice"] > self.best  # NaN (no validation): False
                    self.best = row["val_mean_dice"] if self.data.val and improved else self.best
                    if self.processes.is_main:
                        self.save(epoch, improved, epoch in schedule)
                    epochs.set_postfix(loss=f"{row['train_loss']:.3f}", patch_dice=f"{row['patch_mean_dice']:.3f}",
                                       val_dice=f"{row['val_mean_dice']:.3f}")
        finally:
            batches.close()  # stops the worker processes
        return self.history

    def run_epoch(self, epoch: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Train one epoch, validate, and return the epoch's history row."""
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        loss = self.train_epoch(epoch, batches)
        trained = time.perf_counter()
        scores = self.validate(volumes=validation.is_volume_epoch(epoch, self.cfg))
        end = time.perf_counter()
        row = {"epoch": epoch, "train_loss": loss, **scores, "lr": lr, "seconds": end - start,
               "train_seconds": trained - start, "data_seconds": self.data_seconds, "val_seconds": end - trained}
        if self.device.type == "cuda":  # peak memory of the epoch, for docs and benchmarks
            row["gpu_peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            torch.cuda.reset_peak_memory_stats(self.device)
        return row

    def save(self, epoch: int, improved: bool, snapshot: bool) -> None:
        """Write the epoch's records: attention snapshot (when scheduled), last.pt, best.pt (when improved), history."""
        if snapshot:
            self.snapshots.save(self.model, epoch)
        self.run.write_checkpoint("last", self.checkpoint_state())
        if improved:
            self.run.write_checkpoint("best", self.checkpoint_state())
        self.run.write_history(self.history)

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
        state = read_checkpoint(path, self.device, model=self.cfg.model)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:  # same model class, other widths or classes
            raise AunetError(f"init_checkpoint {path} holds weights of another shape than the configured "
                             f"{self.cfg.model} (base_filters, num_classes, gates); use the settings it was "
                             f"trained with.") from None

    def load_checkpoint(self) -> None:
        """Restore the run from its last.pt (resume)."""
        path = self.run.checkpoint_path("last")
        state = read_checkpoint(path, self.device, model=self.cfg.model)
        check_resumable(checkpoint_config(state, path), self.cfg, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])
        torch.set_rng_state(state["torch_rng"].cpu())


def train(cfg: Config, resume: bool | str = False, progress: bool = True, data: Any = None,
          overwrite: bool = False) -> Trainer:
    """Train a model as configured; returns the Trainer (its .history, .model and .run).

    resume: False (a new run), True (continue last.pt) or "auto" (continue when there is a run);
    overwrite: delete another run's files in cfg.out_dir first (else a folder holding them is refused).
    """
    trainer = Trainer(cfg, data=data, progress=progress)
    trainer.fit(resume=resume, overwrite=overwrite)
    return trainer
