"""Evaluation: clean, per-attack and worst-case accuracy."""
from .robust import accuracy, evaluate, predict

__all__ = ["accuracy", "evaluate", "predict"]
