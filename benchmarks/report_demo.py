"""Regenerate the README's report screenshot, docs/report_demo.png, from `make demo`'s runs, with its stamp.

    python benchmarks/report_demo.py            # armor demo, armor report --compute-figures, headless Chromium
    python benchmarks/report_demo.py --reuse    # the runs already in runs/demo (made by `make demo`)
    make docs                                   # the same as the first line, with .venv's Python

Run from anywhere; everything happens in the repository root, so the page shows the paths a user sees
(`runs/demo/standard`, `runs/demo/pgd_at`). The demo runs at armor's default thread count (the cores this
process may use): `OMP_NUM_THREADS` is removed from the demo's environment so that an `export OMP_NUM_THREADS=1`
in the calling shell does not change the numbers the README documents.

Writes, beside the screenshot, `docs/report_demo.json`: the png's sha256, the sha256 of every record the page
was made from (each run's results.json and the demo's demo.json), the demo's table as `armor demo` printed it,
each demo config's sha256, the thread count and Chromium's console errors (none, or the script fails).
`tests/test_report_demo.py` checks the png against the stamp, the stamp against the README's demo table and
against the configs `armor demo` would train now — so a README table re-measured without a new screenshot,
or a changed demo, fails a test.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("runs/demo/standard", "runs/demo/pgd_at")
PNG, STAMP = ROOT / "docs" / "report_demo.png", ROOT / "docs" / "report_demo.json"
WINDOW = (1100, 1800)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_hashes(configs: Dict[str, Any]) -> Dict[str, str]:
    """sha256 of each demo config without its output folder (what the demo trains, not where)."""
    out = {}
    for method, cfg in configs.items():
        values = {k: v for k, v in cfg.to_dict().items() if k != "out"}
        out[method] = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
    return out


def demo_table(demo_json: Path) -> Dict[str, Dict[str, str]]:
    """The demo's table as `armor demo` prints it (one decimal), from its demo.json record."""
    from armor.reports import accuracy_rows
    from armor.results import Comparison, read_record

    record = read_record(demo_json, Comparison)
    header, rows = accuracy_rows(record.results)
    return {row[0]: dict(zip(header[1:], row[1:])) for row in rows}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("chromium not found: install the Debian package `chromium` (make browser)")


def browser_flags(browser: str, profile: Path) -> List[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr",
            "--v=0", "--hide-scrollbars"]


def console_errors(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def screenshot(page: Path, png: Path, window=WINDOW) -> List[str]:
    """Load ``page`` in headless Chromium, then screenshot its first ``window``; returns the console errors."""
    browser = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        flags = browser_flags(browser, Path(tmp) / "profile")
        dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
        if dom.returncode != 0 or "<h1>" not in dom.stdout:
            sys.exit(f"chromium could not load {page}: {dom.stderr[-1500:]}")
        errors = console_errors(dom.stderr)
        shot = Path(tmp) / "shot.png"
        run = subprocess.run(flags + [f"--screenshot={shot}", f"--window-size={window[0]},{window[1]}", page.as_uri()],
                             capture_output=True, text=True, timeout=180)
        if run.returncode != 0 or not shot.is_file():
            sys.exit(f"chromium made no screenshot: {run.stderr[-1500:]}")
        errors += console_errors(run.stderr)
        shutil.copyfile(shot, png)
    return errors


def not_blank(png: Path) -> bool:
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png.read_bytes()), format="png")[..., :3]
    return float(pixels.std()) > 0.05 and float((pixels < 0.5).mean()) > 0.01


def armor(*argv: str, env: Dict[str, str]) -> None:
    print("$ armor " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "armor", *argv], cwd=ROOT, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="use the runs already in runs/demo")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if not args.reuse or not all((ROOT / r / "results.json").is_file() for r in RUNS):
        armor("demo", env=env)
    page = ROOT / "runs" / "demo" / "report.html"
    armor("report", *RUNS, "--compute-figures", "-o", str(page.relative_to(ROOT)), env=env)
    errors = screenshot(page, PNG)
    if errors:
        sys.exit("the report logged console errors:\n" + "\n".join(errors))
    if not not_blank(PNG):
        sys.exit(f"{PNG} looks blank")
    sys.path.insert(0, str(ROOT))
    from armor.demo import demo_configs
    from armor.results import TrainingRecord, read_record

    made_from = {f"{r}/results.json": sha256(ROOT / r / "results.json") for r in RUNS}
    made_from["runs/demo/demo.json"] = sha256(ROOT / "runs" / "demo" / "demo.json")
    records = {Path(r).name: read_record(ROOT / r / "results.json", TrainingRecord) for r in RUNS}
    epochs = {m: rec.epochs for m, rec in records.items()}
    stamp = {
        "png": "docs/report_demo.png", "png_sha256": sha256(PNG), "window": list(WINDOW),
        "made_from": made_from,
        "demo_table": demo_table(ROOT / "runs" / "demo" / "demo.json"),
        "train_test": {m: {"clean": round(rec.test.clean_acc, 1), "worst case": round(rec.test.worst_case_acc, 1),
                           "best_epoch": rec.best_epoch} for m, rec in records.items()},
        "config_sha256": config_hashes(demo_configs(epochs=epochs["pgd_at"])),
        "threads": records["pgd_at"].environment.get("threads"),
        "torch": records["pgd_at"].environment.get("torch_version"),
        "armor": records["pgd_at"].environment.get("armor_version"),
        "console_errors": errors,
    }
    STAMP.write_text(json.dumps(stamp, indent=2, ensure_ascii=False) + "\n")
    print(f"written: {PNG.relative_to(ROOT)} and {STAMP.relative_to(ROOT)}")
    print(json.dumps(stamp["demo_table"], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
