#!/usr/bin/env bash
# Validation sweep on the lent GPU: A and B side by side, 4 variants each (run 2026-11-26 on one H100,
# before budget_mix existed: hence budget_mix=0). Results: benchmarks/reports/gpu/sweep_*.json
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
D=${DATA_ROOT:-/usr/share/datasets/fashion-mnist}; OUT=${OUT:-benchmarks/reports/gpu}; mkdir -p $OUT
nvidia-smi -L > $OUT/gpu.txt; python3 -c "import torch;print(torch.__version__, torch.cuda.is_available())" >> $OUT/gpu.txt
python3 benchmarks/sweep_validation.py --benchmark fashion_mnist --out /tmp/sa --data-root $D --device cuda \
  --config benchmarks/configs/fashion_mnist.json --summary $OUT/sweep_fashion_mnist.json \
  --variant s6:sigma_ft=6,sigma_ft2=3,distill=0,budget_mix=0 --variant s6kd:sigma_ft=6,sigma_ft2=3,distill=1,budget_mix=0 \
  --variant s5kd:sigma_ft=5,sigma_ft2=2,distill=1,budget_mix=0 --variant s8kd:sigma_ft=8,sigma_ft2=4,distill=1,budget_mix=0 > $OUT/a.log 2>&1 &
python3 benchmarks/sweep_validation.py --benchmark scattered_fashion_mnist --out /tmp/sb --data-root $D --device cuda \
  --config benchmarks/configs/scattered_fashion_mnist.json --summary $OUT/sweep_scattered.json \
  --variant s5:sigma_ft=5,sigma_ft2=3,distill=0,budget_mix=0 --variant s5kd:sigma_ft=5,sigma_ft2=3,distill=1,budget_mix=0 \
  --variant s4kd:sigma_ft=4,sigma_ft2=2.5,distill=1,budget_mix=0 --variant s65kd:sigma_ft=6.5,sigma_ft2=4,distill=1,budget_mix=0 > $OUT/b.log 2>&1 &
copy() { for x in a b; do cat /tmp/s$x/train.log /tmp/s$x/*/train.log > $OUT/train_$x.log 2>/dev/null; done; }
(while sleep 15; do copy; done) &
wait %1 %2
copy
grep -h "best val\|wrote" /tmp/sa/train.log /tmp/sa/*/train.log | tail -3
