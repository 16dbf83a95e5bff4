"""Command line: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import textwrap
import traceback
import typing
from pathlib import Path

from .data.sources import SPECS
from .deploy.formats import FORMATS
from .deploy.runtimes import PRECISIONS, RUNTIMES
from .errors import UsageError
from .models import model_forms
from .train.config import TTA, TrainConfig
from .version import __version__


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"resnetlab: error: {message} (see 'resnetlab {self._command()}--help')\n")

    def _command(self) -> str:
        words = self.prog.split()[1:]
        return "".join(w + " " for w in words)


def cmd_models(args) -> int:
    from .models import list_models
    from .pretrained import available

    shipped = available()
    width = max(map(len, list_models()))
    for name in list_models():
        print(f"{name:<{width}}  weights: {', '.join(shipped[name])}" if name in shipped else name)
    for form in model_forms():
        print(f"and {form}")
    return 0


def cmd_summary(args) -> int:
    import torch

    from .inspect import gradient_flow, summary
    from .models import builder_takes, create_model, default_input_size

    if args.gradient_flow != 0 and args.gradient_flow < 2:
        raise UsageError(
            f"--gradient-flow {args.gradient_flow}: give a batch of at least 2 images (batch norm "
            f"needs 2 to compute a variance), e.g. --gradient-flow 16"
        )
    if args.gradient_flow:
        torch.manual_seed(0)  # the same initial weights on every call
    kwargs = {**(args.model_args or {}), **({"num_classes": args.num_classes} if args.num_classes else {})}
    if args.input_size and builder_takes(args.model, "input_size"):  # the MLPs are built for their input
        kwargs["input_size"] = tuple(args.input_size)
    model = create_model(args.model, **kwargs)
    input_size = tuple(args.input_size) if args.input_size else default_input_size(model)
    print(summary(model, input_size))
    if args.gradient_flow:
        g = torch.Generator().manual_seed(0)  # the network at initialization, on noise with random labels
        x = torch.randn((args.gradient_flow, *input_size), generator=g)
        fc = model.get_submodule("fc")
        assert isinstance(fc, torch.nn.Linear)
        y = torch.randint(0, fc.out_features, (args.gradient_flow,), generator=g)
        print(f"\nGradient flow at initialization: one batch of {args.gradient_flow} N(0, 1) inputs, random labels")
        print(gradient_flow(model, x, y))
    return 0


def cmd_train(args) -> int:
    from .train import NonFiniteLoss, TrainingInterrupted, fit, make_config, resume_config
    from .train.distributed import restart_count, under_torchrun, world_from_env

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func", "resume")}
    if "tta_flip" in given:
        flip = given.pop("tta_flip")
        _deprecated(f"--{'' if flip else 'no-'}tta-flip is deprecated; use --tta {'flip' if flip else 'none'}")
        given.setdefault("tta", "flip" if flip else "none")
    if "milestones" in given:
        given["milestones"] = tuple(given["milestones"])
    world, resume = world_from_env(), args.resume
    if (world.size > 1 or under_torchrun()) and not resume and "out" not in given:
        raise UsageError("under torchrun give --out: every process, and a restarted one, must find the same run folder")
    if restart_count() > 0 and not resume and "out" in given and (Path(given["out"]) / "config.json").is_file():
        resume = given["out"]  # torchrun restarted the workers (--max-restarts): continue the run, as --resume would
    if resume:
        config = resume_config(resume, given)
    else:
        config = make_config(given.pop("recipe", "paper-cifar"), **given)
    try:
        final = fit(config, resume=bool(resume))
    except TrainingInterrupted as e:
        print(f"resnetlab: {e}", file=sys.stderr)
        return 130
    except NonFiniteLoss as e:
        print(f"resnetlab: error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        if world.size == 1:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(
            f"resnetlab: error: rank {world.rank}: another process was lost or failed ({first[:300]}); "
            f"the last checkpoint in {config.out} is whole: continue with --resume {config.out}",
            file=sys.stderr,
        )
        return 1
    if not world.main:
        return 0
    summary_line = ", ".join(
        f"{k} {100 * final[k]:.2f}%" for k in ("train_error", "val_error", "test_error") if final.get(k) is not None
    )
    print(f"final: {summary_line}; outputs in {config.out} (curves.png, metrics.csv, checkpoints/last)")
    return 0


def _deprecated(message: str) -> None:
    print(f"resnetlab: warning: {message}", file=sys.stderr)


def _source(args, name: str) -> str:
    """The SOURCE argument, with the deprecated ``--weights NAME`` folded in as ``MODEL.WEIGHTS``."""
    source = getattr(args, name)
    if args.weights is None:
        return source
    _deprecated(f"--weights is deprecated here; give the source as {source}.{args.weights}")
    return f"{source}.{args.weights}"


def cmd_eval(args) -> int:
    from .deploy.evaluate import evaluate_source

    evaluate_source(_source(args, "checkpoint"), args.data, args.device, args.precision, args.tta)
    return 0


def cmd_predict(args) -> int:
    from .deploy import Predictor

    source = _source(args, "path")
    predictor = Predictor.load(source, args.runtime, args.precision, args.threads, args.device, args.batch_size)
    print(f"resnetlab: runtime {predictor.runtime.name} ({predictor.why}), {args.precision}", file=sys.stderr)
    results, skipped = predictor.predict_files(args.images, args.top, log=lambda m: print(f"resnetlab: {m}",
                                                                                          file=sys.stderr))  # fmt: skip
    for path, top in results:
        if args.json:
            print(json.dumps({"file": str(path), "top": [{"class": name, "probability": p} for name, p in top]}))
        else:
            print(path)
            for name, p in top:
                print(f"  {100 * p:6.2f}%  {name}")
    if not results and not skipped:
        print("resnetlab: error: no image files found in the folders given", file=sys.stderr)
    return 1 if skipped or not results else 0


def cmd_export(args) -> int:
    from .deploy import export

    quantize = args.quantize
    if args.precision is not None:
        if args.precision == "int8":
            _deprecated("--precision int8 is deprecated for export; use --quantize int8 (graphs are written in fp32)")
            quantize = quantize or "int8"
    export(_source(args, "source"), args.format, args.out, "int8" if quantize == "int8" else "fp32",
           args.calibration, args.calibration_images, args.opset)  # fmt: skip
    return 0


# The flags each experiment uses besides --data and --out; any other is refused, not ignored. The
# training flags are every config field an experiment does not set itself.
_TRAINING_FLAGS = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "model_args", "norm", "data", "out")
)
_EXPERIMENT_FLAGS = {
    "degradation": ("depths", "family", *_TRAINING_FLAGS),
    "gradients": ("depths", "steps", "batch_size", "seed", "threads"),
    "batchnorm": ("lrs", "model", *(k for k in _TRAINING_FLAGS if k != "lr")),
    "cifar-table": ("depths", *_TRAINING_FLAGS),
    "covariate-shift": ("steps", "batch_size", "lr", "seed", "threads"),
    "responses": ("runs",),
}


def cmd_experiment(args) -> int:
    from . import experiments
    from .train import TrainingInterrupted

    options = {k: v for k, v in vars(args).items() if k not in ("command", "func", "name", "data", "out")}
    allowed = _EXPERIMENT_FLAGS[args.name]
    unused = [f"--{k.replace('_', '-')}" for k in options if k not in allowed]
    if unused:
        raise UsageError(
            f"experiment {args.name} does not use {', '.join(unused)}; its options are "
            f"{', '.join('--' + k.replace('_', '-') for k in ('data', *allowed, 'out'))}"
        )
    data = getattr(args, "data", None)  # None: the embedded digits (responses: each run's own data)
    out = getattr(args, "out", None) or f"runs/experiment-{args.name}"
    try:
        _run_experiment(args.name, experiments, data, out, options)
    except TrainingInterrupted as e:  # the runs keep their checkpoints; the experiment continues them
        print(
            f"resnetlab: {e.out} interrupted at iteration {e.iteration} (checkpoint saved); run the same "
            f"command again to continue the experiment",
            file=sys.stderr,
        )
        return 130
    print(f"outputs in {out}")
    return 0


def _run_experiment(name: str, experiments, data: str | None, out: str, options: dict) -> None:
    """``data`` None: the embedded digits, except for responses, which measure each run on its own data."""
    options.update({k: tuple(options[k]) for k in ("depths", "lrs") if k in options})
    threads = options.pop("threads", None) if name in ("gradients", "covariate-shift") else None
    if name == "responses":
        default = [f"runs/experiment-degradation/{m}" for m in ("plain20", "plain56", "resnet20", "resnet56")]
        experiments.run_responses(options.get("runs") or default, out, data=data)
    elif name == "gradients":
        experiments.run_gradients(data or "default", out, experiments.GradientSetup(**options), threads=threads)
    elif name == "covariate-shift":
        experiments.run_covariate_shift(data or "default", out, experiments.ShiftSetup(**options), threads=threads)
    elif name == "degradation":
        experiments.run_degradation(out, data=data or "default", **options)
    elif name == "batchnorm":
        experiments.run_batchnorm(out, data=data or "default", **options)
    else:
        experiments.run_cifar_table(out, data=data or "default", **options)


def _experiment_epilog() -> str:
    """Which flags each experiment takes, from ``_EXPERIMENT_FLAGS``."""

    def flags(names) -> str:
        return " ".join("--" + k.replace("_", "-") for k in names)

    lines = ["besides --data and --out, each experiment takes:"]
    for name, names in _EXPERIMENT_FLAGS.items():
        own = [k for k in names if k not in _TRAINING_FLAGS]
        missing = [k for k in _TRAINING_FLAGS if k not in names]
        if len(missing) < len(_TRAINING_FLAGS) / 2:  # most of them: say which are left out
            but = f" but {flags(missing)}" if missing else ""
            lines.append(f"  {name:<16} {flags(own)} and the training flags{but}")
        else:
            lines.append(f"  {name:<16} {flags(names)}")
    training = textwrap.fill(
        "training flags: " + flags(_TRAINING_FLAGS), 80, subsequent_indent="  ", break_on_hyphens=False
    )
    return "\n".join([*lines, training])


class _ModelArg(argparse.Action):
    """``--model-arg KEY=VALUE``, repeatable, into one dict; VALUE is JSON when it parses
    (``true``, ``3``, ``0.5``, ``null``), a string otherwise (``shortcut=C``)."""

    def __call__(self, parser, namespace, value, option_string=None):
        key, sep, raw = str(value).partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"--model-arg {value!r}: expected KEY=VALUE, e.g. --model-arg shortcut=C")
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), key: parsed})


def _add_config_flags(
    p: argparse.ArgumentParser, names: typing.Iterable[str], help: typing.Mapping[str, str] | None = None
) -> None:
    """One flag per ``TrainConfig`` field in ``names``, from the field's type and metadata (help,
    choices, metavar, nargs, mutually exclusive group); ``help`` replaces a field's help text."""
    help = help or {}
    hints = typing.get_type_hints(TrainConfig)
    groups: dict[str, typing.Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in names:
            continue
        meta = dict(f.metadata)
        group = meta.pop("group", None)
        if group and group not in groups:
            groups[group] = p.add_mutually_exclusive_group()
        target = groups[group] if group else p
        kwargs = {"help": help.get(f.name, meta.pop("help")).replace("%", "%%"), **meta}
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        if f.name == "model_args":
            target.add_argument("--model-arg", dest="model_args", action=_ModelArg, **kwargs)
            continue
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs["type"] = typing.get_args(kind)[0]
        else:
            kwargs["type"] = kind
        target.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _experiment_parser(commands) -> None:
    p = commands.add_parser(
        "experiment",
        help="run one of the papers' experiments",
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The papers' experiments: degradation (plain vs residual through depth, conv or MLP),\n"
        "gradients (per-layer gradient norms), batchnorm (BN and the learning rate),\n"
        "cifar-table (Table 6), covariate-shift (BN paper Fig. 1), responses (Fig. 7).\n"
        "Re-running continues unfinished training runs.",
        epilog=_experiment_epilog(),
    )
    p.add_argument("name", choices=list(_EXPERIMENT_FLAGS))
    p.add_argument("--data", help=f"{SPECS}, as for train (default: the embedded digits)")
    p.add_argument(
        "--depths", type=int, nargs="+", metavar="D", help="depths: 6n+2 for conv nets, even and >= 4 for --family mlp"
    )
    p.add_argument("--family", choices=["conv", "mlp"], help="degradation: convolutional ResNets (default) or MLPs")
    p.add_argument(
        "--lrs", type=float, nargs="+", metavar="LR", help="batchnorm: learning rates (default 0.01 0.1 0.5)"
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="K",
        help="gradients: SGD steps before the second measurement (20); covariate-shift: training steps (50000)",
    )
    p.add_argument("--model", help="batchnorm: the network (default resnet20)")
    p.add_argument("--runs", nargs="+", metavar="RUN_DIR", help="responses: trained runs to compare (default: "
                   "plain20, plain56, resnet20, resnet56 of runs/experiment-degradation)")  # fmt: skip
    _add_config_flags(
        p,
        _TRAINING_FLAGS,
        help={
            "recipe": "the recipe of every run (default paper-cifar)",
            "epochs": "training length of every run (default: the recipe's)",
            "iterations": "training length in SGD steps; the step schedule's milestones scale with it",
            "seed": "one seed for every run (default 0)",
        },
    )
    p.add_argument("--out", metavar="DIR", help="default runs/experiment-<name>")
    p.set_defaults(func=cmd_experiment)


def _train_parser(commands) -> None:
    p = commands.add_parser(
        "train",
        help="train a model",
        argument_default=argparse.SUPPRESS,
        description="Train a ResNet. Flags override the recipe's fields; every output goes to --out.",
    )
    _add_config_flags(p, [f.name for f in dataclasses.fields(TrainConfig)])
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue the run in RUN_DIR with its config")
    p.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)  # deprecated
    p.set_defaults(func=cmd_train)


