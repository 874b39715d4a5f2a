"""The label conventions aunet meets, defined once: values, names, colours, and the maps between them.

aunet's models predict the CT-150 labels of the paper (Oktay et al. 2018): 0 background, 1 spleen,
2 pancreas, 3 kidney. The public pancreas datasets label differently, and a `label_map` (source
value -> model value) brings them onto the model's labels:

    convention     source labels                         label map to CT-150 (by name)
    ct150          0 background 1 spleen 2 pancreas 3 kidney   (identity)
    msd-pancreas   0 background 1 pancreas 2 tumour       {"1": 2, "2": 2}  (the paper segments the whole
                                                                              pancreas, tumour included)
    nih-pancreas   0 background 1 pancreas                {"1": 2}

Every plot, the slice viewer, the phantom and the tables take names and colours from here, so the
pancreas has one colour everywhere.

    from aunet.labels import CT150, class_names, colour, label_map, value
    label_map("msd-pancreas")   # {"1": 2, "2": 2}
    value("pancreas")           # 2, the pancreas' CT-150 value
"""
from __future__ import annotations

from typing import Mapping

from aunet.errors import AunetError

# value -> name, per convention
CT150: dict[int, str] = {0: "background", 1: "spleen", 2: "pancreas", 3: "kidney"}
MSD_PANCREAS: dict[int, str] = {0: "background", 1: "pancreas", 2: "tumour"}
NIH_PANCREAS: dict[int, str] = {0: "background", 1: "pancreas"}

# source convention -> label_map onto the model's CT-150 labels (keys are strings, as in Config.label_map)
LABEL_MAPS: dict[str, dict[str, int]] = {"ct150": {}, "msd-pancreas": {"1": 2, "2": 2}, "nih-pancreas": {"1": 2}}
# TotalSegmentator v2 class values -> CT-150 values, for `aunet data example-ct`; every other class becomes
# background (so not a LABEL_MAPS entry: a label_map keeps unmapped values, and TotalSegmentator has 117)
TOTALSEG_TO_CT150: dict[int, int] = {1: 1, 7: 2, 2: 3, 3: 3}  # spleen, pancreas, kidney_right, kidney_left

# organ name -> RGB in 0..1; one colour per organ in every figure and the viewer
COLOURS: dict[str, tuple[float, float, float]] = {
    "spleen": (0.2, 0.6, 1.0),
    "pancreas": (1.0, 0.85, 0.1),
    "kidney": (0.2, 0.9, 0.3),
    "tumour": (1.0, 0.3, 0.3),
}
TARGET = "pancreas"  # the organ of the paper's tables


def class_names(num_classes: int) -> dict[int, str]:
    """Foreground value -> name for a model with `num_classes` outputs: CT-150's for 4, else 'class<k>'."""
    return {k: CT150[k] if num_classes == len(CT150) else f"class{k}" for k in range(1, num_classes)}


def colour(name: str) -> tuple[float, float, float]:
    """The RGB colour (0..1) of an organ; grey for a name without one (e.g. 'class5')."""
    return COLOURS.get(name, (0.7, 0.7, 0.7))


def value(name: str, names: Mapping[int, str] = CT150) -> int:
    """The label value of an organ in a convention (CT-150 by default), e.g. value("pancreas") == 2."""
    for k, n in names.items():
        if n == name:
            return k
    raise AunetError(f"Organ {name!r} has no label here; expected one of: {', '.join(names.values())}.")


def label_map(name: str) -> dict[str, int]:
    """The label map from a named source convention onto the model's CT-150 labels."""
    if name not in LABEL_MAPS:
        raise AunetError(f"Unknown label convention {name!r}; expected one of: {', '.join(LABEL_MAPS)}.")
    return dict(LABEL_MAPS[name])
