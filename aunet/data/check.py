"""`aunet data check`: validate a dataset folder and summarise what is in it, before any training."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aunet.data.datasets import Case, read_case, read_dataset
from aunet.data.nifti import orientation_code, spacing_of
from aunet.data.preprocess import check_label_values
from aunet.errors import AunetError


@dataclass
class CheckReport:
    """What `check_folder` found: per-case facts and the problems (one sentence each)."""

    root: Path
    layout: str = ""
    labels: dict[int, str] = field(default_factory=dict)
    shapes: Counter = field(default_factory=Counter)
    spacings: list[tuple[float, float, float]] = field(default_factory=list)
    orientations: Counter = field(default_factory=Counter)
    dtypes: Counter = field(default_factory=Counter)
    intensity: list[float] = field(default_factory=lambda: [np.inf, -np.inf])
    label_voxels: Counter = field(default_factory=Counter)
    cases: int = 0
    test_images: int = 0  # unlabelled images in imagesTs/ (listed, not read)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A human-readable multi-line summary."""
        tests = f", {self.test_images} unlabelled test image(s) in imagesTs/" if self.test_images else ""
        lines = [f"{self.root}: {self.layout} layout, {self.cases} labelled case(s){tests}, "
                 f"{len(self.problems)} problem(s)"]
        if self.labels:
            lines.append("declared labels: " + ", ".join(f"{k} {v}" for k, v in self.labels.items()))
        if self.shapes:
            lines.append("shapes: " + ", ".join(f"{'x'.join(map(str, s))} ({n})" for s, n in self.shapes.most_common(6))
                         + (" ..." if len(self.shapes) > 6 else ""))
        if self.spacings:
            sp = np.array(self.spacings)
            lines.append("spacing mm: " + " x ".join(f"{lo:.3g}-{hi:.3g}" if abs(hi - lo) > 1e-3 else f"{lo:.3g}"
                                                    for lo, hi in zip(sp.min(0), sp.max(0))))
            lines.append("orientation: " + ", ".join(f"{k} ({n})" for k, n in self.orientations.most_common()))
            lines.append("image dtype on disk: " + ", ".join(f"{k} ({n})" for k, n in self.dtypes.most_common()))
            lines.append(f"intensity range: {self.intensity[0]:.0f} to {self.intensity[1]:.0f}")
        if self.label_voxels:
            total = sum(self.label_voxels.values())
            lines.append("label voxels: " + ", ".join(f"{k} {self.labels.get(k, '?')} {n} ({100 * n / total:.2f}%)"
                                                      for k, n in sorted(self.label_voxels.items())))
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def check_folder(root: str | Path, progress: bool = True, allow_outside_paths: bool = False) -> CheckReport:
    """Read every case fully and collect problems; structural problems raise AunetError."""
    from tqdm.auto import tqdm

    info = read_dataset(root, allow_outside_paths)
    report = CheckReport(info.root, info.layout, info.labels)
    report.test_images = len([p for p in (info.root / "imagesTs").glob("*.nii*") if not p.name.startswith(".")])
    for case in tqdm(info.cases, desc="check", unit="case", disable=not progress, leave=False):
        try:
            _check_case(case, info.labels, report)
            report.cases += 1
        except AunetError as e:
            report.problems.append(str(e))
    return report


def _check_case(case: Case, labels: dict[int, str], report: CheckReport) -> None:
    image, label, image_nii = read_case(case)
    values, counts = np.unique(label, return_counts=True)
    check_label_values(values, labels, case.label)
    report.shapes[tuple(int(n) for n in image.shape)] += 1
    report.spacings.append(spacing_of(image_nii.affine))
    report.orientations[orientation_code(image_nii.affine)] += 1
    report.dtypes[str(image_nii.get_data_dtype())] += 1
    report.intensity = [min(report.intensity[0], float(image.min())), max(report.intensity[1], float(image.max()))]
    for v, n in zip(values, counts):
        report.label_voxels[int(v)] += int(n)
