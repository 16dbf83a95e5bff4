"""The command line: listing, summaries, one-line errors with the right exit codes."""

import subprocess
import sys

import pytest

from resnetlab.cli import main


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out.split()
    assert "resnet50" in out and "resnet1202" in out and "plain110" in out


def test_summary_defaults_to_model_input_size(capsys):
    assert main(["summary", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "[-1, 16, 32, 32]" in out and "Total params: 269,722" in out


def test_summary_with_input_size(capsys):
    assert main(["summary", "resnet50", "--input-size", "3", "224", "224"]) == 0
    assert "Total params: 25,557,032" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,code,msg",
    [
        (["summary", "resnet21"], 1, "6n+2"),
        (["summary", "resnet20", "--input-size", "3", "32"], 2, "--input-size"),
        (["bogus"], 2, "invalid choice"),
        (["summary"], 2, "model"),
    ],
)
def test_errors_are_one_line(cli, argv, code, msg):
    returned, _, err = cli(*argv)
    assert returned == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnetlab: error: ") and msg in lines[0]


def test_help_through_the_real_entry_point():
    proc = subprocess.run([sys.executable, "-m", "resnetlab.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage:" in proc.stdout


@pytest.mark.parametrize("argv", [["summary", "--help"], ["models", "--help"], ["experiment", "--help"]])
def test_help(cli, argv):
    code, out, _ = cli(*argv)
    assert code == 0 and "usage:" in out


def test_experiment_flags_come_from_the_registry():
    """Each registered experiment's flags are its settings' fields, plus the training flags if it trains; a
    new experiment is one register call."""
    from dataclasses import dataclass, fields

    from resnetlab.cli import build_parser
    from resnetlab.experiments import EXPERIMENTS, training_flags
    from resnetlab.experiments.registry import register, setting

    def flags_of(name):
        sub = next(a for a in build_parser()._actions if a.dest == "command").choices["experiment"]
        parser = next(a for a in sub._actions if a.dest == "name").choices[name]
        return {o for a in parser._actions for o in a.option_strings}

    for name, experiment in EXPERIMENTS.items():
        own = {f"--{f.name.replace('_', '-')}" for f in fields(experiment.settings) if f.name != "training"}
        trained = {f"--{k.replace('_', '-')}" for k in training_flags(experiment)}
        assert own | trained | {"--data", "--out", "-h", "--help"} <= flags_of(name), name
    assert "--steps" not in flags_of("cifar-table") and "--recipe" in flags_of("cifar-table")
    assert "--lr" not in flags_of("batchnorm") and "--lrs" in flags_of("batchnorm")  # it sets the lr itself

    @dataclass(frozen=True)
    class Probe:
        width: int = setting(3, "a width", metavar="W")

    seen = []
    register("probe", "a test", Probe)(lambda settings, data, out, log: seen.append(settings))
    try:
        assert main(["experiment", "probe", "--width", "7", "--out", "/tmp/unused"]) == 0 and seen == [Probe(7)]
    finally:
        del EXPERIMENTS["probe"]


def test_every_option_has_help():
    from resnetlab.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    missing = [
        f"{name} {a.option_strings[0]}"
        for name, sub in commands.items()
        for a in sub._actions
        if a.option_strings and not a.help
    ]
    assert not missing, f"options without help: {missing}"


def test_a_bug_is_an_internal_error_and_the_traceback_is_one_variable_away(tiny_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESNETLAB_TEST_HOOKS", "tests.hooks:bug")
    argv = ["train", "--data", f"npz:{tiny_npz}", "--iterations", "1", "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["resnetlab: internal error (RuntimeError: a bug); rerun with RESNETLAB_TRACEBACK=1 and report it"]
    monkeypatch.setenv("RESNETLAB_TRACEBACK", "1")
    assert main([*argv, "--out", str(tmp_path / "b")]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.delenv("RESNETLAB_TEST_HOOKS")
    assert main([*argv, "--out", str(tmp_path / "c"), "--model", "resnet21"]) == 1  # bad input: the traceback too
    assert "UsageError" in capsys.readouterr().err
