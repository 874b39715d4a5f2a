"""aunet: Attention U-Net (Oktay et al., MIDL 2018), built to be read, run and reproduced.

The models are imported when first used (`aunet.AttentionUNet`, `from aunet import UNet`), not with the
package (PEP 562), so a process that needs no torch (`import aunet.errors`, `aunet data check`, a
preprocessing worker) does not import it.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__version__ = "0.1.0"


def lazy_attributes(package: str, owners: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's `__getattr__` that imports `owners[name]` (a module) when `name` is first asked for."""
    def __getattr__(name: str) -> Any:
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(owners[name]), name)

    return __getattr__


_OWNERS = {"AttentionGate": "aunet.gate", "GatedSkip": "aunet.gate", "UNet": "aunet.unet",
           "AttentionUNet": "aunet.unet", "check_input_size": "aunet.unet", "count_parameters": "aunet.unet"}
__all__ = list(_OWNERS)
__getattr__ = lazy_attributes(__name__, _OWNERS)
