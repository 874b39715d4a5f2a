"""aunet: Attention U-Net (Oktay et al., MIDL 2018), built to be read, run and reproduced.

The models come on first use (`aunet.AttentionUNet`; PEP 562), so `import aunet.errors`, `aunet data check`
and a preprocessing worker never import torch.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

__version__ = "0.1.0"  # the source's own; an installed aunet reports its package metadata (version())


def version() -> str:
    """The installed distribution's version (importlib.metadata), else this source's __version__."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("aunet")
    except PackageNotFoundError:  # run from a checkout that was never pip-installed
        return __version__


def lazy_attributes(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """A package's `__getattr__`: `modules` maps a submodule to the names it gives, each imported on first use."""
    owners = {name: f"{package}.{module}" for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(owners[name]), name)
    return __getattr__


_MODULES = {"gate": "AttentionGate GatedSkip", "unet": "UNet AttentionUNet check_input_size count_parameters"}
__getattr__ = lazy_attributes(__name__, _MODULES)
__all__ = [name for names in _MODULES.values() for name in names.split()]
