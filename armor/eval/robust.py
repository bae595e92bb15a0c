"""Clean and robust accuracy, per attack and worst case, always in ``model.eval()``.

An example counts as robust only if every attack failed on it. ``mode="independent"`` runs every attack
on every clean-correct example (each attack gets its own *standalone* accuracy); ``mode="ensemble"`` runs the
attacks in order, each only on the examples still standing (AutoAttack's shrinking robust mask), which
gives the same worst case for less work and *cumulative* per-attack numbers. Either way each attack runs once
over all its examples of the split, compacted into full batches (the outer loop), never batch by batch over
shrinking sub-batches. The result is an :class:`armor.results.Evaluation`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import interrupts
from ..attacks import Attack
from ..errors import UserError
from ..io import read_json, write_json
from ..modes import eval_mode
from ..results import AttackResult, Evaluation
from ..streams import Streams

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    if len(x) == 0:  # e.g. no clean-correct example left for a check to attack: no predictions, not a crash
        return torch.zeros(0, dtype=torch.long, device=x.device)
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    return (predict(model, x, batch_size) == y).float().mean().item() * 100 if len(x) else float("nan")


def _check_budget(attack: Attack, x_adv: torch.Tensor, x: torch.Tensor) -> None:
    """Refuse a number measured outside the threat model (a bug in an attack, not a user mistake)."""
    threat = attack.threat
    excess = (threat.distance(x_adv, x) - threat.eps).max().item() if len(x) else 0.0
    moved_fixed = threat.immutable and bool((threat.changeable(x_adv - x) != (x_adv - x)).any())
    if excess > 1e-5 * max(1.0, threat.eps) or not threat.in_box(x_adv) or moved_fixed:
        raise RuntimeError(f"{attack!r} left the threat model (ε exceeded by {excess:.3g}, outside the input box, "
                           f"or an immutable feature changed)")


def _count_passes(model: nn.Module, counter: list):
    """Hook counting examples through ``model.forward`` (EOT samples and restarts all count): ``counter[0]`` every
    pass, ``counter[1]`` the passes an input gradient can be taken through (grad mode on, input requiring grad)."""
    def hook(_module, inputs):
        if inputs and isinstance(inputs[0], torch.Tensor):
            counter[0] += int(inputs[0].shape[0])
            if torch.is_grad_enabled() and inputs[0].requires_grad:
                counter[1] += int(inputs[0].shape[0])
    return model.register_forward_pre_hook(hook)


def rows(x: Any, sl: slice) -> Any:
    """Rows of a tensor, or a lazy view of a streamed image split (decoded only when a batch is taken)."""
    return x.rows(sl) if hasattr(x, "rows") else x[sl]


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of a model's weights and buffers (its architecture shows in their names and shapes)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _fingerprint(model: nn.Module, attacks: Mapping[str, Attack], x: torch.Tensor, y: torch.Tensor, batch_size: int,
                 mode: str, seed: Optional[int], draws: int = 1, first_index: int = 0) -> str:
    """What a saved partial evaluation must match to be resumed: the model's weights, the attacks with every option,
    the data, the batching, the draws and the seed — another checkpoint never resumes this one's evaluation."""
    data = hashlib.sha256(x.fingerprint().encode() if hasattr(x, "fingerprint")
                          else x.detach().float().cpu().contiguous().numpy().tobytes())
    data.update(y.detach().cpu().numpy().tobytes())
    spec = json.dumps([[name, repr(a), a.eot, repr(a.bpda)] for name, a in attacks.items()]
                      + [batch_size, mode, seed, data.hexdigest(), model_fingerprint(model), draws, first_index,
                         STATE_VERSION])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


#: the layout of ``<out>.state.json`` (a state written by another layout is not resumed)
STATE_VERSION = 2


