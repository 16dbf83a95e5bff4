"""Hooks that tests run inside training: a Ctrl-C at a chosen step, and a recorder of what the loop does.

In-process tests pass them to ``fit(config, hooks=[...])``; subprocesses (torchrun workers) get them from
``RESNETLAB_TEST_HOOKS=tests.hooks:FACTORY`` with the repository root on ``PYTHONPATH``, configured by the
environment variables the factories read."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch

from resnetlab.train import Hook, Step


class InterruptAt(Hook):
    """A Ctrl-C just before step ``iteration`` (from 0) reads the flag: the run stops after ``iteration + 1``
    steps, as when a user presses Ctrl-C during that step. It runs the SIGINT handler the loop installed, as
    the signal would; a real SIGINT is sent to subprocesses (test_ctrl_c_saves_and_exits_130), since one sent
    to the test process itself crashes it once OpenVINO has run there (an earlier test's export). ``then``
    runs after it (e.g. to break what the checkpoint on the way out needs)."""

    def __init__(self, iteration: int, then=None):
        self.iteration, self.then = iteration, then

    def learning_rate(self, iteration: int, lr: float) -> float:
        if iteration == self.iteration:
            handler = signal.getsignal(signal.SIGINT)
            assert callable(handler), "the loop has no Ctrl-C handler"
            handler(signal.SIGINT, None)
            if self.then is not None:
                self.then()
        return lr


class Recorder(Hook):
    """What each event saw: the run's rank, the learning rates, the input sizes, the gradient norm the
    optimizer sees (after every hook before this one), each step and each epoch's record."""

    def __init__(self, path: Path | None = None):
        self.path, self.started, self.rank = path, 0, None
        self.lrs: list[float] = []
        self.sizes: list[tuple[int, ...]] = []
        self.norms: list[float] = []
        self.steps: list[Step] = []
        self.records: list[dict] = []

    def on_start(self, session) -> None:
        self.started += 1
        self.rank = session.world.rank
        self.initial = {k: v.clone() for k, v in session.model.state_dict().items()}

    def learning_rate(self, iteration: int, lr: float) -> float:
        self.lrs.append(lr)
        return lr

    def transform_inputs(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return x

    def before_optimizer_step(self, model) -> None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.double().norm() for g in grads]))))

    def after_step(self, state, step: Step) -> None:
        self.steps.append(step)

    def on_epoch_end(self, record: dict) -> None:
        self.records.append(dict(record))
        if self.path is not None:  # a subprocess's record, one file per rank, rewritten whole at each epoch
            from torch._dynamo.utils import counters  # torch.compile's: graph breaks so far, in this process

            summary = {"rank": self.rank, "started": self.started, "norms": self.norms, "lrs": self.lrs,
                       "graph_breaks": sum(counters["graph_break"].values())}  # fmt: skip
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / f"rank{self.rank}.json").write_text(json.dumps(summary))


def recorder() -> Recorder:
    """RESNETLAB_TEST_HOOKS factory: a Recorder writing into the folder $RESNETLAB_TEST_RECORD."""
    return Recorder(Path(os.environ["RESNETLAB_TEST_RECORD"]))


def interrupt() -> InterruptAt:
    """RESNETLAB_TEST_HOOKS factory: a Ctrl-C before step $RESNETLAB_TEST_INTERRUPT_AT."""
    return InterruptAt(int(os.environ["RESNETLAB_TEST_INTERRUPT_AT"]))


class Bug(Hook):
    """A programming error inside a run (not bad input)."""

    def on_start(self, session) -> None:
        raise RuntimeError("a bug\nwith a second line")


def bug() -> Bug:
    """RESNETLAB_TEST_HOOKS factory: a run that fails as a bug would."""
    return Bug()


class Fault(Hook):
    """A fault on one process (rank ``rank``) only: at step ``iteration`` (from 0) its batch becomes NaN
    (``nan-loss``), or after that step one of its weights does (``nan-weights``)."""

    def __init__(self, kind: str, rank: int, iteration: int):
        assert kind in ("nan-loss", "nan-weights"), kind
        self.kind, self.rank, self.iteration, self.now = kind, rank, iteration, -1

    def on_start(self, session) -> None:
        self.mine, self.model = session.world.rank == self.rank, session.model

    def learning_rate(self, iteration: int, lr: float) -> float:
        self.now = iteration
        return lr

    def transform_inputs(self, x):
        if self.mine and self.kind == "nan-loss" and self.now == self.iteration:
            return x * float("nan")
        return x

    def after_step(self, state, step: Step) -> None:
        if self.mine and self.kind == "nan-weights" and state.iteration == self.iteration + 1:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))


def fault() -> Fault:
    """RESNETLAB_TEST_HOOKS factory: $RESNETLAB_TEST_FAULT = KIND:RANK:ITERATION (see Fault)."""
    kind, rank, iteration = os.environ["RESNETLAB_TEST_FAULT"].split(":")
    return Fault(kind, int(rank), int(iteration))


class SignalAt(Hook):
    """A real signal just before step ``iteration`` (from 0): ``INT`` to this process's whole group, as a
    terminal's Ctrl-C reaches every process (data workers and, under torchrun, the launcher and every rank;
    sent by rank 0 alone); ``KILL`` to this process alone."""

    def __init__(self, name: str, iteration: int):
        self.name_, self.iteration = name, iteration

    def learning_rate(self, iteration: int, lr: float) -> float:
        if iteration == self.iteration and os.environ.get("RANK", "0") == "0":
            if self.name_ == "INT":
                os.killpg(os.getpgrp(), signal.SIGINT)
            else:
                os.kill(os.getpid(), getattr(signal, f"SIG{self.name_}"))
        return lr


def signal_at() -> SignalAt:
    """RESNETLAB_TEST_HOOKS factory: $RESNETLAB_TEST_SIGNAL = NAME:ITERATION (see SignalAt)."""
    name, iteration = os.environ["RESNETLAB_TEST_SIGNAL"].split(":")
    return SignalAt(name, int(iteration))


class Rows(Hook):
    """The listing rows of every batch a streamed run trained on, one JSON line per step in
    ``$RESNETLAB_TEST_ROWS/rank<r>.jsonl`` (appended: a resumed run adds its steps)."""

    def on_start(self, session) -> None:
        self.session = session
        self.path = Path(os.environ["RESNETLAB_TEST_ROWS"]) / f"rank{session.world.rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def after_step(self, state, step: Step) -> None:
        rows = self.session.loader.last_rows.tolist()
        with open(self.path, "a") as f:
            f.write(json.dumps({"iteration": state.iteration, "epoch": state.epoch, "rows": rows}) + "\n")


def rows() -> Rows:
    """RESNETLAB_TEST_HOOKS factory: see Rows."""
    return Rows()
