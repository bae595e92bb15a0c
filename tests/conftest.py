"""Shared fixtures: small models trained once per session on the embedded digits data."""
from __future__ import annotations

import fcntl
import os
import shutil

# One torch thread per test process, and OpenMP threads that sleep when they wait: `make test` runs two pytest
# workers on two cores (pytest-xdist), and the CLI subprocesses the tests start inherit this. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from armor import TrainConfig
from armor.data import load_dataset
from armor.threat import ThreatModel
from armor.training import Trainer

EPS = 0.2


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def threat():
    return ThreatModel("linf", EPS)


def _train(tmp_path_factory, name: str, **kw):
    """A run trained once per test session, however many pytest-xdist workers ask: the first to ask trains it under
    a file lock in the directory the workers share, the others wait for it rather than train it again; each worker
    then works on its own copy of the finished run folder (tests write evaluations beside its checkpoints). The
    model is its best checkpoint, in eval mode, as the trainer leaves it after ``fit``."""
    from armor.checkpoints import load_model
    from armor.results import TrainingRecord, read_record

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared_root = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    shared = shared_root / f"shared_run_{name}"
    with open(shared_root / f"shared_run_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if training fails
        if not (shared / "DONE").is_file():
            cfg = TrainConfig(eps=EPS, out=str(shared), eval_attacks=["pgd"], eval_steps=10, **kw)
            Trainer(cfg, overwrite=True, progress=False).fit()
            (shared / "DONE").touch()
    out = tmp_path_factory.mktemp(f"run_{name}")
    shutil.copytree(shared, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("DONE", ".*.lock"))
    model, _, _ = load_model(out / "best.pt", "cpu")
    return {"model": model, "summary": read_record(out / "results.json", TrainingRecord), "out": out}


@pytest.fixture(scope="session")
def standard_run(tmp_path_factory):
    return _train(tmp_path_factory, "standard", method="standard", epochs=12)


@pytest.fixture(scope="session")
def robust_run(tmp_path_factory):
    return _train(tmp_path_factory, "pgd_at", method="pgd_at", epochs=20)


@pytest.fixture(scope="session")
def tiny_robust_run(tmp_path_factory):
    """A PGD-AT ``tiny_cnn`` (Wong et al.'s MNIST net) on digits with a test split of 100 images, for the tests that
    run attacks at their full budget (AutoAttack, EOT references): a forward pass costs a tenth of ``small_cnn``'s
    (0.6 vs 5.7 ms for 50 digits on one thread). About 10 s to train: clean 98 %, PGD-10 41 %, AutoAttack 29 %."""
    run = _train(tmp_path_factory, "tiny_pgd_at", method="pgd_at", epochs=20, model="tiny_cnn", test_size=100)
    return {**run, "data": load_dataset("digits", test_size=100)}


@pytest.fixture
def test_batch(digits):
    """The first 200 digits test images (a fixed subset keeps the attack tests fast)."""
    return digits.x_test[:200], digits.y_test[:200]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
