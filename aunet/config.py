"""One configuration object for the CLI and the notebooks' `parameters` cells.

Defaults are the paper's setup (Oktay et al., MIDL 2018, section 3). Named profiles override a few
fields: `quick` (CPU, small volumes, minutes; docs/reproduction.md says why each differs) and `paper`.
Each field's `# comment` is its `--help` text (`Config.field_help`, read from this file), so write it as the
phrase a user of `aunet train --help` should read; a comment line right below a field continues it.

    cfg = Config.from_profile("quick", epochs=5)      # notebooks: fields from the parameters cell
    RunFolder(run_dir).write_config(cfg)               # every run writes its config beside its results (aunet.run)
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aunet.errors import AunetError
from aunet.paper import FIGURE_EPOCHS


@dataclass
class Config:
    """Every setting of a data -> train -> evaluate run; all fields defaulted to the paper's setup."""

    # --- model ---------------------------------------------------------------------------------
    model: str = "attention_unet"  # the network: "unet" or "attention_unet"
    in_channels: int = 1  # image channels of the input, 1 for CT
    num_classes: int = 4  # output classes, background included (CT-150: background, spleen, pancreas, kidney)
    base_filters: int = 16  # filters per level are base * (1, 2, 4, 8, 16): the paper's 16-32-64-128-256
    deep_supervision: bool = True  # the output fuses class scores of all four decoder levels (the paper's head)
    gates_per_level: int = 2  # attention gates per gated level, 1 or 2 (the paper's released code: 2)
    gating: str = "decoder"  # gating signal: "decoder" (the paper's figure) or "bottleneck" (one for all levels)
    gating_channels: int = 0  # channels of the projected bottleneck gating signal; 0 = 8 * base_filters

    # --- data ----------------------------------------------------------------------------------
    data_dir: str = "data/phantom"  # dataset folder in the Decathlon or nnU-Net v2 layout
    label_map: dict[str, int] = field(default_factory=dict)  # remap source labels, e.g. {"2": 1}, or name a
    # convention: "msd-pancreas" (pancreas and tumour -> 2), "nih-pancreas" (aunet.labels.label_map)
    spacing: float = 2.0  # target isotropic voxel spacing in mm (paper: 2.00 mm)
    patch_size: tuple[int, int, int] = (160, 160, 96)  # training patch (x, y, z) in voxels, each a multiple of 16
    intensity_range: tuple[float, float] = (-200.0, 300.0)  # HU window (low, high) clipped to before z-scoring
    foreground_fraction: float = 0.5  # share of patches centred on a foreground voxel
    augment: bool = True  # random flips, rotation +-15 deg, translation +-10 %, zoom 0.7-1.3
    val_fraction: float = 0.1  # share of the cases held out for validation (seeded split; see split_file)
    test_fraction: float = 0.2  # share of the cases held out for testing (seeded split; see split_file)
    split_file: str = ""  # a saved split (aunet.data.splits) used instead of the seeded one; "" = draw it
    cache_dir: str = ""  # preprocessed-volume cache; "" = <data_dir>/.aunet_cache
    allow_outside_paths: bool = False  # accept dataset.json entries outside data_dir (absolute, or through "..")

    # --- training ------------------------------------------------------------------------------
    epochs: int = 1000  # training epochs
    iterations_per_epoch: int = 0  # optimiser steps per epoch; 0 = one pass over the training cases
    batch_size: int = 2  # patches per optimiser step
    optimizer: str = "adam"  # "adam" (the paper) or "sgd" (Nesterov momentum 0.99, nnU-Net's); aunet.optim
    lr: float = 1e-4  # initial learning rate
    weight_decay: float = 1e-6  # weight decay (L2 penalty)
    lr_schedule: str = "step"  # "step" (x lr_gamma every lr_step epochs, the paper) or "poly" (to 0 at the last epoch)
    lr_step: int = 250  # step schedule: multiply the learning rate by lr_gamma every lr_step epochs
    lr_gamma: float = 0.5  # step schedule: the factor applied every lr_step epochs (0.5: halve it)
    loss: str = "dice"  # "dice" (soft Dice over all classes, the paper) or "dice_ce" (cross-entropy + Dice)
    seed: int = 0  # seeds the initial weights, the batches and (without split_file) the split
    device: str = "auto"  # where to train: "auto" (CUDA when present, else CPU), "cpu" or "cuda"
    amp: bool = True  # mixed precision (CUDA only)
    snapshot_epochs: tuple[int, ...] = FIGURE_EPOCHS  # epochs whose attention maps are saved (paper's figure)
    out_dir: str = "results/runs/run"  # run folder: config, history, checkpoints, attention snapshots, evaluation
    init_checkpoint: str = ""  # fine-tuning: start from this checkpoint's model weights only ("" = random init)

    # --- validation during training (aunet.validation) -------------------------------------------
    val_patches: int = 4  # every epoch: Dice on the centre crops of this many validation cases (fixed; 0 = all)
    val_every: int = 50  # whole-volume validation every val_every epochs and after the last (it chooses best.pt)

    # --- speed: where batches are built, how the step runs -----------------------------------------
    num_workers: int = -1  # batch-building processes per training process; -1 = automatic (CPU 0; CUDA cores-1, <= 8)
    compile: bool = False  # torch.compile the model (opt-in: minutes of compiling first, then faster CUDA steps)
    channels_last: bool = False  # channels_last_3d memory format of model and batches (CUDA; benchmarks/gpu_check.sh)

    # --- inference -----------------------------------------------------------------------------
    overlap: float = 0.5  # sliding-window overlap between neighbouring patches
    inference_patch_size: tuple[int, int, int] = (160, 160, 96)  # sliding-window size (validation, test, predict)

    @property
    def filters(self) -> tuple[int, ...]:
        """Encoder widths: base_filters * (1, 2, 4, 8, 16)."""
        return tuple(self.base_filters * m for m in (1, 2, 4, 8, 16))

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's comment above, its default and the profiles' values: the CLI's --help texts.

        e.g. {"lr": "initial learning rate (default 0.0001; quick profile 0.002)", ...}
        """
        comments, default = _field_comments(), cls()
        out = {}
        for name in cls.fields():
            values = [f"default {format_value(getattr(default, name))}"]
            values += [f"{profile} profile {format_value(v)}" for profile, overrides in PROFILES.items()
                       if name in overrides and (v := overrides[name]) != getattr(default, name)]
            out[name] = f"{comments.get(name, name.replace('_', ' '))} ({'; '.join(values)})"
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Config | None = None) -> Config:
        """A Config from `base` (default: the paper's) with `values` checked and applied."""
        known = cls.fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise AunetError(f"Unknown parameter(s) {', '.join(unknown)}; valid parameters are: {', '.join(known)}.")
        hints = typing.get_type_hints(cls)
        checked = {name: _coerce(name, value, hints[name]) for name, value in values.items()}
        cfg = dataclasses.replace(base or cls(), **checked)
        cfg.validate()
        return cfg

    @classmethod
    def from_profile(cls, profile: str = "paper", **overrides: Any) -> Config:
        """The named profile ("quick" or "paper") with `overrides` applied."""
        if profile not in PROFILES:
            raise AunetError(f"Unknown profile {profile!r}; expected one of: {', '.join(PROFILES)}.")
        return cls.from_dict({**PROFILES[profile], **overrides})

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a run's config file (RunFolder.write_config writes it); AunetError naming a bad file."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AunetError(f"Cannot read config {path}: {e}; expected a JSON object written by aunet.") from None
        if not isinstance(values, dict):
            raise AunetError(f"{path}: holds a JSON {type(values).__name__}; expected the object of Config fields "
                             f"aunet writes.")
        unknown = sorted(set(values) - set(cls.fields()))
        if unknown:
            raise AunetError(f"{path}: unknown key(s) {', '.join(unknown)}; expected only Config fields (written "
                             f"by another version of aunet, or edited by hand?).")
        try:
            return cls.from_dict(values)
        except AunetError as e:
            raise AunetError(f"{path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise AunetError naming the first field whose value cannot work."""
        choices = {"model": ("unet", "attention_unet"), "gating": ("decoder", "bottleneck"),
                   "loss": ("dice", "dice_ce"), "optimizer": ("adam", "sgd"), "lr_schedule": ("step", "poly")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise AunetError(f"{name}={getattr(self, name)!r} is not valid; expected one of {allowed}.")
        if self.gates_per_level not in (1, 2):
            raise AunetError(f"gates_per_level={self.gates_per_level} is not valid; expected 1 or 2.")
        for name in ("patch_size", "inference_patch_size"):
            if any(s <= 0 or s % 16 for s in getattr(self, name)):
                raise AunetError(f"{name}={getattr(self, name)} is not valid; every side must be a positive "
                                 "multiple of 16.")
        for name in ("epochs", "batch_size", "base_filters", "num_classes", "in_channels"):
            if getattr(self, name) < 1:
                raise AunetError(f"{name}={getattr(self, name)} is not valid; expected a positive integer.")
        if self.num_workers < -1:
            raise AunetError(f"num_workers={self.num_workers} is not valid; expected -1 (automatic), 0 or more.")
        if self.val_patches < 0:
            raise AunetError(f"val_patches={self.val_patches} is not valid; expected 0 (all validation cases) or more.")
        if self.val_every < 1:
            raise AunetError(f"val_every={self.val_every} is not valid; expected a positive integer.")
        if not 0 <= self.overlap < 1:
            raise AunetError(f"overlap={self.overlap} is not valid; expected 0 <= overlap < 1.")

    def build_model(self):
        """The configured U-Net or Attention U-Net (3D)."""
        from aunet.unet import AttentionUNet, UNet

        common = dict(in_channels=self.in_channels, num_classes=self.num_classes, dim=3,
                      filters=self.filters, deep_supervision=self.deep_supervision)
        if self.model == "unet":
            return UNet(**common)
        return AttentionUNet(**common, gates_per_level=self.gates_per_level, gating=self.gating,
                             gating_channels=self.gating_channels or 8 * self.base_filters)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check `value` against the field's type; accept lists for tuples and ints for floats."""
    origin = typing.get_origin(hint)
    try:
        if origin is tuple:
            args = typing.get_args(hint)
            item = args[0]
            if isinstance(value, str):
                value = [v for v in value.replace("x", ",").split(",") if v.strip()]
            value = tuple(_coerce(name, v, item) for v in value)
            if args[-1] is not Ellipsis and len(value) != len(args):
                raise TypeError(f"{len(args)} values")
            return value
        if origin is dict:
            if isinstance(value, str) and not value.lstrip().startswith("{"):
                from aunet.labels import label_map

                return label_map(value.strip())  # a convention's name; unknown names: one AunetError sentence
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise TypeError("a mapping")
            return {str(k): int(v) for k, v in value.items()}
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise TypeError("true or false")
            return value
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError("an integer")
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise TypeError("a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise TypeError("a string")
            return value
    except (TypeError, ValueError, json.JSONDecodeError):
        raise AunetError(f"Parameter {name}={value!r} has the wrong type; expected {_describe(hint)}.") from None
    return value


def format_value(value: Any) -> str:
    """A field's value as the command line takes it: 160,160,96 / true / {"2": 1} / "" for an empty string."""
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else '""'


@functools.cache
def _field_comments() -> dict[str, str]:
    """The `# comment` after each field of Config in this file, with the comment lines that continue it."""
    try:
        lines = inspect.getsource(Config).splitlines()
    except (OSError, TypeError):  # no source (a frozen or zipped install): the help shows defaults only
        return {}
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline)
                if tok.type == tokenize.COMMENT}
    body = ast.parse(textwrap.dedent("\n".join(lines))).body[0].body
    out = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.end_lineno in comments:
            line, text = node.end_lineno, [comments[node.end_lineno]]
            while line + 1 in comments and lines[line].lstrip().startswith("#"):  # lines[line]: 1-based line + 1
                line += 1
                text.append(comments[line])
            out[node.target.id] = " ".join(text)
    return out


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        n = "several" if args[-1] is Ellipsis else str(len(args))
        return f"{n} {args[0].__name__} values, e.g. 160,160,96"
    if origin is dict:
        return 'a JSON mapping such as {"2": 1} or a label convention\'s name such as msd-pancreas'
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


# Profiles override only what differs from the paper's defaults.
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {  # CPU, synthetic phantom, minutes; trades the paper's exact recipe for speed
        "spacing": 4.0,
        "patch_size": (48, 48, 32),
        "inference_patch_size": (112, 96, 64),  # a whole quick-profile volume in one window
        "base_filters": 8,
        "batch_size": 2,
        "loss": "dice_ce",  # cross-entropy + Dice learns the small organs in fewer steps than Dice alone
        "foreground_fraction": 1.0,  # every patch centred on an organ: finds the pancreas sooner (docs/reproduction.md)
        "lr": 2e-3,
        "lr_schedule": "poly",  # falls to 0 at the last epoch, so a run stops changing (docs/reproduction.md)
        "epochs": 40,
        "iterations_per_epoch": 25,
        "snapshot_epochs": (1, 2, 5, 10, 20, 30, 40),
        "val_every": 1,  # a quick volume is one sliding window: whole-volume validation every epoch stays cheap
        "out_dir": "results/runs/quick",
    },
}
