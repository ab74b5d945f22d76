#!/bin/bash
set -u
export TWINBENCH_DATA=$PWD/.gpu-data TWINBENCH_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/nvidia-smi.txt 2>&1
python3 -m twinbench.fixtures.data > $OUT/data.log 2>&1 || { tail $OUT/data.log; exit 2; }
timeout ${PT:-90} python3 -m tools.gpu_kernel_probe > $OUT/probe.log 2>&1; echo "probe rc $?" >> $OUT/probe.log
tail -c 3000 $OUT/probe.log
if [ "${PROBE_ONLY:-0}" = 1 ]; then exit 0; fi
timeout ${MT:-330} make gpu > $OUT/make-gpu.log 2>&1; echo "make gpu rc $?" >> $OUT/make-gpu.log
tail -c 3500 $OUT/make-gpu.log
dev=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_'))")
tar czf $OUT/report.tgz reports/gpu/$dev
