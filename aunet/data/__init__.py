"""Data: synthetic CT phantoms, NIfTI datasets (Decathlon, nnU-Net v2), preprocessing, patches.

    cfg = Config.from_profile("quick", data_dir="data/phantom")
    ds = prepare_dataset(cfg)                                  # validate, cache, split
    train = PatchDataset(ds, ds.train, cfg, seed=cfg.seed)     # (1, X, Y, Z) float32, (X, Y, Z) int64
    image, label = center_crop(ds.load(ds.val[0]), cfg.patch_size)  # a centre crop (the paper's validation)
    image, geometry = preprocess_image(nib.load(path), cfg)    # inference on one file
    original = to_original(prediction, geometry, order=0)      # back onto the input's grid

Each name is imported from its module when first used, so the modules that need no torch (all but
`aunet.data.patches`, `augment` and `loader`) stay free of it: `aunet data check`, `aunet data prepare`'s workers.
"""
from __future__ import annotations

from aunet import lazy_attributes

_OWNERS = {"check_folder": "aunet.data.check", "write_phantom_dataset": "aunet.data.phantom_folder",
           "read_dataset": "aunet.data.datasets", "load_nifti": "aunet.data.nifti", "save_nifti": "aunet.data.nifti",
           "PatchDataset": "aunet.data.patches", "center_crop": "aunet.data.patches",
           "make_phantom": "aunet.data.phantom", "PreparedDataset": "aunet.data.prepared",
           "prepare_dataset": "aunet.data.prepared", "Geometry": "aunet.data.preprocess",
           "Volume": "aunet.data.preprocess", "preprocess_image": "aunet.data.preprocess",
           "to_original": "aunet.data.preprocess"}
__all__ = list(_OWNERS)
__getattr__ = lazy_attributes(__name__, _OWNERS)
