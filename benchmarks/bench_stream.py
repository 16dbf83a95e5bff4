"""The streamed image folder (``--data-mode stream``) against the in-memory one, on this machine. Run it alone.

    .venv/bin/python benchmarks/bench_stream.py speed      # ResNet-18 at 224: images/s streamed / pre-decoded
    .venv/bin/python benchmarks/bench_stream.py memory     # peak PSS over 5,000 against 500,000 listed files
    .venv/bin/python benchmarks/bench_stream.py accuracy   # fast-cifar, 10 epochs, CIFAR-10 as PNGs: both paths

speed: ResNet-18 at 224×224, batch 64, ``--recipe cosine --precision auto`` (the CPU's precision, torch.compile
and channels-last where chosen), 640 JPEGs of 500×375 (CIFAR-10 images scaled up with noise added: about the
size and entropy of an ImageNet photo); the training images/s of epochs 2 and 3 (after compilation) from each
run's own records, same threads, the pre-decoded run first; and the decode cost alone, per image, in one process.

memory: ``--iterations 200 --batch-size 64`` at 224×224, streamed, over a listing of 5,000 and of 500,000 files
(100 class folders of hard links to 300 JPEGs); the peak of the summed PSS of the run's processes (main and
data workers), sampled every 0.5 s from /proc. The bound: within 5% + 100 MB. ``--precision auto
--no-compile``: torch.compile's pool of compiler processes took 864 MiB more in the second of two otherwise
equal runs (1855 against 2719 MiB, commit fc07437), which says nothing about the data path.

accuracy: ``--recipe fast-cifar --epochs 10`` from CIFAR-10 written as a PNG folder (50,000 + 10,000), in
memory, then streamed: the test error (single view and flip) and the time of each. A measurement, not a gate.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from resnetlab import hardware
from resnetlab.data.folder import load_image

CIFAR = Path(__file__).parents[1].parent / "shared" / "data" / "cifar10" / "cifar10.npz"


def photos(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` 500×375 RGB images: CIFAR-10 images scaled up (random ones without the file) plus noise."""
    rng = np.random.default_rng(seed)
    if CIFAR.is_file():
        with np.load(CIFAR) as f:
            small = f["x_train"][:n]
    else:
        small = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    out = []
    for x in small:
        big = np.asarray(Image.fromarray(x).resize((500, 375), Image.Resampling.BICUBIC), dtype=np.float32)
        out.append(Image.fromarray(np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)))
    return out


def write_jpegs(folder: Path, images: list[Image.Image], classes: int) -> list[Path]:
    paths = []
    for i, im in enumerate(images):
        path = folder / f"c{i % classes:03d}" / f"{i:06d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, quality=90)
        paths.append(path)
    return paths


