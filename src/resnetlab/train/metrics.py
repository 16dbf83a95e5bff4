"""Per-epoch metrics as CSV and JSON with fixed columns, and the error curves of the paper's Fig. 6."""

from __future__ import annotations

import json
import os
from pathlib import Path

COLUMNS = (
    "epoch", "iteration", "train_loss", "train_error", "val_error", "test_error", "lr", "grad_norm", "time_s",
)  # fmt: skip


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_metrics(out: Path, records: list[dict]) -> None:
    """``metrics.csv`` and ``metrics.json``: errors as fractions, empty/null where a split is absent."""
    rows = [{c: r.get(c) for c in COLUMNS} for r in records]
    _atomic_write(out / "metrics.json", json.dumps(rows, indent=1))
    lines = [",".join(COLUMNS)] + [
        ",".join("" if r[c] is None else f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS)
        for r in rows
    ]
    _atomic_write(out / "metrics.csv", "\n".join(lines) + "\n")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported late: only plotting needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write a figure under a temporary name and rename it into place, then close it."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    pyplot().close(fig)
    os.replace(tmp, path)


def plot_curves(path: Path, runs: dict[str, list[dict]], title: str = "") -> None:
    """Training error (thin) and test error (bold) against iterations, in %, as in Fig. 6;
    ``runs`` maps a label to its metric records."""
    fig, ax = pyplot().subplots(figsize=(6, 4), dpi=120)
    for i, (label, records) in enumerate(runs.items()):
        color = f"C{i}"
        it = [r["iteration"] for r in records]
        ax.plot(it, [100 * r["train_error"] for r in records], color=color, lw=0.8, alpha=0.8, label=f"{label} train")
        for split, style in (("test_error", "-"), ("val_error", "--")):
            points = [(r["iteration"], 100 * r[split]) for r in records if r.get(split) is not None]
            if points:
                ax.plot(
                    *zip(*points),
                    color=color,
                    lw=2.2,
                    ls=style,
                    marker="o" if len(points) < 3 else None,
                    label=f"{label} {split.split('_')[0]}",
                )  # a marker: one evaluation is still seen
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(title or "thin: training error, bold: test error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
