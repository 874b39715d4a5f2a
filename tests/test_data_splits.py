"""Split files (the phantom's own, Config.split_file), label maps by name, preprocessing in parallel processes."""
import json

import numpy as np
import pytest

from aunet.cli import main
from aunet.config import Config
from aunet.data import prepare_dataset, write_phantom_dataset
from aunet.data.splits import PAPER_SPLITS, find_split_file, make_splits, split_path, write_split_file
from aunet.errors import AunetError


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "ph", cases=10, seed=2, size=(32, 32, 16),
                                 progress=False)


def _cfg(root, tmp_path, **kw):
    return Config.from_profile("quick", data_dir=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def test_phantom_writes_the_paper_splits_its_cases_allow(phantom_dir):
    ids = [f"phantom_{i:03d}" for i in range(10)]
    meta = json.loads((phantom_dir / "dataset.json").read_text())
    assert meta["aunet"]["splits"] == ["splits/120_30.json", "splits/30_120.json", "splits/61_21.json"]
    for name, spec in PAPER_SPLITS.items():
        saved = json.loads(split_path(phantom_dir, name).read_text())
        # seed 0: the cases aunet's seeded split drew before split files existed
        expected = make_splits(ids, spec.val_fraction, spec.test_fraction, seed=0)
        assert {k: saved[k] for k in ("train", "val", "test")} == expected
    counts = {n: [len(json.loads(split_path(phantom_dir, n).read_text())[k]) for k in ("train", "val", "test")]
              for n in PAPER_SPLITS}
    assert counts == {"120_30": [7, 1, 2], "30_120": [1, 1, 8], "61_21": [6, 1, 3]}


def test_find_split_file_by_the_experiment_fractions(phantom_dir, tmp_path):
    assert find_split_file(phantom_dir, 30 / 150, 0.1) == str(split_path(phantom_dir, "120_30"))
    assert find_split_file(phantom_dir, 120 / 150, 0.04) == str(split_path(phantom_dir, "30_120"))
    assert find_split_file(phantom_dir, 21 / 82, 0.1) == str(split_path(phantom_dir, "61_21"))
    assert find_split_file(phantom_dir, 0.3, 0.1) == "" and find_split_file(tmp_path, 0.2, 0.1) == ""


def test_prepare_uses_the_split_file_whatever_the_seed(phantom_dir, tmp_path):
    path = split_path(phantom_dir, "61_21")
    saved = json.loads(path.read_text())
    for seed in (0, 5):
        ds = prepare_dataset(_cfg(phantom_dir, tmp_path, split_file=str(path), seed=seed), progress=False)
        assert (ds.train, ds.val, ds.test) == (saved["train"], saved["val"], saved["test"])
    assert json.loads(ds.splits_path.read_text())["split_file"] == str(path)


def test_split_file_naming_missing_cases_is_refused(phantom_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    write_split_file(bad, [f"phantom_{i:03d}" for i in range(12)], 0.2, 0.1)
    with pytest.raises(AunetError, match=r"names case\(s\) phantom_01[01].* that the dataset folder lacks"):
        prepare_dataset(_cfg(phantom_dir, tmp_path, split_file=str(bad)), progress=False)
    bad.write_text(json.dumps({"train": ["phantom_000"], "val": ["phantom_000"], "test": []}))
    assert main(["data", "prepare", "--profile", "quick", "--data-dir", str(phantom_dir), "--split-file", str(bad),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "lists case(s) phantom_000 more than once" in err and "\n" not in err


def test_label_map_by_convention_name():
    assert Config.from_dict({"label_map": "msd-pancreas"}).label_map == {"1": 2, "2": 2}
    assert Config.from_dict({"label_map": "nih-pancreas"}).label_map == {"1": 2}
    assert Config.from_dict({"label_map": '{"1": 3}'}).label_map == {"1": 3}
    with pytest.raises(AunetError, match="Unknown label convention 'tcia'; expected one of: ct150, msd-pancreas"):
        Config.from_dict({"label_map": "tcia"})


def test_parallel_preprocessing_writes_the_same_cache(phantom_dir, tmp_path, capsys):
    one = prepare_dataset(_cfg(phantom_dir, tmp_path / "one"), progress=False)
    assert main(["data", "prepare", "--profile", "quick", "--data-dir", str(phantom_dir), "--cache-dir",
                 str(tmp_path / "two" / "cache"), "--workers", "2", "--quiet"]) == 0
    assert "10 cases of" in capsys.readouterr().out
    two = prepare_dataset(_cfg(phantom_dir, tmp_path / "two"), progress=False, workers=2)  # all cached: nothing built
    for case in ("phantom_000", "phantom_007"):
        np.testing.assert_array_equal(one.load(case).image, two.load(case).image)
        np.testing.assert_array_equal(one.load(case).label, two.load(case).label)


def test_data_split_command(tmp_path, capsys):
    folder = write_phantom_dataset(tmp_path / "ph", cases=4, size=(16, 16, 16), progress=False)
    for path in (folder / "splits").iterdir():
        path.unlink()
    assert main(["data", "split", str(folder), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "120_30.json: 2 train / 1 val / 1 test" in out and "not written (too few of the 4 cases): 30_120" in out
    assert json.loads(split_path(folder, "61_21").read_text())["seed"] == 3
