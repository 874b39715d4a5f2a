"""Notebook 08's study: conditions are Experiments that change only what they name; the table and the
conclusions come from the run records; the 2x-steps runs continue the baseline's."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from aunet import paper
from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, experiment_config
from aunet.run import RunFolder
from aunet.stats import holm, rank_correlation, seed_difference
from aunet.study import (
    DEFAULT_DATASETS,
    PHANTOM_OPTIONS,
    baseline_config,
    config_changes,
    experiments_of,
    run_study,
    study_conditions,
    write_study_phantoms,
)
from aunet.study_report import (
    README_SECTION,
    conclusions,
    focus_points,
    focus_sentence,
    focus_table,
    forest_rows,
    read_results,
    readme_section,
    results_table,
)
from aunet.text import p_value, replace_marked

# what each condition names: the only Config fields in which its runs may differ from the baseline's
NAMED = {"baseline": set(), "steps_2x": {"epochs", "snapshot_epochs"},
         "paper_recipe": {"loss", "lr", "lr_schedule", "lr_step"}, "less_data": {"test_fraction", "val_fraction"},
         "distractors": {"data_dir"},
         "wide_fov": {"data_dir", "inference_patch_size"}, "one_gate": {"gates_per_level"}, "bottleneck": {"gating"}}


def test_the_baseline_is_the_quick_profile_shortened_by_epochs_scale():
    quick = Config.from_profile("quick")
    assert baseline_config("quick").to_dict() == quick.to_dict()
    short = baseline_config("quick", epochs_scale=0.5, seed=3)
    assert (short.epochs, short.lr_step, short.seed) == (round(quick.epochs / 2), round(quick.lr_step / 2), 3)
    assert short.snapshot_epochs[-1] == short.epochs  # the focus is read at the last epoch
    changed = {k for k, v in short.to_dict().items() if v != quick.to_dict()[k]}
    assert changed <= {"epochs", "lr_step", "snapshot_epochs", "seed"}
    with pytest.raises(AunetError, match="epochs_scale"):
        baseline_config("quick", epochs_scale=1.5)


@pytest.mark.parametrize("model", ["unet", "attention_unet"])
def test_conditions_differ_from_the_baseline_only_in_what_they_name(tmp_path, model):
    base = baseline_config("quick", epochs_scale=0.3)
    conditions = study_conditions(base)
    assert list(conditions) == list(NAMED)
    datasets = {key: {"data_dir": str(tmp_path / key)} for key in DEFAULT_DATASETS}  # no split files: none differ
    changes = config_changes(conditions, base, tmp_path, datasets, model)
    for name, diff in changes.items():
        if model in conditions[name].models:
            assert set(diff) == NAMED[name], name
    experiments = experiments_of(conditions)
    cfg = {name: experiment_config(name, model, base, tmp_path, datasets, experiments=experiments)
           for name in conditions}
    assert cfg["baseline"].to_dict() | {"out_dir": ""} == experiment_config(
        "ct150_120_30", model, base, tmp_path, datasets).to_dict() | {"out_dir": ""}  # the paper-table 120/30 run
    assert cfg["steps_2x"].epochs == 2 * base.epochs and cfg["steps_2x"].lr_step == base.lr_step
    paper = Config()
    assert (cfg["paper_recipe"].loss, cfg["paper_recipe"].lr) == (paper.loss, paper.lr) != (base.loss, base.lr)
    assert cfg["paper_recipe"].lr_step == round(base.epochs * paper.lr_step / paper.epochs)
    less = EXPERIMENTS["ct150_30_120"]
    assert (cfg["less_data"].test_fraction, cfg["less_data"].val_fraction) == (less.test_fraction, less.val_fraction)
    assert cfg["distractors"].data_dir == datasets["distractors"]["data_dir"]
    window = cfg["wide_fov"].inference_patch_size  # holds the whole wider volume at the quick spacing
    assert window[0] * base.spacing >= 400 * PHANTOM_OPTIONS["wide_fov"].fov_scale
    assert conditions["one_gate"].models == ("attention_unet",) and conditions["one_gate"].unet_from == "baseline"


def fake_run(runs: Path, condition: str, model: str, seed: int, dice, recall, focus_map=None) -> None:
    """The records of one trained, evaluated run (pancreas scores chosen per case), and a last snapshot."""
    run = RunFolder(runs / condition / model / f"seed_{seed}")
    run.write_config(Config.from_profile("quick", model=model, seed=seed, base_filters=2, out_dir=str(run.path)))
    run.write_history([{"epoch": 1, "train_loss": 1.0, "val_mean_dice": 0.5, "seconds": 1.0}])
    rows = [{"case": f"c{i}", "pancreas_dice": d, "pancreas_precision": 0.5, "pancreas_recall": r,
             "pancreas_s2s_mm": 3.0} for i, (d, r) in enumerate(zip(dice, recall))]
    run.write_evaluation("test", rows, {"pancreas_dice": (float(np.mean(dice)), float(np.std(dice)))})
    if focus_map is not None:
        label = np.zeros((8, 8), np.uint8)
        label[:4, :4] = 2
        run.write_snapshot(1, {"image": np.zeros((8, 8), np.float16), "label": label, "level2": focus_map})


def test_table_conclusions_forest_and_focus_come_from_the_records(tmp_path):
    conditions = study_conditions(baseline_config("quick", epochs_scale=0.3))
    alpha = np.full((4, 4), 0.25, np.float32)
    alpha[:2, :2] = 0.75  # on the pancreas (label's top-left quarter): focus 3
    scores = {}
    for seed in (0, 1):
        u_dice, a_dice = [0.40, 0.50, 0.61], [0.45 + 0.01 * seed, 0.47, 0.70]
        u_rec, a_rec = [0.50, 0.52, 0.58], [0.60, 0.61, 0.59]
        fake_run(tmp_path, "baseline", "unet", seed, u_dice, u_rec)
        fake_run(tmp_path, "baseline", "attention_unet", seed, a_dice, a_rec, alpha)
        fake_run(tmp_path, "one_gate", "attention_unet", seed, [d - 0.1 for d in a_dice], a_rec)
        scores[seed] = (u_dice, a_dice, u_rec, a_rec)
    results = read_results(tmp_path, conditions)
    table = results_table(results)
    assert [row[0] for row in table.rows] == [c.title for c in conditions.values()]
    row = dict(zip(table.header, table.rows[0]))
    d_dice = np.array([np.subtract(scores[s][1], scores[s][0]) for s in (0, 1)])  # (seeds, cases): Att - U-Net
    d_recall = np.array([np.subtract(scores[s][3], scores[s][2]) for s in (0, 1)])
    dice, recall = seed_difference(d_dice), seed_difference(d_recall)
    assert row["seeds x cases"] == "2 x 3" and row["Δ Dice p"] == p_value(dice.p)
    assert row["Δ Dice [95 % interval]"] == f"{dice.mean:+.3f} [{dice.low:+.3f}, {dice.high:+.3f}]"
    assert row["Δ Dice per seed"] == ", ".join(f"{m:+.3f}" for m in d_dice.mean(axis=1))  # each seed's own mean
    assert dice.mean == pytest.approx(d_dice.mean()) and dice.p == 0.5  # 2 seeds of one sign: 2 of 4 patterns
    assert row["Δ recall [95 % interval]"].startswith(f"{d_recall.mean():+.3f} [")
    assert row["Δ recall p"] == p_value(recall.p)
    u_all, a_all = sum((scores[s][0] for s in (0, 1)), []), sum((scores[s][1] for s in (0, 1)), [])
    assert row["U-Net Dice"] == f"{np.mean(u_all):.3f} ± {np.std(u_all):.3f}"  # each model's level, cases x seeds
    assert row["Att U-Net Dice"] == f"{np.mean(a_all):.3f} ± {np.std(a_all):.3f}"
    assert row["Δ precision [95 % interval] (exploratory)"] == "+0.000 [+0.000, +0.000]"  # 0.5 in both
    assert row["Δ precision p"] == p_value(1.0)
    gain = paper.gain("ct150_120_30", "dice")
    assert row["paper Δ Dice"] == f"{gain:+.3f}" and row["focus (level 2)"] == "3.00"
    gate = dict(zip(table.header, table.rows[list(conditions).index("one_gate")]))  # paired with the baseline U-Net
    gate_gain = float(gate["Δ Dice [95 % interval]"].split()[0])
    assert gate["seeds x cases"] == "2 x 3" and gate_gain == pytest.approx(dice.mean - 0.1, abs=1e-3)
    less = dict(zip(table.header, table.rows[list(conditions).index("less_data")]))
    assert less["seeds x cases"] == "not run" and less["paper Δ Dice"] == "+0.026"  # 0.767 - 0.741, the 30/120
    # Holm over the pre-registered family: the Dice and recall tests of the conditions that ran (baseline, one gate)
    gate_dice = seed_difference(d_dice - 0.1)
    family = holm([dice.p, recall.p, gate_dice.p, recall.p])
    holm_cells = [row["Δ Dice p (Holm)"], row["Δ recall p (Holm)"], gate["Δ Dice p (Holm)"]]
    assert holm_cells == [p_value(p) for p in family[:3]]
    assert less["Δ Dice p (Holm)"] == p_value(math.nan)
    # the conclusions: one sentence per condition, each number a cell of its row
    sentences = conclusions(table)
    assert len(sentences) == len(table.rows)
    for sentence, cells in zip(sentences, table.rows):
        cell = dict(zip(table.header, cells))
        assert sentence.startswith(cell["condition"] + ":")
        if cell["seeds x cases"] == "not run":
            assert sentence.endswith("not run.")
            continue
        for key in ("Δ Dice [95 % interval]", "Δ Dice per seed", "Δ Dice p", "Δ recall [95 % interval]",
                    "Δ recall per seed", "Δ recall p", "seeds x cases",
                    "paper Δ Dice", "paper Δ recall", "Dice verdict", "U-Net Dice", "Att U-Net Dice",
                    "Δ Dice p (Holm)", "Δ recall p (Holm)"):
            assert cell[key] in sentence, (key, sentence)
    labels, diffs, paper_marks = forest_rows(results)
    assert labels == [r[0] for r in table.rows] and paper_marks["Dice"][0] == gain
    assert diffs["Dice"][0].mean == pytest.approx(dice.mean) and diffs["Dice"][0].per_seed == dice.per_seed
    per_seed = focus_table(results)
    assert [r[:4] for r in per_seed.rows[:2]] == [["baseline (120/30)", "0", "3.00", "1"],
                                                  ["baseline (120/30)", "1", "3.00", "1"]]
    seed0 = float(d_dice[0].mean())
    assert per_seed.rows[0][4] == f"{seed0:+.3f}" and per_seed.rows[0][6] == "3"
    assert focus_points(results)[0] == ("baseline (120/30)", pytest.approx(3.0), pytest.approx(seed0))
    assert math.isnan(results[list(conditions).index("one_gate")].focus.get(0, (0, math.nan))[1])
    # focus and gain: Spearman over the per-seed table's printed cells (both baseline seeds have focus 3.00: no rho)
    assert "2 Attention U-Net run(s)" in focus_sentence(per_seed) and "no correlation" in focus_sentence(per_seed)
    per_seed.rows[:] = [[*r[:2], f, *r[3:]] for r, f in zip(per_seed.rows[:2], ("1.50", "2.50"))] + [
        ["one gate", "0", "1.00", "1", "-0.100", "+0.000", "3"]]
    rho = rank_correlation([1.5, 2.5, 1.0], [float(per_seed.rows[0][4]), float(per_seed.rows[1][4]), -0.1])
    assert focus_sentence(per_seed).endswith(f"is {rho.rho:+.2f} (p {p_value(rho.p)}).")
    # the README's section: the table's cells and the sentences, between the study markers, prose kept
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- study results: start -->\nplaceholder\n<!-- study results: end -->\noutro\n")
    replace_marked(readme, README_SECTION,
                   readme_section(table, sentences, baseline_config("quick", epochs_scale=0.3), [0, 1]))
    text = readme.read_text()
    assert text.startswith("intro\n<!-- study results: start -->\n") and text.endswith("end -->\noutro\n")
    short = baseline_config("quick", epochs_scale=0.3)
    assert "placeholder" not in text and f"{short.epochs} epochs x 25 steps, seeds 0, 1" in text
    assert f"{len(table.rows)} conditions (baseline (120/30), 2x the steps," in text
    assert all(f"- {s}" in text for s in sentences) and "figures/study_forest.png" in text
    readme.write_text("no markers")
    with pytest.raises(AunetError, match="lacks the markers <!-- study results: start -->"):
        replace_marked(readme, README_SECTION, "x")


def test_study_phantoms_are_written_once_from_the_same_bodies(tmp_path):
    datasets = {key: {"data_dir": str(tmp_path / key)} for key in DEFAULT_DATASETS}
    written = write_study_phantoms(datasets, cases=1, size=(48, 40, 24), progress=False)
    assert len(written) == 3 and write_study_phantoms(datasets, cases=1, progress=False) == []
    meta = {k: json.loads((Path(d["data_dir"]) / "dataset.json").read_text())["aunet"] for k, d in datasets.items()}
    assert meta["distractors"]["options"] == PHANTOM_OPTIONS["distractors"].to_dict()
    assert meta["wide_fov"]["size"] == [60, 50, 24] and meta["wide_fov"]["spacing"] == meta["ct150"]["spacing"]
    assert len({m["seed"] for m in meta.values()}) == 1
    other = {**datasets, "distractors": datasets["ct150"]}  # a folder drawn without decoys
    with pytest.raises(AunetError, match="distractors"):
        write_study_phantoms(other, cases=1, progress=False)


def test_twice_the_steps_continues_the_baseline_runs_of_a_step_schedule(tmp_path):
    # the poly schedule ends at lr 0: its twice-the-steps runs start afresh, with the schedule over all their epochs
    assert study_conditions(baseline_config("quick"))["steps_2x"].continues == ""
    datasets = {key: {"data_dir": str(tmp_path / key)} for key in DEFAULT_DATASETS}
    write_study_phantoms(datasets, cases=8, size=(80, 64, 32), progress=False)
    base = baseline_config("quick", epochs_scale=0.025, spacing=8.0, patch_size=(32, 32, 32), base_filters=2,
                           iterations_per_epoch=1, device="cpu", lr_schedule="step")
    conditions = {n: dataclasses.replace(c, models=("unet",)) for n, c in study_conditions(base).items()
                  if n in ("baseline", "steps_2x")}
    done = run_study(base, tmp_path / "runs", conditions, datasets, seeds=[0], workers=1, progress=False)
    assert done == {("baseline", "unet", 0): "trained", ("steps_2x", "unet", 0): "resumed"}
    first, longer = (RunFolder(tmp_path / "runs" / n / "unet" / "seed_0").read_history() for n in conditions)
    assert len(longer) == 2 * len(first) and longer[0]["train_loss"] == first[0]["train_loss"]
    again = run_study(base, tmp_path / "runs", conditions, datasets, seeds=[0], workers=1, progress=False)
    assert set(again.values()) == {"skipped"}


def test_the_notebook_preregisters_the_conditions_that_run():
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "08_does_attention_help.ipynb", 4)
    top = nb.cells[0].source
    assert top.index("Pre-registration") < top.index("| `baseline` |")  # written above everything that runs
    listed = [line.split("`")[1] for line in top.splitlines() if line.startswith("| `")]
    assert listed == list(study_conditions(baseline_config("quick")))
    options = PHANTOM_OPTIONS
    assert "three pancreas-like decoys" in top and options["distractors"].distractors == 3
    wide = options["wide_fov"]
    assert f"{wide.fov_scale:g}x in-plane" in top and f"{wide.pancreas_scale:g}x as thick" in top
    assert all(cell.cell_type == "markdown" for cell in nb.cells[:2])  # nothing runs before the pre-registration
