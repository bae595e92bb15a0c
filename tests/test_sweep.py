"""`armor sweep`: one run per value, a clean-vs-robust table in JSON, CSV and Markdown, and a Pareto plot."""
from __future__ import annotations

import csv

import yaml

from armor.cli import main
from armor.reports.sweep import write_sweep
from armor.results import SweepPoint, SweepRecord, TrainingRecord, read_record
from armor.training.sweep import pareto_front

TINY = ["--epochs", "1", "--train-size", "100", "--val-size", "20", "--test-size", "40", "--steps", "1", "--batch-size", "50",
        "--eval-steps", "2", "--eval-attacks", "pgd", "--quiet"]


def test_sweep_cli_writes_its_table_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--method", "trades", "--param", "beta", "--values", "0.1", "6", "--out", str(out)] + TINY)
    stdout = capsys.readouterr().out
    assert code == 0 and "beta" in stdout and "pareto" in stdout
    sweep = read_record(out / "sweep.json", SweepRecord)
    assert sweep.param == "beta" and [p.value for p in sweep.points] == [0.1, 6.0]
    for p in sweep.points:
        # each row holds the numbers its own run measured (its results.json), for the value it was trained with
        run = read_record(tmp_path / "sweep" / f"beta={p.value:g}" / "results.json", TrainingRecord)
        assert p.method == "trades" and p.run == run.run and p.best_epoch == run.best_epoch
        assert (p.clean_acc, p.worst_case_acc) == (run.test.clean_acc, run.test.worst_case_acc)
        assert p.attacks == {label: run.test.acc(label) for label in run.test.labels}
        assert yaml.safe_load((tmp_path / "sweep" / f"beta={p.value:g}" / "config.yaml").read_text())["beta"] \
            == p.value
    rows = list(csv.reader((out / "sweep.csv").open()))
    assert rows[0][:2] == ["beta", "method"] and [r[0] for r in rows[1:]] == ["0.1", "6"]
    assert float(rows[1][2]) == round(sweep.points[0].clean_acc, 1)
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
    # a value the method has no option for fails before anything trains
    code = main(["sweep", "--method", "pgd_at", "--param", "replays", "--values", "2", "4", "--out",
                 str(tmp_path / "s")] + TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "method 'pgd_at' has no option 'replays'" in err[0], err
    assert not (tmp_path / "s").exists()


def test_pareto_front_and_renderers_from_json_alone(tmp_path):
    points = [SweepPoint(b, m, c, r, {"pgd-20": r}, 1, None, f"runs/{b}")
              for m, b, c, r in [("trades", 0.1, 99.0, 34.0), ("trades", 1.0, 98.5, 57.0),
                                 ("trades", 3.0, 97.2, 62.0), ("trades", 6.0, 96.5, 61.0)]]
    assert pareto_front(points) == [0, 1, 2]  # β = 6 is beaten by β = 3 on both axes
    sweep = SweepRecord(param="beta", threat={"norm": "linf", "eps": 0.2}, dataset="digits", model="small_cnn",
                        base={}, points=points, pareto=pareto_front(points))
    paths = write_sweep(sweep, tmp_path)
    assert read_record(tmp_path / "sweep.json") == sweep  # written and read back by the one schema
    md = (tmp_path / "sweep.md").read_text()
    assert "| 6 " in md and md.count("*") >= 3 and set(paths) == {"json", "csv", "md", "png"}


# -- best epochs: a column, a warning when a row's best.pt is from the first epochs, and best_by: last ---------------
def test_each_row_says_its_best_epoch_and_an_early_best_is_warned_until_best_by_last(tmp_path, capsys, monkeypatch):
    from armor.training.trainer import Trainer

    # validation that peaks at epoch 1 (as it did for β = 0.1 in the short sweep): no later epoch compares
    # better; best_by: last never asks
    monkeypatch.setattr(Trainer, "compare", lambda self, record, best: best["epoch"] is None)
    flat = ["--epochs", "3"] + TINY[2:]
    out = tmp_path / "early"
    assert main(["sweep", "--method", "trades", "--param", "beta", "--values", "0.1", "6", "--out", str(out)] + flat) == 0
    stdout = capsys.readouterr().out
    sweep = read_record(out / "sweep.json", SweepRecord)
    assert [p.best_epoch for p in sweep.points] == [1, 1]
    assert all("best.pt is from epoch 1 of 3, in the first 20% of training" in p.warning for p in sweep.points)
    assert all("--best-by last" in p.warning for p in sweep.points)
    header = next(line for line in stdout.splitlines() if line.startswith("beta"))
    assert "best epoch" in header and stdout.count("! beta=") == 2
    rows = list(csv.reader((out / "sweep.csv").open()))
    col = rows[0].index("best epoch")
    assert [r[col] for r in rows[1:]] == ["1 !", "1 !"]
    assert (out / "sweep.md").read_text().count("! beta=") == 2
    # best_by: last — every row is the last epoch, and nothing is warned
    out = tmp_path / "last"
    assert main(["sweep", "--method", "trades", "--param", "beta", "--values", "0.1", "6", "--best-by", "last",
                 "--out", str(out)] + flat) == 0
    assert "! beta=" not in capsys.readouterr().out
    sweep = read_record(out / "sweep.json", SweepRecord)
    assert [(p.best_epoch, p.warning) for p in sweep.points] == [(3, None), (3, None)]
    run = read_record(out / "beta=0.1" / "results.json", TrainingRecord)
    assert run.best_epoch == 3 == run.candidates["best"].epoch


def test_a_best_epoch_in_the_eps_warmup_is_warned_and_best_by_last_refuses_what_compares_epochs():
    from armor.config import TrainConfig
    from armor.training.sweep import early_best

    cfg = TrainConfig(method="pgd_at", epochs=30, eps_warmup=5)
    assert "from the ε warm-up (epoch 4 ≤ eps_warmup 5" in early_best(cfg, 4, 30, "eps=0.2")
    assert early_best(cfg, 12, 30, "x") is None and early_best(TrainConfig(epochs=1), 1, 1, "x") is None
    assert "from epoch 6 of 30" in early_best(TrainConfig(method="pgd_at", epochs=30), 6, 30, "x")
    assert early_best(TrainConfig(epochs=30, best_by="last"), 1, 30, "x") is None
    for bad, needle in (({"early_stop_patience": 3}, "early_stop_patience 3 stops when validation stops improving"),
                        ({"method": "fgsm_rs", "guard": "rollback"}, "guard 'rollback' reloads best.pt")):
        try:
            TrainConfig(best_by="last", **bad)
        except ValueError as exc:
            assert needle in str(exc)
        else:
            raise AssertionError(f"best_by last with {bad} was accepted")