def _chunk_seed(seed: int, phase: int, chunk: int, first_index: int) -> int:
    """The global-RNG seed of one chunk (for the model's own randomness and attacks without streams)."""
    digest = hashlib.blake2b(repr((seed, phase, chunk, first_index)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


#: re-classifications of every point for a randomised model when the user does not say (``eot_draws``)
DEFAULT_DRAWS = 20


def randomised(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` (in eval mode) gives different logits for the same inputs on two forward passes (beyond
    what nondeterministic GPU kernels or reduced precision change: 0.1 % of the largest logit)."""
    with torch.no_grad(), eval_mode(model):
        a, b = model(x).float(), model(x).float()
    return bool((a - b).abs().max() > 1e-3 * a.abs().max().clamp_min(1.0))


def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int):
    """(correct draws per example, correct on the first draw) over ``draws`` forward passes."""
    with torch.no_grad():
        first = model(x).argmax(1) == y
        hits = first.long()
        for _ in range(draws - 1):
            hits += (model(x).argmax(1) == y).long()
    return hits, first


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Mapping[str, Attack],
             batch_size: int = 256, mode: str = "independent", progress: bool = False,
             state_path: Optional[str | Path] = None, seed: Optional[int] = None, dist: Any = None,
             draws: int = 1, first_index: int = 0) -> Evaluation:
    """Clean, per-attack and worst-case accuracy of ``model`` on ``(x, y)``.

    The attacks run in the outer loop: first the clean pass over every example, then each attack over all the
    examples it applies to — every clean-correct one (``mode="independent"``), or those every earlier attack
    failed on (``"ensemble"``, AutoAttack's order) — compacted into full batches of ``batch_size``.

    With a ``seed``, every attack draws its randomness from per-example streams keyed by (seed, example index
    ``first_index + i``, attack label, restart/target/query) (:class:`armor.streams.Streams`), so an example's
    result does not depend on the batch size, on the other examples or on the number of processes; the global
    RNG (the model's own noise, attacks without streams) is reseeded for every chunk and restored afterwards.
    With ``state_path`` progress is saved after every chunk; an interrupted evaluation resumes from its finished
    chunks and gives the same numbers as one uninterrupted run, and the state file is removed once it completes.
    With ``dist`` (an :class:`armor.distributed.DistContext` of several processes) each rank evaluates a
    contiguous slice (its own state file) and every rank returns the exact merge.

    ``draws`` > 1 (randomised models): every point — clean and each attack's — is classified ``draws`` times;
    each example's worst case is the point with the fewest correct draws, and the accuracies are means over
    draws (:class:`armor.results.Evaluation`). In ensemble mode an example stays in the running until some
    point is wrong on every draw.
    """
    if mode not in ("independent", "ensemble"):
        raise ValueError(f"mode must be 'independent' or 'ensemble', got {mode!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise UserError(f"draws must be an integer ≥ 1, got {draws!r}")
    if dist is not None and dist.enabled:
        from ..distributed import unwrap

        part = dist.split_range(len(x))
        mine_state = None if state_path is None else \
            Path(state_path).with_name(f"{Path(state_path).name}.rank{dist.rank}of{dist.world_size}")
        mine = evaluate(unwrap(model), rows(x, part), y[part], attacks, batch_size=batch_size, mode=mode,
                        progress=progress and dist.is_main, state_path=mine_state, seed=seed, draws=draws,
                        first_index=first_index + part.start)
        return Evaluation.merge(dist.all_gather_objects(mine))
    n = len(x)
    names = list(attacks)
    dev = y.device
    st = _State(n, names, dev)
    key = _fingerprint(model, attacks, x, y, batch_size, mode, seed, draws, first_index) if state_path else None
    if state_path and Path(state_path).is_file():
        st.load(state_path, key)
    counter = [0, 0]
    handle = _count_passes(model, counter)
    devices = [x.device] if x.device.type == "cuda" else []
    phases = [-1] + list(range(len(names)))  # -1: the clean pass
    bar = tqdm(total=len(phases), desc="eval", disable=not progress, leave=False)
    try:
        with eval_mode(model):
            for phase in phases:
                if phase < st.phase:
                    bar.update(1)
                    continue
                if phase == -1:
                    todo = torch.arange(n, device=dev)
                elif st.todo is not None:  # resumed inside this pass: its examples as they were when it began
                    todo = torch.tensor(st.todo, dtype=torch.long, device=dev)
                else:
                    todo = ((st.worst_hits if mode == "ensemble" else st.clean_hits) > 0).nonzero().squeeze(1)
                    st.todo = todo.tolist()
                chunks = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
                for index, idx in enumerate(chunks):
                    if phase == st.phase and index < st.chunks_done:
                        continue
                    interrupts.check()  # a SIGTERM whose exception Python dropped stops here (the state is saved)
                    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
                        if seed is not None:
                            torch.manual_seed(_chunk_seed(seed, phase, index, first_index))
                        if phase == -1:
                            _clean_chunk(model, x, y, idx, draws, st)
                        else:
                            name = names[phase]
                            _attack_chunk(model, x, y, idx, name, attacks[name], phase, draws, seed, first_index,
                                          st, counter)
                    st.phase, st.chunks_done = phase, index + 1
                    if state_path and not (phase == phases[-1] and index + 1 == len(chunks)):
                        st.save(state_path, key)
                if phase >= 0:
                    st.cumulative[names[phase]] = int(st.worst_hits.sum())
                else:
                    st.worst_hits, st.worst_first = st.clean_hits.clone(), st.clean_first.clone()
                st.phase, st.chunks_done, st.todo = phase + 1, 0, None
                if state_path and phase != phases[-1]:
                    st.save(state_path, key)
                bar.update(1)
    finally:
        handle.remove()
        bar.close()
    if state_path and Path(state_path).is_file():
        Path(state_path).unlink()
    return _result(mode, names, attacks, st, draws, seed)


class _State:
    """Everything an evaluation has measured so far (and what ``<out>.state.json`` holds)."""

    def __init__(self, n: int, names: List[str], dev: torch.device):
        self.names = names
        self.phase, self.chunks_done = -1, 0  # the pass in progress (-1: clean) and its finished chunks
        self.todo: Optional[List[int]] = None  # the examples of the attack pass in progress (fixed when it began)
        self.clean_hits = torch.zeros(n, dtype=torch.long, device=dev)
        self.clean_first = torch.zeros(n, dtype=torch.bool, device=dev)
        self.worst_hits = torch.zeros(n, dtype=torch.long, device=dev)   # fewest correct draws over the points so far
        self.worst_first = torch.zeros(n, dtype=torch.bool, device=dev)  # first draw right at that point
        self.broken_by = torch.full((n,), -1, dtype=torch.long, device=dev)  # the attack whose point that is
        self.hits = {name: torch.zeros(n, dtype=torch.long, device=dev) for name in names}
        self.cumulative: Dict[str, int] = {}
        self.forward = {name: 0 for name in names}
        self.backward = {name: 0 for name in names}
        self.seconds = {name: 0.0 for name in names}
        self.verification = 0

    _TENSORS = ("clean_hits", "clean_first", "worst_hits", "worst_first", "broken_by")

    def save(self, path: str | Path, key: str) -> None:
        write_json(Path(path), {
            "fingerprint": key, "phase": self.phase, "chunks_done": self.chunks_done, "todo": self.todo,
            **{k: getattr(self, k).tolist() for k in self._TENSORS},
            "hits": {k: v.tolist() for k, v in self.hits.items()}, "cumulative": self.cumulative,
            "forward_passes": self.forward, "backward_passes": self.backward, "seconds": self.seconds,
            "verification_passes": self.verification})

    def load(self, path: str | Path, key: Optional[str]) -> None:
        try:
            state = read_json(path)
        except UserError:  # a damaged state file: nothing to resume from
            state = None
        if not (isinstance(state, dict) and state.get("fingerprint") == key):
            log.warning("%s belongs to another evaluation (another model, attack, data, batching or seed) or is "
                        "damaged: starting afresh", path)
            return
        self.phase, self.chunks_done = int(state["phase"]), int(state["chunks_done"])
        self.todo = None if state.get("todo") is None else [int(i) for i in state["todo"]]
        for k in self._TENSORS:
            old = getattr(self, k)
            setattr(self, k, torch.tensor(state[k], dtype=old.dtype, device=old.device))
        for name in self.names:
            self.hits[name] = torch.tensor(state["hits"][name], dtype=torch.long, device=self.clean_hits.device)
        self.cumulative = {k: int(v) for k, v in state["cumulative"].items()}
        self.forward.update(state["forward_passes"])
        self.backward.update(state["backward_passes"])
        self.seconds.update(state["seconds"])
        self.verification = int(state["verification_passes"])
        log.info("resuming evaluation from %s: pass %d, %d chunks of it already done", path, self.phase + 1,
                 self.chunks_done)


def _take(x: Any, idx: torch.Tensor) -> torch.Tensor:
    return x[idx.to(x.device)] if isinstance(x, torch.Tensor) else x[idx.cpu()]


def _clean_chunk(model, x, y, idx, draws, st: _State) -> None:
    hits, first = _classify(model, _take(x, idx), y[idx], draws)
    st.clean_hits[idx], st.clean_first[idx] = hits, first


def _attack_chunk(model, x, y, idx, name, attack, phase, draws, seed, first_index, st: _State, counter) -> None:
    xb, yb = _take(x, idx), y[idx]
    noise = None if seed is None else Streams(seed, first_index + idx, (name,))
    counter[0] = counter[1] = 0
    started = time.perf_counter()
    x_adv = attack(model, xb, yb, streams=noise)
    st.seconds[name] += time.perf_counter() - started
    st.forward[name] += counter[0]  # the attack's own passes, not the verification below
    st.backward[name] += counter[1]
    _check_budget(attack, x_adv, xb)
    hits, first = _classify(model, x_adv, yb, draws)
    st.verification += len(idx) * draws
    st.hits[name][idx] = hits
    lower = hits < st.worst_hits[idx]
    st.worst_hits[idx] = torch.where(lower, hits, st.worst_hits[idx])
    st.worst_first[idx] = torch.where(lower, first, st.worst_first[idx])
    st.broken_by[idx] = torch.where(lower, torch.full_like(idx, phase), st.broken_by[idx])


def _result(mode: str, names: List[str], attacks: Mapping[str, Attack], st: _State, draws: int,
            seed: Optional[int]) -> Evaluation:
    n = len(st.clean_hits)
    clean_list, broken_list = st.clean_hits.tolist(), st.broken_by.tolist()
    labels: List[Optional[str]] = [("clean" if not c else (names[b] if b >= 0 else None))
                                   for c, b in zip(clean_list, broken_list)]
    results: Dict[str, AttackResult] = {}
    for i, name in enumerate(names):
        broken = int(((st.broken_by == i) & (st.clean_hits > 0)).sum())
        if mode == "ensemble":  # after this attack and every one before it
            count, mask = st.cumulative[name], None
        else:
            count, mask = int(st.hits[name].sum()), (st.hits[name] == draws).tolist()
        results[name] = AttackResult(name, repr(attacks[name]), count, broken, st.forward[name], mask,
                                     st.backward[name], round(st.seconds[name], 3))
    single = int(st.worst_first.sum()) if draws > 1 else None
    every = int((st.worst_hits == draws).sum()) if draws > 1 else None
    return Evaluation(mode, n, int(st.clean_hits.sum()), int(st.worst_hits.sum()), results, labels,
                      sum(st.forward.values()) + n * draws, seed, draws, single, every, st.verification)
