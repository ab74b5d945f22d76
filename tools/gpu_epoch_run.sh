#!/bin/bash
# Short H100 run: the MNIST epoch, eager and both graph variants (parity gate first), report tarred.
set -u
export TWINBENCH_DATA=$PWD/.gpu-data TWINBENCH_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/nvidia-smi.txt 2>&1
python3 -m twinbench.fixtures.data > $OUT/data.log 2>&1 || { tail $OUT/data.log; exit 2; }
dev=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_'))")
timeout ${T:-150} python3 -m pytest -p no:cacheprovider -m gpu --require-gpu \
  -k "mnist_cnn-module-gpu and (test_epoch or (test_variant_epoch and graph and not cudagraphs))" \
  --conform-report reports/gpu/$dev --benchmark-columns=median,iqr,min,rounds > $OUT/pytest.log 2>&1
echo "rc $?" >> $OUT/pytest.log
tail -c 2500 $OUT/pytest.log
tar czf $OUT/report.tgz reports/gpu/$dev
