"""Streamed image folders: the same batches as the in-memory path (real CIFAR-10 written as PNGs), results
that do not depend on the worker count or on a kill or a Ctrl-C mid-epoch, unreadable files replaced and
counted, a dead worker named by its file, and the choice between memory and streaming."""

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tests.conftest import CIFAR_NPZ, synthetic_images

from resnetlab.data import stream
from resnetlab.data.folder import list_folder
from resnetlab.data.sources import open_data
from resnetlab.data.stream import StreamLoader, choose_mode
from resnetlab.errors import DataError, UsageError
from resnetlab.train import fit, make_config
from resnetlab.train.session import open_session

ROOT = Path(__file__).parents[2]  # on the subprocesses' path: tests.hooks


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, classes, split: str = "train") -> None:
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / split / classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")


@pytest.fixture(scope="module")
def cifar_png(tmp_path_factory):
    """The first 5,000 training and 500 test images of the real CIFAR-10 as a PNG folder (lossless)."""
    if not CIFAR_NPZ.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the real CIFAR-10 file is absent: {CIFAR_NPZ}", pytrace=False)
        pytest.skip(f"the real CIFAR-10 file is absent ({CIFAR_NPZ})")
    root = tmp_path_factory.mktemp("cifar-png")
    with np.load(CIFAR_NPZ) as f:
        classes = [str(c) for c in f["class_names"]]
        write_folder(root, f["x_train"][:5000], f["y_train"][:5000], classes)
        write_folder(root, f["x_test"][:500], f["y_test"][:500], classes, "test")
    assert classes == sorted(classes)  # the folder's sorted class names give the file's labels
    return root


def first_batches(folder: Path, out: Path, mode: str, steps: int = 50):
    """The (images, labels) the loop of ``fast-cifar`` gets at its first ``steps`` steps, across epochs."""
    config = make_config("fast-cifar", data=f"folder:{folder}", data_mode=mode, workers=2, out=str(out))
    got = []
    with open_session(config) as s:
        assert s.run.data_mode == mode
        epoch = 0
        while len(got) < steps:
            stop = min(s.loader.steps_per_epoch, steps - len(got))
            got += [(x.clone(), y.clone()) for _, x, y in s.loader.batches(epoch, 0, stop)]
            epoch += 1
    return got


@pytest.mark.slow
def test_streamed_batches_are_the_in_memory_ones(cifar_png, tmp_path):
    """50 steps of fast-cifar (batch 256: 19 steps an epoch, so three epochs' orders and pad-crop-flips)."""
    memory = first_batches(cifar_png, tmp_path / "memory", "memory")
    streamed = first_batches(cifar_png, tmp_path / "stream", "stream")
    assert len(memory) == len(streamed) == 50
    for (xm, ym), (xs, ys) in zip(memory, streamed):
        assert xs.dtype == torch.uint8 and xs.shape == (256, 3, 32, 32)
        assert torch.equal(xm, xs) and torch.equal(ym, ys)
    assert not torch.equal(memory[0][0], memory[19][0])  # a new epoch, a new order


def tiny_folder(root: Path, n: int = 48, size: int = 16) -> Path:
    x, y = synthetic_images(n, size=size)
    write_folder(root, x, y, ["a", "b", "c", "d"])
    xt, yt = synthetic_images(16, size=size, seed=1)
    write_folder(root, xt, yt, ["a", "b", "c", "d"], "test")
    return root


def _train(folder: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "resnetlab", "train", "--data", f"folder:{folder}", "--data-mode", "stream",
           "--model", "resnet8", "--image-size", "16", "--batch-size", "8", "--epochs", "2", "--threads", "1",
           "--out", str(out), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, start_new_session=True)


def _final(out: Path) -> dict:
    return load_file(out / "checkpoints" / "last" / "model.safetensors")


