cd /work/main
echo "# benchmarks/cpu_peak.py, then benchmarks/path_speed.py --recipe fast94 --paths fast no-whiten no-ghost relu --rounds 2, commit b94ebc2 (clean), alone on the Zen 4"
date -u; echo "commit $(git rev-parse HEAD) dirty=$(git status --porcelain | wc -l)"; lscpu | grep 'Model name'
.venv/bin/python benchmarks/cpu_peak.py
.venv/bin/python benchmarks/path_speed.py --recipe fast94 --paths fast no-whiten no-ghost relu --rounds 2
date -u
