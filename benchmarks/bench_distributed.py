"""Training throughput of 1 process against N processes under torchrun on this machine, measured in one
run: ResNet-20, the same global batch, images/s from the difference of two run lengths (so that start-up,
data loading and the final evaluation cancel out).

    .venv/bin/python benchmarks/bench_distributed.py [--nproc 2] [--batch-size 128] [--data npz:PATH]

One process uses all the cores as threads; each of the N processes gets cores/N threads. Run it alone.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resnetlab import hardware

CIFAR = Path(__file__).parents[1].parent / "shared" / "data" / "cifar10" / "cifar10.npz"


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, nargs=2, default=(10, 50), metavar=("SHORT", "LONG"))
    p.add_argument("--data", default=f"npz:{CIFAR}" if CIFAR.is_file() else "default")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"CPU: {hardware.describe()}, {cores} cores; ResNet-20, global batch {args.batch_size}, {args.data}")
    results = {}
    for label, nproc in (("1 process", 1), (f"{args.nproc} processes", args.nproc)):
        threads = max(1, cores // nproc)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        times = []
        for steps in args.steps:
            with tempfile.TemporaryDirectory() as tmp:
                train = ["-m", "resnetlab", "train", "--model", "resnet20", "--data", args.data, "--recipe", "cosine",
                         "--iterations", str(steps), "--batch-size", str(args.batch_size), "--eval-every", "0",
                         "--subset", "10000", "--out", f"{tmp}/r"]  # fmt: skip
                if nproc == 1:
                    cmd = [sys.executable, *train, "--threads", str(threads)]
                else:
                    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           *train]  # fmt: skip
                times.append(wall(cmd, env))
        ips = (args.steps[1] - args.steps[0]) * args.batch_size / (times[1] - times[0])
        results[label] = ips
        print(f"{label:<12} × {threads} threads: {ips:7.1f} img/s ({args.steps[1] - args.steps[0]} steps in "
              f"{times[1] - times[0]:.1f} s)")  # fmt: skip
    one, many = results.values()
    print(f"{args.nproc} processes / 1 process: {many / one:.2f}x")


if __name__ == "__main__":
    main()