@pytest.mark.slow
def test_kill_and_ctrl_c_mid_epoch_resume_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """fp32 eager, 6 steps an epoch: 1 worker uninterrupted; 2 workers killed (SIGKILL) at step 5 after the
    checkpoint of step 3, resumed; 2 workers given a real Ctrl-C (the whole process group, workers included)
    at step 4, resumed. All end with the same weights."""
    folder = tiny_folder(tmp_path / "data")
    reference = _train(folder, tmp_path / "ref", "--workers", "1")
    assert reference.returncode == 0, reference.stderr

    hooks = {"RESNETLAB_TEST_HOOKS": "tests.hooks:signal_at"}
    killed = _train(folder, tmp_path / "killed", "--workers", "2", "--save-every", "3",
                    env={**hooks, "RESNETLAB_TEST_SIGNAL": "KILL:4"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    resumed = _train(folder, tmp_path / "killed", "--workers", "2", "--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0 and "resumed" in resumed.stdout and "at iteration 3" in resumed.stdout

    stopped = _train(folder, tmp_path / "ctrl-c", "--workers", "2", env={**hooks, "RESNETLAB_TEST_SIGNAL": "INT:3"})
    assert stopped.returncode == 130, stopped.stderr
    said = (stopped.stdout + stopped.stderr).lower()
    assert said.count("interrupted") == 2  # the notice, and the line that says how to resume
    assert "dataloader" not in said and "traceback" not in said
    state = json.loads((tmp_path / "ctrl-c" / "checkpoints" / "last" / "state.json").read_text())
    assert state["iteration"] == 4 and state["step"] == 4  # mid-epoch: the step was finished and saved
    again = _train(folder, tmp_path / "ctrl-c", "--resume", str(tmp_path / "ctrl-c"))
    assert again.returncode == 0, again.stderr

    ref = _final(tmp_path / "ref")
    for run in ("killed", "ctrl-c"):
        got = _final(tmp_path / run)
        assert all(torch.equal(ref[k], got[k]) for k in ref), run


@pytest.mark.slow
def test_two_ranks_read_disjoint_parts_of_every_epoch_across_a_ctrl_c(tmp_path):
    """torchrun, 2 ranks × 2 workers, 50 files in batches of 8: 6 steps an epoch, 2 files left out (logged).
    A real Ctrl-C to the whole process group at step 4 (the launcher passes it on too: one press, twice) stops
    every process with one line; the resumed run goes on from the batches the loop consumed: the rows each
    rank trained on never repeat within an epoch and cover the epoch but the remainder."""
    x, y = synthetic_images(50, size=16)
    write_folder(tmp_path / "data", x, y, ["a", "b", "c", "d"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESNETLAB_TEST_HOOKS": "tests.hooks:rows,tests.hooks:signal_at",
           "RESNETLAB_TEST_ROWS": str(tmp_path / "rows"), "RESNETLAB_TEST_SIGNAL": "INT:3",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "resnetlab",
           "train", "--data", f"folder:{tmp_path / 'data'}", "--data-mode", "stream", "--workers", "2", "--model",
           "resnet8", "--image-size", "16", "--batch-size", "8", "--epochs", "2", "--out", str(out)]  # fmt: skip
    stopped = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, start_new_session=True)
    said = stopped.stdout + stopped.stderr
    assert "2 of 50 training files are left out of each epoch" in said
    assert said.count("interrupted at iteration 4;") == 1 and "DataLoader" not in said, said[-3000:]
    assert json.loads((out / "checkpoints" / "last" / "state.json").read_text())["iteration"] == 4
    env["RESNETLAB_TEST_SIGNAL"] = "INT:-1"
    resumed = subprocess.run(cmd + ["--resume", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    lines = {r: [json.loads(line) for line in (tmp_path / "rows" / f"rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)}  # fmt: skip
    assert [line["iteration"] for line in lines[0]] == list(range(1, 13))
    for epoch in (0, 1):
        seen = {r: [row for line in lines[r] if line["epoch"] == epoch for row in line["rows"]] for r in (0, 1)}
        assert len(seen[0]) == len(seen[1]) == 6 * 4
        both = seen[0] + seen[1]
        assert len(set(both)) == len(both) == 48 and set(both) <= set(range(50))


def _decodable_oddities(folder: Path) -> None:
    """Files a strict JPEG decoder rejects and Pillow reads (both occur in ImageNet): a PNG named .JPEG and a
    CMYK JPEG."""
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(folder / "png-inside.JPEG", format="PNG")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(folder / "cmyk.jpg")


def test_unreadable_files_are_replaced_counted_and_named_once(tmp_path):
    """44 files listed (40 images, 2 oddities that decode, 2 broken files, 1 of the images deleted since the
    listing), batches of 4: every file is read, the 3 unreadable ones are replaced and named once."""
    x, y = synthetic_images(40, size=16)
    write_folder(tmp_path, x, y, ["a", "b", "c", "d"])
    a = tmp_path / "train" / "a"
    _decodable_oddities(a)
    (a / "not-an-image.jpg").write_bytes(b"hello")
    good = a / "00000.png" if (a / "00000.png").exists() else next(a.glob("*.png"))
    (a / "truncated.png").write_bytes(good.read_bytes()[:60])
    gone = next(a.glob("0*.png"))
    files, _ = list_folder(tmp_path)
    gone.unlink()  # vanished since the listing
    warnings = []
    assert len(files) == 44
    loader = StreamLoader(files, 16, 4, 0, None, 0, 1, 2, torch.device("cpu"), warn=warnings.append)
    for epoch in range(2):
        for _, xb, yb in loader.batches(epoch):
            assert xb.shape == (4, 3, 16, 16) and len(yb) == 4  # batches stay full
    bad = {Path(p).name for p in loader.bad}
    assert bad == {"not-an-image.jpg", "truncated.png", gone.name}
    assert len(warnings) == 3 and all("skipped unreadable file" in w for w in warnings)  # once each
    assert loader.read >= 2 * (44 + 3)  # each epoch: 44 places filled, after at least 3 failed reads
    assert pickle.loads(pickle.dumps(loader.dataset)).files.listing.root == files.listing.root  # spawn-safe


def test_too_many_unreadable_files_stop_the_run_after_a_checkpoint(tmp_path):
    x, y = synthetic_images(48, size=16)
    write_folder(tmp_path / "data", x, y, ["a", "b", "c", "d"])
    for i in range(3):
        (tmp_path / "data" / "train" / "b" / f"bad{i}.png").write_bytes(b"junk")
    config = make_config(data=f"folder:{tmp_path / 'data'}", data_mode="stream", workers=0, model="resnet8",
                         image_size=16, batch_size=8, epochs=2, threads=1, out=str(tmp_path / "run"))  # fmt: skip
    with pytest.raises(DataError, match=r"[123] of \d+ files read .* could not be decoded, e.g. .*bad\d.png.*--resume"):
        fit(config)
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "state.json").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert state["iteration"] == 6 and len(metrics) == 1 and metrics[0]["bad_files"] > 0  # the epoch, then the stop


def test_a_dead_worker_is_named_by_its_file_after_a_checkpoint(tmp_path, monkeypatch):
    folder = tiny_folder(tmp_path / "data")
    victim = sorted((folder / "train" / "c").iterdir())[2]
    real = stream.load_image

    def crash_on_victim(path, *transform):  # in a training worker (not in the one measuring the normalization)
        info = torch.utils.data.get_worker_info()
        if Path(path) == victim and info is not None and isinstance(info.dataset, stream.Batches):
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer or a decoder's segfault would
        return real(path, *transform)

    monkeypatch.setattr(stream, "load_image", crash_on_victim)  # the forked workers inherit it
    config = make_config(data=f"folder:{folder}", data_mode="stream", workers=1, model="resnet8", image_size=16,
                         batch_size=8, epochs=3, threads=1, out=str(tmp_path / "run"))  # fmt: skip
    with pytest.raises(DataError, match=f"a data worker process died while reading {victim}"):
        fit(config)
    assert (tmp_path / "run" / "checkpoints" / "last" / "state.json").is_file()


def test_a_worker_killed_while_it_hands_over_a_batch_is_named_too():
    """The race the test above can meet: the worker dies after it queued a batch, before the main process took the
    batch's shared memory from it, so multiprocessing raises ConnectionResetError, not the DataLoader's error."""
    import multiprocessing

    worker = multiprocessing.get_context("fork").Process(target=os._exit, args=(9,))
    worker.start()
    worker.join()
    reading, name = stream.Reading(1), b"/data/train/c/3.png"
    reading.table[0, :8] = torch.tensor([worker.pid], dtype=torch.int64).view(torch.uint8)
    reading.table[0, 8 : 8 + len(name)] = torch.frombuffer(bytearray(name), dtype=torch.uint8)

    class Handover:  # a DataLoader iterator at that moment: its worker processes, the reset connection
        _workers = [worker]

        def __next__(self):
            raise ConnectionResetError(104, "Connection reset by peer")

    class Loader:
        def __iter__(self):
            return Handover()

    with pytest.raises(DataError, match="a data worker process died while reading /data/train/c/3.png"):
        next(reading.each(Loader()))
    Handover._workers = []  # no worker died: the error is not ours to explain
    with pytest.raises(ConnectionResetError):
        next(reading.each(Loader()))


def test_the_mode_is_chosen_by_the_decoded_size(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "physical_memory", lambda: 8 << 30)
    assert choose_mode(1000, 224)[0] == "memory"  # 0.15 GB
    assert choose_mode(15_000, 224)[0] == "stream"  # 2.26e9 bytes > 25% of 8 GiB
    monkeypatch.setattr(stream, "physical_memory", lambda: 64 << 30)
    mode, why = choose_mode(30_000, 224)  # 4.5 GB: under 25% of 64 GB, over 4 GB
    assert mode == "stream" and "over the limit" in why
    assert choose_mode(30_000, 224, "memory") == ("memory", "--data-mode memory")
    folder = tiny_folder(tmp_path / "data")
    (folder / "train" / "empty").mkdir()
    said = []
    data, mode, why = open_data(f"folder:{folder}", 16, log=said.append)
    assert mode == "memory" and data.x_train.shape == (48, 3, 16, 16) and "within the limit" in why
    assert data.class_names == ("a", "b", "c", "d", "empty") and any("class folder(s) empty" in s for s in said)
    with pytest.raises(UsageError, match="only folder: sources stream"):
        open_data("default", 28, "stream")
