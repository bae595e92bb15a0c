"""armor: adversarial training and honest robustness evaluation on PyTorch.

The names below are imported on first use (PEP 562), so ``import armor`` and the ``armor`` command start
without loading torch until something needs it.
"""
from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

#: public name → module that defines it
_EXPORTS = {
    "ATTACKS": "attacks", "create_attack": "attacks", "suite_attacks": "attacks", "SUITES": "attacks",
    "METHODS": "methods", "create_method": "methods",
    "MODELS": "models", "create_model": "models", "Normalize": "models", "ModelSpec": "models",
    "build_model": "models", "Normalized": "models.user",
    "ThreatModel": "threat", "parse_eps": "threat",
    "TrainConfig": "config", "EvalConfig": "config",
    "UserError": "errors",
    "load_dataset": "data",
    "accuracy": "eval", "evaluate": "eval",
    "evaluate_checkpoint": "eval.run", "evaluate_robustness": "eval.run",
    "load_model": "checkpoints",
    "train": "api", "Run": "api", "Trainer": "training",
    "Evaluation": "results", "TrainingRecord": "results", "EvaluationRecord": "results", "read_record": "results",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'armor' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return __all__
