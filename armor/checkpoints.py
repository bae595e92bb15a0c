"""Saved runs: what an armor checkpoint holds, and the model and config rebuilt from it.

A checkpoint (written by the trainer through :func:`armor.io.save_checkpoint`) holds the weights, the run's
config, the data description (``dataset``: input shape, classes, normalisation) and the
:class:`~armor.models.ModelSpec` the weights belong to, so evaluation rebuilds the model without running any
training code and without importing anything the user did not name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from torch import nn

from .config import METHOD_OPTION_KEYS, TrainConfig
from .device import pick_device
from .errors import UserError
from .io import load_checkpoint
from .models import ModelSpec, build_model


def saved_config(state: Dict[str, Any]) -> TrainConfig:
    """The training config stored in a checkpoint. armor 0.1 stored every method option for every method (and its
    trainer ignored the ones a method does not take) and a value for every switched-off option; those are
    dropped here, as they were then, so the config reads back as the run that was actually trained."""
    values = dict(state["config"])
    if str(state.get("armor_version", "0")).startswith("0.1"):
        from .methods import METHODS

        method = values.get("method", "pgd_at")
        if method in METHODS:
            for key in METHOD_OPTION_KEYS:
                if key in values and not METHODS.takes(method, key):
                    values.pop(key)
        for key in ("momentum", "guard_drop", "guard_batch", "guard_steps", "eval_steps", "eval_restarts"):
            values.pop(key, None)
    return TrainConfig.from_dict(values)


def model_spec(cfg: TrainConfig, meta: Dict[str, Any]) -> ModelSpec:
    """The model ``cfg`` trains on data described by ``meta`` (input shape, classes, normalisation): the method
    says which head it needs; a model from the user's own file records the file's sha256."""
    from .methods import METHODS
    from .models.user import is_reference, sha256_of

    sha = sha256_of(cfg.model) if is_reference(cfg.model) else None
    return ModelSpec(cfg.model, list(meta["input_shape"]), int(meta["num_classes"]), list(meta["mean"]),
                     list(meta["std"]), dict(cfg.model_options), METHODS.get(cfg.method).head, sha)


def spec_of(state: Dict[str, Any]) -> ModelSpec:
    if "model_spec" in state:
        return ModelSpec.from_dict(state["model_spec"])
    return model_spec(saved_config(state), state["dataset"])  # armor 0.1 checkpoints


def load_weights(model: nn.Module, weights: Dict[str, Any], where: str | Path) -> nn.Module:
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise UserError(f"the weights in {str(where)!r} do not fit the model they were saved with ({first})") \
            from None
    return model


def load_model(path: str | Path, device: str = "auto", user_code: Optional[str] = None
               ) -> Tuple[nn.Module, TrainConfig, Dict[str, Any]]:
    """(model in eval mode on ``device``, its TrainConfig, the checkpoint dict) from an armor checkpoint.

    A checkpoint of a model from the user's own code needs ``user_code`` — the same ``file.py:factory`` reference,
    given by the user now — and an unchanged file."""
    dev = pick_device(device)
    state = load_checkpoint(path, map_location=dev)
    cfg = saved_config(state)
    model = build_model(spec_of(state), user_code, f"checkpoint {str(path)!r}").to(dev)
    load_weights(model, state["model"], path)
    return model.eval(), cfg, state
