"""The ``armor`` command line. User mistakes → one line on stderr (``armor: error: ...``), exit 2.

The flags of ``train``, ``sweep`` and ``eval`` are derived from the config declarations
(:class:`armor.config.TrainConfig`, :class:`armor.config.EvalConfig`): one definition per option gives its
flag, its help and its check. Only the chosen command's parser is built, help texts that list registry
contents are rendered only when shown, and nothing here imports torch before a command runs, so
``armor --version``, ``--help`` and argument errors answer quickly.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .budgets import norm_symbol
from .errors import UserError, command_line, did_you_mean

log = logging.getLogger("armor")


class _Parser(argparse.ArgumentParser):
    #: the command being parsed, for the hint in error messages
    command: Optional[str] = None

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too by default)
        command = self.prog.split(" ", 1)[1] if " " in self.prog else self.command
        hint = ""
        if message.startswith("unrecognized arguments: "):
            flag = message.split(": ", 1)[1].split()[0]
            known = [o for parser in [self, *self._subparsers_of()] for a in parser._actions for o in a.option_strings]
            hint = did_you_mean(flag, known)
        raise UserError(f"{message}{hint} (see armor {command + ' ' if command else ''}--help)")

    def _subparsers_of(self) -> List[argparse.ArgumentParser]:
        subs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        return [p for a in subs for name, p in a.choices.items() if name == self.command]


class _LazyHelp:
    """Help text computed only when argparse shows it (it may ask a registry, which imports torch)."""

    def __init__(self, make: Callable[[], str]):
        self._make, self._text = make, None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make().replace("%", "%%")
        return self._text

    def __mod__(self, params: Any) -> str:
        return str(self) % params

    def strip(self) -> str:
        return str(self).strip()

    def __bool__(self) -> bool:
        return True

    def __contains__(self, item: str) -> bool:
        return item in str(self)


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple = ()) -> List[str]:
    """One flag per declared field of ``cls`` (grouped as the config groups them); returns the field names.
    Every default is ``None`` = "not given", so only what the user typed reaches the config."""
    from .config import flag_groups, help_text

    names: List[str] = []
    for title, group_fields in flag_groups(cls):
        group = parser.add_argument_group(title)
        for f in group_fields:
            if f.name in skip:
                continue
            kind = f.metadata["check"].kind
            kw: Dict[str, Any] = {"dest": f.name, "default": None,
                                  "help": _LazyHelp(lambda f=f: help_text(f))}
            if kind == "bool":
                kw["action"] = argparse.BooleanOptionalAction
            elif kind == "switch":
                kw.update(nargs="?", const=True, metavar="auto|true|false")
            elif kind in ("list", "mapping"):
                kw.update(nargs="+", metavar="KEY=VALUE" if kind == "mapping" else f.name.upper())
            else:
                kw["metavar"] = f.name.upper()
            flag = dict(f.metadata["flag"])
            negative = flag.pop("negative", None)  # --no-NAME: the value that turns the option off
            kw.update(flag)
            group.add_argument("--" + f.name.replace("_", "-"), **kw)
            if negative is not None:
                group.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_const",
                                   const=negative, help=f"the same as --{f.name.replace('_', '-')} {negative}")
            names.append(f.name)
    return names


def _given(args: argparse.Namespace, names: List[str]) -> Dict[str, Any]:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


# -- the commands' parsers ---------------------------------------------------------------------------------------
def _train_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of config keys (see configs/); flags override it")
    p.set_defaults(config_fields=add_config_flags(p, _train_config()))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def _sweep_parser(p: argparse.ArgumentParser) -> None:
    from .config import SWEEP_PARAMS

    p.add_argument("--param", required=True, help="the config key to vary: " + ", ".join(SWEEP_PARAMS))
    p.add_argument("--values", required=True, nargs="+", help="the values to train with")
    p.add_argument("--config", help="YAML file of config keys (see configs/); flags override it")
    p.set_defaults(config_fields=add_config_flags(p, _train_config()))
    p.add_argument("--overwrite", action="store_true", help="replace existing runs of the sweep")
    p.add_argument("--no-pareto-plot", dest="pareto_plot", action="store_false", help="skip pareto.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def _eval_parser(p: argparse.ArgumentParser) -> None:
    from .config import EvalConfig

    p.set_defaults(config_fields=add_config_flags(p, EvalConfig))


#: the evaluation options that make no sense for `armor attack` (it writes one attack's examples)
_NOT_FOR_ATTACK = ("suite", "checks", "check_n", "sweep", "corruptions")


def _attack_parser(p: argparse.ArgumentParser) -> None:
    from .config import EvalConfig

    p.set_defaults(config_fields=add_config_flags(p, EvalConfig, skip=_NOT_FOR_ATTACK))


def _demo_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="folder for the two runs (default runs/demo)")
    p.add_argument("--epochs", default="30", help="epochs per model (default 30)")
    p.add_argument("--seed", default="0", help="random seed")


def _bench_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="small_cnn", help="registered model (default small_cnn)")
    p.add_argument("--dataset", default="digits", help="real batch from this dataset (default digits)")
    p.add_argument("--input-shape", dest="input_shape", default=None,
                   help="C,H,W of synthetic data instead of a dataset, e.g. 3,32,32")
    p.add_argument("--batch", default="256", help="batch size (default 256)")
    p.add_argument("--steps", default="10", help="PGD steps k (default 10)")
    p.add_argument("--eps", default=None, help="L∞ budget (default: the dataset's usual one; 8/255 synthetic)")
    p.add_argument("--repeats", default="10", help="timed rounds; the median is reported (default 10)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--amp", nargs="?", const="bf16", default="off", metavar="MODE",
                   help="autocast: off (default), auto, bf16, fp16; --amp alone = bf16")
    p.add_argument("--channels-last", dest="channels_last", action="store_true", help="channels_last format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-third-party", dest="third_party", action="store_false",
                   help="skip torchattacks and ART")
    p.add_argument("--trainers", action="store_true",
                   help="instead: ART's AdversarialTrainerMadryPGD vs armor's PGD-AT for --epochs on digits")
    p.add_argument("--epochs", default="10", help="epochs for --trainers (default 10)")
    p.add_argument("--json", default=None, help="also write the result dict to this JSON file")


def _report_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (armor train --out ...)")
    p.add_argument("-o", "--out", default=None, help="HTML file to write (default report.html; with --markdown "
                                                      "only when given); its plots are written beside it")
    p.add_argument("--markdown", action="store_true", help="print a README-ready Markdown accuracy table")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--compute-figures", dest="compute_figures", action="store_true",
                   help="first run `armor figures` on each run (example images and saliency from best.pt, "
                        "stored as figures.npz/figures.json in the run folder)")
    _figures_options(p)


def _figures_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--figures-n", dest="figures_n", default="8", help="test images in the figures (default 8)")
    p.add_argument("--figures-steps", dest="figures_steps", default="20",
                   help="PGD steps of the adversarial examples (default 20)")
    p.add_argument("--device", default="auto", help="device for the figures: auto, cpu, cuda, mps")


def _figures_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders holding best.pt")
    _figures_options(p)


def _export_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="RUN/best.pt, RUN/last.pt, RUN/best_ema.pt, ...")
    p.add_argument("--out", default=None, help="output file (default: the checkpoint's name with .safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _train_config() -> type:
    from .config import TrainConfig

    return TrainConfig


#: command → (one-line help, description, parser builder)
COMMANDS: Dict[str, tuple] = {
    "train": ("train a model (standard or adversarial) and evaluate it",
              "Train one run. Flags override the --config YAML file; every option is listed once below.",
              _train_parser),
    "eval": ("evaluate a checkpoint under attack (worst case, sanity checks)",
             "Clean and robust accuracy of a checkpoint on its dataset's test split: by default the standard suite "
             "(APGD-CE, APGD-T, Square) as a worst case, then gradient-masking sanity checks. Interrupted runs "
             "resume from <out>.state.json.", _eval_parser),
    "sweep": ("train one run per value of a parameter; clean vs robust table + Pareto plot",
              "Grid over one parameter (e.g. --param beta --values 0.1 1 6 --method trades). Writes OUT/sweep.json, "
              "sweep.csv, sweep.md and pareto.png; one run per value in OUT/<param>=<value>/. Other flags as for "
              "train.", _sweep_parser),
    "report": ("one self-contained HTML report (or a Markdown table) from run folders",
               "Render the runs' records (config, learning curves, accuracy per attack and worst case, ε sweeps, "
               "corruptions, sanity checks, trade-off, example images, saliency) into one HTML file with embedded "
               "images. Rendering never runs a model and never writes into the run folders.", _report_parser),
    "figures": ("compute a run's example images and input-gradient saliency once (for the report)",
                "Run each run's best.pt once: PGD examples and input gradients of the first test image of each "
                "class, stored as figures.npz/figures.json in the run folder.", _figures_parser),
    "attack": ("write the adversarial examples of one attack (.npz + a PNG grid) for a model and data",
               "Run --attack NAME on a checkpoint or on your own --model and save, per example, the clean and "
               "adversarial inputs, label, both predictions and the perturbation's norm to --out (an .npz), plus a "
               "PNG grid of the first examples for image data: to inspect them, transfer them to another model or "
               "hand them to another tool.", _attack_parser),
    "export": ("write a checkpoint's weights as .safetensors (no pickle, no code)",
               "Export the model weights of an armor checkpoint to the safetensors format; the run's config and "
               "model description go into the file's metadata.", _export_parser),
    "demo": ("standard vs PGD-AT on the embedded digits data, as a table",
             "Train a standard and a PGD-AT SmallCNN on digits (L∞ ε=0.2) and compare.", _demo_parser),
    "bench": ("time clean, PGD-AT and third-party steps side by side",
              "Median times of a clean training step, armor's PGD-k AT step, a minimal hand-written AT step, and PGD "
              "from armor / torchattacks / ART, on one model and batch, with ratios to the hand loop and to the "
              "(k+1)× clean-step floor.", _bench_parser),
    "list": ("list the registered models, attacks, methods, suites and schedules with their options",
             "Every registry entry and the options it takes.", lambda p: None),
}


#: the commands that run no torch computation (every other command takes ``--threads``)
NO_THREADS = ("list", "export")


def _threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", default=None, metavar="N",
                   help="CPU threads for torch (default: the cores this process may use, or OMP_NUM_THREADS when "
                        "set; OpenMP threads wait passively unless OMP_WAIT_POLICY is set)")


def build_parser(command: Optional[str] = None) -> _Parser:
    """The ``armor`` parser; only ``command``'s sub-parser gets its flags (the others are listed, not built)."""
    from .version import __version__

    parser = _Parser(prog="armor", description="Adversarial training and honest robustness evaluation.",
                     allow_abbrev=False)
    parser.command = command
    parser.add_argument("--version", action="version", version=f"armor {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name, (short, description, build) in COMMANDS.items():
        p = sub.add_parser(name, help=short, description=description, allow_abbrev=False)
        if name == command:
            build(p)
            if name not in NO_THREADS:
                _threads_flag(p)
    return parser


def _command_of(argv: List[str]) -> Optional[str]:
    return next((a for a in argv if a in COMMANDS), None)


def _int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise UserError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return number


# -- train and sweep -------------------------------------------------------------------------------------------------
def train_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The config values the user gave: the --config file, then the flags over it (one builder for train and sweep)."""
    from .config import read_yaml

    values: Dict[str, Any] = read_yaml(args.config) if args.config else {}
    values.update(_given(args, args.config_fields))
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig

    values = train_overrides(args)
    if not args.resume:
        cfg = TrainConfig.from_dict(values)  # a mistake in the options is reported before torch is imported
    from .api import train as armor_train
    from .checkpoints import saved_config
    from .io import load_checkpoint
    from .reports import accuracy_rows, format_table

    if args.resume:
        if not values.get("out"):
            raise UserError("--resume needs the run folder: pass --out RUN")
        # the run's own config, with what was given now checked against it (Trainer: resumed_config)
        given = {k: v for k, v in values.items() if k != "out"}
        last = Path(values["out"]) / "last.pt"
        base = saved_config(load_checkpoint(last)).to_dict() if last.is_file() else {}
        cfg = TrainConfig.from_dict({**base, **values}) if base else TrainConfig.from_dict(values)
        run = armor_train(cfg, resume=True, overwrite=args.overwrite, progress=None if not args.quiet else False,
                          given=given)
    else:
        run = armor_train(cfg, overwrite=args.overwrite, progress=None if not args.quiet else False)
    record = run.record
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    named = {f"{record.method} (best epoch {record.best_epoch})": record.test}
    for name, cand in record.candidates.items():
        if name != "best":
            named[f"{name} (best epoch {cand.epoch})"] = cand.test
    header, rows = accuracy_rows(named)
    print(format_table(header, rows))
    for event in record.guard_events:
        if event.get("action") == "recovered":
            back = event.get("rolled_back_to_epoch")
            print(f"guard: catastrophic overfitting at epoch {event['epoch']} (monitor PGD {event['monitor_acc']:.1f}%)"
                  f"; {'rolled back to epoch ' + str(back) if back else 'no checkpoint to roll back to'}, "
                  f"trained on with {event['switched_to']}")
    if record.stop_reason:
        print(f"stopped early: {record.stop_reason}")
    cost = record.cost or {}
    if "passes" in cost:
        wall = f", {cost['wall_ratio']:.2f}× its wall time (measured side by side)" if "wall_ratio" in cost else ""
        print(f"cost: {cost['passes']:g} passes per example, standard training = 1{wall}")
    print(f"results: {record.run}/results.json")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .reports import format_table
    from .reports.sweep import sweep_rows, sweep_warnings, write_sweep
    from .training.sweep import run_sweep

    base = train_overrides(args)
    out = base.pop("out", None) or f"runs/sweep_{args.param}"
    sweep = run_sweep(base, args.param, args.values, out, overwrite=args.overwrite,
                      progress=None if not args.quiet else False)
    paths = write_sweep(sweep, out, plot=args.pareto_plot)
    header, rows = sweep_rows(sweep)
    print(format_table(header, rows))
    for line in sweep_warnings(sweep):
        print(line)
    print("results: " + ", ".join(paths.values()))
    return 0


# -- eval --------------------------------------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from .config import EvalConfig

    options = EvalConfig.from_dict(_given(args, args.config_fields)).check_source()
    from .eval.checks import format_checks
    from .eval.run import evaluate_checkpoint, output_path
    from .reports import accuracy_rows, format_table

    record = evaluate_checkpoint(config=options)
    if os.environ.get("RANK", "0") != "0":
        return 0  # torchrun: rank 0 reports
    res = record.result
    name = Path(options.checkpoint or options.weights or options.model).name
    header, rows = accuracy_rows({name: res}, mark_cumulative=True)
    suite = f", suite {record.suite}" if record.suite else ""
    threat = f"{norm_symbol(record.threat['norm'])} ε={record.threat['eps']:.4g}"
    print(f"{record.dataset} {record.split} ({res.n} examples), {threat}{suite}")
    print(format_table(header, rows))
    for note in record.substitutions:
        print(f"note: {note}")
    if res.mode == "ensemble":
        print("† after this attack and every one before it; broken by: "
              + ", ".join(f"{k} {v}" for k, v in res.broken_by.items()) + f"; forward passes {res.forward_passes}")
        cut = [r for r in record.reduced if r not in record.substitutions]
        print(f"worst case over the {record.suite} suite: {res.worst_case_acc:.1f} %"
              + (f" (reduced budget: {'; '.join(cut)})" if cut else ""))
        from .attacks.suites import loose_bound_note

        loose = loose_bound_note(record.suite, res)
        if loose:
            print(f"note: {loose}")
    if res.draws > 1:
        print(f"randomised model: every point classified {res.draws} times; accuracies are means over the draws "
              f"(worst case on a single draw {res.single_draw_acc:.1f} %, right on every draw "
              f"{res.all_draws_acc:.1f} %)")
    if record.checks is not None:
        print(format_checks(record.checks))
    else:
        print("no sanity checks (--checks none): nothing looked for gradient masking; --checks quick or standard "
              "runs them")
    if record.corruptions is not None:
        cor = record.corruptions
        print("corruptions (mean over 5 severities): " + ", ".join(
            f"{k} {v['mean']:.1f}" for k, v in cor["corruptions"].items()) + f"; mean {cor['mean_corrupted_acc']:.1f}")
        if cor.get("mce"):
            m, num = cor["mce"], lambda v: "—" if v is None else f"{v:.1f}"
            print(f"mCE {num(m['mce'])} % (relative {num(m.get('relative_mce'))} %; 100 = the reference "
                  f"{m['reference']})")
    path = output_path(options)
    if record.sweep is not None:
        stem = path.with_name(path.stem + "_sweep")
        print(f"sweep: {stem}.json, {stem}.csv")
    print(f"results: {path}")
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from .config import EvalConfig
    from .eval.adversarial import write_adversarial

    values = _given(args, args.config_fields)
    out = values.pop("out", None)
    options = EvalConfig.from_dict({**values, "checks": "none"}).check_source()
    paths = write_adversarial(options, out)
    for path in paths:
        print(f"written: {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoints import spec_of
    from .io import export_safetensors, load_checkpoint

    state = load_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".safetensors")
    if out.exists() and not args.overwrite:
        raise UserError(f"{str(out)!r} already exists; pass --overwrite to replace it or choose another --out")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist")
    meta = {"config": state["config"], "dataset": state["dataset"], "model_spec": spec_of(state).to_dict(),
            "epoch": state["epoch"], "armor_version": state.get("armor_version")}
    try:
        export_safetensors(state["model"], out, meta)
    except OSError as exc:
        raise UserError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    print(f"weights of {args.checkpoint} (epoch {state['epoch']}): {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(run_demo(out=args.out, epochs=_int(args.epochs, "epochs"), seed=_int(args.seed, "seed", 0)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import compare_trainers, format_bench, format_trainers, run_bench
    from .config import parse_amp
    from .io import write_json
    from .threat import parse_eps

    if args.trainers:
        result = compare_trainers(epochs=_int(args.epochs, "epochs"), steps=_int(args.steps, "steps"))
        print(format_trainers(result))
    else:
        shape = None
        if args.input_shape is not None:
            parts = str(args.input_shape).split(",")
            if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
                raise UserError(f"input_shape must be C,H,W of positive integers such as 3,32,32, "
                                f"got {args.input_shape!r}")
            shape = tuple(int(p) for p in parts)
        from .models import MODELS

        MODELS.get(args.model)
        result = run_bench(model=args.model, dataset=args.dataset, input_shape=shape, batch=_int(args.batch, "batch"),
                           steps=_int(args.steps, "steps"), eps=None if args.eps is None else parse_eps(args.eps),
                           repeats=_int(args.repeats, "repeats"), device=args.device, amp=parse_amp("amp", args.amp),
                           channels_last=args.channels_last, compile=args.compile, third_party=args.third_party)
        print(format_bench(result))
    if args.json:
        write_json(args.json, result)
    return 0


def _figures(args: argparse.Namespace) -> None:
    from .eval.figures import compute_figures

    n, steps = _int(args.figures_n, "figures_n"), _int(args.figures_steps, "figures_steps")
    for run in args.runs:
        compute_figures(run, n=n, steps=steps, device=args.device)


def _check_runs(runs: List[str]) -> None:
    for run in runs:  # every mistake before anything is computed or written
        if not Path(run).is_dir():
            raise UserError(f"run folder {run!r} does not exist or is not a folder")


def cmd_figures(args: argparse.Namespace) -> int:
    _check_runs(args.runs)
    _figures(args)
    for run in args.runs:
        print(f"figures: {Path(run) / 'figures.npz'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .reports.html import load_runs, markdown_table, render_html

    _check_runs(args.runs)
    out = args.out if args.out is not None else (None if args.markdown else "report.html")
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise UserError(f"cannot write report {out!r}: its folder does not exist")
    if args.compute_figures:  # a step before rendering; the renderer itself never writes into run folders
        _figures(args)
    runs = load_runs(args.runs)
    if args.markdown:
        print(markdown_table(runs))
    if out is not None:
        path = render_html(runs, out, title=args.title)
        print(f"report: {path}", file=sys.stderr if args.markdown else sys.stdout)
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    from .attacks import ATTACKS, SUITES
    from .methods import METHODS
    from .models import MODELS
    from .schedules import SCHEDULES

    def entries(registry) -> str:
        lines = []
        for name in registry.names():
            opts = ", ".join(f"{k}={p.default!r}" if p.default is not p.empty else k
                             for k, p in registry.options(name).items())
            lines.append(f"  {name}" + (f" ({opts})" if opts else ""))
        return "\n".join(lines)

    for title, registry in (("models", MODELS), ("attacks", ATTACKS), ("methods", METHODS)):
        print(f"{title}:\n{entries(registry)}")
    print("suites: " + ", ".join(SUITES))
    print("schedules: " + ", ".join(SCHEDULES.names()))
    return 0


HANDLERS = {"train": cmd_train, "sweep": cmd_sweep, "eval": cmd_eval, "attack": cmd_attack, "export": cmd_export,
            "demo": cmd_demo,
            "bench": cmd_bench, "report": cmd_report, "figures": cmd_figures, "list": cmd_list}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    with command_line():  # messages name command-line flags (Python callers see keyword arguments)
        return _main(argv)


def _with_threads(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``handler`` with torch on ``--threads`` threads (default: the cores this process may use); the count
    is process-wide, so it is put back afterwards for library callers of :func:`main`."""
    from . import threads

    count = threads.parse_threads(args.threads)
    if "torch" not in sys.modules:  # a fresh process (the command line): torch takes the count when it starts
        threads.use(count)
        return handler(args)
    import torch

    before = torch.get_num_threads()
    threads.use(count)
    try:
        return handler(args)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _main(argv: List[str]) -> int:
    import signal

    from . import interrupts, threads

    threads.prepare()  # before anything imports torch: OpenMP reads its wait policy once, when it starts
    interrupts.clear()
    try:
        signal.signal(signal.SIGTERM, interrupts.on_sigterm)
    except ValueError:  # not the main thread (a library caller running main() in a thread): leave signals alone
        pass
    try:
        parser = build_parser(_command_of(argv))
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if getattr(args, "quiet", False):
            logging.getLogger("armor").setLevel(logging.WARNING)
        if args.command in NO_THREADS:
            return HANDLERS[args.command](args)
        return _with_threads(HANDLERS[args.command], args)
    except UserError as exc:
        print(f"armor: error: {exc}", file=sys.stderr)
        return 2
    except interrupts.Terminated:
        interrupts.clear()
        print("armor: terminated (SIGTERM); finished files are intact", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("armor: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: one line, never a traceback
        where = f" {str(exc.filename)!r}" if getattr(exc, "filename", None) else ""
        print(f"armor: error: cannot write or read{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

