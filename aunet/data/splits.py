"""Split files: a dataset's train/val/test cases saved once, so that every run of a table uses the same cases.

This module draws every split and writes and reads every split file (`save_splits` is their one writer). A split
file is JSON in the dataset folder, `<data_dir>/splits/<name>.json`:

    {"name": "120_30", "seed": 0, "test_fraction": 0.2, "val_fraction": 0.1, "cases": 150,
     "train": ["case_a", ...], "val": [...], "test": [...]}

`Config.split_file` names one; `aunet.data.prepare_dataset` then uses its cases instead of drawing a
seeded split (and refuses a file that names cases the folder lacks), and records the split it used in its
cache (`record_split`). The paper's proportions (Oktay et al., MIDL 2018, section 3 and its results tables),
written by the phantom, `aunet data fetch`, `aunet data convert` and `aunet data split`:

    120_30   CT-150-like: 120 training / 30 test scans          test 30/150, val 0.1
    30_120   CT-150-like, little training data: 30 / 120        test 120/150, val 0.04
    61_21    TCIA Pancreas-CT: 61 training / 21 test scans      test 21/82, val 0.1

The paper names no validation set: `val` is held out of the training scans to choose best.pt (the
fractions are of all cases, as in `aunet.experiments`). The files are drawn with seed 0, Config's
default, so they hold the cases aunet's seeded split chose before split files existed.

    find_split_file("data/phantom", test_fraction=30 / 150, val_fraction=0.1)   # "data/phantom/splits/120_30.json"
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from aunet.config import Config
from aunet.errors import AunetError
from aunet.io import atomic_write_text

SPLIT_SEED = 0
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    """One of the paper's train/test proportions, and the share of all cases held out for validation."""

    test_fraction: float
    val_fraction: float
    description: str


PAPER_SPLITS: dict[str, SplitSpec] = {
    "120_30": SplitSpec(30 / 150, 0.1, "the paper's CT-150 setting: 120 training / 30 test scans"),
    "30_120": SplitSpec(120 / 150, 0.04, "the paper's CT-150 setting with little training data: 30 / 120"),
    "61_21": SplitSpec(21 / 82, 0.1, "the paper's TCIA Pancreas-CT setting: 61 training / 21 test scans"),
}
CT150_SPLITS = ("120_30", "30_120")
TCIA_SPLITS = ("61_21",)


def make_splits(case_ids: list[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Seeded train/val/test split; each nonzero fraction gets at least one case."""
    ids = sorted(case_ids)
    n = len(ids)
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise AunetError(f"{n} case(s) cannot be split into train/val/test with val_fraction={val_fraction} "
                         f"and test_fraction={test_fraction}; add cases or lower the fractions.")
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    return {"test": sorted(shuffled[:n_test]), "val": sorted(shuffled[n_test:n_test + n_val]),
            "train": sorted(shuffled[n_test + n_val:])}


def save_splits(path: Path, splits: dict[str, list[str]], **settings: object) -> None:
    """Write the split (and the settings that made it) as JSON, atomically."""
    atomic_write_text(path, json.dumps({**settings, **splits}, indent=1) + "\n")


def choose_split(cfg: Config, case_ids: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, object]]:
    """The split a run of `cfg` uses (cfg.split_file's, else drawn from cfg.seed) and the settings that made it."""
    if cfg.split_file:
        return read_split_file(cfg.split_file, case_ids), {"split_file": cfg.split_file}
    splits = make_splits(list(case_ids), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    return splits, {"seed": cfg.seed, "val_fraction": cfg.val_fraction, "test_fraction": cfg.test_fraction}


def record_split(path: Path, splits: dict[str, list[str]], settings: dict[str, object]) -> None:
    """Save the split a dataset is used with (the cache's splits.json), unless the file holds exactly it already."""
    try:
        same = json.loads(path.read_text()) == {**settings, **splits}
    except (OSError, ValueError):  # missing or unreadable: write it
        same = False
    if not same:
        save_splits(path, splits, **settings)


def split_path(data_dir: str | Path, name: str) -> Path:
    """Where the split file `name` of a dataset folder lives: <data_dir>/splits/<name>.json."""
    return Path(data_dir) / "splits" / f"{name}.json"


def write_split_file(path: str | Path, case_ids: Sequence[str], test_fraction: float, val_fraction: float,
                     seed: int = SPLIT_SEED, **info: object) -> dict[str, list[str]]:
    """Draw a seeded train/val/test split of `case_ids` and save it (atomically) with its settings."""
    drawn = make_splits(list(case_ids), val_fraction, test_fraction, seed)
    splits = {k: drawn[k] for k in PARTS}
    save_splits(Path(path), splits, **info, seed=seed, test_fraction=test_fraction, val_fraction=val_fraction,
                cases=len(case_ids))
    return splits


def write_paper_splits(data_dir: str | Path, case_ids: Sequence[str], names: Iterable[str] = tuple(PAPER_SPLITS),
                       seed: int = SPLIT_SEED) -> list[Path]:
    """Write the paper's split files `names` that the cases allow (each part non-empty); returns those written."""
    written = []
    for name in names:
        spec = PAPER_SPLITS[name]
        path = split_path(data_dir, name)
        try:
            write_split_file(path, case_ids, spec.test_fraction, spec.val_fraction, seed, name=name,
                             description=spec.description)
        except AunetError:  # too few cases for this proportion
            continue
        written.append(path)
    return written


def read_split_file(path: str | Path, case_ids: Iterable[str]) -> dict[str, list[str]]:
    """The train/val/test lists of a split file, checked against the dataset's `case_ids`."""
    path = Path(path)
    expected = 'a JSON object with "train", "val" and "test" lists of case ids'
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise AunetError(f"split_file {path}: not found; expected {expected} (aunet data split writes them).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AunetError(f"split_file {path}: cannot be read ({e}); expected {expected}.") from None
    if not isinstance(raw, dict) or any(not isinstance(raw.get(k), list) for k in PARTS) \
            or any(not isinstance(c, str) for k in PARTS for c in raw[k]):
        raise AunetError(f"split_file {path}: is not {expected}.")
    splits = {k: list(raw[k]) for k in PARTS}
    named = [c for k in PARTS for c in splits[k]]
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        raise AunetError(f"split_file {path}: lists case(s) {', '.join(twice[:5])} more than once; expected each case "
                         "in one part.")
    known = set(case_ids)
    missing = [c for c in named if c not in known]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise AunetError(f"split_file {path}: names case(s) {', '.join(missing[:5])}{more} that the dataset folder "
                         "lacks; expected a split of this dataset's cases.")
    if not splits["train"]:
        raise AunetError(f"split_file {path}: has no training cases; expected at least one.")
    return splits


def find_split_file(data_dir: str | Path, test_fraction: float, val_fraction: float) -> str:
    """The split file of `data_dir` saved for these fractions, or "" when there is none (a seeded split is drawn)."""
    folder = Path(data_dir) / "splits"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            raw = json.loads(path.read_text())
            if math.isclose(raw["test_fraction"], test_fraction) and math.isclose(raw["val_fraction"], val_fraction):
                return str(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return ""
