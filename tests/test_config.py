"""The one Config: profiles, type checks, unknown keys, JSON round trip, CLI options."""
import json

import pytest

from aunet import AttentionUNet, UNet, count_parameters
from aunet.cli import main
from aunet.config import PROFILES, Config
from aunet.errors import AunetError
from aunet.run import RunFolder


def test_paper_defaults():
    cfg = Config()
    assert (cfg.lr, cfg.weight_decay, cfg.lr_step, cfg.lr_gamma, cfg.batch_size) == (1e-4, 1e-6, 250, 0.5, 2)
    assert cfg.patch_size == (160, 160, 96) and cfg.spacing == 2.0 and cfg.filters == (16, 32, 64, 128, 256)
    assert count_parameters(Config(model="unet").build_model()) == 5_888_004
    assert isinstance(cfg.build_model(), AttentionUNet)
    assert count_parameters(cfg.build_model()) == count_parameters(AttentionUNet())


def test_profiles_and_overrides():
    quick = Config.from_profile("quick", epochs=3, patch_size=[32, 32, 16])
    assert quick.epochs == 3 and quick.patch_size == (32, 32, 16)
    assert quick.base_filters == PROFILES["quick"]["base_filters"]
    assert isinstance(Config.from_profile("quick", model="unet").build_model(), UNet)


@pytest.mark.parametrize("values,fragment", [
    ({"learning_rate": 1e-3}, "Unknown parameter(s) learning_rate"),
    ({"epochs": "ten"}, "epochs='ten' has the wrong type; expected an integer"),
    ({"epochs": 2.5}, "expected an integer"),
    ({"amp": "maybe"}, "expected true or false"),
    ({"patch_size": (160, 160)}, "patch_size"),
    ({"patch_size": (160, 160, 90)}, "multiple of 16"),
    ({"model": "transformer"}, "model='transformer' is not valid"),
    ({"overlap": 1.0}, "overlap"),
])
def test_bad_values_name_the_parameter(values, fragment):
    with pytest.raises(AunetError) as err:
        Config.from_dict(values)
    assert fragment in str(err.value)


def test_unknown_profile():
    with pytest.raises(AunetError, match="Unknown profile 'fast'"):
        Config.from_profile("fast")


def test_json_round_trip(tmp_path):
    cfg = Config.from_profile("quick", label_map={"1": 2, "2": 2}, seed=7)
    RunFolder(tmp_path).write_config(cfg)  # the one writer of config.json
    assert Config.load(tmp_path / "config.json") == cfg == RunFolder(tmp_path).read_config()
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 7
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AunetError, match="bad.json"):
        Config.load(tmp_path / "bad.json")


def test_cli_rejects_bad_parameter_in_one_line(capsys):
    assert main(["train", "--profile", "quick", "--epochs", "ten"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "epochs='ten'" in err and "Traceback" not in err


def test_every_field_has_its_comment_as_help():
    from aunet.config import _field_comments

    comments = _field_comments()
    assert set(comments) == set(Config.fields())  # a field without a `# comment` has no --help sentence
    assert not [text for text in comments.values() if text.startswith("-")]  # no section rule taken for a comment
    assert "nih-pancreas" in comments["label_map"]  # the comment line below a field continues it
    texts = Config.field_help()
    assert texts["lr"] == "initial learning rate (default 0.0001; quick profile 0.002)"
    assert texts["patch_size"].endswith("(default 160,160,96; quick profile 48,48,32)")
    assert texts["batch_size"].endswith("(default 2)")  # the quick profile's batch_size is the default: not repeated
    assert texts["split_file"].endswith('(default "")')
