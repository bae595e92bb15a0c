"""One strict boundary: every option declared once, every flag derived from it, nothing dropped silently;
one results schema, written and read by one module; every suite and every schedule exercised."""
from __future__ import annotations

import dataclasses
import json

import pytest

from armor import ThreatModel, TrainConfig, UserError, catalog
from armor.attacks import SUITES
from armor.cli import build_parser, main
from armor.config import EvalConfig, fields_of, help_text
from armor.io import read_jsonl
from armor.methods import METHODS
from armor.results import (RECORDS, SCHEMA_VERSION, AttackResult, Candidate, Comparison, EpsSweep, Evaluation,
                           EvaluationRecord, FiguresRecord, SweepPoint, SweepRecord, TrainingRecord,
                           autoattack_allowed, read_record)
from armor.schedules import SCHEDULES, lr_factor
from armor.training import Trainer


# -- the catalog: the built-in names, known without torch ---------------------------------------------------------
def _registered(kind):
    """What armor's own modules register or define for ``kind`` (every built-in module imported)."""
    import importlib

    from armor.data.augment import PRESETS

    for package in ("armor.models", "armor.methods", "armor.attacks", "armor.schedules", "armor.losses"):
        importlib.import_module(package)
    if kind == "suite":
        return list(SUITES)
    if kind == "augmentation":
        return list(PRESETS)
    module, attribute = catalog.REGISTRIES[kind]
    return getattr(importlib.import_module(module), attribute).names()


@pytest.mark.parametrize("kind", list(catalog.BUILT_IN))
def test_the_catalog_names_exactly_what_armor_registers(kind):
    assert list(catalog.BUILT_IN[kind]) == _registered(kind)
    assert catalog.names(kind) == _registered(kind)


def test_a_name_registered_at_run_time_is_accepted_by_the_config(tmp_path):
    from armor.models import MODELS, create_model

    name = "catalog_test_mlp"
    MODELS.register(name)(lambda input_shape, num_classes, **kw: create_model("mlp", input_shape, num_classes))
    try:
        assert name in catalog.names("model") and name not in catalog.BUILT_IN["model"]
        assert TrainConfig(model=name).model == name
    finally:
        MODELS._entries.pop(name)
    with pytest.raises(UserError, match=f"unknown model '{name}'"):
        TrainConfig(model=name)


# -- every field: one definition → its flag, its help, its check --------------------------------------------------
def _actions(command):
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    actions = {}
    for a in sub._actions:  # the option's own flag first (a --no-NAME alias shares its dest)
        actions.setdefault(a.dest, a)
    return actions


#: a valid value for every field whose default is None (the others are checked with their own default)
SAMPLES = {"data_dir": "data", "train_size": "100", "val_size": "20", "test_size": "30", "eps": "8/255",
           "steps": "3", "step_size": "2/255", "clean_weight": "0.5", "beta": "3", "replays": "2",
           "val_subset": "10", "test_subset": "10", "out": "runs/x", "checkpoint": "best.pt", "n": "10",
           "norm": "l2", "suite": "quick", "attack": ["pgd"], "restarts": "2", "queries": "50", "loss": "dlr",
           "bpda": ["layer"], "sweep": ["0.1", "8/255"], "image_size": "32", "model": "net.py:Net", "weights": "w.pt",
           "mean": ["0.5"], "std": ["0.25"], "logits_key": "logits", "num_classes": "10", "immutable": ["0", "3"],
           "data": "digits"}


@pytest.mark.parametrize("cls,command", [(TrainConfig, "train"), (EvalConfig, "eval"), (TrainConfig, "sweep")])
def test_every_config_field_has_a_flag_whose_help_comes_from_its_declaration(cls, command):
    actions = _actions(command)
    for f in fields_of(cls):
        assert f.name in actions, f"{cls.__name__}.{f.name} has no --{f.name.replace('_', '-')} flag"
        action = actions[f.name]
        assert action.option_strings[0] == "--" + f.name.replace("_", "-")
        assert str(action.help) == help_text(f).replace("%", "%%")  # the one definition, not a copy
        assert f.metadata["help"] in help_text(f) and action.default is None  # unset flags never reach the config


def test_every_flag_reaches_its_config_field():
    """A value given as a flag ends up in the config, parsed by the field's own check."""
    parser = build_parser("train")
    for f in fields_of(TrainConfig):
        kind = f.metadata["check"].kind
        if kind == "bool":
            argv, expected = [f"--no-{f.name.replace('_', '-')}" if f.default else f"--{f.name.replace('_', '-')}"], \
                not f.default
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            value = default if default not in (None, [], {}) else SAMPLES.get(f.name)
            value = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            if kind == "mapping":
                value = ["width=8"] if f.name == "model_options" else ["clamp_start=false"]
            if f.name == "eval_attacks":
                value = ["fgsm", "pgd"]
            argv, expected = [f"--{f.name.replace('_', '-')}", *value], None
        args = parser.parse_args(["train", *argv])
        given = getattr(args, f.name)
        assert given is not None, f.name
        parsed = f.metadata["check"].parse(f.name, given)
        if expected is not None:
            assert parsed is expected, f.name


