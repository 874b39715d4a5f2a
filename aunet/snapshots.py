"""Attention snapshots: every gated level's alpha on fixed validation slices at chosen epochs.

The paper's figure shows the level-2 attention map of one slice at five epochs (aunet.paper.FIGURE_EPOCHS). A
snapshot (written into the run folder by `aunet.run.RunFolder.write_snapshot`, read back by
`RunFolder.read_snapshots`) holds, for one fixed validation case and the axial slice with
the most pancreas: the CT slice `image` (X, Y), the label slice `label` (X, Y), and one array per gated
level `level2`, `level3`, ... (X / 2^(l-1), Y / 2^(l-1)) in float16: a few kB per epoch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aunet.config import Config
from aunet.device import autocast
from aunet.labels import TARGET, value
from aunet.paper import FIGURE_EPOCHS
from aunet.run import RunFolder


def snapshot_schedule(epochs: int, requested: tuple[int, ...] = FIGURE_EPOCHS) -> list[int]:
    """The requested epochs if they all fit the run, else the requested ones scaled to `epochs`.

    Scaling keeps their spread: e.g. the paper's figure epochs for a 20-epoch run -> [1, 2, 3, 8, 20].
    """
    requested = sorted({e for e in requested if e >= 1})
    if not requested or requested[-1] <= epochs:
        return requested
    out: list[int] = []
    for e in requested:
        scaled = max(1, round(e * epochs / requested[-1]), (out[-1] + 1) if out else 1)
        if scaled <= epochs:
            out.append(scaled)
    return out


def _crop_slices(shape: tuple[int, ...], centre: tuple[int, ...], size: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices of `size` around `centre` inside `shape` (the volume is padded to multiples of 16)."""
    out = []
    for n, c, s in zip(shape, centre, size):
        s = min(s, n)
        start = int(np.clip(c - s // 2, 0, n - s))
        out.append(slice(start, start + s))
    return tuple(out)


class AttentionSnapshotter:
    """Saves alpha of every gated level on one fixed validation slice, at the epochs asked for."""

    def __init__(self, data: Any, cfg: Config, run: RunFolder, target_label: int = value(TARGET)) -> None:
        self.run, self.cfg = run, cfg
        cases = list(data.val) or list(data.train)
        volume = data.load(cases[0])
        # an inference-window crop (multiple of 16) centred on the target organ: the whole slice where it fits
        mask = volume.label == target_label if (volume.label == target_label).any() else volume.label > 0
        centre = tuple(int(round(c)) for c in np.argwhere(mask).mean(0)) if mask.any() else \
            tuple(n // 2 for n in volume.image.shape)
        size = tuple(min(p, n) // 16 * 16 for p, n in zip(cfg.inference_patch_size, volume.image.shape))
        self.crop = _crop_slices(volume.image.shape, centre, size)
        self.image = volume.image[self.crop]  # (X, Y, Z) crop
        label = volume.label[self.crop]
        self.z = int(np.argmax((label == target_label).sum(axis=(0, 1)))) if (label == target_label).any() \
            else label.shape[2] // 2
        self.case_id = volume.case_id
        self.label_slice = label[:, :, self.z]

    @torch.no_grad()
    def save(self, model: torch.nn.Module, epoch: int) -> Path | None:
        """Run the model on the crop and store each level's alpha at the chosen slice."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        x = torch.from_numpy(np.ascontiguousarray(self.image))[None, None].to(device)  # (1, 1, X, Y, Z)
        with autocast(device, self.cfg.amp):
            _, attention = model(x, return_attention=True)
        model.train(was_training)
        if not attention:
            return None  # a plain U-Net has nothing to show
        arrays = {"image": self.image[:, :, self.z].astype(np.float16), "label": self.label_slice.astype(np.uint8),
                  "epoch": np.array(epoch), "z": np.array(self.z), "case_id": np.array(self.case_id)}
        for name, alpha in attention.items():
            factor = self.image.shape[2] // alpha.shape[-1]
            arrays[name] = alpha[0, 0, :, :, self.z // factor].float().cpu().numpy()
        return self.run.write_snapshot(epoch, arrays)
