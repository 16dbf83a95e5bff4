"""Shared fixtures: small learnable datasets written in the formats users bring."""

import os
import pathlib
import tempfile

import numpy as np
import pytest

CIFAR_NPZ = pathlib.Path(__file__).parents[1].parent / "shared" / "data" / "cifar10" / "cifar10.npz"

# torch.compile's kernel cache, one per instruction-set cap: kernels compiled without a cap and reused under
# ATEN_CPU_CAPABILITY=avx2 / ONEDNN_MAX_CPU_ISA=AVX2 (the AVX2 proxy) gave NaN losses and a crash in compiled
# tests, which pass with a cache of their own. Subprocesses inherit it.
os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR",
    str(pathlib.Path(tempfile.gettempdir()) / "resnetlab-tests-inductor" / "-".join(
        os.environ.get(k, "default") for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"))),
)  # fmt: skip


# Under pytest-xdist (-n 2) each worker takes one core: torch and the processes a test starts run one thread,
# as two jobs on two cores should (two threads each would fight over the cores). Inductor keeps its compile
# workers: TORCHINDUCTOR_COMPILE_THREADS=1 (tried at a79d125) did not help (docs/results/suite/README.md).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

# Image-folder listings are cached under $XDG_CACHE_HOME: the tests' go to a folder of their own, not the home's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="resnetlab-tests-cache-")


def synthetic_images(n: int, size: int = 16, classes: int = 4, seed: int = 0):
    """Images whose class sets a coloured square's position and tint: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    half = size // 2
    for i, c in enumerate(y):
        r, col = divmod(int(c) % 4, 2)
        x[i, r * half : (r + 1) * half, col * half : (col + 1) * half, int(c) % 3] = 220
    return x, y.astype(np.int64)


@pytest.fixture(autouse=True)
def _torch_threads():
    """A test that trains with ``threads=1`` sets torch's thread count for the whole process: give the
    next test the count it would have alone."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_npz(tmp_path):
    x, y = synthetic_images(320)
    xt, yt = synthetic_images(80, seed=1)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt, class_names=np.array(["a", "b", "c", "d"]))
    return path


@pytest.fixture
def cifar_npz():
    """The real CIFAR-10: skipped with the reason where it is absent, a failure under CI (CI=true), which
    must not pass without the evidence these tests check (the shipped weights' errors)."""
    if not CIFAR_NPZ.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the real CIFAR-10 file is absent: {CIFAR_NPZ}", pytrace=False)
        pytest.skip(f"the real CIFAR-10 file is absent ({CIFAR_NPZ})")
    return CIFAR_NPZ


@pytest.fixture
def cli(capsys):
    """``resnetlab ARGS`` run in this process: (exit status, stdout, stderr). The same as the command's
    (``main`` turns every error into its one line; argparse's usage errors exit 2), without the 3 s a new
    process spends importing torch. tests/test_cli.py runs the real entry point too."""
    from resnetlab.cli import main

    def run(*argv):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1  # as the interpreter maps it
        out, err = capsys.readouterr()
        return code, out, err

    return run
