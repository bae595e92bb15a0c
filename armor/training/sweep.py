"""A grid over one training parameter (β, ε, clean_weight, method, ...): one run per value, then a
clean-vs-robust :class:`~armor.results.SweepRecord` (JSON first; CSV, Markdown and a Pareto plot are rendered
from it by :mod:`armor.reports.sweep`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..attacks.suites import attack_list
from ..config import SWEEP_PARAMS, TrainConfig
from ..errors import UserError, did_you_mean
from ..eval.robust import evaluate
from ..reports.plots import pareto_front as _front
from ..results import SweepPoint, SweepRecord
from .trainer import Trainer

log = logging.getLogger("armor")

def run_sweep(base: Dict[str, Any], param: str, values: Sequence[Any], out: str | Path,
              overwrite: bool = False, progress: Optional[bool] = False) -> SweepRecord:
    """Train ``base`` once per value of ``param`` into ``out/<param>=<value>/`` and tabulate the results.

    Robust accuracy is always measured at the base config's ε (so an ε sweep compares models at one
    budget), as the worst case over the config's evaluation attacks. Every config is built and checked before
    any training starts, so a value the method cannot take fails first, with one line.
    """
    if param not in SWEEP_PARAMS:
        raise UserError(f"cannot sweep {param!r}{did_you_mean(param, SWEEP_PARAMS)}; choose one of: "
                        f"{', '.join(SWEEP_PARAMS)}")
    if not values:
        raise UserError("a sweep needs at least one value (--values)")
    out = Path(out)
    base_cfg = TrainConfig.from_dict({**base, "out": str(out / "base")})
    configs = [TrainConfig.from_dict({**base, param: value, "out": str(out / _folder(param, value))})
               for value in values]
    for cfg in configs:
        if cfg.out_dir().is_dir() and any(cfg.out_dir().iterdir()) and not overwrite:
            raise UserError(f"output folder {str(cfg.out_dir())!r} already holds files; pass --overwrite "
                            f"to replace the sweep, or choose another --out")
    threat = base_cfg.threat
    points: List[SweepPoint] = []
    for value, cfg in zip(values, configs):
        log.info("sweep %s = %s", param, value)
        trainer = Trainer(cfg, overwrite=overwrite, progress=progress)
        summary = trainer.fit()
        test = summary.test
        if param == "eps" and cfg.threat != threat:
            attacks = attack_list(threat, cfg.final_attacks, steps=cfg.eval_steps, restarts=cfg.eval_restarts)
            test = evaluate(trainer.model, trainer.data.x_test, trainer.data.y_test, attacks)
        points.append(SweepPoint(value=getattr(cfg, param), method=cfg.method, clean_acc=test.clean_acc,
                                 worst_case_acc=test.worst_case_acc,
                                 attacks={label: test.acc(label) for label in test.labels},
                                 best_epoch=summary.best_epoch, stop_reason=summary.stop_reason, run=summary.run))
    return SweepRecord(param=param, threat=threat.to_dict(), dataset=base_cfg.dataset, model=base_cfg.model,
                       base={k: v for k, v in base.items() if k != param}, points=points,
                       pareto=pareto_front(points))


def _folder(param: str, value: Any) -> str:
    return f"{param}=" + "".join(c if c.isalnum() or c in "._-" else "_" for c in str(value))


def pareto_front(points: List[SweepPoint]) -> List[int]:
    """Indices of the points no other point beats on both clean and worst-case accuracy (in input order)."""
    return sorted(_front([(p.clean_acc, p.worst_case_acc) for p in points]))
