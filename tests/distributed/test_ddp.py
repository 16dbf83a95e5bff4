"""Data-parallel training under torchrun on CPU (gloo), 2 processes of 1 thread on localhost: the same
computation as 1 process, faults that end cleanly or restart to the same weights, two agents as two nodes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import synthetic_images

from resnetlab.checkpoints import load_checkpoint, read_checkpoint
from resnetlab.cli import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ROOT = Path(__file__).parents[2]  # on the workers' path: tests.hooks


def _train_args(data, out, *extra):
    return ["train", "--data", f"npz:{data}", "--batch-size", "32", "--out", str(out), *extra]


def _torchrun(args, *launcher, nproc=2, background=False, env=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", *(launcher or ["--standalone"]),
           f"--nproc_per_node={nproc}", "-m", "resnetlab", *args]  # fmt: skip
    env = {**ENV, **(env or {})}
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # a hang guard: 108 s seen


def _weights(run):
    return read_checkpoint(run, tensors=False)[0]


def _max_relative(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max() / a[k].double().abs().max().clamp(min=1e-12))
               for k in a if a[k].is_floating_point())  # fmt: skip


@pytest.mark.slow
def test_two_processes_compute_what_one_does(tiny_npz, tmp_path):
    """With gradients clipped (to a norm every step exceeds), and a test hook on both workers."""
    common = ["--model", "resnet20", "--iterations", "3", "--lr", "0.01", "--recipe", "paper-cifar",
              "--clip-grad-norm", "0.3"]  # fmt: skip
    assert main([*_train_args(tiny_npz, tmp_path / "one", *common), "--threads", "1"]) == 0
    hooks = {"RESNETLAB_TEST_HOOKS": "tests.hooks:recorder", "RESNETLAB_TEST_RECORD": str(tmp_path / "record"),
             "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    synced = _torchrun(_train_args(tiny_npz, tmp_path / "sync", *common), env=hooks)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    records = [json.loads((tmp_path / "record" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in records] == [0, 1] and all(r["started"] == 1 for r in records)
    for r in records:  # what the optimizer saw on each rank: clipped, and the same on both
        assert len(r["norms"]) == 3 and max(r["norms"]) <= 0.3 * (1 + 1e-6) and min(r["norms"]) > 0.3 * 0.99
    assert records[0]["norms"] == pytest.approx(records[1]["norms"], rel=1e-6)
    grad_norm = json.loads((tmp_path / "sync" / "metrics.json").read_text())[-1]["grad_norm"]
    assert grad_norm == pytest.approx(json.loads((tmp_path / "one" / "metrics.json").read_text())[-1]["grad_norm"],
                                      rel=2e-3) and grad_norm > 0.3  # fmt: skip
    per_rank = _torchrun(_train_args(tiny_npz, tmp_path / "local", *common, "--no-sync-bn"))
    assert per_rank.returncode == 0, per_rank.stdout + per_rank.stderr
    one, sync, local = (_weights(tmp_path / r) for r in ("one", "sync", "local"))
    # the same up to the order of float additions (1 vs 2 threads of one process differ by ~3e-4 here)
    assert _max_relative(one, sync) < 2e-3
    stats = {k: v for k, v in one.items() if "running_" in k}
    assert _max_relative(stats, {k: sync[k] for k in stats}) < 2e-3
    # per-process statistics are another computation: the running statistics move away
    assert _max_relative(stats, {k: local[k] for k in stats}) > 2e-2
    log = (tmp_path / "sync" / "train.log").read_text()
    assert "1 threads per process × 2 processes (batch norm synchronized)" in log
    assert synced.stdout.count("config:") == 1  # rank 1 prints nothing


@pytest.mark.slow
def test_the_documented_fast_cifar_command(tiny_npz, tmp_path):
    """``torchrun ... --recipe fast-cifar``: torch.compile, the CPU's precision, channels-last where chosen and
    synchronized BN, without a graph break, computing what one process computes on the same global batch."""
    from tests.hooks import Recorder

    import resnetlab
    from resnetlab import hardware
    from resnetlab.train import fit, make_config

    common = dict(model="resnet8", iterations=3, lr=0.01, warmup_iterations=0, small_size=0, batch_size=32,
                  tta="none")  # fmt: skip
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in common.items()]
    record = {"RESNETLAB_TEST_HOOKS": "tests.hooks:recorder", "RESNETLAB_TEST_RECORD": str(tmp_path / "record"),
              "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    proc = _torchrun(_train_args(tiny_npz, tmp_path / "ddp", "--recipe", "fast-cifar", *flags), env=record)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resolved = json.loads((tmp_path / "ddp" / "config.json").read_text())["resolved"]
    precision, _, channels_last, _ = hardware.fast_path(torch.device("cpu"))
    assert (resolved["precision"], resolved["compile"], resolved["channels_last"]) == (precision, True, channels_last)
    # torch.compile(DDP(model)) breaks in DDP's own forward (3 times in torch 2.13: its logger, and the call
    # dynamo skips on purpose so that DDP's hooks run); the sync BN's all-reduces are nodes of the compiled
    # graph, not breaks in it (before: 3 breaks at each of resnet8's 7 BN layers)
    layers = sum("BatchNorm" in type(m).__name__ for m in resnetlab.create_model("resnet8").modules())
    for rank in (0, 1):
        assert json.loads((tmp_path / "record" / f"rank{rank}.json").read_text())["graph_breaks"] < layers
    one = Recorder()  # one process, eager, the same precision and layout: the reference
    fit(make_config("fast-cifar", data=f"npz:{tiny_npz}", out=str(tmp_path / "one"), compile=False, **common),
        hooks=[one])  # fmt: skip
    init, a, b = one.initial, _weights(tmp_path / "one"), _weights(tmp_path / "ddp")
    params = [k for k in init if init[k].is_floating_point() and "running_" not in k]
    stats = [k for k in init if "running_" in k]

    def norm(x, y, keys):
        return float(sum(((x[k].double() - y[k].double()) ** 2).sum() for k in keys).sqrt())

    # measured: 0.02-0.04 (compiled or not, 1 or 2 processes); per-process BN statistics: 0.15
    assert norm(a, b, params) / norm(a, init, params) < 0.08
    assert norm(a, b, stats) / norm(a, init, stats) < 1e-2  # per-process statistics: 5e-2


def test_batch_must_divide_among_processes(tiny_npz, tmp_path, monkeypatch, cli):
    """Checked before any process group starts, from what torchrun sets in each worker's environment: a worker
    in this process (a torchrun of two took 13 s on an AVX2-only EPYC for the same line)."""
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    code, _, err = cli(*_train_args(tiny_npz, tmp_path / "r", "--model", "resnet8", "--iterations", "1",
                                    "--batch-size", "31"))  # fmt: skip
    assert code != 0 and err.splitlines() == [
        "resnetlab: error: --batch-size 31 (the global batch) does not divide among 2 processes; choose a multiple of 2"
    ]
    assert not (tmp_path / "r" / "checkpoints").exists()


def _kill_a_worker_after_first_checkpoint(launcher, out, rank=1):
    deadline = time.time() + 60
    while not (out / "checkpoints").is_dir() or not any(p.name.isdigit() for p in (out / "checkpoints").iterdir()):
        assert time.time() < deadline and launcher.poll() is None, launcher.stdout.read() if launcher.stdout else ""
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    by_rank = {_rank_of(int(pid)): int(pid) for pid in workers}
    os.kill(by_rank[rank], signal.SIGKILL)


def _rank_of(pid: int) -> int:
    """A torchrun worker's RANK, from its environment."""
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(e for e in env if e.startswith(b"RANK=")).split(b"=", 1)[1])


