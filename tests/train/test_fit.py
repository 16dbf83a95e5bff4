"""The training loop end to end on small data: outputs, resume, crash safety, divergence."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.hooks import InterruptAt

import resnetlab
from resnetlab.train import NonFiniteLoss, TrainingInterrupted, fit, load_checkpoint, make_config
from resnetlab.train.metrics import COLUMNS


def tiny_config(npz, out, **kw):
    args = dict(
        model="resnet8", data=f"npz:{npz}", iterations=24, batch_size=32, lr=0.05, save_every=5, threads=1, out=str(out)
    )
    args.update(kw)
    return make_config("paper-cifar", **args)


def final_weights(out):
    return load_file(Path(out) / "checkpoints" / "last" / "model.safetensors")


def without_time(records):
    return [{k: v for k, v in r.items() if k not in ("time_s", "images_per_s", "data_wait_s")} for r in records]


def test_writes_every_output(tiny_npz, tmp_path):
    out = tmp_path / "run"
    final = fit(tiny_config(tiny_npz, out, val_split=64))
    for name in ("config.json", "train.log", "metrics.csv", "metrics.json", "curves.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["model"] == "resnet8" and "command" in saved
    assert saved["provenance"]["torch"] == torch.__version__ and saved["provenance"]["threads"] == 1
    records = json.loads((out / "metrics.json").read_text())
    assert list(records[0]) == list(COLUMNS) and records[-1]["iteration"] == 24
    assert (out / "metrics.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert all(0 <= r["train_error"] <= 1 and 0 <= r["val_error"] <= 1 for r in records)
    assert all(r["test_error"] is None for r in records)  # chosen on validation: the test set is not scored
    assert final == records[-1]
    ckpts = out / "checkpoints"
    assert (ckpts / "last").is_symlink() and (ckpts / "best").is_symlink()
    assert {"model.safetensors", "state.safetensors", "state.json"} <= {p.name for p in (ckpts / "last").iterdir()}
    model, meta = load_checkpoint(out)
    assert not model.training and meta["class_names"] == ["a", "b", "c", "d"] and meta["iteration"] == 24
    model.load_state_dict(load_file(ckpts / "last" / "model.safetensors"), strict=True)
    log = (out / "train.log").read_text()
    assert "config:" in log and "the test split is not scored" in log
    epochs = [line for line in log.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == len(records) and all(" eta " in line for line in epochs[:-1]) and " eta " not in epochs[-1]


def test_no_best_without_validation_and_no_test_column(tiny_npz, tmp_path):
    import numpy as np

    d = np.load(tiny_npz)
    np.savez(tmp_path / "notest.npz", x_train=d["x_train"], y_train=d["y_train"])
    out = tmp_path / "run"
    fit(tiny_config(tmp_path / "notest.npz", out, iterations=10))
    assert not (out / "checkpoints" / "best").exists()
    assert json.loads((out / "metrics.json").read_text())[-1]["test_error"] is None
    assert (out / "metrics.csv").read_text().splitlines()[1].split(",")[4:6] == ["", ""]


def test_same_seed_same_metrics(tiny_npz, tmp_path):
    a = fit(tiny_config(tiny_npz, tmp_path / "a", iterations=12))
    b = fit(tiny_config(tiny_npz, tmp_path / "b", iterations=12))
    assert without_time([a]) == without_time([b])
    c = fit(tiny_config(tiny_npz, tmp_path / "c", iterations=12, seed=1))
    assert without_time([a]) != without_time([c])


def interrupt(config, checks: int = 13) -> None:
    """Run ``config`` until a Ctrl-C arrives during step ``checks + 1``, as a user would stop it."""
    with pytest.raises(TrainingInterrupted, match="--resume"):
        fit(config, hooks=[InterruptAt(checks)])


def test_interrupted_then_resumed_equals_uninterrupted(tiny_npz, tmp_path):
    reference = tmp_path / "reference"
    fit(tiny_config(tiny_npz, reference, val_split=64))
    out = tmp_path / "interrupted"
    interrupt(tiny_config(tiny_npz, out, val_split=64))
    stopped_at = json.loads((out / "checkpoints" / "last" / "state.json").read_text())["iteration"]
    assert 0 < stopped_at < 24 and stopped_at % 5  # saved on Ctrl-C, between regular checkpoints
    fit(tiny_config(tiny_npz, out, val_split=64), resume=True)
    ref, got = final_weights(reference), final_weights(out)
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    metrics = lambda p: without_time(json.loads((p / "metrics.json").read_text()))  # noqa: E731
    assert metrics(out) == metrics(reference)


def test_resume_takes_newest_folder_when_last_lags(tiny_npz, tmp_path, monkeypatch):
    """A kill after a checkpoint folder is renamed into place but before ``last`` is swapped: the
    resume continues from that newest folder and ends with the uninterrupted run's weights."""
    from resnetlab import checkpoints as checkpoint

    reference, out = tmp_path / "reference", tmp_path / "run"
    fit(tiny_config(tiny_npz, reference))
    real_point = checkpoint._point

    def kill_before_swap(root, name, target):
        if target == "10":
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs
        real_point(root, name, target)

    monkeypatch.setattr(checkpoint, "_point", kill_before_swap)
    with pytest.raises((KeyboardInterrupt, TrainingInterrupted)):
        fit(tiny_config(tiny_npz, out))
    monkeypatch.undo()
    ckpts = out / "checkpoints"
    assert os.readlink(ckpts / "last") == "5" and (ckpts / "10" / "state.json").exists()
    assert checkpoint.resolve(out) == (ckpts / "10").resolve()
    for name in ("10", "last", "best"):  # ``last``/``best``/``<iteration>`` still name what they say
        if (ckpts / name).exists():
            assert checkpoint.resolve(ckpts / name) == (ckpts / name).resolve()
    fit(tiny_config(tiny_npz, out), resume=True)
    assert json.loads((out / "checkpoints" / "last" / "state.json").read_text())["iteration"] == 24
    ref, got = final_weights(reference), final_weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


