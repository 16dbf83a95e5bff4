#!/bin/bash
# #31 ablation at commit $1 on the AMX Xeon: a worktree pinned at the commit, run alone on the cores.
# PATHS and SEEDS choose the runs (default: relu, seed 0); outputs under /work/main/runs/fast94.
set -e
COMMIT=${1:?commit}
WT=${WT:-/work/fast94-wt}
[ -d $WT ] || git -C /work/main worktree add --detach $WT $COMMIT
cd $WT && git checkout -q --detach $COMMIT
echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep -E "Model name|Flags"; date -u
export PYTHONPATH=$WT/src
/work/main/.venv/bin/python benchmarks/time_to_accuracy.py --recipe fast94 --val-split 5000 --seeds ${SEEDS:-0} \
  --paths ${PATHS:-relu} --out /work/main/runs/fast94/tta \
  --results ${RESULTS:-/work/main/runs/fast94/ablation-results}
date -u
