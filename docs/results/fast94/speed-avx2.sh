#!/bin/bash
# #31 on an AVX2-only CPU: the clock and fp32 peak, fast94's model through bench_train's step at batch 512
# (auto = fp32 + compile here; plain torch as the reference), and one step's profile; alone on the cores.
cd /work/main
echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep "Model name"; date -u
set -x
.venv/bin/python benchmarks/cpu_peak.py
.venv/bin/python benchmarks/bench_train.py --model resnet9 --width 0.5 --batch-size 512 --steps 6 \
  --paths auto,compile,compile-cl --model-arg whiten=2 --model-arg activation=gelu --model-arg pool_before_bn=true \
  --model-arg widths=[64,128,384,768]
.venv/bin/python benchmarks/profile_step.py
date -u