SOURCE_HELP = "a run folder, a checkpoint, or MODEL.WEIGHTS: a model's shipped weights (e.g. resnet56.cifar10)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="resnetlab", description="Residual networks and batch normalization, from their papers.")
    parser.add_argument("--version", action="version", version=f"resnetlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("models", help="list the registered models", description="List the registered models "
                            "and the names of their shipped pretrained weights.")  # fmt: skip
    p.set_defaults(func=cmd_models)

    p = commands.add_parser(
        "summary",
        help="print a model's layer table",
        description="Print the layer table: output shapes, parameters and multiply-adds.",
    )
    p.add_argument("model", help=f"a name from 'resnetlab models', or {'; '.join(model_forms())}")
    p.add_argument(
        "--input-size",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="input size (default: 3 224 224 for ImageNet nets, 3 32 32 for CIFAR nets)",
    )
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's own)")
    _add_config_flags(p, ["model_args"])
    p.add_argument(
        "--gradient-flow",
        type=int,
        nargs="?",
        const=16,
        default=0,
        metavar="BATCH",
        help="also print each layer's gradient norm at initialization (seed 0; a batch of BATCH noise "
        "images, default 16)",
    )
    p.set_defaults(func=cmd_summary)

    _train_parser(commands)
    _experiment_parser(commands)

    p = commands.add_parser(
        "eval",
        help="evaluate a trained model",
        description="Test error, per-class accuracy and confusion matrix (also confusion.png).",
    )
    p.add_argument("checkpoint", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--weights", metavar="NAME", help=argparse.SUPPRESS)  # deprecated: SOURCE as MODEL.WEIGHTS
    p.add_argument("--data", help="as for train (default: the run's own data)")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], help="default: as the run evaluated itself")
    p.add_argument("--tta", choices=list(TTA), help="test-time augmentation, reported beside the single-view "
                   "error (default: the run's own)")  # fmt: skip
    p.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto: CUDA when available"
    )
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser(
        "predict",
        help="classify images",
        description="Top classes with probabilities, from a run folder, a checkpoint or an exported file "
        "(.onnx, .xml, .pt). Unreadable images are reported and skipped (exit status 1).",
    )
    p.add_argument("path", metavar="SOURCE", help=SOURCE_HELP + ", or a file written by 'resnetlab export'")
    p.add_argument("--weights", metavar="NAME", help=argparse.SUPPRESS)  # deprecated: SOURCE as MODEL.WEIGHTS
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders to walk")
    p.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES], help="default auto: by the file's "
                   "kind; for a run: openvino if installed, else onnxruntime, else torch")  # fmt: skip
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="fp32 (asked of every runtime "
                   "explicitly) or bf16 (openvino, torch)")  # fmt: skip
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes shown per image (default 5)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default 64)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads of the runtime (default: its own choice)")
    p.add_argument("--json", action="store_true", help='one line per image: {"file": ..., "top": [{"class": '
                   '..., "probability": ...}, ...]}')  # fmt: skip
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="torch runtime: default auto (CUDA when available)",
    )
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser(
        "export",
        help="export a trained model for inference",
        description="Write a run's model with every batch norm folded into the layer before it, a dynamic batch "
        "axis and its preprocessing and labels inside the file; then run the file and compare it with PyTorch.",
    )
    p.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--weights", metavar="NAME", help=argparse.SUPPRESS)  # deprecated: SOURCE as MODEL.WEIGHTS
    p.add_argument("--format", required=True, choices=list(FORMATS), help="onnx (.onnx), openvino (.xml + .bin) "
                   "or torchscript (.pt)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="PATH", help="the file to write, with the format's suffix")
    p.add_argument("--quantize", choices=["int8"], help="int8: post-training static quantization (onnx, openvino), "
                   "calibrated on training images and checked on held-out ones")  # fmt: skip
    p.add_argument("--precision", choices=["fp32", "int8"], help=argparse.SUPPRESS)  # deprecated: --quantize int8
    p.add_argument("--calibration", metavar="DATA", help=f"int8 calibration images: {SPECS} (default: the run's data)")
    p.add_argument("--calibration-images", type=int, default=300, metavar="N", help="training images that "
                   "calibrate int8 (default 300)")  # fmt: skip
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: the exporter's, 20)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Bad input (``UsageError``) and what the system refuses (``OSError``: a full disk, a permission) are one
    line, exit status 1; any other exception is a bug, one line asking for a report. ``RESNETLAB_TRACEBACK=1``
    shows the full traceback of either."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("resnetlab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("RESNETLAB_TRACEBACK") == "1":
            traceback.print_exc()
        elif isinstance(e, (UsageError, OSError)):
            print(f"resnetlab: error: {e}", file=sys.stderr)
        else:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            print(f"resnetlab: internal error ({type(e).__name__}: {first}); rerun with RESNETLAB_TRACEBACK=1 and "
                  "report it", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
