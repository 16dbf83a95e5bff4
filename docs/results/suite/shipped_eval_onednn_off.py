import time, torch, resnetlab
torch.set_num_threads(1)
print("nnpack available", torch.backends.nnpack.is_available())
net = resnetlab.create_model("resnet56", weights="cifar10").eval()
nchw = resnetlab.fold_batchnorm(net)
x = torch.randn(1000, 3, 32, 32)
with torch.inference_mode():
    ref = nchw(x[:500])
    for enabled in (True, False):
        with torch.backends.mkldnn.flags(enabled=enabled):
            nchw(x[:100]); s = time.perf_counter(); out = torch.cat([nchw(x[i:i+500]) for i in range(0, 1000, 500)]); 
            print("mkldnn", enabled, f"{time.perf_counter()-s:.2f} s / 1000", (out[:500]-ref).abs().max().item(), flush=True)
