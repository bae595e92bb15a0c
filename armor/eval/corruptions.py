"""Accuracy under the 15 CIFAR-10-C corruptions (:mod:`armor.corrupt`), and mCE against a reference run.

Corruption error (Hendrycks & Dietterich 2019): with ``E_{s,c}`` the top-1 error (%) under corruption ``c`` at
severity ``s``, ``CE_c = Σ_s E_{s,c}(model) / Σ_s E_{s,c}(reference)`` and ``mCE = mean_c CE_c`` (in %, 100 = as
good as the reference). The relative CE measures only the drop from clean error:
``Σ_s (E_{s,c} - E_clean) / Σ_s (E_{s,c}^ref - E_clean^ref)``. RobustBench uses AlexNet as the reference; armor's
default is the standard-trained run of the same recipe, given as its ``armor eval`` record (or run folder).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from torch import nn

from ..corrupt import CORRUPTIONS, EXTRAS, SEVERITIES, corrupt
from ..errors import UserError
from ..io import read_json
from ..results import EvaluationRecord, is_record, parse_record
from .robust import accuracy

__all__ = ["CORRUPTIONS", "EXTRAS", "SEVERITIES", "corrupt", "evaluate_corruptions", "load_reference", "mce",
           "reference_mce"]

log = logging.getLogger("armor")


def evaluate_corruptions(model: nn.Module, x, y, names: Optional[Iterable[str]] = None, batch_size: int = 512,
                         seed: int = 0) -> Dict[str, Any]:
    """Accuracy (%) per corruption and severity, per-corruption mean, and the mean over all of them."""
    names = list(names or CORRUPTIONS)
    per: Dict[str, Dict] = {}
    for name in names:
        accs = [accuracy(model, corrupt(x, name, s, seed), y, batch_size) for s in SEVERITIES]
        per[name] = {"severity": dict(zip(map(str, SEVERITIES), accs)), "mean": sum(accs) / len(accs)}
    return {"clean_acc": accuracy(model, x, y, batch_size), "corruptions": per,
            "mean_corrupted_acc": sum(v["mean"] for v in per.values()) / len(per), "n": len(x), "seed": seed}


# -- mCE -----------------------------------------------------------------------------------------------------------
def _errors(block: Any, name: str, where: str) -> List[float]:
    """The five top-1 errors (%) of one corruption of a ``corruptions`` dict."""
    try:
        accs = [float(block["severity"][str(s)]) for s in SEVERITIES]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{where}: corruption {name!r} needs accuracies for severities 1–5") from None
    if not all(0 <= a <= 100 for a in accs):
        raise UserError(f"{where}: corruption {name!r} has accuracies outside 0–100: {accs}")
    return [100.0 - a for a in accs]


def mce(result: Dict[str, Any], reference: Dict[str, Any], where: str = "the reference") -> Dict[str, Any]:
    """CE per corruption, mCE, and (when both have a clean accuracy) relative CE and relative mCE, all in %.

    ``result`` and ``reference`` are ``corruptions`` dicts as :func:`evaluate_corruptions` returns them. A
    corruption whose reference error sum (relative: error increase) is not positive has no CE; it is listed in
    ``undefined`` (``relative_undefined``) and left out of the mean."""
    ours = result["corruptions"]
    theirs = reference.get("corruptions") if isinstance(reference, dict) else None
    if not isinstance(theirs, dict):
        raise UserError(f"{where} has no corruption accuracies (a 'corruptions' dict)")
    missing = [n for n in ours if n not in theirs]
    if missing:
        raise UserError(f"{where} lacks corruption(s) {', '.join(missing)}; it has: {', '.join(theirs) or 'none'}")
    ce: Dict[str, Optional[float]] = {}
    rel: Dict[str, Optional[float]] = {}
    clean, ref_clean = result.get("clean_acc"), reference.get("clean_acc")
    relative = isinstance(clean, (int, float)) and isinstance(ref_clean, (int, float))
    for name, block in ours.items():
        e, e_ref = _errors(block, name, "this evaluation"), _errors(theirs[name], name, where)
        ce[name] = 100 * sum(e) / sum(e_ref) if sum(e_ref) > 0 else None
        if relative:
            drop, ref_drop = sum(e) - 5 * (100 - clean), sum(e_ref) - 5 * (100 - ref_clean)
            rel[name] = 100 * drop / ref_drop if ref_drop > 0 else None

    def mean(values: Dict[str, Optional[float]]) -> Optional[float]:
        defined = [v for v in values.values() if v is not None]
        return sum(defined) / len(defined) if defined else None

    out: Dict[str, Any] = {"mce": mean(ce), "ce": ce, "undefined": [n for n, v in ce.items() if v is None]}
    if relative:
        out.update(relative_mce=mean(rel), relative_ce=rel,
                   relative_undefined=[n for n, v in rel.items() if v is None])
    return out


def load_reference(path: str | Path, dataset: Optional[str] = None, split: Optional[str] = None
                   ) -> Dict[str, Any]:
    """The mCE reference: ``{"path", "corruptions" (its corruptions dict), "dataset", "split"}``.

    ``path`` is an ``armor eval`` record with corruptions, the run folder holding exactly one such record, or a JSON
    object with a ``corruptions`` dict in the same format (``{"corruptions": {name: {"severity": {"1": acc, ...}}},
    "clean_acc": ...}``, e.g. published AlexNet numbers). A reference on another dataset or split is an error."""
    p = Path(path)
    if p.is_dir():
        found = []
        for f in sorted(p.glob("*.json")):
            if f.name.endswith(".state.json"):
                continue
            try:
                raw = read_json(f)
            except UserError:
                continue
            if is_record(raw) and raw.get("kind") == EvaluationRecord.kind and raw.get("corruptions"):
                found.append(f)
        if len(found) != 1:
            what = "no eval record with corruptions" if not found else \
                f"{len(found)} eval records with corruptions ({', '.join(f.name for f in found)})"
            raise UserError(f"corruption reference folder {str(p)!r} holds {what}; name the record's JSON file "
                            f"(made by armor eval --corruptions)")
        p = found[0]
    elif not p.is_file():
        raise UserError(f"corruption reference {str(p)!r} does not exist; give an armor eval record with "
                        "corruptions (JSON) or its run folder")
    raw = read_json(p)
    where = f"corruption reference {str(p)!r}"
    if is_record(raw):
        record = parse_record(raw, where)
        if not isinstance(record, EvaluationRecord):
            raise UserError(f"{where} is a {record.kind} record, not an evaluation record with corruptions")
        if not record.corruptions:
            raise UserError(f"{where} was evaluated without corruptions; re-run armor eval --corruptions on it")
        ref = {"path": str(p), "corruptions": record.corruptions, "dataset": record.dataset, "split": record.split}
    elif isinstance(raw, dict) and isinstance(raw.get("corruptions"), dict):
        ref = {"path": str(p), "corruptions": raw, "dataset": raw.get("dataset"), "split": raw.get("split")}
    else:
        raise UserError(f"{where} is neither an armor eval record nor a JSON object with a 'corruptions' dict")
    for key, ours in (("dataset", dataset), ("split", split)):
        if ours is not None and ref[key] is not None and ref[key] != ours:
            raise UserError(f"{where} is on {key} {ref[key]!r}, this evaluation on {ours!r}; mCE compares errors "
                            "on the same images")
    return ref


def reference_mce(result: Dict[str, Any], reference: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`mce` against a loaded reference, with where it came from; logs when it saw other images."""
    theirs = reference["corruptions"]
    out = {"reference": reference["path"], **mce(result, theirs, f"corruption reference {reference['path']!r}")}
    for key in ("n", "seed"):
        if key in theirs and theirs[key] != result.get(key):
            log.warning("the corruption reference has %s %s, this evaluation %s: its corrupted images differ",
                        key, theirs[key], result.get(key))
            out[f"reference_{key}"] = theirs[key]
    if out["mce"] is None:
        log.warning("mCE is undefined: the reference made no error under any corruption")
    return out
