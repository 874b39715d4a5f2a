"""The paper's experiments: specs as Configs, a runner that skips and resumes, seeds, a process pool, fine-tuning."""
import json
from pathlib import Path

import pytest
import torch

from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import (
    EXPERIMENTS,
    experiment_config,
    run_experiment,
    run_experiments,
    run_state,
    write_missing_phantoms,
)
from aunet.run import RunFolder
from aunet.train import Trainer, train

TINY = dict(spacing=8.0, patch_size=(32, 32, 32), base_filters=2, batch_size=2, iterations_per_epoch=1,
            lr=1e-3, snapshot_epochs=(1,), device="cpu", epochs=1, lr_schedule="step")  # step: runs may continue


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("data")
    datasets = {"ct150": {"data_dir": str(root / "a")}, "tcia": {"data_dir": str(root / "b")}}
    written = write_missing_phantoms(datasets, seed=0, cases={"ct150": 10, "tcia": 6}, size=(80, 64, 32),
                                     progress=False)
    assert len(written) == 2 and write_missing_phantoms(datasets, seed=0, progress=False) == []  # only once
    return datasets


def base(**overrides) -> Config:
    return Config.from_profile("quick", **{**TINY, **overrides})


def test_specs_are_configs(tmp_path):
    datasets = {"ct150": {"data_dir": "A", "label_map": {"1": 2}}, "tcia": {"data_dir": "B"}}
    cfg = experiment_config("ct150_30_120", "unet", base(), tmp_path, datasets)
    assert (cfg.model, cfg.data_dir, cfg.label_map, cfg.test_fraction) == ("unet", "A", {"1": 2}, 0.8)
    assert cfg.out_dir == str(tmp_path / "ct150_30_120" / "unet" / "seed_0") and cfg.init_checkpoint == ""
    assert experiment_config("ct150_30_120", "unet", base(), tmp_path, datasets, seed=3).seed == 3
    fine = experiment_config("tcia_finetune", "attention_unet", base(init_checkpoint="x.pt"), tmp_path, datasets)
    assert fine.data_dir == "B" and fine.test_fraction == pytest.approx(21 / 82)
    assert fine.init_checkpoint == str(tmp_path / "ct150_120_30" / "attention_unet" / "seed_0" / "best.pt")
    scratch = experiment_config("tcia_61_21", "attention_unet", base(init_checkpoint="x.pt"), tmp_path, datasets)
    assert scratch.init_checkpoint == ""  # trained from scratch whatever the base says
    assert {e.table for e in EXPERIMENTS.values()} == {"ct150", "tcia"} and len(EXPERIMENTS) == 4
    with pytest.raises(AunetError, match="Unknown experiment"):
        experiment_config("ct150", "unet", base(), tmp_path, datasets)
    with pytest.raises(AunetError, match="Unknown model"):
        experiment_config("ct150_120_30", "vnet", base(), tmp_path, datasets)


def test_phantom_stand_ins_are_two_domains_with_other_bodies(datasets):
    meta = [json.loads((Path(d["data_dir"]) / "dataset.json").read_text())["aunet"] for d in datasets.values()]
    assert [m["domain"] for m in meta] == ["scanner_a", "scanner_b"] and meta[0]["seed"] != meta[1]["seed"]


def test_runner_skips_complete_resumes_incomplete_and_refuses_other_settings(datasets, tmp_path):
    runs = tmp_path / "runs"
    run = runs / "ct150_120_30" / "unet" / "seed_0"
    assert run_experiment("ct150_120_30", "unet", base(), runs, datasets, progress=False) == "trained"
    assert {"config.json", "history.csv", "best.pt", "evaluation_test.csv", "evaluation_test_summary.json"} <= \
        {p.name for p in run.iterdir()}
    stamp = (run / "last.pt").stat().st_mtime_ns
    assert run_experiment("ct150_120_30", "unet", base(), runs, datasets, progress=False) == "skipped"
    assert (run / "last.pt").stat().st_mtime_ns == stamp  # nothing retrained
    # more epochs: the run is incomplete for that config, so it continues from last.pt
    assert run_state(run, experiment_config("ct150_120_30", "unet", base(epochs=2), runs, datasets)) == "partial"
    assert run_experiment("ct150_120_30", "unet", base(epochs=2), runs, datasets, progress=False) == "resumed"
    assert RunFolder(run).epochs_done() == 2
    (run / "evaluation_test_summary.json").unlink()  # e.g. killed during evaluation
    assert run_experiment("ct150_120_30", "unet", base(epochs=2), runs, datasets, progress=False) == "evaluated"
    assert (run / "evaluation_test_summary.json").is_file()
    with pytest.raises(AunetError, match="holds a run with other settings .*lr"):
        run_experiment("ct150_120_30", "unet", base(epochs=2, lr=5e-4), runs, datasets, progress=False)
    # a poly schedule ends at its run's last epoch: more epochs are another run, not a continuation
    poly = experiment_config("ct150_120_30", "unet", base(lr_schedule="poly"), runs, datasets)
    RunFolder(run).write_config(Config.from_dict({"epochs": 2}, base=poly))
    assert run_state(run, Config.from_dict({"epochs": 3}, base=poly)) == "other"


