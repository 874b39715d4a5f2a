"""The run folder: every file one training run leaves, its name and its format, read and written only here.

    config.json                       the Config the run trained with (JSON)
    device.json                       where it trained: device type and name, processes, torch version, speed-ups
    history.csv                       one row per epoch: loss, validation Dice per class, lr, seconds, ...
    last.pt, best.pt                  checkpoints (atomic; torch.load(..., weights_only=True) reads them)
    attention/epoch_XXX.npz           every gated level's alpha on one fixed slice (aunet.snapshots)
    evaluation_<split>.csv            one row per held-out case: metrics per class, inference seconds
    evaluation_<split>_summary.json   mean and std of every column over the cases
    predictions/<case>/               predictions of single CTs (notebook 07, `aunet predict` into the run)
    reused_from.txt                   a run copied from another folder names its source

    .writer.lock                      held (flock) by the one process writing the folder; records its pid

Every write is atomic, so a reader (or a resumed run) sees a whole file or the previous one, and one
process at a time writes a folder: `writing()` holds its lock (aunet.io.exclusive_lock) for a whole
training, every write method for its own write; a second writer is refused, naming the holder. The
trainer builds the checkpoint dict (`aunet.train.Trainer.checkpoint_state`); this module writes it,
reads it back and checks that it is one, with one error message per way it can be wrong.

    run = RunFolder("results/runs/quick/attention_unet")
    run.read_history()[-1]["val_pancreas_dice"]
    model, cfg = run.load_model("best")
"""
from __future__ import annotations

import csv
import functools
import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from aunet.config import Config
from aunet.errors import AunetError
from aunet.io import atomic_folder, atomic_write, atomic_write_csv, atomic_write_text, exclusive_lock

CONFIG, DEVICE, HISTORY, SNAPSHOTS, REUSED = "config.json", "device.json", "history.csv", "attention", "reused_from.txt"
PREDICTIONS, LOCK = "predictions", ".writer.lock"
CHECKPOINTS = ("last", "best")
CHECKPOINT_KEYS = ("model", "model_name", "config")  # what every aunet checkpoint holds (resume needs more)
EVALUATION = re.compile(r"evaluation_\w+?(_summary\.json|\.csv)")

_writers: dict[Path, list] = {}  # folder -> [its lock, depth]: the folders this process writes now
Method = TypeVar("Method", bound=Callable[..., Any])


def _one_writer(method: Method) -> Method:
    """A RunFolder method that writes: it runs as the folder's one writer (RunFolder.writing)."""
    @functools.wraps(method)
    def locked(self: RunFolder, *args: Any, **kwargs: Any) -> Any:
        with self.writing():
            return method(self, *args, **kwargs)
    return locked  # type: ignore[return-value]


