"""HTML/Markdown reports rendered from two small runs' JSON, checked as text and in headless Chromium."""
from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest

from armor.cli import main
from armor.eval.figures import compute_figures
from armor.reports.html import SECTIONS, load_runs, markdown_table, render_html
from armor.results import AttackResult, EpsSweep, Evaluation, EvaluationRecord


def section(page, anchor):
    """The HTML of one report section."""
    start = page.index(f'<section id="{anchor}">')
    return page[start:page.index("</section>", start)]


def _copy_run(run, dest):
    shutil.copytree(run["out"], dest, ignore=shutil.ignore_patterns("last.pt"))
    return dest


@pytest.fixture(scope="module")
def report(standard_run, robust_run, tmp_path_factory):
    """Copies of the two session runs (their folders stay untouched), figures computed once, and an eval record
    in the format ``armor eval`` writes, with checks, a sweep and corruptions (numbers made up: rendering only)."""
    root = tmp_path_factory.mktemp("report")
    std = _copy_run(standard_run, root / "standard")
    rob = _copy_run(robust_run, root / "robust <&>")  # a name that must be escaped in HTML
    for run in (std, rob):
        compute_figures(run, n=6, steps=10, device="cpu")
    # an eval record as `armor eval` writes it, with checks, a sweep and corruptions (numbers made up: rendering only)
    result = Evaluation("ensemble", 200, 181, 83, {"pgd-20": AttackResult("pgd-20", "PGD(...)", 83, 98, 4000)},
                        ["clean"] * 19 + ["pgd-20"] * 98 + [None] * 83, 4200, 0)
    sweep = EpsSweep("linf", 200, [{"eps": 0.1, "worst_case_acc": 70.0, "clean_acc": 90.5},
                                   {"eps": 0.2, "worst_case_acc": 41.5, "clean_acc": 90.5},
                                   {"eps": 0.3, "worst_case_acc": 12.25, "clean_acc": 90.5}], ["pgd-20"])
    checks = {"checks": [{"name": "large_eps_reaches_zero", "status": "PASS", "value": 0.0,
                          "message": "PGD-100 at ε = 1: 0.0 % (WARN above 5 %)"},
                         {"name": "gradients_nonzero", "status": "WARN", "value": 12.0,
                          "message": "zero <gradient> on 12.0 % of inputs"}],
              "numbers": {"n": 200}, "warnings": 1}
    corruptions = {"clean_acc": 90.5, "n": 200, "mean_corrupted_acc": 77.7,
                   "corruptions": {"gaussian_noise": {"severity": {}, "mean": 80.25},
                                   "contrast": {"severity": {}, "mean": 75.15}},
                   "mce": {"reference": "standard/eval.json", "mce": 87.64, "relative_mce": 140.0}}
    EvaluationRecord(source={"checkpoint": "best.pt", "epoch": 20, "method": "pgd_at"}, dataset="digits",
                     split="test", architecture="small_cnn", threat={"norm": "linf", "eps": 0.2}, suite="quick",
                     attacks={"pgd-20": "PGD(...)"}, budget={}, reduced=[], seed=0, adaptive={"eot": 1, "bpda": None},
                     result=result, checks=checks, sweep=sweep, corruptions=corruptions).write(rob / "eval.json")
    out = root / "report.html"
    render_html(load_runs([std, rob]), out)
    return {"html": out.read_text(), "path": out, "std": std, "rob": rob, "root": root,
            "results": {"standard": standard_run["summary"], "robust": robust_run["summary"]}}


def test_report_has_tables_images_and_no_external_urls(report):
    page = report["html"]
    for title in ("Clean vs robust accuracy", "Run config", "Learning curves", "ε sweep", "Trade-off", "Corruptions",
                  "Sanity checks", "Adversarial examples", "Input-gradient saliency"):
        assert f">{title}</h2>" in page
    # the accuracy table carries the runs' own numbers, read from results.json
    for key, summary in report["results"].items():
        test = summary.test
        assert f"<td class=\"num\">{test.clean_acc:.1f}</td>" in page
        assert f"<td class=\"num strong\">{test.worst_case_acc:.1f}</td>" in page
    assert "41.5†" in page and "12.2" in page and "80.2" in page  # eval record: suite, sweep, corruptions
    assert "<td>mCE</td><td class=\"num\">87.6</td>" in section(page, "corruptions")
    assert 'class="badge WARN">WARN' in page and 'class="badge PASS">PASS' in page
    # text from files is escaped, never markup
    assert "robust &lt;&amp;&gt;" in page and "robust <&>" not in page
    assert "&lt;gradient&gt;" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    # one learning-curve figure and one example grid per run, one cross-run figure where runs are compared
    # and one grid of a stored image under each corruption (both runs are on digits: one grid)
    expected = {"curves": 2, "examples": 2, "sweep": 1, "tradeoff": 1, "saliency": 1, "corruptions": 1}
    for anchor, _ in SECTIONS:
        assert section(page, anchor).count("<img") == expected.get(anchor, 0), anchor
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.I)  # no network: no URL of any kind
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert page.count("Not measured") == 0
    # plots also saved as PNG beside the report (never into the run folders it renders)
    for label in ("standard", "robust____"):
        assert (report["root"] / f"report_{label}_learning_curves.png").is_file()
        assert (report["root"] / f"report_{label}_examples.png").is_file()
    assert (report["root"] / "report_saliency.png").is_file() and (report["root"] / "report_tradeoff.png").is_file()
    assert (report["root"] / "report_standard_corruptions.png").is_file()


