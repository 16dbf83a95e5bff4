"""Each experiment on a tiny budget: its outputs exist and hold what they claim (not a given outcome)."""

import csv
import json

import pytest

from resnetlab.cli import main
from resnetlab.experiments import GradientSetup, run_degradation, run_gradients
from resnetlab.experiments.runs import cell, median_epoch_s, pct

TINY = ["--iterations", "12", "--batch-size", "32", "--threads", "1"]


def test_gradients_outputs_are_consistent(tiny_npz, tmp_path):
    setup = GradientSetup(depths=(8, 14), activations=("relu", "sigmoid"), norms=("bn", "none"), steps=2, batch_size=16)
    rows = run_gradients(f"npz:{tiny_npz}", tmp_path, setup, log=lambda *_: None)
    with open(tmp_path / "gradients.csv") as f:
        saved = list(csv.DictReader(f))
    assert len(saved) == len(rows)
    configs = {(r["depth"], r["residual"], r["norm"], r["activation"], r["phase"]) for r in saved}
    assert len(configs) == 2 * 2 * 2 * 2 * 2  # depth × residual × norm × activation × phase
    for depth in (8, 14):  # one row per conv layer (depth − 1 of them) plus the fc layer
        per_config = [
            r
            for r in saved
            if r["depth"] == str(depth)
            and r["phase"] == "init"
            and r["residual"] == "True"
            and r["norm"] == "bn"
            and r["activation"] == "relu"
        ]
        assert [int(r["layer"]) for r in per_config] == list(range(1, depth + 1))
        assert per_config[0]["name"] == "conv1" and per_config[-1]["name"] == "fc"
    assert all(float(r["grad_norm"]) >= 0 and float(r["input_var"]) >= 0 for r in saved)
    for name in ("gradients.png", "gradients_after.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_degradation_command(tiny_npz, tmp_path, capsys):
    out = tmp_path / "deg"
    assert (
        main(
            ["experiment", "degradation", "--data", f"npz:{tiny_npz}", "--depths", "8", "14", "--out", str(out), *TINY]
        )
        == 0
    )
    for model in ("plain8", "plain14", "resnet8", "resnet14"):
        records = json.loads((out / model / "metrics.json").read_text())
        assert records[-1]["iteration"] == 12
        assert json.loads((out / model / "config.json").read_text())["config"]["seed"] == 0
    report = (out / "report.md").read_text()
    assert all(f"| {m} | 12 |" in report for m in ("plain8", "plain14", "resnet8", "resnet14"))
    assert "Measured:" in report and (out / "degradation.png").stat().st_size > 10_000
    assert "points at depth 8" in report and "points at depth 14" in report
    # Running it again continues (here: reads back) the finished runs instead of starting over.
    assert (
        main(
            ["experiment", "degradation", "--data", f"npz:{tiny_npz}", "--depths", "8", "14", "--out", str(out), *TINY]
        )
        == 0
    )


def test_batchnorm_command(tiny_npz, tmp_path):
    out = tmp_path / "bn"
    assert (
        main(
            [
                "experiment",
                "batchnorm",
                "--data",
                f"npz:{tiny_npz}",
                "--model",
                "resnet8",
                "--lrs",
                "0.05",
                "1e9",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    report = (out / "report.md").read_text()
    diverged = json.loads((out / "resnet8-none-lr1e+09" / "diverged.json").read_text())
    assert (
        f"| none | 1e+09 | yes, at iteration {diverged['iteration']} |" in report
    )  # without BN an absurd lr diverges...
    assert "| BN | 0.05 | no |" in report
    for stats in (
        "mini-batch (128 test",
        "mini-batch (8 test",
        "population (running averages)",
        "recalibrated (2 training batches of 128)",
    ):  # all full batches of the 320 training images
        assert stats in report
    assert (out / "batchnorm.png").stat().st_size > 10_000
    # Again: the finished runs are read back and the diverged one is not trained a second time.
    log = (out / "resnet8-none-lr1e+09" / "train.log").read_text()
    assert (
        main(
            [
                "experiment",
                "batchnorm",
                "--data",
                f"npz:{tiny_npz}",
                "--model",
                "resnet8",
                "--lrs",
                "0.05",
                "1e9",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    assert (out / "resnet8-none-lr1e+09" / "train.log").read_text() == log
    assert (out / "report.md").read_text() == report


def test_median_epoch_ignores_a_pause():
    # Epochs of 10 s, one of them paused for an hour: the wall time says 3,640 s, an epoch still costs 10.
    records = [{"time_s": t} for t in (10.0, 20.0, 3630.0, 3640.0)]
    assert median_epoch_s(records) == 10.0
    assert median_epoch_s([{"time_s": 42.0}]) == 42.0 and median_epoch_s([]) is None


def test_report_cells():
    assert cell(None) == "—" and cell(7199.6) == "7200" and cell(7200.0, ".2f", 1 / 3600) == "2.00"
    assert pct(0.0699) == "6.99" and pct(None) == "—"


def test_cifar_table_command(tiny_npz, tmp_path):
    out = tmp_path / "table"
    assert (
        main(
            ["experiment", "cifar-table", "--data", f"npz:{tiny_npz}", "--depths", "8", "20", "--out", str(out), *TINY]
        )
        == 0
    )
    table = (out / "table.md").read_text()
    assert "| ResNet-20 | 12 |" in table and "| 8.75 |" in table and "| ResNet-8 | 12 |" in table
    assert table.count(" threads, torch ") == 2  # where each row was computed
    assert (out / "curves.png").stat().st_size > 10_000  # both depths in one Fig. 6-style plot


def test_experiment_passes_training_options(tiny_npz, tmp_path):
    out = tmp_path / "table"
    assert (
        main(
            [
                "experiment",
                "cifar-table",
                "--data",
                f"npz:{tiny_npz}",
                "--depths",
                "8",
                "--out",
                str(out),
                "--eval-every",
                "0",
                "--no-compile",
                *TINY,
            ]
        )
        == 0
    )
    config = json.loads((out / "resnet8" / "config.json").read_text())["config"]
    assert config["eval_every"] == 0 and config["compile"] is False


def test_rerun_with_other_settings_is_refused_naming_them(tiny_npz, tmp_path, capsys):
    args = ["experiment", "cifar-table", "--data", f"npz:{tiny_npz}", "--depths", "8", "--out", str(tmp_path)]
    assert main([*args, "--iterations", "4", "--batch-size", "32", "--threads", "1"]) == 0
    before = (tmp_path / "resnet8" / "metrics.json").read_text()
    assert main([*args, "--iterations", "4", "--batch-size", "16", "--threads", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("resnetlab: error: ") and "resnet8 holds a run made with batch_size 32 (not 16)" in err[-1]
    )
    assert (tmp_path / "resnet8" / "metrics.json").read_text() == before  # nothing of the run is lost


def test_gradients_command_and_flags_an_experiment_does_not_use(tiny_npz, tmp_path, capsys):
    out = tmp_path / "grad"
    assert (
        main(
            [
                "experiment",
                "gradients",
                "--data",
                f"npz:{tiny_npz}",
                "--depths",
                "8",
                "--steps",
                "1",
                "--batch-size",
                "8",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with open(out / "gradients.csv") as f:
        assert {r["depth"] for r in csv.DictReader(f)} == {"8"}
    # A flag the experiment has no use for is refused in one line (a usage error), not silently ignored.
    capsys.readouterr()
    for argv in (["gradients", "--iterations", "100"], ["degradation", "--model", "resnet8"]):
        with pytest.raises(SystemExit) as exit:
            main(["experiment", *argv, "--out", str(tmp_path / "g2")])
        err = capsys.readouterr().err.strip()
        assert exit.value.code == 2 and len(err.splitlines()) == 1 and f"unrecognized arguments: {argv[1]}" in err
    assert not (tmp_path / "g2").exists()


def test_bad_depth_is_one_line_error(tmp_path, capsys):
    assert main(["experiment", "cifar-table", "--depths", "21", "--iterations", "1", "--out", str(tmp_path / "t")]) == 1
    assert "6n+2" in capsys.readouterr().err
    assert not (tmp_path / "t" / "resnet21").exists()


def test_interrupted_experiment_continues_when_run_again(tiny_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESNETLAB_TEST_HOOKS", "tests.hooks:interrupt")  # Ctrl-C during the 6th step
    monkeypatch.setenv("RESNETLAB_TEST_INTERRUPT_AT", "5")
    args = ["experiment", "cifar-table", "--data", f"npz:{tiny_npz}", "--depths", "8", "--out", str(tmp_path), *TINY]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "resnet8 interrupted at iteration " in err and "run the same command again" in err
    assert not (tmp_path / "table.md").exists()
    monkeypatch.undo()
    assert main(args) == 0
    assert "resumed" in (tmp_path / "resnet8" / "train.log").read_text()
    assert "| ResNet-8 | 12 |" in (tmp_path / "table.md").read_text()


def test_diverged_run_is_named_and_not_compared(tiny_npz, tmp_path):
    """Numbers from before a divergence must not feed the plain-vs-residual verdict."""
    rows = run_degradation(
        tmp_path,
        depths=(8, 14),
        log=lambda *_: None,
        data=f"npz:{tiny_npz}",
        norm="none",
        lr=1e9,
        iterations=12,
        batch_size=32,
        threads=1,
    )
    diverged = {r["model"]: r["diverged"] for r in rows}
    assert all(isinstance(it, int) and 1 <= it <= 12 for it in diverged.values()), diverged
    report = (tmp_path / "report.md").read_text()
    assert f"| plain8 (diverged at iteration {diverged['plain8']}) |" in report
    assert "Diverged: " in report and "Measured:" not in report


def test_degradation_of_mlps(tiny_npz, tmp_path):
    out = tmp_path / "deg-mlp"
    argv = ["experiment", "degradation", "--family", "mlp", "--data", f"npz:{tiny_npz}", "--depths", "4", "8"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    for model in ("mlp_plain4", "mlp_plain8", "mlp_resnet4", "mlp_resnet8"):
        assert json.loads((out / model / "metrics.json").read_text())[-1]["iteration"] == 12
    report = (out / "report.md").read_text()
    assert "| mlp_resnet8 | 12 |" in report and "Measured: mlp_plain8 ends" in report
    assert main([*argv[:-2], "5", "--out", str(tmp_path / "bad"), *TINY]) == 1  # an odd depth: the rule, one line


def test_covariate_shift_percentiles_are_the_forwards(tmp_path):
    """The recorded percentiles are those of the input the last sigmoid receives in the model's own
    forward pass (recomputed here without hooks), and the outputs exist."""
    import torch

    from resnetlab.data import channel_stats, load_data, normalizer
    from resnetlab.experiments import ShiftSetup, run_covariate_shift

    setup = ShiftSetup(steps=30, eval_every=10, batch_size=32)
    result = run_covariate_shift("default", tmp_path, setup, log=lambda *_: None, threads=1)
    with open(tmp_path / "covariate-shift.csv") as f:
        saved = list(csv.DictReader(f))
    assert [(r["norm"], int(r["step"])) for r in saved] == [(n, s) for n in ("none", "bn") for s in (0, 10, 20, 30)]
    assert (tmp_path / "covariate-shift.png").stat().st_size > 10_000 and "Measured:" in (
        tmp_path / "report.md"
    ).read_text()
    data = load_data("default")
    x = normalizer(*channel_stats(data.x_train), torch.device("cpu"))(data.x_test)
    for norm, model in result["models"].items():
        with torch.no_grad():
            z = model.eval()[:-2](x)[:, setup.unit]  # everything before the last sigmoid
        last = next(r for r in reversed(saved) if r["norm"] == norm)
        expected = torch.quantile(z, torch.tensor([0.15, 0.5, 0.85])).tolist()
        assert [float(last[p]) for p in ("p15", "p50", "p85")] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        accuracy = (model(x).argmax(1) == data.y_test).float().mean().item()
        assert float(last["test_accuracy"]) == pytest.approx(accuracy)


def test_responses_are_the_forwards_bn_outputs(tiny_npz, tmp_path):
    """Fig. 7 on two tiny trained runs: one row per 3×3 conv (stem included), and each std equals the
    std of that layer's BN output recomputed from the conv's input (not from the hook's own tensor)."""
    import torch

    from resnetlab.checkpoints import load_checkpoint
    from resnetlab.data import load_data, normalizer
    from resnetlab.experiments import run_responses
    from resnetlab.experiments.responses import conv3x3_outputs

    for model in ("plain8", "resnet8"):
        assert (
            main(["train", "--model", model, "--data", f"npz:{tiny_npz}", "--out", str(tmp_path / model), *TINY]) == 0
        )
    rows = run_responses([tmp_path / "plain8", tmp_path / "resnet8"], tmp_path / "resp", log=lambda *_: None)
    assert [r["layer"] for r in rows if r["model"] == "resnet8"][:3] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"]
    assert sum(r["model"] == "plain8" for r in rows) == 7  # depth 8: the stem and 6 convolutions in blocks
    for name in ("responses.csv", "responses.png", "report.md"):
        assert (tmp_path / "resp" / name).stat().st_size > 100
    model, meta = load_checkpoint(tmp_path / "resnet8")
    data = load_data(f"npz:{tiny_npz}")
    x = normalizer(meta["normalization"]["mean"], meta["normalization"]["std"], torch.device("cpu"))(data.x_test)
    modules = dict(model.named_modules())
    inputs = {}
    for bn_name, _ in conv3x3_outputs(model):
        conv = modules[bn_name.replace("bn", "conv")]
        conv.register_forward_hook(lambda m, i, o, key=bn_name: inputs.__setitem__(key, i[0]))
    with torch.no_grad():
        model(x)
        for r in (r for r in rows if r["model"] == "resnet8"):
            conv, bn = modules[r["layer"].replace("bn", "conv")], modules[r["layer"]]
            expected = bn(conv(inputs[r["layer"]])).double().std(unbiased=False).item()
            assert r["std"] == pytest.approx(expected, rel=1e-4)
