"""Training throughput of 1 process against N processes under torchrun on this machine, measured in one
run: ResNet-20 on the ``fast-cifar`` path (``--precision auto``: the CPU's precision, torch.compile,
channels-last where chosen; synchronized BN under torchrun), the same global batch, the time per step
read from each run's own epoch records, epochs 2 and 3 (after compilation, before the final evaluation).

    .venv/bin/python benchmarks/bench_distributed.py [--nproc 2] [--batch-size 256] [--recipe fast-cifar]

One process uses all the cores as threads; each of the N processes gets cores/N threads. The time per
step of the N processes is split into compute, measured by N independent processes (no process group)
running at once, each on its slice of the batch, and the rest: all-reduces and waiting for each other
(gradients, BN statistics, the step's loss and error). Progressive resizing is off (every step the same
size); 10,000 training images. Run it alone.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from resnetlab import hardware

IMAGES = 10_000  # training images (--subset)
CIFAR = Path(__file__).parents[1].parent / "shared" / "data" / "cifar10" / "cifar10.npz"


def step_s(cmds: list[list[str]], env: dict, out: Path, steps_per_epoch: int) -> float:
    """Seconds per step of the runs (started together, each writing ``out``/r<k>): epochs 2 and 3 of run 0."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
    for proc in procs:
        output, _ = proc.communicate()
        if proc.returncode:
            sys.exit(output[-3000:])
    times = [r["time_s"] for r in json.loads((out / "r0" / "metrics.json").read_text())]
    return (times[2] - times[0]) / (2 * steps_per_epoch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256, help="the global batch")
    p.add_argument("--recipe", default="fast-cifar")
    p.add_argument("--data", default=f"npz:{CIFAR}" if CIFAR.is_file() else "default")
    args = p.parse_args()
    cores, n, batch = os.cpu_count() or 1, args.nproc, args.batch_size
    print(f"CPU: {hardware.describe()}, {cores} cores; ResNet-20, recipe {args.recipe} (--small-size 0), "
          f"global batch {batch}, {args.data}")  # fmt: skip

    def train(out: Path, per_batch: int) -> list[str]:
        return ["-m", "resnetlab", "train", "--model", "resnet20", "--data", args.data, "--recipe", args.recipe,
                "--epochs", "4", "--batch-size", str(per_batch), "--eval-every", "0", "--tta", "none",
                "--small-size", "0", "--subset", str(IMAGES), "--out", str(out)]  # fmt: skip

    def one(tmp: Path) -> list[list[str]]:
        return [[sys.executable, *train(tmp / "r0", batch), "--threads", str(cores)]]

    def group(tmp: Path) -> list[list[str]]:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
        return [[sys.executable, *launcher, *train(tmp / "r0", batch)]]

    def independent(tmp: Path) -> list[list[str]]:  # N processes at once, no process group
        return [[sys.executable, *train(tmp / f"r{k}", batch // n), "--threads", str(cores // n)] for k in range(n)]

    configs = {"1 process": (cores, one, batch), f"{n} processes": (cores // n, group, batch),
               f"{n} independent (compute only)": (cores // n, independent, batch // n)}  # fmt: skip
    seconds = {}
    for label, (threads, commands, per_batch) in configs.items():
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads))}
        with tempfile.TemporaryDirectory() as tmp:
            seconds[label] = step_s(commands(Path(tmp)), env, Path(tmp), IMAGES // per_batch)
        print(f"{label:<32} × {threads} threads: {1000 * seconds[label]:6.1f} ms per step of {per_batch} images"
              f"{'' if per_batch < batch else f', {batch / seconds[label]:7.1f} img/s'}", flush=True)  # fmt: skip
    whole, many, compute = seconds.values()
    print(f"{n} processes / 1 process: {whole / many:.2f}x the images/s; a step of the {n} processes: "
          f"{1000 * compute:.1f} ms compute + {1000 * (many - compute):.1f} ms all-reduce and waiting")  # fmt: skip


if __name__ == "__main__":
    main()
