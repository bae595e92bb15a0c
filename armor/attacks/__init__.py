"""Attacks, one module each, found through the ``ATTACKS`` registry."""
from ..threat import ThreatModel
from .adaptive import adaptive
from .apgd import APGD, APGDTargeted
from .base import ATTACKS, Attack
from .fgsm import FGSM
from .pgd import PGD
from .square import Square


def create_attack(name: str, threat: ThreatModel, **options) -> Attack:
    """``create_attack("pgd", threat, steps=100, restarts=2)``; options an attack doesn't take are ignored."""
    return ATTACKS.create(name, threat=threat, **options)


__all__ = ["APGD", "APGDTargeted", "ATTACKS", "Attack", "FGSM", "PGD", "Square", "adaptive", "create_attack"]
