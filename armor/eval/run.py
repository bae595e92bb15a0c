"""Evaluate a saved checkpoint: rebuild its model and data from the checkpoint's own metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import TrainConfig
from ..data import load_dataset
from ..errors import UserError
from ..reports.json import write_json
from ..threat import ThreatModel
from ..train.checkpoint import load_checkpoint
from ..train.trainer import build_model, pick_device
from .robust import evaluate


def load_model(path: str | Path, device: str = "auto"):
    """(model in eval mode, its TrainConfig, the checkpoint dict) from an armor checkpoint."""
    dev = pick_device(device)
    state = load_checkpoint(path, map_location=dev)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg, state["dataset"]).to(dev)
    model.load_state_dict(state["model"])
    return model.eval(), cfg, state


def named_attacks(threat: ThreatModel, attacks: Optional[List[str]], suite: Optional[str] = None,
                  steps: Optional[int] = None, restarts: int = 1, step_size: Any = None, queries: Optional[int] = None,
                  loss: Optional[str] = None, adaptive: Optional[Dict[str, Any]] = None):
    """Attacks keyed by their table label (``pgd-20``, ``apgd-100x5``, ``square-5000``): a suite, or a list."""
    adaptive = adaptive or {}
    from ..attacks import ATTACKS, create_attack
    from ..attacks.base import check_step_size
    from ..threat import parse_eps
    from .suites import suite_attacks

    if step_size is not None:
        step_size = check_step_size(parse_eps(step_size, "step_size"))
        if suite is not None:
            raise UserError("--step-size applies to an --attack list, not to a suite (APGD adapts its own step "
                            "size); pass --attack pgd --step-size ... or drop --step-size")
    if suite is not None:
        return suite_attacks(suite, threat, steps=steps, queries=queries, **adaptive)
    for name in attacks:
        ATTACKS.get(name)
    named = {}
    steps = steps or 20
    for name in attacks:
        label = name
        if name in ("pgd", "apgd", "apgd_t"):
            label = f"{name}-{steps}" + (f"x{restarts}" if restarts > 1 else "") + (f"-{loss}" if loss else "")
        elif name == "square":
            label = f"square-{queries or 5000}"
        options = {"steps": steps, "restarts": restarts, **adaptive}
        if queries is not None:
            options["queries"] = queries
        if loss is not None and name not in ("apgd_t", "square"):
            options["loss"] = loss
        named[label] = create_attack(name, threat, **options)
    if step_size is not None:
        for attack in named.values():
            if hasattr(attack, "step_size"):
                attack.step_size = step_size
    return named


def evaluate_checkpoint(checkpoint: str | Path, attacks: Optional[List[str]] = None, suite: Optional[str] = None,
                        steps: Optional[int] = None, restarts: int = 1, step_size: Any = None, eps: Any = None,
                        norm: Optional[str] = None, split: str = "test", n: Optional[int] = None,
                        batch_size: int = 256, data_dir: Optional[str] = None, device: str = "auto",
                        out: Optional[str] = None, queries: Optional[int] = None, loss: Optional[str] = None,
                        eot: int = 1, bpda: Any = None, checks: bool = True, check_n: int = 200,
                        sweep: Optional[List[Any]] = None, corruptions: bool = False, seed: int = 0,
                        progress: bool = False) -> Dict[str, Any]:
    """Evaluate a checkpoint and write a RobustBench-style JSON record (see README "Evaluation").

    With neither ``attacks`` nor ``suite`` the standard suite runs. A suite runs as a shrinking-mask
    ensemble (its per-attack numbers are cumulative: accuracy after that attack and all before it);
    an ``attacks`` list runs every attack on every clean-correct example (standalone numbers). The
    evaluation saves its progress after every batch in ``<out>.state.json`` and resumes from it.
    """
    from .. import __version__
    from ..attacks.adaptive import check_eot
    from ..losses import LOSSES
    from .suites import SUITES

    if suite is None and not attacks:
        suite = "standard"
    if suite is not None and suite not in SUITES:
        raise UserError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    if loss is not None:
        LOSSES.get(loss)
    adaptive = {"eot": check_eot(eot), "bpda": bpda}
    model, cfg, state = load_model(checkpoint, device)
    threat = ThreatModel(norm or cfg.norm, eps if eps is not None else cfg.resolved_eps())
    named = named_attacks(threat, attacks, suite, steps, restarts, step_size, queries, loss, adaptive)
    if bpda:  # fail now, with one line, rather than after the clean pass
        from ..attacks.adaptive import bpda_modules
        bpda_modules(model, bpda)
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir, cfg.val_size, cfg.train_size, cfg.test_size,
                        seed=cfg.seed)
    if list(data.input_shape) != list(state["dataset"]["input_shape"]):
        raise UserError(f"data {cfg.dataset!r} has inputs {data.input_shape}, but the checkpoint's model expects "
                        f"{tuple(state['dataset']['input_shape'])}")
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)
    if n is not None:
        x, y = x[:n], y[:n]
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev)
    path = Path(out) if out else Path(checkpoint).parent / "eval.json"
    mode = "ensemble" if suite is not None else "independent"
    result = evaluate(model, x, y, named, batch_size=batch_size, mode=mode, progress=progress,
                      state_path=path.with_name(path.name + ".state.json"), seed=seed)
    record = robustbench_record(result, named, suite, threat, dataset=data.name, architecture=cfg.model, seed=seed,
                                version=__version__)
    record.update({"checkpoint": str(checkpoint), "split": split, "method": cfg.method, "epoch": state["epoch"],
                   "threat": {"norm": threat.norm, "eps": threat.eps}, "adaptive": adaptive, "result": result})
    if checks:
        from .checks import run_checks

        record["checks"] = run_checks(model, x, y, threat, n=check_n, seed=seed, **adaptive)
    if sweep:
        from .sweep import eps_sweep, write_sweep

        sweep_result = eps_sweep(model, x, y, threat, sweep,
                                 lambda t: named_attacks(t, attacks, suite, steps, restarts, step_size, queries, loss,
                                                    adaptive), batch_size=batch_size, seed=seed)
        record["sweep"] = sweep_result
        record["sweep_files"] = write_sweep(sweep_result, path.with_name(path.stem + "_sweep"),
                                            f"{data.name} {cfg.model} ({cfg.method})")
    if corruptions:
        from .corruptions import evaluate_corruptions

        record["corruptions"] = evaluate_corruptions(model, x, y, batch_size=batch_size, seed=seed)
    write_json(path, record)
    return {**record, "path": str(path), "threat_str": str(threat)}


def robustbench_record(result: Dict[str, Any], attacks: Dict[str, Any], suite: Optional[str], threat: ThreatModel,
                       dataset: str, architecture: str, seed: int, version: str) -> Dict[str, Any]:
    """The fields a RobustBench entry carries; ``autoattack_acc`` only when the standard (or full) suite ran."""
    names = list(result["attacks"])
    if result["mode"] == "ensemble":  # accuracy after each attack and all the ones before it
        broken, robust_acc = 0, {}
        correct = result["clean_acc"] * result["n"] / 100
        for name in names:
            broken += result["broken_by"][name]
            robust_acc[name] = (correct - broken) / result["n"] * 100 if result["n"] else float("nan")
    else:
        robust_acc = {name: result["attacks"][name]["robust_acc"] for name in names}
    record = {
        "dataset": dataset, "threat_model": "Linf" if threat.norm == "linf" else "L2", "eps": threat.eps,
        "architecture": architecture, "suite": suite, "n_examples": result["n"], "clean_acc": result["clean_acc"],
        "robust_acc": robust_acc, "robust_acc_kind": "cumulative" if result["mode"] == "ensemble" else "standalone",
        "worst_case_acc": result["worst_case_acc"], "number_forward_passes": result["forward_passes"],
        "forward_passes_per_prediction": 1, "seed": seed, "armor_version": version,
        "attacks": {name: repr(attack) for name, attack in attacks.items()},
    }
    if suite in ("standard", "full"):
        record["autoattack_acc"] = result["worst_case_acc"]
    return record
