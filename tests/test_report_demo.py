"""The README's report screenshot is the demo's: docs/report_demo.png against its stamp docs/report_demo.json.

`make docs` (benchmarks/report_demo.py) regenerates both from a fresh `armor demo` in headless Chromium. The stamp
holds the png's sha256, the hashes of the records it was made from, the demo's table and the configs the demo
trained; these tests fail when the screenshot, the README's demo table or the demo itself changed without the
others being regenerated.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAMP = ROOT / "docs" / "report_demo.json"
PNG = ROOT / "docs" / "report_demo.png"


@pytest.fixture(scope="module")
def stamp():
    assert STAMP.is_file(), "docs/report_demo.json is missing: run `make docs`"
    return json.loads(STAMP.read_text())


def _script():
    spec = importlib.util.spec_from_file_location("report_demo", ROOT / "benchmarks" / "report_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_demo_table():
    """The table under "`make demo` ... prints:" in the README, as {model: {column: cell}}."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"`make demo` \(.*?prints:\n\n```\n(.*?)```", text, re.S).group(1).splitlines()
    header = re.split(r"\s{2,}", block[1].strip())
    return {cells[0]: dict(zip(header[1:], cells[1:]))
            for cells in (re.split(r"\s{2,}", line.strip()) for line in block[3:] if line.strip())}


def test_the_screenshot_is_the_one_the_stamp_was_made_with_and_not_blank(stamp):
    assert hashlib.sha256(PNG.read_bytes()).hexdigest() == stamp["png_sha256"], \
        "docs/report_demo.png changed without its stamp: run `make docs`"
    assert stamp["console_errors"] == []
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(PNG.read_bytes()), format="png")[..., :3]
    assert list(pixels.shape[:2]) == stamp["window"][::-1]
    assert pixels.std() > 0.05 and (pixels < 0.5).mean() > 0.01  # text, tables and plots, not a blank page
    assert set(stamp["made_from"]) == {"runs/demo/standard/results.json", "runs/demo/pgd_at/results.json",
                                       "runs/demo/demo.json"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stamp["made_from"].values())


def test_the_readme_demo_table_is_the_one_the_screenshot_shows(stamp):
    assert readme_demo_table() == stamp["demo_table"], \
        "the README's demo table and the screenshot's runs differ: re-measure both with `make docs`"
    for method, numbers in stamp["train_test"].items():  # the runs' own records agree with the table (their
        # worst case is over the training run's own test attacks, not the demo's FGSM/PGD-20/PGD-100)
        assert f"{numbers['clean']:.1f}" == stamp["demo_table"][method]["clean"]
    readme = (ROOT / "README.md").read_text()
    assert f"{stamp['threads']} threads" in readme.split("## Your own model")[0]  # the thread count it says


def test_the_stamp_is_of_the_demo_armor_trains_now(stamp):
    from armor.demo import demo_configs

    assert _script().config_hashes(demo_configs()) == stamp["config_sha256"], \
        "armor demo trains something else than the screenshot shows: run `make docs`"
