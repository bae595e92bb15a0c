"""Training methods, one module each, found through the ``METHODS`` registry."""
from ..threat import ThreatModel
from . import dummy, fgsm_rs, free, mart, pgd_at, standard, trades  # noqa: F401  (register)
from .base import METHODS, Method, StepOutput


def create_method(name: str, threat: ThreatModel, **options) -> Method:
    """``create_method("pgd_at", threat, steps=7, clean_weight=0.5)``; options a method doesn't take are ignored."""
    return METHODS.create(name, threat=threat, **options)


__all__ = ["METHODS", "Method", "StepOutput", "create_method"]
