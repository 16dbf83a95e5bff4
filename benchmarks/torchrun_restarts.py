"""Kill a torchrun worker again and again and count how many restarts come back: the reliability check
of elastic restarts (docs/distributed.md). Run by hand, alone:

    .venv/bin/python benchmarks/torchrun_restarts.py [--tries 5] [--nproc 2]

Each try trains resnet8 on synthetic 16×16 images under ``torchrun --standalone --max-restarts=1``,
kills one worker with SIGKILL after the first checkpoint, and checks that the run finishes with the
weights of an uninterrupted run with the same number of processes (bitwise).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from resnetlab.checkpoints import read_checkpoint


def run(out: Path, data: Path, nproc: int, restarts: int, background: bool = False):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           f"--max-restarts={restarts}", "-m", "resnetlab", "train", "--model", "resnet8", "--data", f"npz:{data}",
           "--iterations", "40", "--batch-size", "32", "--save-every", "5", "--recipe", "cosine", "--dist-timeout",
           "30", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 (closed when the process ends)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc if background else proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tries", type=int, default=5)
    p.add_argument("--nproc", type=int, default=2)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="restarts-"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (320, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 320)
    data = tmp / "data.npz"
    np.savez(data, x_train=x, y_train=y, x_test=x[:64], y_test=y[:64])
    assert run(tmp / "whole", data, args.nproc, 0) == 0, (tmp / "whole.log").read_text()
    reference = read_checkpoint(tmp / "whole", tensors=False)[0]
    came_back = equal = 0
    for k in range(args.tries):
        out = tmp / f"try{k}"
        proc = run(out, data, args.nproc, 1, background=True)
        while not (out / "checkpoints").is_dir() or not any(p.name.isdigit() for p in (out / "checkpoints").iterdir()):
            time.sleep(0.05)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(workers[-1]), signal.SIGKILL)
        ok = proc.wait() == 0
        same = ok and all(torch.equal(v, read_checkpoint(out, tensors=False)[0][k2]) for k2, v in reference.items())
        refused = "connectFullMesh" in out.with_suffix(".log").read_text()
        print(f"try {k + 1}: {'came back' if ok else 'did NOT come back'}"
              f"{', weights bitwise equal to the uninterrupted run' if same else ''}"
              f"{', gloo connectFullMesh refused' if refused else ''}", flush=True)  # fmt: skip
        came_back += ok
        equal += same
    print(f"{came_back} of {args.tries} restarts came back; {equal} ended bitwise equal to the uninterrupted run "
          f"({args.nproc} processes, torch {torch.__version__}); logs in {tmp}")  # fmt: skip


if __name__ == "__main__":
    main()
