"""Dataset folders: Decathlon and nnU-Net v2 layouts read, Decathlon written, one labelled case opened and checked.

Decathlon (MSD Task07):  dataset.json, imagesTr/X.nii.gz, labelsTr/X.nii.gz, labels {"0": "background", ...}
nnU-Net v2 raw:          dataset.json, imagesTr/X_0000.nii.gz, labelsTr/X.nii.gz, labels {"background": 0, ...},
                         file_ending ".nii.gz", channel_names {"0": "CT"}
macOS `._*` files (in the Task07 tar) and other hidden files are ignored. A dataset.json entry stays inside its
folder: an absolute path or one through `..` is refused, naming the entry, unless allow_outside_paths (a
symlink placed inside the folder is followed: a common way to lay out data kept elsewhere).

aunet writes Decathlon folders (the phantom, the example CT, NIH Pancreas-CT): `decathlon_case` says where a
case's files go and `write_dataset_json` is the one writer of their dataset.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import nibabel as nib
import numpy as np

from aunet.data.nifti import check_pair, load_nifti, read_data, read_volume
from aunet.errors import AunetError
from aunet.io import atomic_write_text

EXPECTED = "a Decathlon or nnU-Net v2 folder (dataset.json, imagesTr/, labelsTr/)"


@dataclass(frozen=True)
class Case:
    """One labelled training case: its id and the two files."""

    case_id: str
    image: Path
    label: Path


@dataclass
class DatasetInfo:
    """What dataset.json and the folder say: layout, declared labels (value -> name), cases."""

    root: Path
    layout: str  # "decathlon" or "nnunetv2"
    labels: dict[int, str]
    cases: list[Case]
    name: str = ""


def read_dataset(root: str | Path, allow_outside_paths: bool = False) -> DatasetInfo:
    """Parse dataset.json and pair every training image with its label (AunetError on problems).

    allow_outside_paths: accept dataset.json entries that point outside `root` (absolute, or through `..`).
    """
    root = Path(root)
    if not root.is_dir():
        raise AunetError(f"{root}: folder not found; expected {EXPECTED}.")
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise AunetError(f"{meta_path}: missing; expected {EXPECTED}.")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AunetError(f"{meta_path}: is not valid JSON ({e}).") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict) or not meta["labels"]:
        raise AunetError(f"{meta_path}: has no 'labels' mapping; expected e.g. "
                         '{"0": "background", "1": "pancreas"}.')
    nnunet = "file_ending" in meta or "channel_names" in meta
    labels = _labels(meta["labels"], nnunet, meta_path)
    if nnunet:
        channels = meta.get("channel_names", {"0": "CT"})
        if len(channels) != 1:
            raise AunetError(f"{meta_path}: declares {len(channels)} channels; aunet expects one CT channel.")
        cases = _pair_nnunet(root, str(meta.get("file_ending", ".nii.gz")))
    else:
        cases = _pair_decathlon(root, meta.get("training"), meta_path, allow_outside_paths)
    if not cases:
        raise AunetError(f"{root / 'imagesTr'}: contains no training images; expected {EXPECTED}.")
    return DatasetInfo(root, "nnunetv2" if nnunet else "decathlon", labels, cases, str(meta.get("name", "")))


def _labels(raw: dict, nnunet: bool, meta_path: Path) -> dict[int, str]:
    """Declared labels as {value: name}; Decathlon maps "value" -> name, nnU-Net v2 name -> value."""
    try:
        pairs = {int(v): str(k) for k, v in raw.items()} if nnunet else {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        form = '{"background": 0, ...}' if nnunet else '{"0": "background", ...}'
        raise AunetError(f"{meta_path}: 'labels' must map integer values to names, e.g. {form}.") from None
    if any(v < 0 or v > 255 for v in pairs):
        raise AunetError(f"{meta_path}: label values must be between 0 and 255.")
    return dict(sorted(pairs.items()))


def _visible(folder: Path, ending: str) -> list[Path]:
    """Files in `folder` ending in `ending`, without hidden and macOS `._*` files."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(ending) and not p.name.startswith("."))


