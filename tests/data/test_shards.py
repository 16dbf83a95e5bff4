"""WebDataset shards: pack → info → train → eval on JPEGs made here (keys with dots, the original bytes, classes
mixed), a corrupt member and a truncated shard named and skipped, two processes whose shards hold unequal
counts finishing together, and a resume inside an epoch ending where an uninterrupted run ends."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tests.hooks import InterruptAt

from resnetlab.cli import main
from resnetlab.data.shard_stream import Plan, ShardLoader
from resnetlab.data.shards import Split, expand, pack, parse_size, read_info, samples
from resnetlab.deploy.evaluate import evaluate_source
from resnetlab.errors import UsageError
from resnetlab.train import TrainingInterrupted, fit, make_config

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """4 classes × 60 training and × 10 test JPEGs named ``img.N.v1.jpg`` (dots; the same names in every class)."""
    root, rng = tmp_path_factory.mktemp("jpegs"), np.random.default_rng(0)
    for split, n in (("train", 60), ("test", 10)):
        for c in range(4):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(n):
                pixels = (rng.integers(0, 128, (24, 32, 3)) + 30 * c).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / f"class{c}" / f"img.{i}.v1.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    pack(folder, out, shard_size=parse_size("20KB"), log=lambda _: None)
    return out


def members(shard):
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def test_pack_writes_timms_layout_with_the_original_bytes(folder, shards):
    info = json.loads((shards / "_info.json").read_text())
    assert info["class_names"] == ["class0", "class1", "class2", "class3"]
    for split, n in (("train", 240), ("test", 40)):
        s = info["splits"][split]
        assert s["num_samples"] == sum(s["shard_lengths"]) == n and len(s["filenames"]) == len(s["shard_lengths"]) > 1
        assert [f for f in s["filenames"] if (shards / f).is_file()] == s["filenames"]
        assert s["filenames"][0] == f"{split}-000000.tar"
    first = members(shards / "train-000000.tar")
    keys = {name.split(".")[0] for name in first}  # WebDataset's split: the key ends at the first dot
    assert all(f"{k}.jpg" in first and f"{k}.cls" in first for k in keys)
    assert len({first[f"{k}.cls"] for k in keys}) > 1  # classes mixed in a shard
    key = next(iter(keys))
    cls, _, stem = key.partition("_")
    original = (folder / "train" / cls / f"{stem.replace('_', '.')}.jpg").read_bytes()
    assert first[f"{key}.jpg"] == original and first[f"{key}.cls"] == str(int(cls[-1])).encode()
    all_keys = [n.split(".")[0] for f in info["splits"]["train"]["filenames"] for n in members(shards / f)]
    assert len(set(all_keys)) == 240  # unique across classes though every class has img.0.v1.jpg


def test_info_describes_every_kind_of_source(folder, shards, capsys):
    assert main(["data", "info", f"wds:{shards}"]) == 0
    out = capsys.readouterr().out
    assert "4 classes (class0, class1, class2, class3)" in out and "train: 240 samples in" in out
    assert main(["data", "info", f"folder:{folder}"]) == 0
    assert "test: 40 files" in capsys.readouterr().out
    assert main(["data", "info", "default"]) == 0
    assert "train: 4000 images 1×28×28" in capsys.readouterr().out


def test_train_and_evaluate_from_shards(shards, tmp_path):
    out = tmp_path / "run"
    config = make_config("cosine", model="resnet8", data=f"wds:{shards}", image_size=16, batch_size=16, epochs=2,
                         workers=1, threads=1, out=str(out))  # fmt: skip
    fit(config)
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics) == 2 and metrics[-1]["test_error"] < 0.5  # 4 classes told apart by brightness
    result = evaluate_source(str(out), log=lambda *_: None)
    assert result.images == 40 and result.error == pytest.approx(metrics[-1]["test_error"])


def test_a_corrupt_member_and_a_truncated_shard_are_named_and_skipped(shards, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in shards.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    victim = broken / "train-000003.tar"
    entries = members(victim)
    bad_key = sorted(k for k in entries if k.endswith(".jpg"))[0]
    with tarfile.open(victim, "w") as tar:  # one member's bytes replaced by garbage
        for name, data in entries.items():
            data = b"not a jpeg" if name == bad_key else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cut = broken / "train-000007.tar"
    cut.write_bytes(cut.read_bytes()[:3000])  # truncated mid-member
    assert isinstance(list(samples(str(cut)))[-1], Exception)
    split = read_info(str(broken)).split("train")
    warned = []
    loader = ShardLoader(split, 16, 16, 0, None, 0, 1, 0, torch.device("cpu"), warn=warned.append)
    steps = [step for step, _, _ in loader.batches(0)]
    assert steps == list(range(loader.steps_per_epoch))  # every planned step, full batches
    assert any(f"{victim}:{bad_key.split('.')[0]}" in w for w in warned)
    assert any(str(cut) in w and "unreadable after" in w for w in warned)
    assert len(loader.bad) == 2


@pytest.mark.slow
def test_two_processes_with_unequal_shards_take_the_same_steps(folder, tmp_path):
    """Shards of 1..17 samples dealt to 2 ranks × 2 workers: the plan agrees on the steps, and a real torchrun
    run over the packed shards finishes its epochs (no process waits on a collective another never joins)."""
    lengths = (17, 1, 9, 4, 12, 3, 8, 8, 2, 15)
    split = Split("train", tuple(f"s{i}" for i in range(len(lengths))), lengths)
    plans = [Plan.make(split, per=4, rank=r, world_size=2, workers=2) for r in (0, 1)]
    assert plans[0].steps == plans[1].steps == len(plans[0].schedule) == len(plans[1].schedule) > 0
    assert sorted(i for p in plans for group in p.shards for i in group) == list(range(len(lengths)))
    shards = tmp_path / "shards"
    pack(folder, shards, shard_size=parse_size("30KB"), log=lambda _: None)
    lengths = read_info(str(shards)).split("train").lengths
    assert len(set(lengths)) > 1 and len(lengths) % 2  # unequal, and an odd count: the ranks hold unequal counts
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "resnetlab",
           "train", "--model", "resnet8", "--data", f"wds:{shards}", "--image-size", "16", "--batch-size", "16",
           "--epochs", "2", "--workers", "1", "--threads", "1", "--out", str(tmp_path / "ddp")]  # fmt: skip
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(json.loads((tmp_path / "ddp" / "metrics.json").read_text())) == 2


def test_resume_inside_an_epoch_ends_where_an_uninterrupted_run_ends(shards, tmp_path):
    kw = dict(model="resnet8", data=f"wds:{shards}", image_size=16, batch_size=16, epochs=2, workers=1, threads=1)
    fit(make_config("cosine", out=str(tmp_path / "whole"), **kw))
    with pytest.raises(TrainingInterrupted):
        fit(make_config("cosine", out=str(tmp_path / "cut"), **kw), hooks=[InterruptAt(20)])  # epoch 2, step 6
    fit(make_config("cosine", out=str(tmp_path / "cut"), **kw), resume=True)
    whole, cut = (load_file(tmp_path / r / "checkpoints" / "last" / "model.safetensors") for r in ("whole", "cut"))
    assert all(torch.equal(whole[k], cut[k]) for k in whole)


def test_patterns_and_bad_specs(shards):
    assert expand("a-{00..02}.tar") == ["a-00.tar", "a-01.tar", "a-02.tar"] and expand("{x,y}z") == ["xz", "yz"]
    n = len(read_info(str(shards)).split("train").files)
    pattern = f"{shards}/train-{{000000..{n - 1:06d}}}.tar::{shards}/test-{{000000..000001}}.tar"
    info = read_info(pattern, num_classes=4)
    assert info.split("train").num_samples == 240 and info.class_names == ("0", "1", "2", "3")
    with pytest.raises(UsageError, match="--num-classes"):
        read_info(pattern)
    with pytest.raises(UsageError, match="no _info.json"):
        read_info(str(shards / "nowhere"))
    with pytest.raises(UsageError, match="--shard-size"):
        parse_size("big")
