"""One process that times training steps on command: the worker of benchmarks/train_step.py.

Run as a script (not `-m`), so that PYTHONPATH decides which aunet it times: the working tree, or an
older commit's package extracted elsewhere (e.g. `git archive 7487c8c aunet | tar -x -C /tmp/old`).
It builds one training step from a Config profile and a JSON of changes, runs it once (its time,
compilation included, is in the answer), answers "ready <json>" on stdout, then for every line "N" on stdin runs N
steps and answers "<seconds> <loss>"; an empty line ends it. With
--profile-steps N it profiles N steps instead (torch.profiler, CPU) and answers "profile <json>": the
seconds per step in each category (convolution forward and backward, BatchNorm, ReLU, resampling, ...).

The step is the trainer's: `aunet.step.TrainingStep` where the package has it; in a package from
before that module (7487c8c and older) the body of that commit's `Trainer.train_epoch`, inlined
below (forward under `aunet.device.autocast`, a no-op on the CPU; loss of `logits.float()`;
`zero_grad`; backward; Adam), with the same seed, Config and loss. Both run inside
`reuse_cpu_memory`, as the trainer does. The batch is random (seeded): content does not change the
time of a dense step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch


def monai_attention_unet(cfg) -> torch.nn.Module:
    """MONAI's AttentionUnet at the Config's widths (benchmark comparison only)."""
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(
        spatial_dims=3,
        in_channels=cfg.in_channels,
        out_channels=cfg.num_classes,
        channels=cfg.filters,
        strides=(2, 2, 2, 2),
    )


def build_step(cfg, model: str, off: list[str], force: bool = False):
    """(step(images, labels) -> loss, a dict describing what it runs, the network it runs, its loss module).

    force: take the speed-ups that aunet.speedups keeps for capable CPUs (bf16, channels_last) here too,
    to measure what the automatic choice turns down (e.g. under ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16).
    """
    from aunet.device import autocast
    from aunet.losses import build_loss

    device = torch.device("cpu")
    torch.manual_seed(cfg.seed)
    import aunet

    # the package's own folder decides: an editable install of this tree would otherwise lend its aunet.step
    # to an older package that PYTHONPATH put first (setuptools' editable finder answers for submodules too)
    if (Path(aunet.__file__).parent / "step.py").is_file():
        from aunet import speedups
        from aunet.step import TrainingStep
    else:  # aunet from before aunet.step: 7487c8c's Trainer step, inlined
        net = (monai_attention_unet(cfg) if model == "monai" else cfg.build_model()).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        loss_fn = build_loss(cfg.loss)

        def old_step(images: torch.Tensor, labels: torch.Tensor) -> float:
            with autocast(device, cfg.amp):
                logits = net(images)
            loss = loss_fn(logits.float(), labels)
            value = loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return value

        return old_step, {"step": "7487c8c Trainer.train_epoch (inlined)"}, net, loss_fn
    if force:
        speedups.cpu_pays_for = lambda name: True  # noqa: E731 -- this process only
    with speedups.off(*off) if off else contextlib.nullcontext():
        net = monai_attention_unet(cfg) if model == "monai" else None
        step = TrainingStep(cfg, device, net=net)
    return step, {"step": "aunet.step.TrainingStep", **step.describe()}, step.trained, step.loss_fn


# (substring of an event's name, lower case) -> category; the outermost matching name of an event's chain decides
CATEGORIES = (
    ("optimizer.", "Adam (zero_grad, step)"),
    ("conv3x3x3backward", "convolution backward"),
    ("convolutionbackward", "convolution backward"),
    ("convolution_backward", "convolution backward"),
    ("conv", "convolution forward"),
    ("batchnorm", "BatchNorm"),
    ("batch_norm", "BatchNorm"),
    ("relu", "ReLU"),
    ("threshold", "ReLU"),
    ("clamp_min", "ReLU"),
    ("upsample", "resampling"),
    ("lerp", "resampling"),
    ("max_pool", "max-pooling"),
    ("maxpool", "max-pooling"),
    ("aten::cat", "concatenation"),
    ("catbackward", "concatenation"),
    ("tocopy", "dtype casts"),
    ("_to_copy", "dtype casts"),
    ("aten::to", "dtype casts"),
)
OTHER, LOSS, PHASES = (
    "other (gates' add, mul, sigmoid; head; autograd)",
    "loss (forward and backward)",
    ("## forward", "## loss"),
)


def category(chain: list[str], in_loss: bool) -> str:
    """The category of a profiler event from its names, outermost first (`in_loss`: it belongs to the loss)."""
    if in_loss and not any(n.startswith("Optimizer.") for n in chain):
        return LOSS
    for name in chain:
        for key, label in CATEGORIES:
            if key in name.lower().replace(" ", ""):
                return label
    return OTHER


def profile(step, images: torch.Tensor, labels: torch.Tensor, steps: int) -> dict[str, float]:
    """Seconds per step in each category (self times of torch.profiler's CPU events, attributed by `category`)."""
    from torch.profiler import ProfilerActivity, record_function

    with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof, record_function("## steps"):
        for _ in range(steps):
            step(images, labels)
    events = prof.events()
    chains = {}
    for e in events:
        chain, parent = [], e
        while parent is not None:
            chain.insert(0, parent.name)
            parent = parent.cpu_parent
        chains[id(e)] = [n for n in chain if n not in ("## steps", "## forward")]
    loss_ops = {e.sequence_nr for e in events if "## loss" in chains[id(e)] and e.sequence_nr >= 0}
    out: dict[str, float] = {}
    for e in events:
        chain = chains[id(e)]
        in_loss = "## loss" in chain or (e.sequence_nr in loss_ops and any("evaluate_function" in n for n in chain))
        label = category([n for n in chain if n != "## loss"], in_loss)
        out[label] = out.get(label, 0.0) + e.self_cpu_time_total / 1e6 / steps
    return out


def label_calls(module: torch.nn.Module, label: str) -> None:
    """Every call of `module` inside a profiler range named `label` (what `profile` attributes)."""
    from torch.profiler import record_function

    forward = module.forward

    def labelled(*args, **kwargs):
        with record_function(label):
            return forward(*args, **kwargs)

    module.forward = labelled


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--config", default="{}", help="JSON of Config fields changed from the profile")
    p.add_argument("--model", default="aunet", choices=("aunet", "monai"))
    p.add_argument("--off", default="", help="aunet speed-ups built off, comma-separated")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--force", action="store_true", help="bf16 and channels_last whatever the CPU (see build_step)")
    p.add_argument("--profile-steps", type=int, default=0, help="profile this many steps, print 'profile <json>', end")
    args = p.parse_args()
    from aunet.config import Config
    from aunet.device import reuse_cpu_memory

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.from_profile(args.profile, **json.loads(args.config))
    step, info, net, loss_fn = build_step(cfg, args.model, [n for n in args.off.split(",") if n], args.force)
    if args.profile_steps:
        label_calls(net, "## forward")
        label_calls(loss_fn, "## loss")
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(cfg.batch_size, cfg.in_channels, *cfg.patch_size, generator=generator)
    labels = torch.randint(0, cfg.num_classes, (cfg.batch_size, *cfg.patch_size), generator=generator)
    info.update(
        threads=torch.get_num_threads(),
        batch=cfg.batch_size,
        patch_size=list(cfg.patch_size),
        base_filters=cfg.base_filters,
        model=args.model,
    )
    with reuse_cpu_memory():
        start = time.perf_counter()
        step(images, labels)  # the first step: oneDNN's kernel choices, torch.compile's compilation
        info["first_step_s"] = time.perf_counter() - start
        if args.profile_steps:
            step(images, labels)
            print("profile " + json.dumps({**info, "seconds": profile(step, images, labels, args.profile_steps)}))
            return
        print("ready " + json.dumps(info), flush=True)
        for line in sys.stdin:
            if not line.strip():
                break
            start = time.perf_counter()
            for _ in range(int(line)):
                loss = step(images, labels)
            print(f"{time.perf_counter() - start:.6f} {loss:.6f}", flush=True)


if __name__ == "__main__":
    main()
