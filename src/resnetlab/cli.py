"""Command line: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
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
    from .inspect.report import model_report

    print(model_report(args.model, args.input_size, args.num_classes, args.model_args, args.gradient_flow))
    return 0


def cmd_train(args) -> int:
    from .train import NonFiniteLoss, TrainingInterrupted, fit, make_config, resume_config
    from .train.distributed import resume_after_restart, world_from_env

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func", "resume")}
    if "tta_flip" in given:
        flip = given.pop("tta_flip")
        _deprecated(f"--{'' if flip else 'no-'}tta-flip is deprecated; use --tta {'flip' if flip else 'none'}")
        given.setdefault("tta", "flip" if flip else "none")
    if "milestones" in given:
        given["milestones"] = tuple(given["milestones"])
    world = world_from_env()
    resume = args.resume or resume_after_restart(world, given.get("out"))
    if resume:
        config = resume_config(resume, given)
    else:
        config = make_config(given.pop("recipe", "paper-cifar"), **given)
    try:
        final = fit(config, resume=bool(resume))
    except TrainingInterrupted as e:  # agreed by every process: rank 0 alone says it
        if world.main:
            print(f"resnetlab: {e}", file=sys.stderr)
        return 130
    except NonFiniteLoss as e:
        if world.main:
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
    if args.synsets:
        from .data.synsets import read_synsets

        names = read_synsets(args.synsets)
        results = [(path, [(names.get(c, c), p) for c, p in top]) for path, top in results]
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
    if args.precision == "int8":
        _deprecated("--precision int8 is deprecated for export; use --quantize int8 (graphs are written in fp32)")
        quantize = "int8"
    export(_source(args, "source"), args.format, args.out, quantize or "fp32",
           args.calibration, args.calibration_images, args.opset, min_agreement=args.min_agreement,
           heldout=args.heldout)  # fmt: skip
    return 0


def cmd_data_pack(args) -> int:
    from .data.shards import pack, parse_size

    info = pack(args.source.removeprefix("folder:"), args.out, parse_size(args.shard_size), args.seed)
    print(f"wrote {sum(len(s.files) for s in info.splits.values())} shards and _info.json to {args.out}; train with "
          f"--data wds:{args.out}")  # fmt: skip
    return 0


def cmd_data_info(args) -> int:
    from .data.sources import describe

    print(describe(args.source, args.num_classes))
    return 0


def cmd_experiment(args) -> int:
    from .experiments import EXPERIMENTS, training_flags
    from .train import TrainingInterrupted

    experiment = EXPERIMENTS[args.name]
    given = vars(args)
    own = {f.name: given[f.name] for f in dataclasses.fields(experiment.settings) if f.name in given}
    trained = {k: given[k] for k in training_flags(experiment) if k in given}
    settings = experiment.settings(**own, **({"training": trained} if experiment.trains else {}))
    out = Path(given.get("out") or f"runs/experiment-{args.name}")
    try:
        experiment.run(settings, given.get("data"), out, print)
    except TrainingInterrupted as e:  # the runs keep their checkpoints; the experiment continues them
        print(
            f"resnetlab: {e.out} interrupted at iteration {e.iteration} (checkpoint saved); run the same "
            f"command again to continue the experiment",
            file=sys.stderr,
        )
        return 130
    print(f"outputs in {out}")
    return 0


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
    p: argparse.ArgumentParser, names: typing.Iterable[str], help: typing.Mapping[str, str] | None = None,
    cls: type = TrainConfig,
) -> None:  # fmt: skip
    """One flag per field of the dataclass ``cls`` in ``names`` (default ``TrainConfig``), from the field's type
    and metadata (help, choices, metavar, nargs, mutually exclusive group); ``help`` replaces a field's help."""
    help = help or {}
    hints = typing.get_type_hints(cls)
    groups: dict[str, typing.Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in names or f.metadata.get("flag") is False:
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
    from .experiments import EXPERIMENTS, training_flags

    p = commands.add_parser(
        "experiment",
        help="run one of the papers' experiments",
        description="The papers' experiments. Re-running one continues its unfinished training runs; "
        "'resnetlab experiment NAME --help' lists the flags of each.",
    )
    names = p.add_subparsers(dest="name", metavar="NAME", required=True)
    for experiment in EXPERIMENTS.values():
        q = names.add_parser(experiment.name, help=experiment.summary, description=experiment.summary,
                             argument_default=argparse.SUPPRESS)  # fmt: skip
        q.add_argument("--data", help=f"{SPECS}, as for train (default: the embedded digits)")
        _add_config_flags(q, [f.name for f in dataclasses.fields(experiment.settings)], cls=experiment.settings)
        flags = training_flags(experiment)
        if flags:
            _add_config_flags(q.add_argument_group("training flags (every run)"), flags, help={
                "recipe": "the recipe of every run (default paper-cifar)",
                "epochs": "training length of every run (default: the recipe's)",
                "iterations": "training length in SGD steps; the step schedule's milestones scale with it",
                "seed": "one seed for every run (default 0)",
            })  # fmt: skip
        q.add_argument("--out", metavar="DIR", help=f"default runs/experiment-{experiment.name}")
        q.set_defaults(func=cmd_experiment, name=experiment.name)


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


def _data_parser(commands) -> None:
    p = commands.add_parser("data", help="pack an image folder as WebDataset shards; describe a data source",
                            description="Pack a folder once as shards, or describe any source.")  # fmt: skip
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    q = tasks.add_parser("pack", help="write folder:ROOT as tar shards and _info.json (timm's WebDataset layout)",
                         description="Write an image folder's splits as WebDataset shards: DIR/train-NNNNNN.tar, "
                         "DIR/val-NNNNNN.tar (or test-), DIR/_info.json; samples in a seeded random order, original "
                         "bytes, unreadable files named and left out.")  # fmt: skip
    q.add_argument("source", metavar="folder:ROOT")
    q.add_argument("--out", required=True, metavar="DIR")
    q.add_argument("--shard-size", default="256MB", metavar="SIZE", help="bytes per shard (default 256MB)")
    q.add_argument("--seed", type=int, default=0, help="the order of the samples (default 0)")
    q.set_defaults(func=cmd_data_pack)
    q = tasks.add_parser("info", help="splits, classes, sample counts and sizes of a --data source",
                         description="The splits, classes, sample counts and sizes of a data source.")  # fmt: skip
    q.add_argument("source", metavar="SPEC", help=SPECS)
    q.add_argument("--num-classes", type=int, help="wds: brace patterns without an _info.json")
    q.set_defaults(func=cmd_data_info)


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
    _data_parser(commands)

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
    _add_config_flags(p, ["device"])  # the one device list: TrainConfig.device's choices
    p.set_defaults(func=cmd_eval, device="auto")

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
    p.add_argument("--precision", default="fp32", choices=[*PRECISIONS, "auto"], help="fp32 (asked of every "
                   "runtime explicitly), bf16 (openvino, torch), or auto: bf16 where the CPU has it "
                   "natively")  # fmt: skip
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes shown per image (default 5)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default 64)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads of the runtime (default: its own choice)")
    p.add_argument("--json", action="store_true", help='one line per image: {"file": ..., "top": [{"class": '
                   '..., "probability": ...}, ...]}')  # fmt: skip
    p.add_argument("--synsets", metavar="FILE", help="show classes named by WordNet ids (ImageNet's n01440764) by "
                   "the names in FILE, ImageNet's LOC_synset_mapping.txt ('n01440764 tench, Tinca tinca')")  # fmt: skip
    _add_config_flags(p, ["device"], help={"device": "torch runtime: default auto, CUDA when available"})
    p.set_defaults(func=cmd_predict, device="auto")

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
    p.add_argument("--min-agreement", type=float, default=0.98, metavar="F", help="int8: the top-1 agreement "
                   "with fp32 on held-out images below which the export fails and keeps nothing "
                   "(default 0.98)")  # fmt: skip
    p.add_argument("--heldout", metavar="DATA", help="int8: the test images agreement and accuracy are measured "
                   "on (default: the run's own test split)")  # fmt: skip
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
