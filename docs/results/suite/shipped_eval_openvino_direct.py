import time, torch, numpy as np, resnetlab, openvino as ov
torch.set_num_threads(1)
net = resnetlab.create_model("resnet56", weights="cifar10").eval()
fast = resnetlab.fold_batchnorm(net)
cl = resnetlab.fold_batchnorm(net).to(memory_format=torch.channels_last)
x = torch.randn(2000, 3, 32, 32)
s = time.perf_counter(); m = ov.convert_model(fast, example_input=x[:2]); conv = time.perf_counter() - s
s = time.perf_counter(); comp = ov.Core().compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}); comp_t = time.perf_counter() - s
req = comp.create_infer_request(); xn = x.numpy()
print(f"convert_model {conv:.2f} s, compile {comp_t:.2f} s", flush=True)
for rnd in range(2):
    s = time.perf_counter()
    with torch.inference_mode():
        ref = torch.cat([cl(x[i:i+500].contiguous(memory_format=torch.channels_last)) for i in range(0, 2000, 500)])
    t_torch = time.perf_counter() - s
    s = time.perf_counter(); out = np.concatenate([req.infer({0: xn[i:i+500]})[0] for i in range(0, 2000, 500)]); t_ov = time.perf_counter() - s
    print(f"round {rnd}: torch channels-last {t_torch:.2f} s, openvino {t_ov:.2f} s per 2,000; max |diff| {np.abs(out - ref.numpy()).max():.2e}", flush=True)