@pytest.mark.slow
def test_kill_9_then_resume(tiny_npz, tmp_path, cli):
    """A SIGKILL at an arbitrary instant leaves only complete checkpoints, and --resume finishes
    the run with exactly the weights of an uninterrupted one."""
    out, reference = tmp_path / "killed", tmp_path / "reference"
    cmd = [
        sys.executable,
        "-m",
        "resnetlab.cli",
        "train",
        "--model",
        "resnet8",
        "--data",
        f"npz:{tiny_npz}",
        "--iterations",
        "40",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--save-every",
        "4",
        "--threads",
        "1",
    ]
    assert cli(*cmd[3:], "--out", reference)[0] == 0  # the uninterrupted reference, in this process
    proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "12").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ckpts = out / "checkpoints"
    numbered = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert numbered and numbered[-1] < 40
    # ``last`` is swapped just after the newest folder appears; a kill in between leaves it one behind
    assert int(os.readlink(ckpts / "last")) in numbered[-2:]
    for n in numbered:  # every checkpoint that exists is complete and loadable
        load_checkpoint(ckpts / str(n))
        load_file(ckpts / str(n) / "state.safetensors")
    code, stdout, stderr = cli("train", "--resume", out)
    assert code == 0, stderr
    assert f"resumed {out} at iteration {numbered[-1]}" in stdout
    ref, got = final_weights(reference), final_weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not list(ckpts.glob(".tmp-*"))


def test_resume_refuses_contradicting_flags(tiny_npz, tmp_path, cli):
    out = tmp_path / "run"
    fit(tiny_config(tiny_npz, out, iterations=5))
    code, _, err = cli("train", "--resume", out, "--lr", "0.3")
    assert code == 1 and err.count("\n") == 1 and "--lr 0.3 (the run has 0.05)" in err
    assert cli("train", "--resume", out, "--model", "resnet8")[0] == 0  # agreeing flags are fine


def test_resume_may_change_how_a_run_executes(tiny_npz, tmp_path):
    """Device, threads, compilation, memory format and evaluation cadence may change on a resume
    (e.g. to finish a long run with --compile); what is computed may not."""
    from resnetlab.train import resume_config

    reference, out = tmp_path / "reference", tmp_path / "run"
    fit(tiny_config(tiny_npz, reference))
    interrupt(tiny_config(tiny_npz, out), checks=9)
    config = resume_config(out, {"threads": 2, "eval_every": 0, "channels_last": True})
    assert config.threads == 2 and config.channels_last and config.eval_every == 0
    fit(config, resume=True)
    log = (out / "train.log").read_text()
    assert "resuming with threads 2 (the run so far: 1)" in log and "resuming with channels_last true" in log
    ref, got = final_weights(reference), final_weights(out)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="only --device, --threads, --compile"):
        resume_config(out, {"weight_decay": 0.0})


