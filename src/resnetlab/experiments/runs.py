"""Shared by the experiments: resumable training runs and their final numbers."""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoints import latest
from ..train import NonFiniteLoss, fit, make_config
from ..train.state import DIVERGED
from ..train.state import diverged as was_diverged


def train_run(out: Path, recipe: str, log=print, **fields) -> dict:
    """Train (or finish, or just read back) the run in ``out``; returns its metric records and, if it
    diverged, ``{"iteration", "message"}``. Re-running an experiment continues its unfinished runs;
    a run that diverged stays diverged (delete its folder to try again)."""
    config = make_config(recipe, out=str(out), **fields)
    diverged = was_diverged(out)
    if diverged is not None:
        log(f"{out.name}: diverged before ({out / DIVERGED}); not trained again")
    else:
        try:
            fit(config, resume=latest(out / "checkpoints") is not None)
        except NonFiniteLoss as e:  # fit recorded it in the run folder
            diverged = {"iteration": e.iteration, "message": str(e)}
            log(f"{out.name}: {e}")
    path = out / "metrics.json"
    records = json.loads(path.read_text()) if path.exists() else []
    return {"records": records, "diverged": diverged, "config": config}


def diverged_at(run: dict) -> int | None:
    """The iteration at which a ``train_run`` result diverged, or None if it did not."""
    return None if run["diverged"] is None else run["diverged"]["iteration"]


def median_epoch_s(records: list[dict]) -> float | None:
    """The median time between epoch records: what an epoch costs, unlike the total wall time, which
    also counts the time a run was paused or shared the cores with other work."""
    times = [r["time_s"] for r in records if r.get("time_s") is not None]
    steps = sorted(b - a for a, b in zip([0.0, *times], times))
    return steps[len(steps) // 2] if steps else None


TIME_NOTE = ("Wall time: the run's clock at its last record, summed over resumes, evaluation included; an upper "
             "bound on the compute time where the run was paused or shared the cores. Median epoch: the median "
             "time between epoch records, which pauses and short disturbances do not move.")  # fmt: skip


def cell(x: float | None, spec: str = ".0f", scale: float = 1.0) -> str:
    """A report's table cell: ``x * scale`` formatted with ``spec``, or "—" where nothing was measured."""
    return "—" if x is None else format(scale * x, spec)


def pct(x: float | None) -> str:
    return cell(x, ".2f", 100)
