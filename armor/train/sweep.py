"""A grid over one training parameter (β, ε, clean_weight, method, ...): one run per value, then a
clean-vs-robust table (JSON first; CSV, Markdown and a Pareto plot are rendered from it)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..config import TrainConfig
from ..errors import UserError
from ..eval.robust import evaluate
from ..threat import ThreatModel
from .trainer import Trainer, eval_attacks

log = logging.getLogger("armor")

#: parameters a sweep may vary (each one a TrainConfig key)
SWEEP_PARAMS = ("beta", "eps", "clean_weight", "method", "replays", "steps")


def run_sweep(base: Dict[str, Any], param: str, values: Sequence[Any], out: str | Path,
              overwrite: bool = False, progress: Optional[bool] = False) -> Dict[str, Any]:
    """Train ``base`` once per value of ``param`` into ``out/<param>=<value>/`` and tabulate the results.

    Robust accuracy is always measured at the base config's ε (so an ε sweep compares models at one
    budget), as the worst case over the config's evaluation attacks.
    """
    if param not in SWEEP_PARAMS:
        raise UserError(f"cannot sweep {param!r}; choose one of: {', '.join(SWEEP_PARAMS)}")
    if not values:
        raise UserError("a sweep needs at least one value (--values)")
    out = Path(out)
    base_cfg = TrainConfig.from_dict({**base, "out": str(out / "base")})
    # build every config first, so a bad value fails before any training starts
    configs = [TrainConfig.from_dict({**base, param: value, "out": str(out / _folder(param, value))}) for value in values]
    for cfg in configs:
        if cfg.out_dir().is_dir() and any(cfg.out_dir().iterdir()) and not overwrite:
            raise UserError(f"output folder {str(cfg.out_dir())!r} already holds files; pass --overwrite "
                            f"to replace the sweep, or choose another --out")
    threat = ThreatModel(base_cfg.norm, base_cfg.resolved_eps())
    points: List[Dict[str, Any]] = []
    for value, cfg in zip(values, configs):
        log.info("sweep %s = %s", param, value)
        trainer = Trainer(cfg, overwrite=overwrite, progress=progress)
        summary = trainer.fit()
        test = summary["test"]
        if param == "eps" and cfg.resolved_eps() != threat.eps:
            attacks = eval_attacks(cfg.eval_attacks, threat, cfg.eval_steps, cfg.eval_restarts)
            test = evaluate(trainer.model, trainer.data.x_test, trainer.data.y_test, attacks)
        points.append({param: getattr(cfg, param), "method": cfg.method, "clean_acc": test["clean_acc"],
                       "robust_acc": test["worst_case_acc"],
                       "attacks": {k: v.get("robust_acc") for k, v in test["attacks"].items()},
                       "best_epoch": summary["best_epoch"], "stop_reason": summary["stop_reason"],
                       "run": summary["run"]})
    return {"param": param, "threat": {"norm": threat.norm, "eps": threat.eps}, "dataset": base_cfg.dataset,
            "model": base_cfg.model, "base": {k: v for k, v in base.items() if k != param}, "points": points,
            "pareto": pareto_front(points)}


def _folder(param: str, value: Any) -> str:
    return f"{param}=" + "".join(c if c.isalnum() or c in "._-" else "_" for c in str(value))


def pareto_front(points: List[Dict[str, Any]]) -> List[int]:
    """Indices of the points no other point beats on both clean and robust accuracy."""
    front = []
    for i, p in enumerate(points):
        dominated = any(q["clean_acc"] >= p["clean_acc"] and q["robust_acc"] >= p["robust_acc"]
                        and (q["clean_acc"], q["robust_acc"]) != (p["clean_acc"], p["robust_acc"])
                        for q in points)
        if not dominated:
            front.append(i)
    return front
