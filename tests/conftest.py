"""Shared fixtures: small models trained once per session on the embedded digits data."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# One torch thread per test process, and OpenMP threads that sleep when they wait: `make test` runs two pytest
# workers on two cores (pytest-xdist), and the CLI subprocesses the tests start inherit this. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

import shared_runs  # noqa: E402  (tests/ is on the path, as for launch.py)

from armor.data import load_dataset
from armor.threat import ThreatModel

EPS = shared_runs.EPS


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def threat():
    return ThreatModel("linf", EPS)


def _shared_root(tmp_path_factory) -> Path:
    """The directory all of this session's pytest-xdist workers share (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


_BACKGROUND: list = []


#: the order pytest-xdist hands out the test files (``--dist loadfile``: a worker takes the next file when it is
#: almost done with its own). Measured with ``-v`` timestamps and ``--durations=0`` on 2 cores: first the heavy files
#: that need no session run (the runs train in the background meanwhile: ``shared_runs``), the files that need the
#: PGD-AT run once it is about ready, heaviest first, and the many light files last, so that no worker finishes a
#: heavy file alone at the end. The files not named keep their collection order after these. Order only; every test
#: still runs.
HEAVY_FIRST = ["test_methods.py", "test_gpu_check.py", "test_run_folders.py", "test_guard.py", "test_distributed.py",
               "test_cli.py", "test_eval_engine.py", "test_fab.py", "test_evaluation.py", "test_your_model.py",
               "test_attacks.py", "test_l1.py", "test_adaptive.py", "test_check_levels.py", "test_config.py",
               "test_hostile_inputs.py"]


def pytest_configure(config):
    # pytest-xdist ≥ 3.6 re-sorts the files by their number of tests unless told not to, which would put
    # test_config.py (many quick parametrized cases) first and the order above nowhere
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    missing = [name for name in HEAVY_FIRST if not (Path(__file__).parent / name).is_file()]
    if missing:
        raise pytest.UsageError(f"conftest.HEAVY_FIRST names files that do not exist: {', '.join(missing)}")
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


def pytest_collection_finish(session):
    """The first worker (or a plain pytest process) starts training the session's runs its selected tests need
    (after ``-k``/``-m`` deselection: nothing trains for a test that will not run)."""
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    needed = {shared_runs.FIXTURES[f] for item in session.items for f in getattr(item, "fixturenames", ())
              if f in shared_runs.FIXTURES}
    if needed:
        _BACKGROUND.extend(shared_runs.start_background(_shared_root(session.config._tmp_path_factory), needed))


def pytest_sessionfinish(session, exitstatus):
    for proc in _BACKGROUND:  # finished long ago unless the session was cut short
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def _train(tmp_path_factory, name: str):
    """A session run (see ``shared_runs``): this worker's own copy of the finished run folder (tests write
    evaluations beside its checkpoints); the model is its best checkpoint, in eval mode, as ``fit`` leaves it."""
    from armor.checkpoints import load_model
    from armor.results import TrainingRecord, read_record

    shared = shared_runs.ensure(_shared_root(tmp_path_factory), name)
    out = tmp_path_factory.mktemp(f"run_{name}")
    shutil.copytree(shared, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("DONE"))
    model, _, _ = load_model(out / "best.pt", "cpu")
    return {"model": model, "summary": read_record(out / "results.json", TrainingRecord), "out": out}


@pytest.fixture(scope="session")
def standard_run(tmp_path_factory):
    return _train(tmp_path_factory, "standard")


@pytest.fixture(scope="session")
def robust_run(tmp_path_factory):
    return _train(tmp_path_factory, "pgd_at")


@pytest.fixture(scope="session")
def tiny_robust_run(tmp_path_factory):
    """A PGD-AT ``tiny_cnn`` on digits with a test split of 100 images, for the tests that run attacks at their full
    budget (AutoAttack, EOT references). About 10 s to train: clean 98 %, PGD-10 41 %, AutoAttack 29 %."""
    return {**_train(tmp_path_factory, "tiny_pgd_at"), "data": load_dataset("digits", test_size=100)}


@pytest.fixture
def test_batch(digits):
    """The first 200 digits test images (a fixed subset keeps the attack tests fast)."""
    return digits.x_test[:200], digits.y_test[:200]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
