"""Callbacks against robust overfitting: early stopping, EMA and SWA weight averages.

Each averaged model is its own *candidate*: evaluated on the validation split whenever the raw model
is, logged under its own prefix (``ema_val_robust_acc``), kept in its own best checkpoint
(``best_ema.pt``, ``best_swa.pt``) and tested at the end as its own line of ``results.json``.

EMA choices (documented because they change results):

* EMA of the weights *and* of the float buffers (BatchNorm running mean/var), like timm's ModelEmaV2:
  the running statistics then follow the averaged trajectory; integer buffers are copied.
* No warm-up. The common ``min(decay, (1 + t) / (10 + t))`` warm-up caps the decay at 0.99 until step
  ~990 and at 0.999 until step ~9990, so in short runs 0.99 and 0.999 would behave identically. Here
  the average starts as a copy of the weights at the first step and then uses ``decay`` as given.

SWA averages the weights equally from epoch ``swa_start`` on (one snapshot per epoch); its BatchNorm
statistics are recomputed before each evaluation with one pass over the (clean, un-augmented)
training inputs, because averaged weights do not match any model's running statistics.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from ..methods import StepOutput

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

from .trainer import Callback

log = logging.getLogger("armor")


class EarlyStopping(Callback):
    """Stop after ``patience`` validations in a row without a better ``best.pt`` (robust, ties → clean)."""

    name = "early_stopping"

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.bad_evals = 0

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: Dict[str, Any]) -> None:
        if "val_robust_acc" not in record:
            return
        # runs before the trainer updates ``trainer.best`` with this epoch, so it compares against the past
        if trainer.is_better(record):
            self.bad_evals = 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience and trainer.stop_reason is None:
            trainer.stop_reason = (f"early stopping: no better robust validation accuracy in {self.bad_evals} "
                                   f"evaluations (best epoch {trainer.best['epoch']})")

    def state_dict(self) -> Dict[str, Any]:
        return {"bad_evals": self.bad_evals}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.bad_evals = int(state["bad_evals"])


class _AveragedCandidate(Callback):
    """Shared bookkeeping of a weight average that competes with the raw model on validation."""

    prefix = "avg"

    def __init__(self) -> None:
        self.averaged: AveragedModel | None = None
        self.best: Dict[str, Any] = {"epoch": None, "val_robust_acc": -1.0, "val_clean_acc": -1.0}

    @property
    def checkpoint_name(self) -> str:
        return f"best_{self.prefix}.pt"

    def ready(self) -> bool:
        return self.averaged is not None and int(self.averaged.n_averaged) > 0

    def prepare_for_eval(self, trainer: "Trainer") -> None: ...

    def evaluate_candidate(self, trainer: "Trainer", epoch: int, record: Dict[str, Any]) -> None:
        if not self.ready() or not ({"val_robust_acc", "test_robust_acc"} & set(record)):
            return
        self.prepare_for_eval(trainer)
        model = self.averaged.module
        if "val_robust_acc" in record:
            res = trainer.measure(model, "val")
            record.update({f"{self.prefix}_{k}": v for k, v in res.items()})
            ours = {"val_robust_acc": res["val_robust_acc"], "val_clean_acc": res["val_clean_acc"]}
            if trainer.compare(ours, self.best):
                self.best = {"epoch": epoch + 1, **ours}
                trainer.save_candidate(trainer.out / self.checkpoint_name, model, epoch + 1, self.prefix)
        if "test_robust_acc" in record:
            record.update({f"{self.prefix}_{k}": v for k, v in trainer.measure(model, "test").items()})

    def state_dict(self) -> Dict[str, Any]:
        return {"averaged": None if self.averaged is None else self.averaged.state_dict(), "best": dict(self.best)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best = dict(state["best"])
        if state["averaged"] is not None:
            self._pending = state["averaged"]

    def on_train_start(self, trainer: "Trainer") -> None:
        self._restore_pending()

    def _restore_pending(self) -> None:
        pending = getattr(self, "_pending", None)
        if pending is not None:
            self.averaged.load_state_dict(pending)
            self._pending = None


class EMA(_AveragedCandidate):
    """Exponential moving average of the weights and BN buffers, updated after every optimizer step."""

    name = "ema"
    prefix = "ema"

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__()
        self.decay = float(decay)
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)

    def on_step_end(self, trainer: "Trainer", out: StepOutput) -> None:
        self.averaged.update_parameters(trainer.model)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: Dict[str, Any]) -> None:
        self.evaluate_candidate(trainer, epoch, record)


class SWA(_AveragedCandidate):
    """Equal average of one weight snapshot per epoch from epoch ``start`` (1-based) on."""

    name = "swa"
    prefix = "swa"

    def __init__(self, model: torch.nn.Module, start: int):
        super().__init__()
        self.start = int(start)
        self.averaged = AveragedModel(model)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: Dict[str, Any]) -> None:
        if epoch + 1 >= self.start:
            self.averaged.update_parameters(trainer.model)
            record["swa_models"] = int(self.averaged.n_averaged)
        self.evaluate_candidate(trainer, epoch, record)

    def prepare_for_eval(self, trainer: "Trainer") -> None:
        x = trainer.data.x_train
        batches: List[torch.Tensor] = [x[i:i + 512] for i in range(0, len(x), 512)]
        with torch.no_grad():
            update_bn(batches, self.averaged.module)
        self.averaged.module.eval()


def default_callbacks(trainer: "Trainer") -> List[Callback]:
    """The callbacks a config asks for: EMA and SWA candidates first, then early stopping."""
    cfg = trainer.cfg
    callbacks: List[Callback] = []
    if cfg.ema_decay:
        callbacks.append(EMA(trainer.model, cfg.ema_decay))
    if cfg.swa_start:
        callbacks.append(SWA(trainer.model, cfg.swa_start))
    if cfg.early_stop_patience:
        callbacks.append(EarlyStopping(cfg.early_stop_patience))
    return callbacks
