"""Catastrophic-overfitting guard: single-step adversarial training (FGSM-RS, Free AT) can collapse
within an epoch — PGD accuracy falls to about 0 while the training (FGSM) robust accuracy stays high
(Wong et al. 2020). The guard measures PGD accuracy on a fixed held-out monitor batch after every epoch
and, when it collapses, stops the run or rolls back to the last good checkpoint, and says so in
``metrics.jsonl``, the run summary (``stop_reason``) and the log.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from .callbacks import Callback, TrainContext

log = logging.getLogger("armor")


class CatastrophicOverfittingGuard(Callback):
    """Fires when monitor PGD accuracy is ≥ ``drop`` points below the epoch's train robust accuracy *and*
    either ≥ ``drop`` points below its own best so far (robustness learned, then lost) or under ``floor``
    % (robust to the training attack, never to PGD). A run that gets worse on train and monitor alike,
    or one still learning, does not fire.

    ``action``: ``stop`` ends the run after this epoch (``best.pt``, chosen by robust validation accuracy,
    is what gets evaluated); ``rollback`` also reloads the model and optimizer from ``best.pt`` so
    ``last.pt`` holds the last good weights.
    """

    name = "co_guard"

    def __init__(self, action: str = "stop", drop: float = 30.0, batch: int = 256, steps: int = 10,
                 floor: float = 5.0):
        if action not in ("stop", "rollback"):
            raise ValueError(f"action must be 'stop' or 'rollback', got {action!r}")
        self.action, self.drop, self.batch, self.steps = action, float(drop), int(batch), int(steps)
        self.floor = float(floor)
        self.best_acc = -1.0
        self.best_epoch: Optional[int] = None
        self.fired_epoch: Optional[int] = None
        self.x = self.y = None

    def on_train_start(self, ctx: TrainContext) -> None:
        data = ctx.data
        if len(data.x_val):
            self.x, self.y = data.x_val[: self.batch], data.y_val[: self.batch]
        else:
            log.warning("guard: no validation split, so the monitor batch comes from the training data")
            self.x, self.y = data.x_train[: self.batch], data.y_train[: self.batch]

    def monitor_acc(self, ctx: TrainContext, threat) -> float:
        """PGD accuracy on the monitor batch under ``threat`` (the same on every torchrun rank)."""
        return ctx.robust_accuracy(ctx.model, self.x, self.y, threat, self.steps)

    def on_epoch_end(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None:
        # While ε still ramps up (eps_warmup), the training attack has not reached the run's ε: PGD at the full
        # ε would fail a healthy model. The monitor then attacks at the ε training has reached, only the floor
        # rule applies (a model robust to the training attack but to no PGD), and the best is not updated.
        threat = ctx.threat_at(epoch + 1)
        eps = threat.eps
        ramping = eps < ctx.threat.eps
        whole_val = len(ctx.data.x_val) and len(self.y) == len(ctx.data.x_val)
        if ramping:
            acc = self.monitor_acc(ctx, threat)
            record["guard_eps"] = eps
        elif whole_val and "val_robust_acc" in record and self.steps == ctx.config.val_steps:
            acc = record["val_robust_acc"]  # the validation just ran this very attack on these images
        else:
            acc = self.monitor_acc(ctx, ctx.threat)
        record["guard_pgd_acc"] = acc
        train_acc = record.get("train_robust_acc")
        # without a train robust accuracy (a clean-trained run) only the drop from the best counts
        gap_ok = train_acc is None or train_acc - acc >= self.drop
        dropped = not ramping and self.best_acc - acc >= self.drop
        collapsed = gap_ok and (dropped or (train_acc is not None and acc < self.floor))
        if not collapsed:
            if acc > self.best_acc and not ramping:
                self.best_acc, self.best_epoch = acc, epoch + 1
            return
        self.fired_epoch = epoch + 1
        reason = (f"catastrophic overfitting at epoch {epoch + 1}: PGD-{self.steps} accuracy on the "
                  f"{len(self.y)}-image monitor batch is {acc:.1f}%"
                  + (f" at the ramped ε={eps:.4g}" if ramping else "")
                  + (f" (best {self.best_acc:.1f}% at epoch {self.best_epoch})" if self.best_epoch else "")
                  + (f" while train robust accuracy is {train_acc:.1f}%" if train_acc is not None else ""))
        record["guard"] = "fired"
        if self.action == "rollback":
            reason += self._rollback(ctx, record)
        ctx.request_stop(reason)

    def _rollback(self, ctx: TrainContext, record: Dict[str, Any]) -> str:
        epoch = ctx.restore("best.pt")
        if epoch is None:
            return "; no best.pt to roll back to, stopped instead"
        record["guard"] = "rolled_back"
        record["guard_rolled_back_to_epoch"] = epoch
        return f"; rolled back to best.pt (epoch {epoch})"

    def state_dict(self) -> Dict[str, Any]:
        return {"best_acc": self.best_acc, "best_epoch": self.best_epoch, "fired_epoch": self.fired_epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best_acc, self.best_epoch = state["best_acc"], state["best_epoch"]
        self.fired_epoch = state.get("fired_epoch")


class ChanceGuard(Callback):
    """Stops a run whose training accuracy (and clean validation accuracy, when measured) has sat at chance
    level for ``patience`` epochs in a row.

    Adversarial training from scratch at a large ε can stay at chance (MNIST ε = 0.3 PGD-AT without an
    ε ramp did): better to stop and say why after a few epochs than to train for hours.
    """

    name = "chance_guard"

    def __init__(self, patience: int = 3, margin: float = 5.0):
        self.patience, self.margin = int(patience), float(margin)
        self.epochs_at_chance = 0

    def on_epoch_end(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None:
        chance = 100.0 / ctx.data.num_classes
        train_acc = record.get("train_robust_acc", record.get("train_acc"))
        val_acc = record.get("val_clean_acc")  # dummy-class AT trains towards other labels: check clean val too
        if train_acc is None or train_acc > chance + self.margin or (val_acc is not None and
                                                                     val_acc > chance + self.margin):
            self.epochs_at_chance = 0
            return
        self.epochs_at_chance += 1
        if self.epochs_at_chance >= self.patience:
            record["chance_guard"] = "fired"
            ctx.request_stop(
                f"stuck at chance: training accuracy has stayed within {self.margin:g} points of chance "
                f"({chance:.0f}%) for {self.epochs_at_chance} epochs (now {train_acc:.1f}%); try an ε ramp "
                f"(eps_warmup: 2), a lower learning rate, or a smaller ε")

    def state_dict(self) -> Dict[str, Any]:
        return {"epochs_at_chance": self.epochs_at_chance}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epochs_at_chance = int(state.get("epochs_at_chance", 0))


def guard_callbacks(cfg, method) -> List[Callback]:
    """The guards the config asks for: the catastrophic-overfitting guard (``auto`` → ``stop`` for
    single-step methods, off otherwise) and the stuck-at-chance guard (``chance_patience`` epochs, 0 = off)."""
    guards: List[Callback] = [ChanceGuard(cfg.chance_patience)] if cfg.chance_patience else []
    action = cfg.guard
    if action == "auto":
        action = "stop" if method.guard_by_default else "off"
    if action != "off":
        guards.append(CatastrophicOverfittingGuard(action, cfg.guard_drop, cfg.guard_batch, cfg.guard_steps))
    return guards
