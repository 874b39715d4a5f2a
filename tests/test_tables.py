"""The paper's tables from raw run records: measured cells from the records, paper cells from its Tables 1 and 2."""
import csv
import itertools
import json
import re
from pathlib import Path

import matplotlib
import pytest

from aunet.cli import main
from aunet.config import Config
from aunet.errors import AunetError
from aunet.run import RunFolder
from aunet.tables import build_table, build_tables, dice_columns, write_tables

matplotlib.use("Agg")

# The paper's poster, transcribed here independently of aunet.paper.RESULTS: column -> row -> cell
REFERENCE_TABLE1 = {
    "U-Net (120/30)": ["0.814 ± 0.116", "0.848 ± 0.110", "0.806 ± 0.126", "2.358 ± 1.464", "5.88 M", "0.167 s"],
    "Att U-Net (120/30)": ["0.840 ± 0.087", "0.849 ± 0.098", "0.841 ± 0.092", "1.920 ± 1.284", "6.40 M", "0.179 s"],
    "U-Net (30/120)": ["0.741 ± 0.137", "0.789 ± 0.176", "0.743 ± 0.179", "3.765 ± 3.452", "5.88 M", "0.167 s"],
    "Att U-Net (30/120)": ["0.767 ± 0.132", "0.794 ± 0.150", "0.762 ± 0.145", "3.507 ± 3.814", "6.40 M", "0.179 s"],
}
REFERENCE_TABLE2 = {
    "U-Net (61/21)": ["0.815 ± 0.068", "0.815 ± 0.105", "0.826 ± 0.062", "2.576 ± 1.180"],
    "Att U-Net (61/21)": ["0.821 ± 0.057", "0.815 ± 0.093", "0.835 ± 0.057", "2.333 ± 0.856"],
    "U-Net fine-tune": ["0.820 ± 0.043", "0.824 ± 0.070", "0.828 ± 0.064", "2.464 ± 0.529"],
    "Att U-Net fine-tune": ["0.831 ± 0.038", "0.825 ± 0.073", "0.840 ± 0.053", "2.305 ± 0.568"],
}


def fake_run(run_dir: Path, model: str, dice=(0.6123, 0.0341), cases: int = 3, epochs: int = 2,
             seconds: float = 1.2344, cuda: bool = False, organs=("spleen", "pancreas", "kidney"), seed: int = 0,
             recall=None, val=None) -> Config:
    """Write the records a trained and evaluated run leaves in run_dir/seed_<seed>, with chosen numbers.

    The per-case pancreas Dice is dice[0] +- dice[1] (half the cases each side), so mean and std are `dice`;
    val: the validation pancreas Dice of each epoch (its length sets the epochs; None: no such column).
    """
    run = RunFolder(run_dir / f"seed_{seed}")
    cfg = Config.from_profile("quick", model=model, base_filters=2, out_dir=str(run.path), seed=seed)
    run.write_config(cfg)
    curve = val if val is not None else [None] * epochs
    run.write_history([{"epoch": e, "train_loss": 1.0, "val_mean_dice": 0.5, "lr": 1e-3, "seconds": 1.0,
                        **({"val_pancreas_dice": v} if v is not None else {}),
                        **({"gpu_peak_gib": 1.0} if cuda else {})} for e, v in enumerate(curve, start=1)])
    run.write_device({"type": "cuda" if cuda else "cpu", "name": "test device", "processes": 1})
    rows = []
    for i in range(cases):
        sign = 1 if i % 2 == 0 else -1
        row = {"case": f"c{i}"}
        for organ in organs:
            row |= {f"{organ}_dice": dice[0] + sign * dice[1], f"{organ}_precision": 0.7,
                    f"{organ}_recall": recall[i] if recall else 0.55, f"{organ}_s2s_mm": 4.5}
        rows.append(row | {"inference_seconds": seconds})
    summary = {"inference_seconds": (seconds, 0.1), **{f"{organ}_dice": dice for organ in organs}}
    run.write_evaluation("test", rows, summary)
    return cfg


def column(table, title: str) -> list[str]:
    i = table.header.index(title)
    return [row[i] for row in table.rows]


