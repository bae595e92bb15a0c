"""Your model, your data, your scale: models armor did not make (plain PyTorch files), data it does not ship
(.npz, image folders, feature vectors), and data too large for memory."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import armor
from armor import ATTACKS, ThreatModel, UserError, create_attack
from armor.cli import main
from armor.results import EvaluationRecord, read_record
from launch import armor_run  # armor commands in processes of their own, started warm

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

NET = textwrap.dedent('''
    """A plain PyTorch classifier for 8x8 digits, written without armor."""
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, hidden=64):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def forward(self, x):
            return self.body(x)


    class NormNet(Net):
        """Expects inputs normalised by the training set's mean and std, like most torchvision-style models."""


    class DictNet(Net):
        def forward(self, x):
            return {"features": x.flatten(1), "logits": self.body(x)}
''')


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def _train_plain(model, x, y, steps=80):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):  # full-batch Adam: plain PyTorch, no armor
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"plain_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    d = tmp_path_factory.mktemp("plain")
    (d / "net.py").write_text(NET)
    x, y = _digits()
    np.savez(d / "digits.npz", x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:])
    xt, yt = torch.tensor(x[:1400]), torch.tensor(y[:1400])
    torch.manual_seed(0)
    net = _train_plain(_import(d / "net.py", "Net")(), xt, yt)
    torch.save(net.state_dict(), d / "net.pt")
    mean, std = float(xt.mean()), float(xt.std())
    torch.manual_seed(0)
    norm = _train_plain(_import(d / "net.py", "NormNet")(), (xt - mean) / std, yt)
    torch.save({"state_dict": norm.state_dict(), "epoch": 80}, d / "normnet.pt")  # a common training-script format
    return {"dir": d, "net": net.eval(), "norm": norm.eval(), "mean": mean, "std": std,
            "x": torch.tensor(x[1400:1500]), "y": torch.tensor(y[1400:1500])}


def _eval_cli(*argv, capsys=None):
    code = main(["eval", *argv])
    if capsys is not None:
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return code


# -- armor eval on a model armor did not make --------------------------------------------------------------------
def test_armor_eval_of_a_plain_pytorch_model_matches_the_python_call(plain, capsys):
    d = plain["dir"]
    code, out, err = _eval_cli("--model", f"{d}/net.py:Net", "--weights", str(d / "net.pt"), "--data",
                               str(d / "digits.npz"), "--eps", "0.1", "--attack", "pgd", "--steps", "10", "--n", "100",
                               "--no-checks", "--out", str(d / "cli.json"), capsys=capsys)
    assert code == 0, err
    cli = read_record(d / "cli.json", EvaluationRecord)
    assert cli.source["model"] == f"{d}/net.py:Net" and cli.source["model_sha256"]
    py = armor.evaluate_robustness(plain["net"], plain["x"], plain["y"], ThreatModel("linf", 0.1), attacks=["pgd"],
                                   steps=10, checks=False)
    assert py.result.to_dict() == cli.result.to_dict()  # the same points, seed and numbers, example by example
    assert 70 < cli.result.clean_acc and cli.result.acc("pgd-10") < cli.result.clean_acc - 20
    assert "pgd-10" in str(py) and f"{py.robust_acc:.1f}" in str(py)


def test_armor_pgd_agrees_with_torchattacks_on_the_plain_model(plain):
    torchattacks = pytest.importorskip("torchattacks")
    x, y, model = plain["x"], plain["y"], plain["net"]
    ours = armor.evaluate_robustness(model, x, y, ThreatModel("linf", 0.1), attacks=["pgd"], steps=10,
                                     checks=False).robust_acc
    torch.manual_seed(0)
    adv = torchattacks.PGD(model, eps=0.1, alpha=0.025, steps=10, random_start=True)(x, y)
    theirs = armor.accuracy(model, adv, y)
    assert abs(ours - theirs) <= 2.0, (ours, theirs)


def test_a_model_that_expects_normalised_inputs_gets_mean_and_std(plain, capsys):
    d, mean, std = plain["dir"], plain["mean"], plain["std"]
    code, _, err = _eval_cli("--model", f"{d}/net.py:NormNet", "--weights", str(d / "normnet.pt"), "--data",
                             str(d / "digits.npz"), "--eps", "0.1", "--mean", str(mean), "--std", str(std), "--attack",
                             "pgd", "--steps", "10", "--n", "100", "--no-checks", "--out", str(d / "norm.json"),
                             capsys=capsys)
    assert code == 0, err
    cli = read_record(d / "norm.json", EvaluationRecord)
    by_hand = torch.nn.Sequential(armor.Normalize([mean], [std]), plain["norm"])  # the model wrapped by hand
    py = armor.evaluate_robustness(by_hand, plain["x"], plain["y"], ThreatModel("linf", 0.1), attacks=["pgd"],
                                   steps=10, checks=False)
    assert py.result.to_dict() == cli.result.to_dict() and cli.result.clean_acc > 70
    # normalised inputs handed to a [0, 1] threat model: a clear error that says what to do
    with pytest.raises(UserError, match=r"x must lie in \[0, 1\].*normalize=\(mean, std\)"):
        armor.evaluate_robustness(plain["norm"], (plain["x"] - mean) / std, plain["y"], ThreatModel("linf", 0.1))


def test_a_model_returning_a_dict_needs_its_logits_key(plain, capsys):
    d = plain["dir"]
    args = ["--model", f"{d}/net.py:DictNet", "--weights", str(d / "net.pt"), "--data", str(d / "digits.npz"),
            "--eps", "0.1", "--attack", "pgd", "--steps", "5", "--n", "40", "--no-checks", "--out", str(d / "dict.json")]
    code, _, err = _eval_cli(*args, capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--logits-key" in err
    code, _, err = _eval_cli(*args, "--logits-key", "logits", capsys=capsys)
    assert code == 0, err
    assert read_record(d / "dict.json", EvaluationRecord).result.clean_acc > 70


def test_armor_export_evaluates_again_to_the_same_numbers(robust_run, tmp_path, capsys):
    best = robust_run["out"] / "best.pt"
    assert main(["export", "--checkpoint", str(best), "--out", str(tmp_path / "m.safetensors")]) == 0
    common = ["--attack", "pgd", "--steps", "5", "--n", "60", "--no-checks"]
    assert _eval_cli("--checkpoint", str(best), *common, "--out", str(tmp_path / "a.json")) == 0
    assert _eval_cli("--weights", str(tmp_path / "m.safetensors"), *common, "--out", str(tmp_path / "b.json")) == 0
    a, b = read_record(tmp_path / "a.json"), read_record(tmp_path / "b.json")
    assert a.result.to_dict() == b.result.to_dict() and a.threat == b.threat


# -- your own architecture, trained by armor -----------------------------------------------------------------------
ARCH = textwrap.dedent('''
    import os
    from pathlib import Path

    from torch import nn

    if os.environ.get("ARMOR_TEST_MARKER"):  # proves whether armor imported this file
        Path(os.environ["ARMOR_TEST_MARKER"]).touch()


    def net(input_shape, num_classes, width=16):
        c, h, w = input_shape
        return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                             nn.ReLU(), nn.Flatten(), nn.Linear(width * h * w, num_classes))