def _pair_decathlon(root: Path, training, meta_path: Path, allow_outside_paths: bool = False) -> list[Case]:
    """Pairs from dataset.json's "training" list, or by equal file names when it has none."""
    if training is None:
        images = _visible(root / "imagesTr", ".nii.gz") or _visible(root / "imagesTr", ".nii")
        training = [{"image": f"imagesTr/{p.name}", "label": f"labelsTr/{p.name}"} for p in images]
    if not isinstance(training, list):
        raise AunetError(f"{meta_path}: 'training' must be a list of {{\"image\": ..., \"label\": ...}} entries.")
    cases = []
    for entry in training:
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise AunetError(f"{meta_path}: training entry {entry!r} needs 'image' and 'label' paths.")
        if not allow_outside_paths:
            _refuse_outside(entry, meta_path)
        image, label = root / entry["image"], root / entry["label"]
        if image.name.startswith("._"):
            continue
        for path in (image, label):
            if not path.is_file():
                raise AunetError(f"{path}: listed in {meta_path.name} but not found.")
        cases.append(Case(_strip(image.name), image, label))
    return cases


def _refuse_outside(entry: dict, meta_path: Path) -> None:
    """AunetError naming the entry when its image or label path leaves the dataset folder (absolute, or `..`)."""
    for key in ("image", "label"):
        path = Path(str(entry[key]))
        if path.is_absolute() or ".." in path.parts:
            raise AunetError(f"{meta_path}: training entry {key} {entry[key]!r} points outside {meta_path.parent}; "
                             f"put the file inside the folder (a symlink there is followed) or pass "
                             f"--allow-outside-paths.")


def _pair_nnunet(root: Path, ending: str) -> list[Case]:
    """imagesTr/CASE_0000<ending> with labelsTr/CASE<ending>."""
    cases = []
    for image in _visible(root / "imagesTr", "_0000" + ending):
        case_id = image.name[: -len("_0000" + ending)]
        label = root / "labelsTr" / f"{case_id}{ending}"
        if not label.is_file():
            raise AunetError(f"{label}: missing; expected the label of {image.name}.")
        cases.append(Case(case_id, image, label))
    return cases


def _strip(name: str) -> str:
    for ending in (".nii.gz", ".nii"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return name


def read_case(case: Case) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    """Open and check one labelled case: image and label (X, Y, Z) float32 on one voxel grid, and the image's file."""
    image, image_nii = read_volume(case.image)
    label_nii = load_nifti(case.label)
    check_pair(image_nii, label_nii, case.image, case.label)
    return image, read_data(label_nii, case.label), image_nii


def decathlon_case(root: Path, case_id: str) -> Case:
    """Where a labelled case of a Decathlon folder aunet writes lives: imagesTr/<id>.nii.gz, labelsTr/<id>.nii.gz."""
    return Case(case_id, root / "imagesTr" / f"{case_id}.nii.gz", root / "labelsTr" / f"{case_id}.nii.gz")


def write_dataset_json(root: Path, name: str, description: str, reference: str, licence: str,
                       labels: Mapping[int, str], cases: Sequence[str], test: Sequence[str] = (),
                       aunet: Mapping[str, Any] | None = None) -> None:
    """The Decathlon dataset.json of `root` (atomically): labelled `cases`, unlabelled `test` images, aunet's notes."""
    meta = {"name": name, "description": description, "reference": reference, "licence": licence,
            "tensorImageSize": "3D", "modality": {"0": "CT"}, "labels": {str(k): v for k, v in labels.items()},
            "numTraining": len(cases), "numTest": len(test),
            "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases],
            "test": [f"./imagesTs/{c}.nii.gz" for c in test], "aunet": dict(aunet or {})}
    atomic_write_text(root / "dataset.json", json.dumps(meta, indent=1) + "\n")
