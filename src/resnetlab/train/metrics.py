"""Per-epoch metrics as CSV and JSON with fixed columns (the curves are drawn by ``resnetlab.plots``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

COLUMNS = (
    "epoch", "iteration", "train_loss", "train_error", "val_error", "test_error", "val_error_tta", "test_error_tta",
    "lr", "grad_norm", "time_s", "images_per_s", "data_wait_s", "bad_files",
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
