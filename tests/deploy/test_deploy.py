"""Export and prediction: folded graphs, round trips in every format and runtime, metadata that
travels with the file, int8, and one-line errors."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import synthetic_images

import resnetlab
from resnetlab.cli import main
from resnetlab.deploy import Predictor, export, read_info

onnx = pytest.importorskip("onnx", reason="onnx is part of the 'deploy' extra")
pytest.importorskip("onnxruntime", reason="onnxruntime is part of the 'deploy' extra")
pytest.importorskip("openvino", reason="openvino is part of the 'deploy' extra")

SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny trained runs: resnet20 on 16×16 images, resnet18 on 64×64 (few steps: the weights and
    BN statistics are not the initial ones)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model, size in (("resnet20", 16), ("resnet18", 64)):
        x, y = synthetic_images(96, size=size)
        xt, yt = synthetic_images(40, size=size, seed=1)
        data = root / f"{model}.npz"
        np.savez(data, x_train=x, y_train=y, x_test=xt, y_test=yt, class_names=np.array(["a", "b", "c", "d"]))
        argv = ["train", "--model", model, "--data", f"npz:{data}", "--iterations", "3", "--batch-size", "16"]
        assert main([*argv, "--threads", "2", "--out", str(root / model), "--recipe", "cosine"]) == 0
        out[model] = root / model
    return out


def _conv2d_count(run):
    model, _ = resnetlab.load_checkpoint(run)
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@pytest.mark.parametrize("model", ["resnet20", "resnet18"])
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "torchscript"])
def test_round_trip(runs, tmp_path, model, fmt):
    out = tmp_path / f"m{SUFFIX[fmt]}"
    report = export(runs[model], fmt, out, log=lambda *_: None)
    assert report.top1_agreement == 1.0 and report.max_abs_diff < 1e-3 and "test images" in report.check_data
    info = read_info(out)
    assert info.model == model and info.class_names == ("a", "b", "c", "d") and info.precision == "fp32"
    reference, meta = resnetlab.load_checkpoint(runs[model])
    size = meta["image_size"]
    for batch in (1, 7):  # the batch axis is dynamic
        pixels = np.random.default_rng(batch).integers(0, 256, (batch, 3, size, size), dtype=np.uint8)
        predictor = Predictor.load(out)
        x = (torch.from_numpy(pixels).float() / 255 - torch.tensor(info.mean).view(1, 3, 1, 1)) / torch.tensor(
            info.std
        ).view(1, 3, 1, 1)
        with torch.no_grad():
            expected = reference(x).numpy()
        np.testing.assert_allclose(predictor.logits(pixels), expected, rtol=1e-4, atol=1e-5)
    if fmt == "openvino":
        assert out.with_suffix(".bin").is_file()


@pytest.mark.parametrize("model", ["resnet20", "resnet18"])
def test_folded_graph_has_no_batch_norm(runs, tmp_path, model):
    out = tmp_path / "m.onnx"
    export(runs[model], "onnx", out, log=lambda *_: None)
    ops = Counter(node.op_type for node in onnx.load(str(out)).graph.node)
    assert ops["BatchNormalization"] == 0 and ops["Mul"] == 0  # this project's eval BN would be a Mul and an Add
    assert ops["Conv"] == _conv2d_count(runs[model])


def test_metadata_alone_predicts_like_the_checkpoint(runs, tmp_path):
    out = tmp_path / "m.onnx"
    export(runs["resnet18"], "onnx", out, log=lambda *_: None)
    images = [Image.fromarray(im) for im in synthetic_images(6, size=80, seed=3)[0]]
    from_file = Predictor.load(out).predict(images, top_k=2)
    from_run = Predictor.load(runs["resnet18"], runtime="torch").predict(images, top_k=2)
    assert [[c for c, _ in row] for row in from_file] == [[c for c, _ in row] for row in from_run]
    assert all(abs(a[1] - b[1]) < 1e-4 for ra, rb in zip(from_file, from_run) for a, b in zip(ra, rb))


def test_int8_export_reports_agreement_and_accuracy(runs, tmp_path):
    out = tmp_path / "q.onnx"
    lines = []
    report = export(runs["resnet20"], "onnx", out, precision="int8", calibration_images=64, log=lines.append)
    acc = report.accuracy
    assert read_info(out).precision == "int8" and acc is not None and acc["images"] == 40
    assert acc["agreement"] >= 0.98  # the default threshold, on the 40 held-out images
    assert any("top-1 agreement with fp32" in line and "accuracy fp32" in line for line in lines)
    ops = Counter(node.op_type for node in onnx.load(str(out)).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["BatchNormalization"] == 0


@pytest.mark.slow
def test_badly_calibrated_int8_fails_and_keeps_nothing(tmp_path, cifar_npz):
    """The shipped ResNet-20 calibrated on constant images: its activation ranges are wrong for real ones,
    and the export is refused on 500 real held-out test images, keeping nothing."""
    with np.load(cifar_npz) as d:
        x, y = d["x_test"][:500], d["y_test"][:500]
    held, constant = tmp_path / "held.npz", tmp_path / "constant.npz"
    np.savez(held, x_train=x, y_train=y, x_test=x, y_test=y)
    np.savez(constant, x_train=np.full((64, 32, 32, 3), 128, np.uint8), y_train=np.zeros(64, np.int64))
    out = tmp_path / "bad.xml"
    with pytest.raises(ValueError, match=r"int8 top-1 agreement with fp32 is .* on 500 test images .* below 98%"):
        export("resnet20.cifar10", "openvino", out, precision="int8", calibration=f"npz:{constant}",
               heldout=f"npz:{held}", log=print)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["constant.npz", "held.npz"]
    with np.load(cifar_npz) as d:  # calibrated on real training images, the same export passes
        np.savez(tmp_path / "train.npz", x_train=d["x_train"][:300], y_train=d["y_train"][:300])
    report = export("resnet20.cifar10", "openvino", out, precision="int8", calibration=f"npz:{tmp_path / 'train.npz'}",
                    heldout=f"npz:{held}", log=print)  # fmt: skip
    assert report.accuracy is not None and report.accuracy["agreement"] >= 0.98 and out.is_file()


def test_predictor_inputs(runs, tmp_path):
    predictor = Predictor.load(runs["resnet20"], runtime="onnxruntime")
    rgb = tmp_path / "rgb.jpg"
    Image.fromarray(synthetic_images(1, size=50)[0][0]).save(rgb)
    gray = tmp_path / "gray.png"
    Image.fromarray(synthetic_images(1, size=30)[0][0][:, :, 0]).convert("L").save(gray)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(synthetic_images(1, size=20)[0][0]).convert("RGBA").save(rgba)
    array = synthetic_images(1, size=16)[0][0]  # (H, W, C) uint8 of the model's size
    tensor = torch.from_numpy(array).permute(2, 0, 1)  # (C, H, W)
    results = predictor.predict([str(rgb), gray, rgba, Image.open(rgb), array, tensor], top_k=3)
    assert len(results) == 6 and all(len(r) == 3 for r in results)
    assert all(abs(sum(p for _, p in r) - 1) < 1 for r in results) and results[4] == results[5]
    with pytest.raises(ValueError, match="the model takes uint8 of shape \\(16, 16, 3\\)"):
        predictor.predict(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="no such image file"):
        predictor.predict(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        predictor.predict(text)


def test_predict_command(runs, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(synthetic_images(3, size=24)[0]):
        Image.fromarray(im).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    assert main(["predict", str(runs["resnet20"]), str(folder), "--json", "--top", "2", "--runtime", "torch"]) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["file"].rsplit("/", 1)[1] for line in lines] == ["0.png", "1.png", "2.png"]
    assert all(len(line["top"]) == 2 and set(line["top"][0]) == {"class", "probability"} for line in lines)
    assert "broken.png" in captured.err and "runtime torch" in captured.err
    assert main(["predict", str(runs["resnet20"]), str(folder / "0.png"), "--runtime", "torch"]) == 0
    synsets = tmp_path / "LOC_synset_mapping.txt"  # ImageNet's format; class "d" has no line: kept as it is
    synsets.write_text("a apple, Malus pumila\nb banana\n\nc cherry, Prunus avium\n")
    capsys.readouterr()
    assert main(["predict", str(runs["resnet20"]), str(folder / "0.png"), "--runtime", "torch", "--json", "--top",
                 "4", "--synsets", str(synsets)]) == 0  # fmt: skip
    top = json.loads(capsys.readouterr().out)["top"]
    assert sorted(t["class"] for t in top) == ["apple", "banana", "cherry", "d"]
    synsets.write_text("a apple\nb\n")
    assert main(["predict", str(runs["resnet20"]), str(folder / "0.png"), "--synsets", str(synsets)]) == 1
    assert "line 2 is not 'WNID name" in capsys.readouterr().err
    assert (
        main(["predict", str(runs["resnet20"]), str(folder / "0.png"), "--runtime", "torch", "--precision", "auto"])
        == 0
    )


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["predict", "/nonexistent", "x.png"], "no such file or run folder"),
        (["export", "/nonexistent", "--format", "onnx", "--out", "m.onnx"], "no checkpoint here"),
        (["export", "RUN", "--format", "onnx", "--out", "m.xml"], "must end in .onnx"),
        (["export", "RUN", "--format", "torchscript", "--out", "m.pt", "--quantize", "int8"], "onnx or openvino"),
        (["export", "RUN", "--format", "torchscript", "--out", "m.pt", "--precision", "int8"], "onnx or openvino"),
        (["predict", "RUN", "x.png", "--runtime", "onnxruntime", "--precision", "bf16"], "no bf16 path"),
    ],
)
def test_errors_are_one_line(runs, tmp_path, capsys, argv, msg):
    argv = [str(runs["resnet20"]) if a == "RUN" else a for a in argv]
    assert main([*argv[:3], *(str(tmp_path / a) if a.startswith("m.") else a for a in argv[3:])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("resnetlab: error:") and msg in err[-1]


@pytest.mark.parametrize("suffix", [".onnx", ".xml", ".pt"])
def test_corrupt_model_file_is_one_line(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a readable .* model"):
        Predictor.load(path)


def test_runtime_not_installed_is_one_line(runs, monkeypatch):
    import resnetlab.deploy.runtimes as runtimes

    monkeypatch.setattr(runtimes, "installed", lambda name: name == "torch")
    with pytest.raises(ValueError, match="openvino package is not installed; pip install 'resnetlab\\[deploy\\]'"):
        Predictor.load(runs["resnet20"], runtime="openvino")
    import resnetlab.deploy.predictor as predictor

    monkeypatch.setattr(predictor, "installed", lambda name: name == "torch")
    assert Predictor.load(runs["resnet20"]).runtime.name == "torch"  # auto falls back, and says why


def test_failed_check_removes_every_file_written(runs, tmp_path, monkeypatch):
    """An export whose logits disagree with PyTorch's fails, and leaves nothing behind (.xml and .bin)."""
    import resnetlab.deploy.exporter as export_module

    real = export_module._reference
    monkeypatch.setattr(export_module, "_reference", lambda model, x: real(model, x) + 1e-3)
    out = tmp_path / "m.xml"
    with pytest.raises(ValueError, match="differ from PyTorch's beyond rtol 1e-4, atol 1e-5"):
        export(runs["resnet20"], "openvino", out, log=lambda *_: None)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_an_existing_file_alone(runs, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    with pytest.raises(ValueError, match="needs calibration images"):
        export(runs["resnet20"], "onnx", out, precision="int8", calibration="npz:/nonexistent.npz", log=print)
    assert out.read_bytes() == b"an earlier export" and list(tmp_path.iterdir()) == [out]


def test_graph_invalid_onnx_is_one_line(runs, tmp_path, capsys):
    good = tmp_path / "m.onnx"
    export(runs["resnet20"], "onnx", good, log=lambda *_: None)
    graph = onnx.load(str(good))
    graph.graph.node[0].op_type = "NoSuchOperator"  # metadata intact, graph invalid
    onnx.save(graph, str(tmp_path / "bad.onnx"))
    image = tmp_path / "x.png"
    Image.fromarray(synthetic_images(1, size=16)[0][0]).save(image)
    assert main(["predict", str(tmp_path / "bad.onnx"), str(image), "--runtime", "onnxruntime"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("resnetlab: error:") and "ONNX Runtime cannot load it" in err[0]
