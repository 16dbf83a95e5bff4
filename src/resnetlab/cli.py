"""Command line: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import sys

from . import __version__


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"resnetlab: error: {message} (see 'resnetlab {self._command()}--help')\n")

    def _command(self) -> str:
        words = self.prog.split()[1:]
        return "".join(w + " " for w in words)


def cmd_models(args) -> int:
    from .models import list_models

    for name in list_models():
        print(name)
    return 0


def cmd_summary(args) -> int:
    from .inspect import summary
    from .models import create_model

    model = create_model(args.model, **({"num_classes": args.num_classes} if args.num_classes else {}))
    input_size = tuple(args.input_size) if args.input_size else model.default_input_size
    print(summary(model, input_size))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="resnetlab", description="Residual networks and batch normalization, from their papers.")
    parser.add_argument("--version", action="version", version=f"resnetlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("models", help="list the registered models", description="List the registered models.")
    p.set_defaults(func=cmd_models)

    p = commands.add_parser("summary", help="print a model's layer table",
                            description="Print the layer table: output shapes, parameters and multiply-adds.")
    p.add_argument("model", help="a name from 'resnetlab models', or resnet<6n+2> for any CIFAR depth")
    p.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"),
                   help="input size (default: 3 224 224 for ImageNet nets, 3 32 32 for CIFAR nets)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's own)")
    p.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        print(f"resnetlab: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
