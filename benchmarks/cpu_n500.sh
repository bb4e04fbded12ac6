#!/usr/bin/env bash
# n = 500 evaluations of a checkpoint too large for one CPU session (a full-width ResNet-18 on 2 cores), in pieces
# that each fit in one: AutoAttack standard on the deterministic mode, AutoAttack rand on the deployed model, then the
# zoo preset's per-image worst case with those two runs' examples as proposals. AutoAttack runs in chunks of 100
# images (`--chunk-size 100`: each chunk its own seed and resumable state), the worst case in batches of 50; every
# finished chunk and batch is kept under benchmarks/state/ and committed, so a later session, on this machine or a
# new one, resumes where the last stopped by running the same command. Results files and cards are written when a
# step has all its images; the leaderboard is rebuilt at the end.
# Options after NAME go to all three commands: --channels-last stores the convolutions NHWC (attack steps ~1.27x
# faster on this CPU, benchmarks/perf/attack_layout.py; recorded with each chunk and batch). Give an evaluation
# the layout it was begun in: its chunks and batches then share one arithmetic.
#   bash benchmarks/cpu_n500.sh NAME [--channels-last] >> benchmarks/cpu_n500_NAME.log 2>&1   (EEE_ZOO_DATA may
#   point at CIFAR arrays)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bash benchmarks/cpu_n500.sh NAME [--channels-last]}
shift
common=(--n-examples 500 --seed 0 --state-dir benchmarks/state/autoattack --chunk-size 100 --write-card --no-leaderboard
    "$@")
echo "== $(date -u +%FT%TZ) $name: AutoAttack standard, deterministic mode"
python -m benchmarks.run "$name" --version standard --deterministic "${common[@]}"
echo "== $(date -u +%FT%TZ) $name: AutoAttack rand, deployed model"
python -m benchmarks.run "$name" --version rand "${common[@]}"
echo "== $(date -u +%FT%TZ) $name: the worst case, zoo preset + both runs' examples"
python -m benchmarks.adaptive "$name" --n-examples 500 --seed 0 --batch-size 50 \
    --autoattack-runs benchmarks/state/autoattack --autoattack-chunk-size 100 --state-dir benchmarks/state \
    --write-card --no-leaderboard "$@"
python -m benchmarks.leaderboard
echo "== $(date -u +%FT%TZ) $name: done"
