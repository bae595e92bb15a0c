"""torchrun + DistributedDataParallel on CPU (gloo), and the pieces that split work across ranks."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from armor import TrainConfig, create_attack, create_model
from armor.distributed import DistContext
from armor.eval.robust import evaluate
from armor.io import read_jsonl
from armor.results import Evaluation, TrainingRecord, read_record
from armor.training import Trainer
from launch import failure, run_ranks, torchrun_available

RUN = dict(method="pgd_at", steps=2, epochs=3, batch_size=32, val_steps=3, test_size=200, eval_attacks=["pgd"], eval_steps=5)


@pytest.mark.slow
@pytest.mark.skipif(not torchrun_available(), reason="torch.distributed with gloo is not available here")
def test_torchrun_two_processes_match_one_process(tmp_path):
    out = tmp_path / "ddp"
    args = ["--" + k.replace("_", "-") + "=" + str(v) for k, v in RUN.items() if k != "eval_attacks"]
    # `armor train` with, at exit, each rank's count of DistributedDataParallel wrappers still alive
    argv = [str(Path(__file__).parent / "ddp_exit_check.py"), "train", *args, "--eval-attacks", "pgd", "--out",
            str(out), "--quiet"]
    code, stdout, stderr = run_ranks(2, argv, {**os.environ, "OMP_NUM_THREADS": "1"})
    assert code == 0, failure(stderr)
    assert stdout.count("results:") == 1  # one report, from rank 0
    # the wrapper (which holds the process group) is gone before the group is destroyed, not left to interpreter exit
    assert sorted(re.findall(r"rank (\d): DDP wrappers alive at exit: (\d+)", stderr)) == [("0", "0"), ("1", "0")], \
        failure(stderr)

    # one set of files, written once: rank 0 only
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.yaml", "last.pt", "learning_curves.png",
                                                       "metrics.jsonl", "results.json", "run.json"]
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    state = torch.load(out / "best.pt", weights_only=True)
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["model"])  # the unwrapped module

    # the same global batches on one process; the two runs differ only in the attacks' random starts
    # (each rank draws its own) and in float summation order, so they end close but not equal
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like each worker above (tiny model: more threads only add contention)
    try:
        single = Trainer(TrainConfig(**RUN, out=str(tmp_path / "single")), progress=False).fit()
    finally:
        torch.set_num_threads(threads)
    ddp = read_record(out / "results.json", TrainingRecord)
    assert ddp.test.n == single.test.n == 200  # the test set split over ranks and merged whole
    assert len(ddp.test.broken_by_example) == 200  # per-example results of both ranks, in order
    # tolerance: 6 points of 200 test images ≈ run-to-run spread of 3-epoch PGD-AT under other seeds
    assert ddp.test.clean_acc > 70 and single.test.clean_acc > 70
    assert abs(ddp.test.clean_acc - single.test.clean_acc) < 6
    assert abs(ddp.test.acc("pgd-5") - single.test.acc("pgd-5")) < 8
    single_records = read_jsonl(tmp_path / "single" / "metrics.jsonl")
    assert records[-1]["train_loss"] == pytest.approx(single_records[-1]["train_loss"], abs=0.1)

    # the checkpoint written under DDP loads into a single-process model
    from armor.checkpoints import load_model

    model, cfg, _ = load_model(out / "best.pt", device="cpu")
    assert cfg.method == "pgd_at" and not model.training


def test_split_evaluation_merges_to_the_whole(digits, threat):
    """Evaluating slices on separate ranks and merging gives the numbers of one pass over everything."""
    torch.manual_seed(0)
    model = create_model("small_cnn", digits.input_shape, 10, digits.mean, digits.std).eval()
    x, y = digits.x_test[:100], digits.y_test[:100]
    attacks = {"fgsm": create_attack("fgsm", threat)}  # deterministic, so slices and whole must agree exactly
    whole = evaluate(model, x, y, attacks)
    parts = []
    for rank in range(3):
        part = DistContext(rank=rank, world_size=3).split_range(len(x))
        parts.append(evaluate(model, x[part], y[part], attacks))
    merged = Evaluation.merge(parts)
    assert merged.n == 100 and merged.to_dict() == whole.to_dict()  # counts, per-example labels, forward passes


def test_each_rank_takes_its_slice_of_the_global_batch():
    batch = torch.arange(12)
    slices = [DistContext(rank=r, world_size=3).shard(batch) for r in range(3)]
    assert torch.equal(torch.cat(slices), batch)
    assert torch.equal(DistContext().shard(batch), batch)


def test_global_batch_must_split_evenly(tmp_path, monkeypatch):
    from armor import UserError, distributed

    monkeypatch.setattr(distributed, "setup", lambda device="auto": DistContext(rank=0, world_size=3))
    with pytest.raises(UserError, match="batch_size 32 .* divisible by the 3 processes"):
        Trainer(TrainConfig(**RUN, out=str(tmp_path / "r")), progress=False)
