#!/bin/bash
# #31: the speed choices of fast94's model, each through bench_train's step at batch 512 (auto = bf16 + compile +
# channels-last here), alone on the cores; then one step's profile of the recipe.
cd /work/main
echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep "Model name"; date -u
B=".venv/bin/python benchmarks/bench_train.py --model resnet9 --width 0.5 --batch-size 512 --steps 12 --paths auto --model-arg whiten=2"
set -x
$B --model-arg activation=gelu --model-arg pool_before_bn=false
$B --model-arg activation=gelu --model-arg pool_before_bn=true
$B --model-arg activation=relu --model-arg pool_before_bn=true
$B --model-arg activation=gelu --model-arg pool_before_bn=true --model-arg widths=[64,128,384,768]
.venv/bin/python benchmarks/profile_step.py
date -u
