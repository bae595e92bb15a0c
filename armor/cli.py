"""The ``armor`` command line: train, eval, demo, list. User mistakes → one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import UserError

log = logging.getLogger("armor")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too by default)
        raise UserError(f"{self.prog}: {message}")


# flag → config key, for the train command (all read as strings and validated by TrainConfig)
TRAIN_FLAGS = {
    "dataset": "dataset name (digits, mnist, fashion_mnist, cifar10), an .npz path or a CIFAR-10 python folder",
    "data_dir": "folder holding mnist.npz etc. (default $ARMOR_DATA_DIR, ./data, ../shared/data)",
    "train_size": "use a fixed subset of this many training examples",
    "val_size": "held-out validation examples taken from the training set",
    "test_size": "evaluate on a fixed subset of this many test examples",
    "augment": "auto, none, translate, crop_flip, strong",
    "model": "mlp, small_cnn, tiny_cnn, preact_resnet18, wide_resnet",
    "method": "standard, pgd_at, trades, mart, fgsm_rs, free, dummy (see `armor list`)",
    "norm": "linf or l2",
    "eps": "perturbation budget in [0,1] pixel units, e.g. 0.3 or 8/255 (default: the dataset's usual one)",
    "steps": "PGD steps during training",
    "step_size": "PGD step size during training (default 2.5·eps/steps)",
    "clean_weight": "weight w of the clean loss in (1-w)·CE(adv) + w·CE(clean)",
    "beta": "TRADES/MART weight of the robust term (default 6; larger = more robust, less accurate)",
    "replays": "Free AT: replays m of each minibatch (default 4); divide --epochs by m for equal cost",
    "guard": "catastrophic-overfitting guard: auto (stop for fgsm_rs/free), off, stop, rollback",
    "guard_drop": "guard fires when monitor PGD accuracy falls this many points below its best (default 30)",
    "guard_batch": "guard monitor batch size, from the validation split (default 256)",
    "guard_steps": "PGD steps of the guard's monitor attack (default 10)",
    "chance_patience": "stop after this many epochs of training accuracy at chance (default 3, 0 = never)",
    "eps_warmup": "epochs of linear ε ramp-up from 0",
    "epochs": "training epochs",
    "batch_size": "batch size",
    "optimizer": "sgd or adam",
    "lr": "base learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "schedule": "constant, piecewise, cosine, onecycle",
    "val_every": "robust validation every N epochs",
    "val_steps": "PGD steps of the robust validation",
    "best_by": "which validation accuracy picks best.pt: auto, robust, clean",
    "val_subset": "validate on the first N validation examples only (fixed subset)",
    "test_every": "also log test clean/PGD accuracy every N epochs (0 = never)",
    "test_subset": "... on the first N test examples",
    "early_stop_patience": "stop after N validations without a better best.pt (0 = never)",
    "ema_decay": "keep an EMA of the weights (e.g. 0.999) as an extra candidate, best_ema.pt (0 = off)",
    "swa_start": "keep an SWA average of the weights from this epoch on, best_swa.pt (0 = off)",
    "nan_policy": "on a NaN/Inf loss: stop (default) or skip the step",
    "eval_steps": "PGD steps of the final test evaluation",
    "eval_restarts": "PGD restarts of the final test evaluation",
    "seed": "random seed",
    "device": "auto, cpu, cuda, cuda:N, mps",
    "out": "run folder (default runs/<dataset>_<method>)",
}


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of TrainConfig keys (see configs/)")
    for key, text in TRAIN_FLAGS.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, default=None, help=text)
    p.add_argument("--eval-attacks", dest="eval_attacks", nargs="+", default=None,
                   help="attacks of the final test table (fgsm, fgsm_rs, pgd)")


def _build_parser() -> _Parser:
    from . import __version__

    parser = _Parser(prog="armor", description="Adversarial training and honest robustness evaluation.")
    parser.add_argument("--version", action="version", version=f"armor {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (standard or adversarial) and evaluate it",
                       description="Train one run. Flags override the --config YAML file.")
    _add_train_flags(p)
    p.add_argument("--amp", nargs="?", const="bf16", default=None, metavar="MODE",
                   help="mixed precision: auto (bf16 on CUDA, off on CPU; the default), off, bf16, fp16; "
                        "--amp alone = bf16")
    p.add_argument("--channels-last", dest="channels_last", action="store_const", const=True, default=None,
                   help="channels_last memory format (default: on for CNNs on CUDA, off on CPU)")
    p.add_argument("--compile", action="store_const", const=True, default=None,
                   help="torch.compile the model for the training step (slow first epoch)")
    p.add_argument("--sync-bn", dest="sync_bn", action="store_const", const=True, default=None,
                   help="SyncBatchNorm across torchrun processes (CUDA)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    p = sub.add_parser("eval", help="evaluate a checkpoint under attacks (worst case, sanity checks)",
                       description="Clean and robust accuracy of a checkpoint on its dataset's test split: by "
                                   "default the standard suite (APGD-CE, APGD-T, Square) as a worst case, then "
                                   "gradient-masking sanity checks. Interrupted runs resume from <out>.state.json.")
    p.add_argument("--checkpoint", required=True, help="RUN/best.pt or RUN/last.pt")
    p.add_argument("--suite", default=None, help="quick (PGD-20), standard (APGD-CE, APGD-T, Square; the "
                                                   "default), full (standard with more restarts and queries)")
    p.add_argument("--attack", nargs="+", default=None,
                   help="run these attacks instead of a suite, each on every example (fgsm, fgsm_rs, pgd, apgd, "
                        "apgd_t, square)")
    p.add_argument("--steps", default=None, help="steps of gradient attacks (default: 20 for --attack, 100 for "
                                                 "the standard/full suites)")
    p.add_argument("--restarts", default="1", help="random restarts of --attack attacks (default 1)")
    p.add_argument("--step-size", dest="step_size", default=None, help="PGD step size (default 2.5·eps/steps)")
    p.add_argument("--queries", default=None, help="Square query budget per example (default 5000)")
    p.add_argument("--loss", default=None, help="loss of pgd/apgd: ce, or dlr (invariant to rescaled logits)")
    p.add_argument("--eot", default="1", help="adaptive: average each gradient over N forward passes "
                                              "(randomised models)")
    p.add_argument("--bpda", nargs="*", default=None, metavar="LAYER",
                   help="adaptive: straight-through gradients through these layers (names as in "
                        "model.named_modules()); with no names, through every layer marked non_differentiable")
    p.add_argument("--eps", default=None, help="budget (default: the one the model was trained for)")
    p.add_argument("--norm", default=None, help="linf or l2 (default: the training norm)")
    p.add_argument("--sweep", nargs="+", default=None, metavar="EPS",
                   help="also sweep these budgets (e.g. 0.05 0.1 8/255): <out>_sweep.json/.csv/.png")
    p.add_argument("--corruptions", action="store_true",
                   help="also report accuracy under natural corruptions (7 kinds × 5 severities)")
    p.add_argument("--no-checks", dest="checks", action="store_false", help="skip the gradient-masking checks")
    p.add_argument("--check-n", dest="check_n", default="200", help="examples the checks use (default 200)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="which split (default test)")
    p.add_argument("--n", default=None, help="evaluate only the first N examples")
    p.add_argument("--batch-size", dest="batch_size", default="256", help="evaluation batch size")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="where mnist.npz etc. live")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--seed", default="0", help="random seed of the attacks")
    p.add_argument("--out", default=None, help="results JSON (default: eval.json beside the checkpoint)")

    p = sub.add_parser("demo", help="standard vs PGD-AT on the embedded digits data, as a table",
                       description="Train a standard and a PGD-AT SmallCNN on digits (L∞ ε=0.2) and compare.")
    p.add_argument("--out", default="runs/demo", help="folder for the two runs (default runs/demo)")
    p.add_argument("--epochs", default="30", help="epochs per model (default 30)")
    p.add_argument("--seed", default="0", help="random seed")

    p = sub.add_parser("bench", help="time clean, PGD-AT and third-party steps side by side",
                       description="Median times of a clean training step, armor's PGD-k AT step, a minimal "
                                   "hand-written AT step, and PGD from armor / torchattacks / ART, on one model "
                                   "and batch, with ratios to the hand loop and to the (k+1)× clean-step floor.")
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
    p.add_argument("--threads", default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-third-party", dest="third_party", action="store_false",
                   help="skip torchattacks and ART")
    p.add_argument("--trainers", action="store_true",
                   help="instead: ART's AdversarialTrainerMadryPGD vs armor's PGD-AT for --epochs on digits")
    p.add_argument("--epochs", default="10", help="epochs for --trainers (default 10)")
    p.add_argument("--json", default=None, help="also write the result dict to this JSON file")

    p = sub.add_parser("sweep", help="train one run per value of a parameter; clean vs robust table + Pareto plot",
                       description="Grid over one parameter (e.g. --param beta --values 0.1 1 6 --method trades). "
                                   "Writes OUT/sweep.json, sweep.csv, sweep.md and pareto.png; one run per value "
                                   "in OUT/<param>=<value>/. Other flags as for train.")
    p.add_argument("--param", required=True, help="beta, eps, clean_weight, method, replays, steps")
    p.add_argument("--values", required=True, nargs="+", help="the values to train with")
    _add_train_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing runs of the sweep")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip pareto.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    p = sub.add_parser("report", help="one self-contained HTML report (or a Markdown table) from run folders",
                       description="Render the runs' JSON (config, learning curves, accuracy per attack and "
                                   "worst case, ε sweeps, corruptions, sanity checks, trade-off, example images, "
                                   "saliency) into one HTML file with embedded images. Rendering never runs a model; "
                                   "--compute-figures first runs each run's best.pt once to store the example "
                                   "images and input gradients (figures.npz) beside its JSON.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (armor train --out ...)")
    p.add_argument("-o", "--out", default=None, help="HTML file to write (default report.html; with --markdown "
                                                      "only when given)")
    p.add_argument("--markdown", action="store_true", help="print a README-ready Markdown accuracy table")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--compute-figures", dest="compute_figures", action="store_true",
                   help="first compute example images and saliency from each run's best.pt (once; stored as "
                        "figures.npz/figures.json in the run folder)")
    p.add_argument("--figures-n", dest="figures_n", default="8", help="test images in the figures (default 8)")
    p.add_argument("--figures-steps", dest="figures_steps", default="20",
                   help="PGD steps of the adversarial examples (default 20)")
    p.add_argument("--device", default="auto", help="device for --compute-figures: auto, cpu, cuda, mps")

    p = sub.add_parser("export", help="write a checkpoint's weights as .safetensors (no pickle, no code)",
                       description="Export the model weights of an armor checkpoint to the safetensors format; "
                                   "the run's config and dataset metadata go into the file's metadata.")
    p.add_argument("--checkpoint", required=True, help="RUN/best.pt, RUN/last.pt, RUN/best_ema.pt, ...")
    p.add_argument("--out", default=None, help="output file (default: the checkpoint's name with .safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    sub.add_parser("list", help="list the registered models, attacks and methods")
    return parser


def _int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise UserError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return number


def cmd_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .reports import accuracy_rows, format_table
    from .train import train

    overrides: Dict[str, Any] = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    if args.eval_attacks is not None:
        overrides["eval_attacks"] = args.eval_attacks
    for key in ("amp", "channels_last", "compile", "sync_bn"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.resume and not args.out and not args.config:
        raise UserError("--resume needs the run folder: pass --out RUN")
    if args.resume and "epochs" not in overrides and not args.config:
        # without --epochs a resumed run finishes the epochs it was started with, not the default
        from .train.checkpoint import load_checkpoint

        last = Path(args.out) / "last.pt"
        if last.is_file():
            overrides["epochs"] = load_checkpoint(last)["config"]["epochs"]
    cfg = TrainConfig.from_yaml(args.config, overrides) if args.config else TrainConfig.from_dict(overrides)
    summary = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=None if not args.quiet else False)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    named = {f"{summary['method']} (best epoch {summary['best_epoch']})": summary["test"]}
    for name, cand in summary.get("candidates", {}).items():
        if name != "best":
            named[f"{name} (best epoch {cand['epoch']})"] = cand["test"]
    header, rows = accuracy_rows(named)
    print(format_table(header, rows))
    if summary.get("stop_reason"):
        print(f"stopped early: {summary['stop_reason']}")
    print(f"results: {summary['run']}/results.json")
    return 0


def _train_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    from .config import read_yaml

    overrides: Dict[str, Any] = read_yaml(args.config) if args.config else {}
    overrides.update({k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None})
    if args.eval_attacks is not None:
        overrides["eval_attacks"] = args.eval_attacks
    return overrides


def cmd_sweep(args: argparse.Namespace) -> int:
    from .reports.sweep import sweep_rows, write_sweep
    from .reports import format_table
    from .train.sweep import run_sweep

    base = _train_overrides(args)
    out = base.pop("out", None) or f"runs/sweep_{args.param}"
    sweep = run_sweep(base, args.param, args.values, out, overwrite=args.overwrite,
                      progress=None if not args.quiet else False)
    paths = write_sweep(sweep, out, plot=args.plot)
    header, rows = sweep_rows(sweep)
    print(format_table(header, rows))
    print("results: " + ", ".join(paths.values()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.checks import format_checks
    from .eval.run import evaluate_checkpoint
    from .reports import accuracy_rows, format_table

    result = evaluate_checkpoint(
        args.checkpoint, attacks=args.attack, suite=args.suite,
        steps=None if args.steps is None else _int(args.steps, "steps"), restarts=_int(args.restarts, "restarts"),
        step_size=args.step_size, eps=args.eps, norm=args.norm, split=args.split,
        n=None if args.n is None else _int(args.n, "n"), batch_size=_int(args.batch_size, "batch_size"),
        data_dir=args.data_dir, device=args.device, out=args.out,
        queries=None if args.queries is None else _int(args.queries, "queries"), loss=args.loss,
        eot=_int(args.eot, "eot"), bpda=(args.bpda or True) if args.bpda is not None else None,
        checks=args.checks, check_n=_int(args.check_n, "check_n"), sweep=args.sweep,
        corruptions=args.corruptions, seed=_int(args.seed, "seed", 0))
    res = result["result"]
    header, rows = accuracy_rows({Path(args.checkpoint).name: res})
    suite = f", suite {result['suite']}" if result["suite"] else ""
    print(f"{result['dataset']} {result['split']} ({res['n']} examples), {result['threat_str']}{suite}")
    print(format_table(header, rows))
    if res["mode"] == "ensemble":
        print("broken by: " + ", ".join(f"{k} {v}" for k, v in res["broken_by"].items())
              + f"; forward passes {res['forward_passes']}")
    if "autoattack_acc" in result:
        print(f"worst case over the {result['suite']} suite: {result['autoattack_acc']:.1f} %")
    if "checks" in result:
        print(format_checks(result["checks"]))
    if "corruptions" in result:
        cor = result["corruptions"]
        print("corruptions (mean over 5 severities): " + ", ".join(
            f"{k} {v['mean']:.1f}" for k, v in cor["corruptions"].items()) + f"; mean {cor['mean_corrupted_acc']:.1f}")
    for f in result.get("sweep_files", []):
        print(f"sweep: {f}")
    print(f"results: {result['path']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .train.checkpoint import export_safetensors, load_checkpoint

    state = load_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".safetensors")
    if out.exists() and not args.overwrite:
        raise UserError(f"{str(out)!r} already exists; pass --overwrite to replace it or choose another --out")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist")
    meta = {"config": state["config"], "dataset": state["dataset"], "epoch": state["epoch"],
            "armor_version": state.get("armor_version")}
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
    import torch

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(_int(args.threads, "threads"))
    try:
        return _bench(args)
    finally:
        torch.set_num_threads(threads)  # process-wide setting: leave it as it was for library callers


def _bench(args: argparse.Namespace) -> int:
    from .bench import compare_trainers, format_bench, format_trainers, run_bench
    from .reports import write_json
    from .threat import parse_eps
    from .train.accel import parse_amp

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
                           repeats=_int(args.repeats, "repeats"), device=args.device, amp=parse_amp(args.amp),
                           channels_last=args.channels_last, compile=args.compile, third_party=args.third_party)
        print(format_bench(result))
    if args.json:
        write_json(args.json, result)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .reports.html import load_runs, markdown_table, render_html

    for run in args.runs:  # every mistake before anything is computed or written
        if not Path(run).is_dir():
            raise UserError(f"run folder {run!r} does not exist or is not a folder")
    out = args.out if args.out is not None else (None if args.markdown else "report.html")
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise UserError(f"cannot write report {out!r}: its folder does not exist")
    if args.compute_figures:
        from .eval.figures import compute_figures

        n, steps = _int(args.figures_n, "figures_n"), _int(args.figures_steps, "figures_steps")
        for run in args.runs:
            compute_figures(run, n=n, steps=steps, device=args.device)
    runs = load_runs(args.runs)
    if args.markdown:
        print(markdown_table(runs))
    if out is not None:
        path = render_html(runs, out, title=args.title)
        print(f"report: {path}", file=sys.stderr if args.markdown else sys.stdout)
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    from . import ATTACKS, METHODS, MODELS

    for title, registry in (("models", MODELS), ("attacks", ATTACKS), ("methods", METHODS)):
        print(f"{title}: {', '.join(registry.names())}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if getattr(args, "quiet", False):
            logging.getLogger("armor").setLevel(logging.WARNING)
        commands = {"train": cmd_train, "sweep": cmd_sweep, "eval": cmd_eval, "export": cmd_export, "demo": cmd_demo,
                    "bench": cmd_bench, "report": cmd_report, "list": cmd_list}
        return commands[args.command](args)
    except UserError as exc:
        print(f"armor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("armor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
