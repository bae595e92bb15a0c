"""The results schema: small typed records, written and read by this module alone.

Every file armor writes about a measurement carries ``kind`` and ``schema_version`` and is made by
:func:`write_record`; every reader (the HTML report, tables, sweeps, the DDP merge, the RobustBench-style
export) goes through :func:`read_record` and the classes below, never through a file's keys.

- :class:`Evaluation` — what ``armor.eval.evaluate`` returns (nested in every record below): clean, per-attack
  and worst-case accuracy, as integer counts with the percentages derived. Per attack it holds **either**
  ``standalone_acc`` (``mode="independent"``: the attack alone, on every clean-correct example) **or**
  ``cumulative_acc`` (``mode="ensemble"``, a suite: accuracy after this attack *and every one before it*, each
  attack run only on what the earlier ones left standing). The two are never stored under one name.
- :class:`TrainingRecord` (``results.json``, kind ``training_run``), :class:`EvaluationRecord` (``armor eval``,
  kind ``evaluation``), :class:`SweepRecord` (``sweep.json``, kind ``sweep``), :class:`EpsSweep` (kind
  ``eps_sweep``), :class:`FiguresRecord` (``figures.json``, kind ``figures``) and :class:`Comparison`
  (``demo.json``, kind ``comparison``).

``autoattack_acc`` is written by exactly one rule (:func:`autoattack_allowed`): only for the ``autoattack``
suite (AutoAttack's standard version: APGD-CE, APGD-T, FAB-T, Square) at its full budget on the whole requested
split; every other suite, and a reduced budget (listed in ``EvaluationRecord.reduced``), never carries it.
"""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Type

from .budgets import NORM_LABELS, norm_symbol
from .errors import UserError
from .io import read_json, write_json
from .version import __version__

SCHEMA_VERSION = 1
#: a run folder's identity (``run_id``), written by ``training.run_folder``: a JSON file beside the records, not one
RUN_ID_FILE = "run.json"
MODES = ("independent", "ensemble")


def _pct(count: int, n: int) -> float:
    return count / n * 100 if n else float("nan")


def environment() -> Dict[str, Any]:
    """armor / torch versions and the thread count: bit-identical numbers need the same ones."""
    env: Dict[str, Any] = {"armor_version": __version__, "python": platform.python_version()}
    try:
        import torch

        env.update(torch_version=str(torch.__version__), threads=torch.get_num_threads())
    except ImportError:  # pragma: no cover - armor needs torch; this keeps the schema importable without it
        pass
    return env


# -- evaluation ----------------------------------------------------------------------------------------------------
@dataclass
class AttackResult:
    """One attack of an evaluation. ``robust`` is a count: standalone (independent mode) or cumulative (ensemble),
    in units of one draw (an example right on k of an evaluation's ``draws`` re-classifications counts k)."""

    label: str
    spec: str                     # repr of the attack: its class and every option, budgets included
    robust: int
    broken: int                   # clean-correct examples whose worst point this attack found (with one draw:
    #                               the first attack in the list that broke them)
    forward_passes: int           # examples through the model inside this attack (EOT samples, restarts count)
    robust_examples: Optional[List[bool]] = None  # independent mode: per example, did it resist this attack (on
    #                                               every draw)
    backward_passes: int = 0      # of those, forward passes an input gradient was taken through
    seconds: Optional[float] = None  # wall time inside the attack: a measurement of this process, not a result, so
    #                                  never written (records of the same evaluation stay equal)


