"""Figures: the error curves of the paper's Fig. 6, confusion matrices, and the two helpers every
experiment draws with (matplotlib is imported when the first figure is drawn, on the file-only Agg backend)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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


def plot_confusion(path: Path, cm: np.ndarray, names: list[str], error: float) -> None:
    plt = pyplot()
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n), dpi=120)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test error {100 * error:.2f}%")
    fig.tight_layout()
    save_figure(fig, path)
