"""Medical Segmentation Decathlon Task07_Pancreas, from nothing to a checked training folder.

    fetch_msd_pancreas("data")        # CLI: aunet data fetch msd-pancreas --dest data

Task07 (Antonelli et al., Nat. Commun. 2022; CC-BY-SA 4.0) is one ~11 GB tar: `Task07_Pancreas/` with
`dataset.json`, 281 labelled CTs (`imagesTr/`, `labelsTr/`, labels 0 background, 1 pancreas, 2 tumour),
139 unlabelled ones (`imagesTs/`) and macOS `._*` files. Steps: the disk space is checked (the tar plus
room to unpack it); the tar is downloaded with resume (aunet.data.download); its md5 is verified; it
is extracted safely (aunet.data.archive) into `<dest>/Task07_Pancreas` through a temporary folder,
together with the split files of the paper's CT-150 proportions (aunet.data.splits); the tar is
deleted unless kept. A folder that is complete already (it has its dataset.json) is left alone.

The paper segments the whole pancreas: train with the label map `msd-pancreas` (aunet.labels), which
makes pancreas and tumour both the model's pancreas: `aunet train --label-map msd-pancreas ...`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aunet.data.archive import extract_tar
from aunet.data.datasets import read_dataset
from aunet.data.download import check_disk_space, check_md5, download
from aunet.data.splits import CT150_SPLITS, write_paper_splits
from aunet.errors import AunetError

# The mirror MONAI's DecathlonDataset downloads from; it answers HTTP Range requests.
MSD_PANCREAS_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task07_Pancreas.tar"
MSD_PANCREAS_MD5 = "4f7080cfca169fa8066d17ce6eb061e4"
FOLDER = "Task07_Pancreas"


@dataclass
class FetchResult:
    """Where the dataset folder is and what this call did: "complete already" or "fetched"."""

    folder: Path
    status: str
    cases: int = 0
    splits: tuple[str, ...] = ()


def fetch_msd_pancreas(dest: str | Path, url: str = MSD_PANCREAS_URL, md5: str = MSD_PANCREAS_MD5,
                       archive: str | Path | None = None, keep_archive: bool = False, retries: int = 5,
                       wait: float = 2.0, progress: bool = True) -> FetchResult:
    """Download (or take `archive`), verify and unpack Task07_Pancreas into `<dest>/Task07_Pancreas`."""
    dest = Path(dest)
    folder = dest / FOLDER
    if (folder / "dataset.json").is_file():
        return FetchResult(folder, "complete already", len(read_dataset(folder).cases))
    if folder.exists() and any(folder.iterdir()):
        raise AunetError(f"{folder}: exists without a dataset.json (not a finished fetch); move it away or choose "
                         "another --dest.")
    if archive is not None:
        tar = Path(archive)
        if not tar.is_file():
            raise AunetError(f"{tar}: file not found; expected the Task07_Pancreas.tar you downloaded.")
        check_md5(tar, md5, progress)
        check_disk_space(dest, tar.stat().st_size, f"unpacking {tar.name}")
    else:
        tar = download(url, dest / f"{FOLDER}.tar", md5, retries=retries, wait=wait, reserve=1.0, progress=progress)
    found: dict[str, list] = {}

    def finish(tmp: Path) -> None:  # on the unpacked temporary folder, before it is renamed into place
        try:
            found["cases"] = [c.case_id for c in read_dataset(tmp).cases]
        except AunetError as e:
            raise AunetError(f"{tar}: unpacks to something other than a Decathlon folder ({e})") from None
        found["splits"] = [p.stem for p in write_paper_splits(tmp, found["cases"], CT150_SPLITS)]

    extract_tar(tar, folder, finish=finish, progress=progress)
    if archive is None and not keep_archive:
        tar.unlink()
    return FetchResult(folder, "fetched", len(found["cases"]), tuple(found["splits"]))
