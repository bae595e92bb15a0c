"""Shared fixtures: small models trained once per session on the embedded digits data."""
from __future__ import annotations

import os

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


def _train(tmp_path_factory, method: str, epochs: int, **kw):
    out = tmp_path_factory.mktemp(f"run_{method}")
    cfg = TrainConfig(method=method, eps=EPS, epochs=epochs, out=str(out), eval_attacks=["pgd"], eval_steps=10,
                      **kw)
    trainer = Trainer(cfg, overwrite=True, progress=False)
    summary = trainer.fit()
    trainer.model.eval()
    return {"model": trainer.model, "summary": summary, "out": out, "trainer": trainer}


@pytest.fixture(scope="session")
def standard_run(tmp_path_factory):
    return _train(tmp_path_factory, "standard", epochs=12)


@pytest.fixture(scope="session")
def robust_run(tmp_path_factory):
    return _train(tmp_path_factory, "pgd_at", epochs=20)


@pytest.fixture(scope="session")
def tiny_robust_run(tmp_path_factory):
    """A PGD-AT ``tiny_cnn`` (Wong et al.'s MNIST net) on digits with a test split of 100 images, for the tests that
    run attacks at their full budget (AutoAttack, EOT references): a forward pass costs a tenth of ``small_cnn``'s
    (0.6 vs 5.7 ms for 50 digits on one thread). About 10 s to train: clean 98 %, PGD-10 41 %, AutoAttack 29 %."""
    out = tmp_path_factory.mktemp("run_tiny_pgd_at")
    cfg = TrainConfig(method="pgd_at", eps=EPS, epochs=20, model="tiny_cnn", test_size=100, out=str(out),
                      eval_attacks=["pgd"], eval_steps=10)
    trainer = Trainer(cfg, overwrite=True, progress=False)
    summary = trainer.fit()
    trainer.model.eval()
    return {"model": trainer.model, "summary": summary, "out": out, "data": load_dataset("digits", test_size=100)}


@pytest.fixture
def test_batch(digits):
    """The first 200 digits test images (a fixed subset keeps the attack tests fast)."""
    return digits.x_test[:200], digits.y_test[:200]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
