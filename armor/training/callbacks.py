"""Callbacks: hooks into the training loop that never see the trainer itself, only a :class:`TrainContext`.

The context is what a callback may read and do: the data and the model being trained, the run's config, the
current threat (from the run's one ε schedule), measuring clean/PGD accuracy, comparing records the way
``best.pt`` is chosen, keeping a candidate checkpoint of another model, rolling back to a saved checkpoint, switching
the training to a safer setting (the guard's ``recover``), and requesting a stop. The callbacks against robust overfitting live here: early stopping, EMA and SWA averages.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from ..errors import UserError, opt
from ..methods import StepOutput
from ..threat import ThreatModel

if TYPE_CHECKING:  # pragma: no cover
    from ..config import TrainConfig
    from ..data import Dataset

log = logging.getLogger("armor")


class TrainContext:
    """What a callback may read and do during a run (a narrow view of the trainer)."""

    def __init__(self, trainer: Any):  # the Trainer; callbacks reach it only through the methods below
        self._trainer = trainer

    # -- read
    @property
    def config(self) -> "TrainConfig":
        return self._trainer.cfg

    @property
    def data(self) -> "Dataset":
        return self._trainer.data

    @property
    def model(self) -> nn.Module:
        """The model being trained (the plain module, never a DDP/compile wrapper)."""
        return self._trainer.model

    @property
    def threat(self) -> ThreatModel:
        """The run's threat model (what ε ramps up to)."""
        return self._trainer.schedule.threat

    def threat_at(self, progress: float) -> ThreatModel:
        """The threat model training uses after ``progress`` epochs (the run's one ε schedule)."""
        return self._trainer.schedule.at(progress)

    @property
    def best(self) -> Dict[str, Any]:
        """A copy of the best-so-far record: epoch, val_robust_acc, val_clean_acc."""
        return dict(self._trainer.best)

    @property
    def stop_reason(self) -> Optional[str]:
        return self._trainer.stop_reason

    @property
    def is_main(self) -> bool:
        """True in the process that writes the run's files (rank 0 under torchrun; always true in one process)."""
        return self._trainer.dist.is_main

    @property
    def history(self) -> List[Dict[str, Any]]:
        """Copies of the run's epoch records so far (what metrics.jsonl holds; a resumed run's earlier epochs
        included)."""
        return [dict(r) for r in self._trainer.history]

    @property
    def setting(self) -> str:
        """The training setting in use: the configured method's name, or the label of a safer one switched to."""
        return self._trainer.setting

    # -- measure and compare
    def measure(self, model: nn.Module, split: str) -> Dict[str, float]:
        """Clean and PGD-``val_steps`` accuracy of ``model`` on the fixed val (or test) subset."""
        return self._trainer.measure(model, split)

    def robust_accuracy(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                        steps: int) -> float:
        """PGD-``steps`` accuracy (%) of ``model`` on ``(x, y)``, the same on every torchrun rank."""
        return self._trainer.robust_accuracy(model, x, y, threat, steps)

    def is_better(self, record: Dict[str, Any]) -> bool:
        """Would ``record`` replace best.pt (robust validation accuracy, ties → clean; clean first for standard)?"""
        return self._trainer.is_better(record)

    def compare(self, record: Dict[str, Any], best: Dict[str, Any]) -> bool:
        return self._trainer.compare(record, best)

    # -- act
    def keep_candidate(self, name: str, model: nn.Module, epoch: int) -> None:
        """Save ``model`` (an average, say) as the run's ``best_<name>.pt``; it is tested at the end."""
        self._trainer.save_candidate(name, model, epoch)

    def restore(self, checkpoint: str = "best.pt") -> Optional[int]:
        """Reload the model and optimizer from a checkpoint of this run; its epoch, or None if there is none."""
        return self._trainer.restore_from(checkpoint)

    def switch_method(self, name: str, options: Dict[str, Any], changed: Dict[str, Any]) -> str:
        """Train with method ``name`` and ``options`` from the next step on; ``changed`` (what differs from the
        configured method) names the setting in the records. Saved in every checkpoint, so a resume keeps it."""
        return self._trainer.switch_method(name, options, changed)

    def request_stop(self, reason: str) -> None:
        """End the run after this epoch; several reasons in one epoch are all kept, in order."""
        earlier = self._trainer.stop_reason
        self._trainer.stop_reason = reason if earlier is None else f"{earlier}; also {reason}"


