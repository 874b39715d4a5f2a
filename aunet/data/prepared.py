"""A dataset ready for training: validated, preprocessed once into a cache, split into train/val/test.

    ds = prepare_dataset(cfg)             # validates cfg.data_dir, fills the cache, writes splits.json
    ds = prepare_dataset(cfg, workers=8)  # the same, 8 cases at a time in 8 processes (aunet data prepare;
                                          # a script doing this needs the `if __name__ == "__main__":` guard)
    vol = ds.load(ds.train[0])            # Volume: image (X, Y, Z) float32, label uint8, geometry

The split is cfg.split_file's when one is named (aunet.data.splits), else drawn from cfg.seed.
Preprocessing at scale: each worker process reads, resamples and writes one case at a time and sends
back nothing but its name, so memory stays at `workers` cases, whatever the dataset's size.

Cache: `<cache_dir>/<settings key>/<case>.npz` (cache_dir "" = <data_dir>/.aunet_cache). The key
hashes the settings that change the preprocessed arrays (spacing, intensity_range, label_map,
num_classes). Beside each entry, `<case>.manifest.json`, written last (atomically, like the entry):
the entry's size and CRC-32 and the source files' size and mtime. An entry is rebuilt when the source
files change, and when it does not match its manifest (truncated, emptied, overwritten by another file),
with a one-line note: the size is checked before training, the checksum each time the entry is read, so a
damaged entry never reaches training.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sys
import zlib
from collections import OrderedDict
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from aunet.config import Config
from aunet.data.datasets import Case, DatasetInfo, read_case, read_dataset
from aunet.data.preprocess import Geometry, Volume, foreground_points, preprocess_arrays, remap_labels
from aunet.data.splits import choose_split, record_split
from aunet.errors import AunetError
from aunet.io import atomic_write, atomic_write_text
from aunet.workers import die_with_parent

CACHE_VERSION = 1  # bump when the preprocessing code changes what it stores


def cache_root(cfg: Config) -> Path:
    """Where preprocessed volumes and splits.json live."""
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.data_dir) / ".aunet_cache"


def settings_key(cfg: Config) -> dict:
    """The settings that determine the preprocessed arrays."""
    return {"version": CACHE_VERSION, "spacing": cfg.spacing, "intensity_range": list(cfg.intensity_range),
            "label_map": dict(sorted(cfg.label_map.items())), "num_classes": cfg.num_classes}


def fingerprint(case: Case) -> str:
    """Size and modification time of the image and label files."""
    parts = []
    for path in (case.image, case.label):
        st = path.stat()
        parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def build_volume(case: Case, info: DatasetInfo, cfg: Config) -> Volume:
    """Read, validate and preprocess one case (AunetError naming the file on any problem)."""
    image, label, image_nii = read_case(case)
    label = remap_labels(label, info.labels, cfg, case.label)
    image, label, geometry = preprocess_arrays(image, image_nii.affine, cfg, label)
    return Volume(image, label, geometry.spacing, case.case_id, geometry, foreground_points(label))


class PreparedDataset:
    """Preprocessed cases on disk plus the train/val/test split; `load` returns a Volume."""

    def __init__(self, info: DatasetInfo, cfg: Config, splits: dict[str, list[str]], folder: Path,
                 splits_path: Path, memory: int = 8):
        self.info, self.cfg, self.folder, self.splits_path = info, cfg, folder, splits_path
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        self._cases = {c.case_id: c for c in info.cases}
        self._memory: OrderedDict[str, Volume] = OrderedDict()  # a few recent volumes, for patch sampling
        self._memory_size = memory

    @property
    def case_ids(self) -> list[str]:
        return list(self._cases)

    def path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.npz"

    def is_current(self, case_id: str) -> bool:
        """True when the cache entry exists, matches its manifest's size and was built from the case's present files."""
        return self.problem(case_id) is None

    def problem(self, case_id: str, data: bytes | None = None) -> str | None:
        """None when the entry can be used (`data`, its bytes, checked against the manifest's checksum too);
        otherwise why not: "" when it is absent or stale (rebuilt without a note), else what is damaged."""
        path = self.path(case_id)
        try:
            record = json.loads(manifest_path(path).read_text())
            size = path.stat().st_size if data is None else len(data)
        except (OSError, ValueError):  # no entry or no manifest (an older aunet, a kill between the two): build it
            return ""
        if not isinstance(record, dict) or record.get("source") != fingerprint(self._cases[case_id]):
            return ""
        if size != record.get("bytes"):
            return f"is {size} bytes but its manifest says {record.get('bytes')} (truncated or replaced)"
        if data is not None and zlib.crc32(data) != record.get("crc32"):
            return "does not match its manifest's checksum (damaged or replaced)"
        return None

    def ensure(self, case_id: str, problem: str | None = None) -> bool:
        """Build the cache entry unless a valid one exists (a note names a damaged one); True when it was (re)built."""
        problem = self.problem(case_id) if problem is None else problem
        if problem is None:
            return False
        if problem:
            note_rebuild(self.path(case_id), problem)
        write_entry(self._cases[case_id], self.info, self.cfg, self.path(case_id))
        self._memory.pop(case_id, None)
        return True

    def ensure_all(self, case_ids: list[str], workers: int = 1, progress: bool = True) -> int:
        """Build the missing or stale cache entries of `case_ids`, in `workers` processes; returns how many."""
        from tqdm.auto import tqdm

        problems = {c: self.problem(c) for c in case_ids}
        todo = [c for c, problem in problems.items() if problem is not None]
        for case_id in todo:
            if problems[case_id]:
                note_rebuild(self.path(case_id), problems[case_id])
        with tqdm(total=len(case_ids), initial=len(case_ids) - len(todo), desc="preprocess", unit="case",
                  disable=not progress, leave=False) as bar:
            if workers <= 1 or len(todo) <= 1:
                for case_id in todo:
                    self.ensure(case_id, problem="")  # noted above
                    bar.update()
                return len(todo)
            # spawn, not fork: the parent may hold torch's threads, which a forked child would inherit locked
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:  # a killed parent leaves no worker
                futures = {pool.submit(write_entry, self._cases[c], self.info, self.cfg, self.path(c)) for c in todo}
                while futures:
                    done, futures = wait(futures, return_when=FIRST_EXCEPTION)
                    for future in done:
                        error = future.exception()
                        if isinstance(error, BrokenProcessPool):
                            raise AunetError(f"A preprocessing process for {self.info.root} died (out of memory, or a "
                                             "script without `if __name__ == '__main__':` around its code); use fewer "
                                             "workers.") from None
                        if error is not None:
                            for other in futures:
                                other.cancel()
                            raise error
                        bar.update()
            self._memory.clear()
        return len(todo)

    def load(self, case_id: str) -> Volume:
        """The preprocessed Volume of `case_id` (from memory, else from the cache)."""
        if case_id not in self._cases:
            raise AunetError(f"Unknown case {case_id!r} in {self.info.root}.")
        if case_id in self._memory:
            self._memory.move_to_end(case_id)
            return self._memory[case_id]
        data = _read_bytes(self.path(case_id))
        if self.ensure(case_id, self.problem(case_id, data)):
            data = self.path(case_id).read_bytes()  # just written and checked by write_entry
        with np.load(io.BytesIO(data)) as d:
            geometry = Geometry.from_dict({k[9:]: d[k] for k in d.files if k.startswith("geometry_")})
            fg = {int(k[3:]): d[k] for k in d.files if k.startswith("fg_")}
            volume = Volume(d["image"], d["label"], geometry.spacing, case_id, geometry, fg)
        self._memory[case_id] = volume
        while len(self._memory) > self._memory_size:
            self._memory.popitem(last=False)
        return volume


def write_entry(case: Case, info: DatasetInfo, cfg: Config, path: Path) -> str:
    """Preprocess one case and write its cache file atomically (runs in worker processes); returns the case id."""
    volume = build_volume(case, info, cfg)
    arrays = {"image": volume.image, "label": volume.label, "source": np.array(fingerprint(case)),
              **{f"geometry_{k}": v for k, v in volume.geometry.to_dict().items()},
              **{f"fg_{k}": v for k, v in volume.foreground.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    record = {"bytes": len(data), "crc32": zlib.crc32(data), "source": fingerprint(case)}
    atomic_write_text(manifest_path(path), json.dumps(record) + "\n")  # last: the entry is whole once this exists
    return case.case_id


def manifest_path(entry: Path) -> Path:
    """<case>.manifest.json beside <case>.npz: the entry's size, CRC-32 and source files."""
    return entry.with_suffix(".manifest.json")


def note_rebuild(path: Path, problem: str) -> None:
    """The one-line note for a damaged cache entry that is being rebuilt."""
    print(f"note: cache entry {path} {problem}; rebuilding it.", file=sys.stderr, flush=True)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def prepare_dataset(cfg: Config, progress: bool = True, workers: int = 1,
                    share: tuple[int, int] = (0, 1)) -> PreparedDataset:
    """Validate cfg.data_dir, preprocess the split's cases into the cache (once, in `workers` processes), split it.

    share=(k, n): preprocess only every n-th of those cases from the k-th (one of n processes filling the
    cache together, e.g. the ranks of a torchrun job).
    """
    info = read_dataset(cfg.data_dir, cfg.allow_outside_paths)
    key = settings_key(cfg)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_root(cfg)
    folder = root / digest
    splits, settings = choose_split(cfg, [c.case_id for c in info.cases])
    splits_path = root / "splits.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "settings.json").is_file():
            atomic_write_text(folder / "settings.json", json.dumps(key, indent=1) + "\n")
        record_split(splits_path, splits, settings)
    except OSError as e:
        raise AunetError(f"{root}: cannot write the preprocessing cache ({e.strerror}); set cache_dir.") from None
    dataset = PreparedDataset(info, cfg, splits, folder, splits_path)
    used = set(splits["train"] + splits["val"] + splits["test"])
    cases = [c.case_id for c in info.cases if c.case_id in used][share[0]::share[1]]
    dataset.ensure_all(cases, workers, progress)
    return dataset
