"""The experiments as a registry: each is a settings dataclass (its fields carry their command-line help,
as ``TrainConfig``'s do: the flags are generated from them) and one ``run(settings, data, out, log)``.
Adding an experiment is one ``register`` call; the command line lists and parses them from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..train.config import TrainConfig

Run = Callable[[Any, "str | None", Path, Callable[[str], None]], object]

# The training flags of the experiments that train (every config field an experiment does not set itself).
TRAINING_FLAGS = tuple(
    f.name for f in fields(TrainConfig) if f.name not in ("model", "model_args", "norm", "data", "out")
)


def setting(default: Any, help: str, **cli: Any) -> Any:
    """A settings field with its command-line help (``cli``: choices, metavar, nargs)."""
    make = {"default_factory": default} if callable(default) else {"default": default}
    return field(**make, metadata={"help": help, **cli})


def training() -> Any:
    """The field that carries the training flags of an experiment that trains (not a flag itself)."""
    return field(default_factory=dict, metadata={"flag": False})


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str  # one line: what it measures, and where in the papers
    settings: type
    run: Run
    trains: bool  # takes the training flags (its settings have a ``training`` field)
    untrained: tuple[str, ...] = ()  # training flags it sets itself (batchnorm: lr)


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, summary: str, settings: type, untrained: tuple[str, ...] = ()) -> Callable[[Run], Run]:
    def add(run: Run) -> Run:
        if name in EXPERIMENTS:
            raise UsageError(f"experiment {name!r} is already registered")
        trains = "training" in {f.name for f in fields(settings)}
        EXPERIMENTS[name] = Experiment(name, summary, settings, run, trains, untrained)
        return run

    return add


def training_flags(experiment: Experiment) -> tuple[str, ...]:
    return tuple(f for f in TRAINING_FLAGS if f not in experiment.untrained) if experiment.trains else ()
