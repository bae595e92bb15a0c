"""``python tests/ddp_exit_check.py ARGS`` runs ``armor ARGS`` (as ``python -m armor`` does) and, at interpreter exit,
writes to stderr how many DistributedDataParallel wrappers are still alive in this process. Under torchrun every
rank must say 0: a wrapper that outlives ``destroy_process_group`` is torn down during interpreter exit, where
gloo's C++ side now and then aborted a rank that finished first (SIGABRT, "terminate called without an active
exception"); ``Trainer.close`` releases it. Used by tests/test_distributed.py."""
import atexit
import gc
import os
import sys


def _report() -> None:
    from torch.nn.parallel import DistributedDataParallel

    alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    print(f"rank {os.environ.get('RANK', '-')}: DDP wrappers alive at exit: {alive}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    atexit.register(_report)
    from armor.cli import main

    sys.exit(main(sys.argv[1:]))
