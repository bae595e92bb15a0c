"""Catastrophic-overfitting guard: single-step adversarial training (FGSM-RS, Free AT, N-FGSM, GradAlign) can
collapse within an epoch — PGD accuracy falls to about 0 while the training (FGSM) robust accuracy stays high (Wong et
al. 2020). The guard measures PGD accuracy on a fixed held-out monitor batch after every epoch and, when it collapses,
stops the run, rolls back to the last good checkpoint and stops, or — ``recover``, the default for the single-step
methods — rolls back and **continues** with a safer setting, and says so in ``metrics.jsonl``, ``results.json``
(``guard_events``, ``stop_reason``) and the log.

``recover``, step by step, when the guard fires at the end of epoch e:

1. **Roll back** the model and the optimizer (Adam's moments and step count, SGD's momentum) to ``best.pt``, the
   epoch with the highest robust validation accuracy — the last checkpoint known healthy (a collapsed model's PGD
   accuracy is low, so it never holds the best). ``last.pt`` of epoch e - 1 is not used: a collapse often starts an
   epoch before the guard's margin is crossed. If the collapse comes in the first epoch, there is no checkpoint yet
   and training continues from the current weights.
2. **Switch** the training to the next rung of ``guard_fallback`` (PGD steps; default 2, then 3, then 5): a
   single-step method becomes PGD-AT with that many steps (PGD's default step 2.5·ε/steps, random start; PGD-2 is
   the cheapest multi-step attack, and multi-step training does not overfit catastrophically the way one step
   does); a method with an inner attack of its own steps (PGD-AT, TRADES, MART, dummy-class AT) keeps its loss and
   gets that many steps, and rungs with no more steps than it has are skipped. The ε schedule and the LR schedule
   keep the run's clock: the next epoch is e + 1, the run ends at its planned epoch count, and the epochs between
   the checkpoint and the collapse are lost. The random-number stream is not rewound (it goes on from where it was).
3. If the safer setting collapses too, the next rung; once the ladder is used up, roll back and stop (as
   ``rollback``).

The trainer owns the setting it trains with and saves it in every checkpoint, and the guard saves its rung and events,
so a run killed at any point — during the collapse epoch, after the switch, in a later epoch — resumes to the same
weights and numbers as an uninterrupted one (``tests/test_guard.py``). EMA/SWA averages are not rolled back.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import faults
from .callbacks import Callback, TrainContext

log = logging.getLogger("armor")

ACTIONS = ("stop", "rollback", "recover")
#: the PGD steps of the guard's successive fallback settings (``guard_fallback``)
DEFAULT_FALLBACK = (2, 3, 5)


def fallback_settings(method: str, options: Dict[str, Any], ladder: Sequence[int]
                      ) -> List[Tuple[str, Dict[str, Any], Dict[str, Any]]]:
    """The safer settings ``recover`` switches to, in order: ``(method, every option, the options that changed)``.

    A method whose inner attack takes ``steps`` keeps its loss and options with more steps (rungs with no more steps
    than it has are skipped); any other method (the single-step ones) becomes PGD-AT with that many steps."""
    from ..methods import METHODS

    if METHODS.takes(method, "steps"):
        current = options.get("steps", METHODS.options(method)["steps"].default)
        return [(method, {**options, "steps": k}, {"steps": k}) for k in ladder if k > current]
    return [("pgd_at", {"steps": k}, {"steps": k}) for k in ladder]


class CatastrophicOverfittingGuard(Callback):
    """Fires when monitor PGD accuracy is ≥ ``drop`` points below the epoch's train robust accuracy *and*
    either ≥ ``drop`` points below its own best so far (robustness learned, then lost) or under ``floor``
    % (robust to the training attack, never to PGD). A run that gets worse on train and monitor alike,
    or one still learning, does not fire.

    ``action``: ``stop`` ends the run after this epoch (``best.pt``, chosen by robust validation accuracy,
    is what gets evaluated); ``rollback`` also reloads the model and optimizer from ``best.pt`` so
    ``last.pt`` holds the last good weights; ``recover`` rolls back and goes on training with the next of
    ``fallback`` (see the module docstring), stopping as ``rollback`` once none is left.
    """

    name = "co_guard"

    def __init__(self, action: str = "stop", drop: float = 30.0, batch: int = 256, steps: int = 10,
                 floor: float = 5.0, fallback: Sequence[Tuple[str, Dict[str, Any], Dict[str, Any]]] = ()):
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        self.action, self.drop, self.batch, self.steps = action, float(drop), int(batch), int(steps)
        self.floor = float(floor)
        self.fallback = list(fallback)
        self.best_acc = -1.0
        self.best_epoch: Optional[int] = None
        self.fired_epoch: Optional[int] = None
        self.recoveries = 0
        self._events: List[Dict[str, Any]] = []
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
        event: Dict[str, Any] = {"epoch": epoch + 1, "monitor_acc": acc, "train_robust_acc": train_acc,
                                 "best_monitor_acc": self.best_acc if self.best_epoch else None,
                                 "best_monitor_epoch": self.best_epoch, "setting": ctx.setting}
        if ramping:
            event["eps"] = eps
        record["guard"] = "fired"
        if self.action == "recover" and self.recoveries < len(self.fallback):
            self._recover(ctx, record, event, reason)
        else:
            if self.action == "recover":
                reason += (f"; the guard's last fallback setting ({ctx.setting}) collapsed too" if self.recoveries
                           else "; the method has no safer setting to fall back to")
            if self.action in ("rollback", "recover"):
                reason += self._rollback(ctx, record, event)
            event["action"] = "stopped"
            ctx.request_stop(reason)
        self._events.append(event)

    def _rollback(self, ctx: TrainContext, record: Dict[str, Any], event: Dict[str, Any]) -> str:
        epoch = ctx.restore("best.pt")
        if epoch is None:
            return "; no best.pt to roll back to, stopped instead"
        record["guard"] = "rolled_back"
        record["guard_rolled_back_to_epoch"] = event["rolled_back_to_epoch"] = epoch
        return f"; rolled back to best.pt (epoch {epoch})"

    def _recover(self, ctx: TrainContext, record: Dict[str, Any], event: Dict[str, Any], reason: str) -> None:
        name, options, changed = self.fallback[self.recoveries]
        self.recoveries += 1
        epoch = ctx.restore("best.pt")
        label = ctx.switch_method(name, options, changed)
        record["guard"] = "recovered"
        record["guard_switched_to"] = event["switched_to"] = label
        if epoch is None:
            where = "no checkpoint to roll back to yet (first epoch): kept the current weights"
        else:
            record["guard_rolled_back_to_epoch"] = event["rolled_back_to_epoch"] = epoch
            where = f"rolled back to best.pt (epoch {epoch})"
        event["action"] = "recovered"
        faults.point("after_recovery")
        log.warning("guard: %s; %s; training goes on with %s (recovery %d of %d)", reason, where, label,
                    self.recoveries, len(self.fallback))

    def events(self) -> List[Dict[str, Any]]:
        return [dict(e) for e in self._events]

    def state_dict(self) -> Dict[str, Any]:
        return {"best_acc": self.best_acc, "best_epoch": self.best_epoch, "fired_epoch": self.fired_epoch,
                "recoveries": self.recoveries, "events": self.events()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best_acc, self.best_epoch = state["best_acc"], state["best_epoch"]
        self.fired_epoch = state.get("fired_epoch")
        self.recoveries = int(state.get("recoveries", 0))
        self._events = [dict(e) for e in state.get("events", [])]


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
    """The guards the config asks for: the catastrophic-overfitting guard (``auto`` → ``recover`` for
    single-step methods, off otherwise) and the stuck-at-chance guard (``chance_patience`` epochs, 0 = off)."""
    guards: List[Callback] = [ChanceGuard(cfg.chance_patience)] if cfg.chance_patience else []
    action = cfg.guard_action(method)
    if action != "off":
        fallback = fallback_settings(cfg.method, cfg.method_kwargs(), cfg.guard_fallback) if action == "recover" \
            else ()
        guards.append(CatastrophicOverfittingGuard(action, cfg.guard_drop, cfg.guard_batch, cfg.guard_steps,
                                                   fallback=fallback))
    return guards
