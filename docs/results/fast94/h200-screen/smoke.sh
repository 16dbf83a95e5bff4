# Call 1 on the lent H200: the machine, the CUDA path of fast94 on random data of CIFAR-10's size (one epoch, four
# runs at once, cold compile), and the first third of the data.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
mkdir -p /root/cifar && cp .dev/a/part00 /root/cifar/ && ls -la /root/cifar
python3 - <<'PY'
import numpy as np
r = np.random.default_rng(0)
np.savez("/root/fake.npz", x_train=r.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
         y_train=r.integers(0, 10, 50000).astype(np.uint8),
         x_test=r.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8), y_test=r.integers(0, 10, 10000).astype(np.uint8))
PY
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src
time timeout 300 python3 docs/results/fast94/h200-screen/screen.py --data /root/fake.npz --out $OUT --runs /root/smoke \
    --limit 4 --jobs 4 --threads 3 --extra "--epochs 1"
tail -n 15 /root/smoke/*.stderr
cat /root/smoke/fast-12ep-s0/train.log
