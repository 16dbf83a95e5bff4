"""Hooks: what plugs into the training loop without editing it (as Lightning's callbacks).

Each event is called at exactly one place of ``loop.py``/``session.py``, on every process, in the order
the hooks were given (the built-in ones first: warm-up, progressive resizing, weight averaging, Lookahead,
the whitening bias's epochs, gradient clipping, lighting; then ``fit(config, hooks=[...])``; then those of
``RESNETLAB_TEST_HOOKS``). A hook with state returns it from ``state_dict()`` (JSON: numbers, strings, lists,
dicts); checkpoints save it under the hook's ``name`` and a resume hands it back to ``load_state_dict()``, so
a resumed run is bit-exact.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn

from ..data import ImageData
from ..data.shard_stream import ShardedData
from ..data.stream import StreamedFolder
from ..errors import UsageError
from .config import TrainConfig
from .distributed import World
from .state import RunState

TEST_HOOKS = "RESNETLAB_TEST_HOOKS"  # a test aid (DEVELOPERS.md): module:factory[,module:factory...]


class SessionView(Protocol):
    """What a hook sees of the session (``session.Session`` has it all)."""

    config: TrainConfig  # the run's config, as requested
    world: World
    data: ImageData | StreamedFolder | ShardedData
    model: nn.Module  # the trained model (not wrapped by DDP or compiled)
    evaluated: nn.Module  # what is evaluated and shipped: the model, unless a hook puts e.g. its average here
    std: list[float]  # the input normalization's, per channel
    state: RunState  # read it when needed: a resume replaces it after ``on_start``
    total: int  # iterations of the whole run

    def log(self, message: str) -> None: ...


@dataclass(frozen=True)
class Step:
    """One SGD step as all processes agree on it: the global batch's mean loss and error, at ``lr``."""

    iteration: int  # steps done, this one included
    loss: float
    error: float
    lr: float


class Hook:
    """The events a hook may answer; every default does nothing. Subclass it and override what you need."""

    @property
    def name(self) -> str:
        """The key of this hook's state in a checkpoint (unique among a run's hooks)."""
        return type(self).__name__

    def on_start(self, session: SessionView) -> None:
        """Once, when the session is built and before a resumed run's checkpoint is restored."""

    def learning_rate(self, iteration: int, lr: float) -> float:
        """The learning rate of step ``iteration`` (counted from 0), given the schedule's ``lr``."""
        return lr

    def transform_inputs(self, x: Tensor) -> Tensor:
        """The normalized batch, before the training forward pass."""
        return x

    def before_optimizer_step(self, model: nn.Module) -> None:
        """After the backward pass (gradients complete and averaged over processes), before the update."""

    def after_step(self, state: RunState, step: Step) -> None:
        """After the update, with ``state`` counting the step."""

    def on_epoch_end(self, record: dict) -> None:
        """Before the epoch's record (a metrics row) is written; a hook may add its columns."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""


class Hooks(Hook):
    """Several hooks as one: each event goes to each hook, in order; values are chained."""

    def __init__(self, hooks: Sequence[Hook]):
        names = [h.name for h in hooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UsageError(f"two hooks are named {', '.join(twice)}: give each hook its own name")
        self.hooks = list(hooks)

    def __iter__(self):
        return iter(self.hooks)

    def on_start(self, session: SessionView) -> None:
        for h in self.hooks:
            h.on_start(session)

    def learning_rate(self, iteration: int, lr: float) -> float:
        for h in self.hooks:
            lr = h.learning_rate(iteration, lr)
        return lr

    def transform_inputs(self, x: Tensor) -> Tensor:
        for h in self.hooks:
            x = h.transform_inputs(x)
        return x

    def before_optimizer_step(self, model: nn.Module) -> None:
        for h in self.hooks:
            h.before_optimizer_step(model)

    def after_step(self, state: RunState, step: Step) -> None:
        for h in self.hooks:
            h.after_step(state, step)

    def on_epoch_end(self, record: dict) -> None:
        for h in self.hooks:
            h.on_epoch_end(record)


def from_env() -> list[Hook]:
    """The hooks named by ``RESNETLAB_TEST_HOOKS`` (``package.module:factory``, comma-separated): each factory
    is called with no argument and returns a hook or a list of hooks. For tests of subprocesses (torchrun
    workers), which ``fit(config, hooks=...)`` cannot reach; not a user feature."""
    hooks: list[Hook] = []
    for entry in filter(None, (e.strip() for e in os.environ.get(TEST_HOOKS, "").split(","))):
        module, _, factory = entry.partition(":")
        try:
            make: Callable[[], Hook | Iterable[Hook]] = getattr(importlib.import_module(module), factory)
        except (ImportError, AttributeError) as e:
            raise UsageError(f"{TEST_HOOKS}={entry}: {e} (give package.module:factory)") from None
        made = make()
        hooks += [made] if isinstance(made, Hook) else list(made)
    return hooks
