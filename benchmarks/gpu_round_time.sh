#!/usr/bin/env bash
# Record the round-time table on a machine with a CUDA GPU (under 5 minutes).
# Usage (from the repository root, after `make install` and with CIFAR-10 in $FEDKIT_DATA or
# built by `make test-data`):  bash benchmarks/gpu_round_time.sh
# Writes benchmarks/results/round_time_gpu.json; the batched variant runs on cuda, the
# sequential and Flower variants on the CPU as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 \
       FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export PATH="$PWD/.venv/bin:$PATH"
nvidia-smi --query-gpu=name,memory.total --format=csv
python benchmarks/round_time.py --rounds 6 --device cuda \
    --output benchmarks/results/round_time_gpu.json
