"""One source of truth: model arguments travel with a run, flags come from the config, loading and
preprocessing live outside the trainer, and batches come from one loader."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

import resnetlab
from resnetlab.checkpoints import load_checkpoint, read_checkpoint
from resnetlab.cli import build_parser, main
from resnetlab.data import EpochLoader, PadCropFlip, generator, pad_crop_flip
from resnetlab.train import TrainConfig


def _train(tmp_path, tiny_npz, *extra, name="r"):
    out = tmp_path / name
    argv = ["train", "--data", f"npz:{tiny_npz}", "--iterations", "2", "--batch-size", "8", "--threads", "1"]
    assert main([*argv, "--out", str(out), *extra]) == 0
    return out


def test_model_args_rebuild_the_trained_model(tiny_npz, tmp_path):
    """The paper's resnet50 (stride on the 1×1, option C) trains from the CLI and loads back as itself."""
    out = _train(tmp_path, tiny_npz, "--model", "resnet50", "--model-arg", "stride_in_1x1=true",
                 "--model-arg", "shortcut=C")  # fmt: skip
    saved = json.loads((out / "config.json").read_text())["config"]["model_args"]
    assert saved == {"stride_in_1x1": True, "shortcut": "C"}
    model, meta = load_checkpoint(out)
    assert meta["config"]["model_args"] == saved
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer1[1].downsample is not None
    state, _, _ = read_checkpoint(out, tensors=False)
    by_hand = resnetlab.resnet50(num_classes=4, stride_in_1x1=True, shortcut="C")
    by_hand.load_state_dict(state)
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(model(x), by_hand.eval()(x), rtol=0, atol=0)


def test_old_checkpoint_without_model_args_loads(tiny_npz, tmp_path):
    """A checkpoint written before model_args existed: its config has no such field."""
    out = _train(tmp_path, tiny_npz, "--model", "resnet8")
    for path in [out / "config.json", *out.glob("checkpoints/*/state.json")]:
        doc = json.loads(path.read_text())
        doc["config"].pop("model_args", None)  # last/ is a link to a numbered folder
        path.write_text(json.dumps(doc))
    model, meta = load_checkpoint(out)
    assert "model_args" not in meta["config"] and model.fc.out_features == 4
    assert main(["train", "--resume", str(out)]) == 0  # and the run resumes (here: is already complete)


@pytest.mark.parametrize("value,parsed", [("true", True), ("3", 3), ("0.5", 0.5), ("null", None), ("C", "C")])
def test_model_arg_values_are_json_when_they_parse(value, parsed):
    args = build_parser().parse_args(["train", "--model-arg", f"k={value}", "--model-arg", "shortcut=B"])
    assert args.model_args == {"k": parsed, "shortcut": "B"}


def test_every_config_field_has_a_train_flag():
    """The flags are generated from TrainConfig: a field without a flag (or a flag without a field) fails here."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions} - {"help", "resume", "tta_flip"}  # --tta-flip: a deprecated alias
    assert dests == {f.name for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f"{f.name} has no help text"
    with pytest.raises(ValueError, match="schedule must be one of step, cosine, linear"):
        TrainConfig(iterations=1, schedule="exponential")  # choices come from the same metadata


def test_import_does_not_load_the_trainer():
    code = (
        "import sys, torch; before = set(sys.modules); import resnetlab; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.startswith(('resnetlab.train', 'resnetlab.experiments', 'tqdm', "
        "'matplotlib'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    assert resnetlab.fit is resnetlab.train.fit and resnetlab.train.load_checkpoint is resnetlab.load_checkpoint


def test_loader_slices_are_rows_of_the_global_batch():
    x = torch.randint(0, 255, (40, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(40)
    aug = PadCropFlip(pad=2, flip=True)
    whole = list(EpochLoader(x, y, 8, seed=3, augment=aug).batches(epoch=1))
    parts = [list(EpochLoader(x, y, 8, seed=3, augment=aug, rank=r, world_size=4).batches(epoch=1)) for r in range(4)]
    assert len(whole) == 5
    for step, xb, yb in whole:
        torch.testing.assert_close(torch.cat([p[step][1] for p in parts]), xb, rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([p[step][2] for p in parts]), yb, rtol=0, atol=0)
    # the same draws as the function the loop used before the loader existed
    perm = torch.randperm(40, generator=generator(3, 0, 1))
    idx = perm[8:16]
    torch.testing.assert_close(whole[1][1], pad_crop_flip(x[idx], 2, True, generator(3, 1, 1, 1)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not divide among 3 processes"):
        EpochLoader(x, y, 8, seed=0, world_size=3)
