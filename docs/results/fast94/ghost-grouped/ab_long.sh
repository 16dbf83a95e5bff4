#!/bin/bash
# A/B through the trainer over a longer window: path_speed --paths fast --steps 30 --skip 6, one process each,
# in the order now, before, before, now (ABBA), so a linear drift hits both alike
for t in /work/main /work/wt-f94 /work/wt-f94 /work/main; do
  echo "== $t ($(git -C $t rev-parse --short HEAD), dirty $(git -C $t status --porcelain | wc -l)) $(date -u +%T)"
  PYTHONPATH=$t/src /work/main/.venv/bin/python /work/main/benchmarks/path_speed.py --paths fast --rounds 1 --steps 30 --skip 6 2>&1 | grep "round 0"
done