def test_missing_sections_say_not_measured(report, tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(report["std"] / "results.json", run / "results.json")
    render_html(load_runs([run]), tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    for anchor, _ in SECTIONS:  # a results.json alone measures the accuracy table, nothing else
        assert ("Not measured" in section(page, anchor)) == (anchor != "accuracy"), anchor
    assert ">Clean vs robust accuracy</h2><table>" in page
    assert "store them once with `armor figures RUN`" in section(page, "corruptions")


def test_a_run_folders_own_files_are_read_without_a_word_and_a_stray_json_is_named(report, tmp_path, caplog):
    """run.json (the run's identity) is armor's own file: no "not a result record" line for it; a JSON file that is
    no armor record is left out and named."""
    import logging

    run = shutil.copytree(report["rob"], tmp_path / "run")
    assert (run / "run.json").is_file()
    (run / "notes.json").write_text('{"mine": 1}')
    with caplog.at_level(logging.INFO, logger="armor"):
        load_runs([run])
    skipped = [r.getMessage() for r in caplog.records if "not an armor result record" in r.getMessage()]
    assert skipped == [f"{run / 'notes.json'} is not an armor result record; not in the report"]


def test_rendering_writes_nothing_into_the_run_folders(report, tmp_path):
    """The renderer only reads: a read-only copy of a run renders, and no file in it changes or appears."""
    import os
    import stat

    run = shutil.copytree(report["rob"], tmp_path / "frozen")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for path in [run, *run.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        out = tmp_path / "out" / "r.html"
        out.parent.mkdir()
        render_html(load_runs([run]), out)
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
        assert "Input-gradient saliency" in out.read_text() and os.listdir(out.parent)
    finally:
        for path in [run, *run.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_saliency_of_the_robust_model_looks_more_like_the_digit(report):
    """The seed claim, measured on the stored gradients: |∂loss/∂x| of the PGD-trained model puts more of its
    mass on the digit's strokes than the standard model's does."""
    def on_object(run):
        with np.load(run / "figures.npz", allow_pickle=False) as f:
            x, g = f["x"], np.abs(f["saliency"])
        stroke = x > 0.3
        return float(((g * stroke).sum(axis=(1, 2, 3)) / g.sum(axis=(1, 2, 3))).mean())

    std, rob = on_object(report["std"]), on_object(report["rob"])
    assert rob > std + 0.05, (std, rob)


def test_markdown_and_cli(report, capsys, tmp_path):
    code = main(["report", str(report["std"]), str(report["rob"]), "--markdown"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith("| run") and "| worst case |" in out.splitlines()[0]
    clean = report["results"]["standard"].test.clean_acc
    assert f"| {clean:.1f} " in out
    assert not (tmp_path / "report.html").exists()
    assert markdown_table(load_runs([report["rob"]])).count("\n| robust <&>") == 2
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_loads_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found (make setup installs the Debian package `chromium`; apt-get failed here)")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
    url = report["path"].as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert dom.stdout.count("<img") == report["html"].count("<img") and ">Input-gradient saliency</h2>" in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,2000", url], capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(shot.read_bytes()), format="png")
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 0.05  # not a blank page: text, tables and plots
    assert (pixels[..., :3] < 0.5).mean() > 0.01


# -- polish: one check table per run, merged evaluations, no Python literals, unfinished runs, mixed n, LR panel ------
def _eval_record(rob, n=None, checks=None, source=None):
    """The fixture's eval record of the robust run, changed where asked."""
    import dataclasses

    from armor.results import read_record

    record = read_record(rob / "eval.json", EvaluationRecord)
    changes = {}
    if n is not None:
        changes["result"] = dataclasses.replace(record.result, n=n)
    if checks is not None:
        changes["checks"] = checks
    if source is not None:
        changes["source"] = source
    return dataclasses.replace(record, **changes)


def test_one_check_table_per_run_a_column_per_evaluation_and_identical_evaluations_merged(report, tmp_path):
    rob = shutil.copytree(report["rob"], tmp_path / "rob")
    # the same evaluation of another file of the same weights: merged; one with other checks: its own column
    _eval_record(rob, source={"checkpoint": "last.pt", "epoch": 20, "method": "pgd_at"}).write(rob / "eval_last.json")
    quick = {"checks": [{"name": "large_eps_reaches_zero", "status": "WARN", "value": 9.0,
                         "message": "PGD-20 at ε = 1: 9.0 % (WARN above 5 %)"}],
             "numbers": {"n": 100}, "warnings": 1, "level": "quick"}
    _eval_record(rob, checks=quick).write(rob / "eval_quick.json")
    render_html(load_runs([rob]), tmp_path / "r.html")
    checks = section((tmp_path / "r.html").read_text(), "checks")
    assert checks.count("<table>") == 1 and checks.count("<h3>") == 1  # one table for the run's three files
    head = checks[checks.index("<thead>"):checks.index("</thead>")]
    assert head.count("<th>") == 4  # check, rule, and one column per distinct evaluation
    assert "eval.json = eval_last.json (n = 200)" in head and "eval_quick.json (quick checks, n = 100)" in head
    # a row per check, its rule once, each evaluation's measurement in its column
    assert "<td>WARN above 5 %</td>" in checks and "PASS: PGD-100 at ε = 1: 0.0 %" in checks
    assert "WARN: PGD-20 at ε = 1: 9.0 %" in checks and "2 WARN" in checks
    row = next(r for r in checks.split("<tr>") if r.startswith("<td>gradients_nonzero"))
    assert row.count("<td") == 4 and "<td>—</td>" in row  # the quick evaluation did not run this check
    # merged in the accuracy table too: one row for both files, not the same numbers twice
    page = (tmp_path / "r.html").read_text()
    assert section(page, "accuracy").count("eval.json = eval_last.json") == 1
    assert "eval_last.json" not in section(page, "accuracy").replace("eval.json = eval_last.json", "")
    assert markdown_table(load_runs([rob])).count("eval_last.json") == 1


def test_no_python_literal_in_any_table_cell(report):
    page = report["html"]
    config = section(page, "config")
    assert "<td>—</td>" in config  # the runs' configs have options that are None: shown as a dash
    for literal in ("None", "True", "False", "[]", "{}"):
        assert not re.search(rf"<td[^>]*>{re.escape(literal)}</td>", page), literal
        assert f"| {literal} |" not in markdown_table(load_runs([report["std"], report["rob"]]))
    from armor.reports.html import value_text

    assert [value_text(v) for v in (None, True, False, [], ["pgd", "fgsm"], {"a": None}, 0.001)] == \
        ["—", "true", "false", "—", "pgd, fgsm", "a=—", "0.001"]


def test_an_interrupted_or_running_run_is_shown_with_its_last_epoch_and_resume_command(report, tmp_path):
    from armor import locks

    run = shutil.copytree(report["std"], tmp_path / "killed")
    (run / "results.json").unlink()  # killed after epoch 3 of 12: no test numbers yet
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    (run / "last.pt").write_bytes(b"")  # only its presence matters to the report
    command = f"armor train --resume --out {run}"
    runs = load_runs([run, report["rob"]])
    assert runs[0]["state"]["status"] == "interrupted" and runs[0]["state"]["last_epoch"] == 3
    render_html(runs, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert f"interrupted after epoch 3 of 12; resume: {command}" in section(page, "accuracy")
    assert f"<code>{command}</code>" in section(page, "accuracy") and command in section(page, "curves")
    md = markdown_table(runs)
    assert re.search(r"\| killed +\| interrupted after epoch 3 of 12; resume: " + re.escape(command), md), md
    # still running (its lock held): said so, with the command for when it stops
    locks.acquire(locks.lock_path(run), "run folder")
    try:
        state = load_runs([run])[0]["state"]
        assert state["status"] == "running" and f"running (pid {__import__('os').getpid()})" in state["text"]
    finally:
        locks.release(locks.lock_path(run))
    # killed before its first checkpoint: started again from its own config
    (run / "last.pt").unlink()
    state = load_runs([run])[0]["state"]
    assert state["command"] == f"armor train --config {run / 'config.yaml'} --out {run}"
    assert load_runs([report["std"]])[0]["state"] is None  # a finished run


def test_the_tradeoff_plot_compares_runs_on_the_same_n_or_says_they_are_mixed(report, tmp_path):
    trade = section(report["html"], "tradeoff")
    n_test = report["results"]["standard"].test.n
    assert f"Every run on the same {n_test} test examples" in trade and "Mixed n" not in trade
    # a run measured only on other examples: no n shared by every run
    other = tmp_path / "other"
    other.mkdir()
    _eval_record(report["rob"], n=n_test + 3).write(other / "eval.json")
    render_html(load_runs([report["std"], other]), tmp_path / "r.html")
    trade = section((tmp_path / "r.html").read_text(), "tradeoff")
    assert "Mixed n" in trade and f"n = {n_test}, {n_test + 3}" in trade
    assert f"other (n={n_test + 3})" in trade and f"standard (n={n_test})" in trade


@pytest.mark.parametrize("lrs,panels", [([1e-3] * 5, 1), ([1e-3, 1e-3, 5e-4, 5e-4, 1e-4], 2)])
def test_the_lr_panel_is_drawn_only_when_the_lr_changes(lrs, panels):
    from armor.reports.plots import learning_curves_figure, lr_changes

    records = [{"epoch": i + 1, "lr": lr, "train_acc": 50.0 + i, "val_robust_acc": 20.0 + i} for i, lr in enumerate(lrs)]
    fig, plt = learning_curves_figure(records, title="run")
    assert lr_changes(records) == (panels == 2) and len(fig.axes) == panels
    assert ("constant LR 0.001" in fig.axes[0].get_title()) == (panels == 1)
    plt.close(fig)
