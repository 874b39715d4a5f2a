"""Training batches built off the training loop: worker processes cut the crops, the device resamples them.

The batches of a run form one stream. The batch of (epoch, step) holds training patches
first .. first + B - 1, with first = ((epoch - 1) * iterations + step) * B and B the global batch size
(cfg.batch_size); patch i is a pure function of (seed, i) (aunet.data.patches.draw_patch). Under torchrun,
process `rank` of `world` takes its share, the B / world patches from first + rank * B / world, so the
processes together train on exactly the batch one process would. Nothing depends on the number of workers:
which worker builds a patch changes nothing in it, and the DataLoader hands batches over in order.

Where the work happens (aunet.data.augment):
    worker processes (or the loop itself, num_workers=0)   draw each patch and cut its crop from the cached volume
    training on CUDA                                        pinned memory, an asynchronous copy, `warp` on the GPU
    training on the CPU                                     `warp` in the workers too: off the loop's thread
    a background thread                                     frees the batches the loop is done with (shared memory)

    batches = TrainingBatches(data, data.train, cfg, device, iterations)
    for images, labels in batches.stream(first_epoch=1):     # (B, 1, X, Y, Z) float32, (B, X, Y, Z) int64
        ...
"""
from __future__ import annotations

import collections
import functools
import os
import queue
import threading
from typing import Iterator, Sequence

import torch

from aunet.config import Config
from aunet.data.augment import Crop, cut_crop, warp
from aunet.data.patches import draw_patch
from aunet.data.prepared import PreparedDataset
from aunet.errors import AunetError
from aunet.workers import die_with_worker_parent

MAX_AUTO_WORKERS = 8


def automatic_workers(device: torch.device, processes_on_node: int = 1) -> int:
    """num_workers=-1: none on the CPU (the step uses every core); on CUDA this process's cores less one, <= 8."""
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_AUTO_WORKERS, cores // max(1, processes_on_node) - 1))


def batch_indices(epoch: int, step: int, iterations: int, batch_size: int, rank: int = 0, world: int = 1) -> list[int]:
    """The patch indices of this process's share of the batch of (epoch, step); epochs count from 1."""
    share = batch_size // world
    first = ((epoch - 1) * iterations + step) * batch_size + rank * share
    return list(range(first, first + share))


class TrainingCrops(torch.utils.data.Dataset):
    """Item i: training patch i's Crop (warp_here=False), or the finished patch (image, label) when warp_here."""

    def __init__(self, dataset: PreparedDataset, case_ids: Sequence[str], cfg: Config, warp_here: bool) -> None:
        if not case_ids:
            raise ValueError("TrainingCrops needs at least one case")
        self.dataset, self.case_ids, self.cfg, self.warp_here = dataset, list(case_ids), cfg, warp_here

    def __len__(self) -> int:
        return 10 ** 12  # indices come from the batch sampler; every one is valid

    def __getitem__(self, index: int) -> Crop | tuple[torch.Tensor, torch.Tensor]:
        spec = draw_patch(self.dataset, self.case_ids, self.cfg, self.cfg.seed, index)
        crop = cut_crop(self.dataset.load(spec.case_id), spec, self.cfg.patch_size)
        return warp(crop, self.cfg.patch_size) if self.warp_here else crop


class _Stream(torch.utils.data.Sampler):
    """The index lists of every (epoch, step) from first_epoch to the last, in training order."""

    def __init__(self, first_epoch: int, last_epoch: int, iterations: int, batch_size: int, rank: int, world: int):
        self.args = first_epoch, last_epoch, iterations, batch_size, rank, world

    def __len__(self) -> int:
        first, last, iterations = self.args[:3]
        return max(0, last - first + 1) * iterations

    def __iter__(self) -> Iterator[list[int]]:
        first, last, iterations, batch_size, rank, world = self.args
        for epoch in range(first, last + 1):
            for step in range(iterations):
                yield batch_indices(epoch, step, iterations, batch_size, rank, world)