def test_pool_of_one_thread_processes_gives_the_runs_of_one_process(datasets, tmp_path):
    kwargs = dict(names=["ct150_120_30"], models=["unet", "attention_unet"], datasets=datasets, seeds=[0, 1],
                  progress=False)
    done = run_experiments(base(), tmp_path / "pool", workers=2, **kwargs)
    assert sorted(done) == [(n, m, s) for n in ["ct150_120_30"] for m in ["attention_unet", "unet"] for s in (0, 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each pool process uses
    try:
        run_experiments(base(), tmp_path / "here", workers=1, **kwargs)
    finally:
        torch.set_num_threads(threads)
    for key in done:
        a, b = (RunFolder(tmp_path / where / key[0] / key[1] / f"seed_{key[2]}") for where in ("pool", "here"))
        untimed = [repr([{k: v for k, v in row.items() if k != "inference_seconds"}  # repr: nan equals nan
                         for row in run.read_evaluation_cases()]) for run in (a, b)]
        assert untimed[0] == untimed[1]
    seeds = {s: RunFolder(tmp_path / "pool" / "ct150_120_30" / "unet" / f"seed_{s}").read_evaluation_cases()
             for s in (0, 1)}
    assert seeds[0] != seeds[1]  # another seed: another split and other weights


def test_fine_tuning_starts_from_the_source_weights(datasets, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(AunetError, match="run ct150_120_30 for unet first"):
        run_experiment("tcia_finetune", "unet", base(), runs, datasets, progress=False)
    done = run_experiments(base(), runs, names=["tcia_finetune", "ct150_120_30"], models=["unet"],
                           datasets=datasets, progress=False)
    assert list(done) == [("ct150_120_30", "unet", 0), ("tcia_finetune", "unet", 0)]  # the source first
    best = runs / "ct150_120_30" / "unet" / "seed_0" / "best.pt"
    source = torch.load(best, weights_only=True)["model"]
    # lr 0: the weights the fine-tune starts from are the weights it ends with
    cfg = experiment_config("tcia_finetune", "unet", base(lr=0.0), tmp_path / "ft0", datasets)
    cfg = Config.from_dict({"init_checkpoint": str(best)}, base=cfg)
    trainer = train(cfg, progress=False)
    assert trainer.epoch == 1 and len(trainer.history) == 1  # epochs and schedule start afresh
    tuned = dict(trainer.model.named_parameters())
    assert all(torch.equal(tuned[k].cpu(), source[k]) for k in tuned)
    fresh = Trainer(Config.from_dict({"init_checkpoint": ""}, base=cfg), progress=False)
    assert not all(torch.equal(p, source[k]) for k, p in fresh.model.named_parameters())


@pytest.mark.parametrize("overrides,message", [
    ({"model": "attention_unet"}, "holds a 'unet' model but model='attention_unet'"),
    ({"base_filters": 4}, "another shape"),
    ({"init_checkpoint": "missing.pt"}, "missing.pt does not exist"),
])
def test_fine_tuning_refuses_another_model(datasets, tmp_path, overrides, message):
    source = tmp_path / "source"
    train(Config.from_dict({"out_dir": str(source), "model": "unet", **datasets["ct150"]}, base=base()),
          progress=False)
    cfg = Config.from_dict({"out_dir": str(tmp_path / "ft"), "init_checkpoint": str(source / "last.pt"),
                            "model": "unet", **datasets["tcia"], **overrides}, base=base())
    with pytest.raises(AunetError, match=message):
        train(cfg, progress=False)


def test_verdicts_do_not_hinge_on_the_thread_count(datasets, tmp_path):
    """Another CPU sums floats in another order; so does another thread count. The claims must not notice."""
    from aunet.claims import HEADER, build_claims

    kwargs = dict(names=["ct150_120_30", "ct150_30_120"], datasets=datasets, seeds=list(range(6)), progress=False,
                  workers=2)
    tiny = base(epochs=2, iterations_per_epoch=2)
    for threads in (1, 2):
        run_experiments(tiny, tmp_path / f"threads_{threads}", threads=threads, **kwargs)
    one, two = (build_claims(tmp_path / f"threads_{t}", {n: EXPERIMENTS[n] for n in kwargs["names"]}) for t in (1, 2))
    weights = [torch.load(tmp_path / f"threads_{t}" / "ct150_120_30" / "unet" / "seed_0" / "last.pt",
                          weights_only=True)["model"] for t in (1, 2)]
    assert any(not torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values()))  # rounding differed
    verdict = HEADER.index("verdict")
    assert [row[verdict] for row in one.rows] == [row[verdict] for row in two.rows]
