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
from ..train.trainer import build_model, eval_attacks, pick_device
from .robust import evaluate


def load_model(path: str | Path, device: str = "auto"):
    """(model in eval mode, its TrainConfig, the checkpoint dict) from an armor checkpoint."""
    dev = pick_device(device)
    state = load_checkpoint(path, map_location=dev)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg, state["dataset"]).to(dev)
    model.load_state_dict(state["model"])
    return model.eval(), cfg, state


def evaluate_checkpoint(checkpoint: str | Path, attacks: List[str], steps: int = 20, restarts: int = 1,
                        step_size: Any = None, eps: Any = None, norm: Optional[str] = None, split: str = "test",
                        n: Optional[int] = None, batch_size: int = 256, data_dir: Optional[str] = None,
                        device: str = "auto", out: Optional[str] = None) -> Dict[str, Any]:
    from ..attacks import ATTACKS

    for name in attacks:
        ATTACKS.get(name)
    model, cfg, state = load_model(checkpoint, device)
    threat = ThreatModel(norm or cfg.norm, eps if eps is not None else cfg.resolved_eps())
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir, cfg.val_size, cfg.train_size, cfg.test_size,
                        seed=cfg.seed)
    if list(data.input_shape) != list(state["dataset"]["input_shape"]):
        raise UserError(f"data {cfg.dataset!r} has inputs {data.input_shape}, but the checkpoint's model expects "
                        f"{tuple(state['dataset']['input_shape'])}")
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)
    if n is not None:
        x, y = x[:n], y[:n]
    dev = next(model.parameters()).device
    named = eval_attacks(attacks, threat, steps, restarts)
    if step_size is not None:
        from ..attacks.base import check_step_size
        from ..threat import parse_eps

        for attack in named.values():
            if hasattr(attack, "step_size"):
                attack.step_size = check_step_size(parse_eps(step_size, "step_size"))
    result = evaluate(model, x.to(dev), y.to(dev), named, batch_size=batch_size)
    path = Path(out) if out else Path(checkpoint).parent / "eval.json"
    record = {"checkpoint": str(checkpoint), "dataset": data.name, "split": split, "model": cfg.model,
              "method": cfg.method, "threat": {"norm": threat.norm, "eps": threat.eps}, "epoch": state["epoch"],
              "result": result}
    write_json(path, record)
    return {**record, "path": str(path), "threat_str": str(threat)}
