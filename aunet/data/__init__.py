"""Data: synthetic CT phantoms, NIfTI datasets (Decathlon, nnU-Net v2), preprocessing, patches.

    cfg = Config.from_profile("quick", data_dir="data/phantom")
    ds = prepare_dataset(cfg)                                  # validate, cache, split
    train = PatchDataset(ds, ds.train, cfg, seed=cfg.seed)     # (1, X, Y, Z) float32, (X, Y, Z) int64
    val = ValidationDataset(ds, ds.val, cfg)                   # centre crops (the paper's validation)
    image, geometry = preprocess_image(nib.load(path), cfg)    # inference on one file
    original = to_original(prediction, geometry, order=0)      # back onto the input's grid
"""
from aunet.data.check import check_folder
from aunet.data.phantom_folder import write_phantom_dataset
from aunet.data.datasets import read_dataset
from aunet.data.nifti import load_nifti, save_nifti
from aunet.data.patches import PatchDataset, ValidationDataset, center_crop
from aunet.data.phantom import make_phantom
from aunet.data.prepared import PreparedDataset, prepare_dataset
from aunet.data.preprocess import Geometry, Volume, preprocess_image, to_original

__all__ = ["check_folder", "write_phantom_dataset", "read_dataset", "load_nifti", "save_nifti", "PatchDataset",
           "ValidationDataset", "center_crop", "make_phantom", "PreparedDataset", "prepare_dataset",
           "Geometry", "Volume", "preprocess_image", "to_original"]
