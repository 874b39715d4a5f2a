"""The paper's reported numbers, in one place: Oktay et al., "Attention U-Net: Learning Where to Look for the
Pancreas", MIDL 2018 (the poster's pancreas results).

RESULTS holds, per (experiment, model), the paper's (mean, std) over its test scans for each metric, its
parameter count and its inference seconds (one 160x160x96 forward pass on a GPU); the TCIA table gives no
parameter counts or inference times, so those entries are absent. The tables, the claims and the benchmark
page read them from here and show them only in columns labelled "paper".
"""
from __future__ import annotations

from typing import Any

RESULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("ct150_120_30", "unet"): {"dice": (0.814, 0.116), "precision": (0.848, 0.110), "recall": (0.806, 0.126),
                               "s2s_mm": (2.358, 1.464), "params": 5.88e6, "seconds": 0.167, "test_cases": 30},
    ("ct150_120_30", "attention_unet"): {"dice": (0.840, 0.087), "precision": (0.849, 0.098),
                                         "recall": (0.841, 0.092), "s2s_mm": (1.920, 1.284), "params": 6.40e6,
                                         "seconds": 0.179, "test_cases": 30},
    ("ct150_30_120", "unet"): {"dice": (0.741, 0.137), "precision": (0.789, 0.176), "recall": (0.743, 0.179),
                               "s2s_mm": (3.765, 3.452), "params": 5.88e6, "seconds": 0.167, "test_cases": 120},
    ("ct150_30_120", "attention_unet"): {"dice": (0.767, 0.132), "precision": (0.794, 0.150),
                                         "recall": (0.762, 0.145), "s2s_mm": (3.507, 3.814), "params": 6.40e6,
                                         "seconds": 0.179, "test_cases": 120},
    ("tcia_61_21", "unet"): {"dice": (0.815, 0.068), "precision": (0.815, 0.105), "recall": (0.826, 0.062),
                             "s2s_mm": (2.576, 1.180), "test_cases": 21},
    ("tcia_61_21", "attention_unet"): {"dice": (0.821, 0.057), "precision": (0.815, 0.093),
                                       "recall": (0.835, 0.057), "s2s_mm": (2.333, 0.856), "test_cases": 21},
    ("tcia_finetune", "unet"): {"dice": (0.820, 0.043), "precision": (0.824, 0.070), "recall": (0.828, 0.064),
                                "s2s_mm": (2.464, 0.529), "test_cases": 21},
    ("tcia_finetune", "attention_unet"): {"dice": (0.831, 0.038), "precision": (0.825, 0.073),
                                          "recall": (0.840, 0.053), "s2s_mm": (2.305, 0.568), "test_cases": 21},
}
INPUT_SIZE = (160, 160, 96)  # the volume of the paper's inference times (one forward pass, batch 1, a GPU)
FIGURE_EPOCHS = (3, 6, 10, 60, 150)  # the epochs of the paper's attention-map figure (of ~150 shown)
COST_EXPERIMENT = "ct150_120_30"  # the table that gives parameters and inference times


def mean(experiment: str, model: str, metric: str) -> float:
    """The paper's mean of one metric over its test scans."""
    return RESULTS[experiment, model][metric][0]


def gain(experiment: str, metric: str) -> float:
    """Attention U-Net minus U-Net, the difference of the paper's means (it reports no test)."""
    return mean(experiment, "attention_unet", metric) - mean(experiment, "unet", metric)


def cost_ratio(key: str) -> float:
    """Attention U-Net / U-Net in parameters ("params") or inference seconds ("seconds")."""
    return RESULTS[COST_EXPERIMENT, "attention_unet"][key] / RESULTS[COST_EXPERIMENT, "unet"][key]
