"""Device choice and mixed precision: CUDA (with autocast) when present, the CPU otherwise."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from aunet.errors import AunetError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AunetError(f"device={name!r} was requested but PyTorch sees no CUDA GPU; use device='auto' or 'cpu'.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise AunetError(f"device={name!r} is not a device PyTorch knows; expected 'auto', 'cpu' or 'cuda'.") from None


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op on the CPU."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def needs_grad_scaler(device: torch.device, enabled: bool = True) -> bool:
    """float16 autocast needs loss scaling; bfloat16 and float32 do not."""
    return device.type == "cuda" and enabled and not torch.cuda.is_bf16_supported()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for a repeatable run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
