"""Several processes, one run: ``torchrun --nproc_per_node=N -m armor train ...``.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` joins the process group (gloo on
CPU, nccl on CUDA). Every rank holds the whole dataset on its device and takes its slice of each global
batch of the same seeded permutation, so N processes train on exactly the batches one process would (the
configured ``batch_size`` is the global batch). Only rank 0 writes files and logs; epoch metrics are
summed across ranks; evaluation (``armor.eval.evaluate(..., dist=ctx)``) gives each rank a contiguous slice of
the examples and merges the per-example results exactly (:meth:`armor.results.Evaluation.merge`).

Without torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op and nothing is initialised.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .errors import UserError, opt

log = logging.getLogger("armor")
T = TypeVar("T")


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process initialised the group, so it also tears it down

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data ------------------------------------------------------------------------------------
    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (of indices or examples)."""
        if not self.enabled:
            return batch
        per_rank = len(batch) // self.world_size
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]

    def split_range(self, n: int) -> slice:
        """This rank's part of ``n`` evaluation examples (sizes differ by at most one)."""
        if not self.enabled:
            return slice(0, n)
        start = n * self.rank // self.world_size
        return slice(start, n * (self.rank + 1) // self.world_size)

    # -- collectives -----------------------------------------------------------------------------
    def all_reduce_sum(self, values: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Sum same-keyed scalars over ranks in one collective (no-op on one process)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).reshape(()) for k in keys])
        device = next(iter(values.values())).device if dist.get_backend() != "gloo" else torch.device("cpu")
        stacked = stacked.to(device)
        dist.all_reduce(stacked)
        return dict(zip(keys, stacked.unbind()))

    def all_gather_objects(self, obj: Any) -> List[Any]:
        if not self.enabled:
            return [obj]
        gathered: List[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module``."""
        if not self.enabled:
            return
        with torch.no_grad():
            for tensor in list(module.state_dict().values()):
                if torch.is_tensor(tensor):
                    # channels_last weights are not contiguous in NCHW order, which collectives expect
                    buffer = tensor if tensor.is_contiguous() else tensor.contiguous()
                    dist.broadcast(buffer, src=0)
                    if buffer is not tensor:
                        tensor.copy_(buffer)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def run_on_main(self, fn: Callable[[], T]) -> Optional[T]:
        """Run ``fn`` on rank 0 only; a ``UserError`` there is raised on every rank (no rank hangs)."""
        error: Optional[str] = None
        result: Optional[T] = None
        if self.is_main:
            try:
                result = fn()
            except UserError as exc:
                error = str(exc)
        error = self.broadcast_object(error)
        if error is not None:
            raise UserError(error)
        return result

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def setup(device_name: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment; a single process gets a no-op context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or str(device_name).startswith("cuda")
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    ctx = DistContext(rank=rank, world_size=world_size, local_rank=local_rank, owns_group=owns)
    if not ctx.is_main:  # one voice: rank 0 logs, the others only warn
        log.setLevel(max(log.level, logging.WARNING))
    return ctx


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """Each rank on a node drives its own GPU (``cuda:LOCAL_RANK``)."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def convert_sync_bn(ctx: DistContext, model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """BatchNorm → SyncBatchNorm when asked and running on several processes (same parameter names)."""
    if not (sync_bn and ctx.enabled):
        return model
    if device.type != "cuda":
        raise UserError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel); "
                        f"drop {opt('sync_bn')} on CPU")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(ctx: DistContext, model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` on several processes; ``model`` itself alone.

    The wrapper shares parameters with ``model``, so the trainer keeps saving ``model.state_dict()``
    (no ``module.`` prefix) and a single process can load the checkpoint.
    """
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel (attacks run on it: they need no gradient all-reduce)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