# -- nothing dropped: options that do not apply are errors -------------------------------------------------------
@pytest.mark.parametrize("kw,needle", [
    (dict(method="trades", clean_weight=0.5), "method 'trades' has no option 'clean_weight'"),
    (dict(method="free", steps=10), "method 'free' has no option 'steps'"),
    (dict(method="pgd_at", replays=2), "method 'pgd_at' has no option 'replays'"),
    (dict(method="standard", beta=1.0), "method 'standard' has no option 'beta'"),
    (dict(method="fgsm_rs", steps=3), "method 'fgsm_rs' has no option 'steps'"),
    (dict(method="dummy", method_options={"w_advv": 0.5}), "has no option 'w_advv' (did you mean 'w_adv'?)"),
    (dict(method="fgsm_rs", method_options={"steps": 2}), "'steps' is a config key of its own"),
    (dict(method="pgd_at", optimizer="adam", momentum=0.5), "momentum applies to optimizer sgd only"),
    (dict(method="standard", eps_warmup=2), "method 'standard' has no inner attack"),
    (dict(eval_attacks=["fgsm"], eval_steps=50), "eval_steps applies to the final-test attacks that take steps"),
    (dict(test_subset=10), "test_subset applies only with test_every"),
    (dict(methd="pgd_at"), "unknown config key 'methd' (did you mean 'method'?)"),
    (dict(method="pgd-at"), "unknown method 'pgd-at' (did you mean 'pgd_at'?)"),
])
def test_an_option_that_does_not_apply_is_an_error(kw, needle):
    with pytest.raises(UserError) as err:
        TrainConfig.from_dict(kw)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("method", METHODS.names())
def test_defaults_are_never_errors_and_reach_only_the_method_that_takes_them(method):
    cfg = TrainConfig(method=method)
    assert cfg.method_kwargs() == {}  # nothing set: every method option is the method's own default
    for key in ("steps", "beta", "replays", "clean_weight"):
        if METHODS.takes(method, key):
            value = {"steps": 3, "beta": 2.0, "replays": 2, "clean_weight": 0.25}[key]
            assert TrainConfig(method=method, **{key: value}).method_kwargs() == {key: value}


def test_the_config_parses_the_threat_once():
    cfg = TrainConfig(eps="8/255", norm="Linf")
    assert cfg.threat is cfg.threat and cfg.threat == ThreatModel("linf", 8 / 255) and cfg.eps == 8 / 255


# -- the results schema -----------------------------------------------------------------------------------------------
def _evaluation(mode="independent"):
    masks = [True, False, True, True] if mode == "independent" else None
    return Evaluation(mode, 5, 4, 2, {"pgd-20": AttackResult("pgd-20", "PGD(...)", 3 if masks else 2, 2, 88, masks)},
                      ["clean", "pgd-20", None, "pgd-20", None][:5], 93, 0)


EXAMPLES = {
    "training_run": lambda: TrainingRecord("runs/x", "digits", "small_cnn", "pgd_at", {"norm": "linf", "eps": 0.2}, 3,
                                           4, 4, 0, None, {"best": Candidate("best.pt", 3, _evaluation())}, 1.5),
    "evaluation": lambda: EvaluationRecord({"checkpoint": "best.pt"}, "digits", "test", "small_cnn",
                                           {"norm": "linf", "eps": 0.2}, "standard", {"pgd-20": "PGD"},
                                           {"steps": 10}, ["apgd-ce: steps 10 < 100"], 0, {"eot": 1, "bpda": None},
                                           _evaluation("ensemble"), sweep=EpsSweep("linf", 5, [{"eps": 0.1}])),
    "sweep": lambda: SweepRecord("beta", {"norm": "linf", "eps": 0.2}, "digits", "small_cnn", {},
                                 [SweepPoint(6.0, "trades", 90.0, 50.0, {"pgd-20": 52.0}, 3, None, "runs/b")], [0]),
    "eps_sweep": lambda: EpsSweep("l2", 5, [{"eps": 0.5, "clean_acc": 80.0, "worst_case_acc": 40.0}], ["pgd-20"]),
    "figures": lambda: FiguresRecord("best.pt", 3, "digits", "small_cnn", "pgd_at", {"norm": "linf", "eps": 0.2},
                                     "PGD", 0, [0, 1], "test", "gradient", "figures.npz"),
    "comparison": lambda: Comparison("demo", {"norm": "linf", "eps": 0.2}, {"a": _evaluation()}, {"a": 1.0}),
}


@pytest.mark.parametrize("kind", list(RECORDS))
def test_every_record_kind_round_trips_through_the_one_module(kind, tmp_path):
    record = EXAMPLES[kind]()  # a new record kind needs an example here
    path = record.write(tmp_path / f"{kind}.json")
    raw = json.loads(path.read_text())
    assert raw["kind"] == kind and raw["schema_version"] == SCHEMA_VERSION
    back = read_record(path)
    assert type(back) is RECORDS[kind] and back.to_dict() == record.to_dict()


