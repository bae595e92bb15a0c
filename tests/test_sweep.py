"""`armor sweep`: one run per value, a clean-vs-robust table in JSON, CSV and Markdown, and a Pareto plot."""
from __future__ import annotations

import csv
import json

from armor.cli import main
from armor.reports.sweep import write_sweep
from armor.train.sweep import pareto_front

TINY = ["--epochs", "1", "--train-size", "100", "--val-size", "20", "--test-size", "40", "--steps", "1",
        "--eval-steps", "2", "--eval-attacks", "pgd", "--quiet"]


def test_sweep_cli_writes_its_table_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--method", "trades", "--param", "beta", "--values", "0.1", "6", "--out", str(out)] + TINY)
    stdout = capsys.readouterr().out
    assert code == 0 and "beta" in stdout and "pareto" in stdout
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["param"] == "beta" and [p["beta"] for p in sweep["points"]] == [0.1, 6.0]
    for p in sweep["points"]:
        assert 0 <= p["robust_acc"] <= p["clean_acc"] <= 100 and p["method"] == "trades"
        assert (tmp_path / "sweep" / f"beta={p['beta']:g}" / "results.json").is_file()
    rows = list(csv.reader((out / "sweep.csv").open()))
    assert rows[0][:2] == ["beta", "method"] and [r[0] for r in rows[1:]] == ["0.1", "6"]
    assert float(rows[1][2]) == round(sweep["points"][0]["clean_acc"], 1)
    assert "| beta" in (out / "sweep.md").read_text()
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_refuses_a_parameter_it_cannot_vary(tmp_path, capsys):
    code = main(["sweep", "--param", "lr", "--values", "0.1", "--out", str(tmp_path / "s")] + TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot sweep 'lr'" in err[0]
    code = main(["sweep", "--param", "beta", "--values", "-1", "--method", "trades", "--out", str(tmp_path / "s")]
                + TINY)
    assert code == 2 and "beta must be a number ≥ 0" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing trained, nothing written


def test_pareto_front_and_renderers_from_json_alone(tmp_path):
    points = [{"method": m, "beta": b, "clean_acc": c, "robust_acc": r, "attacks": {"pgd-20": r}}
              for m, b, c, r in [("trades", 0.1, 99.0, 34.0), ("trades", 1.0, 98.5, 57.0),
                                 ("trades", 3.0, 97.2, 62.0), ("trades", 6.0, 96.5, 61.0)]]
    assert pareto_front(points) == [0, 1, 2]  # β = 6 is beaten by β = 3 on both axes
    sweep = {"param": "beta", "threat": {"norm": "linf", "eps": 0.2}, "dataset": "digits", "model": "small_cnn",
             "points": points, "pareto": pareto_front(points)}
    paths = write_sweep(sweep, tmp_path)
    md = (tmp_path / "sweep.md").read_text()
    assert "| 6 " in md and md.count("*") >= 3 and set(paths) == {"json", "csv", "md", "png"}
