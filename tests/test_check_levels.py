"""Suites and checks sized together: `--checks quick|standard|none` (auto: quick after the quick suite)."""
from __future__ import annotations

import pytest

from armor.cli import main
from armor.config import CHECKS, EvalConfig
from armor.eval.checks import LEVELS
from armor.results import EvaluationRecord, read_record

QUICK = ["--epochs", "1", "--train-size", "100", "--val-size", "20", "--test-size", "40", "--batch-size", "50",
         "--steps", "1", "--eval-steps", "1", "--eval-attacks", "pgd", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("levels") / "run"
    assert main(["train", "--method", "pgd_at", "--eps", "0.2", "--out", str(out)] + QUICK) == 0
    return out / "best.pt"


def _eval(checkpoint, tmp_path, capsys, *argv):
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--n", "30", "--out", str(out), *argv]) == 0
    return read_record(out, EvaluationRecord), capsys.readouterr().out


@pytest.mark.parametrize("argv,level", [
    (["--suite", "quick"], "quick"),                                   # auto: the quick suite gets quick checks
    (["--suite", "fast", "--steps", "5", "--queries", "50"], "quick"),  # and so does the fast one
    (["--attack", "fgsm"], "standard"),                                # auto: anything else the standard ones
    (["--suite", "quick", "--checks", "standard"], "standard"),
    (["--attack", "fgsm", "--checks", "quick"], "quick"),
    (["--suite", "quick", "--checks", "none"], None),
    (["--suite", "quick", "--no-checks"], None),
])
def test_the_checks_run_at_the_level_asked_or_sized_to_the_suite_and_say_so(checkpoint, tmp_path, capsys, argv,
                                                                              level):
    record, out = _eval(checkpoint, tmp_path, capsys, *argv)
    if level is None:
        assert record.checks is None and "no sanity checks (--checks none)" in out
        return
    budget = LEVELS[level]
    numbers = record.checks["numbers"]
    assert record.checks["level"] == level and numbers["n"] == 30  # --n 30 < the level's 100 / 200 examples
    assert f"pgd-{budget['steps']}" in numbers and f"square-{budget['queries']}" in numbers
    assert f"sanity checks on 30 examples ({level}: {budget['steps']}-step attacks" in out


def test_check_n_sets_the_examples_and_is_refused_without_checks(checkpoint, tmp_path, capsys):
    record, _ = _eval(checkpoint, tmp_path, capsys, "--suite", "quick", "--check-n", "12")
    assert record.checks["numbers"]["n"] == 12
    assert main(["eval", "--checkpoint", str(checkpoint), "--no-checks", "--check-n", "12"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "check_n 12 applies to the sanity checks, which are off" in err[0]


def test_yaml_and_python_true_false_are_aliases_and_levels_match_the_budgets():
    assert set(LEVELS) == set(CHECKS) - {"auto", "none"}
    assert LEVELS["quick"]["n"] < LEVELS["standard"]["n"] and LEVELS["quick"]["steps"] < LEVELS["standard"]["steps"]
    assert EvalConfig(checks=True).checks == "auto" and EvalConfig(checks="yes", suite="quick").check_level == "quick"
    assert EvalConfig(checks=False).check_level is None and EvalConfig(checks="standard").check_level == "standard"
    with pytest.raises(ValueError, match="checks must be one of auto, quick, standard, none"):
        EvalConfig(checks="fast")
