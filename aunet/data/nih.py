"""NIH Pancreas-CT (TCIA) from DICOM series and NIfTI labels to a Decathlon folder with its 61/21 split.

    convert_nih_pancreas("downloads/Pancreas-CT", "downloads/TCIA_pancreas_labels-02-05-2017", "data/nih_pancreas")
    # CLI: aunet data convert nih-pancreas --dicom DIR --labels DIR --out DIR

Input (Roth et al. 2016, DOI 10.7937/K9/TCIA.2016.tNB1kqBU; Oktay et al., MIDL 2018, section 3): 82
contrast CTs as DICOM series, `Pancreas-CT/PANCREAS_00NN/<study>/<series>/*.dcm` (TCIA's NBIA Data
Retriever), and the labels as NIfTI, `label00NN.nii.gz` (pancreas = 1). Cases 25 and 70 are reported
duplicates; their folders are empty in recent downloads: they are reported and skipped.

Each case: the series becomes HU int16 with its DICOM affine (aunet.data.dicom); the label is brought
onto the image's voxel grid through the two affines, which must relate the grids by an exact axis
flip or permutation (the usual way converted labels end up flipped against images); anything else is
refused naming the case. The output folder (`imagesTr/PANCREAS_00NN.nii.gz`, `labelsTr/...`,
`dataset.json`, `splits/61_21.json`) is written in a temporary folder and renamed into place.
Train with the label map `nih-pancreas` (pancreas -> the model's 2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aunet.data.datasets import decathlon_case, write_dataset_json
from aunet.data.dicom import read_series
from aunet.data.nifti import load_nifti, read_data, save_nifti
from aunet.data.splits import TCIA_SPLITS, write_paper_splits
from aunet.errors import AunetError
from aunet.io import atomic_folder, refuse_nonempty
from aunet.labels import NIH_PANCREAS

DOI = "10.7937/K9/TCIA.2016.tNB1kqBU"
CASE_FOLDER = re.compile(r"PANCREAS_(\d{4})")
LABEL_FILE = re.compile(r"label(\d{4})\.nii(\.gz)?")
TOLERANCE = 0.1  # voxels: how far any label voxel may land from where an exact flip/permutation puts it


@dataclass
class ConversionReport:
    """What `convert_nih_pancreas` did: the cases written and the ones skipped, with the reason."""

    out: Path
    converted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    splits: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per skipped case after a line of totals."""
        lines = [f"{self.out}: {len(self.converted)} case(s) converted, {len(self.skipped)} skipped; split files: "
                 f"{', '.join(self.splits) or 'none'}"]
        return "\n".join(lines + [f"skipped {case}: {why}" for case, why in self.skipped.items()])


def label_onto_grid(label: np.ndarray, label_affine: np.ndarray, image_affine: np.ndarray,
                    image_shape: tuple[int, int, int], case: str) -> np.ndarray:
    """The label array on the image's voxel grid, when the two grids differ by an axis flip or permutation only."""
    index = np.linalg.inv(image_affine) @ label_affine  # label voxel index -> image voxel index
    rotation, offset = index[:3, :3], index[:3, 3]
    exact = np.rint(rotation)
    is_permutation = (np.abs(exact).sum(0) == 1).all() and (np.abs(exact).sum(1) == 1).all()
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in label.shape], indexing="ij")).reshape(3, -1)  # (3, 8)
    stray = np.abs((rotation - exact) @ corners + (offset - np.rint(offset))[:, None]).max()
    if not is_permutation or stray > TOLERANCE:
        raise AunetError(f"{case}: the label's voxel grid is not an axis flip or permutation of the image's "
                         f"(label-to-image index transform {np.round(index[:3], 3).tolist()}); cannot align it "
                         "exactly.")
    source_axis = [int(np.flatnonzero(exact[a])[0]) for a in range(3)]  # image axis a <- label axis source_axis[a]
    out = np.transpose(label, source_axis)
    if out.shape != tuple(image_shape):
        raise AunetError(f"{case}: the label has shape {label.shape}, which on the image's axes is {out.shape}; "
                         f"expected the image's {tuple(image_shape)}.")
    for a in range(3):
        sign, start = exact[a, source_axis[a]], int(np.rint(offset[a]))
        if (sign > 0 and start != 0) or (sign < 0 and start != image_shape[a] - 1):
            raise AunetError(f"{case}: the label's grid is shifted against the image's along axis {a} (by "
                             f"{start if sign > 0 else start - image_shape[a] + 1} voxels); expected the same extent.")
        if sign < 0:
            out = np.flip(out, a)
    return np.ascontiguousarray(out)