def _collate(items: list) -> list | tuple[torch.Tensor, torch.Tensor]:
    """Finished patches are stacked, labels as int64 (in the worker, not the loop); crops travel as a list."""
    if isinstance(items[0], Crop):
        return items  # of different sizes; uint8 labels are a quarter of the bytes to the GPU
    images, labels = zip(*items)
    return torch.stack(images), torch.stack(labels).long()  # (B, 1, X, Y, Z), (B, X, Y, Z)


def _release(retired: queue.SimpleQueue) -> None:
    """Drop the batches put here. Freeing a batch from the workers returns its shared memory to the kernel,
    tens of milliseconds for a paper-size batch; this thread does it while the loop runs the next step."""
    while retired.get() is not None:
        pass  # the batch's last reference went with get()'s return value


class TrainingBatches:
    """This process's training batches, built by `workers` processes, finished on `device`."""

    def __init__(self, dataset: PreparedDataset, case_ids: Sequence[str], cfg: Config, device: torch.device,
                 iterations: int, rank: int = 0, world: int = 1, workers: int | None = None) -> None:
        if cfg.batch_size % world:
            raise AunetError(f"batch_size={cfg.batch_size} cannot be shared by {world} processes; use a multiple "
                             f"of {world} (batch_size is the global batch, summed over processes).")
        self.cfg, self.device, self.iterations, self.rank, self.world = cfg, device, iterations, rank, world
        self.workers = workers if workers is not None else cfg.num_workers
        if self.workers < 0:
            self.workers = automatic_workers(device, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        self.crops = TrainingCrops(dataset, case_ids, cfg, warp_here=device.type == "cpu")

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of (epoch, step), built here and now (the stream's batch, without workers)."""
        indices = batch_indices(epoch, step, self.iterations, self.cfg.batch_size, self.rank, self.world)
        return self.finish(_collate([self.crops[i] for i in indices]))

    def stream(self, first_epoch: int, last_epoch: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of every step from first_epoch to last_epoch (default cfg.epochs), prepared ahead."""
        last_epoch = self.cfg.epochs if last_epoch is None else last_epoch
        sampler = _Stream(first_epoch, last_epoch, self.iterations, self.cfg.batch_size, self.rank, self.world)
        loader = torch.utils.data.DataLoader(
            self.crops, batch_sampler=sampler, num_workers=self.workers, collate_fn=_collate,
            pin_memory=self.device.type == "cuda", prefetch_factor=2 if self.workers else None,
            worker_init_fn=functools.partial(die_with_worker_parent, os.getpid()))  # a killed loop leaves none
        retired: queue.SimpleQueue = queue.SimpleQueue()
        releaser = threading.Thread(target=_release, args=(retired,), daemon=True, name="aunet-release-batches")
        releaser.start()
        recent: collections.deque = collections.deque()
        try:
            for batch in loader:
                recent.append(self.finish(batch))
                del batch
                if len(recent) > 2:  # two steps old: the loop holds it no more; let the releaser free it
                    retired.put(recent.popleft())
                yield recent[-1]
        except RuntimeError as e:
            if "shared memory" in str(e) or "shm" in str(e):
                raise AunetError(f"The {self.workers} batch-building worker(s) ran out of shared memory (/dev/shm); "
                                 f"give the machine or container more (docker run --shm-size 8g) or set "
                                 f"num_workers=0.") from None
            raise
        finally:
            recent.clear()
            retired.put(None)

    def finish(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Move a collated batch to the device and resample its crops there: images (B, 1, X, Y, Z), labels int64."""
        if isinstance(batch, tuple):  # finished in the worker (CPU training)
            images, labels = batch
        else:
            patches = [warp(crop.to(self.device, non_blocking=True), self.cfg.patch_size) for crop in batch]
            images, labels = (torch.stack(t) for t in zip(*patches))
        images = images.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last_3d)
        return images, labels.to(self.device, non_blocking=True).long()
