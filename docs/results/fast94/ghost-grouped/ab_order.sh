#!/bin/bash
# A/B through the trainer: path_speed --paths fast, one round per process, alternating the two source trees
for r in 1 2 3; do
  for t in ${ORDER:-/work/wt-f94 /work/main}; do
    echo "== $t ($(git -C $t rev-parse --short HEAD), dirty $(git -C $t status --porcelain | wc -l)) round $r $(date -u +%T)"
    PYTHONPATH=$t/src /work/main/.venv/bin/python /work/main/benchmarks/path_speed.py --paths fast --rounds 1 2>&1 | grep "round 0"
  done
done