def test_resume_a_moved_run_continues_where_it_now_is(tiny_npz, tmp_path):
    """A run folder may be moved (or named by another path) between sessions: resuming continues
    in the folder given, never in the path saved in its config."""
    from resnetlab.cli import main
    from resnetlab.train import resume_config

    old, new = tmp_path / "old", tmp_path / "moved" / "run"
    fit(tiny_config(tiny_npz, old, iterations=5))
    new.parent.mkdir()
    old.rename(new)
    config = resume_config(new, {"iterations": 5})
    assert config.out == str(new)
    with pytest.raises(ValueError, match="drop --out"):
        resume_config(new, {"out": str(tmp_path / "elsewhere")})
    assert main(["train", "--resume", str(new), "--out", str(new)]) == 0 and not old.exists()
    assert "resuming with out" in (new / "train.log").read_text()


def test_resume_of_a_run_older_than_a_field_logs_its_default(tiny_npz, tmp_path):
    """A checkpoint saved before a config field existed ran with that field's default."""
    from resnetlab.checkpoints import latest
    from resnetlab.train import resume_config

    out = tmp_path / "run"
    fit(tiny_config(tiny_npz, out, iterations=5))
    state = latest(out / "checkpoints") / "state.json"
    meta = json.loads(state.read_text())
    del meta["config"]["eval_every"]
    state.write_text(json.dumps(meta))
    fit(resume_config(out, {"eval_every": 0}), resume=True)
    assert "resuming with eval_every 0 (the run so far: 1)" in (out / "train.log").read_text()


def test_new_run_refuses_to_overwrite(tiny_npz, tmp_path):
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=3))
    with pytest.raises(ValueError, match="already holds a run"):
        fit(tiny_config(tiny_npz, tmp_path / "run", iterations=3))


def test_divergence_stops_cleanly_keeping_last_good_checkpoint(tiny_npz, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(
        NonFiniteLoss, match=r"iteration \d+: training diverged .*checkpoint is kept: .*checkpoints"
    ) as e:
        fit(tiny_config(tiny_npz, out, lr=1e12, iterations=200, save_every=1))
    last = json.loads((out / "checkpoints" / "last" / "state.json").read_text())
    weights = final_weights(out)
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    assert last["iteration"] < e.value.iteration < 200  # the iteration that diverged, after the last good one
    assert f"iteration {e.value.iteration}:" in str(e.value)
    # Diverging before the first checkpoint says so instead of pointing at one that does not exist.
    with pytest.raises(NonFiniteLoss, match="no checkpoint had been saved yet"):
        fit(tiny_config(tiny_npz, tmp_path / "early", model="resnet8", norm="none", lr=1e12, save_every=None))


def test_corrupt_checkpoint_is_a_clear_error(tiny_npz, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_npz, out, iterations=5))
    model_file = out / "checkpoints" / "last" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        load_checkpoint(out)
    with pytest.raises(ValueError, match="no checkpoint here"):
        load_checkpoint(tmp_path)


def test_weights_from_torchvision_file_replace_classifier(tiny_npz, tmp_path):
    source = resnetlab.resnet18()  # stands in for a torchvision ImageNet model: same keys
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    out = tmp_path / "run"
    fit(
        tiny_config(
            tiny_npz,
            out,
            model="resnet18",
            weights=str(tmp_path / "resnet18.pth"),
            iterations=1,
            image_size=16,
            lr=1e-9,
            momentum=0.0,
            weight_decay=0.0,
        )
    )
    tuned = final_weights(out)
    assert tuned["fc.weight"].shape == (4, 512)
    assert torch.allclose(tuned["layer1.0.conv1.weight"], source.state_dict()["layer1.0.conv1.weight"], atol=1e-6)
    assert "replacing the classifier (1000 -> 4 classes)" in (out / "train.log").read_text()
    with pytest.raises(ValueError, match="does not fit"):
        fit(tiny_config(tiny_npz, tmp_path / "bad", model="resnet34", weights=str(tmp_path / "resnet18.pth")))


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130(tiny_npz, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resnetlab.cli",
            "train",
            "--model",
            "resnet8",
            "--data",
            f"npz:{tiny_npz}",
            "--iterations",
            "2000",
            "--batch-size",
            "32",
            "--save-every",
            "1000",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while "config:" not in (out / "train.log").read_text() if (out / "train.log").exists() else True:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)  # a few steps in
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    state = json.loads((out / "checkpoints" / "last" / "state.json").read_text())
    assert 0 < state["iteration"] < 1000  # saved where it stopped, not at a regular checkpoint


