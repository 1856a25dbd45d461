#!/usr/bin/env bash
# Longer training of both benchmarks on the lent GPU (reference for what the CPU budget costs), run
# 2026-11-26 on one H100. Reports: benchmarks/reports/gpu/long_*.json
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
D=${DATA_ROOT:-/usr/share/datasets/fashion-mnist}; OUT=${OUT:-benchmarks/reports/gpu}; mkdir -p $OUT
one() {  # benchmark, out folder, tag
  local b=$1 o=$2 t=$3 c="--benchmark $1 --out $2 --data-root $D --config benchmarks/configs/$1_long.json"
  for s in classifiers pt ft1 ft2; do python3 -m models.train $s $c || return 1; done
  for x in fixed-h fixed-v stochastic; do python3 -m models.train baselines $c --baselines $x & done; wait
  python3 -m models.train evaluate $c 
  cp $o/report/report.json $OUT/long_$t.json
}
one fashion_mnist /tmp/la fashion_mnist > $OUT/la.log 2>&1 &
one scattered_fashion_mnist /tmp/lb scattered > $OUT/lb.log 2>&1 &
(while sleep 15; do cp /tmp/la/train.log $OUT/train_la.log; cp /tmp/lb/train.log $OUT/train_lb.log; done) 2>/dev/null &
wait %1 %2
cp /tmp/la/train.log $OUT/train_la.log; cp /tmp/lb/train.log $OUT/train_lb.log
