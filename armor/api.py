"""The Python front door: ``armor.train(...)`` returns a :class:`Run` holding the trained model, its record and its
history; ``armor.evaluate_robustness(model, x, y, threat)`` evaluates any model (see :mod:`armor.eval.run`).

Errors name the Python arguments (``overwrite=True``), the command line names its flags (``--overwrite``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from torch import nn

from .config import TrainConfig
from .data import Dataset
from .errors import UserError
from .io import read_jsonl
from .results import EvaluationRecord, TrainingRecord
from .threat import ThreatModel


@dataclass
class Run:
    """A finished training run: ``model`` is its best checkpoint's model (in eval mode), ``record`` its
    ``results.json``, ``data`` and ``threat`` what it trained on, ``out`` its folder."""

    out: Path
    record: TrainingRecord
    model: nn.Module
    data: Dataset
    threat: ThreatModel
    config: TrainConfig

    @property
    def history(self) -> List[Dict[str, Any]]:
        """One dict per epoch, as in ``metrics.jsonl`` (train/val accuracy, loss, LR, ε, seconds, ...)."""
        return read_jsonl(self.out / "metrics.jsonl")

    def evaluate(self, suite: Optional[str] = "standard", split: str = "test", **options: Any) -> EvaluationRecord:
        """``evaluate_robustness`` of this run's model on its own test (or val) split, under its own threat model."""
        from .eval.run import evaluate_robustness

        x, y = (self.data.x_test, self.data.y_test) if split == "test" else (self.data.x_val, self.data.y_val)
        return evaluate_robustness(self.model, x, y, self.threat, suite=suite, name=self.data.name, **options)

    def __repr__(self) -> str:
        t = self.record.test
        return (f"Run({str(self.out)!r}: {self.record.method} on {self.record.dataset}, best epoch "
                f"{self.record.best_epoch}, test clean {t.clean_acc:.1f} %, worst case over "
                f"{', '.join(t.labels)} {t.worst_case_acc:.1f} %)")


def train(config: Optional[TrainConfig] = None, *, resume: bool = False, overwrite: bool = False,
          progress: Optional[bool] = None, given: Optional[Dict[str, Any]] = None, **options: Any) -> Run:
    """Train one run and test its best checkpoint: ``armor.train(method="pgd_at", eps=0.2, epochs=30,
    out="runs/mine")`` (any :class:`~armor.config.TrainConfig` field as a keyword), or ``armor.train(cfg)``.

    ``overwrite=True`` replaces an existing run folder, ``resume=True`` continues one: the run's own config, with
    ``epochs`` (longer) and where it lives or looks (``device``, ``data_dir``, ...) taken from ``options``; any other
    option that differs from the run's is an error. ``given`` overrides which options count as given now."""
    from .training import Trainer

    if config is not None and not isinstance(config, TrainConfig):
        raise UserError(f"config must be an armor.TrainConfig (or pass its fields as keywords), got "
                        f"{type(config).__name__}")
    cfg = TrainConfig.from_dict({**(config.to_dict() if config else {}), **options}) if options or config is None \
        else config
    if resume and given is None:
        given = {k: v for k, v in options.items() if k != "out"} if config is None else None
    trainer = Trainer(cfg, resume=resume, overwrite=overwrite, progress=progress, given=given)
    try:
        record = trainer.fit()
    finally:
        trainer.close()
    trainer.model.eval()
    return Run(trainer.out, record, trainer.model, trainer.data, trainer.threat, trainer.cfg)
