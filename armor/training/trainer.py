"""The training loop: epochs, LR schedule, the ε schedule, held-out robust validation, checkpoints, metrics.

It knows only the :class:`~armor.methods.Method` protocol, never a particular method, and hands callbacks a
:class:`~armor.training.callbacks.TrainContext`, never itself.
"""
from __future__ import annotations

import copy
import gc
import json
import logging
import time
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed, faults, interrupts
from ..accel import Precision, maybe_compile, resolve_amp, to_memory_format, use_channels_last
from ..attacks import PGD
from ..attacks.suites import attack_list
from ..checkpoints import load_weights, model_spec, saved_config, spec_of
from ..config import TrainConfig, dump_yaml, resumed_config
from ..data import augment, resolve_preset
from ..device import pick_device
from ..errors import TrainingDiverged, UserError, opt
from ..eval.robust import evaluate
from ..io import append_jsonl, load_checkpoint, read_jsonl, save_checkpoint, write_text
from ..methods import Method, create_method
from ..models import build_model
from ..models.user import is_reference
from ..results import Candidate, TrainingRecord, environment
from ..schedules import ThreatSchedule, lr_factor
from ..threat import ThreatModel, check_budget
from .callbacks import Callback, TrainContext, default_callbacks
from .cost import probe_wall_ratio, run_cost, setting_label
from .guards import guard_callbacks
from .run_folder import RunFolder, new_run_id

log = logging.getLogger("armor")