def test_measured_cells_paper_cells_and_missing_runs(tmp_path):
    cfg = fake_run(tmp_path / "ct150_120_30" / "attention_unet", "attention_unet", cases=4, epochs=2)
    table = build_table("table1_ct150", tmp_path)
    params = sum(p.numel() for p in cfg.build_model().parameters())
    assert column(table, "Att U-Net (120/30) measured") == [
        "0.612 ± 0.034", "0.700 ± 0.000", "0.550 ± 0.000", "4.500 ± 0.000", f"{params / 1e6:.2f} M", "timings.md",
        "4 (4 cases)", "0", "2", "0/1", *["n/a"] * 6]  # no U-Net run: no differences; 2 epochs: too short to tell
    for title, cells in REFERENCE_TABLE1.items():
        assert column(table, f"{title} paper")[:6] == cells
    assert column(table, "Att U-Net (120/30) paper")[10] == "+0.026"  # 0.840 - 0.814, the paper's difference
    for title in ("U-Net (120/30)", "U-Net (30/120)", "Att U-Net (30/120)"):
        assert set(column(table, f"{title} measured")[:10]) == {"not run"}
    assert [row[0] for row in table.rows][:6] == ["Dice", "Precision", "Recall", "S2S dist (mm)", "Params",
                                                  "Inference time"]
    assert any("cpu" in note and "attention_unet" in note for note in table.notes)


def brute_sign_flip(means) -> float:
    """Two-sided sign-flip p by enumerating every sign pattern (independent of aunet.stats)."""
    observed = abs(sum(means) / len(means))
    stats = [abs(sum(s * m for s, m in zip(signs, means)) / len(means))
             for signs in itertools.product((-1, 1), repeat=len(means))]
    return sum(x >= observed - 1e-12 for x in stats) / len(stats)


PLATEAU = [0.0, 0.2, 0.5, 0.6, 0.62, 0.63, 0.63, 0.63, 0.63, 0.63, 0.63, 0.63]  # flat over the last quarter
RISING = [0.05 * e for e in range(12)]  # still climbing: +0.15 over the last quarter


def test_seeds_pool_and_the_difference_rows_take_the_run_as_the_unit(tmp_path):
    recall_u = {0: [0.5, 0.6, 0.7, 0.4], 1: [0.55, 0.65, 0.6, 0.5]}
    recall_a = {0: [0.6, 0.62, 0.8, 0.41], 1: [0.7, 0.66, 0.61, 0.52]}
    for seed in (0, 1):
        fake_run(tmp_path / "ct150_120_30" / "unet", "unet", dice=(0.5, 0.1), cases=4, seed=seed,
                 recall=recall_u[seed], val=PLATEAU)
        fake_run(tmp_path / "ct150_120_30" / "attention_unet", "attention_unet", dice=(0.6, 0.1), cases=4,
                 seed=seed, recall=recall_a[seed], val=(PLATEAU, RISING)[seed])
    table = build_table("table1_ct150", tmp_path)
    att = column(table, "Att U-Net (120/30) measured")
    assert att[6:10] == ["8 (4 cases)", "0, 1", "12", "1/2"]  # seed 1's Attention U-Net is still rising
    assert column(table, "U-Net (120/30) measured")[9] == "2/2"
    assert att[10] == "+0.100 [+0.100, +0.100] (2 seeds x 4 cases)"  # every case of every seed gains 0.1
    assert att[11] == "+0.100, +0.100"
    d = {s: [a - u for a, u in zip(recall_a[s], recall_u[s])] for s in (0, 1)}
    seed_means = [sum(d[s]) / 4 for s in (0, 1)]
    case_means = [(d[0][c] + d[1][c]) / 2 for c in range(4)]
    assert att[13].startswith(f"{sum(seed_means) / 2:+.3f} [") and att[13].endswith("(2 seeds x 4 cases)")
    assert att[14] == ", ".join(f"{m:+.3f}" for m in seed_means)
    p = max(brute_sign_flip(seed_means), brute_sign_flip(case_means))
    assert att[15] == f"{p:.2f}" and p >= 0.5  # two seeds: no p below 0.5
    assert column(table, "U-Net (120/30) measured")[10:] == [""] * 6
    assert [row[0] for row in table.rows][9:] == ["Converged runs", "Δ Dice, Att − U-Net [95 % CI]",
                                                  "Δ Dice per seed", "Δ Dice p (seeds and cases)",
                                                  "Δ Recall, Att − U-Net [95 % CI]", "Δ Recall per seed",
                                                  "Δ Recall p (seeds and cases)"]


