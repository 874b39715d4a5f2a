"""The `aunet` command line. Each subcommand lives in the module of its concept and registers itself.

    aunet data phantom --out data/phantom --cases 20      (aunet/data/commands.py)
    aunet data check data/phantom
    aunet train --profile quick --model attention_unet    (aunet/train.py)
    aunet evaluate RUN_DIR                                (aunet/evaluate.py)
    aunet predict CHECKPOINT IN.nii.gz OUT.nii.gz         (aunet/inference.py)
    aunet tables --runs results/runs --out results/tables (aunet/tables.py)

User errors (AunetError, a missing file) print one line and exit with status 2, no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

from aunet.config import Config
from aunet.errors import AunetError

# module -> it defines register(subparsers); each parser sets `func(args) -> int | None`
COMMAND_MODULES = ("aunet.data.commands", "aunet.train", "aunet.evaluate", "aunet.inference", "aunet.tables")


def add_config_arguments(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add `--profile` and one `--field` option per Config field (values checked by Config)."""
    parser.add_argument("--profile", default="paper", help="named settings: quick or paper (default: paper)")
    group = parser.add_argument_group("configuration (any Config field; defaults: the profile's)")
    for name in only or Config.fields():
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"cfg_{name}", default=None, metavar="VALUE")


def config_from_args(args: argparse.Namespace, **fixed: Any) -> Config:
    """The Config built from --profile, the --field options given, and `fixed` values."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    return Config.from_profile(args.profile, **{**overrides, **fixed})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aunet", description="Attention U-Net: data, training, evaluation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not name.startswith(e.name or "\0"):
                raise
            continue  # a subcommand not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
