"""The `aunet` command line: the edge of the package. It imports the library; the library never imports it.

    aunet data phantom --out data/phantom --cases 30     aunet.data.write_phantom_dataset
    aunet data check data/phantom                        aunet.data.check_folder
    aunet data example-ct --out data/example_ct          aunet.data.example_ct.write_example_ct
    aunet data separability data/phantom                 aunet.data.separability.separability_report
    aunet train --profile quick --model attention_unet   aunet.train.train
    aunet train --out-dir RUN --resume [--epochs N]      aunet.train.resume_config, then train
    torchrun --standalone --nproc-per-node N -m aunet train ...   one run on N processes (aunet.distributed)
    aunet evaluate RUN_DIR                               aunet.evaluate.evaluate_run
    aunet predict CHECKPOINT IN.nii.gz OUT.nii.gz        aunet.inference.predict_file
    aunet tables --runs results/runs --out results/tables  aunet.tables.write_tables

Every Config field is an option (`--patch-size 160,160,96`); Config checks the values. User errors
(AunetError) print one line and exit with status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from aunet.config import Config
from aunet.errors import AunetError

CONFIG_PREFIX = "config."  # argparse dest of a Config field option: "config.<field>"


# --- Config options ----------------------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add `--profile` and one `--field` option per Config field (values checked by Config)."""
    parser.add_argument("--profile", default="paper", help="named settings: quick or paper (default: paper)")
    group = parser.add_argument_group("configuration (any Config field; defaults: the profile's)")
    for name in only or Config.fields():
        group.add_argument(f"--{name.replace('_', '-')}", dest=CONFIG_PREFIX + name, default=None, metavar="VALUE")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields given on the command line (not the profile's defaults)."""
    return {k[len(CONFIG_PREFIX):]: v for k, v in vars(args).items() if k.startswith(CONFIG_PREFIX) and v is not None}


def config_from_args(args: argparse.Namespace, **fixed: Any) -> Config:
    """The Config built from --profile, the --field options given, and `fixed` values."""
    return Config.from_profile(args.profile, **{**config_overrides(args), **fixed})


def _size(text: str) -> tuple[int, int, int]:
    """Three voxel counts such as 160,128,64 (or 160x128x64)."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not three integers such as 160,128,64") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not three integers such as 160,128,64")
    return values


# --- aunet data ----------------------------------------------------------------------------------------
def _data_phantom(args: argparse.Namespace) -> int:
    from aunet.data import write_phantom_dataset

    out = write_phantom_dataset(args.out, args.cases, args.seed, args.domain, args.size, args.overwrite)
    meta = json.loads((out / "dataset.json").read_text())["aunet"]
    print(f"wrote {args.cases} case(s) to {out} ({meta['domain']}, {'x'.join(map(str, meta['size']))} voxels "
          f"of {' x '.join(f'{s:.3g}' for s in meta['spacing'])} mm, {meta['seconds_per_case']} s/case)")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from aunet.data import check_folder

    report = check_folder(args.folder, progress=not args.quiet)
    print(report.summary())
    return 1 if report.problems else 0


def _data_example_ct(args: argparse.Namespace) -> int:
    from aunet.data.example_ct import write_example_ct

    out = write_example_ct(args.out, archive=args.archive, overwrite=args.overwrite)
    print(f"wrote a real CT with labels (imagesTr/, labelsTr/) and one unlabelled CT (imagesTs/) to {out}; "
          f"next: aunet data check {out}")
    return 0


def _data_separability(args: argparse.Namespace) -> int:
    from aunet.data.separability import separability_report

    print("\n".join(separability_report(args.folder, args.label)))
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from aunet.data.phantom import DOMAINS

    data = sub.add_parser("data", help="make a phantom dataset, fetch a real CT, check a dataset folder")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: data.print_help() or 2)
    ph = actions.add_parser("phantom", help="write synthetic abdominal CT phantoms (Decathlon layout)")
    ph.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    ph.add_argument("--cases", type=int, default=30, help="number of cases (default 30)")
    ph.add_argument("--seed", type=int, default=0, help="case i is drawn from the seed [seed, i]")
    ph.add_argument("--domain", default="scanner_a", choices=sorted(DOMAINS), help="imaging settings")
    ph.add_argument("--size", type=_size, default=None, help="voxels X,Y,Z over a 40x32x25.6 cm field of view")
    ph.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    ph.set_defaults(func=_data_phantom)
    ex = actions.add_parser("example-ct", help="fetch a real abdominal CT (TotalSegmentator's example, from PyPI) "
                                              "as a Decathlon folder")
    ex.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    ex.add_argument("--archive", default=None,
                    help="an already downloaded totalsegmentator-2.18.0.tar.gz (default: fetch and cache it)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    ex.set_defaults(func=_data_example_ct)
    ck = actions.add_parser("check", help="validate a Decathlon or nnU-Net v2 folder and summarise it")
    ck.add_argument("folder", help="dataset folder (with dataset.json, imagesTr/, labelsTr/)")
    ck.add_argument("--quiet", action="store_true", help="no progress bar")
    ck.set_defaults(func=_data_check)
    se = actions.add_parser("separability", help="how well a single HU window finds an organ (per case)")
    se.add_argument("folder", help="dataset folder (with dataset.json, imagesTr/, labelsTr/)")
    se.add_argument("--label", type=int, default=2, help="label value of the organ (default 2, the pancreas)")
    se.set_defaults(func=_data_separability)


# --- aunet train / evaluate / predict / tables -----------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from aunet.distributed import leave, stop_on_sigterm
    from aunet.train import resume_config, train

    cfg = config_from_args(args)
    if args.resume:  # the run's own settings; only those given here change (aunet.train's one resume policy)
        overrides = config_overrides(args)
        cfg = resume_config(overrides.pop("out_dir", cfg.out_dir), **overrides)
    try:  # torchrun ends the other processes of a run with SIGTERM when one dies: one line, no traceback
        with stop_on_sigterm():
            trainer = train(cfg, resume=args.resume)
    finally:
        leave()  # the process group, when torchrun started this process
    last = trainer.history[-1] if trainer.history else {}
    if trainer.processes.is_main:
        print(f"Trained {cfg.model} for {trainer.epoch} epochs into {trainer.run_dir} "
              f"({trainer.processes.world} process(es)); last validation mean Dice "
              f"{last.get('val_mean_dice', float('nan')):.3f}.")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from aunet.evaluate import evaluate_run, format_summary

    rows, summary = evaluate_run(args.run_dir, args.split, args.checkpoint, data_dir=args.data_dir)
    print(f"{len(rows)} {args.split} cases of {args.run_dir}:")
    print(format_summary(summary))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from aunet.inference import predict_file

    if args.batch_size < 1:
        raise AunetError(f"--batch-size={args.batch_size} is not valid; expected a positive integer.")
    predict_file(args.checkpoint, args.input, args.output, args.overlap, args.attention_dir,
                 device=args.device, batch_size=args.batch_size)
    print(f"wrote {args.output}")
    return 0


def _tables(args: argparse.Namespace) -> int:
    from aunet.tables import TABLES, write_tables

    for table in write_tables(args.runs, args.out):
        print(table.to_markdown())
    print(f"wrote {', '.join(f'{n}.md/.csv' for n in TABLES)} to {args.out}")
    return 0


def _add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train U-Net or Attention U-Net on a "
                                                                  "Decathlon/nnU-Net folder into --out-dir.")
    add_config_arguments(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its last checkpoint, with its saved settings")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run",
                       description="Per-case metrics CSV and mean +- std summary on held-out cases.")
    p.add_argument("run_dir", help="a run folder written by `aunet train`")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--data-dir", default=None, help="evaluate on another dataset folder (same labels)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="segment one NIfTI volume with a trained checkpoint",
                       description="Segment IN with the model in CHECKPOINT; write labels to OUT on IN's grid.")
    p.add_argument("checkpoint", help="a .pt file written by `aunet train` (e.g. the run's best checkpoint)")
    p.add_argument("input", help="the CT volume, .nii or .nii.gz")
    p.add_argument("output", help="where to write the label map, .nii or .nii.gz")
    p.add_argument("--overlap", type=float, default=None, help="sliding-window overlap (default: the run's)")
    p.add_argument("--attention-dir", default=None, help="also write each level's attention map here")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass (default: 1)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("tables", help="rebuild the paper's results tables from run records",
                       description="The paper's two tables from the run records, beside the paper's numbers.")
    p.add_argument("--runs", default="results/runs", help="folder of <experiment>/<model> run folders")
    p.add_argument("--out", default="results/tables", help="where the tables' .md and .csv files go")
    p.set_defaults(func=_tables)


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_data, _add_runs)


def build_parser() -> argparse.ArgumentParser:
    """The whole `aunet` parser."""
    parser = argparse.ArgumentParser(prog="aunet", description="Attention U-Net: data, training, evaluation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AunetError as e:
        print(f"aunet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aunet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
