#!/bin/bash
# AutoAttack rand on Airbench_CPU_CrossMax_FGSM, n = 100, seed 0: the configuration of the committed results file,
# with this machine's instruction set lowered to AVX2 (ATen, oneDNN and MKL kernels), on 2 threads and on 1.
# Same code, same machine, same seed: only the arithmetic changes. Results files and logs go to runs/avx2-t<N>/,
# the resumable state to a fresh folder each (so nothing is reused). Run from the repository root:
#   EEE_ZOO_DATA=/path/to/data bash benchmarks/reproducibility/rand_n100_avx2.sh
set -euo pipefail
here=benchmarks/reproducibility/runs
for threads in 2 1; do
  out=$here/avx2-t$threads
  mkdir -p "$out"
  OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
    MKL_ENABLE_INSTRUCTIONS=AVX2 python -m benchmarks.run Airbench_CPU_CrossMax_FGSM --version rand \
    --n-examples 100 --seed 0 --batch-size 500 --results-dir "$out/results" --state-dir "$(mktemp -d)" \
    --no-leaderboard --no-progress > "$out/run.log" 2>&1
  rm -f "$out"/results/*/*/*/*.adv.safetensors  # the comparison needs the flags only
done
