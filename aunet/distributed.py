"""Several processes, one run: torchrun and DistributedDataParallel, and what the trainer needs around them.

    torchrun --standalone --nproc-per-node 4 -m aunet train --profile paper ...

torchrun starts one process per GPU (or, on the CPU with the gloo backend, per share of the cores) and gives
each its RANK, WORLD_SIZE and LOCAL_RANK in the environment; `Processes.from_environment` reads them and
`join` enters the process group (NCCL on CUDA, gloo on the CPU). Without torchrun every helper here is the
single-process identity, so notebooks and `aunet train` run as before.

What makes N processes train the model that one process trains on the same global batch:
- batches: each process takes its share of the global batch from the same (seed, epoch, step) stream
  (aunet.data.loader);
- gradients: DDP averages them over the processes;
- BatchNorm: statistics of the global batch (with one or two 3D patches per GPU, per-process statistics
  would be poor): torch's SyncBatchNorm on CUDA, `GlobalBatchNorm` below on the CPU, where SyncBatchNorm
  does not run;
- the soft Dice: its per-class sums span the global batch (`sum_over_processes`, gradients included).
  Why the gradients come out right: the backward of a summed all-reduce sums the incoming gradients over
  processes, and every process holds the same loss, so each process's share comes back N times; DDP's
  average divides by N again, which leaves exactly the one-process gradient.
Only rank 0 writes files; validation is dealt out to the processes and its sums reduced (aunet.validation).

When a process dies, torchrun stops the others with SIGTERM, and on gloo a collective with the dead process
fails at once; either way each survivor ends with one line (`stop_on_sigterm`, `stopped_by_failure`).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from aunet.errors import AunetError

_FAILURE_WORDS = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe", "socket", "timed out")


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them (a single process without them)."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def join(self, device: torch.device) -> torch.device:
        """Enter the process group (once per process) and return this process's device: cuda:LOCAL_RANK on CUDA."""
        if not self.distributed:
            return device
        if device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise AunetError(f"torchrun started process {self.local_rank} on this machine but PyTorch sees "
                                 f"{torch.cuda.device_count()} GPU(s); use --nproc-per-node "
                                 f"{torch.cuda.device_count()} or fewer.")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the processes (no gradient), on their device; the tensor itself when alone."""
        if not self.distributed:
            return values
        nccl = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
        total = values.detach().to(torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu", copy=True)
        dist.all_reduce(total)
        return total.to(values.device)

    def wrap(self, net: nn.Module, device: torch.device) -> tuple[nn.Module, nn.Module]:
        """(net with global BatchNorm, the module to train: DDP around it); (net, net) for one process."""
        if not self.distributed:
            return net, net
        net = convert_batchnorm(net, device)
        ddp = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                                  gradient_as_bucket_view=True)
        return net, ddp

    @contextlib.contextmanager
    def stopped_by_failure(self) -> Iterator[None]:
        """Turn a collective's failure (another process died) into one AunetError line."""
        try:
            yield
        except (RuntimeError, OSError) as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            failed = isinstance(e, _dist_errors()) or any(w in text.lower() for w in _FAILURE_WORDS)
            if not self.distributed or not failed:
                raise
            cause = re.sub(r"^\[[^\]]*\]\s*", "", text).split(". ")[0][:120]  # without gloo's "[file.cc:537]"
            raise AunetError(f"training process {self.rank} of {self.world} stopped: another process of the run "
                             f"ended ({cause}); resume with --resume.") from None


def _dist_errors() -> tuple[type, ...]:
    return (dist.DistError,) if hasattr(dist, "DistError") else ()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Inside this block SIGTERM (torchrun stopping a run, a scheduler, `kill`) raises one AunetError line."""
    processes = Processes.from_environment()

    def stop(signum: int, frame: Any) -> None:
        raise AunetError(f"training process {processes.rank} of {processes.world} stopped by SIGTERM (torchrun "
                         f"stops every process of a run when one of them ends); resume with --resume.")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces (sums) the gradient likewise."""

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor) -> torch.Tensor:
        total = values.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over the training processes, differentiably (its backward sums gradients likewise)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    return _SumOverProcesses.apply(values)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span every process's batch (any device; SyncBatchNorm is CUDA-only).

    mean = sum(x) / N and var = sum((x - mean)^2) / N over the global batch and space, N the global count;
    running statistics as BatchNorm's (unbiased variance, momentum). Alone or in eval mode: plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 3:
            raise ValueError(f"GlobalBatchNorm expects (B, C, *S) input, got {tuple(input.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)  # broadcast a (C,) vector over (B, C, *S)
        count = x.numel() // x.shape[1] * dist.get_world_size()  # every process holds an equal share
        dtype, x = x.dtype, x.float()  # a bfloat16 step's features: statistics in float32, as BatchNorm's
        mean = sum_over_processes(x.sum(dims)) / count  # (C,)
        centred = x - mean.view(shape)
        var = sum_over_processes((centred * centred).sum(dims)) / count  # (C,), biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / max(count - 1, 1), factor)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        return (y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y).to(dtype)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm in `module` with global statistics: SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats).to(module.running_mean.device)
        new.load_state_dict(module.state_dict())
        if module.affine:
            new.weight, new.bias = module.weight, module.bias  # the same Parameters: optimisers keep working
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child, device))
    return module
