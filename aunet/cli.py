"""The `aunet` command line: the edge of the package. It imports the library; the library never imports it.

    aunet data phantom --out data/phantom --cases 30     aunet.data.write_phantom_dataset
    aunet data phantom --out D --distractors 3           harder phantoms (aunet.data.phantom.PhantomOptions)
    aunet data check data/phantom                        aunet.data.check_folder
    aunet data example-ct --out data/example_ct          aunet.data.example_ct.write_example_ct
    aunet data fetch msd-pancreas --dest data            aunet.data.msd.fetch_msd_pancreas
    aunet data convert nih-pancreas --dicom D --labels L --out O   aunet.data.nih.convert_nih_pancreas
    aunet data split data/phantom                        aunet.data.splits.write_paper_splits
    aunet data prepare --data-dir D --workers 8          aunet.data.prepare_dataset (fills the cache)
    aunet data separability data/phantom                 aunet.data.separability.separability_report
    aunet train --profile quick --model attention_unet   aunet.train.train
    aunet train --out-dir RUN --resume [--epochs N]      aunet.train.resume_config, then train
    aunet train --out-dir RUN --overwrite                a new run in place of the one in RUN
    torchrun --standalone --nproc-per-node N -m aunet train ...   one run on N processes (aunet.distributed)
    aunet evaluate RUN_DIR                               aunet.evaluate.evaluate_run
    aunet predict CHECKPOINT IN.nii.gz OUT.nii.gz        aunet.inference.predict_file
    aunet tables --runs results/runs --out results/tables  aunet.tables.write_tables, aunet.claims.write_claims
    aunet reproduce --profile quick                      aunet.reproduce.reproduce (make reproduce)

Every Config field is an option (`--patch-size 160,160,96`); Config checks the values. User errors
(AunetError) print one line and exit with status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from typing import Any, Callable, Sequence

from aunet import version
from aunet.config import PROFILES, Config
from aunet.errors import AunetError

CONFIG_PREFIX = "config."  # argparse dest of a Config field option: "config.<field>"


# --- Config options ----------------------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add `--profile` and one `--field` option per Config field (values checked by Config, help from its comments)."""
    parser.add_argument("--profile", default="paper", metavar="|".join(PROFILES),
                        help="named settings the options below start from (default paper: the paper's setup; "
                             "quick: a CPU in minutes)")
    group = parser.add_argument_group("configuration (Config fields; unset ones take the --profile's value)")
    hints, texts = typing.get_type_hints(Config), Config.field_help()
    for name in Config.fields():
        if only is None or name in only:  # a true/false field given alone means true (--allow-outside-paths)
            alone = dict(nargs="?", const="true") if hints[name] is bool else {}
            group.add_argument(f"--{name.replace('_', '-')}", dest=CONFIG_PREFIX + name, default=None,
                               metavar=_metavar(hints[name]), help=texts[name].replace("%", "%%"), **alone)


