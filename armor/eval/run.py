"""``armor eval``: evaluate a saved model under attack and write an :class:`~armor.results.EvaluationRecord`.

The model is rebuilt from the checkpoint's own description (:class:`~armor.models.ModelSpec`) and its data from
the checkpoint's config; the options are an :class:`~armor.config.EvalConfig`, checked before any work.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional

from ..attacks import Attack
from ..attacks.suites import SUITES, attack_list, suite_attacks, suite_shortfall
from ..config import EvalConfig, TrainConfig
from ..checkpoints import load_model
from ..data import load_dataset
from ..errors import UserError
from ..results import EvaluationRecord
from ..threat import ThreatModel
from .robust import evaluate

log = logging.getLogger("armor")


def attacks_for(threat: ThreatModel, options: EvalConfig) -> Dict[str, Attack]:
    """The attacks ``options`` asks for: its suite (default standard) or its ``--attack`` list."""
    adaptive = {"eot": options.eot, "bpda": options.bpda}
    if options.uses_suite:
        return suite_attacks(options.suite_name, threat, steps=options.steps, queries=options.queries, **adaptive)
    return attack_list(threat, options.attack, steps=options.steps, restarts=options.restarts,
                       step_size=options.step_size, queries=options.queries, loss=options.loss, **adaptive)


def output_path(options: EvalConfig) -> Path:
    if options.out:
        return Path(options.out)
    return Path(options.checkpoint).parent / "eval.json"


def evaluate_checkpoint(checkpoint: str | Path, config: Optional[EvalConfig] = None, **options: Any
                        ) -> EvaluationRecord:
    """Evaluate an armor checkpoint and write its record (``eval.json`` beside it, or ``out``).

    ``options`` are :class:`~armor.config.EvalConfig` fields (``suite="standard"``, ``attack=["pgd"]``, ``steps``,
    ``n``, ``eps``, ``checks``, ...). A suite runs as a shrinking-mask ensemble (cumulative per-attack numbers); an
    ``attack`` list runs every attack on every clean-correct example (standalone numbers). Progress is saved after
    every batch in ``<out>.state.json``; the same evaluation run again resumes from it.
    """
    cfg = config or EvalConfig(checkpoint=str(checkpoint), **options)
    if config is not None and options:
        raise TypeError("pass either an EvalConfig or keyword options, not both")
    cfg.checkpoint = str(checkpoint)
    model, train_cfg, state = load_model(checkpoint, cfg.device)
    threat = ThreatModel(cfg.norm or train_cfg.norm, cfg.eps if cfg.eps is not None else train_cfg.resolved_eps())
    named = attacks_for(threat, cfg)
    if cfg.bpda:  # fail now, with one line, rather than after the clean pass
        from ..attacks.adaptive import bpda_modules

        bpda_modules(model, cfg.bpda)
    if cfg.sweep:  # every budget checked before any work
        [threat.scaled(e) for e in cfg.sweep]
    data = load_dataset(train_cfg.dataset, cfg.data_dir or train_cfg.data_dir, train_cfg.val_size,
                        train_cfg.train_size, train_cfg.test_size, seed=train_cfg.seed)
    saved_shape = state.get("model_spec", state.get("dataset", {})).get("input_shape")
    if saved_shape is not None and list(data.input_shape) != list(saved_shape):
        raise UserError(f"data {train_cfg.dataset!r} has inputs {data.input_shape}, but the checkpoint's model "
                        f"expects {tuple(saved_shape)}")
    reference = None
    if cfg.corruption_reference:  # read and checked before any work
        from .corruptions import load_reference

        reference = load_reference(cfg.corruption_reference, dataset=data.name, split=cfg.split)
    x, y = (data.x_test, data.y_test) if cfg.split == "test" else (data.x_val, data.y_val)
    split_size = len(x)
    if cfg.n is not None:
        x, y = x[:cfg.n], y[:cfg.n]
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev)
    path = output_path(cfg)
    mode = "ensemble" if cfg.uses_suite else "independent"
    result = evaluate(model, x, y, named, batch_size=cfg.batch_size, mode=mode, progress=cfg.progress,
                      state_path=path.with_name(path.name + ".state.json"), seed=cfg.seed)
    suite = cfg.suite_name
    reduced = suite_shortfall(suite, cfg.steps, cfg.queries) if suite else []
    if len(x) < split_size:
        reduced.append(f"{len(x)} of the {split_size} {cfg.split} examples")
    budget = {"steps": cfg.steps, "restarts": cfg.restarts, "step_size": cfg.step_size, "queries": cfg.queries,
              "examples": len(x), "split_size": split_size}
    if suite:
        budget["suite"] = [(label, name, opts) for label, name, opts in SUITES[suite]]
    record = EvaluationRecord(
        source={"checkpoint": str(checkpoint), "epoch": state.get("epoch"), "method": train_cfg.method},
        dataset=data.name, split=cfg.split, architecture=train_cfg.model, threat=threat.to_dict(), suite=suite,
        attacks={label: repr(a) for label, a in named.items()}, budget={k: v for k, v in budget.items()
                                                                          if v is not None},
        reduced=reduced, seed=cfg.seed, adaptive={"eot": cfg.eot, "bpda": cfg.bpda}, result=result)
    if cfg.checks:
        from .checks import run_checks

        record.checks = run_checks(model, x, y, threat, n=cfg.check_n, seed=cfg.seed, eot=cfg.eot, bpda=cfg.bpda)
    if cfg.sweep:
        from .sweep import eps_sweep, write_sweep

        record.sweep = eps_sweep(model, x, y, threat, cfg.sweep, lambda t: attacks_for(t, cfg),
                                 batch_size=cfg.batch_size, seed=cfg.seed)
        write_sweep(record.sweep, path.with_name(path.stem + "_sweep"),
                    f"{data.name} {train_cfg.model} ({train_cfg.method})")
    if cfg.corruptions:
        from .corruptions import evaluate_corruptions

        record.corruptions = evaluate_corruptions(model, x, y, batch_size=cfg.batch_size, seed=cfg.seed)
        if reference is not None:
            from .corruptions import reference_mce

            record.corruptions["mce"] = reference_mce(record.corruptions, reference)
    record.write(path)
    return record