def test_an_evaluation_says_which_numbers_it_holds_and_never_mixes_them():
    alone, suite = _evaluation("independent"), _evaluation("ensemble")
    assert "standalone_acc" in alone.to_dict()["attacks"]["pgd-20"]
    assert "cumulative_acc" not in alone.to_dict()["attacks"]["pgd-20"]
    assert "cumulative_acc" in suite.to_dict()["attacks"]["pgd-20"]
    assert alone.standalone_acc("pgd-20") == 60.0 and suite.cumulative_acc("pgd-20") == 40.0
    with pytest.raises(ValueError):
        alone.cumulative_acc("pgd-20")


def test_records_are_read_by_kind_never_guessed_from_keys(tmp_path):
    (tmp_path / "lookalike.json").write_text(json.dumps({"result": {"clean_acc": 50.0}, "suite": "standard"}))
    with pytest.raises(UserError, match="is not an armor result record"):
        read_record(tmp_path / "lookalike.json")
    old = EXAMPLES["sweep"]().to_dict()
    (tmp_path / "old.json").write_text(json.dumps({"kind": "sweep", "schema_version": 0, **old}))
    with pytest.raises(UserError, match="schema version 0"):
        read_record(tmp_path / "old.json")
    EXAMPLES["figures"]().write(tmp_path / "f.json")
    with pytest.raises(UserError, match="is a figures record, not a training_run record"):
        read_record(tmp_path / "f.json", TrainingRecord)


def test_only_the_full_autoattack_suite_may_claim_autoattack_acc():
    assert autoattack_allowed("autoattack", []) and not autoattack_allowed("autoattack", ["square: queries 500"])
    for suite in SUITES:
        assert autoattack_allowed(suite, []) is (suite == "autoattack")
    entry = EXAMPLES["evaluation"]().robustbench()
    assert "autoattack_acc" not in entry and entry["reduced_budget"] == ["apgd-ce: steps 10 < 100"]


@pytest.mark.parametrize("suite", list(SUITES))
def test_every_suite_breaks_an_undefended_model_and_writes_no_autoattack_acc(suite, standard_run, tmp_path):
    from armor.eval.run import evaluate_checkpoint

    options = {"steps": 5} if suite != "quick" else {"steps": 10}
    if any(name == "square" for _, name, _ in SUITES[suite]):
        options["queries"] = 100
    out = tmp_path / "e.json"
    record = evaluate_checkpoint(standard_run["out"] / "best.pt", suite=suite, n=40, checks=False, out=str(out),
                                 **options)
    assert record.suite == suite and len(record.result.labels) == len(SUITES[suite])
    assert record.result.clean_acc > 80 and record.result.worst_case_acc <= 10
    assert record.reduced  # every cut budget is stated in the record
    assert "autoattack_acc" not in out.read_text()


# -- every schedule is the LR the trainer uses ----------------------------------------------------------------------
@pytest.mark.parametrize("schedule", SCHEDULES.names())
def test_every_schedule_sets_the_trainers_learning_rate(schedule, tmp_path):
    cfg = TrainConfig(method="standard", schedule=schedule, epochs=3, lr=0.01, batch_size=50, train_size=100,
                      val_size=20, test_size=20, eval_attacks=["fgsm"], out=str(tmp_path / "r"), plot=False)
    Trainer(cfg, progress=False).fit()
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    batches = 100 // 50
    for r in records:  # the logged LR is the one of the epoch's last batch
        progress = (r["epoch"] - 1 + (batches - 1) / batches) / cfg.epochs
        assert r["lr"] == pytest.approx(cfg.lr * lr_factor(schedule, progress))
    assert all(0.0 <= lr_factor(schedule, p / 20) <= 1.0 for p in range(21))


# -- the command line -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["train", "--method", "trades", "--clean-weight", "0.5"], "method 'trades' has no option 'clean_weight'"),
    (["train", "--method", "free", "--steps", "10"], "method 'free' has no option 'steps'"),
    (["train", "--methd", "pgd_at"], "unrecognized arguments: --methd"),
    (["eval", "--checkpoint", "x.pt", "--attack", "fgsm", "--step-size", "0.01"],
     "step_size applies to attacks pgd; the attack list has none of them: fgsm"),
    (["eval", "--checkpoint", "x.pt", "--attack", "fgsm", "--steps", "10"], "steps applies to attacks"),
    (["eval", "--checkpoint", "x.pt", "--attack", "pgd", "--queries", "10"], "queries applies to attacks square"),
    (["eval", "--checkpoint", "x.pt", "--suite", "standard", "--restarts", "3"], "restarts applies to an attack list"),
    (["eval", "--checkpoint", "x.pt", "--suite", "quick", "--queries", "10"], "suite 'quick' has no attack with"),
    (["eval", "--checkpoint", "x.pt", "--suite", "quick", "--attack", "pgd"], "either --suite or --attack"),
])
def test_inapplicable_flags_exit_2_with_one_line(argv, needle, capsys, tmp_path):
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "run")]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert err[0].startswith("armor: error: ") and err[0].count("error:") == 1  # one prefix
    assert not (tmp_path / "run").exists()
