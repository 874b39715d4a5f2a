"""Shared fixtures, and the helpers that more than one test module uses."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aunet.config import Config
from aunet.data import write_phantom_dataset

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Small parameters that make each notebook run in seconds on 2 CPU cores (names must exist in the
# notebook's parameters cell).
SMOKE_PARAMETERS: dict[str, dict[str, object]] = {
    "01_attention_gate.ipynb": {"seed": 1, "image_size": 32},
    "02_attention_unet.ipynb": {"input_size": 16, "base_filters": 4, "repeats": 1, "seed": 1},
    "03_data.ipynb": {"cases": 3, "size": [64, 48, 32], "data_dir": "{tmp}/phantom", "seed": 1},
    "04_training.ipynb": {"data_dir": "{tmp}/phantom", "cases": 5, "spacing": 8.0, "epochs": 2,
                          "iterations_per_epoch": 1, "runs_dir": "{tmp}/runs", "figures_dir": "{tmp}/figures"},
    "05_attention_evolution.ipynb": {"out_dir": "{tmp}/runs/attention_unet", "data_dir": "{tmp}/phantom", "cases": 4,
                                     "spacing": 8.0, "epochs": 3, "iterations_per_epoch": 1,
                                     "figures_dir": "{tmp}/figures"},
    "06_paper_tables.ipynb": {"ct150_data_dir": "{tmp}/phantom_a", "tcia_data_dir": "{tmp}/phantom_b", "ct150_cases": 8,
                              "tcia_cases": 6, "phantom_size": [80, 64, 32], "spacing": 8.0, "epochs": 1,
                              "iterations_per_epoch": 1, "ct150_seeds": [0], "tcia_seeds": [0], "workers": 1,
                              "runs_dir": "{tmp}/runs", "tables_dir": "{tmp}/tables", "figures_dir": "{tmp}/figures"},
    "07_slice_viewer.ipynb": {"data_dir": "{tmp}/phantom", "cases": 1, "size": [48, 40, 24], "case": 0,
                              "run_dir": "{tmp}/no_run"},
    "08_does_attention_help.ipynb": {"epochs_scale": 0.025, "iterations_per_epoch": 1, "spacing": 8.0, "seeds": [0],
                                     "workers": 2, "cases": 8, "phantom_size": [80, 64, 32],
                                     "data_dir": "{tmp}/phantom", "distractors_data_dir": "{tmp}/phantom_distractors",
                                     "wide_fov_data_dir": "{tmp}/phantom_wide_fov", "runs_dir": "{tmp}/runs",
                                     "tables_dir": "{tmp}/tables", "figures_dir": "{tmp}/figures"},
}

@pytest.fixture(autouse=True)
def same_thread_count():
    """Every test starts with the process's thread count: float sums, so trained weights, depend on it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# a training run of seconds on 2 CPU cores (tests/test_train.py, tests/test_distributed.py)
TINY = dict(spacing=8.0, patch_size=(32, 32, 32), base_filters=2, batch_size=2, iterations_per_epoch=2,
            lr=1e-3, val_fraction=0.25, test_fraction=0.25, snapshot_epochs=(1, 2, 3), device="cpu",
            lr_schedule="step")  # runs continued for more epochs keep their schedule (poly would not: aunet.train)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "phantom"
    write_phantom_dataset(out, cases=4, seed=0, size=(80, 64, 32), progress=False)
    return out


def tiny_config(phantom: Path, out_dir: Path, **overrides) -> Config:
    return Config.from_profile("quick", **{**TINY, "data_dir": str(phantom), "out_dir": str(out_dir), **overrides})


@pytest.fixture
def speedups_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests of aunet's fast paths build them whatever AUNET_FAST says in the caller's environment."""
    monkeypatch.delenv("AUNET_FAST", raising=False)


@pytest.fixture
def huge_nifti():
    """Write a tiny NIfTI file (gzip by its name) whose header declares 10000x10000x2500 float32 voxels: 1 TB."""
    import gzip

    import nibabel as nib
    import numpy as np

    def write(path, shape=(10000, 10000, 2500)):
        header = nib.Nifti1Header()
        header.set_data_shape(shape)
        header.set_data_dtype(np.float32)
        header.set_sform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
        header["vox_offset"] = 352
        raw = header.binaryblock + b"\0" * 4 + b"\0" * 64  # the header, no extensions, 16 voxels
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
        return path
    return write
