#!/usr/bin/env bash
# MPO on a CUDA machine, in one call: the GPU tests (CUDA graph equal to the eager update,
# no host-device synchronisation inside an update, a GPU checkpoint resumed on the CPU),
# the update's time (pieces, then eager and graphed updates queued back to back), and
# training throughput on HalfCheetah-v5 against SB3 SAC learning on the same GPU.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [STEPS]
#
# Needs torch with CUDA, gymnasium 1.4.0 and mujoco 4.0.0 (and stable-baselines3 for the
# peer). Logs go to OUT_DIR (default $OUT, else /tmp/gpu_check); the summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/gpu_check}}"
steps="${2:-10240}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$out/gpu.txt"
"$py" -m pytest -q -p no:cacheprovider tests/test_mpo.py -k "cuda or gpu or noise or graphed" 2>&1 | tee "$out/tests.log"
"$py" benchmarks/mpo_update.py --device cuda --updates 100 --repeats 3 2>&1 | tee "$out/update.log"
"$py" benchmarks/throughput.py --env HalfCheetah-v5 --algos mpo --peers sb3-sac --device cuda \
    --steps "$steps" --repeats 3 2>&1 | grep -v "settotalmass\|model = mujoco\|^$" | tee "$out/throughput.log"
echo "=== summary"
tail -n 1 "$out/tests.log"
tail -n 12 "$out/update.log"
tail -n 7 "$out/throughput.log"