''')


def test_your_own_architecture_trains_with_every_guarantee(tmp_path, capsys):
    arch = tmp_path / "arch.py"
    arch.write_text(ARCH)
    ref = f"{arch}:net"
    common = dict(model=ref, eps=0.2, epochs=8, train_size=600, test_size=200, eval_attacks=["pgd"], eval_steps=20)
    std = armor.train(method="standard", out=str(tmp_path / "std"), **common)
    rob = armor.train(method="pgd_at", steps=3, out=str(tmp_path / "rob"), **common)
    assert rob.record.test.acc("pgd-20") >= std.record.test.acc("pgd-20") + 15, (rob, std)
    state = torch.load(tmp_path / "rob" / "best.pt", weights_only=True)
    assert state["model_spec"]["name"] == ref and len(state["model_spec"]["factory_sha256"]) == 64
    # a checkpoint that names a factory never imports it unless the user names it too
    marker = tmp_path / "imported"
    proc = armor_run(["eval", "--checkpoint", str(tmp_path / "rob" / "best.pt"), "--n", "10", "--no-checks"],
                     env={**ENV, "ARMOR_TEST_MARKER": str(marker)})
    assert proc.returncode == 2 and "pass --model" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    # with --model it evaluates; after the file changes, eval and resume refuse with one line
    code, _, err = _eval_cli("--checkpoint", str(tmp_path / "rob" / "best.pt"), "--model", ref, "--attack", "pgd",
                             "--n", "20", "--no-checks", capsys=capsys)
    assert code == 0, err
    arch.write_text(ARCH.replace("width=16", "width=32"))
    code, _, err = _eval_cli("--checkpoint", str(tmp_path / "rob" / "best.pt"), "--model", ref, "--attack", "pgd",
                             "--n", "20", "--no-checks", capsys=capsys)
    assert code == 2 and "changed since" in err and len(err.strip().splitlines()) == 1
    code = main(["train", "--resume", "--out", str(tmp_path / "rob"), "--model", ref, "--epochs", "9", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "changed since" in err and len(err.strip().splitlines()) == 1


# -- image folders ---------------------------------------------------------------------------------------------------
def _uint8_images():
    """MNIST originals when the shared data is there (uint8, so PNG is lossless), else digits as uint8."""
    from armor.data.datasets import default_data_dir

    folder = default_data_dir()
    if folder is not None and (folder / "mnist.npz").is_file():
        with np.load(folder / "mnist.npz") as f:
            return "mnist", f["x_train"][:700], f["y_train"][:700], f["x_test"][:200], f["y_test"][:200]
    x, y = _digits()
    x = (x[:, 0] * 15).round().astype(np.uint8)
    return "digits", x[:700], y[:700], x[700:900], y[700:900]


def _write_folder(root: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / split / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.png")


def test_an_image_folder_trains_like_the_same_images_in_memory(tmp_path):
    from armor.data.folder import FolderTensor

    name, xtr, ytr, xte, yte = _uint8_images()
    # a folder lists its images class by class: the same images in the same order in memory
    tr, te = np.argsort(ytr, kind="stable"), np.argsort(yte, kind="stable")
    np.savez(tmp_path / "same.npz", x_train=xtr[tr], y_train=ytr[tr], x_test=xte[te], y_test=yte[te])
    _write_folder(tmp_path / "folder", "train", xtr, ytr)
    _write_folder(tmp_path / "folder", "test", xte, yte)
    common = dict(model="tiny_cnn" if name == "mnist" else "small_cnn", method="pgd_at", steps=2, eps=0.2, epochs=2,
                  batch_size=50, val_size=100, augment="none", eval_attacks=["pgd"], eval_steps=5, plot=False)
    arrays = armor.train(dataset=str(tmp_path / "same.npz"), out=str(tmp_path / "a"), **common)
    held = armor.train(dataset=str(tmp_path / "folder"), out=str(tmp_path / "b"), **common)
    streamed = armor.Trainer(armor.TrainConfig(dataset=str(tmp_path / "folder"), out=str(tmp_path / "c"),
                                               memory_limit_mb=0.01, workers=1, **common), progress=False)
    assert isinstance(streamed.data.x_train, FolderTensor)  # chosen automatically: too large for the (tiny) limit
    assert isinstance(held.data.x_train, torch.Tensor) and torch.equal(held.data.x_train, arrays.data.x_train)
    record = streamed.fit()
    assert held.record.test.to_dict() == arrays.record.test.to_dict()  # in memory: the very same run
    for a, b in ((record.test.clean_acc, arrays.record.test.clean_acc),
                 (record.test.acc("pgd-5"), arrays.record.test.acc("pgd-5"))):
        assert abs(a - b) <= 1.0, (a, b)  # streamed through worker processes: within a point


def test_each_rank_decodes_only_its_shard_of_a_streamed_batch(tmp_path):
    from armor.data.datasets import load_dataset
    from armor.distributed import DistContext

    name, xtr, ytr, xte, yte = _uint8_images()
    _write_folder(tmp_path / "f", "train", xtr[:120], ytr[:120])
    _write_folder(tmp_path / "f", "test", xte[:20], yte[:20])
    data = load_dataset(str(tmp_path / "f"), val_size=0, memory_limit_mb=0.001)
    whole = load_dataset(str(tmp_path / "f"), val_size=0)  # the same images held in memory
    batch = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(1))[:16]
    shards = [DistContext(rank=r, world_size=2).shard(batch) for r in range(2)]
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist()) and sorted(torch.cat(shards).tolist()) == \
        sorted(batch.tolist())
    for shard in shards:
        (decoded,) = list(data.x_train.loader([shard.tolist()], workers=0))
        assert torch.equal(decoded, whole.x_train[shard])  # exactly its own images, nothing else


def test_the_imagenet_recipe_runs_on_a_small_generated_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for c in range(3):
            (tmp_path / "in" / split / f"n0{c}").mkdir(parents=True)
            for i in range(n):
                img = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
                Image.fromarray(img).save(tmp_path / "in" / split / f"n0{c}" / f"{i}.JPEG")
    cfg = armor.TrainConfig.from_yaml(ROOT / "configs" / "imagenet_fast_at.yaml", {
        "dataset": str(tmp_path / "in"), "image_size": 64, "epochs": 1, "batch_size": 6, "val_size": 3,
        "val_subset": None, "model_options": {"width": 4}, "workers": 0, "eval_steps": 2, "val_steps": 2,
        "memory_limit_mb": 0.01,  # streamed, as the recipe is at ImageNet scale
        "amp": "off", "channels_last": False, "device": "cpu", "out": str(tmp_path / "run"), "plot": False})
    assert cfg.resolved_eps() == pytest.approx(4 / 255) and cfg.model == "resnet50"
    trainer = armor.Trainer(cfg, progress=False)
    from armor.data.folder import FolderTensor

    assert isinstance(trainer.data.x_train, FolderTensor) and trainer.data.input_shape == (3, 64, 64)
    record = trainer.fit()
    assert record.test.n == 9 and (tmp_path / "run" / "best.pt").is_file()


# -- armor attack ----------------------------------------------------------------------------------------------------
def test_armor_attack_writes_the_adversarial_examples(robust_run, tmp_path, capsys):
    out = tmp_path / "adv.npz"
    code = main(["attack", "--checkpoint", str(robust_run["out"] / "best.pt"), "--attack", "pgd", "--steps", "10",
                 "--n", "40", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with np.load(out, allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    assert a["x"].shape == a["x_adv"].shape == (40, 1, 8, 8) and len(a["y"]) == len(a["norm"]) == 40
    assert (a["norm"] <= float(a["eps"]) + 1e-6).all() and a["x_adv"].min() >= 0 and a["x_adv"].max() <= 1
    model = robust_run["model"]
    with torch.no_grad():  # the stored predictions are the model's on the stored inputs
        assert (model(torch.tensor(a["x_adv"])).argmax(1).numpy() == a["pred_adv"]).all()
    assert ((a["pred_clean"] == a["y"]) & (a["pred_adv"] != a["y"]) == a["fooled"]).all() and a["fooled"].any()
    assert (out.with_suffix(".png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- feature vectors -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    d = tmp_path_factory.mktemp("tabular")
    runs = {m: armor.train(config=armor.TrainConfig.from_yaml(ROOT / "configs" / f"breast_cancer_{m}.yaml",
                                                                {"out": str(d / m), "plot": False}))
            for m in ("standard", "pgd_at")}
    return runs


def test_pgd_at_beats_standard_training_on_tabular_data(tabular):
    std, rob = tabular["standard"].record.test, tabular["pgd_at"].record.test
    assert std.clean_acc > 85 and rob.clean_acc > 80
    assert rob.acc("pgd-20") >= std.acc("pgd-20") + 15, (std.acc("pgd-20"), rob.acc("pgd-20"))


def test_the_two_class_standard_suite_runs_on_features_and_says_what_it_replaced(tabular, tmp_path, capsys):
    code = main(["eval", "--checkpoint", str(tabular["pgd_at"].out / "best.pt"), "--steps", "10", "--check-n", "40",
                 "--out", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    assert code == 0
    record = read_record(tmp_path / "e.json", EvaluationRecord)
    assert record.result.labels == ["apgd-ce", "apgd-t"]
    assert any("square dropped" in n for n in record.substitutions)
    assert any("targeted CW margin loss replaces the targeted DLR" in n for n in record.substitutions)
    assert "note: square dropped" in out and record.checks is not None


@pytest.mark.parametrize("name", ATTACKS.names())
def test_immutable_features_are_never_changed_by_any_attack(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).eval()
    lower, upper = [-1.0] * 6 + [0.0] * 6, [1.0] * 6 + [3.0] * 6
    threat = ThreatModel("linf", 0.3, lower=lower, upper=upper, immutable=(0, 4, 7, 11))
    x = threat.clip(torch.randn(64, 12))
    y = model(x).argmax(1)
    options = {k: v for k, v in dict(steps=10, queries=50, n_target_classes=3).items() if ATTACKS.takes(name, k)}
    attack = create_attack(name, threat, **options)
    if getattr(attack, "needs_images", False):
        with pytest.raises(UserError, match="needs image inputs"):
            attack(model, x, y)
        return
    x_adv = attack(model, x, y)
    assert torch.equal(x_adv[:, [0, 4, 7, 11]], x[:, [0, 4, 7, 11]])  # untouched, bit for bit
    assert (x_adv - x).abs().max() > 0.1 and threat.in_box(x_adv) and (threat.distance(x_adv, x) <= 0.3 + 1e-6).all()


# -- progress, and the README snippet -----------------------------------------------------------------------------------
def test_armor_eval_shows_a_progress_bar_in_a_terminal_only(robust_run, tmp_path):
    import pty

    argv = [sys.executable, "-m", "armor", "eval", "--checkpoint", str(robust_run["out"] / "best.pt"), "--attack",
            "pgd", "--steps", "2", "--n", "40", "--batch-size", "10", "--no-checks", "--out", str(tmp_path / "e.json")]
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=ENV)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(120)
    os.close(master)
    tty_err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and re.search(r"eval: +\d+%", tty_err), tty_err
    piped = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=120)
    assert piped.returncode == 0 and "eval:" not in piped.stderr  # quiet when not a terminal


def test_the_readme_snippet_runs_twice_and_reports_its_own_models_robustness(tmp_path):
    text = (ROOT / "README.md").read_text()
    snippet = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S).group(1)
    first = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)  # as printed, in a fresh interpreter (one torch thread: see conftest.py)
    for proc in (first, armor_run(code=snippet, cwd=tmp_path, timeout=600)):  # again over its own run folder
        assert proc.returncode == 0, proc.stderr[-2000:]
        last = proc.stdout.strip().splitlines()[-1]
        robust = float(re.search(r"robust accuracy: ([\d.]+) %", last).group(1))
        assert robust > 20, last  # the model it trained, not chance (10 %)
        assert json.loads((tmp_path / "runs" / "readme" / "results.json").read_text())["epochs"] == 10


def _registered():
    from armor.attacks import ATTACKS
    from armor.methods import METHODS
    from armor.models import MODELS

    return [(kind, name) for kind, registry in (("Attacks", ATTACKS), ("Methods", METHODS), ("Models", MODELS))
            for name in registry.names()]


@pytest.mark.parametrize("kind,name", _registered())
def test_every_registered_attack_method_and_model_is_named_in_the_readme_concepts(kind, name):
    concepts = re.search(r"\n## Concepts\n(.*?)\n## ", (ROOT / "README.md").read_text(), re.S).group(1)
    entry = re.search(rf"- \*\*{kind}\*\* (.*?)(?=\n- \*\*|\Z)", concepts, re.S).group(1)
    assert f"`{name}`" in entry, f"README Concepts, {kind}: `{name}` is registered but not named"
