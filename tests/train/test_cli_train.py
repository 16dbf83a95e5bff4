"""train / eval / predict through the command line, and the real CIFAR-10 end-to-end run."""

import json

import numpy as np
import pytest
from PIL import Image

from resnetlab.cli import main


def test_train_eval_predict(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            "resnet8",
            "--data",
            f"npz:{tiny_npz}",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--recipe",
            "cosine",
            "--warmup-iterations",
            "2",
            "--out",
            str(out),
            "--threads",
            "1",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "epoch 2/2" in text and f"outputs in {out}" in text
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["recipe"] == "cosine" and config["epochs"] == 2 and config["iterations"] is None

    assert main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test error:" in text and "per-class accuracy" in text and "confusion matrix" in text
    assert (out / "confusion.png").stat().st_size > 1000

    x = np.load(tiny_npz)["x_test"][0]
    Image.fromarray(x).save(tmp_path / "img.png")
    assert main(["predict", str(out / "checkpoints" / "last"), str(tmp_path / "img.png"), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("img.png") and len(lines) == 3 and lines[1].strip().endswith(("a", "b", "c", "d"))


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--data", "npz:/nonexistent.npz"], "no such file"),
        (["--data", "bogus"], "expected default | cifar10:PATH"),
        (["--model", "resnet21"], "6n+2"),
        (["--recipe", "fast"], "invalid choice: 'fast'"),
        (["--model-arg", "num_classes=3"], "the run sets it"),
        (["--model-arg", "shortcut=D"], "unknown shortcut 'D'"),
        (["--model-arg", "residual=false"], "plain20"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--resume", "/nonexistent"], "no config.json"),
        (["--device", "cuda"], "CUDA"),
    ],
)
def test_train_errors_are_one_line(tiny_npz, tmp_path, cli, argv, msg):
    base = ["train", "--iterations", "1", "--out", str(tmp_path / "r")]
    if "--data" not in argv:
        base += ["--data", f"npz:{tiny_npz}"]
    code, out, err = cli(*base, *argv)
    if msg == "CUDA" and code == 0:
        pytest.skip("CUDA is available here")
    assert code == (2 if "invalid choice" in msg else 1), out  # 2: a usage error
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnetlab: error:") and msg in lines[0], err


def test_epochs_and_iterations_exclusive(cli):
    code, _, err = cli("train", "--epochs", "1", "--iterations", "3")
    assert code == 2 and "not allowed with argument" in err


def test_predict_and_eval_errors(tmp_path, cli):
    assert "no checkpoint here" in cli("eval", tmp_path)[2]
    assert cli("predict", tmp_path, "x.png")[0] == 1


@pytest.mark.slow
def test_real_cifar10_short_run_beats_chance(cifar_npz, tmp_path):
    """60 iterations on a 5k-image subset of the real CIFAR-10: far better than 90% error (67.6% measured)."""
    out = tmp_path / "cifar"
    code = main(
        [
            "train",
            "--model",
            "resnet8",
            "--data",
            f"npz:{cifar_npz}",
            "--subset",
            "5000",
            "--val-split",
            "1000",
            "--iterations",
            "60",
            "--batch-size",
            "64",
            "--recipe",
            "cosine",
            "--warmup-iterations",
            "10",
            "--eval-every",
            "0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    final = json.loads((out / "metrics.json").read_text())[-1]
    assert final["iteration"] == 60 and final["val_error"] < 0.75 and final["test_error"] is None
    for name in (
        "config.json",
        "train.log",
        "metrics.csv",
        "curves.png",
        "checkpoints/last/model.safetensors",
        "checkpoints/best/state.json",
    ):
        assert (out / name).exists(), name


def test_eval_takes_a_runs_own_data_when_its_images_are_not_square(tmp_path, capsys):
    from tests.conftest import synthetic_images

    x, y = synthetic_images(64, size=16)
    x = np.concatenate([x, x[:, :8]], axis=1)  # 24×16 images
    data = tmp_path / "wide.npz"
    np.savez(data, x_train=x, y_train=y, x_test=x[:16], y_test=y[:16], class_names=np.array(list("abcd")))
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet8", "--data", f"npz:{data}", "--iterations", "2", "--batch-size", "16",
                 "--threads", "1", "--out", str(out)]) == 0  # fmt: skip
    assert main(["eval", str(out)]) == 0
    assert "test error:" in capsys.readouterr().out