def _rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class Trainer:
    """``Trainer(cfg).fit()`` → :class:`~armor.results.TrainingRecord`; writes ``metrics.jsonl``, ``last.pt``,
    ``best.pt`` and ``results.json`` into the run folder."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                 progress: Optional[bool] = None, callbacks: Optional[List[Callback]] = None,
                 given: Optional[Dict[str, Any]] = None):
        """Every check of the run's input happens here before anything on disk changes; the run folder is locked
        and prepared last. ``given`` (resume only): the options set now, compared with the run's own — ``epochs``
        may grow and where the run lives or looks may change; anything else changed is refused."""
        self.cfg = cfg
        self.stop_reason: Optional[str] = None
        self.out = cfg.out_dir()
        self.dist = distributed.setup(cfg.device)
        if cfg.batch_size % self.dist.world_size:
            raise UserError(f"batch_size {cfg.batch_size} (the global batch) must be divisible by the "
                            f"{self.dist.world_size} processes")
        self.progress = progress if self.dist.is_main else False
        self.folder = RunFolder(self.out)
        mode = self.dist.broadcast_object(self.dist.run_on_main(lambda: self.folder.plan(resume, overwrite)))
        self.dist.run_on_main(self.folder.check_writable)
        self.resume_state = None
        invoked_model = cfg.model  # what the user named now (user code is imported only when named now)
        if resume:  # rank 0 reads the checkpoint and hands it to the others (no shared disk needed)
            self.resume_state = self.dist.broadcast_object(self.dist.run_on_main(self._read_last))
        if self.resume_state is not None:
            given = cfg.changed_from_default() if given is None else dict(given)
            self.cfg = cfg = resumed_config(saved_config(self.resume_state), given, int(self.resume_state["epoch"]))
            _warn_threads(self.resume_state)
        self.device = distributed.device_for(self.dist, pick_device(cfg.device))
        torch.manual_seed(cfg.seed)
        self.data = cfg.load_data().to(self.device)
        if cfg.batch_size > len(self.data.x_train):
            raise UserError(f"batch_size {cfg.batch_size} is larger than the {len(self.data.x_train)} training "
                            f"examples (one step an epoch, the rest unused); use at most {len(self.data.x_train)}")
        self.meta = self.data.meta()
        self.augment = resolve_preset(cfg.augment, self.data.name, self.data.input_shape)
        threat = cfg.threat_for(self.meta)
        check_budget(threat)
        self.schedule = ThreatSchedule(threat, cfg.eps_warmup)  # the one owner of ε over time
        self.spec = spec_of(self.resume_state) if self.resume_state is not None else model_spec(cfg, self.meta)
        user_code = invoked_model if is_reference(invoked_model) else None
        self.model = build_model(self.spec, user_code, f"run {str(self.out)!r}").to(self.device)
        self._setup_speed()
        self.method: Method = create_method(cfg.method, self.schedule.threat, **cfg.method_kwargs())
        # the setting the run trains with: the configured method, until the guard switches to a safer one
        self.setting = cfg.method
        self.settings: Dict[str, Dict[str, Any]] = {cfg.method: {"method": cfg.method,
                                                                 "options": cfg.method_kwargs()}}
        self.optimizer = self._make_optimizer()
        self.callbacks: List[Callback] = (default_callbacks(cfg, self.model) + guard_callbacks(cfg, self.method)
                                          + list(callbacks or []))
        self.context = TrainContext(self)
        self.skipped_steps = 0
        self.start_epoch = 0
        self.history: List[Dict[str, Any]] = []
        self.run_id = new_run_id()
        self.best: Dict[str, Any] = {"epoch": None, "val_robust_acc": -1.0, "val_clean_acc": -1.0}
        if self.resume_state is not None:
            self._restore(self.resume_state)
        # every check passed: only now does anything on disk change
        self.dist.run_on_main(lambda: self.folder.open(mode))
        if self.dist.is_main:
            if self.resume_state is not None:
                self._sync_history_file()
                if "epochs" in (given or {}):  # an extended run: its config.yaml says so
                    write_text(self.out / "config.yaml", dump_yaml(cfg.to_dict()))
            else:
                write_text(self.out / "config.yaml", dump_yaml(cfg.to_dict()))
                self.folder.write_identity(self.run_id, {"config": "config.yaml"})

    def _read_last(self) -> Dict[str, Any]:
        state = load_checkpoint(self.out / "last.pt")
        self.folder.check_checkpoint(state)
        return state

    def _sync_history_file(self) -> None:
        """metrics.jsonl = the checkpoint's history: a record lost to a kill between checkpoint and append, a torn
        or damaged line, are restored from the checkpoint; nothing valid is dropped."""
        path = self.out / "metrics.jsonl"
        on_disk = read_jsonl(path)
        if on_disk[:len(self.history)] != self.history:
            log.info("metrics.jsonl rewritten from last.pt's history (%d epochs)", len(self.history))
        write_text(path, "".join(json.dumps(r) + "\n" for r in self.history))

    def close(self) -> None:
        """Release the run folder (and the process group under torchrun). The DistributedDataParallel wrapper goes
        first: it holds the process group and its last all-reduce's work, and the trainer sits in a reference cycle
        (its callbacks' context), so without this the wrapper outlived ``destroy_process_group`` and was torn down
        during interpreter exit, where gloo's C++ side now and then aborted the process ("terminate called without
        an active exception", SIGABRT, seen on torchrun ranks that finished before the others)."""
        self.folder.close()
        if self.train_model is not self.model:
            self.train_model = self.model
            gc.collect()
        self.dist.close()

    @property
    def threat(self) -> ThreatModel:
        """The run's threat model (read from the ε schedule; the trainer keeps no copy of its own)."""
        return self.schedule.threat

    # -- set-up ----------------------------------------------------------------------------------
    def _setup_speed(self) -> None:
        """AMP, channels_last, SyncBN, compile and DDP for the training step. ``self.model`` stays the plain
        module (checkpoints, evaluation, callbacks); ``self.train_model`` wraps it, sharing its parameters."""
        cfg = self.cfg
        self.precision = Precision(self.device, resolve_amp(cfg.amp, self.device))
        self.channels_last = use_channels_last(cfg.channels_last, self.device, self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model = distributed.convert_sync_bn(self.dist, self.model, self.device, cfg.sync_bn)
        self.train_model = distributed.wrap_model(self.dist, maybe_compile(self.model, cfg.compile), self.device)
        if self.precision.dtype is not None or self.channels_last or cfg.compile or self.dist.enabled:
            log.info("training step: %s%s%s%s", self.precision.name, ", channels_last" * self.channels_last,
                     ", torch.compile" * cfg.compile,
                     f", DDP over {self.dist.world_size} processes" if self.dist.enabled else "")

    def _make_optimizer(self, model: Optional[nn.Module] = None) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = (model or self.model).parameters()
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _restore(self, state: Dict[str, Any]) -> None:
        """Everything of ``last.pt`` back in memory (the files are brought in line after the folder is locked)."""
        load_weights(self.model, state["model"], self.out / "last.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = int(state["epoch"])
        self.best = dict(state["best"])
        self.settings.update(state.get("settings", {}))
        if state.get("setting", self.setting) != self.setting:  # the guard had switched to a safer setting
            chosen = self.settings[state["setting"]]
            self.method = create_method(chosen["method"], self.schedule.threat, **chosen["options"])
            self.setting = state["setting"]
        for cb in self.callbacks:
            if cb.name in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][cb.name])
        _set_rng_state(state["rng"])
        self.precision.load_state_dict(state.get("grad_scaler", {}))
        self.run_id = state.get("run_id") or self.folder.identity() or self.run_id
        if "history" in state:
            self.history = [dict(r) for r in state["history"]]
        else:  # armor 0.1 checkpoints: the history is what metrics.jsonl holds up to the checkpoint's epoch
            self.history = [r for r in read_jsonl(self.out / "metrics.jsonl") if r.get("epoch", 0) <= self.start_epoch]
        log.info("resuming %s after epoch %d", self.out, self.start_epoch)

    def _state(self, epoch: int) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": epoch,
                "config": self.cfg.to_dict(), "dataset": self.meta, "model_spec": self.spec.to_dict(),
                "best": dict(self.best), "rng": _rng_state(),
                "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
                "grad_scaler": self.precision.state_dict(), "history": list(self.history), "run_id": self.run_id,
                "setting": self.setting, "settings": {k: dict(v) for k, v in self.settings.items()},
                "environment": environment()}

    # -- what callbacks reach through the context ---------------------------------------------------------
    def save_candidate(self, name: str, model: nn.Module, epoch: int) -> None:
        """A loadable checkpoint of another model than the one being trained (an EMA or SWA average)."""
        if self.dist.is_main:
            save_checkpoint(self.out / f"best_{name}.pt",
                            {"model": model.state_dict(), "epoch": epoch, "config": self.cfg.to_dict(),
                             "dataset": self.meta, "model_spec": self.spec.to_dict(), "candidate": name})

    def restore_from(self, checkpoint: str) -> Optional[int]:
        """Reload model and optimizer from ``checkpoint`` of this run (same on every rank); its epoch, or None."""
        path = self.out / checkpoint
        state = self.dist.broadcast_object(self.dist.run_on_main(
            lambda: load_checkpoint(path, map_location="cpu") if path.is_file() else None))
        if state is None:
            return None
        load_weights(self.model, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"])

    def switch_method(self, name: str, options: Dict[str, Any], changed: Dict[str, Any]) -> str:
        """Train with ``name(**options)`` from the next step on (the guard's safer setting); its label, which the
        following epochs' records carry as ``train_setting``."""
        label = setting_label(name, changed)
        self.method = create_method(name, self.schedule.threat, **options)
        self.settings[label] = {"method": name, "options": dict(options)}
        self.setting = label
        log.info("training setting: %s", label)
        return label

    def robust_accuracy(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                        steps: int) -> float:
        res = evaluate(model, x, y, {"pgd": PGD(threat, steps=steps)}, batch_size=512, dist=self.dist)
        return res.acc("pgd")

    # -- the loop --------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> Dict[str, float]:
        cfg, data, model = self.cfg, self.data, self.train_model
        model.train()
        if self.dist.enabled:  # each rank its own attack starts and augmentation, reproducibly per epoch
            torch.manual_seed(cfg.seed * 100003 + epoch * 1009 + self.dist.rank)
        n = len(data.x_train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        order = order.to(self.device)
        batches = max(1, n // cfg.batch_size)  # drop the ragged last batch: equal steps every epoch
        totals: Dict[str, torch.Tensor] = {}
        seen = skipped = 0
        bar = tqdm(range(batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=(not self.progress) if self.progress is not None else None)
        index = [self.dist.shard(order[b * cfg.batch_size:(b + 1) * cfg.batch_size]) for b in range(batches)]
        streamed = hasattr(data.x_train, "loader")  # an image folder too large to hold: decoded by worker processes
        stream = data.x_train.loader([i.tolist() for i in index], cfg.workers) if streamed else None
        for b in bar:
            interrupts.check()  # a SIGTERM whose exception Python dropped stops the run here
            idx = index[b]  # this rank's part of the global batch
            x = next(stream) if streamed else data.x_train[idx]
            x, y = augment(x, self.augment), data.y_train[idx]
            x = to_memory_format(x, self.channels_last)
            lr = cfg.lr * lr_factor(cfg.schedule, (epoch + b / batches) / cfg.epochs)
            self.method.set_threat(self.schedule.at(epoch + (b + 1) / batches))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            stepped = None
            for _ in range(self.method.replays):  # Free AT replays each minibatch; others step once
                with self.precision.autocast():
                    out = self.method.step(model, x, y)
                if not bool(torch.isfinite(out.loss)):  # never step on a NaN/Inf loss
                    self._non_finite_loss(epoch, b, out.loss.item(), lr)
                    skipped += 1
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                self.precision.backward_step(out.loss, self.optimizer)
                stepped = out
                if b == batches // 2:
                    faults.point("mid_epoch")
                for cb in self.callbacks:
                    cb.on_step_end(self.context, out)
            if stepped is None:
                continue
            out, k = stepped, len(y)
            stats = {"loss": out.loss.detach() * k, "acc": (out.logits.argmax(1) == y).float().sum(),
                     **{name: v.detach() * k for name, v in out.metrics.items()}}
            for name, v in stats.items():
                totals[name] = totals.get(name, 0) + v.float()
            seen += k
        totals = self.dist.all_reduce_sum({**totals, "_seen": torch.tensor(float(seen), device=self.device)})
        seen = totals.pop("_seen").item()  # one sync per epoch, not per step
        if seen == 0:
            raise TrainingDiverged(f"training stopped: every step of epoch {epoch + 1} had a non-finite loss; "
                                   f"{self._last_good(epoch)}; lower {opt('lr', 'LR')}")
        prefix = "train_robust" if self.method.adversarial else "train"
        result = {"train_loss": totals["loss"].item() / seen, f"{prefix}_acc": totals["acc"].item() / seen * 100,
                  "lr": lr, "eps": self.method.threat.eps}
        for name, v in totals.items():
            if name not in ("loss", "acc"):
                result[f"train_{name}"] = v.item() / seen * (100 if name.endswith("acc") else 1)
        if skipped:
            result["skipped_steps"] = skipped
        return result

    def _last_good(self, epoch: int) -> str:
        if (self.out / "last.pt").is_file():
            return f"the last good checkpoint {str(self.out / 'last.pt')!r} (epoch {epoch}) is intact"
        return "no checkpoint was written yet"

    def _non_finite_loss(self, epoch: int, batch: int, value: float, lr: float) -> None:
        """``nan_policy: stop`` ends the run before the bad step touches the weights; ``skip`` drops the step."""
        where = f"epoch {epoch + 1}, batch {batch + 1} (lr {lr:.3g})"
        if self.cfg.nan_policy == "stop":
            raise TrainingDiverged(f"training stopped: the loss became {value} at {where}; {self._last_good(epoch)}; "
                                   f"lower {opt('lr', 'LR')}, or set {opt('nan_policy', 'skip')} to skip such steps")
        self.skipped_steps += 1
        log.warning("skipped a step with loss %s at %s", value, where)

    def validate(self) -> Dict[str, float]:
        return self.measure(self.model, "val")

    def measure(self, model: nn.Module, split: str) -> Dict[str, float]:
        """Clean and PGD-``val_steps`` accuracy of ``model`` on the fixed val (or test) subset, keyed by split."""
        data = self.data
        x, y = (data.x_val, data.y_val) if split == "val" else (data.x_test, data.y_test)
        size = self.cfg.val_subset if split == "val" else self.cfg.test_subset
        if size is not None:
            x, y = x[:size], y[:size]  # the same first examples every time: curves compare like with like
        if len(x) == 0:
            return {}
        faults.point(f"mid_{'validation' if split == 'val' else 'test'}")
        res = evaluate(model, x, y, {"pgd": PGD(self.threat, steps=self.cfg.val_steps)}, batch_size=512,
                       dist=self.dist)
        return {f"{split}_clean_acc": res.clean_acc, f"{split}_robust_acc": res.acc("pgd")}

    def fit(self) -> TrainingRecord:
        """Train the remaining epochs and test the best checkpoint. An ``overwrite`` replaced run comes back if this
        one fails before its first checkpoint; the run folder is released at the end either way."""
        try:
            return self._fit()
        except BaseException:
            if self.dist.is_main:
                self.folder.failed()
            raise
        finally:
            self.folder.close()

    def _fit(self) -> TrainingRecord:
        cfg = self.cfg
        if self.resume_state is None:
            log.info("%s | %s | %s | %s", self.data.describe(), cfg.model, cfg.method, self.threat)
        for cb in self.callbacks:
            cb.on_train_start(self.context)
        for epoch in range(self.start_epoch, cfg.epochs):
            start = time.perf_counter()
            faults.point("epoch_start")
            record: Dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            if self.setting != cfg.method:
                record["train_setting"] = self.setting
            faults.point("after_train_epoch")
            if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                record.update(self.validate())
            faults.point("after_validation")
            if cfg.test_every and ((epoch + 1) % cfg.test_every == 0 or epoch + 1 == cfg.epochs):
                record.update(self.measure(self.model, "test"))
            for cb in self.callbacks:
                cb.on_epoch_end(self.context, epoch, record)
            record["seconds"] = round(time.perf_counter() - start, 3)
            improved = self.is_better(record)
            if improved:
                self.best = {"epoch": epoch + 1, "val_robust_acc": record.get("val_robust_acc", -1.0),
                             "val_clean_acc": record.get("val_clean_acc", -1.0)}
            self.history.append(record)
            if self.dist.is_main:  # one writer: rank 0; the checkpoint carries the history, metrics.jsonl mirrors it
                state = self._state(epoch + 1)
                if improved:
                    save_checkpoint(self.out / "best.pt", state)
                    faults.point("after_best")
                save_checkpoint(self.out / "last.pt", state)
                self.folder.committed()  # the new run has a checkpoint: a run it replaced can go
                faults.point("after_last")
                append_jsonl(self.out / "metrics.jsonl", record)
                faults.point("after_history")
            for cb in self.callbacks:  # the epoch's record is complete and written
                cb.on_epoch_logged(self.context, record)
            log.info(_format_record(record))
            if self.stop_reason:
                log.warning("stopping after epoch %d: %s", epoch + 1, self.stop_reason)
                break
        return self.finish()

    def is_better(self, record: Dict[str, Any]) -> bool:
        """Highest robust validation accuracy, ties to higher clean accuracy (clean first for ``best_by:
        clean``, the default for standard training); without a validation split, or with ``best_by: last``, the
        latest epoch wins."""
        if self.cfg.best_by == "last":
            return True
        if "val_robust_acc" not in record:
            return len(self.data.x_val) == 0
        return self.compare(record, self.best)

    def compare(self, record: Dict[str, Any], best: Dict[str, Any]) -> bool:
        if self.cfg.best_by == "last":
            return True
        by_clean = self.cfg.best_by == "clean" or (self.cfg.best_by == "auto" and not self.method.adversarial)
        order = ("val_clean_acc", "val_robust_acc") if by_clean else ("val_robust_acc", "val_clean_acc")
        return tuple(record[k] for k in order) > tuple(best[k] for k in order)

    def _load_for_test(self, name: str) -> Optional[Dict[str, Any]]:
        path = self.out / name
        return self.dist.broadcast_object(self.dist.run_on_main(
            lambda: load_checkpoint(path, map_location=self.device) if path.is_file() else None))

    def finish(self) -> TrainingRecord:
        """Evaluate the best checkpoint (and every kept candidate) on the test split and write ``results.json``."""
        best = self.dist.run_on_main(lambda: load_checkpoint(self.out / "best.pt", map_location=self.device))
        if best is not None:
            load_weights(self.model, best["model"], self.out / "best.pt")
        self.dist.broadcast_module(self.model)  # every rank evaluates rank 0's best weights
        best_epoch = self.dist.broadcast_object(best["epoch"] if best is not None else None)
        cfg = self.cfg
        cost = self.cost()
        attacks = attack_list(self.threat, cfg.final_attacks, steps=cfg.eval_steps, restarts=cfg.eval_restarts)
        faults.point("mid_final_test")
        result = evaluate(self.model, self.data.x_test, self.data.y_test, attacks, progress=bool(self.progress),
                          dist=self.dist)
        records = self.history
        last_epoch = records[-1]["epoch"] if records else self.start_epoch
        candidates = {"best": Candidate("best.pt", best_epoch, result)}
        for cb in self.callbacks:  # EMA/SWA averages: each tested from its own best checkpoint
            if cb.candidate is None:
                continue
            name = f"best_{cb.candidate}.pt"
            state = self._load_for_test(name)
            if state is not None:
                model = load_weights(copy.deepcopy(self.model).to(self.device), state["model"], self.out / name)
                test = evaluate(model, self.data.x_test, self.data.y_test, attacks, dist=self.dist)
                candidates[cb.candidate] = Candidate(name, state["epoch"], test)
        # stop_reason stays None for a run that completed; the log line says either way
        outcome = self.stop_reason or f"completed {last_epoch} of {cfg.epochs} epochs"
        record = TrainingRecord(run=str(self.out), dataset=self.data.name, model=cfg.model, method=cfg.method,
                                threat=self.threat.to_dict(), best_epoch=best_epoch, last_epoch=last_epoch,
                                epochs=cfg.epochs, seed=cfg.seed, stop_reason=self.stop_reason,
                                candidates=candidates,
                                train_seconds=round(sum(r.get("seconds", 0) for r in records), 2), cost=cost,
                                guard_events=[e for cb in self.callbacks for e in cb.events()])
        if self.dist.is_main:
            faults.point("before_results")
            record.write(self.out / "results.json")
            faults.point("after_results")
            log.info("best epoch %s; %s", best_epoch, outcome)
            if cfg.plot:
                from ..reports.plots import write_learning_curves

                write_learning_curves(records, self.out / "learning_curves.png",
                                      title=f"{self.data.name} {cfg.method}", best_epoch=best_epoch)
        return record


    def cost(self) -> Dict[str, Any]:
        """The run's cost relative to standard training (:mod:`armor.training.cost`): per setting trained with, its
        epochs, passes per example and (``cost_probe`` > 0) the wall-time ratio measured side by side now."""
        epochs: Dict[str, int] = {}
        for r in self.history:
            label = r.get("train_setting", self.cfg.method)
            epochs[label] = epochs.get(label, 0) + 1
        settings = []
        for label in epochs or {self.cfg.method: 0}:
            chosen = self.settings[label]
            method = create_method(chosen["method"], self.schedule.threat, **chosen["options"])
            entry: Dict[str, Any] = {"setting": label, "epochs": epochs.get(label, 0),
                                     "passes": method.passes().to_dict()}
            if self.cfg.cost_probe and chosen["method"] == "standard":
                entry["wall_ratio"] = 1.0  # by definition
            elif self.cfg.cost_probe:
                share = self.cfg.batch_size // self.dist.world_size
                x = to_memory_format(self.data.x_train[:share], self.channels_last)
                entry.update(probe_wall_ratio(method, self.model, self._make_optimizer, x, self.data.y_train[:share],
                                              self.cfg.cost_probe, self.precision))
            settings.append(entry)
        cost = run_cost(settings)
        if self.cfg.cost_probe:
            cost["probe"] = {"device": str(self.device), "threads": torch.get_num_threads(),
                             "when": "after training, interleaved with standard steps on copies of the model"}
        return cost


def _warn_threads(state: Dict[str, Any]) -> None:
    then = (state.get("environment") or {}).get("threads")
    now = torch.get_num_threads()
    if then is not None and then != now:
        log.warning("this run was trained with %d torch threads and resumes with %d: the result will not be "
                    "bit-identical to an uninterrupted run (same thread count needed)", then, now)


def _format_record(r: Dict[str, Any]) -> str:
    parts = [f"epoch {r['epoch']}"]
    for key in ("train_loss", "train_acc", "train_robust_acc", "val_clean_acc", "val_robust_acc", "test_robust_acc",
                "ema_val_robust_acc", "swa_val_robust_acc", "lr", "seconds"):
        if key in r:
            parts.append(f"{key} {r[key]:.4g}")
    return " | ".join(parts)
