"""Kill a torchrun worker again and again and count how many restarts come back: the reliability check
of elastic restarts (docs/distributed.md). Run by hand, alone:

    .venv/bin/python benchmarks/torchrun_restarts.py [--tries 10] [--nproc 2] [--rendezvous prefix|env]

Each try trains resnet8 on synthetic 16×16 images under ``torchrun --standalone --max-restarts=1``,
kills one worker with SIGKILL after the first checkpoint (rank 0 and rank 1 in turn), and checks that
the run finishes with the weights of an uninterrupted run with the same number of processes (bitwise).
``--rendezvous env`` runs the workers with plain ``env://`` (benchmarks/env_rendezvous_worker.py) instead
of resnetlab's per-restart key prefix.
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
from resnetlab.hardware import describe

WORKER = {"prefix": ["-m", "resnetlab"], "env": [str(Path(__file__).with_name("env_rendezvous_worker.py"))]}


def run(out: Path, data: Path, nproc: int, restarts: int, background: bool = False, rendezvous: str = "prefix"):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           f"--max-restarts={restarts}", *WORKER[rendezvous], "train", "--model", "resnet8", "--data", f"npz:{data}",
           "--iterations", "40", "--batch-size", "32", "--save-every", "5", "--recipe", "cosine", "--dist-timeout",
           "30", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 (closed when the process ends)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc if background else proc.wait()


def rank_of(pid: int) -> int:
    """A torchrun worker's RANK, from its environment."""
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(e for e in env if e.startswith(b"RANK=")).split(b"=", 1)[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tries", type=int, default=5)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--rendezvous", choices=list(WORKER), default="prefix")
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
        proc = run(out, data, args.nproc, 1, background=True, rendezvous=args.rendezvous)
        while not (out / "checkpoints").is_dir() or not any(p.name.isdigit() for p in (out / "checkpoints").iterdir()):
            time.sleep(0.05)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        by_rank = {rank_of(int(pid)): int(pid) for pid in workers}
        os.kill(by_rank[k % args.nproc], signal.SIGKILL)
        ok = proc.wait() == 0
        same = ok and all(torch.equal(v, read_checkpoint(out, tensors=False)[0][k2]) for k2, v in reference.items())
        refused = "connectFullMesh" in out.with_suffix(".log").read_text()
        print(f"try {k + 1} (rank {k % args.nproc} killed): {'came back' if ok else 'did NOT come back'}"
              f"{', weights bitwise equal to the uninterrupted run' if same else ''}"
              f"{', gloo connectFullMesh refused' if refused else ''}", flush=True)  # fmt: skip
        came_back += ok
        equal += same
    print(f"{came_back} of {args.tries} restarts came back; {equal} ended bitwise equal to the uninterrupted run "
          f"({args.nproc} processes, {args.rendezvous} rendezvous, torch {torch.__version__}, {describe()}); "
          f"logs in {tmp}")  # fmt: skip


if __name__ == "__main__":
    main()