def test_batch_larger_than_the_data_is_refused_before_anything_is_written(tiny_npz, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^--batch-size 300 is larger than the 256 training images .* 256 or less$"):
        fit(tiny_config(tiny_npz, out, batch_size=300, val_split=64))
    assert not out.exists()  # no config.json keeping a batch size the run would not have used


def test_a_failed_save_on_the_way_out_leaves_the_interruption_its_way(tiny_npz, tmp_path):
    """Ctrl-C during step 7, and the checkpoint folder broken meanwhile: the interruption still reaches the
    caller (a failed save in ``finally`` would replace it), and the failure is one line of the log."""
    out = tmp_path / "run"

    def break_checkpoints():
        (out / "checkpoints").rename(out / "moved")
        (out / "checkpoints").write_text("not a folder")

    with pytest.raises(TrainingInterrupted, match="interrupted at iteration 7"):
        fit(tiny_config(tiny_npz, out), hooks=[InterruptAt(6, then=break_checkpoints)])
    failed = [line for line in (out / "train.log").read_text().splitlines() if "could not save" in line]
    assert len(failed) == 1 and failed[0].startswith("could not save a checkpoint at iteration 7 (FileExistsError")


def test_under_torchrun_out_is_required_for_any_world_size(tiny_npz, monkeypatch, capsys):
    """A 1-process torchrun run restarted by --max-restarts: without --out it could not find its run folder."""
    from resnetlab.cli import main

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert main(["train", "--data", f"npz:{tiny_npz}", "--iterations", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "under torchrun give --out" in err


def test_a_run_saved_before_the_resolved_fields_resumes(tiny_npz, tmp_path):
    """config.json and checkpoints as the version before this one wrote them (the resolved values in the
    config itself, the warm-up's state among the run's fields, no hooks): the run resumes and ends as an
    uninterrupted one does."""
    from resnetlab.train import resume_config

    reference, out = tmp_path / "reference", tmp_path / "run"
    fit(tiny_config(tiny_npz, reference))
    interrupt(tiny_config(tiny_npz, out), checks=7)
    saved = json.loads((out / "config.json").read_text())
    old = {**saved["config"], "precision": "fp32", "compile": False, "channels_last": False}
    del old["clip_grad_norm"]
    precision = {"requested": "fp32", "resolved": "fp32", "compile": False, "channels_last": False, "reason": "given"}
    (out / "config.json").write_text(json.dumps({"config": old, "precision": precision, "command": [],
                                                 "provenance": saved["provenance"]}))  # fmt: skip
    for state in (out / "checkpoints").glob("[0-9]*/state.json"):
        meta = json.loads(state.read_text())
        meta = {k: v for k, v in meta.items() if k not in ("resolved", "hooks")}
        state.write_text(json.dumps({**meta, "config": old, "warmup_done": True, "error_ema": 0.5}))
    fit(resume_config(out), resume=True)
    ref, got = final_weights(reference), final_weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_provenance_says_whether_the_tree_was_dirty(tmp_path):
    import subprocess

    from resnetlab.train.setup import git_state

    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = git_state(repo)
    assert clean["git_commit"] and clean["git_dirty"] is False and clean["git_diff_sha256"] is None
    (repo / "a.py").write_text("x = 2\n")
    first = git_state(repo)
    (repo / "a.py").write_text("x = 3\n")
    second = git_state(repo)
    assert first["git_dirty"] and first["git_commit"] == clean["git_commit"]
    assert first["git_diff_sha256"] != second["git_diff_sha256"]  # the hash names the change
    assert git_state(tmp_path)["git_commit"] is None  # not a checkout


def test_translate_sets_the_shift_of_pad_crop_flip(tiny_npz, tmp_path):
    from resnetlab.errors import UsageError
    from resnetlab.train import Hook

    class Seen(Hook):
        def on_start(self, session):
            self.pad = session.loader.augment.pad

    seen = Seen()
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=2, translate=2), hooks=[seen])
    assert seen.pad == 2 and "2-pixel translation" in (tmp_path / "run" / "train.log").read_text()
    fit(tiny_config(tiny_npz, tmp_path / "default", iterations=2), hooks=[seen])
    assert seen.pad == 4  # the dataset's: the paper's 4 pixels (Sec. 4.2)
    with pytest.raises(UsageError, match="translate must be an integer >= 0"):
        tiny_config(tiny_npz, tmp_path / "x", translate=-1)
    with pytest.raises(UsageError, match="--augment scale crops otherwise"):
        tiny_config(tiny_npz, tmp_path / "x", translate=2, augment="scale")
