"""Inference speed of every resnetlab deploy path against plain PyTorch, measured in one run.

    .venv/bin/python benchmarks/bench_inference.py [--cases resnet50:224:1,resnet50:224:16,...]
        [--checkpoint RUN_DIR_OR_MODEL.WEIGHTS] [--seconds 3] [--threads 2]

The reference is plain PyTorch eager fp32 with unfolded ``torch.nn.BatchNorm2d`` (the same weights:
state dicts interchange). Each path is timed for ``--seconds`` after a warm-up; images/s, ms per batch,
GFLOP/s (2 × multiply-adds) and the ratio to the reference are printed. "direct" rows run the runtime
on the same file without resnetlab (float input already normalized): the Predictor rows beside them
show what the deploy path adds. With ``--checkpoint`` (a ResNet-20 trained on CIFAR-10) and the real
CIFAR-10 file, int8 is calibrated on 300 training images (as the exporter does) and reduced-precision
paths report their top-1 agreement with fp32 over the 10,000 held-out test images. Run it alone: the
two cores are shared by everything.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import resnetlab
from resnetlab import hardware
from resnetlab.checkpoints import open_model
from resnetlab.deploy import DeployInfo, Predictor
from resnetlab.deploy.exporter import _quantize
from resnetlab.deploy.formats import set_onnx_info, to_onnx
from resnetlab.deploy.runtimes import OnnxRuntime, OpenVINORuntime

CIFAR = Path(__file__).parents[1].parent / "shared" / "data" / "cifar10" / "cifar10.npz"


def timed(fn, x, seconds: float) -> float:
    """Median seconds per call after two warm-up calls, over at least 3 calls or ``seconds``."""
    fn(x)
    fn(x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def build(name: str, checkpoint: str | None):
    """The resnetlab model (own BN), its plain-PyTorch twin (torch.nn.BatchNorm2d) with the same weights,
    and the DeployInfo of the exported files."""
    if checkpoint:  # a run, a checkpoint, or MODEL.WEIGHTS (e.g. resnet20.cifar10, the shipped weights)
        model, meta, label = open_model(checkpoint)
        info = DeployInfo.from_checkpoint(meta, label)
    else:
        torch.manual_seed(0)
        model = resnetlab.create_model(name).eval()
        with torch.no_grad():  # population statistics that are not the initial 0 and 1
            for m in model.modules():
                if isinstance(m, resnetlab.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        size = model.default_input_size
        info = DeployInfo(name, size, (0.5,) * 3, (0.25,) * 3, tuple(str(i) for i in range(model.fc.out_features)))
    reference = resnetlab.create_model(name, norm_layer="torch", num_classes=model.fc.out_features).eval()
    reference.load_state_dict(model.state_dict())
    return model.eval(), reference, info


def files(model, info: DeployInfo, tmp: Path, calibration: np.ndarray) -> dict[str, Path]:
    """fp32 and int8 ONNX, and the same graphs as OpenVINO IR, folded, with their metadata."""
    import openvino as ov

    folded = resnetlab.fold_batchnorm(model)
    paths = {"onnx-fp32": tmp / "fp32.onnx", "onnx-int8": tmp / "int8.onnx"}
    to_onnx(folded, info.input_size, paths["onnx-fp32"])
    _quantize(paths["onnx-fp32"], paths["onnx-int8"], calibration, info)
    for kind in ("fp32", "int8"):
        set_onnx_info(paths[f"onnx-{kind}"], info)
        paths[f"ov-{kind}"] = tmp / f"{kind}.xml"
        ov.save_model(ov.convert_model(str(paths[f"onnx-{kind}"])), str(paths[f"ov-{kind}"]), compress_to_fp16=False)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="resnet50:224:1,resnet50:224:16,resnet20:32:1,resnet20:32:256")
    p.add_argument("--checkpoint", help="a ResNet-20 run trained on CIFAR-10, for the resnet20 cases and agreement")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = hardware.native_bf16()
    print(f"CPU: {hardware.describe()}; native bf16: {'yes' if bf16 else 'no'}; VNNI: "
          f"{'yes' if hardware.has_vnni() else 'no'}; {args.threads} threads")  # fmt: skip
    import onnxruntime
    import openvino

    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}")
    agreement_data, train_images = None, None
    if args.checkpoint and CIFAR.is_file():
        with np.load(CIFAR) as d:
            agreement_data = (d["x_test"].transpose(0, 3, 1, 2).copy(), d["y_test"])
            # int8 is calibrated on training images, as the exporter does: the test images stay held out
            train_images = d["x_train"][:300].transpose(0, 3, 1, 2).copy()
    for case in args.cases.split(","):
        name, size, batch = case.split(":")
        size_i, batch_i = int(size), int(batch)
        model, reference, info = build(name, args.checkpoint if name == "resnet20" else None)
        info = DeployInfo(info.model, (3, size_i, size_i), info.mean, info.std, info.class_names)
        macs = resnetlab.summary(model, info.input_size).total_mult_adds
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (batch_i, *info.input_size), dtype=np.uint8)
        calibration = train_images if train_images is not None and name == "resnet20" else pixels[:16].repeat(2, 0)
        with tempfile.TemporaryDirectory() as tmp:
            paths = files(model, info, Path(tmp), calibration)
            mean = np.asarray(info.mean, np.float32).reshape(1, -1, 1, 1)
            std = np.asarray(info.std, np.float32).reshape(1, -1, 1, 1)
            x_np = ((pixels.astype(np.float32) / 255 - mean) / std).astype(np.float32)
            x_t = torch.from_numpy(x_np)
            folded = resnetlab.fold_batchnorm(model)
            rows: list[tuple[str, float, str | None]] = []

            def add(label, fn, inp, predictor=None, rows=rows):
                rows.append((label, timed(fn, inp, args.seconds), predictor))

            with torch.no_grad():
                add("reference: torch eager fp32, torch.nn.BatchNorm2d", reference, x_t)
                add("torch eager fp32, resnetlab BN", model, x_t)
                add("torch folded BN", folded, x_t)
                compiled = torch.compile(folded.to(memory_format=torch.channels_last))
                x_cl = x_t.contiguous(memory_format=torch.channels_last)
                add("torch folded + compile + channels-last", compiled, x_cl)
                if bf16:
                    cl = folded.to(memory_format=torch.channels_last)

                    def torch_bf16(x, cl=cl):
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            return cl(x)

                    add("torch folded bf16 + channels-last", torch_bf16, x_cl)
            ort_fp32 = OnnxRuntime(paths["onnx-fp32"], threads=args.threads)
            add("direct: onnxruntime fp32", ort_fp32.run, x_np)
            add("Predictor onnxruntime fp32", Predictor(ort_fp32, info, batch_i).logits, pixels, "fp32")
            ov_fp32 = OpenVINORuntime(paths["ov-fp32"], "fp32", args.threads)
            add("direct: openvino fp32", ov_fp32.run, x_np)
            norm = (info.mean, info.std)  # the Predictor's OpenVINO normalizes uint8 pixels inside the graph
            pv_fp32 = OpenVINORuntime(paths["ov-fp32"], "fp32", args.threads, norm)
            add("Predictor openvino fp32", Predictor(pv_fp32, info, batch_i).logits, pixels, "fp32")
            if bf16:
                ov_bf16 = OpenVINORuntime(paths["ov-fp32"], "bf16", args.threads)
                add("direct: openvino bf16", ov_bf16.run, x_np)
                pv_bf16 = OpenVINORuntime(paths["ov-fp32"], "bf16", args.threads, norm)
                add("Predictor openvino bf16", Predictor(pv_bf16, info, batch_i).logits, pixels, "ov-bf16")
            ort_int8 = OnnxRuntime(paths["onnx-int8"], threads=args.threads)
            add("Predictor onnxruntime int8", Predictor(ort_int8, info, batch_i).logits, pixels, "ort-int8")
            ov_int8 = OpenVINORuntime(paths["ov-int8"], "fp32", args.threads)
            add("direct: openvino int8", ov_int8.run, x_np)
            pv_int8 = OpenVINORuntime(paths["ov-int8"], "fp32", args.threads, norm)
            add("Predictor openvino int8", Predictor(pv_int8, info, batch_i).logits, pixels, "ov-int8")
            if bf16:
                ov_int8_bf16 = OpenVINORuntime(paths["ov-int8"], "bf16", args.threads, norm)
                add("Predictor openvino int8 (bf16 elsewhere)", Predictor(ov_int8_bf16, info, batch_i).logits, pixels,
                    "ov-int8-bf16")  # fmt: skip
            agreements = {}
            if agreement_data is not None and name == "resnet20":
                fp32_pred = Predictor(pv_fp32, info, 500).logits(agreement_data[0]).argmax(1)
                runtimes = {"fp32": pv_fp32, "ort-int8": ort_int8, "ov-int8": pv_int8}
                if bf16:
                    runtimes |= {"ov-bf16": pv_bf16, "ov-int8-bf16": ov_int8_bf16}
                for key, rt in runtimes.items():
                    pred = Predictor(rt, info, 500).logits(agreement_data[0]).argmax(1)
                    agreements[key] = ((pred == fp32_pred).mean(), (pred == agreement_data[1]).mean())
        ref_s = rows[0][1]
        print(f"\n{name} {size_i}x{size_i}, batch {batch_i}: {2 * macs / 1e9:.2f} GFLOP per image")
        print(f"{'path':<46} {'img/s':>8} {'ms/batch':>9} {'GFLOP/s':>8} {'vs ref':>7}  agreement / accuracy")
        for label, seconds, key in rows:
            extra = ""
            if key in agreements:
                agree, acc = agreements[key]
                extra = f"  {100 * agree:.2f}% / {100 * acc:.2f}%"
            speed = f"{batch_i / seconds:8.1f} {1000 * seconds:9.2f} {2 * macs * batch_i / seconds / 1e9:8.1f}"
            print(f"{label:<46} {speed} {ref_s / seconds:6.2f}x{extra}")
    with contextlib.suppress(Exception):
        torch._dynamo.reset()


if __name__ == "__main__":
    main()
