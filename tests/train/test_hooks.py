"""The loop's seam: hooks see each event once per step or epoch, stateful hooks resume bit-exactly, the
built-in ones (warm-up, progressive resizing, weight averaging, clipping) are hooks, and runs are observed
through hooks only."""

import ast
import json
from pathlib import Path

import pytest
import torch
from tests.hooks import InterruptAt, Recorder
from tests.train.test_fit import tiny_config, without_time

import resnetlab
from resnetlab.train import Hook, TrainingInterrupted, fit, make_config
from resnetlab.train.schedule import learning_rate
from resnetlab.train.session import resolve

SRC = Path(resnetlab.__file__).parent


class Counter(Hook):
    """A hook with state: the steps it has seen, saved in checkpoints."""

    def __init__(self):
        self.count = 0

    def after_step(self, state, step):
        self.count += 1
        assert step.iteration == state.iteration and 0 <= step.error <= 1

    def on_epoch_end(self, record):
        record["counted"] = self.count  # not a metrics column: only hooks see it

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_each_event_once_per_step_and_epoch(tiny_npz, tmp_path):
    counter, seen = Counter(), Recorder()  # in order: the recorder sees what the counter added
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=12), hooks=[counter, seen])  # 10 steps an epoch
    assert seen.started == 1 and len(seen.lrs) == len(seen.sizes) == len(seen.norms) == len(seen.steps) == 12
    assert [s.iteration for s in seen.steps] == list(range(1, 13)) and seen.lrs == [s.lr for s in seen.steps]
    assert [r["iteration"] for r in seen.records] == [10, 12] and counter.count == 12
    assert seen.records[-1]["grad_norm"] is None and seen.records[-1]["counted"] == 12  # no clipping: no norm


def test_hooks_resume_bit_exactly(tiny_npz, tmp_path):
    """Every built-in hook at once, and a stateful hook of the test's own, interrupted mid-epoch, mid-warm-up
    and before the resizing ends: the resumed run ends where an uninterrupted one does, bit for bit."""
    kw = dict(val_split=64, warmup_lr=0.01, warmup_error=0.65, small_size=8, ema=0.9, clip_grad_norm=0.5, lighting=0.1)
    reference, out = tmp_path / "reference", tmp_path / "interrupted"
    whole = Counter()
    fit(tiny_config(tiny_npz, reference, **kw), hooks=[whole])
    first = Counter()
    with pytest.raises(TrainingInterrupted):
        fit(tiny_config(tiny_npz, out, **kw), hooks=[first, InterruptAt(6)])
    assert first.count == 7
    resumed, seen = Counter(), Recorder()
    fit(tiny_config(tiny_npz, out, **kw), resume=True, hooks=[resumed, seen])
    assert resumed.count == whole.count == 24  # its state came back from the checkpoint
    for name in ("model.safetensors", "state.safetensors"):  # the average, and the trained weights beside it
        ref, got = _tensors(reference, name), _tensors(out, name)
        assert all(torch.equal(ref[k], got[k]) for k in ref if k != "rng.torch"), name
    metrics = lambda p: without_time(json.loads((p / "metrics.json").read_text()))  # noqa: E731
    assert metrics(out) == metrics(reference) and all(r["grad_norm"] > 0.5 for r in metrics(out))
    assert "warm-up done at iteration" in (reference / "train.log").read_text()
    assert seen.sizes[-1][0] > 8 and (8, 8) in seen.sizes  # the resumed run switched size itself


def _tensors(run, name):
    from safetensors.torch import load_file

    return load_file(run / "checkpoints" / "last" / name)


def test_clipping_bounds_every_step_and_logs_the_norm(tiny_npz, tmp_path):
    seen = Recorder()  # after the clipping hook: it sees what the optimizer sees
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=10, clip_grad_norm=0.05), hooks=[seen])
    assert max(seen.norms) <= 0.05 * (1 + 1e-6) and min(seen.norms) > 0.05 * 0.99  # every step was clipped
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("grad_norm")
    assert float(metrics[1].split(",")[column]) > 0.05
    unclipped = Recorder()
    fit(tiny_config(tiny_npz, tmp_path / "off", iterations=10), hooks=[unclipped])  # off by default
    assert (
        max(unclipped.norms) > 0.05
        and (tmp_path / "off" / "metrics.csv").read_text().splitlines()[1].split(",")[7] == ""
    )
    with pytest.raises(ValueError, match="clip_grad_norm must be > 0"):
        make_config("paper-cifar", clip_grad_norm=0.0)


@pytest.mark.parametrize(
    "model,recipe,given,expected",
    [
        ("resnet110", "paper-cifar", None, 0.01),
        ("plain110", "paper-cifar", None, 0.01),
        ("resnet1202", "paper-cifar", None, 0.01),
        ("resnet56", "paper-cifar", None, None),
        ("resnet152", "paper-cifar", None, None),  # ImageNet, although 152 = 6·25 + 2
        ("mlp_resnet110", "paper-cifar", None, None),
        ("resnet110", "cosine", None, None),
        ("resnet110", "paper-cifar", 0.0, None),  # 0: off
        ("resnet20", "cosine", 0.02, 0.02),
    ],
)
def test_paper_warmup_follows_the_family(model, recipe, given, expected):
    config = make_config(recipe, model=model, **({} if given is None else {"warmup_lr": given}))
    assert resolve(config, torch.device("cpu"), None).warmup_lr == expected


def test_warmup_lr_until_the_error_drops(tiny_npz, tmp_path):
    seen = Recorder()
    config = tiny_config(tiny_npz, tmp_path / "run", iterations=12, warmup_lr=0.01, warmup_error=0.85)
    fit(config, hooks=[seen])
    warm = next(i for i, lr in enumerate(seen.lrs) if lr != 0.01)  # the schedule's lr after the warm-up
    assert 1 < warm < 12 and seen.lrs[warm:] == [learning_rate(config, i, 12) for i in range(warm, 12)]
    errors = [s.error for s in seen.steps]
    ema = [1.0]
    for e in errors:
        ema.append(0.9 * ema[-1] + 0.1 * e)
    assert ema[warm] < 0.85 <= ema[warm - 1]  # it ends at the first step whose moving average is below


def test_hooks_with_one_name_are_refused(tiny_npz, tmp_path):
    with pytest.raises(ValueError, match="two hooks are named Counter"):
        fit(tiny_config(tiny_npz, tmp_path / "run"), hooks=[Counter(), Counter()])


def test_test_hooks_from_the_environment(tiny_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_TEST_HOOKS", "tests.hooks:recorder")
    monkeypatch.setenv("RESNETLAB_TEST_RECORD", str(tmp_path / "record"))
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=3))
    record = json.loads((tmp_path / "record" / "rank0.json").read_text())
    assert record["started"] == 1 and len(record["norms"]) == 3
    monkeypatch.setenv("RESNETLAB_TEST_HOOKS", "tests.hooks:nothing")
    with pytest.raises(
        ValueError, match=r"^RESNETLAB_TEST_HOOKS=tests.hooks:nothing: .* \(give package.module:factory\)$"
    ):
        fit(tiny_config(tiny_npz, tmp_path / "bad"))


def test_config_is_pure_data():
    """config.py imports neither torch nor the hardware probe: resolving a request is the session's."""
    tree = ast.parse((SRC / "train" / "config.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [f"{'.' * n.level}{n.module or ''}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
              for a in n.names]  # fmt: skip
    assert not [n for n in names if n.split(".")[0] == "torch" or "hardware" in n], names


def test_the_loop_reads_top_to_bottom():
    assert len((SRC / "train" / "loop.py").read_text().splitlines()) <= 300
