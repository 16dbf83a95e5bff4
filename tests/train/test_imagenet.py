"""The ImageNet path end to end on a tiny JPEG folder: the recipe's per-file crops in the workers, ImageNet's
normalization, ten-crop testing from the decoded centre square, and the eval transform carried by the
checkpoint into ``eval``, an ONNX export and ``predict`` (each checked against the transform applied by hand)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.checkpoints import load_checkpoint
from resnetlab.data import normalizer
from resnetlab.data.stream import StreamLoader
from resnetlab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, RandomResizedCrop
from resnetlab.deploy import Predictor, export
from resnetlab.deploy.evaluate import evaluate_source
from resnetlab.errors import UsageError
from resnetlab.evaluation import evaluate, views
from resnetlab.train import fit, make_config
from resnetlab.train.session import open_session

CLASSES = ("n01440764", "n01443537", "n01484850")


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """3 classes × 8 training and × 2 validation JPEGs of ImageNet-like shapes, in ImageNet's layout."""
    root, rng = tmp_path_factory.mktemp("imagenet"), np.random.default_rng(0)
    for split, per in (("train", 8), ("val", 2)):
        for c, wnid in enumerate(CLASSES):
            (root / split / wnid).mkdir(parents=True)
            for i in range(per):
                h, w = (30, 40) if i % 2 else (44, 33)
                pixels = rng.integers(0, 256, (h, w, 3)).astype(np.uint8) // 2 + 40 * c
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{i}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def run(jpegs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r18"
    config = make_config("imagenet-step", model="resnet18", data=f"folder:{jpegs}", image_size=16, batch_size=8,
                         epochs=2, tta="ten-crop", workers=0, threads=1, out=str(out))  # fmt: skip
    fit(config)
    return out


def test_the_recipe_streams_per_file_crops_and_records_its_eval_transform(run):
    meta = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    assert meta["eval_transform"] == {"resize": 18, "crop": 16, "interpolation": "bilinear",
                                      "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}  # fmt: skip
    assert meta["resolved"]["data_mode"] == "stream" and meta["normalization"]["mean"] == list(IMAGENET_MEAN)
    assert meta["config"]["lr"] == 0.1 and meta["config"]["lr_base_size"] == 256  # 0.1 × 8/256 at batch 8
    last = json.loads((run / "metrics.json").read_text())[-1]
    assert last["lr"] == pytest.approx(0.1 * 8 / 256 * 0.01) and last["test_error_tta"] is not None


def test_eval_export_and_predict_apply_the_recorded_transform(run, jpegs, tmp_path, monkeypatch):
    model, meta = load_checkpoint(run)
    files = sorted((jpegs / "val").rglob("*.JPEG"))
    by_hand = np.stack([EvalTransform(18, 16)(Image.open(f)) for f in files])  # (N, 16, 16, 3)
    normalize = normalizer(IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"))
    with torch.no_grad():
        expected = model(normalize(torch.from_numpy(by_hand).permute(0, 3, 1, 2))).numpy()

    from_run = Predictor.load(run, runtime="torch")
    assert from_run.info.eval_transform == EvalTransform(18, 16)
    assert np.allclose(from_run.logits(np.stack([from_run.prepare(f) for f in files])), expected, atol=1e-4)

    onnx = tmp_path / "model.onnx"

    def whole(*_):
        raise AssertionError("the export's self-check decoded the whole folder")

    monkeypatch.setattr("resnetlab.deploy.exporter.load_data", whole)
    report = export(run, "onnx", onnx, log=lambda *_: None)
    assert report.check_data == f"6 test images of folder:{jpegs}"  # decoded file by file, every class
    exported = Predictor.load(onnx, runtime="onnxruntime")
    assert exported.info.eval_transform == EvalTransform(18, 16)
    assert np.allclose(exported.logits(np.stack([exported.prepare(f) for f in files])), expected, atol=1e-3)

    # eval decodes the centre 18×18 squares and crops them: single view as by hand, ten-crop beside it
    result = evaluate_source(str(run), tta="ten-crop", log=lambda *_: None)
    labels = torch.tensor([CLASSES.index(f.parent.name) for f in files])
    assert result.images == len(files) == 6 and result.error_tta is not None
    assert result.error == pytest.approx(float((torch.from_numpy(expected).argmax(1) != labels).float().mean()))


def test_ten_crop_takes_the_corners_and_centre_of_the_decoded_square():
    x = torch.arange(2 * 3 * 18 * 18, dtype=torch.int32).view(2, 3, 18, 18)
    crops = views(x, "ten-crop", crop=16)
    # independent: the five positions written out, then the same five mirrored
    at = [(1, 1), (0, 0), (0, 2), (2, 0), (2, 2)]  # centre first (the single view), then the corners
    expected = [x[..., i : i + 16, j : j + 16] for i, j in at]
    assert len(crops) == 10
    for got, want in zip(crops, expected + [e.flip(3) for e in expected]):
        assert torch.equal(got, want)
    assert torch.equal(views(x, "none", crop=16)[0], x[..., 1:17, 1:17])
    assert torch.equal(views(x, "flip", crop=16)[1], x[..., 1:17, 1:17].flip(3))


def test_ten_crops_single_view_is_the_plain_single_view():
    """The single-view error reported beside ten-crop is the error without test-time augmentation."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 12, 12), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 3, (40,), generator=gen)
    weights = torch.randn(3 * 8 * 8, 3, generator=gen)

    def predict(batch):  # any function of the pixels: the top-left corner would score differently
        return batch.float().flatten(1)[:, : 3 * 64] @ weights

    for crop in (None, 8):
        plain = evaluate(predict, x if crop else x[..., :8, :8], y, ["a", "b", "c"], "none", crop=crop)
        tta = evaluate(predict, x if crop else x[..., :8, :8], y, ["a", "b", "c"], "ten-crop", crop=crop)
        assert torch.equal(plain.confusion, tta.confusion)


def test_per_file_crops_do_not_depend_on_the_workers(jpegs, tmp_path):
    config = make_config("imagenet-step", model="resnet18", data=f"folder:{jpegs}", image_size=16, batch_size=8,
                         epochs=1, out=str(tmp_path / "r"))  # fmt: skip
    got = []
    for workers in (0, 2):
        with open_session(config.__class__(**{**config.to_json(), "workers": workers,
                                              "out": str(tmp_path / f"w{workers}")})) as s:  # fmt: skip
            assert isinstance(s.loader, StreamLoader) and isinstance(s.loader.dataset.transform, RandomResizedCrop)
            got.append([x.clone() for _, x, _ in s.loader.batches(1)])
    assert all(torch.equal(a, b) for a, b in zip(*got)) and len(got[0]) == 3


def test_per_file_augmentation_needs_a_streamed_folder(jpegs, tmp_path):
    with pytest.raises(UsageError, match="give --data folder:PATH"):
        fit(make_config("imagenet-step", data="default", epochs=1, out=str(tmp_path / "a")))
    with pytest.raises(UsageError, match="give --data-mode stream"):
        fit(make_config("imagenet-step", data=f"folder:{jpegs}", data_mode="memory", image_size=16, batch_size=8,
                        epochs=1, out=str(tmp_path / "b")))  # fmt: skip


def test_alternating_flips_need_the_images_in_memory(jpegs, tmp_path):
    with pytest.raises(UsageError, match="--flip alternating needs the training images in memory"):
        fit(make_config("imagenet-step", data=f"folder:{jpegs}", flip="alternating", image_size=16, batch_size=8,
                        epochs=1, out=str(tmp_path / "a")))  # fmt: skip
