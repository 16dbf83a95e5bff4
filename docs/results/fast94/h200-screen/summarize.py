"""The screen's table: each variant's seeds, mean and std, read from the runs' metrics.json (python3 summarize.py)."""

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

runs = Path(__file__).parent / "runs"
groups = defaultdict(list)
for metrics in sorted(runs.glob("*/metrics.json")):
    final = json.loads(metrics.read_text())[-1]
    name = metrics.parent.name
    split = "val" if final.get("val_error") is not None else "test"
    variant, seed = re.fullmatch(r"(.+)-s(\d+)", name).groups()
    single, tta = 1 - final[f"{split}_error"], 1 - final[f"{split}_error_tta"]
    groups[variant].append((int(seed), final["epoch"], single, tta, split))
print("| variant | split | epochs | seeds | single view, mean ± std | flip-translate, mean ± std | "
      "flip-translate per seed |")
print("|---|---|---|---|---|---|---|")
for variant, rows in groups.items():
    rows.sort()
    single, tta = [r[2] for r in rows], [r[3] for r in rows]
    pm = lambda v: f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}%"  # noqa: E731
    print(f"| {variant} | {rows[0][4]} | {rows[0][1]} | {len(rows)} | {pm(single)} | {pm(tta)} | "
          + ", ".join(f"{100 * t:.2f}" for t in tta) + " |")
