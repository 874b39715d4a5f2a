"""The benchmark's fresh-process measurements: each function runs in a new Python (`benchmarks.fresh.run`).

Each takes JSON-able keyword arguments and returns a JSON-able dict, so that the raw results record
exactly what was asked and what came back.
"""
from __future__ import annotations

import numpy as np
import torch

from aunet.device import reuse_cpu_memory
from benchmarks import measure as M
from benchmarks import models


def peak_memory(kind: str, model: str, size: list[int], batch: int, device: str, amp: bool) -> dict:
    """Time and peak memory of one forward ("forward") or forward+backward ("forward_backward") call."""
    dev = torch.device(device)
    net = models.build(model, dev)
    x = M.make_input(tuple(size), batch, dev)
    factory = M.forward_step if kind == "forward" else M.backward_step
    return _peak(factory(net, x, dev, amp), dev)


def sliding_window(volume: list[int], patch: list[int], overlap: float, device: str, amp: bool,
                   reuse: bool = False) -> dict:
    """Time and peak memory of whole-volume sliding-window inference of a random CT-sized volume."""
    try:
        from aunet.inference import sliding_window_predict
    except ImportError as e:
        return dict(not_measured=f"aunet.inference is not available ({e})")

    dev = torch.device(device)
    net = models.build("aunet.AttentionUNet", dev)
    image = np.random.default_rng(0).standard_normal(volume, dtype=np.float32)  # (X, Y, Z)
    result = {}

    def step() -> None:
        pred = sliding_window_predict(net, image, patch, overlap=overlap, num_classes=models.NUM_CLASSES,
                                      device=dev, progress=False, amp=amp)
        result["labels_shape"] = list(pred.labels.shape)

    with reuse_cpu_memory(reuse) as in_effect:
        out = _peak(step, dev)
    return dict(out, labels_shape=result["labels_shape"], reuse_cpu_memory=in_effect)


def allocator(model: str, size: list[int], device: str, amp: bool, reuse: bool, warmup: int, repeats: int) -> dict:
    """Forward+backward times, page faults per step and peak RSS of one model with reuse_cpu_memory on or off."""
    dev = torch.device(device)
    step = M.backward_step(models.build(model, dev), M.make_input(tuple(size), 1, dev), dev, amp)
    faults: list[int] = []

    def counted() -> None:
        before = M.minor_faults()
        step()
        faults.append(M.minor_faults() - before)

    with reuse_cpu_memory(reuse) as in_effect:
        times = M.interleaved({"step": counted}, dev, warmup, repeats)["step"]
        peak = M.peak_rss_bytes()
    return dict(times=times, minor_faults=faults[warmup:], peak_rss_bytes=peak, in_effect=in_effect)


def _peak(step: M.Step, device: torch.device) -> dict:
    """Seconds and peak memory of one call of `step`, above what the process held before it."""
    if device.type == "cuda":
        peak: list[int] = []
        seconds = M.once(lambda: peak.append(M.cuda_peak_bytes(step, device)), device)
        return dict(peak_bytes=peak[0], time_s=seconds, peak_rss_bytes=M.peak_rss_bytes())
    reset = M.reset_peak_rss()  # without it the peak may be the import's, not the call's
    before = M.rss_bytes()
    seconds = M.once(step, device)
    peak_rss = M.peak_rss_bytes()
    return dict(peak_bytes=peak_rss - before, time_s=seconds, peak_rss_bytes=peak_rss, peak_reset=reset)
