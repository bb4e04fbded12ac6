#!/usr/bin/env bash
# The zoo's evaluations, exactly as run for the committed results (benchmarks/results/) and cards.
# Resumable: re-running continues from AutoAttack's state files. CPU-sized n; see README for intervals.
#   bash benchmarks/zoo_evaluation.sh            (EEE_ZOO_DATA may point at unpacked CIFAR arrays)
set -euo pipefail
cd "$(dirname "$0")/.."

# Deterministic inference mode, AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square).
python -m benchmarks.run --all --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress
# The deployed stochastic mode, AutoAttack rand (APGD-CE + APGD-DLR with 20 EOT samples per step).
python -m benchmarks.run --all --version rand --n-examples 100 --seed 0 --write-card --no-progress