def test_claims_table_verdicts(tmp_path, monkeypatch):
    """Six CT-150 seeds decide; three TCIA seeds cannot (p >= 0.25, nothing detectable); every cell from the runs."""
    from aunet.claims import build_claims, claims_summary

    loss = {"ct150_120_30": 0.1, "ct150_30_120": 0.044}  # Att loses this much Dice on every case of every seed
    recall_a = {s: [0.52 + 0.03 * (s % 3 - 1), 0.58, 0.71 - 0.02 * s, 0.39] for s in range(6)}
    for name, lost in loss.items():
        for seed in range(6):
            fake_run(tmp_path / name / "unet", "unet", dice=(0.5, 0.1), cases=4, seed=seed,
                     recall=[0.5, 0.6, 0.7, 0.4])
            fake_run(tmp_path / name / "attention_unet", "attention_unet", dice=(0.5 - lost, 0.1), cases=4,
                     seed=seed, recall=recall_a[seed])
    for name, level in (("tcia_61_21", 0.5), ("tcia_finetune", 0.6)):
        for seed in range(3):
            for model in ("unet", "attention_unet"):
                fake_run(tmp_path / name / model, model, dice=(level, 0.1), cases=4, seed=seed)
    claims = build_claims(tmp_path)
    by_claim = {row[0]: dict(zip(claims.header, row)) for row in claims.rows}
    dice = by_claim["Attention gates raise pancreas Dice"]
    assert dice["seeds x cases"] == "6 x 16"  # 6 seeds; 4 test cases in each of the 4 experiments
    seed_means = [(4 * -0.1 + 4 * -0.044 + 8 * 0.0) / 16] * 3 + [(4 * -0.1 + 4 * -0.044) / 8] * 3  # 3-5: no TCIA
    assert dice["per seed"] == ", ".join(f"{m:+.3f}" for m in seed_means)
    assert dice["effect [95 % interval]"].startswith(f"{sum(seed_means) / 6:+.3f} [")
    assert dice["p"] == "0.03" and dice["verdict"] == "not supported"  # TCIA's cases tie at 0: p_cases is larger
    assert float(dice["detectable (80 % power)"]) > 0
    recall = by_claim["Attention gates raise pancreas recall"]
    d = {s: [a - u for a, u in zip(recall_a[s], [0.5, 0.6, 0.7, 0.4])] for s in range(6)}
    ct_means = [sum(d[s]) * 2 / 8 for s in range(6)]  # both CT-150 experiments: the same 4 differences each
    means = [(sum(d[s]) * 2 + 8 * (0.55 - 0.55)) / 16 for s in range(3)] + ct_means[3:]
    assert recall["per seed"] == ", ".join(f"{m:+.3f}" for m in means)
    less = by_claim["Attention helps more with less training data"]
    assert less["effect [95 % interval]"] == "+0.056 [+0.056, +0.056]"  # loses 0.044 at 30/120, 0.1 at 120/30
    assert less["per seed"] == "30/120: " + ", ".join(["-0.044"] * 6) + "; 120/30: " + ", ".join(["-0.100"] * 6)
    assert less["seeds x cases"] == "6 x 4 (30/120), 6 x 4 (120/30)"
    assert less["p"] == f"{2 / 70:.2f}" and less["verdict"] == "supported"  # 4 cases against 4: 2 of 70 splits
    tuned = by_claim["Fine-tuning beats training from scratch on TCIA"]
    assert tuned["effect [95 % interval]"] == "+0.100 [+0.100, +0.100]" and tuned["seeds x cases"] == "3 x 8"
    assert tuned["p"] == "0.25" and tuned["verdict"] == "inconclusive"  # 3 seeds: the smallest p
    assert tuned["detectable (80 % power)"] == "none"
    cost = by_claim["The gates cost little computation"]
    assert cost["verdict"] in ("supported", "not supported") and float(cost["effect [95 % interval]"].split(";")[0]) > 1
    assert cost["paper"] == "1.088 params; 1.072 time"  # 6.40 M / 5.88 M; 0.179 s / 0.167 s
    monkeypatch.setattr("aunet.claims.forward_flops", lambda cfg: 1)  # counted above; slow to count again
    assert claims.rows[:4] == build_claims(tmp_path).rows[:4]  # fixed draws: the same records, the same cells
    sentences = claims_summary(claims)
    assert len(sentences) == 5
    assert sentences[3] == ("Fine-tuning beats training from scratch on TCIA: inconclusive (+0.100 [+0.100, +0.100], "
                            "per seed +0.100, +0.100, +0.100, p 0.25, 3 x 8 seeds x test cases; detectable with 80 % "
                            "power: none).")


