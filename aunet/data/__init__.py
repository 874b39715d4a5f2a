"""Data: synthetic CT phantoms, NIfTI datasets (Decathlon, nnU-Net v2), preprocessing, patches.

    cfg = Config.from_profile("quick", data_dir="data/phantom")
    ds = prepare_dataset(cfg)                                  # validate, cache, split
    train = PatchDataset(ds, ds.train, cfg, seed=cfg.seed)     # (1, X, Y, Z) float32, (X, Y, Z) int64
    image, label = center_crop(ds.load(ds.val[0]), cfg.patch_size)  # a centre crop (the paper's validation)
    image, geometry = preprocess_image(nib.load(path), cfg)    # inference on one file
    original = to_original(prediction, geometry, order=0)      # back onto the input's grid

Each name is imported from its module on first use: only `patches`, `augment` and `loader` need torch.
"""
from __future__ import annotations

from aunet import lazy_attributes

_MODULES = {"check": "check_folder", "phantom_folder": "write_phantom_dataset", "datasets": "read_dataset",
            "nifti": "load_nifti save_nifti", "patches": "PatchDataset center_crop", "phantom": "make_phantom",
            "prepared": "PreparedDataset prepare_dataset", "preprocess": "Geometry Volume preprocess_image to_original"}
__getattr__ = lazy_attributes(__name__, _MODULES)
__all__ = [name for names in _MODULES.values() for name in names.split()]
