"""Pack finished CIFAR-10 runs into the package's pretrained weights and measure what they ship.

    python scripts/ship_weights.py runs/experiment-degradation-full/resnet20 ... \\
        [--data ../shared/data/cifar10/cifar10.npz] [--name cifar10]

For each run: its last checkpoint is written to ``src/resnetlab/pretrained/<model>-<name>.safetensors``
(float16 matrices and kernels), loaded back as a user would load it, and evaluated on the 10,000 test
images in float64 (the documented error; no CPU's kernel choice changes a prediction) and in float32
(what ``resnetlab eval`` prints). The float64 error, the run's commit, CPU and wall time go into the
file's metadata. ``tests/models/test_pretrained.py`` repeats the float64 evaluation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from resnetlab.checkpoints import load_pretrained, pack
from resnetlab.pretrained import FOLDER


def test_errors(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, mean, std) -> dict[str, int]:
    """Misclassified test images, in eval mode, one view per image: in float32, and in float64, where
    float32 decides every image whose top two logits are 0.01 or more apart (its rounding is orders of
    magnitude smaller) and the rest are recomputed in float64: the float64 count, at float32's cost."""
    net = model.float().eval()
    m64 = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    s64 = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    inputs = (torch.from_numpy(x).double() / 255 - m64) / s64
    labels = torch.from_numpy(y)
    with torch.no_grad():
        logits = torch.cat([net(inputs[i : i + 500].float()) for i in range(0, len(x), 500)])
        pred32 = logits.argmax(1)
        top2 = logits.topk(2, dim=1).values
        close = (top2[:, 0] - top2[:, 1] < 1e-2).nonzero().flatten()
        pred64 = pred32.clone()
        pred64[close] = net.double()(inputs[close]).argmax(1)
    print(f"  {len(close)} images within 0.01 of a tie recomputed in float64")
    return {"float64": int((pred64 != labels).sum()), "float32": int((pred32 != labels).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", default="../shared/data/cifar10/cifar10.npz")
    parser.add_argument("--name", default="cifar10")
    args = parser.parse_args()
    with np.load(args.data) as d:
        x, y = d["x_test"], d["y_test"].astype(np.int64)
    assert x.shape == (10000, 32, 32, 3), x.shape
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for run in args.runs:
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        extra = {
            "run": run.name,
            "commit": config["provenance"]["git_commit"],
            "torch": config["provenance"]["torch"],
            "cpu": config["provenance"]["cpu"],
            "wall_s": metrics[-1]["time_s"],
            "run_test_error": metrics[-1]["test_error"],  # as the run measured it, in its own precision
            "run_test_error_tta": metrics[-1].get("test_error_tta"),  # with the run's --tta, when it had one
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = pack(run, args.name, Path(tmp), extra)
            # measure the file just written, loaded as a user loads it
            model, meta = load_pretrained(path.name.rpartition("-")[0], args.name, folder=Path(tmp))
        norm = meta["normalization"]
        counts = test_errors(model, x, y, norm["mean"], norm["std"])
        extra |= {
            "test_error": counts["float64"] / len(y),
            "test_images": len(y),
            "test_error_float32": counts["float32"] / len(y),
        }
        final = pack(run, args.name, FOLDER, extra)
        print(
            f"{final.name}: {final.stat().st_size / 1e6:.2f} MB, test error {100 * counts['float64'] / len(y):.2f}% "
            f"float64 ({counts['float64']} of {len(y)}), {100 * counts['float32'] / len(y):.2f}% float32, "
            f"run's own {100 * extra['run_test_error']:.2f}% ({config.get('resolved', config['config'])['precision']})"
        )
    total = sum(p.stat().st_size for p in FOLDER.glob("*.safetensors"))
    print(f"all shipped weights: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