class Callback:
    """Hooks into the loop without the loop knowing what they do (EMA, guards, early stopping, ...).

    ``on_epoch_end`` may add keys to the epoch's record and may ask the context to stop the run. State that
    must survive a resume goes in ``state_dict``/``load_state_dict`` (saved in every checkpoint under ``name``);
    ``events`` go into the run's ``results.json``.
    A callback that keeps a candidate model sets ``candidate`` to its prefix (``ema``): the trainer then tests
    ``best_<candidate>.pt`` at the end.
    """

    name = "callback"
    candidate: Optional[str] = None

    def on_train_start(self, ctx: TrainContext) -> None: ...

    def on_step_end(self, ctx: TrainContext, out: StepOutput) -> None: ...

    def on_epoch_end(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None: ...

    def on_epoch_logged(self, ctx: TrainContext, record: Dict[str, Any]) -> None:
        """After the epoch's record is complete (``seconds`` included), checkpointed and in metrics.jsonl; the record
        must not be changed here."""

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...

    def events(self) -> List[Dict[str, Any]]:
        """What this callback did that the run's record should say (``results.json``'s ``guard_events``)."""
        return []


class EarlyStopping(Callback):
    """Stop after ``patience`` validations in a row without a better ``best.pt`` (robust, ties → clean)."""

    name = "early_stopping"

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.bad_evals = 0

    def on_epoch_end(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None:
        if "val_robust_acc" not in record:
            return
        # runs before the trainer updates its best with this epoch, so it compares against the past
        if ctx.is_better(record):
            self.bad_evals = 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            ctx.request_stop(f"early stopping: no better robust validation accuracy in {self.bad_evals} "
                             f"evaluations (best epoch {ctx.best['epoch']})")

    def state_dict(self) -> Dict[str, Any]:
        return {"bad_evals": self.bad_evals}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.bad_evals = int(state["bad_evals"])


class _AveragedCandidate(Callback):
    """Shared bookkeeping of a weight average that competes with the raw model on validation."""

    candidate = "avg"

    def __init__(self) -> None:
        self.averaged: AveragedModel | None = None
        self.best: Dict[str, Any] = {"epoch": None, "val_robust_acc": -1.0, "val_clean_acc": -1.0}
        self._pending: Optional[Dict[str, Any]] = None

    def ready(self) -> bool:
        return self.averaged is not None and int(self.averaged.n_averaged) > 0

    def prepare_for_eval(self, ctx: TrainContext) -> None: ...

    def evaluate_candidate(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None:
        if not self.ready() or not ({"val_robust_acc", "test_robust_acc"} & set(record)):
            return
        self.prepare_for_eval(ctx)
        model = self.averaged.module
        if "val_robust_acc" in record:
            res = ctx.measure(model, "val")
            record.update({f"{self.candidate}_{k}": v for k, v in res.items()})
            ours = {"val_robust_acc": res["val_robust_acc"], "val_clean_acc": res["val_clean_acc"]}
            if ctx.compare(ours, self.best):
                self.best = {"epoch": epoch + 1, **ours}
                ctx.keep_candidate(self.candidate, model, epoch + 1)
        if "test_robust_acc" in record:
            record.update({f"{self.candidate}_{k}": v for k, v in ctx.measure(model, "test").items()})

    def state_dict(self) -> Dict[str, Any]:
        return {"averaged": None if self.averaged is None else self.averaged.state_dict(), "best": dict(self.best)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best = dict(state["best"])
        if state["averaged"] is not None:
            self._pending = state["averaged"]

    def on_train_start(self, ctx: TrainContext) -> None:
        if self._pending is not None:  # a resumed run: the average comes back as it was saved
            self.averaged.load_state_dict(self._pending)
            self._pending = None


class EMA(_AveragedCandidate):
    """Exponential moving average of the weights and BN buffers, updated after every optimizer step."""

    name = "ema"
    candidate = "ema"

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__()
        self.decay = float(decay)
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)

    def on_step_end(self, ctx: TrainContext, out: StepOutput) -> None:
        self.averaged.update_parameters(ctx.model)

    def on_epoch_end(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None:
        self.evaluate_candidate(ctx, epoch, record)


class SWA(_AveragedCandidate):
    """Equal average of one weight snapshot per epoch from epoch ``start`` (1-based) on."""

    name = "swa"
    candidate = "swa"

    def __init__(self, model: torch.nn.Module, start: int):
        super().__init__()
        self.start = int(start)
        self.averaged = AveragedModel(model)

    def on_epoch_end(self, ctx: TrainContext, epoch: int, record: Dict[str, Any]) -> None:
        if epoch + 1 >= self.start:
            self.averaged.update_parameters(ctx.model)
            record["swa_models"] = int(self.averaged.n_averaged)
        self.evaluate_candidate(ctx, epoch, record)

    def prepare_for_eval(self, ctx: TrainContext) -> None:
        x = ctx.data.x_train
        batches: List[torch.Tensor] = [x[i:i + 512] for i in range(0, len(x), 512)]
        with torch.no_grad():
            update_bn(batches, self.averaged.module)
        self.averaged.module.eval()


class TensorBoard(Callback):
    """TensorBoard event files in ``RUN/tensorboard``: every epoch the numbers of its ``metrics.jsonl`` record, under
    the same names (``val_robust_acc``, ``lr``, ...; step = epoch), and at the end the learning-curve figure.

    Rank 0 alone writes. Like ``metrics.jsonl``, the event files follow the checkpoint's history: the writer is
    opened at the first epoch a process logs, with ``purge_step=1``, and writes the history so far (a resumed run's
    earlier epochs) before the new epoch — TensorBoard then drops every event the earlier files hold from step 1 on,
    so an epoch a killed run logged after its last checkpoint, or the epochs before a resume, never appear twice.
    The folder is made only once the run has a checkpoint (a run killed in its first epoch stays restartable).
    """

    name = "tensorboard"

    def __init__(self, log_dir: str | Path):
        from importlib.util import find_spec

        if find_spec("tensorboard") is None:
            raise UserError(f"{opt('tensorboard')} needs the tensorboard package, which is not installed: "
                            f"pip install tensorboard (or pip install 'armor[tensorboard]')")
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def on_epoch_logged(self, ctx: TrainContext, record: Dict[str, Any]) -> None:
        if not ctx.is_main:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir), purge_step=1)
            records = ctx.history  # the run so far (the record of this epoch is its last entry)
        else:
            records = [record]
        for r in records:
            for key, value in r.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, int(r["epoch"]))
        last = ctx.stop_reason is not None or int(record["epoch"]) >= ctx.config.epochs
        if last:
            from ..reports.plots import learning_curves_figure

            fig, plt = learning_curves_figure(ctx.history, title=str(ctx.config.out_dir().name))
            if fig is not None:
                self.writer.add_figure("learning_curves", fig, int(record["epoch"]), close=True)
        self.writer.flush()
        if last:
            self.writer.close()
            self.writer = None


def default_callbacks(cfg: "TrainConfig", model: nn.Module) -> List[Callback]:
    """The callbacks a config asks for: EMA and SWA candidates first, then early stopping, then logging."""
    callbacks: List[Callback] = []
    if cfg.ema_decay:
        callbacks.append(EMA(model, cfg.ema_decay))
    if cfg.swa_start:
        callbacks.append(SWA(model, cfg.swa_start))
    if cfg.early_stop_patience:
        callbacks.append(EarlyStopping(cfg.early_stop_patience))
    if cfg.tensorboard:
        callbacks.append(TensorBoard(cfg.out_dir() / "tensorboard"))
    return callbacks