def train(args: list[str], out: Path, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "resnetlab", "train", *args, "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip


def finish(proc: subprocess.Popen) -> str:
    output, _ = proc.communicate()
    if proc.returncode:
        sys.exit(output[-3000:])
    return output


def speed(tmp: Path) -> None:
    folder = tmp / "jpegs"
    paths = write_jpegs(folder, photos(640), classes=10)
    sizes = [p.stat().st_size for p in paths]
    start = time.perf_counter()
    for p in paths[:200]:
        load_image(p, 224)
    decode_ms = 1000 * (time.perf_counter() - start) / 200
    print(f"640 JPEGs of 500×375, mean {np.mean(sizes) / 1024:.0f} KiB; decode + resize + crop to 224: "
          f"{decode_ms:.2f} ms per image in one process", flush=True)  # fmt: skip
    common = ["--data", f"folder:{folder}", "--model", "resnet18", "--image-size", "224", "--batch-size", "64",
              "--epochs", "3", "--recipe", "cosine", "--precision", "auto", "--eval-every", "0"]  # fmt: skip
    rates = {}
    for mode in ("memory", "stream"):
        output = finish(train([*common, "--data-mode", mode], tmp / mode))
        said = [line for line in output.splitlines() if line.startswith(("data:", "precision", "resnetlab "))]
        records = json.loads((tmp / mode / "metrics.json").read_text())
        rates[mode] = float(np.mean([r["images_per_s"] for r in records[1:]]))
        waits = [r["data_wait_s"] for r in records[1:]]
        print("\n".join(said))
        print(f"{mode:>6}: {rates[mode]:.1f} training images/s (epochs 2-3), data wait {waits} s per epoch; "
              f"a step's compute per image: {1000 / rates[mode]:.1f} ms", flush=True)  # fmt: skip
    print(f"streamed / pre-decoded: {rates['stream'] / rates['memory']:.3f}x (target >= 0.9); decoding is "
          f"{decode_ms * rates['memory'] / 10:.1f}% of a pre-decoded step's time per image", flush=True)  # fmt: skip


def pss_tree(pid: int) -> int:
    """Summed PSS in bytes of ``pid`` and every process below it."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def memory(tmp: Path) -> None:
    base = write_jpegs(tmp / "base", photos(300), classes=1)
    peaks = {}
    for files in (5_000, 500_000):
        root = tmp / f"listed-{files}"
        start = time.perf_counter()
        for i in range(files):
            link = root / f"c{i % 100:03d}" / f"{i:07d}.JPEG"
            if i < 100:
                link.parent.mkdir(parents=True)
            os.link(base[i % len(base)], link)
        made = time.perf_counter() - start
        args = ["--data", f"folder:{root}", "--data-mode", "stream", "--model", "resnet18", "--image-size", "224",
                "--iterations", "200", "--batch-size", "64", "--recipe", "cosine", "--precision", "auto",
                "--no-compile", "--eval-every", "0", "--save-every", "1000"]  # fmt: skip
        proc, peak = train(args, tmp / f"run-{files}"), 0
        while proc.poll() is None:
            peak = max(peak, pss_tree(proc.pid))
            time.sleep(0.5)
        output = finish(proc)
        peaks[files] = peak
        said = [line for line in output.splitlines() if line.startswith(("data:", "resnetlab ", "epoch"))]
        print("\n".join(said))
        print(f"{files:>7} files listed (hard links made in {made:.0f} s): peak PSS {peak / 2**20:.0f} MiB",
              flush=True)  # fmt: skip
    small, large = peaks[5_000], peaks[500_000]
    bound = 1.05 * small + 100 * 2**20
    print(f"500,000 / 5,000 files: {large / 2**20:.0f} MiB against {small / 2**20:.0f} MiB; bound 5% + 100 MB = "
          f"{bound / 2**20:.0f} MiB: {'within' if large <= bound else 'OVER'}", flush=True)  # fmt: skip


def accuracy(tmp: Path) -> None:
    if not CIFAR.is_file():
        sys.exit(f"accuracy needs the real CIFAR-10 file: {CIFAR}")
    folder = tmp / "cifar-png"
    with np.load(CIFAR) as f:
        names = [str(c) for c in f["class_names"]]
        for split, x, y in (("train", f["x_train"], f["y_train"]), ("test", f["x_test"], f["y_test"])):
            for i, (image, label) in enumerate(zip(x, y)):
                path = folder / split / names[int(label)] / f"{i:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    for mode in ("memory", "stream"):
        start = time.perf_counter()
        output = finish(train(["--data", f"folder:{folder}", "--recipe", "fast-cifar", "--epochs", "10",
                               "--data-mode", mode], tmp / mode))  # fmt: skip
        wall = time.perf_counter() - start
        said = [line for line in output.splitlines() if line.startswith(("data:", "precision", "epoch", "final"))]
        last = json.loads((tmp / mode / "metrics.json").read_text())[-1]
        print("\n".join(said))
        print(f"{mode:>6}: test error {100 * last['test_error']:.2f}% (flip {100 * last['test_error_tta']:.2f}%), "
              f"training {last['time_s']:.0f} s, {wall:.0f} s wall in all (decoding before the first step included)",
              flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("speed", "memory", "accuracy"))
    args = p.parse_args()
    print(f"CPU: {hardware.describe()}, {os.cpu_count()} cores; {args.what}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        {"speed": speed, "memory": memory, "accuracy": accuracy}[args.what](Path(tmp))


if __name__ == "__main__":
    main()
