"""Shared fixtures."""
from __future__ import annotations

import pytest


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
