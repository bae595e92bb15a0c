"""Clean and robust accuracy, per attack and worst case, always in ``model.eval()``.

An example counts as robust only if every attack failed on it. ``mode="independent"`` runs every attack
on every clean-correct example (each attack gets its own *standalone* accuracy); ``mode="ensemble"`` runs the
attacks in order, each only on the examples still standing (AutoAttack's shrinking robust mask), which
gives the same worst case for less work and *cumulative* per-attack numbers. The result is an
:class:`armor.results.Evaluation`.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks import Attack
from ..errors import UserError
from ..io import read_json, write_json
from ..modes import eval_mode
from ..results import AttackResult, Evaluation

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


def _count_forward_passes(model: nn.Module, counter: list):
    """Hook counting examples through ``model.forward`` (EOT samples and restarts all count)."""
    def hook(_module, inputs):
        counter[0] += int(inputs[0].shape[0]) if inputs and isinstance(inputs[0], torch.Tensor) else 0
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
                 mode: str, seed: Optional[int]) -> str:
    """What a saved partial evaluation must match to be resumed: the model's weights, the attacks with every option,
    the data, the batching and the seed — another checkpoint never resumes this one's evaluation."""
    data = hashlib.sha256(x.fingerprint().encode() if hasattr(x, "fingerprint")
                          else x.detach().float().cpu().contiguous().numpy().tobytes())
    data.update(y.detach().cpu().numpy().tobytes())
    spec = json.dumps([[name, repr(a), a.eot, repr(a.bpda)] for name, a in attacks.items()]
                      + [batch_size, mode, seed, data.hexdigest(), model_fingerprint(model)])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Mapping[str, Attack],
             batch_size: int = 256, mode: str = "independent", progress: bool = False,
             state_path: Optional[str | Path] = None, seed: Optional[int] = None, dist: Any = None) -> Evaluation:
    """Clean, per-attack and worst-case accuracy of ``model`` on ``(x, y)``.

    With a ``seed``, each batch reseeds the RNG with ``seed + batch index`` (the caller's RNG state is restored
    afterwards), so with ``state_path`` an interrupted evaluation resumes from its finished batches and gives the
    same numbers as one uninterrupted run; the state file is removed once the evaluation completes. With ``dist``
    (an :class:`armor.distributed.DistContext` of several processes) each rank evaluates a contiguous slice and
    every rank returns the exact merge.
    """
    if mode not in ("independent", "ensemble"):
        raise ValueError(f"mode must be 'independent' or 'ensemble', got {mode!r}")
    if dist is not None and dist.enabled:
        from ..distributed import unwrap

        part = dist.split_range(len(x))
        mine = evaluate(unwrap(model), rows(x, part), y[part], attacks, batch_size=batch_size, mode=mode,
                        progress=progress, seed=seed)
        return Evaluation.merge(dist.all_gather_objects(mine))
    n = len(x)
    names = list(attacks)
    correct = torch.zeros(n, dtype=torch.bool, device=x.device)
    robust = {name: torch.zeros(n, dtype=torch.bool, device=x.device) for name in attacks}
    broken_by = torch.full((n,), -1, dtype=torch.long, device=x.device)  # index of the first attack that won
    forward = {name: 0 for name in names}
    done = 0
    key = _fingerprint(model, attacks, x, y, batch_size, mode, seed) if state_path else None
    if state_path and Path(state_path).is_file():
        try:
            state = read_json(state_path)
        except UserError:  # a damaged state file: nothing to resume from
            state = None
        if isinstance(state, dict) and state.get("fingerprint") == key:
            done = int(state["batches_done"])
            dev = x.device
            correct[:] = torch.tensor(state["correct"], dtype=torch.bool, device=dev)
            broken_by[:] = torch.tensor(state["broken_by"], dtype=torch.long, device=dev)
            for name in names:
                robust[name][:] = torch.tensor(state["robust"][name], dtype=torch.bool, device=dev)
            forward.update(state["forward_passes"])
            log.info("resuming evaluation from %s: %d batches already done", state_path, done)
        else:
            log.warning("%s belongs to another evaluation (another model, attack, data or seed) or is damaged: "
                        "starting afresh", state_path)
    counter = [0]
    handle = _count_forward_passes(model, counter)
    batches = list(range(0, n, batch_size))
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with eval_mode(model):
            for index, start in enumerate(tqdm(batches, desc="eval", disable=not progress, leave=False)):
                if index < done:
                    continue
                with torch.random.fork_rng(devices=devices, enabled=seed is not None):
                    if seed is not None:
                        torch.manual_seed(seed + index)
                    _evaluate_batch(model, x, y, slice(start, start + batch_size), attacks, mode, correct, robust,
                                    broken_by, forward, counter)
                if state_path and index + 1 < len(batches):
                    write_json(Path(state_path), {
                        "fingerprint": key, "batches_done": index + 1, "correct": correct.tolist(),
                        "broken_by": broken_by.tolist(), "robust": {k: v.tolist() for k, v in robust.items()},
                        "forward_passes": forward})
    finally:
        handle.remove()
    if state_path and Path(state_path).is_file():
        Path(state_path).unlink()
    return _result(mode, names, attacks, correct, robust, broken_by, forward, seed)


def _evaluate_batch(model, x, y, sl, attacks, mode, correct, robust, broken_by, forward, counter) -> None:
    xb, yb = x[sl], y[sl]
    with torch.no_grad():
        ok = model(xb).argmax(1) == yb
    correct[sl] = ok
    standing = ok.clone()
    for i, (name, attack) in enumerate(attacks.items()):
        todo = (standing if mode == "ensemble" else ok).nonzero().squeeze(1)
        if todo.numel() == 0:
            continue
        counter[0] = 0
        x_adv = attack(model, xb[todo], yb[todo])
        forward[name] += counter[0]  # the attack's own passes, not the verification below
        _check_budget(attack, x_adv, xb[todo])
        with torch.no_grad():
            held = model(x_adv).argmax(1) == yb[todo]
        held_full = torch.zeros_like(ok)
        held_full[todo] = held
        robust[name][sl] = held_full
        newly_broken = standing & ~held_full
        broken_by[sl] = torch.where(newly_broken, torch.full_like(broken_by[sl], i), broken_by[sl])
        standing &= held_full


def _result(mode: str, names: List[str], attacks: Mapping[str, Attack], correct: torch.Tensor,
            robust: Dict[str, torch.Tensor], broken_by: torch.Tensor, forward: Dict[str, int],
            seed: Optional[int]) -> Evaluation:
    n = len(correct)
    worst = correct.clone()
    for mask in robust.values():
        worst &= mask
    correct_list, broken_list = correct.tolist(), broken_by.tolist()
    labels: List[Optional[str]] = [("clean" if not c else (names[b] if b >= 0 else None))
                                   for c, b in zip(correct_list, broken_list)]
    results: Dict[str, AttackResult] = {}
    standing = int(correct.sum())
    for i, name in enumerate(names):
        broken = int((broken_by == i).sum())
        if mode == "ensemble":  # after this attack and every one before it
            standing -= broken
            count, mask = standing, None
        else:
            count, mask = int(robust[name].sum()), robust[name].tolist()
        results[name] = AttackResult(name, repr(attacks[name]), count, broken, forward[name], mask)
    return Evaluation(mode, n, int(correct.sum()), int(worst.sum()), results, labels,
                      sum(forward.values()) + n, seed)
