"""Training methods, one module each, found through the ``METHODS`` registry."""
from ..threat import ThreatModel
from . import dummy, fgsm_rs, free, grad_align, mart, n_fgsm, pgd_at, standard, trades  # noqa: F401  (register)
from .base import METHODS, AttackingMethod, Method, Passes, StepOutput


def create_method(name: str, threat: ThreatModel, **options) -> Method:
    """``create_method("pgd_at", threat, steps=7, clean_weight=0.5)``; an option the method does not take is a
    ``UserError`` naming it (``None`` means "the method's default")."""
    return METHODS.create(name, threat, **options)


__all__ = ["METHODS", "AttackingMethod", "Method", "Passes", "StepOutput", "create_method"]
