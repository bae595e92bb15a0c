"""The names of armor's built-in registry entries, known without importing torch.

The registries (``MODELS``, ``METHODS``, ``ATTACKS``, ``SCHEDULES``, ``LOSSES``) and the suite and augmentation
tables own what each name builds and the options it takes; they live in modules that import torch (2–4 s on a
CPU). Checking a name the user typed needs only the names, so the config checks ask :func:`names`, which answers
from :data:`BUILT_IN` and adds whatever was registered at run time in a registry module that is already loaded (a
user's ``@MODELS.register`` means that module is loaded; the command line registers nothing). So ``armor train
--method bogus`` or ``armor eval --checkpoint missing.pt --attack pgdd`` is answered in a fraction of a second.

Adding a built-in entry means adding its name here too; ``tests/test_config.py`` fails until every registry holds
exactly these names (and nothing built in is missing here). Layer 0: standard library only.
"""
from __future__ import annotations

import sys
from typing import Dict, List, Tuple

#: kind → the names of armor's own entries
BUILT_IN: Dict[str, Tuple[str, ...]] = {
    "model": ("mlp", "preact_resnet18", "resnet50", "small_cnn", "tiny_cnn", "wide_resnet"),
    "method": ("dummy", "fgsm_rs", "free", "grad_align", "mart", "n_fgsm", "pgd_at", "standard", "trades"),
    "attack": ("apgd", "apgd_t", "fab", "fab_t", "fgsm", "fgsm_rs", "pgd", "square"),
    "schedule": ("constant", "cosine", "onecycle", "piecewise"),
    "loss": ("ce", "dlr", "margin"),
    "suite": ("quick", "fast", "standard", "full", "autoattack"),  # in order of strength, as --help lists them
    "augmentation": ("none", "translate", "crop_flip", "strong"),
}

#: kind → (module, attribute) of the registry that may hold run-time registrations beyond the built-in ones
REGISTRIES: Dict[str, Tuple[str, str]] = {
    "model": ("armor.models.common", "MODELS"),
    "method": ("armor.methods.base", "METHODS"),
    "attack": ("armor.attacks.base", "ATTACKS"),
    "schedule": ("armor.schedules", "SCHEDULES"),
    "loss": ("armor.losses", "LOSSES"),
}


def names(kind: str) -> List[str]:
    """The names a ``kind`` accepts now: the built-in ones, plus any registered at run time (sorted; the suites and
    augmentations, which take no registrations, keep their listed order)."""
    built_in = list(BUILT_IN[kind])
    if kind not in REGISTRIES:
        return built_in
    module, attribute = REGISTRIES[kind]
    loaded = sys.modules.get(module)
    registry = getattr(loaded, attribute, None) if loaded is not None else None
    return sorted(set(built_in) | set(registry.names() if registry is not None else ()))