def test_table2_paper_columns_and_cuda_runs(tmp_path):
    fake_run(tmp_path / "tcia_finetune" / "unet", "unet", dice=(0.8, 0.05), cases=4, cuda=True)
    table = build_table("table2_tcia", tmp_path)
    for title, cells in REFERENCE_TABLE2.items():
        assert column(table, f"{title} paper")[:4] == cells
        assert column(table, f"{title} paper")[4:6] == ["—", "—"]  # the paper's TCIA table has no params or times
    assert column(table, "U-Net fine-tune measured")[0] == "0.800 ± 0.050"
    assert set(column(table, "U-Net (61/21) measured")[:9]) == {"not run"}
    assert any("cuda" in note for note in table.notes)


def test_two_class_model_and_a_missing_folder(tmp_path):
    fake_run(tmp_path / "tcia_61_21" / "unet", "unet", dice=(0.7, 0.1), cases=4, organs=("class1",))
    assert column(build_table("table2_tcia", tmp_path), "U-Net (61/21) measured")[0] == "0.700 ± 0.100"
    with pytest.raises(AunetError, match="folder not found"):
        build_tables(tmp_path / "missing")


def _history(run: Path) -> Path:
    return run / "history.csv"


def _evaluation(run: Path) -> Path:
    return run / "evaluation_test.csv"


def _text_in_a_number(run: Path) -> str:
    """history.csv with a word where the second epoch's seconds belong."""
    path = _history(run)
    path.write_text(path.read_text().replace("\n2,1.0,0.5,0.001,1.0", "\n2,1.0,0.5,0.001,fast"))
    return r"history.csv: line 3, column seconds: 'fast' is not a number"


def _binary_bytes(run: Path) -> str:
    """evaluation_test.csv overwritten in its middle by bytes that are not text."""
    path = _evaluation(run)
    data = bytearray(path.read_bytes())
    data[40:48] = b"\xff\xfe\x00\x81\x9f\xc3\x28\xa0"
    path.write_bytes(bytes(data))
    return r"evaluation_test.csv: byte \d+ is not text"


def _unknown_config_key(run: Path) -> str:
    path = run / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"learning_rate_typo": 1}))
    return r"config.json: unknown key\(s\) learning_rate_typo"


def _evaluated_without_config(run: Path) -> str:
    (run / "config.json").unlink()
    return r"seed_\d: has no config.json"


def _summary_not_json(run: Path) -> str:
    (run / "evaluation_test_summary.json").write_text("{not json")
    return r"evaluation_test_summary.json: cannot be read"


@pytest.mark.parametrize("damage", [_text_in_a_number, _binary_bytes, _unknown_config_key, _evaluated_without_config,
                                    _summary_not_json])
