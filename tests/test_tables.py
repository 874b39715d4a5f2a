"""The paper's tables from raw run records: measured cells from the records, paper cells from REFERENCE §4."""
import csv
import json
from pathlib import Path

import matplotlib
import pytest

from aunet.cli import main
from aunet.config import Config
from aunet.errors import AunetError
from aunet.io import atomic_write_csv
from aunet.run import RunFolder
from aunet.tables import build_table, build_tables, dice_columns, write_tables

matplotlib.use("Agg")

# REFERENCE.md section 4, transcribed here independently of aunet.tables.PAPER: column -> row -> cell
REFERENCE_TABLE1 = {
    "U-Net (120/30)": ["0.814±0.116", "0.848±0.110", "0.806±0.126", "2.358±1.464", "5.88 M", "0.167 s"],
    "Att U-Net (120/30)": ["0.840±0.087", "0.849±0.098", "0.841±0.092", "1.920±1.284", "6.40 M", "0.179 s"],
    "U-Net (30/120)": ["0.741±0.137", "0.789±0.176", "0.743±0.179", "3.765±3.452", "5.88 M", "0.167 s"],
    "Att U-Net (30/120)": ["0.767±0.132", "0.794±0.150", "0.762±0.145", "3.507±3.814", "6.40 M", "0.179 s"],
}
REFERENCE_TABLE2 = {
    "U-Net (61/21)": ["0.815±0.068", "0.815±0.105", "0.826±0.062", "2.576±1.180"],
    "Att U-Net (61/21)": ["0.821±0.057", "0.815±0.093", "0.835±0.057", "2.333±0.856"],
    "U-Net fine-tune": ["0.820±0.043", "0.824±0.070", "0.828±0.064", "2.464±0.529"],
    "Att U-Net fine-tune": ["0.831±0.038", "0.825±0.073", "0.840±0.053", "2.305±0.568"],
}


def fake_run(run_dir: Path, model: str, dice=(0.6123, 0.0341), cases: int = 3, epochs: int = 2,
             seconds: float = 1.2344, cuda: bool = False, organs=("spleen", "pancreas", "kidney")) -> Config:
    """Write the records a trained and evaluated run leaves, with chosen numbers."""
    cfg = Config.from_profile("quick", model=model, base_filters=2, out_dir=str(run_dir))
    cfg.save(run_dir / "config.json")
    history = [{"epoch": e, "train_loss": 1.0, "val_mean_dice": 0.5, "lr": 1e-3, "seconds": 1.0,
                **({"gpu_peak_gib": 1.0} if cuda else {})} for e in range(1, epochs + 1)]
    atomic_write_csv(run_dir / "history.csv", history)
    RunFolder(run_dir).write_device({"type": "cuda" if cuda else "cpu", "name": "test device", "processes": 1})
    atomic_write_csv(run_dir / "evaluation_test.csv", [{"case": f"c{i}", "pancreas_dice": 0.5} for i in range(cases)])
    summary = {"inference_seconds": {"mean": seconds, "std": 0.1}}
    for organ in organs:
        summary |= {f"{organ}_dice": {"mean": dice[0], "std": dice[1]},
                    f"{organ}_precision": {"mean": 0.7, "std": 0.01},
                    f"{organ}_recall": {"mean": 0.55549, "std": 0.2}, f"{organ}_s2s_mm": {"mean": 4.5, "std": 1.25}}
    (run_dir / "evaluation_test_summary.json").write_text(json.dumps(summary))
    return cfg


def column(table, title: str) -> list[str]:
    i = table.header.index(title)
    return [row[i] for row in table.rows]


def test_measured_cells_paper_cells_and_missing_runs(tmp_path):
    cfg = fake_run(tmp_path / "ct150_120_30" / "attention_unet", "attention_unet", cases=3, epochs=2)
    table = build_table("table1_ct150", tmp_path)
    params = sum(p.numel() for p in cfg.build_model().parameters())
    assert column(table, "Att U-Net (120/30) measured") == [
        "0.612±0.034", "0.700±0.010", "0.555±0.200", "4.500±1.250", f"{params / 1e6:.2f} M", "1.234 s", "3", "2"]
    for title, cells in REFERENCE_TABLE1.items():
        assert column(table, f"{title} paper")[:6] == cells
    for title in ("U-Net (120/30)", "U-Net (30/120)", "Att U-Net (30/120)"):
        assert set(column(table, f"{title} measured")) == {"not run"}
    assert [row[0] for row in table.rows][:6] == ["Dice", "Precision", "Recall", "S2S dist (mm)", "Params",
                                                  "Inference time"]
    assert any("cpu" in note and "attention_unet" in note for note in table.notes)


def test_table2_paper_columns_and_cuda_runs(tmp_path):
    fake_run(tmp_path / "tcia_finetune" / "unet", "unet", dice=(0.8, 0.05), cases=4, cuda=True)
    table = build_table("table2_tcia", tmp_path)
    for title, cells in REFERENCE_TABLE2.items():
        assert column(table, f"{title} paper")[:4] == cells
        assert column(table, f"{title} paper")[4:6] == ["—", "—"]  # the paper's TCIA table has no params or times
    assert column(table, "U-Net fine-tune measured")[0] == "0.800±0.050"
    assert set(column(table, "U-Net (61/21) measured")) == {"not run"}
    assert any("cuda" in note for note in table.notes)


def test_two_class_model_and_bad_records(tmp_path):
    fake_run(tmp_path / "tcia_61_21" / "unet", "unet", dice=(0.7, 0.1), organs=("class1",))
    assert column(build_table("table2_tcia", tmp_path), "U-Net (61/21) measured")[0] == "0.700±0.100"
    (tmp_path / "tcia_61_21" / "unet" / "evaluation_test_summary.json").write_text("{not json")
    with pytest.raises(AunetError, match="evaluation_test_summary.json"):
        build_table("table2_tcia", tmp_path)
    with pytest.raises(AunetError, match="folder not found"):
        build_tables(tmp_path / "missing")


def test_files_cli_and_dice_chart(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "tables"
    fake_run(runs / "ct150_30_120" / "unet", "unet", dice=(0.42, 0.2))
    tables = write_tables(runs, out)
    assert sorted(p.name for p in out.iterdir()) == ["table1_ct150.csv", "table1_ct150.md", "table2_tcia.csv",
                                                     "table2_tcia.md"]
    assert (out / "table1_ct150.md").read_text() == tables[0].to_markdown()
    with open(out / "table1_ct150.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["pancreas (test)"] == "Dice" and rows[0]["U-Net (30/120) measured"] == "0.420±0.200"
    assert rows[0]["U-Net (30/120) paper"] == "0.741±0.137"
    assert main(["tables", "--runs", str(runs), "--out", str(out)]) == 0
    assert "| Dice | not run | 0.814±0.116 |" in capsys.readouterr().out
    assert main(["tables", "--runs", str(tmp_path / "nothing")]) == 2
    columns = dice_columns(runs)
    assert len(columns) == 8 and sum(c[1] is not None for c in columns) == 1
    from aunet.viz.plots import plot_dice_vs_paper

    assert len(plot_dice_vs_paper(columns).axes[0].patches) == 16