RESTARTED = ["--model", "resnet8", "--iterations", "30", "--save-every", "5", "--recipe", "cosine", "--precision",
             "auto", "--no-compile"]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run the restart tests must end equal to: its data and its weights."""
    folder = tmp_path_factory.mktemp("restarts")
    (x, y), (xt, yt) = synthetic_images(320), synthetic_images(80, seed=1)
    np.savez(folder / "tiny.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    whole = _torchrun(_train_args(folder / "tiny.npz", folder / "whole", *RESTARTED))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    return folder / "tiny.npz", _weights(folder / "whole")


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.slow
def test_killed_worker_restarts_to_the_same_weights(uninterrupted, tmp_path, rank):
    """The restarted group repeats its command line, --precision auto included, and resumes the run."""
    data, a = uninterrupted
    launcher = _torchrun(_train_args(data, tmp_path / "killed", *RESTARTED), "--standalone", "--max-restarts=1",
                         background=True)  # fmt: skip
    _kill_a_worker_after_first_checkpoint(launcher, tmp_path / "killed", rank)
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, output
    assert "resumed" in (tmp_path / "killed" / "train.log").read_text()
    b = _weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise


@pytest.mark.slow
def test_killed_worker_without_restarts_stops_all_within_the_timeout(tiny_npz, tmp_path):
    args = ["--model", "resnet8", "--iterations", "40", "--save-every", "5", "--dist-timeout", "5"]
    launcher = _torchrun(_train_args(tiny_npz, tmp_path / "r", *args), background=True)
    _kill_a_worker_after_first_checkpoint(launcher, tmp_path / "r")
    start = time.time()
    output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode != 0 and time.time() - start < 30, output
    model, meta = load_checkpoint(tmp_path / "r")  # the last checkpoint is whole
    assert 0 < meta["iteration"] < 40
    # the checkpoint holds global state only: one process continues what two started
    assert main(["train", "--resume", str(tmp_path / "r"), "--threads", "1"]) == 0
    log = (tmp_path / "r" / "train.log").read_text()
    assert "resuming with 1 processes (the run so far: 2)" in log and "computes the same" in log
    assert load_checkpoint(tmp_path / "r")[1]["iteration"] == 40


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_agents_as_two_nodes(tiny_npz, tmp_path):
    endpoint = f"127.0.0.1:{_free_port()}"
    # 12 iterations of 10 per epoch: an epoch's end without --save-every, where every process takes part in
    # the checkpoint (rank 0 alone waited there for the others, which had gone on to the next step)
    args = _train_args(tiny_npz, tmp_path / "r", "--model", "resnet8", "--iterations", "12", "--dist-timeout", "20")
    nodes = [_torchrun(args, "--nnodes=2", f"--node-rank={k}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                       "--rdzv-id=two-nodes", nproc=1, background=True) for k in (0, 1)]  # fmt: skip
    outputs = [node.communicate(timeout=120)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), outputs
    assert "× 2 processes" in (tmp_path / "r" / "train.log").read_text()


def test_run_killed_before_its_first_checkpoint_resumes(tiny_npz, tmp_path):
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "resnetlab", *_train_args(tiny_npz, out, "--model", "resnet8", "--iterations", "6")]
    proc = subprocess.Popen([*argv, "--threads", "1"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "config.json").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.kill()  # kill -9, before any checkpoint could be written
    proc.wait()
    assert not any((out / "checkpoints").glob("[0-9]*"))
    assert main(["train", "--resume", str(out)]) == 0
    assert "starting it over" in (out / "train.log").read_text()
    assert load_checkpoint(out)[1]["iteration"] == 6