def test_a_damaged_run_is_left_out_in_one_line_naming_its_file(tmp_path, capsys, monkeypatch, damage):
    """The tables are built from the other runs; the damaged seed is marked and named, on stderr in one line."""
    monkeypatch.setattr("aunet.claims.forward_flops", lambda cfg: 1)  # not under test here, and slow to count
    runs, out = tmp_path / "runs", tmp_path / "tables"
    for seed in (0, 1):
        fake_run(runs / "ct150_120_30" / "unet", "unet", dice=(0.5, 0.1), cases=4, seed=seed)
        fake_run(runs / "ct150_120_30" / "attention_unet", "attention_unet", dice=(0.6, 0.1), cases=4, seed=seed)
    fake_run(runs / "tcia_61_21" / "unet", "unet", dice=(0.7, 0.1), cases=4)
    expected = damage(runs / "ct150_120_30" / "attention_unet" / "seed_1")
    damage(runs / "tcia_61_21" / "unet" / "seed_0")  # the only run of its column
    assert main(["tables", "--runs", str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(re.search(expected, line) for line in err), err
    assert "attention_unet/seed_1" in err[0] and "tcia_61_21/unet/seed_0" in err[1]
    table1, table2 = build_tables(runs)
    att = column(table1, "Att U-Net (120/30) measured")
    assert att[0] == "0.600 ± 0.100" and att[6:8] == ["4 (4 cases)", "0 (1 unreadable)"]
    assert att[10] == "+0.100 [+0.100, +0.100] (1 seeds x 4 cases)"  # seed 0 alone
    assert sum(bool(re.search(expected, note)) for note in table1.notes) == 1
    assert set(column(table2, "U-Net (61/21) measured")[:9]) == {"unreadable"}
    claims = (out / "claims.md").read_text()
    assert "| 2 x 4 |" not in claims and "| 1 x 4 |" in claims  # seed 1 left out of the claims,
    assert len(re.findall(expected, claims)) == 2  # and named


def test_files_cli_and_dice_chart(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "tables"
    fake_run(runs / "ct150_30_120" / "unet", "unet", dice=(0.42, 0.2), cases=4)
    tables = write_tables(runs, out)
    assert sorted(p.name for p in out.iterdir()) == ["table1_ct150.csv", "table1_ct150.md", "table2_tcia.csv",
                                                     "table2_tcia.md", "timings.csv", "timings.md"]
    assert (out / "table1_ct150.md").read_text() == tables[0].to_markdown()
    with open(out / "table1_ct150.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["pancreas (test)"] == "Dice" and rows[0]["U-Net (30/120) measured"] == "0.420 ± 0.200"
    assert rows[0]["U-Net (30/120) paper"] == "0.741 ± 0.137"
    assert main(["tables", "--runs", str(runs), "--out", str(out)]) == 0
    assert "| Dice | not run | 0.814 ± 0.116 |" in capsys.readouterr().out
    assert main(["tables", "--runs", str(tmp_path / "nothing")]) == 2
    columns = dice_columns(runs)
    assert len(columns) == 8 and sum(c[1] is not None for c in columns) == 1
    from aunet.viz.plots import plot_dice_vs_paper

    assert len(plot_dice_vs_paper(columns).axes[0].patches) == 16


def test_the_reproduction_leaves_out_a_damaged_run(tmp_path, monkeypatch):
    """The manifest's seeds and the README's section are made from the readable runs; the damaged one is named."""
    from aunet.reproduce import _runs, results_section

    monkeypatch.setattr("aunet.claims.forward_flops", lambda cfg: 1)
    runs = tmp_path / "runs"
    for seed in (0, 1):
        fake_run(runs / "ct150_120_30" / "unet", "unet", dice=(0.5, 0.1), cases=4, seed=seed)
        fake_run(runs / "ct150_120_30" / "attention_unet", "attention_unet", dice=(0.6, 0.1), cases=4, seed=seed,
                 val=(PLATEAU, RISING)[seed])
    expected = _text_in_a_number(runs / "ct150_120_30" / "unet" / "seed_1")
    seeds, seconds, convergence = _runs(runs, tmp_path)
    assert seeds == {"ct150_120_30": [0, 1]} and len(seconds) == 3
    assert convergence == {"runs/ct150_120_30/attention_unet/seed_0": {"converged": True, "rise": 0.002},
                           "runs/ct150_120_30/attention_unet/seed_1": {"converged": False, "rise": 0.15},
                           "runs/ct150_120_30/unet/seed_0": {"converged": False, "rise": None}}  # no validation
    manifest = {"machine": {"device": {"type": "cpu"}, "cpu": "test", "cpu_count": 1, "cpu_flags": []},
                "times": {"notebooks": {"06_paper_tables.ipynb": 60.0}, "started": "2026-01-01T00:00", "seconds": 60},
                "git": {"commit": "0" * 40, "dirty": False}, "profile": "quick", "seeds": seeds}
    section = results_section(manifest, runs)
    assert "| CT-150 (120/30) | 0.500 ± 0.100 | 0.600 ± 0.100 | +0.100 [+0.100, +0.100] | +0.100 |" in section
    assert "| 1/3 |" in section and "Converged: 1/3 evaluated runs" in section
    assert len(re.findall(expected, section)) == 1  # named once, below the results table
