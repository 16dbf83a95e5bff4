import sys, time, torch, resnetlab
torch.set_num_threads(1)
net = resnetlab.create_model(sys.argv[1], weights="cifar10").eval()
cl = resnetlab.fold_batchnorm(net).to(memory_format=torch.channels_last)
nchw = resnetlab.fold_batchnorm(net)
x = torch.randn(2000, 3, 32, 32)
def run(model, bs, fmt):
    with torch.inference_mode():
        for i in range(0, len(x), bs):
            model(x[i:i+bs].contiguous(memory_format=fmt))
for bs in [int(b) for b in sys.argv[2:]]:
    for name, m, fmt in (("cl", cl, torch.channels_last), ("nchw", nchw, torch.contiguous_format)):
        run(m, bs, fmt); best = 1e9
        for _ in range(2):
            s = time.perf_counter(); run(m, bs, fmt); best = min(best, time.perf_counter() - s)
        print(f"{sys.argv[1]} {name} bs{bs}: {best:.2f} s / 2000", flush=True)