def _metavar(hint: Any) -> str:
    """How an option's value is written: INT, FLOAT, TEXT, true|false, INT,INT,INT, INT,..., JSON|NAME."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return f"{_metavar(args[0])},..." if args[-1] is Ellipsis else ",".join(_metavar(a) for a in args)
    if typing.get_origin(hint) is dict:
        return "JSON|NAME"
    return {bool: "true|false", int: "INT", float: "FLOAT"}.get(hint, "TEXT")


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
    from aunet.data.phantom import PhantomOptions

    options = PhantomOptions(args.distractors, args.fov_scale, args.pancreas_scale)
    out = write_phantom_dataset(args.out, args.cases, args.seed, args.domain, args.size, args.overwrite,
                                options=options)
    meta = json.loads((out / "dataset.json").read_text())["aunet"]
    changed = ", ".join(f"{k} {v:g}" for k, v in meta["options"].items() if v != getattr(PhantomOptions(), k))
    print(f"wrote {args.cases} case(s) to {out} ({meta['domain']}, {'x'.join(map(str, meta['size']))} voxels "
          f"of {' x '.join(f'{s:.3g}' for s in meta['spacing'])} mm{', ' + changed if changed else ''}, "
          f"{meta['seconds_per_case']} s/case)")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from aunet.data import check_folder

    report = check_folder(args.folder, progress=not args.quiet, allow_outside_paths=args.allow_outside_paths)
    print(report.summary())
    return 1 if report.problems else 0


def _data_example_ct(args: argparse.Namespace) -> int:
    from aunet.data.example_ct import write_example_ct

    out = write_example_ct(args.out, archive=args.archive, overwrite=args.overwrite)
    print(f"wrote a real CT with labels (imagesTr/, labelsTr/) and one unlabelled CT (imagesTs/) to {out}; "
          f"next: aunet data check {out}")
    return 0


def _data_fetch(args: argparse.Namespace) -> int:
    from aunet.data.msd import MSD_PANCREAS_MD5, MSD_PANCREAS_URL, fetch_msd_pancreas

    if args.dataset == "nih-pancreas":
        raise AunetError("aunet data fetch nih-pancreas is not available; download Pancreas-CT with TCIA's NBIA Data "
                         "Retriever (README, section Real data), then run aunet data convert nih-pancreas.")
    result = fetch_msd_pancreas(args.dest, args.url or MSD_PANCREAS_URL, args.md5 or MSD_PANCREAS_MD5,
                                archive=args.from_file, keep_archive=args.keep_archive, progress=not args.quiet)
    if result.status == "complete already":
        print(f"{result.folder} is complete already ({result.cases} labelled cases); nothing to do.")
    else:
        print(f"wrote {result.cases} labelled cases to {result.folder} (split files: {', '.join(result.splits)}); "
              f"next: aunet data check {result.folder}, then train with --label-map msd-pancreas")
    return 0


def _data_convert(args: argparse.Namespace) -> int:
    from aunet.data.nih import convert_nih_pancreas

    report = convert_nih_pancreas(args.dicom, args.labels, args.out, args.overwrite, progress=not args.quiet)
    print(report.summary())
    print(f"next: aunet data check {report.out}, then train with --label-map nih-pancreas")
    return 0


def _data_split(args: argparse.Namespace) -> int:
    from aunet.data import read_dataset
    from aunet.data.splits import PAPER_SPLITS, write_paper_splits

    unknown = sorted(set(args.names) - set(PAPER_SPLITS))
    if unknown:
        raise AunetError(f"Unknown split(s) {', '.join(unknown)}; expected some of: {', '.join(PAPER_SPLITS)}.")
    info = read_dataset(args.folder)
    written = write_paper_splits(info.root, [c.case_id for c in info.cases], args.names, args.seed)
    for path in written:
        splits = json.loads(path.read_text())
        print(f"wrote {path}: {' / '.join(f'{len(splits[k])} {k}' for k in ('train', 'val', 'test'))}")
    skipped = sorted(set(args.names) - {p.stem for p in written})
    if skipped:
        print(f"not written (too few of the {len(info.cases)} cases): {', '.join(skipped)}")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    import time

    from aunet.data import prepare_dataset

    if args.workers < 1:
        raise AunetError(f"--workers {args.workers} is not valid; expected a positive integer.")
    cfg = config_from_args(args)
    start = time.perf_counter()
    ds = prepare_dataset(cfg, progress=not args.quiet, workers=args.workers)
    seconds = time.perf_counter() - start
    n = len(ds.train) + len(ds.val) + len(ds.test)
    print(f"{n} cases of {cfg.data_dir} preprocessed in {ds.folder} ({seconds:.1f} s, {seconds / n:.2f} s/case with "
          f"{args.workers} worker(s); "
          f"split {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test)")
    return 0


def _data_separability(args: argparse.Namespace) -> int:
    from aunet.data.separability import separability_report

    print("\n".join(separability_report(args.folder, args.label)))
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from aunet.data.phantom import DOMAINS
    from aunet.labels import TARGET, value

    data = sub.add_parser("data", help="make a phantom dataset, fetch or convert real CT, check and prepare a folder")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: data.print_help() or 2)
    ph = actions.add_parser("phantom", help="write synthetic abdominal CT phantoms (Decathlon layout)")
    ph.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    ph.add_argument("--cases", type=int, default=30, help="number of cases (default 30)")
    ph.add_argument("--seed", type=int, default=0, help="case i is drawn from the seed [seed, i]")
    ph.add_argument("--domain", default="scanner_a", choices=sorted(DOMAINS), help="imaging settings")
    ph.add_argument("--size", type=_size, default=None, help="voxels X,Y,Z over a 40x32x25.6 cm field of view")
    ph.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    harder = ph.add_argument_group("harder phantoms (aunet.data.phantom.PhantomOptions; defaults: the default phantom)")
    harder.add_argument("--distractors", type=int, default=0,
                        help="pancreas-like decoys (its intensity and texture, labelled background) elsewhere in "
                             "the abdomen (default 0)")
    harder.add_argument("--fov-scale", type=float, default=1.0,
                        help="in-plane field of view x this, spacing kept: more around the body (default 1)")
    harder.add_argument("--pancreas-scale", type=float, default=1.0,
                        help="the pancreas's thickness x this, e.g. 0.7 for a smaller one (default 1)")
    ph.set_defaults(func=_data_phantom)
    ex = actions.add_parser("example-ct", help="fetch a real abdominal CT (TotalSegmentator's example, through "
                                              "pip download) as a Decathlon folder")
    ex.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    ex.add_argument("--archive", default=None,
                    help="an already downloaded totalsegmentator-2.18.0.tar.gz (default: fetch and cache it)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    ex.set_defaults(func=_data_example_ct)
    fe = actions.add_parser("fetch", help="download, verify and unpack a public dataset (MSD Task07_Pancreas)")
    fe.add_argument("dataset", choices=("msd-pancreas", "nih-pancreas"), help="which dataset")
    fe.add_argument("--dest", required=True, help="parent folder: the dataset lands in DEST/Task07_Pancreas")
    fe.add_argument("--url", default=None, help="another mirror of the same tar")
    fe.add_argument("--md5", default=None, help="the md5 of the tar at --url (default: the Decathlon tar's)")
    fe.add_argument("--from", dest="from_file", default=None, help="a Task07_Pancreas.tar you already have")
    fe.add_argument("--keep-archive", action="store_true", help="keep the downloaded tar after unpacking it")
    fe.add_argument("--quiet", action="store_true", help="no progress bars")
    fe.set_defaults(func=_data_fetch)
    co = actions.add_parser("convert", help="convert NIH Pancreas-CT (DICOM + NIfTI labels) to a Decathlon folder")
    co.add_argument("dataset", choices=("nih-pancreas",), help="which dataset")
    co.add_argument("--dicom", required=True, help="the Pancreas-CT folder of PANCREAS_NNNN series (or its parent)")
    co.add_argument("--labels", required=True, help="the folder holding label00NN.nii.gz")
    co.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    co.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    co.add_argument("--quiet", action="store_true", help="no progress bar")
    co.set_defaults(func=_data_convert)
    sp = actions.add_parser("split", help="save the paper's seeded train/val/test splits in FOLDER/splits/")
    sp.add_argument("folder", help="dataset folder (with dataset.json, imagesTr/, labelsTr/)")
    sp.add_argument("--names", type=lambda t: [n for n in t.split(",") if n], default=["120_30", "30_120", "61_21"],
                    help="which of 120_30, 30_120, 61_21 (default: all three)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    sp.set_defaults(func=_data_split)
    pr = actions.add_parser("prepare", help="preprocess a dataset into its cache, in parallel processes",
                            description="Resample and normalise every case of the split as `aunet train` would "
                                        "(same Config options), WORKERS cases at a time.")
    add_config_arguments(pr)
    pr.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes, each holding one case in memory (default: one per CPU core)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_data_prepare)
    ck = actions.add_parser("check", help="validate a Decathlon or nnU-Net v2 folder and summarise it")
    ck.add_argument("folder", help="dataset folder (with dataset.json, imagesTr/, labelsTr/)")
    ck.add_argument("--quiet", action="store_true", help="no progress bar")
    ck.add_argument("--allow-outside-paths", action="store_true",
                    help="accept dataset.json entries outside FOLDER (absolute, or through ..)")
    ck.set_defaults(func=_data_check)
    se = actions.add_parser("separability", help="how well a single HU window finds an organ (per case)")
    se.add_argument("folder", help="dataset folder (with dataset.json, imagesTr/, labelsTr/)")
    se.add_argument("--label", type=int, default=value(TARGET),
                    help=f"label value of the organ (default {value(TARGET)}, the {TARGET})")
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
            trainer = train(cfg, resume=args.resume, overwrite=args.overwrite)
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
    from aunet.claims import write_claims
    from aunet.tables import write_tables

    tables = [*write_tables(args.runs, args.out), write_claims(args.runs, args.out)]
    for table in tables:
        print(table.to_markdown())
    print(f"wrote {', '.join(f'{t.name}.md/.csv' for t in tables)} and timings.md/.csv to {args.out}")
    _report_damaged(args.runs)
    return 0


def _report_damaged(runs: str) -> None:
    """One line on stderr per run left out of the tables because its records cannot be read."""
    from aunet.records import read_tree

    for why in read_tree(runs)[1]:
        print(f"left out of the tables: {why}", file=sys.stderr)


def _add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train U-Net or Attention U-Net on a "
                                                                  "Decathlon/nnU-Net folder into --out-dir.")
    add_config_arguments(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its last checkpoint, with its saved settings "
                        "(default off: start a new run)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run records already in --out-dir (another run's) and start a new run there "
                        "(default off: a folder holding another run is refused)")
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


# --- aunet reproduce ----------------------------------------------------------------------------------
RUNS = "results/runs"  # the notebooks' runs folder (their runs_dir parameter's default, from notebooks/)


def _parameter_value(text: str) -> Any:
    """A papermill parameter from the command line: JSON when it parses (1, 0.5, [0, 1], true), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _reproduce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aunet.reproduce import README_SECTION, reproduce, results_section
    from aunet.text import replace_marked

    parameters = {name: _parameter_value(value) for name, value in args.parameter or []}
    if args.data_dir:  # notebooks run in notebooks/: hand them absolute paths
        parameters |= {"data_dir": str(Path(args.data_dir).resolve()),
                       "ct150_data_dir": str(Path(args.data_dir).resolve())}
    if args.tcia_data_dir:
        parameters["tcia_data_dir"] = str(Path(args.tcia_data_dir).resolve())
    runs = Path(args.runs_dir)
    if runs != Path(RUNS):  # the notebooks' own default is RUNS: another folder goes to each of them (absolute)
        runs = runs.resolve()  # every notebook's run folders under it (04 and 06 train, 05 and 07 read)
        from aunet.records import run_path

        seed_0 = run_path(runs, "ct150_120_30", "attention_unet", 0)  # the run notebooks 05 and 07 read
        parameters |= {"runs_dir": str(runs), "out_dir": str(seed_0), "run_dir": str(seed_0)}
    manifest = reproduce(args.profile, parameters, root=".", runs_dir=runs)
    if args.readme:
        replace_marked(args.readme, README_SECTION, results_section(manifest, runs))
    _report_damaged(runs)
    print(f"Reproduction done in {manifest['times']['seconds'] / 60:.1f} min: results/manifest.json, "
          f"executed notebooks in {manifest['times']['folder']}/, tables in results/tables/, figures in figures/"
          + (f"; {args.readme}'s results section regenerated." if args.readme else "."))
    return 0


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="execute every notebook (papermill) and write results/manifest.json",
                       description="Execute notebooks 01-07 in order with papermill, rebuild the tables and "
                                   "figures, write results/manifest.json and regenerate the README's results.")
    p.add_argument("--profile", default="quick", choices=("quick", "paper"), help="Config profile (default quick)")
    p.add_argument("--data-dir", default=None, help="a real CT-150-like dataset folder (default: the phantom)")
    p.add_argument("--tcia-data-dir", default=None, help="a real TCIA-like dataset folder (default: the phantom)")
    p.add_argument("--runs-dir", default=RUNS,
                   help="run folders: complete runs there are not trained again (default results/runs, the committed "
                        "reproduction's records; another folder trains every run afresh)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a papermill parameter for every notebook that declares it, e.g. -p ct150_seeds [0,1,2]")
    p.add_argument("--readme", default="README.md", help="README whose results section is regenerated "
                                                         "('' to leave it alone)")
    p.set_defaults(func=_reproduce)


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_data, _add_runs, _add_reproduce)


def build_parser() -> argparse.ArgumentParser:
    """The whole `aunet` parser."""
    parser = argparse.ArgumentParser(prog="aunet", description="Attention U-Net: data, training, evaluation.")
    parser.add_argument("--version", action="version", version=f"aunet {version()}")
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
