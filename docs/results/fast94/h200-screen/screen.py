"""Screen fast94 variants' validation accuracy on a lent GPU (#31): many seeds in minutes, where one CPU run takes
half an hour. Runs `python -m resnetlab train --recipe fast94` with time_to_accuracy.py's paths and flags, several
processes at once on the one GPU (a shared compile cache), in the queue's order, until a deadline; a summary after
each run, so that a run cut short still leaves what finished. Accuracy only: wall times here are of concurrent runs.

    python3 screen.py --data /root/cifar10.npz --out $OUT --deadline 420 --jobs 4
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "benchmarks"))
from time_to_accuracy import PATHS, flags  # noqa: E402

# (name, path, epochs, seed, val_split): validation first, by priority; then test-set runs of the recipe as it is.
QUEUE = (
    [(f"fast-12ep-s{s}", "fast", 12, s, 5000) for s in (0, 1)]
    + [(f"fast-11ep-s{s}", "fast", 11, s, 5000) for s in (0, 1, 2, 3)]
    + [(f"fast-12ep-s{s}", "fast", 12, s, 5000) for s in (2, 3)]
    + [(f"fast-10ep-s{s}", "fast", 10, s, 5000) for s in (0, 1)]
    + [(f"fast-11ep-s{s}", "fast", 11, s, 5000) for s in (4, 5)]
    + [(f"fast-12ep-s{s}", "fast", 12, s, 5000) for s in (4, 5)]
    + [(f"fast-10ep-s{s}", "fast", 10, s, 5000) for s in (2, 3)]
    + [(f"test-12ep-s{s}", "fast", 12, s, 0) for s in (0, 1, 2, 3, 4)]
)


def command(data: str, out: Path, path: str, epochs: int, seed: int, val_split: int, threads: int) -> list[str]:
    fields = {"data": f"npz:{data}", "seed": seed, "out": str(out), "epochs": epochs, "threads": threads,
              "device": "cuda", **PATHS["fast94"][path]}  # fmt: skip
    if val_split:
        fields["val_split"] = val_split
    return [sys.executable, "-m", "resnetlab", "train", "--recipe", "fast94", *flags(fields)]


def result(out: Path) -> dict:
    records = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else []
    final = records[-1] if records else {}
    keys = ("val_error", "val_error_tta", "test_error", "test_error_tta")
    return {k.replace("error", "accuracy"): round(1 - final[k], 4) for k in keys if final.get(k) is not None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("/root/runs"))
    parser.add_argument("--deadline", type=float, default=420, help="seconds after which no run starts")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--limit", type=int, help="the first N runs of the queue only (a smoke test)")
    parser.add_argument("--extra", default="", help="flags added to every run (a smoke test: '--subset 2048')")
    args = parser.parse_args()
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": "/root/inductor", "PYTHONPATH": str(ROOT / "src")}
    start = time.time()
    queue, running, done = list(QUEUE[: args.limit]), {}, []
    while queue or running:
        while queue and len(running) < args.jobs and time.time() - start < args.deadline:
            name, path, epochs, seed, val = queue.pop(0)
            out = args.runs / name
            args.runs.mkdir(parents=True, exist_ok=True)
            log = open(args.runs / f"{name}.stderr", "w")
            cmd = command(args.data, out, path, epochs, seed, val, args.threads) + args.extra.split()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
            running[name] = (proc, time.time(), (path, epochs, seed, val), cmd)
        if time.time() - start >= args.deadline:
            queue = []  # no run starts after the deadline; those running finish
        for name, (proc, t0, spec, cmd) in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                row = {"name": name, "path": spec[0], "epochs": spec[1], "seed": spec[2], "val_split": spec[3],
                       "rc": proc.returncode, "wall_s": round(time.time() - t0, 1), "started_s": round(t0 - start, 1),
                       **result(args.runs / name), "command": " ".join(cmd[1:])}  # fmt: skip
                done.append(row)
                print(json.dumps(row), flush=True)
                (args.out / "screen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in done))
        time.sleep(1)


if __name__ == "__main__":
    main()
