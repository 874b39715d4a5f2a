"""The command line explains itself: every option of `aunet train --help` has a sentence and a default."""
import importlib.metadata
import re

import pytest

import aunet
from aunet.cli import main
from aunet.config import Config


def _help(capsys, *command: str) -> dict[str, str]:
    """Each option of `aunet <command> --help` -> its help text, argparse's line wrapping undone."""
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out.split("\noptions:\n", 1)[1]
    options = {}
    for entry in re.split(r"\n(?=  -)", text):  # "  --name VALUE    help ..." and its indented lines
        entry = entry.split("\n\n")[0]  # a blank line, then the next argument group's title
        first, *more = entry.strip().split("\n")
        invocation, _, sentence = first.partition("  ")
        options[invocation.split()[0].rstrip(",")] = " ".join(" ".join([sentence, *more]).split())
    return options


def test_every_train_option_has_a_sentence_and_a_default(capsys):
    options = _help(capsys, "train")
    fields = {f"--{name.replace('_', '-')}" for name in Config.fields()}
    assert set(options) == fields | {"-h", "--profile", "--resume", "--overwrite"}
    for option, text in options.items():
        sentence, default, _ = text.partition(" (default")
        if option != "-h":  # a phrase of its own (more than the field's name), then its default
            assert len(sentence.split()) >= 2 and default, (option, text)
    assert options["--lr"] == "initial learning rate (default 0.0001; quick profile 0.002)"
    assert "+-10 %," in options["--augment"]  # argparse's %-formatting escaped


def test_data_prepare_takes_the_same_help(capsys):
    options = _help(capsys, "data", "prepare")
    assert options["--patch-size"] == Config.field_help()["patch_size"]


def test_version(capsys, monkeypatch):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"aunet {aunet.version()}"

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert aunet.version() == aunet.__version__  # a checkout never pip-installed


def test_citation_and_licence_match_the_package():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    citation = (root / "CITATION.cff").read_text()
    assert re.search(r"^version: (\S+)$", citation, re.M).group(1) == aunet.__version__
    assert "arXiv:1804.03999" in citation and re.search(r"^license: MIT$", citation, re.M)
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert re.search(r'^license = "MIT"$', (root / "pyproject.toml").read_text(), re.M)
