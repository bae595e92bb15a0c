"""Attacks, one module each, found through the ``ATTACKS`` registry; suites of them in :mod:`.suites`."""
from ..threat import ThreatModel
from .adaptive import adaptive
from .apgd import APGD, APGDTargeted
from .base import ATTACKS, Attack, input_gradient
from .fab import FAB, FABTargeted
from .fgsm import FGSM
from .pgd import PGD
from .square import Square
from .suites import SUITES, suite_attacks


def create_attack(name: str, threat: ThreatModel, **options) -> Attack:
    """``create_attack("pgd", threat, steps=100, restarts=2)``; an option the attack does not take is a
    ``UserError`` naming it (``None`` means "the attack's default")."""
    return ATTACKS.create(name, threat, **options)


__all__ = ["APGD", "APGDTargeted", "ATTACKS", "Attack", "FAB", "FABTargeted", "FGSM", "PGD", "SUITES", "Square",
           "adaptive", "create_attack", "input_gradient", "suite_attacks"]
