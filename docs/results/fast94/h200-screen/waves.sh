# Calls 6-8 on the lent H200 (the data already there from screen.py's call): three waves of runs at once, each a
# `resnetlab train --recipe fast94` on the 45k/5k split with the flags shown; the exact commands, one call each.
export PYTHONPATH=$PWD/src TORCHINDUCTOR_CACHE_DIR=/root/inductor PYTHONUNBUFFERED=1; mkdir -p /root/r2; cd /root
run(){ n=$1; shift; python3 -m resnetlab train --recipe fast94 --data npz:/root/cifar10.npz --val-split 5000 --device cuda --threads 2 --out /root/r2/$n "$@" >/root/r2/$n.log 2>&1; python3 -c "import json;r=json.load(open('/root/r2/$n/metrics.json'))[-1];print('$n', r['epoch'], round(1-r['val_error'],4), round(1-r['val_error_tta'],4))" | tee -a $OUT/r2.txt; }
for s in 0 1 2 3; do run s24-u0.5-e12-s$s --seed $s --small-size 24 --small-until 0.5 & run s24-u0.75-e12-s$s --seed $s --small-size 24 --small-until 0.75 & done; wait
for s in 0 1 2 3; do run s24-u0.5-e13-s$s --seed $s --epochs 13 --small-size 24 --small-until 0.5 & run s24-u0.75-e13-s$s --seed $s --epochs 13 --small-size 24 --small-until 0.75 & done; wait
tar czf $OUT/r2.tgz --exclude=checkpoints --exclude='*.png' r2

# call 7 (r3; run() as above with r3 for r2)
for s in 4 5; do run s24-u0.5-e12-s$s --seed $s --small-size 24 --small-until 0.5 & done
for s in 0 1 2; do run noghost-e12-s$s --seed $s --bn-ghost-size 0 & run s24-u0.5-noghost-e12-s$s --seed $s --bn-ghost-size 0 --small-size 24 --small-until 0.5 & done; wait

# call 8 (r4)
for s in 6 7; do run s24-u0.5-e12-s$s --seed $s --small-size 24 --small-until 0.5 & done
for s in 0 1 2 3 4 5; do run s24-u0.625-e12-s$s --seed $s --small-size 24 --small-until 0.625 & done; wait
