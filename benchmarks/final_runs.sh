#!/bin/bash
# A recipe's final runs (all 50,000 training images, the test set scored once) at a clean commit, alone on the
# cores; resumable: a seed finished at this commit is reported again, an unfinished one trains from the start.
#
#   SEEDS="0 1 2 3 4" bash benchmarks/final_runs.sh fast94 <commit> [path]
#
# A worktree at <commit> ($WT, default ../wt-final beside this checkout) runs the benchmark, so the commit's
# tree is what ran; this checkout's .venv runs it. Outputs: runs/<recipe>-<path>-<commit>/ in this checkout,
# the report and each seed's text outputs in its results/ folder, to be copied under docs/results/.
set -e
RECIPE=${1:?recipe} COMMIT=${2:?commit} PATH_NAME=${3:-fast}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WT=${WT:-$HERE/../wt-final}
[ -d "$WT" ] || git -C "$HERE" worktree add --detach "$WT" "$COMMIT"
cd "$WT" && git checkout -q --detach "$COMMIT"
echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep -E "Model name|Flags"; date -u
OUT=$HERE/runs/$RECIPE-$PATH_NAME-$(git rev-parse --short HEAD)
PYTHONPATH=$WT/src "$HERE/.venv/bin/python" benchmarks/time_to_accuracy.py --recipe "$RECIPE" --paths "$PATH_NAME" \
  --seeds ${SEEDS:-0 1 2 3 4} --out "$OUT" --results "$OUT/results"
date -u
