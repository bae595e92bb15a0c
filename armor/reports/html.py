"""One self-contained HTML report (and a Markdown table) from run folders' JSON — a pure renderer.

A run folder may hold ``config.yaml``, ``metrics.jsonl``, ``results.json`` (written by ``armor train``),
any number of evaluation records (``armor eval`` JSON: ``result`` plus optional ``checks``, ``sweep``,
``corruptions``), ``*_sweep.json`` files and ``figures.json``/``figures.npz`` (images and input gradients
computed once by ``armor report --compute-figures``). The report renders whichever of these exist and says
"not measured" for the rest. Nothing here runs a model: re-rendering is cheap and changes no number (the
corruption pictures are pure tensor computation on the stored images, with :mod:`armor.corrupt`).
Images are embedded as base64 PNG; the page has inline CSS, no script and no external URL.
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import logging
import math
import re
import shlex
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import locks
from ..budgets import norm_symbol
from ..errors import UserError
from ..results import (RUN_ID_FILE, EpsSweep, Evaluation, EvaluationRecord, FiguresRecord, TrainingRecord,
                       is_record, parse_record)
from . import plots
from .table import format_table

log = logging.getLogger("armor")

FIGURES_JSON, FIGURES_NPZ = "figures.json", "figures.npz"


# -- loading ---------------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0][:120]}") from None


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    records = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:  # a run killed mid-write leaves a torn last line; the rest is still good
            log.warning("%s line %d is not JSON; skipped", path, i)
    return records


def load_run(run_dir: str | Path, label: Optional[str] = None) -> Dict[str, Any]:
    """Everything a report can show about one run folder, read from its files (nothing is computed or written).

    Records are read through :mod:`armor.results` by their ``kind``; JSON files that are not armor records are
    left out (with a log line)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"run folder {str(run)!r} does not exist or is not a folder")
    data: Dict[str, Any] = {"path": str(run), "label": label or run.resolve().name, "config": None, "metrics": [],
                            "results": None, "evals": [], "sweeps": [], "figures": None}
    if (run / "config.yaml").is_file():
        import yaml

        try:
            data["config"] = yaml.safe_load((run / "config.yaml").read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"cannot read {str(run / 'config.yaml')!r}: {str(exc).splitlines()[0]}") from None
    if (run / "metrics.jsonl").is_file():
        data["metrics"] = _read_jsonl(run / "metrics.jsonl")
    figures: Optional[FiguresRecord] = None
    sweeps: List[Tuple[str, EpsSweep]] = []
    for path in sorted(run.glob("*.json")):
        if path.name.endswith(".state.json") or path.name == RUN_ID_FILE:  # resume state, the run's identity
            continue
        raw = _read_json(path)
        if not is_record(raw):
            log.info("%s is not an armor result record; not in the report", path)
            continue
        record = parse_record(raw, repr(str(path)))
        if isinstance(record, TrainingRecord):
            data["results"] = record
        elif isinstance(record, EvaluationRecord):
            data["evals"].append((path.name, record))
        elif isinstance(record, EpsSweep):
            sweeps.append((path.name, record))
        elif isinstance(record, FiguresRecord):
            figures = record
    # an eval writes its sweep both inside its record and as <stem>_sweep.json: show it once, from the record
    embedded = {Path(name).stem + "_sweep.json" for name, rec in data["evals"] if rec.sweep is not None}
    data["evals"] = merge_identical(data["evals"])
    data["sweeps"] = [(name, rec.sweep) for name, rec in data["evals"] if rec.sweep is not None]
    data["sweeps"] += [(name, s) for name, s in sweeps if name not in embedded]
    if figures is not None and (run / FIGURES_NPZ).is_file():
        try:
            with np.load(run / FIGURES_NPZ, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {str(run / FIGURES_NPZ)!r}: {exc}") from None
        data["figures"] = {"meta": figures, **arrays}
    if data["config"] is None and not data["metrics"] and data["results"] is None and not data["evals"]:
        raise UserError(f"run folder {str(run)!r} holds no config.yaml, metrics.jsonl, results.json or eval record")
    data["state"] = run_state(run, data)
    return data


def merge_identical(evals: Sequence[Tuple[str, EvaluationRecord]]) -> List[Tuple[str, EvaluationRecord]]:
    """Evaluation records that measured the same thing with the same outcome (every number, attack, check, sweep
    and corruption equal; only the file, the checkpoint's path or the environment differ) shown once, under all
    their file names (``eval.json = eval_last.json``)."""
    groups: Dict[str, List[Tuple[str, EvaluationRecord]]] = {}
    for name, record in evals:
        measured = record.to_dict()
        for key in ("source", "environment"):
            measured.pop(key, None)
        groups.setdefault(json.dumps(measured, sort_keys=True, default=str), []).append((name, record))
    return [(" = ".join(name for name, _ in group), group[0][1]) for group in groups.values()]


def run_state(run: Path, data: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """None for a finished run (it has results.json) or a folder that is no training run; else how far a running or
    interrupted run got (its last logged epoch) and the exact command that continues it."""
    config = data["config"]
    if data["results"] is not None or not isinstance(config, dict):
        return None
    epochs = config.get("epochs")
    last = max((int(r["epoch"]) for r in data["metrics"] if isinstance(r.get("epoch"), int)), default=0)
    path = data["path"]
    if (run / "last.pt").is_file():
        command = f"armor train --resume --out {shlex.quote(path)}"
        model = config.get("model")
        if isinstance(model, str) and ":" in model:  # your own architecture: named again on resume
            command += f" --model {shlex.quote(model)}"
        done = f"epoch {last} of {epochs}" + (", before the final test" if last == epochs else "")
    else:  # killed before its first checkpoint: nothing to resume, the run starts again in the same folder
        command = f"armor train --config {shlex.quote(str(Path(path) / 'config.yaml'))} --out {shlex.quote(path)}"
        done = "no epoch (stopped before its first checkpoint)"
    holder = locks.in_use(locks.lock_path(run))
    if holder:
        text = f"running ({holder}): {done} so far; if it stops: {command}"
    elif (run / "last.pt").is_file():
        text = f"interrupted after {done}; resume: {command}"
    else:
        text = f"interrupted: {done}; start it again: {command}"
    return {"status": "running" if holder else "interrupted", "last_epoch": last, "epochs": epochs,
            "command": command, "text": text}


def load_runs(run_dirs: Sequence[str | Path]) -> List[Dict[str, Any]]:
    """Load every run; labels are folder names, made unique with their parent folder when two clash."""
    if not run_dirs:
        raise UserError("give at least one run folder")
    names = [Path(d).resolve().name for d in run_dirs]
    labels = [f"{Path(d).resolve().parent.name}/{n}" if names.count(n) > 1 else n for d, n in zip(run_dirs, names)]
    return [load_run(d, label) for d, label in zip(run_dirs, labels)]


# -- numbers ---------------------------------------------------------------------------------------------------------
def _threat_str(threat: Optional[Dict[str, Any]]) -> str:
    if not threat:
        return ""
    norm = norm_symbol(threat.get("norm"))
    eps = threat.get("eps")
    return f"{norm} ε={eps:.4g}" if isinstance(eps, (int, float)) else norm


def sources(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every accuracy measurement of a run: the training's test evaluation, its EMA/SWA candidates, each eval file."""
    out = []
    res: Optional[TrainingRecord] = run["results"]
    if res is not None:
        for key, cand in res.candidates.items():
            name = f"train test (best epoch {res.best_epoch})" if key == "best" else f"{key} (epoch {cand.epoch})"
            out.append({"name": name, "result": cand.test, "threat": res.threat})
    for name, record in run["evals"]:
        suite = f", suite {record.suite}" if record.suite else ""
        out.append({"name": f"{name}{suite}", "result": record.result, "threat": record.threat})
    return out


def accuracy_table(runs: Sequence[Dict[str, Any]]) -> Tuple[List[str], List[List[str]], bool]:
    """Header and rows of clean / per-attack / worst-case accuracy (%), one row per run and measurement."""
    attacks: List[str] = []
    for run in runs:
        for src in sources(run):
            for name in src["result"].attacks:
                if name not in attacks:
                    attacks.append(name)
    header = ["run", "evaluation", "threat", "n", "clean"] + attacks + ["worst case"]
    rows, any_cumulative = [], False
    for run in runs:
        if run.get("state") is not None:  # running or interrupted: no test numbers yet, but never left out
            rows.append([run["label"], run["state"]["text"], "—", "—", "—"] + ["—"] * len(attacks) + ["—"])
        for src in sources(run):
            res: Evaluation = src["result"]
            cumulative = res.acc_kind == "cumulative"
            row = [run["label"], src["name"], _threat_str(src["threat"]), str(res.n), _pct(res.clean_acc)]
            for name in attacks:
                if name not in res.attacks:
                    row.append("—")
                    continue
                any_cumulative |= cumulative
                row.append(_pct(res.acc(name)) + ("†" if cumulative else ""))
            row.append(_pct(res.worst_case_acc))
            rows.append(row)
    return header, rows, any_cumulative


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.1f}"


def measurements(run: Dict[str, Any]) -> List[Tuple[int, float, float]]:
    """(n, clean, worst case) of every measurement of the run at its training ε."""
    out = []
    eps = run["results"].threat.get("eps") if run["results"] is not None else None
    for src in sources(run):
        worst = src["result"].worst_case_acc
        same_eps = eps is None or not src["threat"] or abs(src["threat"].get("eps", eps) - eps) < 1e-9
        if not math.isnan(worst) and same_eps:
            out.append((src["result"].n, src["result"].clean_acc, worst))
    return out


def headline(run: Dict[str, Any], n: Optional[int] = None) -> Optional[Tuple[float, float, int]]:
    """(clean, worst case, n) of the run's strongest measurement at its training ε (lowest worst case), among those
    on ``n`` examples when given."""
    found = [m for m in measurements(run) if n is None or m[0] == n]
    if not found:
        return None
    n_best, clean, worst = min(found, key=lambda m: m[2])
    return clean, worst, n_best


def markdown_table(runs: Sequence[Dict[str, Any]]) -> str:
    """A README-ready Markdown table of clean / per-attack / worst-case accuracy."""
    header, rows, cumulative = accuracy_table(runs)
    if not rows:
        return "(no accuracy measured in these runs)"
    text = format_table(header, rows, markdown=True)
    note = "\n\nAccuracy in %; worst case = robust to every attack in the row."
    if cumulative:
        note += " † = after this attack and all before it in the suite."
    return text + note


# -- HTML pieces -----------------------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def value_text(value: Any) -> str:
    """A config or record value as a table shows it: ``—`` for none or empty, ``true``/``false``, lists joined,
    mappings as ``k=v`` — never a Python literal (``None``, ``True``, ``[...]``)."""
    if value is None or value == [] or value == {} or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={value_text(v)}" for k, v in value.items())
    return str(value)


def _table(header: Sequence[Any], rows: Sequence[Sequence[Any]], classes: Optional[Sequence[str]] = None,
           cell_class=None) -> str:
    rows = [[cell if isinstance(cell, str) else value_text(cell) for cell in row] for row in rows]
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(classes[i])}"' if classes and classes[i] else ""
        cells = []
        for j, cell in enumerate(row):
            extra = cell_class(i, j, cell) if cell_class else ""
            cells.append(f'<td class="{esc(extra)}">{esc(cell)}</td>' if extra else f"<td>{esc(cell)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Optional[Path], alt: str) -> str:
    if path is None:
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def _na(what: str, how: str) -> str:
    return f'<p class="na">Not measured: {esc(what)}. {esc(how)}</p>'


class _Pngs:
    """Where plots go: beside the report, never into the run folders it renders (``report_<run>_<plot>.png``)."""

    def __init__(self, out: Path):
        self.out_dir, self.stem = out.parent, out.stem

    def run_path(self, run: Dict[str, Any], name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run["label"])
        return self.out_dir / f"{self.stem}_{safe}_{name}"

    def shared_path(self, name: str) -> Path:
        return self.out_dir / f"{self.stem}_{name}"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def _config_section(runs: Sequence[Dict[str, Any]]) -> str:
    configs = [r["config"] for r in runs]
    if not any(configs):
        return _na("no config.yaml in these folders", "Runs made by `armor train` write one.")
    keys: List[str] = []
    for c in configs:
        for k in (c or {}):
            if k not in keys:
                keys.append(k)
    show = lambda c, k: "—" if not c or k not in c else value_text(c[k])  # noqa: E731
    differ = [k for k in keys if len({show(c, k) for c in configs}) > 1]
    header = ["key"] + [r["label"] for r in runs]
    main_keys = ["dataset", "model", "method", "norm", "eps", "steps", "epochs", "batch_size", "optimizer", "lr",
                 "schedule", "augment", "seed"]
    brief = [k for k in keys if k in main_keys or k in differ]
    body = _table(header, [[k] + [show(c, k) for c in configs] for k in brief],
                  classes=["diff" if k in differ else "" for k in brief])
    body += '<p class="note">Highlighted rows differ between runs.</p>' if differ and len(runs) > 1 else ""
    body += ("<details><summary>full config</summary>"
             + _table(header, [[k] + [show(c, k) for c in configs] for k in keys]) + "</details>")
    return body


def _curves_section(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    figs = []
    for run in runs:
        if not run["metrics"]:
            continue
        res = run["results"]
        best = res.best_epoch if res is not None else None
        path = plots.write_learning_curves(run["metrics"], pngs.run_path(run, "learning_curves.png"),
                                           title=run["label"], best_epoch=best)
        stop = res.stop_reason if res is not None else None
        state = run.get("state")
        caption = esc(run["label"]) + (f" — best epoch {esc(best)}" if best else "") + (f"; {esc(stop)}" if stop else "")
        caption += f" — {esc(state['text'])}" if state else ""
        if path:
            figs.append(f"<figure class=\"small\">{_img(path, 'learning curves of ' + run['label'])}<figcaption>{caption}"
                        f"</figcaption></figure>")
    if not figs:
        return _na("no metrics.jsonl", "`armor train` logs one line per epoch.")
    return f'<div class="figs">{"".join(figs)}</div>'


def _accuracy_section(runs: Sequence[Dict[str, Any]]) -> str:
    header, rows, cumulative = accuracy_table(runs)
    if not rows:
        return _na("no test accuracy", "Run `armor train` (results.json) or `armor eval --checkpoint RUN/best.pt`.")
    worst = len(header) - 1

    def cell_class(i, j, cell):
        return "num strong" if j == worst else "num" if j >= 3 else ""

    body = "".join(f'<p class="note unfinished">{esc(r["label"])}: {esc(r["state"]["status"])} — '
                   f'<code>{esc(r["state"]["command"])}</code></p>' for r in runs if r.get("state"))
    body += _table(header, rows, cell_class=cell_class)
    note = ("Accuracy in % on the test split. An example counts in <b>worst case</b> only if every attack in "
            "its row failed on it.")
    if any(" = " in name for r in runs for name, _ in r["evals"]):
        note += " Evaluation files joined by = measured the same numbers (one row for all of them)."
    if cumulative:
        note += " † = accuracy after this attack and all before it in the suite (shrinking-mask ensemble)."
    return body + f'<p class="note">{note}</p>'


def _sweep_section(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    sweeps = [(f"{r['label']}" + (f" ({name})" if len(r["sweeps"]) > 1 else ""), s)
              for r in runs for name, s in r["sweeps"]]
    if not sweeps:
        return _na("no ε sweep", "Add one with `armor eval --checkpoint RUN/best.pt --sweep 0.05 0.1 0.2 0.3`.")
    sizes = sorted({s.n for _, s in sweeps})
    if len(sizes) > 1:  # curves on different numbers of examples: each says its n
        sweeps = [(f"{label} (n={s.n})", s) for label, s in sweeps]
    path = plots.plot_sweeps(sweeps, pngs.shared_path("eps_sweep.png"))
    eps_values = sorted({row["eps"] for _, s in sweeps for row in s.rows})
    rows = []
    for label, s in sweeps:
        by_eps = {round(r["eps"], 9): r["worst_case_acc"] for r in s.rows}
        rows.append([label] + [_pct(by_eps.get(round(e, 9))) for e in eps_values])
    table = _table(["run"] + [f"ε={e:.4g}" for e in eps_values], rows,
                   cell_class=lambda i, j, c: "num" if j else "")
    mixed = (f"; the sweeps are on different numbers of examples (n = {', '.join(map(str, sizes))}), so each curve "
             "and row says its own n" if len(sizes) > 1 else "")
    return (f'<div class="figs"><figure class="small">{_img(path, "worst-case accuracy against eps")}</figure></div>'
            f'{table}<p class="note">Worst-case accuracy (%) at each budget{esc(mixed)}.</p>')


#: the severity (of 5) the report's example pictures of the corruptions show
EXAMPLE_SEVERITY = 3


def _corruption_examples(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    """The first stored test image of each dataset under every corruption, made here with :mod:`armor.corrupt`:
    pure tensor computation on the stored images, no model (the grid goes beside the report)."""
    figs, seen = [], set()
    for run in _figures_runs(runs):
        meta: FiguresRecord = run["figures"]["meta"]
        x = run["figures"].get("x")
        if meta.dataset in seen or x is None or x.ndim != 4 or x.shape[1] not in (1, 3) or min(x.shape[2:]) < 8:
            continue
        seen.add(meta.dataset)
        import torch

        from ..corrupt import CORRUPTIONS, corrupt

        image = torch.from_numpy(np.ascontiguousarray(x[:1], dtype=np.float32))
        tiles = [(name, corrupt(image, name, EXAMPLE_SEVERITY)[0].numpy()) for name in CORRUPTIONS]
        path = plots.plot_corruptions(x[0], tiles, pngs.run_path(run, "corruptions.png"), EXAMPLE_SEVERITY,
                                      title=str(meta.dataset))
        if path:
            figs.append(f"<figure>{_img(path, 'a test image under each corruption')}<figcaption>{esc(meta.dataset)}: "
                        f"test image {esc(int(run['figures']['index'][0]))} (stored by `armor figures` in "
                        f"{esc(run['label'])})</figcaption></figure>")
    if not figs:
        return ('<p class="note">No example pictures: they are drawn from stored test images; store them once with '
                "`armor figures RUN` (or `armor report RUN ... --compute-figures`).</p>")
    return (f'<div class="figs">{"".join(figs)}</div><p class="note">Each corruption at severity '
            f"{EXAMPLE_SEVERITY} of 5, computed for this page from the stored image (no model runs); frost is a "
            "procedural stand-in for the photographs of frost CIFAR-10-C uses.</p>")


def _corruption_section(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    cols = [(f"{r['label']} ({name})" if len(runs) == 1 or sum(rec.corruptions is not None for _, rec in r["evals"]) > 1
             else r["label"], rec.corruptions) for r in runs for name, rec in r["evals"] if rec.corruptions]
    if not cols:
        return (_na("no corruption accuracy", "Add it with `armor eval --checkpoint RUN/best.pt --corruptions`.")
                + _corruption_examples(runs, pngs))
    names: List[str] = []
    for _, c in cols:
        for name in c["corruptions"]:
            if name not in names:
                names.append(name)
    rows = [["clean"] + [_pct(c.get("clean_acc")) for _, c in cols]]
    rows += [[n] + [_pct(c["corruptions"].get(n, {}).get("mean")) for _, c in cols] for n in names]
    rows.append(["mean corrupted"] + [_pct(c.get("mean_corrupted_acc")) for _, c in cols])
    classes = [""] * (len(rows) - 1) + ["total"]
    note = "Accuracy (%) averaged over severities 1–5."
    if any(c.get("mce") for _, c in cols):
        for key, label in (("mce", "mCE"), ("relative_mce", "relative mCE")):
            rows.append([label] + [_pct((c.get("mce") or {}).get(key)) for _, c in cols])
            classes.append("")
        refs = sorted({c["mce"]["reference"] for _, c in cols if c.get("mce")})
        note += (" mCE: corruption error summed over severities as a % of the reference's, averaged over "
                 f"corruptions (100 = as the reference; lower is better); reference: {', '.join(refs)}.")
    table = _table(["corruption"] + [label for label, _ in cols], rows, classes=classes,
                   cell_class=lambda i, j, c: "num" if j else "")
    return table + f'<p class="note">{esc(note)}</p>' + _corruption_examples(runs, pngs)


def _check_parts(message: Any) -> Tuple[str, str]:
    """A check's message split into what was measured and the rule it is judged by: ``FGSM 5.0 % vs PGD-100 0.5 %``
    and ``WARN if FGSM is > 2 points stronger``."""
    text = "" if message is None else str(message)
    match = re.match(r"^(.*) \(((?:WARN|NOTE)\b.*)\)$", text)
    return (match.group(1), match.group(2)) if match else (text, "")


def _checks_section(runs: Sequence[Dict[str, Any]]) -> str:
    """One table per run: a row per check, a column per evaluation (identical evaluations already merged)."""
    blocks = []
    for run in runs:
        evals = [(name, rec.checks) for name, rec in run["evals"]
                 if isinstance(rec.checks, dict) and rec.checks.get("checks")]
        if not evals:
            continue
        names: List[str] = []
        rules: Dict[str, str] = {}
        for _, checks in evals:
            for c in checks["checks"]:
                if c.get("name") not in names:
                    names.append(c.get("name"))
                    rules[c.get("name")] = _check_parts(c.get("message"))[1]
        header = ["check", "rule"]
        for name, checks in evals:
            level, n = checks.get("level"), (checks.get("numbers") or {}).get("n")
            about = ", ".join(([f"{level} checks"] if level else []) + ([f"n = {n}"] if n else []))
            header.append(f"{name} ({about})" if about else name)
        rows, statuses = [], []
        for check in names:
            row, status = [check, rules[check]], ["", ""]
            for _, checks in evals:
                found = next((c for c in checks["checks"] if c.get("name") == check), None)
                if found is None:
                    row.append("—")
                    status.append("")
                else:
                    row.append(f"{found.get('status', '')}: {_check_parts(found.get('message'))[0]}")
                    status.append(str(found.get("status", "")))
            rows.append(row)
            statuses.append(status)
        warns = sum(st == "WARN" for status in statuses for st in status)
        verdict = (f'<span class="badge WARN">{warns} WARN</span>' if warns
                   else '<span class="badge PASS">all PASS</span>')
        what = f"{len(evals)} evaluations" if len(evals) > 1 else evals[0][0]
        blocks.append(f"<h3>{esc(run['label'])} — {esc(what)} {verdict}</h3>"
                      + _table(header, rows, cell_class=lambda i, j, c, st=statuses:
                               f"badge {st[i][j]}" if j >= 2 and st[i][j] else ""))
    if not blocks:
        return _na("no gradient-masking sanity checks", "`armor eval --checkpoint RUN/best.pt` runs them by default.")
    return "".join(blocks) + ('<p class="note">One table per run, one column per evaluation. WARN = a symptom of '
                              'gradient masking: the robust accuracy is probably overstated. NOTE = a reporting '
                              'rule.</p>')


def _tradeoff_section(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    measured = [(r["label"], measurements(r)) for r in runs]
    measured = [(label, m) for label, m in measured if m]
    if len(measured) < 2:
        return _na("needs two or more runs with test accuracy", "Give several run folders, e.g. a sweep of "
                   "trained models.")
    common = set.intersection(*({n for n, _, _ in m} for _, m in measured))
    mixed = ""
    if common:  # compare like with like: every run on the same number of test examples
        n = max(common)
        points = [(label, *min(((c, w) for k, c, w in m if k == n), key=lambda p: p[1]), n) for label, m in measured]
        title, note = f"n = {n} test examples each", f"Every run on the same {n} test examples"
    else:
        points = [(label, *min(((c, w, k) for k, c, w in m), key=lambda p: p[1])) for label, m in measured]
        sizes = ", ".join(str(k) for k in sorted({k for *_, k in points}))
        title, note = "mixed n: not comparable", "Each run on its own test examples"
        mixed = (f'<p class="note warn">Mixed n: these runs were measured on different numbers of test examples '
                 f"(n = {esc(sizes)}) and no size is shared by all of them, so their points are not comparable; "
                 f"evaluate them on the same examples (<code>armor eval ... --n N</code>).</p>")
    labels = [label if common else f"{label} (n={k})" for label, _, _, k in points]
    path = plots.plot_tradeoff([(lab, c, w) for lab, (_, c, w, _) in zip(labels, points)],
                               pngs.shared_path("tradeoff.png"), title=title)
    front = plots.pareto_front([(c, w) for _, c, w, _ in points])
    rows = [[lab, str(k), _pct(c), _pct(w), "yes" if i in front else ""]
            for i, (lab, (_, c, w, k)) in enumerate(zip(labels, points))]
    table = _table(["run", "n", "clean", "worst case", "on Pareto front"], rows,
                   cell_class=lambda i, j, c: "num" if j in (1, 2, 3) else "")
    return (f'{mixed}<div class="figs"><figure class="small">{_img(path, "clean against robust accuracy")}</figure>'
            f'</div>{table}<p class="note">{esc(note)}, at its training ε: its lowest worst-case accuracy over its '
            "evaluations.</p>")


def _figures_runs(runs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in runs if r["figures"] is not None]


def _examples_section(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    figs = []
    for run in _figures_runs(runs):
        fig = run["figures"]
        meta: FiguresRecord = fig["meta"]
        path = plots.plot_examples(fig, pngs.run_path(run, "examples.png"), title=run["label"],
                                   eps=meta.threat.get("eps"))
        if path:
            figs.append(f"<figure>{_img(path, 'clean and adversarial examples of ' + run['label'])}<figcaption>"
                        f"{esc(run['label'])}: {esc(meta.attack)} on {esc(meta.checkpoint)}"
                        f"</figcaption></figure>")
    if not figs:
        return _na("no stored example images", "Compute them once with `armor report RUN ... --compute-figures`.")
    return (f'<div class="figs">{"".join(figs)}</div><p class="note">Titles: true label → prediction. The '
            'perturbation row is scaled to its largest value (red +, blue −).</p>')


def _saliency_section(runs: Sequence[Dict[str, Any]], pngs: _Pngs) -> str:
    with_figs = _figures_runs(runs)
    if not with_figs:
        return _na("no stored input gradients", "Compute them once with `armor report RUN ... --compute-figures`.")
    dataset = with_figs[0]["figures"]["meta"].dataset
    same = [r for r in with_figs if r["figures"]["meta"].dataset == dataset]
    common = set(same[0]["figures"]["index"].tolist())
    for r in same[1:]:
        common &= set(r["figures"]["index"].tolist())
    order = [i for i in same[0]["figures"]["index"].tolist() if i in common]
    if not order:
        return _na("the runs' stored images differ", "Recompute with `--compute-figures` on the same dataset.")

    def pick(r, key):
        pos = {int(i): k for k, i in enumerate(r["figures"]["index"].tolist())}
        return r["figures"][key][[pos[i] for i in order]]

    maps = [(f"{r['label']}", pick(r, "saliency")) for r in same]
    path = plots.plot_saliency(pick(same[0], "x"), maps, pngs.shared_path("saliency.png"))
    return (f'<div class="figs"><figure>{_img(path, "input-gradient saliency")}</figure></div>'
            '<p class="note">Gradient of the loss with respect to the input, same test images for every model. '
            "Adversarially trained models tend to have gradients that look like the digit or object "
            "(Tsipras et al. 2019, “Robustness may be at odds with accuracy”); a standard model's look like "
            "noise.</p>")


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:18px 28px;color:#1d232b;background:#fff;line-height:1.4;font-size:15px}
h1{font-size:26px;margin:4px 0 2px}h2{font-size:20px;border-bottom:2px solid #e3e7ec;padding-bottom:4px;
margin-top:30px}h3{font-size:15px;margin:16px 0 6px}
.sub{color:#5b6571;margin:0 0 10px}nav{font-size:14px;margin:8px 0 4px}nav a{margin-right:12px;color:#1f5fa8;
text-decoration:none}
table{border-collapse:collapse;margin:8px 0;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #e3e7ec;
text-align:left}th{background:#f3f5f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.strong{font-weight:700}tr.diff td{background:#fff7e0}tr.total td{font-weight:600;border-top:2px solid #c9d0d8}
.badge{font-weight:700;border-radius:4px;padding:1px 6px;font-size:12px}.PASS{color:#17693b;background:#e3f5e9}
.WARN{color:#8a4b00;background:#fff0d6}.NOTE{color:#2d4f8a;background:#e6eefb}
.figs{display:flex;flex-wrap:wrap;gap:14px}figure{margin:6px 0}figure img{max-width:100%;border:1px solid #e3e7ec}
figure.small img{width:540px}
figcaption{font-size:13px;color:#5b6571}.note{font-size:13px;color:#5b6571;margin:4px 0 10px}
.na{color:#8a939d;font-style:italic}details{margin:6px 0}summary{cursor:pointer;color:#1f5fa8}
footer{margin-top:30px;font-size:12px;color:#8a939d}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;background:#f3f5f8;padding:0 4px;
border-radius:3px}.note.warn,.note.unfinished{color:#8a4b00;font-size:14px}
"""

SECTIONS = (("accuracy", "Clean vs robust accuracy"), ("config", "Run config"), ("curves", "Learning curves"),
            ("sweep", "ε sweep"), ("tradeoff", "Trade-off"), ("corruptions", "Corruptions"),
            ("checks", "Sanity checks"), ("examples", "Adversarial examples"), ("saliency", "Input-gradient saliency"))


def render_html(runs: Sequence[Dict[str, Any]], out: str | Path, title: Optional[str] = None) -> Path:
    """Write the report for loaded ``runs`` to ``out``; plots also land as PNG files (see ``_Pngs``)."""
    from ..version import __version__

    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"cannot write report {str(out)!r}: folder {str(out.parent)!r} does not exist")
    pngs = _Pngs(out)
    bodies = {
        "accuracy": _accuracy_section(runs), "config": _config_section(runs),
        "curves": _curves_section(runs, pngs), "sweep": _sweep_section(runs, pngs),
        "tradeoff": _tradeoff_section(runs, pngs), "corruptions": _corruption_section(runs, pngs),
        "checks": _checks_section(runs), "examples": _examples_section(runs, pngs),
        "saliency": _saliency_section(runs, pngs),
    }
    title = title or "armor report: " + ", ".join(r["label"] for r in runs)
    datasets = sorted({str((r["results"].dataset if r["results"] is not None else None)
                           or (r["config"] or {}).get("dataset") or "?") for r in runs})
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in SECTIONS)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head><body>'
            f"<h1>{esc(title)}</h1><p class=\"sub\">{len(runs)} run(s) on {esc(', '.join(datasets))} — "
            + esc(", ".join(r["path"] for r in runs)) + f"</p><nav>{nav}</nav>"
            + "".join(_section(a, t, bodies[a]) for a, t in SECTIONS)
            + f"<footer>Rendered by armor {esc(__version__)} on "
              f"{esc(datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))} from the runs' "
              "JSON files; no model was run to make this page.</footer></body></html>\n")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def write_report(run_dirs: Sequence[str | Path], out: str | Path, title: Optional[str] = None) -> Path:
    """Load the run folders and write the HTML report (a pure renderer: no model runs)."""
    return render_html(load_runs(run_dirs), out, title)
