"""Where a run stands, and its checkpoints: what ``save`` writes and what ``restore`` reads, side by side,
with the two ways a run stops early (divergence, Ctrl-C)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from .. import checkpoints as ckpt
from ..errors import UsageError
from .config import TrainConfig, saved_value
from .distributed import World


class NonFiniteLoss(RuntimeError):
    """The loss or the weights became NaN or infinite: training diverged at ``iteration``."""

    def __init__(self, message: str, iteration: int):
        super().__init__(message)
        self.iteration = iteration


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run in ``out`` stopped after ``iteration`` and saved a checkpoint there."""

    def __init__(self, message: str, iteration: int, out: Path):
        super().__init__(message)
        self.iteration, self.out = iteration, out


@dataclass
class RunState:
    """Where a run stands; every checkpoint holds all of it (as JSON), and a resume restores it. It is
    global: every process of a data-parallel run holds the same."""

    iteration: int = 0  # SGD steps done in all
    epoch: int = 0  # epochs completed
    step: int = 0  # steps done in the current epoch
    loss_sum: float = 0.0  # this epoch so far: summed training loss, misclassified and seen images
    errors: int = 0
    seen: int = 0
    elapsed_s: float = 0.0  # compute time of every session of the run
    best_val_error: float | None = None
    metrics: list[dict] = field(default_factory=list)  # one record per epoch (on the process that writes)

    def next_epoch(self) -> None:
        self.epoch, self.step, self.loss_sum, self.errors, self.seen = self.epoch + 1, 0, 0.0, 0, 0

    @classmethod
    def from_json(cls, meta: dict) -> RunState:
        return cls(**{f.name: meta[f.name] for f in fields(cls)})


class Stateful(Protocol):
    """A hook as checkpoints see it: its state under its name."""

    @property
    def name(self) -> str: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Trained:
    """What a checkpoint holds besides the state: the trained ``model``, the module evaluated and shipped
    (``shipped``: the model itself, or e.g. its weight average), the optimizer, and the hooks (``name``,
    ``state_dict()``, ``load_state_dict()``)."""

    model: nn.Module
    shipped: nn.Module
    optimizer: torch.optim.Optimizer
    hooks: Sequence[Stateful]

    def finite(self) -> bool:
        """Whether every weight of the trained and the shipped module is finite."""
        modules = (self.model,) if self.shipped is self.model else (self.model, self.shipped)
        checks = [torch.isfinite(p).all() for m in modules for p in m.parameters()]
        return bool(torch.stack(checks).all())  # one read back (a device sync), not one per parameter


def not_finite(iteration: int, root: Path) -> NonFiniteLoss:
    return NonFiniteLoss(
        f"the weights are not finite at iteration {iteration}: training diverged (try a lower --lr); {kept(root)}",
        iteration,
    )


DIVERGED = "diverged.json"  # in a run folder: the run diverged; it is not continued


def mark_diverged(out: Path, error: NonFiniteLoss) -> None:
    """Record in ``out`` that the run diverged, so that a resume (or a torchrun restart) does not replay it."""
    (out / DIVERGED).write_text(json.dumps({"iteration": error.iteration, "message": str(error)}, indent=1) + "\n")


def diverged(out: Path) -> dict | None:
    """``{"iteration", "message"}`` if the run in ``out`` diverged, else None."""
    try:
        return json.loads((out / DIVERGED).read_text())
    except FileNotFoundError:
        return None


def kept(root: Path) -> str:
    """Where a run that stops now can be continued from, in words."""
    last = ckpt.latest(root)
    return "no checkpoint had been saved yet" if last is None else f"the last good checkpoint is kept: {last}"


def save(root: Path, state: RunState, trained: Trained, meta: dict, best: bool = False, keep: int = 3) -> None:
    """A checkpoint in ``root`` (``checkpoints/``): the shipped module's weights as the model file; the trained
    weights beside them (``raw.*``) when they differ; the optimizer, the RNG, the hooks' states and all of
    ``state``. The caller has checked that the weights are finite (``Trained.finite``, agreed by every process)."""
    hooks = {h.name: h.state_dict() for h in trained.hooks}
    meta = {**asdict(state), **meta, "hooks": {k: v for k, v in hooks.items() if v}}
    tensors = {"rng.torch": torch.get_rng_state()}
    if trained.shipped is not trained.model:
        tensors.update({f"raw.{k}": v for k, v in trained.model.state_dict().items()})
    for i, s in trained.optimizer.state_dict()["state"].items():
        tensors.update({f"optimizer.{i}.{k}": v for k, v in s.items() if isinstance(v, torch.Tensor)})
    ckpt.save_checkpoint(root, state.iteration, trained.shipped.state_dict(), tensors, meta, best=best, keep=keep)


def restore(
    out: Path, trained: Trained, config: TrainConfig, log: Callable[[str], None], world: World
) -> RunState | None:
    """The state of the last checkpoint of ``out``, loaded into the modules, the optimizer and the hooks of
    ``trained``; ``None`` when the run stopped before its first checkpoint (it starts over)."""
    if ckpt.latest(out / "checkpoints") is None:
        log(f"{out} has no checkpoint yet (the run stopped before its first one): starting it over from its config")
        return None
    model_state, tensors, meta = ckpt.read_checkpoint(out)
    changed = config.differences(meta["config"], execution=False)
    if changed:
        made = ", ".join(
            f"{k} {json.dumps(saved_value(meta['config'], k))} (not {json.dumps(getattr(config, k))})" for k in changed
        )
        raise UsageError(
            f"{out} holds a run made with {made}: continue it with the same settings, or choose another --out"
        )
    for k in config.differences(meta["config"]):  # execution fields only, e.g. --compile on a resume
        log(
            f"resuming with {k} {json.dumps(getattr(config, k))} "
            f"(the run so far: {json.dumps(saved_value(meta['config'], k))})"
        )
    if trained.shipped is not trained.model:  # the model file is what is shipped; the trained weights are raw.*
        trained.shipped.load_state_dict(model_state, strict=True)
        model_state = {k.removeprefix("raw."): v for k, v in tensors.items() if k.startswith("raw.")}
    trained.model.load_state_dict(model_state, strict=True)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, i, name = key.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = value
    optimizer = trained.optimizer
    optimizer.load_state_dict({"state": opt_state, "param_groups": optimizer.state_dict()["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    # checkpoints from before hooks kept the Sec. 4.2 warm-up's state among the run's own fields
    legacy = {"warmup": {"done": meta.get("warmup_done", True), "error_ema": meta.get("error_ema", 1.0)}}
    saved_hooks = meta.get("hooks", legacy)
    for hook in trained.hooks:
        if hook.name in saved_hooks:
            hook.load_state_dict(saved_hooks[hook.name])
    before = meta.get("world_size", 1)
    if before != world.size:  # the checkpoint holds global state only: any number of processes continues it
        same = (
            "computes the same (batch norm is synchronized)"
            if config.sync_bn or 1 in (before, world.size)
            else "now computes per-process batch norm statistics over another number of processes (--no-sync-bn)"
        )
        log(f"resuming with {world.size} processes (the run so far: {before}); the global batch is unchanged and "
            f"the run {same}")  # fmt: skip
    state = RunState.from_json(meta)
    log(f"resumed {out} at iteration {state.iteration}")
    return state
