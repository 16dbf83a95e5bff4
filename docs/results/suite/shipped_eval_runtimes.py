"""Time per 2,000 CIFAR images, one thread: the shipped-weight test's float32 pass, by runtime."""
import sys, time, tempfile
from pathlib import Path
import numpy as np, torch
import resnetlab
torch.set_num_threads(1)
name = sys.argv[1] if len(sys.argv) > 1 else "resnet56"
net = resnetlab.create_model(name, weights="cifar10").eval()
fast = resnetlab.fold_batchnorm(net)
x = torch.randn(2000, 3, 32, 32)
def t(f, reps=2):
    f(); best = 1e9
    for _ in range(reps):
        s = time.perf_counter(); f(); best = min(best, time.perf_counter() - s)
    return best
def torch_run(model, bs, cl):
    def f():
        with torch.inference_mode():
            for i in range(0, len(x), bs):
                b = x[i:i+bs]
                if cl: b = b.contiguous(memory_format=torch.channels_last)
                model(b)
    return f
cl = resnetlab.fold_batchnorm(net).to(memory_format=torch.channels_last)
for bs in (500, 2000):
    print(f"torch channels-last bs{bs}: {t(torch_run(cl, bs, True)):.2f} s", flush=True)
print(f"torch NCHW bs500: {t(torch_run(fast, 500, False)):.2f} s", flush=True)
from resnetlab.deploy.formats import to_onnx
d = Path(tempfile.mkdtemp())
s = time.perf_counter(); to_onnx(fast, (3, 32, 32), d / "m.onnx"); print(f"dynamo export: {time.perf_counter()-s:.2f} s", flush=True)
import onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
sess = ort.InferenceSession(str(d / "m.onnx"), o, providers=["CPUExecutionProvider"])
xn = x.numpy()
def ortf():
    for i in range(0, len(xn), 500): sess.run(None, {"input": xn[i:i+500]})
print(f"onnxruntime bs500: {t(ortf):.2f} s", flush=True)
a = sess.run(None, {"input": xn[:500]})[0]
with torch.inference_mode(): b = fast(x[:500]).numpy()
print("max |ort - torch|", np.abs(a - b).max())
import openvino as ov
core = ov.Core()
comp = core.compile_model(str(d / "m.onnx"), "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
req = comp.create_infer_request()
def ovf():
    for i in range(0, len(xn), 500): req.infer({0: xn[i:i+500]})
print(f"openvino bs500: {t(ovf):.2f} s", flush=True)