class RunFolder:
    """One run's folder; the only code that knows its files' names and formats."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # --- one writer ------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[RunFolder]:
        """Be the folder's one writer while inside (reentrant); AunetError naming the process that is otherwise."""
        key = self.path.resolve()
        held = _writers.get(key)
        if held is None:
            lock = exclusive_lock(self.path / LOCK, f"Run folder {self.path}")
            lock.__enter__()
            held = _writers[key] = [lock, 0]
        held[1] += 1
        try:
            yield self
        finally:
            held[1] -= 1
            if not held[1]:
                del _writers[key]
                held[0].__exit__(None, None, None)

    def run_files(self) -> list[Path]:
        """The records of a run this folder holds, from any epoch (other files of the user's are not counted)."""
        names = {CONFIG, DEVICE, HISTORY, SNAPSHOTS, REUSED, PREDICTIONS, *(f"{n}.pt" for n in CHECKPOINTS)}
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.name in names or EVALUATION.fullmatch(p.name))

    @_one_writer
    def clear(self) -> None:
        """Delete the run's records (an explicit overwrite), leaving the folder and any other file."""
        for path in self.run_files():
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    # --- config and device ----------------------------------------------------------------------
    def has_config(self) -> bool:
        return (self.path / CONFIG).is_file()

    @_one_writer
    def write_config(self, cfg: Config) -> None:
        """config.json: the run's Config."""
        atomic_write_text(self.path / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")

    def read_config(self) -> Config:
        """The Config in config.json (AunetError when the folder holds none)."""
        if not self.has_config():
            raise AunetError(f"{self.path}: has no {CONFIG}; expected the folder of an `aunet train` run, which "
                             f"writes it first.")
        return Config.load(self.path / CONFIG)

    @_one_writer
    def write_device(self, info: dict[str, Any]) -> None:
        """device.json: where the run trained (aunet.device.describe_device())."""
        atomic_write_text(self.path / DEVICE, json.dumps(info, indent=2) + "\n")

    def read_device(self) -> dict[str, Any] | None:
        """What device.json says, or None for a run that did not record it."""
        path = self.path / DEVICE
        return _read_json(path, "the device record written by `aunet train`") if path.is_file() else None

    # --- history ---------------------------------------------------------------------------------
    @_one_writer
    def write_history(self, rows: Sequence[dict[str, Any]]) -> None:
        """history.csv from all rows so far (rewritten whole, so it always matches last.pt).

        Rows may differ in their columns (a run resumed by a newer aunet): the header is their union, in
        order of appearance, and a missing value is written as nan.
        """
        if rows:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            atomic_write_csv(self.path / HISTORY, [{k: row.get(k, float("nan")) for k in columns} for row in rows])

    def read_history(self) -> list[dict[str, float]]:
        """The rows of history.csv as numbers ([] when absent; AunetError naming the line of a bad value)."""
        path = self.path / HISTORY
        return [_numbers(row, path, line) for line, row in _read_csv(path)]

    def epochs_done(self) -> int:
        """Epochs recorded in history.csv (0 when absent)."""
        return len(_read_csv(self.path / HISTORY))

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint_path(self, name: str) -> Path:
        """RUN/last.pt or RUN/best.pt."""
        if name not in CHECKPOINTS:
            raise AunetError(f"Unknown checkpoint {name!r}; expected one of: {', '.join(CHECKPOINTS)}.")
        return self.path / f"{name}.pt"

    def has_checkpoint(self, name: str = "last") -> bool:
        return self.checkpoint_path(name).is_file()

    @_one_writer
    def write_checkpoint(self, name: str, state: dict[str, Any]) -> None:
        """Write a checkpoint dict atomically (a kill mid-write leaves the previous file)."""
        atomic_write(self.checkpoint_path(name), lambda tmp: torch.save(state, tmp))

    def read_checkpoint(self, name: str, map_location: str | torch.device = "cpu",
                        model: str | None = None) -> dict[str, Any]:
        """A checked checkpoint dict of this run (of the model `model`, when given)."""
        return read_checkpoint(self.checkpoint_path(name), map_location, model)

    def load_model(self, name: str = "best") -> tuple[torch.nn.Module, Config]:
        """The trained model (CPU, eval mode) and its Config from this run's checkpoint."""
        return load_model(self.checkpoint_path(name))

    # --- attention snapshots ---------------------------------------------------------------------
    @_one_writer
    def write_snapshot(self, epoch: int, arrays: dict[str, np.ndarray]) -> Path:
        """attention/epoch_XXX.npz (compressed)."""
        path = self.path / SNAPSHOTS / f"epoch_{epoch:03d}.npz"
        atomic_write(path, lambda tmp: _savez(tmp, arrays))
        return path

    def read_snapshots(self) -> dict[int, dict[str, np.ndarray]]:
        """Every snapshot of the run, keyed by epoch."""
        return read_snapshots(self.path / SNAPSHOTS)

    # --- evaluation ------------------------------------------------------------------------------
    def evaluation_paths(self, split: str = "test") -> tuple[Path, Path]:
        """(per-case CSV, summary JSON) of an evaluation on `split`."""
        return self.path / f"evaluation_{split}.csv", self.path / f"evaluation_{split}_summary.json"

    @_one_writer
    def write_evaluation(self, split: str, rows: Sequence[dict[str, Any]],
                         summary: dict[str, tuple[float, float]]) -> None:
        """The per-case rows and their mean +- std summary."""
        cases, summary_path = self.evaluation_paths(split)
        atomic_write_csv(cases, rows)
        atomic_write_text(summary_path, json.dumps({k: {"mean": m, "std": s} for k, (m, s) in summary.items()},
                                                   indent=2) + "\n")

    def has_evaluation(self, split: str = "test") -> bool:
        """Both evaluation files exist and are newer than best.pt (an older one scored an earlier model)."""
        files = self.evaluation_paths(split)
        if not all(p.is_file() for p in files):
            return False
        best = self.checkpoint_path("best")
        return not best.is_file() or all(p.stat().st_mtime >= best.stat().st_mtime for p in files)

    def read_evaluation_cases(self, split: str = "test") -> list[dict[str, Any]]:
        """The per-case rows: 'case' a string, every other column a number."""
        path = self.evaluation_paths(split)[0]
        return [_numbers(row, path, line, text=("case",)) for line, row in _read_csv(path)]

    def read_evaluation_summary(self, split: str = "test") -> dict[str, dict[str, float]]:
        """{column: {"mean": m, "std": s}} as written by write_evaluation."""
        path = self.evaluation_paths(split)[1]
        summary = _read_json(path, "the JSON written by `aunet evaluate`")
        if not isinstance(summary, dict) or not all(
                isinstance(v, dict) and {"mean", "std"} <= set(v) and all(_is_number(v[k]) for k in ("mean", "std"))
                for v in summary.values()):
            raise AunetError(f"{path}: lacks numeric mean/std entries; expected the summary written by "
                             f"`aunet evaluate`.")
        return summary

    def prediction_dir(self, case_id: str) -> Path:
        """Where predictions of one case (labels, attention maps) go inside the run folder."""
        return self.path / PREDICTIONS / case_id

    # --- the state of the whole folder -----------------------------------------------------------
    def is_complete(self, epochs: int, split: str = "test") -> bool:
        """Trained to `epochs` (a history row per epoch) and evaluated on `split`.

        The checkpoints may be gone: the records kept in git hold none, and a complete run needs none again
        (only a fine-tune that starts from it, or a prediction, does).
        """
        return self.epochs_done() == epochs and self.has_evaluation(split)

    def copy_to(self, dest: str | Path, cfg: Config) -> RunFolder:
        """Copy this run into dest (atomically), its config.json saying dest's Config; returns the copy."""
        dest = RunFolder(dest)
        with dest.writing(), atomic_folder(dest.path) as tmp:
            for item in self.path.iterdir():
                if item.name == LOCK:
                    continue
                if item.is_dir():
                    shutil.copytree(item, tmp / item.name)
                else:
                    shutil.copy2(item, tmp / item.name)  # keeps mtimes: the evaluation stays newer than best.pt
            RunFolder(tmp).write_config(cfg)
            (tmp / REUSED).write_text(f"{self.path.resolve()}\n")
        return dest


# --- checkpoints outside a run folder (aunet predict takes any .pt path) --------------------------
def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    model: str | None = None) -> dict[str, Any]:
    """A checkpoint written by `aunet train`, checked to be one, of `model` when given (AunetError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise AunetError(f"Checkpoint {path} does not exist; expected a .pt file written by `aunet train`.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise AunetError(f"Checkpoint {path} cannot be read ({type(e).__name__}); expected a .pt file written "
                         f"by `aunet train`.") from None
    if not isinstance(state, dict) or not all(k in state for k in CHECKPOINT_KEYS) or \
            not isinstance(state["model"], dict) or not isinstance(state["config"], dict):
        raise AunetError(f"Checkpoint {path} is not an aunet checkpoint; expected a dict with 'model' and 'config'.")
    if model is not None and state["model_name"] != model:
        raise AunetError(f"Checkpoint {path} holds a {state['model_name']!r} model but model={model!r} was "
                         f"requested; use a checkpoint of the same model.")
    return state


def checkpoint_config(state: dict[str, Any], path: str | Path) -> Config:
    """The Config stored in a checkpoint dict."""
    try:
        return Config.from_dict(state["config"])
    except AunetError as e:
        raise AunetError(f"Checkpoint {path} has an invalid config: {e}") from None


def _describe_state(state: dict[str, Any]) -> tuple[str, int | None]:
    """(model name, number of classes) as read from a state dict's keys and final layer."""
    name = "attention_unet" if any(k.startswith("gates.") for k in state) else "unet"
    final = state.get("final.weight")
    return name, (int(final.shape[0]) if final is not None else None)


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: str | Path, cfg: Config) -> None:
    """Load a checkpoint's model weights into `model`, refusing a checkpoint of another model or shape."""
    found, found_classes = _describe_state(state["model"])
    if found != cfg.model:
        raise AunetError(f"Checkpoint {path} holds weights of a {found!r} model but its config asks for "
                         f"{cfg.model!r}; the file is inconsistent.")
    if found_classes is not None and found_classes != cfg.num_classes:
        raise AunetError(f"Checkpoint {path} holds weights for {found_classes} classes but its config says "
                         f"num_classes={cfg.num_classes}; the file is inconsistent.")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        lines = str(e).splitlines()
        first = lines[1].strip() if len(lines) > 1 else str(e)
        raise AunetError(f"Checkpoint {path} does not fit the {cfg.model!r} model its config describes "
                         f"({first}).") from None


