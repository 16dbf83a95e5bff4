#!/bin/bash
# The performance page's CPU-kind table on a real AVX2-only CPU: bench_train's auto path against plain
# PyTorch for ResNet-20 (batch 128, 200 steps) and ResNet-50 (batch 16, 30 steps); alone on the cores.
cd /work/main
echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep "Model name"; date -u
set -x
.venv/bin/python benchmarks/bench_train.py --model resnet20 --paths auto
.venv/bin/python benchmarks/bench_train.py --model resnet50 --steps 30 --paths auto
date -u