@dataclass
class Evaluation:
    """Counts of an evaluation. With ``draws`` > 1 (a randomised model) every point is classified ``draws`` times:
    ``correct``, ``worst_case`` and each attack's ``robust`` are sums of correct draws, so the accuracies are means
    over draws; each example's worst case is its point (clean or an attack's) with the fewest correct draws."""

    mode: str
    n: int
    correct: int
    worst_case: int
    attacks: Dict[str, AttackResult]
    broken_by_example: List[Optional[str]]      # per example: "clean", the attack whose point is its worst, or None
    forward_passes: int                         # clean pass(es) + every attack's passes
    seed: Optional[int] = None
    draws: int = 1                              # classifications of every point (1: a deterministic model)
    single_draw: Optional[int] = None           # draws > 1: examples right on the first draw at their worst point
    all_draws: Optional[int] = None             # draws > 1: examples right on every draw at their worst point
    verification_passes: int = 0                # forward passes classifying the attacks' points

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    # -- the numbers people read ----------------------------------------------------------------------------------
    @property
    def clean_acc(self) -> float:
        """Clean accuracy (%); with several draws, the mean over draws."""
        return _pct(self.correct, self.n * self.draws)

    @property
    def worst_case_acc(self) -> float:
        """Worst case over the attacks (%); with several draws, the mean over draws at each example's worst point."""
        return _pct(self.worst_case, self.n * self.draws)

    @property
    def single_draw_acc(self) -> float:
        """The worst case as one draw at each example's worst point scores it (= :attr:`worst_case_acc` with one)."""
        return self.worst_case_acc if self.single_draw is None else _pct(self.single_draw, self.n)

    @property
    def all_draws_acc(self) -> float:
        """The share of examples right on every draw at their worst point (= :attr:`worst_case_acc` with one)."""
        return self.worst_case_acc if self.all_draws is None else _pct(self.all_draws, self.n)

    @property
    def forward_passes_per_prediction(self) -> int:
        """Forward passes behind one reported prediction (``draws``: a randomised model is classified that often)."""
        return self.draws

    @property
    def backward_passes(self) -> int:
        return sum(a.backward_passes for a in self.attacks.values())

    @property
    def attack_passes(self) -> int:
        """What the attacks cost: their forward + backward passes (examples × passes; a gradient pass counts twice),
        the measure by which ``--suite fast`` costs under a fifth of the standard suite."""
        return sum(a.forward_passes + a.backward_passes for a in self.attacks.values())

    @property
    def acc_kind(self) -> str:
        """``standalone`` (each attack alone) or ``cumulative`` (after this attack and all before it)."""
        return "standalone" if self.mode == "independent" else "cumulative"

    def acc(self, label: str) -> float:
        """Accuracy (%) under attack ``label``: standalone or cumulative, as :attr:`acc_kind` says."""
        if label not in self.attacks:
            raise KeyError(f"no attack {label!r} in this evaluation; it has: {', '.join(self.attacks) or 'none'}")
        return _pct(self.attacks[label].robust, self.n * self.draws)

    def standalone_acc(self, label: str) -> float:
        if self.mode != "independent":
            raise ValueError("a suite (ensemble) evaluation has cumulative numbers only; use cumulative_acc")
        return self.acc(label)

    def cumulative_acc(self, label: str) -> float:
        if self.mode != "ensemble":
            raise ValueError("an independent evaluation has standalone numbers only; use standalone_acc")
        return self.acc(label)

    @property
    def broken_by(self) -> Dict[str, int]:
        return {label: a.broken for label, a in self.attacks.items()}

    @property
    def labels(self) -> List[str]:
        return list(self.attacks)

    # -- (de)serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        key = f"{self.acc_kind}_acc"
        attacks = {}
        for label, a in self.attacks.items():
            entry = {"attack": a.spec, key: self.acc(label), "robust": a.robust, "broken": a.broken,
                     "forward_passes": a.forward_passes, "backward_passes": a.backward_passes}
            if a.robust_examples is not None:
                entry["robust_examples"] = "".join("1" if r else "0" for r in a.robust_examples)
            attacks[label] = entry
        d = {"mode": self.mode, "n": self.n, "clean_acc": self.clean_acc, "worst_case_acc": self.worst_case_acc,
             "correct": self.correct, "worst_case": self.worst_case, "attacks": attacks,
             "broken_by_example": list(self.broken_by_example), "forward_passes": self.forward_passes,
             "backward_passes": self.backward_passes, "verification_passes": self.verification_passes,
             "seed": self.seed, "draws": self.draws,
             "forward_passes_per_prediction": self.forward_passes_per_prediction}
        if self.draws > 1:
            d.update(single_draw_acc=self.single_draw_acc, all_draws_acc=self.all_draws_acc,
                     single_draw=self.single_draw, all_draws=self.all_draws)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Evaluation":
        try:
            attacks = {}
            for label, a in d["attacks"].items():
                mask = a.get("robust_examples")
                attacks[label] = AttackResult(label, a["attack"], int(a["robust"]), int(a["broken"]),
                                              int(a["forward_passes"]),
                                              None if mask is None else [c == "1" for c in mask],
                                              int(a.get("backward_passes", 0)))
            optional = lambda k: None if d.get(k) is None else int(d[k])  # noqa: E731
            return cls(d["mode"], int(d["n"]), int(d["correct"]), int(d["worst_case"]), attacks,
                       list(d["broken_by_example"]), int(d["forward_passes"]), d.get("seed"), int(d.get("draws", 1)),
                       optional("single_draw"), optional("all_draws"), int(d.get("verification_passes", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"not an armor evaluation result (missing or bad field {exc})") from None

    # -- several processes, one result --------------------------------------------------------------------------------
    @classmethod
    def merge(cls, parts: Sequence["Evaluation"]) -> "Evaluation":
        """One evaluation from evaluations of consecutive slices of the same examples (torchrun ranks, in rank order):
        counts and forward passes are summed, per-example results concatenated — exact, no averaging. (An attack's
        ``seconds`` is the longest rank's: the ranks ran side by side.)"""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to merge")
        first = parts[0]
        for p in parts[1:]:
            if p.mode != first.mode or list(p.attacks) != list(first.attacks) or p.draws != first.draws:
                raise ValueError("can only merge evaluations of the same attacks in the same mode and draws")
        attacks = {}
        for label, a in first.attacks.items():
            masks = [p.attacks[label].robust_examples for p in parts]
            times = [p.attacks[label].seconds for p in parts if p.attacks[label].seconds is not None]
            attacks[label] = AttackResult(
                label, a.spec, sum(p.attacks[label].robust for p in parts),
                sum(p.attacks[label].broken for p in parts), sum(p.attacks[label].forward_passes for p in parts),
                None if any(m is None for m in masks) else [r for m in masks for r in m],
                sum(p.attacks[label].backward_passes for p in parts), max(times) if times else None)

        def total(key: str) -> Optional[int]:
            values = [getattr(p, key) for p in parts]
            return None if any(v is None for v in values) else sum(values)

        return cls(first.mode, sum(p.n for p in parts), sum(p.correct for p in parts),
                   sum(p.worst_case for p in parts), attacks, [b for p in parts for b in p.broken_by_example],
                   sum(p.forward_passes for p in parts), first.seed, first.draws, total("single_draw"),
                   total("all_draws"), sum(p.verification_passes for p in parts))


# -- records written to disk --------------------------------------------------------------------------------------
class Record:
    """Base of every top-level record: a ``kind`` and the schema version, written and read here."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Record":
        raise NotImplementedError

    def write(self, path: str | Path) -> Path:
        write_json(path, {"kind": self.kind, "schema_version": SCHEMA_VERSION, **self.to_dict()})
        return Path(path)


def _fields(obj: Any, skip: Sequence[str] = ()) -> Dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}


@dataclass
class Candidate:
    """A checkpoint of a run tested at the end: the best raw model, or an EMA/SWA average."""

    checkpoint: str
    epoch: Optional[int]
    test: Evaluation


@dataclass
class TrainingRecord(Record):
    kind: ClassVar[str] = "training_run"
    run: str
    dataset: str
    model: str
    method: str
    threat: Dict[str, Any]
    best_epoch: Optional[int]
    last_epoch: int
    epochs: int
    seed: int
    stop_reason: Optional[str]
    candidates: Dict[str, Candidate]
    train_seconds: float
    #: relative to standard training of the same model and data: per training setting its epochs, forward+backward
    #: passes per example (``passes``: input_gradient, weight_update, second_order, forward_only, total) and the
    #: wall-time ratio of its step measured side by side (``wall_ratio``, ``spread`` = quartiles); ``passes`` and
    #: ``wall_ratio`` at the top weight the settings by epochs (armor.training.cost)
    cost: Optional[Dict[str, Any]] = None
    #: what the guards did: per event its epoch, monitor and train robust accuracy, the action (recovered /
    #: stopped), the checkpoint epoch rolled back to and the setting switched to
    guard_events: List[Dict[str, Any]] = field(default_factory=list)
    environment: Dict[str, Any] = field(default_factory=environment)

    @property
    def test(self) -> Evaluation:
        """The test evaluation of ``best.pt``."""
        return self.candidates["best"].test

    def to_dict(self) -> Dict[str, Any]:
        d = _fields(self, skip=("candidates",))
        d["candidates"] = {k: {"checkpoint": c.checkpoint, "epoch": c.epoch, "test": c.test.to_dict()}
                           for k, c in self.candidates.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainingRecord":
        values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d and f.name != "candidates"}
        values["candidates"] = {k: Candidate(c["checkpoint"], c.get("epoch"), Evaluation.from_dict(c["test"]))
                                for k, c in d["candidates"].items()}
        return cls(**values)


@dataclass
class EpsSweep(Record):
    """Accuracy against ε: one ensemble evaluation per budget."""

    kind: ClassVar[str] = "eps_sweep"
    norm: str
    n: int
    rows: List[Dict[str, Any]]      # {"eps", "clean_acc", "worst_case_acc", "broken_by"}
    attacks: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpsSweep":
        return cls(d["norm"], int(d["n"]), list(d["rows"]), list(d.get("attacks", [])))


def autoattack_allowed(suite: Optional[str], reduced: Sequence[str]) -> bool:
    """The only rule that lets a record say ``autoattack_acc``: the ``autoattack`` suite (APGD-CE, APGD-T, FAB-T,
    Square at their published budgets) run at full budget on the whole requested split."""
    return suite == "autoattack" and not reduced


@dataclass
class EvaluationRecord(Record):
    kind: ClassVar[str] = "evaluation"
    source: Dict[str, Any]          # {"checkpoint", "epoch", "method"} or {"model", "weights"}
    dataset: str
    split: str
    architecture: str
    threat: Dict[str, Any]
    suite: Optional[str]
    attacks: Dict[str, str]         # label → the attack with every option
    budget: Dict[str, Any]          # what the attacks were allowed: steps, restarts, queries, examples
    reduced: List[str]              # how the budget falls short of the suite's full one (empty = full)
    seed: int
    adaptive: Dict[str, Any]        # eot, bpda (as given); with bpda the probe's straight_through_ops,
    #                                 gradient_cut_at, zero_gradient; with a surrogate {source, mode, attacks}
    result: Evaluation
    checks: Optional[Dict[str, Any]] = None
    sweep: Optional[EpsSweep] = None
    corruptions: Optional[Dict[str, Any]] = None
    substitutions: List[str] = field(default_factory=list)  # what the suite changed for this data (and why)
    environment: Dict[str, Any] = field(default_factory=environment)

    @property
    def clean_acc(self) -> float:
        return self.result.clean_acc

    @property
    def robust_acc(self) -> float:
        """The worst case over every attack run (the number to report)."""
        return self.result.worst_case_acc

    def __str__(self) -> str:
        """A table rounded for display (the record keeps exact counts)."""
        res = self.result
        kind = "cumulative" if res.acc_kind == "cumulative" else "each attack alone"
        eps = self.threat["eps"]
        norm = norm_symbol(self.threat["norm"])
        lines = [f"{self.dataset} {self.split} ({res.n} examples), {norm} ε={eps:.4g}"
                 + (f", suite {self.suite}" if self.suite else "") + f": clean {res.clean_acc:.1f} %, "
                 f"robust (worst case) {res.worst_case_acc:.1f} %"]
        lines += [f"  {label:<14} {res.acc(label):5.1f} %  ({kind})" for label in res.labels]
        lines += [f"  note: {n}" for n in self.substitutions + [r for r in self.reduced if r not in self.substitutions]]
        if self.checks:
            warned = [c["name"] for c in self.checks["checks"] if c["status"] == "WARN"]
            lines.append("  sanity checks: " + (f"WARN {', '.join(warned)}" if warned else "all pass"))
        return "\n".join(lines)

    def to_json(self) -> str:
        import json

        return json.dumps({"kind": self.kind, "schema_version": SCHEMA_VERSION, **self.to_dict()}, indent=2)

    def robustbench(self) -> Dict[str, Any]:
        """The fields of a RobustBench-style entry. ``robust_acc`` is the worst case over the attacks run."""
        entry = {"dataset": self.dataset, "threat_model": NORM_LABELS.get(self.threat["norm"],
                                                                                            self.threat["norm"]),
                 "eps": self.threat["eps"], "architecture": self.architecture, "clean_acc": self.result.clean_acc,
                 "robust_acc": self.result.worst_case_acc, "n_examples": self.result.n,
                 "attacks": self.suite or "custom: " + ", ".join(self.attacks), "reduced_budget": list(self.reduced)}
        if autoattack_allowed(self.suite, [*self.reduced, *self.substitutions]):  # a changed attack is not AutoAttack
            entry["autoattack_acc"] = self.result.worst_case_acc
        return entry

    def to_dict(self) -> Dict[str, Any]:
        d = _fields(self, skip=("result", "sweep"))
        d["result"] = self.result.to_dict()
        d["sweep"] = None if self.sweep is None else {"kind": EpsSweep.kind, **self.sweep.to_dict()}
        d["robustbench"] = self.robustbench()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvaluationRecord":
        values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        values["result"] = Evaluation.from_dict(d["result"])
        values["sweep"] = None if d.get("sweep") is None else EpsSweep.from_dict(d["sweep"])
        return cls(**values)


@dataclass
class SweepPoint:
    value: Any
    method: str
    clean_acc: float
    worst_case_acc: float
    attacks: Dict[str, float]        # standalone accuracy of each final-test attack
    best_epoch: Optional[int]
    stop_reason: Optional[str]
    run: str
    warning: Optional[str] = None    # e.g. best.pt from the first epochs or the ε warm-up (the row may mislead)


@dataclass
class SweepRecord(Record):
    kind: ClassVar[str] = "sweep"
    param: str
    threat: Dict[str, Any]
    dataset: str
    model: str
    base: Dict[str, Any]
    points: List[SweepPoint]
    pareto: List[int]

    def to_dict(self) -> Dict[str, Any]:
        d = _fields(self, skip=("points",))
        d["points"] = [dataclasses.asdict(p) for p in self.points]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SweepRecord":
        values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name != "points"}
        return cls(points=[SweepPoint(**p) for p in d["points"]], **values)


@dataclass
class FiguresRecord(Record):
    """What ``armor figures`` computed for a run (the arrays themselves are in ``figures.npz``)."""

    kind: ClassVar[str] = "figures"
    checkpoint: str
    epoch: Optional[int]
    dataset: str
    model: str
    method: str
    threat: Dict[str, Any]
    attack: str
    seed: int
    indices: List[int]
    split: str
    saliency: str
    arrays: str

    def to_dict(self) -> Dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FiguresRecord":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass
class Comparison(Record):
    """Several models evaluated with the same attacks on the same examples (``armor demo``)."""

    kind: ClassVar[str] = "comparison"
    title: str
    threat: Dict[str, Any]
    results: Dict[str, Evaluation]
    seconds: Dict[str, float]

    def to_dict(self) -> Dict[str, Any]:
        return {"title": self.title, "threat": self.threat,
                "results": {k: v.to_dict() for k, v in self.results.items()}, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Comparison":
        return cls(d["title"], d["threat"], {k: Evaluation.from_dict(v) for k, v in d["results"].items()},
                   d["seconds"])


RECORDS: Dict[str, Type[Record]] = {cls.kind: cls for cls in (TrainingRecord, EvaluationRecord, SweepRecord,
                                                                EpsSweep, FiguresRecord, Comparison)}


def write_record(path: str | Path, record: Record) -> Path:
    return record.write(path)


def parse_record(data: Any, where: str = "record") -> Record:
    """A record from its JSON value; anything that is not one is a one-line ``UserError``."""
    if not isinstance(data, dict) or data.get("kind") not in RECORDS:
        kind = data.get("kind") if isinstance(data, dict) else None
        raise UserError(f"{where} is not an armor result record (kind {kind!r}; expected one of: "
                        f"{', '.join(RECORDS)})")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{where} has schema version {version!r}, this armor reads version {SCHEMA_VERSION}; "
                        f"re-run the command that wrote it")
    try:
        return RECORDS[data["kind"]].from_dict(data)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where} is a damaged {data['kind']} record (bad or missing field {exc})") from None


def read_record(path: str | Path, expect: Optional[Type[Record]] = None) -> Record:
    """Read any record; with ``expect`` a record of another kind is a one-line ``UserError``."""
    record = parse_record(read_json(path), repr(str(path)))
    if expect is not None and not isinstance(record, expect):
        raise UserError(f"{str(path)!r} is a {record.kind} record, not a {expect.kind} record")
    return record


def is_record(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") in RECORDS
