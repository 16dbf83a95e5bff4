#!/bin/bash
# #31 on the AMX Xeon: oneDNN's 3×3 weight gradient on small maps against the matmul one (bench_conv_grad), then
# fast94's model at batch 512 with it (auto) and without (bf16-compile-cl), and one step's profile; alone.
cd /work/main
echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep "Model name"; date -u
set -x
.venv/bin/python benchmarks/cpu_peak.py
.venv/bin/python benchmarks/bench_conv_grad.py
.venv/bin/python benchmarks/bench_train.py --model resnet9 --width 0.5 --batch-size 512 --steps 12 \
  --model-arg whiten=2 --model-arg activation=gelu --model-arg pool_before_bn=true \
  --model-arg widths=[64,128,384,768] --paths auto,bf16-compile-cl,auto,bf16-compile-cl
.venv/bin/python benchmarks/profile_step.py
date -u