def load_model(path: str | Path, model: str | None = None,
               num_classes: int | None = None) -> tuple[torch.nn.Module, Config]:
    """The trained model (on the CPU, eval mode) and its Config from a checkpoint of `aunet train`."""
    state = read_checkpoint(path, model=model)
    cfg = checkpoint_config(state, path)
    if num_classes is not None and num_classes != cfg.num_classes:
        raise AunetError(f"Checkpoint {path} predicts {cfg.num_classes} classes but num_classes={num_classes} "
                         f"was requested.")
    net = cfg.build_model()
    load_weights(net, state, path, cfg)
    return net.eval(), cfg


def read_snapshots(folder: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """All attention snapshots in a folder (a run's attention/), keyed by epoch."""
    out = {}
    for path in sorted(Path(folder).glob("epoch_*.npz")):
        epoch = int(re.findall(r"\d+", path.stem)[0])
        with np.load(path) as f:
            out[epoch] = {k: f[k] for k in f.files}
    return out


def _savez(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a path
        np.savez_compressed(f, **arrays)


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of every row of a CSV file written by aunet ([] when absent)."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            return [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as e:
        raise AunetError(f"{path}: byte {e.start} is not text; expected the CSV file aunet writes.") from None
    except csv.Error as e:
        raise AunetError(f"{path}: is not a CSV file ({e}); expected the CSV file aunet writes.") from None


def _numbers(row: dict[str, str], path: Path, line: int, text: tuple[str, ...] = ()) -> dict[str, Any]:
    """A CSV row with every column but those in `text` as a number (AunetError naming the line otherwise)."""
    if None in row or None in row.values():
        raise AunetError(f"{path}: line {line} has {'more' if None in row else 'fewer'} values than the header; "
                         f"expected one value per column.")
    try:
        return {k: v if k in text else float(v) for k, v in row.items()}
    except ValueError:
        k, v = next((k, v) for k, v in row.items() if k not in text and not _is_number(v))
        raise AunetError(f"{path}: line {line}, column {k}: {v!r} is not a number; expected a number.") from None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _read_json(path: Path, expected: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AunetError(f"{path}: cannot be read ({e}); expected {expected}.") from None

