"""The training methods of issue 5 on short digits runs: each beats standard training under PGD-20."""
from __future__ import annotations

import pytest
import torch

from armor import ThreatModel, TrainConfig, UserError, create_method, create_model
from armor.attacks import PGD
from armor.attacks.transfer import TransferAttack
from armor.checkpoints import load_model, model_spec
from armor.eval import evaluate
from armor.io import read_jsonl
from armor.methods import METHODS
from armor.models import build_model
from armor.models.folded import FoldedHead
from armor.training import Trainer

# short runs: a 600-image training subset, PGD-5 inner attacks, 200 test images (1 image = 0.5 points). No cost
# probe and no learning-curve plot: these runs are about robustness (the probe is tested at the end of this file, the
# plots in test_reports.py); the probe's 10 timed minibatches of the method and of a standard step, on copies of
# the model, are about 5 % of such a short run.
SHORT = dict(eps=0.2, epochs=10, batch_size=32, train_size=600, test_size=200, eval_attacks=["pgd"], eval_steps=20,
             cost_probe=0, plot=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def get(label, **kw):
        if label not in cache:
            out = tmp_path_factory.mktemp(label)
            steps = {"steps": 5} if METHODS.takes(kw["method"], "steps") else {}  # PGD-5 inner attacks
            trainer = Trainer(TrainConfig(**{**SHORT, **steps, **kw, "out": str(out)}), overwrite=True,
                              progress=False)
            summary = trainer.fit()
            cache[label] = {"summary": summary, "trainer": trainer, "out": out,
                            "pgd": summary.test.acc("pgd-20"),
                            "clean": summary.test.clean_acc}
        return cache[label]

    return get


#: settings that differ from a method's defaults; every other registered method trains with its defaults
PLANS = {"trades": dict(beta=6.0), "mart": dict(beta=6.0), "free": dict(replays=4, epochs=3),
         # N-FGSM (its training perturbation reaches 3·ε = 0.6 here) and GradAlign sat at chance for 3 epochs from
         # scratch at ε = 0.2 and the chance guard stopped them; with a 2-epoch ε ramp they train (PGD-20 44.5 / 41.5)
         "n_fgsm": dict(eps_warmup=2), "grad_align": dict(eps_warmup=2)}
ROBUST_METHODS = [m for m in METHODS.names() if METHODS.get(m).adversarial]


def plan(label):
    return {"method": label, **PLANS.get(label, {})}


@pytest.mark.parametrize("label", ROBUST_METHODS)
def test_method_beats_standard_training_under_pgd20(label, runs, standard_run):
    std = standard_run["summary"].test.acc("pgd-10")  # a weaker attack than PGD-20
    run = runs(label, **plan(label))
    assert std < 15
    # dummy-class AT is the weakest here (its reference runs did not beat PGD-AT either)
    assert run["pgd"] >= std + (15 if label == "dummy" else 25), (label, run["pgd"], std)
    assert run["clean"] > 60


@pytest.mark.parametrize("label", ["fgsm_rs", "free"])
def test_guard_watches_single_step_methods_and_stays_quiet_on_a_normal_run(label, runs):
    run = runs(label, **plan(label))
    records = read_jsonl(run["out"] / "metrics.jsonl")
    assert all("guard_pgd_acc" in r for r in records) and not any("guard" in r for r in records)
    assert run["summary"].stop_reason is None and len(records) == plan(label).get("epochs", SHORT["epochs"])


def test_trades_beta_trades_clean_accuracy_for_robustness(runs):
    low, high = runs("trades_b0.1", method="trades", beta=0.1), runs("trades", **plan("trades"))
    assert high["pgd"] >= low["pgd"] + 10, (low["pgd"], high["pgd"])
    assert low["clean"] >= high["clean"] - 1.0, (low["clean"], high["clean"])


def test_dummy_model_is_folded_and_every_attack_sees_the_folded_output(runs):
    run = runs("dummy", **plan("dummy"))
    model, threat = run["trainer"].model, run["trainer"].threat
    assert isinstance(model, FoldedHead) and model.num_classes == 10
    x, y = run["trainer"].data.x_test, run["trainer"].data.y_test  # the run's own 200 test images
    assert model(x[:4]).shape == (4, 10) and model.raw(x[:4]).shape == (4, 20)
    # a checkpoint of a dummy run rebuilds the folded model, so `armor eval` attacks the folded output
    loaded, cfg, _ = load_model(run["out"] / "best.pt", device="cpu")
    assert isinstance(loaded, FoldedHead) and cfg.method == "dummy"
    torch.manual_seed(0)
    res = evaluate(loaded, x, y, {"folded": PGD(threat, steps=20),
                                  "raw head": TransferAttack(PGD(threat, steps=20), loaded.raw)})
    folded, raw = res.acc("folded"), res.acc("raw head")
    assert folded <= raw, (folded, raw)
    assert res.clean_acc == pytest.approx(run["clean"])  # best.pt reloaded: the same folded model


def test_free_at_uses_the_trainers_backward_for_the_perturbation(digits):
    torch.manual_seed(0)
    threat = ThreatModel("linf", 0.2)
    model = create_model("small_cnn", (1, 8, 8), 10)
    method = create_method("free", threat, replays=3)
    assert method.replays == 3
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    x, y = digits.x_train[:32], digits.y_train[:32]
    out = method.step(model, x, y)
    x_adv = method._x_adv
    assert torch.equal(x_adv.detach(), x)  # δ starts at 0
    out.loss.backward()  # the trainer's backward fills the input gradient too
    grad = x_adv.grad.clone()
    method.step(model, x, y)
    expected = threat.project(x + 0.2 * grad.sign(), x)
    assert torch.allclose(method._x_adv.detach(), expected)
    assert len(calls) == 2  # one forward per replay, no extra attack pass


def test_method_options_are_checked():
    threat = ThreatModel("linf", 0.2)
    with pytest.raises(UserError, match="beta must be"):
        create_method("trades", threat, beta=-1)
    with pytest.raises(UserError, match="replays must be"):
        create_method("free", threat, replays=0)
    with pytest.raises(UserError, match="beta must be a number"):
        TrainConfig(method="mart", beta="x")
    with pytest.raises(UserError, match="method 'dummy' has no option 'w_advv'"):
        TrainConfig(method="dummy", method_options={"w_advv": 0.5})
    with pytest.raises(UserError, match="attack_head must be"):
        create_method("dummy", threat, attack_head="both")
    with pytest.raises(UserError, match="unknown guard 'maybe'"):
        TrainConfig(guard="maybe")


def test_build_model_widens_and_folds_only_for_dummy():
    meta = {"input_shape": [1, 8, 8], "num_classes": 10, "mean": [0.3], "std": [0.4]}
    plain = build_model(model_spec(TrainConfig(method="trades"), meta))
    folded = build_model(model_spec(TrainConfig(method="dummy"), meta))
    assert not isinstance(plain, FoldedHead) and isinstance(folded, FoldedHead)
    x = torch.rand(3, 1, 8, 8)
    assert plain(x).shape == (3, 10) and folded(x).shape == (3, 10) and folded.raw(x).shape == (3, 20)
    raw = folded.raw(x)
    assert torch.equal(folded(x).argmax(1), raw.argmax(1) % 10)  # DUCAT's prediction rule


@pytest.mark.parametrize("label", METHODS.names())
def test_each_method_states_the_passes_its_step_really_makes(label):
    """Cost: a method's ``passes()`` must be the forward and backward passes its step (every replay, the trainer's
    backward included) sends through the model, counted per example by hooks on the network."""
    meta = {"input_shape": [1, 8, 8], "num_classes": 10, "mean": [0.3], "std": [0.4]}
    model = build_model(model_spec(TrainConfig(method=label, model="mlp"), meta)).train()
    network = getattr(model, "raw", model)  # dummy-class AT: the 2C network inside the folded head
    counts = {"forward": 0, "backward": 0}

    def hook(module, inputs, output):
        counts["forward"] += len(output)
        if output.requires_grad:
            output.register_hook(lambda grad: counts.__setitem__("backward", counts["backward"] + len(grad)))

    network.register_forward_hook(hook)
    method = create_method(label, ThreatModel("linf", 0.2))
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    for _ in range(method.replays):
        method.step(model, x, y).loss.backward()
    passes = method.passes()
    assert counts["forward"] / 6 == passes.input_gradient + passes.weight_update + passes.forward_only
    assert counts["backward"] / 6 == passes.total  # GradAlign's double backprop reaches the network once more
    assert passes.total == {"standard": 1, "pgd_at": 8, "fgsm_rs": 2, "n_fgsm": 2, "free": 4, "trades": 9,
                            "mart": 9, "dummy": 9, "grad_align": 4}[label]


def test_the_run_records_its_cost_and_the_probe_changes_nothing(tmp_path):
    kw = dict(method="fgsm_rs", eps=0.2, epochs=2, train_size=128, val_size=40, test_size=40, batch_size=32,
              val_steps=2, eval_attacks=["pgd"], eval_steps=2, guard="off", plot=False)
    trainers, records = [], []
    for n in (3, 0):  # each built right before its fit: the global random stream runs from the seed through the run
        trainers.append(Trainer(TrainConfig(**kw, cost_probe=n, out=str(tmp_path / str(n))), progress=False))
        records.append(trainers[-1].fit())
    probed, plain = records
    (setting,) = probed.cost["settings"]
    assert setting["setting"] == "fgsm_rs" and setting["epochs"] == 2 and setting["passes"]["total"] == 2
    assert setting["batches"] == 3 and setting["batch_size"] == 32 and setting["method_seconds"] > 0
    assert setting["spread"][0] <= setting["wall_ratio"] <= setting["spread"][1]
    assert probed.cost["wall_ratio"] == setting["wall_ratio"] and probed.cost["passes"] == 2
    assert "wall_ratio" not in plain.cost["settings"][0] and plain.cost["passes"] == 2
    # the probe runs on copies and puts the random state back: the model and the test numbers are as without it
    assert probed.test.to_dict() == plain.test.to_dict()
    a, b = (t.model.state_dict() for t in trainers)
    assert all(torch.equal(a[k], b[k]) for k in a)
