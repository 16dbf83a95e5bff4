"""The CIFAR-10 table (He et al. Table 6): ResNets of several depths trained with the paper's
recipe, test error of the final model beside the paper's numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..plots import plot_curves
from .registry import register, setting, training
from .runs import TIME_NOTE, cell, diverged_at, median_epoch_s, pct, train_run

PAPER_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}  # Table 6, % (110: best of 5)


def run_cifar_table(
    out: str | Path, depths=(20, 32, 44, 56, 110), recipe: str = "paper-cifar", log=print, **fields
) -> list[dict]:
    """Train (or continue) ``resnet<d>`` for each depth into ``out/resnet<d>/``; write ``table.md`` and
    ``curves.png`` (every depth's training and test error, as in Fig. 6, middle)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], {}
    for depth in depths:
        log(f"== resnet{depth}")
        r = train_run(out / f"resnet{depth}", recipe, log=log, model=f"resnet{depth}", **fields)
        curves[f"ResNet-{depth}"] = r["records"]
        last = r["records"][-1] if r["records"] else {}
        rows.append(
            {
                "depth": depth,
                "iterations": last.get("iteration"),
                "test_error": last.get("test_error"),
                "time_s": last.get("time_s"),
                "epoch_s": median_epoch_s(r["records"]),
                "diverged": diverged_at(r),
                "hardware": _hardware(out / f"resnet{depth}"),
            }
        )
    cfg = r["config"]
    lines = [
        f"# CIFAR-10 test error ({cfg.data}, recipe {cfg.recipe}, seed {cfg.seed})",
        "",
        "| model | iterations | test error (%) | paper (%) | wall time (h) | median epoch (s) | hardware |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        time_h, epoch_s = cell(row["time_s"], ".2f", 1 / 3600), cell(row["epoch_s"])
        error = pct(row["test_error"]) if row["diverged"] is None else f"diverged at iteration {row['diverged']}"
        lines.append(
            f"| ResNet-{row['depth']} | {row['iterations'] or '—'} | {error} | "
            f"{PAPER_ERROR.get(row['depth'], '—')} | {time_h} | {epoch_s} | {row['hardware']} |"
        )
    lines += ["", TIME_NOTE]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    plot_curves(out / "curves.png", curves, title=f"recipe {cfg.recipe}: thin training error, bold test error")
    log("\n".join(lines))
    return rows


def _hardware(run: Path) -> str:
    """Where the run started (its config.json); a resume on other hardware is logged in train.log."""
    try:
        p = json.loads((run / "config.json").read_text())["provenance"]
    except (OSError, ValueError, KeyError):
        return "—"
    return f"{p.get('gpu') or p.get('cpu')}, {p.get('threads')} threads, torch {p.get('torch')}"


@dataclass(frozen=True)
class CifarTableSettings:
    depths: tuple[int, ...] = setting((20, 32, 44, 56, 110), "CIFAR depths, 6n+2", metavar="D", nargs="+")
    training: dict = training()


@register("cifar-table", "ResNets of several depths beside the paper's CIFAR-10 errors (He et al. Table 6)",
          CifarTableSettings)  # fmt: skip
def _cifar_table(settings: CifarTableSettings, data: str | None, out: Path, log) -> object:
    return run_cifar_table(out, settings.depths, log=log, data=data or "default", **settings.training)
