"""Processes that fail together under torchrun (2 processes of 1 thread, gloo): a fault on one process,
injected by a test hook, or a Ctrl-C to the launcher stops every process at once, with one line from rank 0,
a whole checkpoint and a resume that continues bit for bit."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import synthetic_images

from resnetlab.checkpoints import latest, read_checkpoint

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
ARGS = ["--model", "resnet8", "--iterations", "12", "--batch-size", "32", "--recipe", "cosine", "--save-every", "1",
        "--dist-timeout", "60"]  # fmt: skip
GRACE_S = 30  # torchrun's: after it, the launcher kills what is left


def _torchrun(args, *launcher, env=None, background=False, logs=None):
    """``logs``: a folder where torchrun writes each worker's stdout and stderr apart (its --redirects)."""
    redirect = [] if logs is None else ["--redirects=3", f"--log-dir={logs}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *(launcher or ["--standalone"]), *redirect,
           "--nproc_per_node=2", "-m", "resnetlab", *args]  # fmt: skip
    env = {**ENV, **(env or {})}
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)


def _printed(logs: Path) -> tuple[list[str], str]:
    """Rank 0's lines on stderr, and everything rank 1 printed, in the first attempt."""
    rank0 = next(logs.rglob("attempt_0/0/stderr.log")).read_text().splitlines()
    rank1 = (
        next(logs.rglob("attempt_0/1/stdout.log")).read_text() + next(logs.rglob("attempt_0/1/stderr.log")).read_text()
    )
    return [line for line in rank0 if line.strip()], rank1


def _fault(spec: str) -> dict:
    return {"RESNETLAB_TEST_HOOKS": "tests.hooks:fault", "RESNETLAB_TEST_FAULT": spec}


def _weights(run):
    return read_checkpoint(run, tensors=False)[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    (x, y), (xt, yt) = synthetic_images(320), synthetic_images(80, seed=1)
    np.savez(folder / "tiny.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    return folder / "tiny.npz"


@pytest.fixture(scope="module")
def whole(data):
    """The run no fault interrupts."""
    out = data.parent / "whole"
    proc = _torchrun(["train", "--data", f"npz:{data}", "--out", str(out), *ARGS])
    assert proc.returncode == 0, proc.stdout
    return _weights(out)


def _resumes_bit_for_bit(out, whole):
    proc = _torchrun(["train", "--resume", str(out)])
    assert proc.returncode == 0, proc.stdout
    weights = _weights(out)
    assert all(torch.equal(whole[k], weights[k]) for k in whole)


@pytest.mark.parametrize("kind,rank", [("nan-loss", 1), ("nan-loss", 0), ("nan-weights", 0)])
@pytest.mark.slow
def test_a_fault_on_one_process_stops_every_process(data, whole, tmp_path, kind, rank):
    out = tmp_path / "r"
    start = time.time()
    proc = _torchrun(["train", "--data", f"npz:{data}", "--out", str(out), *ARGS], env=_fault(f"{kind}:{rank}:5"),
                     logs=tmp_path / "logs")  # fmt: skip
    assert proc.returncode != 0 and time.time() - start < GRACE_S, proc.stdout
    lines, other = _printed(tmp_path / "logs")  # one line, from rank 0: what happened, where to continue from
    assert len(lines) == 1 and "training diverged" in lines[0] and "last good checkpoint" in lines[0], lines
    assert other == ""  # rank 1 prints nothing
    what = "the loss is nan" if kind == "nan-loss" else "the weights are not finite"
    assert f"{what} at iteration 6" in lines[0]
    assert latest(out / "checkpoints").name == "5"  # the last completed step with finite weights
    assert (out / "diverged.json").is_file()
    if kind == "nan-loss" and rank == 0:
        _resumes_bit_for_bit(out, whole)  # without the fault: what the whole run computed


@pytest.mark.slow
def test_a_diverged_run_is_not_restarted(data, tmp_path):
    out = tmp_path / "r"
    start = time.time()
    proc = _torchrun(["train", "--data", f"npz:{data}", "--out", str(out), *ARGS], "--standalone", "--max-restarts=1",
                     env=_fault("nan-loss:1:3"))  # fmt: skip
    assert proc.returncode != 0 and time.time() - start < GRACE_S + 15, proc.stdout
    assert "torchrun does not restart it" in proc.stdout and latest(out / "checkpoints").name == "3"


@pytest.mark.slow
def test_ctrl_c_to_torchrun_stops_every_process_with_a_checkpoint(data, whole, tmp_path):
    out = tmp_path / "r"
    launcher = _torchrun(["train", "--data", f"npz:{data}", "--out", str(out), *ARGS], background=True,
                         logs=tmp_path / "logs")  # fmt: skip
    deadline = time.time() + 60
    while latest(out / "checkpoints") is None:
        assert time.time() < deadline and launcher.poll() is None, launcher.communicate()[0]
        time.sleep(0.05)
    launcher.send_signal(signal.SIGINT)  # to the launcher alone: it passes the signal on to its workers
    start = time.time()
    output, _ = launcher.communicate(timeout=120)
    assert time.time() - start < GRACE_S, output
    lines, other = _printed(tmp_path / "logs")
    assert len(lines) == 1 and f"continue with: resnetlab train --resume {out}" in lines[0], lines
    assert other == ""
    stopped = int(lines[0].split("interrupted at iteration ")[1].split(";")[0])
    assert 0 < stopped < 12 and latest(out / "checkpoints").name == str(stopped)
    _resumes_bit_for_bit(out, whole)
