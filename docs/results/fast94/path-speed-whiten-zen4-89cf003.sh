cd /work/main
# benchmarks/path_speed.py --recipe fast94 --paths air-opt air-opt-whiten --rounds 2, commit 89cf003 (clean), alone on the Zen 4
PYTHONPATH=src .venv/bin/python benchmarks/path_speed.py --recipe fast94 --paths air-opt air-opt-whiten --steps 12 --skip 4 --rounds 2