def find_cases(dicom: Path, labels: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """{NNNN: series folder} under `dicom` (or its Pancreas-CT/) and {NNNN: label file} under `labels`."""
    for folder, what in ((dicom, "the Pancreas-CT DICOM folder"), (labels, "the folder of label00NN.nii.gz files")):
        if not folder.is_dir():
            raise AunetError(f"{folder}: folder not found; expected {what}.")
    root = dicom / "Pancreas-CT" if (dicom / "Pancreas-CT").is_dir() else dicom
    series = {m.group(1): p for p in root.iterdir() if p.is_dir() and (m := CASE_FOLDER.fullmatch(p.name))}
    label_files = {m.group(1): p for p in labels.rglob("label*.nii*") if (m := LABEL_FILE.fullmatch(p.name))}
    if not series:
        raise AunetError(f"{root}: holds no PANCREAS_NNNN folders; expected the Pancreas-CT DICOM download.")
    if not label_files:
        raise AunetError(f"{labels}: holds no label00NN.nii.gz files; expected the Pancreas-CT labels.")
    return series, label_files


def convert_case(folder: Path, label_path: Path, case: str, out: Path) -> None:
    """Write imagesTr/<case>.nii.gz (HU int16) and labelsTr/<case>.nii.gz (uint8, on the image's grid)."""
    hu, affine = read_series(folder, case)
    label_nii = load_nifti(label_path)
    label = read_data(label_nii, label_path)
    values = np.unique(label)
    if not set(values.tolist()) <= set(NIH_PANCREAS):
        raise AunetError(f"{label_path}: has values {values.tolist()}; expected {sorted(NIH_PANCREAS)} "
                         "(0 background, 1 pancreas).")
    label = label_onto_grid(label.astype(np.uint8), label_nii.affine, affine, hu.shape, case)
    files = decathlon_case(out, case)
    save_nifti(files.image, hu, affine, dtype=np.int16)
    save_nifti(files.label, label, affine, dtype=np.uint8)


def convert_nih_pancreas(dicom: str | Path, labels: str | Path, out: str | Path, overwrite: bool = False,
                         progress: bool = True) -> ConversionReport:
    """Convert every case that has both a series and a label; report the others; write the split file."""
    from tqdm.auto import tqdm

    dicom, labels, out = Path(dicom), Path(labels), Path(out)
    series, label_files = find_cases(dicom, labels)
    refuse_nonempty(out, overwrite)
    report = ConversionReport(out)
    with atomic_folder(out) as tmp:
        for number in tqdm(sorted(set(series) | set(label_files)), desc="convert", unit="case", disable=not progress):
            case = f"PANCREAS_{number}"
            if number not in label_files:
                report.skipped[case] = "no label file"
            elif number not in series or not any(p.is_file() for p in series[number].rglob("*")):
                report.skipped[case] = "no DICOM images (cases 25 and 70 are reported duplicates)"
            else:
                convert_case(series[number], label_files[number], case, tmp)
                report.converted.append(case)
        if not report.converted:
            raise AunetError(f"{dicom}: no case has both DICOM images and a label; expected PANCREAS_NNNN folders "
                             f"matching the label00NN files in {labels}.")
        report.splits = [p.stem for p in write_paper_splits(tmp, report.converted, TCIA_SPLITS)]
        write_dataset_json(tmp, "NIH Pancreas-CT", "TCIA Pancreas-CT converted by aunet (DICOM with pydicom)",
                           f"Roth et al. 2016, The Cancer Imaging Archive, DOI {DOI}",
                           f"as stated by TCIA for DOI {DOI}",
                           NIH_PANCREAS, report.converted,
                           aunet={"skipped": report.skipped, "label_map": "nih-pancreas"})
    return report
