"""Training throughput of 1 process against N processes under torchrun on this machine, measured in one
run: ResNet-20 on the ``fast-cifar`` path (``--precision auto``: the CPU's precision, torch.compile,
channels-last where chosen; synchronized BN under torchrun), the same global batch, images/s from the
difference of two run lengths (so that start-up, compilation, data loading and the final evaluation cancel).

    .venv/bin/python benchmarks/bench_distributed.py [--nproc 2] [--batch-size 256] [--recipe fast-cifar]

One process uses all the cores as threads; each of the N processes gets cores/N threads. The time per
step of the N processes is split into compute, measured by N independent processes (no process group)
running at once, each on its slice of the batch, and the rest: all-reduces and waiting for each other
(gradients, BN statistics, the step's loss and error). Progressive resizing is off (every step the same
size). Run it alone.
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


def wall(cmds: list[list[str]], env: dict) -> float:
    """Seconds until every command (started together) has finished."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
    for proc in procs:
        output, _ = proc.communicate()
        if proc.returncode:
            sys.exit(output[-3000:])
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256, help="the global batch")
    p.add_argument("--recipe", default="fast-cifar")
    p.add_argument("--steps", type=int, nargs=2, default=(10, 50), metavar=("SHORT", "LONG"))
    p.add_argument("--data", default=f"npz:{CIFAR}" if CIFAR.is_file() else "default")
    args = p.parse_args()
    cores, n, batch = os.cpu_count() or 1, args.nproc, args.batch_size
    print(f"CPU: {hardware.describe()}, {cores} cores; ResNet-20, recipe {args.recipe} (--small-size 0), "
          f"global batch {batch}, {args.data}")  # fmt: skip

    def train(out: str, steps: int, per_batch: int) -> list[str]:
        return ["-m", "resnetlab", "train", "--model", "resnet20", "--data", args.data, "--recipe", args.recipe,
                "--iterations", str(steps), "--batch-size", str(per_batch), "--eval-every", "0", "--tta", "none",
                "--small-size", "0", "--subset", "10000", "--out", out]  # fmt: skip

    def one(tmp: str, steps: int) -> list[list[str]]:
        return [[sys.executable, *train(f"{tmp}/r", steps, batch), "--threads", str(cores)]]

    def group(tmp: str, steps: int) -> list[list[str]]:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
        return [[sys.executable, *launcher, *train(f"{tmp}/r", steps, batch)]]

    def independent(tmp: str, steps: int) -> list[list[str]]:  # N processes at once, no process group
        return [[sys.executable, *train(f"{tmp}/r{k}", steps, batch // n), "--threads", str(cores // n)]
                for k in range(n)]  # fmt: skip

    configs = {"1 process": (cores, one), f"{n} processes": (cores // n, group),
               f"{n} independent (compute only)": (cores // n, independent)}  # fmt: skip
    step_s = {}
    for label, (threads, commands) in configs.items():
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads))}
        times = []
        for steps in args.steps:
            with tempfile.TemporaryDirectory() as tmp:
                times.append(wall(commands(tmp, steps), env))
        step_s[label] = (times[1] - times[0]) / (args.steps[1] - args.steps[0])
        print(f"{label:<32} × {threads} threads: {batch / step_s[label]:7.1f} img/s, {1000 * step_s[label]:6.1f} ms "
              f"per step of {batch} images", flush=True)  # fmt: skip
    one, many, compute = step_s.values()
    print(f"{n} processes / 1 process: {one / many:.2f}x the images/s; a step of the {n} processes: "
          f"{1000 * compute:.1f} ms compute + {1000 * (many - compute):.1f} ms all-reduce and waiting")  # fmt: skip


if __name__ == "__main__":
    main()
