#!/usr/bin/env bash
# The zoo's evaluations, exactly as run for the committed results (benchmarks/results/) and cards.
# Resumable: re-running continues from AutoAttack's state files, and a rerun of a configuration already in
# benchmarks/results/ must reproduce it. CPU-sized n; see README for intervals.
#   bash benchmarks/zoo_evaluation.sh [NAME ...]   (default: every card; EEE_ZOO_DATA may point at CIFAR arrays)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then models=("$@"); else models=(--all); fi

# Deterministic inference mode, AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square).
python -m benchmarks.run "${models[@]}" --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress
# The deployed stochastic mode, AutoAttack rand (APGD-CE + APGD-DLR with 20 EOT samples per step).
python -m benchmarks.run "${models[@]}" --version rand --n-examples 100 --seed 0 --write-card --no-progress
# Also run once per checkpoint, a larger rand sample (logs: zoo_evaluation_<NAME>_rand_n500.log):
#   python -m benchmarks.run NAME --version rand --n-examples 500 --seed 0 --write-card --no-progress
# (the FGSM run's final leaderboard rebuild failed on a code change made while it ran; its results file and card
# were written first, and the leaderboard was rebuilt afterwards with python -m benchmarks.leaderboard)
# The per-image worst case over the adaptive attacks (eee_zoo.adaptive, preset zoo, plus AutoAttack's rand and
# standard-det examples as proposals); resumable per batch of 100 images (state in ~/.cache/eee_zoo/adaptive).
# n=500 takes about 1.5-2.5 h per airbench checkpoint on the 2-core CPU.
python -m benchmarks.adaptive "${models[@]}" --n-examples 500 --seed 0 --write-card
# ResNet18w16_CPU_CrossMax_C100 (CIFAR-100, CPU): n=100 only, a 2-core CPU's share of one session
# (rand took 16 min, standard 3 min, adaptive 2 min; EEE_ZOO_DATA pointed at the decoded CIFAR-100 arrays):
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100 --dataset cifar100 --version rand --n-examples 100 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100 --dataset cifar100 --version standard --deterministic --n-examples 100 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive ResNet18w16_CPU_CrossMax_C100 --dataset cifar100 --n-examples 100 --seed 0 --batch-size 50 \
#       --state-dir benchmarks/state --write-card   # the worst case, batches of 50 (22-35 min each; log adaptive_..._C100_n100.log)
#   (the first adaptive suite's n = 100 file stays, shown nowhere: results format 1, the retired cascade)
# ResNet18w16_CPU_CrossMax_C100_FGSM (its FGSM-trained twin), the same two AutoAttack runs at n=100 (run from a
# worktree frozen at the commit that added its card, then again here, resuming, to write the card):
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100_FGSM --dataset cifar100 --version rand --n-examples 100 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100_FGSM --dataset cifar100 --version standard --deterministic --n-examples 100 --seed 0 --write-card --no-progress --no-leaderboard
# ResNet18w16_CPU_CrossMax (CIFAR-10, the paper's structure at CPU size), n=100 first (run from the worktree at
# 86be4cd that holds its card, results and card copied here; logs zoo_evaluation_ResNet18w16_CPU_CrossMax_*_n100.log):
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax --version rand --n-examples 100 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax --version standard --deterministic --n-examples 100 --seed 0 --write-card --no-progress --no-leaderboard
# Airbench_CPU_Baseline (deterministic, its stack draws nothing): standard (the default for it) and the adaptive
# worst case, which judges it on one draw and leaves rand out (75 s and 9 min; logs
# zoo_evaluation_Airbench_CPU_Baseline_standard_n500.log, adaptive_Airbench_CPU_Baseline_n500.log):
#   python -m benchmarks.run Airbench_CPU_Baseline --version standard --n-examples 500 --seed 0 --write-card --no-progress
#   python -m benchmarks.adaptive Airbench_CPU_Baseline --n-examples 500 --seed 0 --state-dir benchmarks/state --write-card
# ResNet18w16_CPU_Baseline_C100 (deterministic, CIFAR-100): standard and the adaptive worst case at n=500, as for
# Airbench_CPU_Baseline (run from a worktree at ac3febd with its card copied in; logs
# zoo_evaluation_ResNet18w16_CPU_Baseline_C100_standard_n500.log, adaptive_ResNet18w16_CPU_Baseline_C100_n500.log):
#   python -m benchmarks.run ResNet18w16_CPU_Baseline_C100 --dataset cifar100 --version standard --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive ResNet18w16_CPU_Baseline_C100 --dataset cifar100 --n-examples 500 --seed 0 --state-dir benchmarks/state --write-card
# ResNet18w16_CPU_Baseline (deterministic, CIFAR-10: the single-resolution baseline of ResNet18w16_CPU_CrossMax):
# standard and the adaptive worst case at n=500, as for the other baselines (run from a worktree at b41a435 with its
# card copied in; logs zoo_evaluation_ResNet18w16_CPU_Baseline_standard_n500.log, adaptive_ResNet18w16_CPU_Baseline_n500.log):
#   python -m benchmarks.run ResNet18w16_CPU_Baseline --version standard --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive ResNet18w16_CPU_Baseline --n-examples 500 --seed 0 --state-dir benchmarks/state --write-card
# ResNet18w16_CPU_CrossMax_C100_FGSM: the adaptive worst case at n=100, batches of 50 as for its clean twin, with
# AutoAttack rand and standard-det examples (resumed from the two AutoAttack runs above) as proposals (worktree at
# b41a435; log adaptive_ResNet18w16_CPU_CrossMax_C100_FGSM_n100.log):
#   python -m benchmarks.adaptive ResNet18w16_CPU_CrossMax_C100_FGSM --dataset cifar100 --n-examples 100 --seed 0 --batch-size 50 \
#       --state-dir benchmarks/state --write-card
# Airbench_CPU_CrossMax_Gauss025: the adaptive worst case at n=100 (one batch), with AutoAttack rand and standard-det
# examples as proposals (worktree at b41a435; log adaptive_Airbench_CPU_CrossMax_Gauss025_n100.log):
#   python -m benchmarks.adaptive Airbench_CPU_CrossMax_Gauss025 --n-examples 100 --seed 0 --state-dir benchmarks/state --write-card
# Airbench_CPU_CrossMax_FGSM: the adaptive worst case at n=100 (one batch), with AutoAttack rand and standard-det
# examples as proposals (worktree at 089b0ec, 25 min; log adaptive_Airbench_CPU_CrossMax_FGSM_n100.log):
#   python -m benchmarks.adaptive Airbench_CPU_CrossMax_FGSM --n-examples 100 --seed 0 --state-dir benchmarks/state --write-card
# Card figures derived again from committed results files, without running anything, after the headline-column rule
# (eee_zoo.adaptive.result.headline_column) came in (Gauss025: its headline is pgd-mean-eot's column):
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/Airbench_CPU_CrossMax_Gauss025/adaptive/zoo_eps8-255_n100_seed0_a64877b1a61a.json
# The ResNet18_GPU_* checkpoints' n = 500 evaluations are at the end of this file. Before them, their only adaptive bound was the quick preset
# (APGD-CE on the mean of the logits, 10 iterations; PGD with EOT 2, 10 steps) without AutoAttack's examples, at
# n=100 on the CPU (AutoAttack rand on a full-width ResNet-18 takes hours here): an upper bound like any other, far
# weaker than the zoo preset, so the GPU run supersedes it (worktree at f2047dd, 2026-12-01; log
# adaptive_ResNet18_GPU_quick_n100.log):
#   python -m benchmarks.adaptive ResNet18_GPU_CrossMax ResNet18_GPU_CrossMax_FGSM --preset quick --autoattack \
#       --n-examples 100 --seed 0 --write-card --state-dir benchmarks/state
# ResNet18w16_CPU_CrossMax at n = 500 (issues 8 and 9: every new checkpoint at n >= 500), from a worktree frozen at
# 1157b66 (2026-12-02; logs zoo_evaluation_ResNet18w16_CPU_CrossMax_{rand,standard}_n500.log and
# adaptive_ResNet18w16_CPU_CrossMax_n500_aa-run.log). The worst case takes AutoAttack's examples from these two runs
# (--autoattack-runs: the state folder benchmarks.run keeps, ~/.cache/eee_zoo/autoattack) instead of running
# AutoAttack again in each batch; its batches are kept in benchmarks/state, so it resumes on any machine (where the
# AutoAttack runs' state is not there, it runs them again first, the same configuration). The worst case ran in two
# sessions (batches 0-1 at 1157b66, 2-4 resumed at fac2298, 89 min); card and leaderboard from its results file:
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax --version rand --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive ResNet18w16_CPU_CrossMax --n-examples 500 --seed 0 --autoattack-runs --state-dir benchmarks/state --write-card --no-leaderboard
# Airbench_CPU_CrossMax_Gauss025 at n = 500 (issue 9), from a worktree at a8c8a50 (2026-12-02; logs
# zoo_evaluation_Airbench_CPU_CrossMax_Gauss025_{rand,standard}_n500.log): rand (31 min), standard-det (5 min);
# then the worst case with --autoattack-runs (reusing those two runs' state; batch 0 at a8c8a50,
# batches 1-4 resumed from it at 62d27de, 53 min; log adaptive_Airbench_CPU_CrossMax_Gauss025_n500_aa-run.log);
# card and leaderboard from its results file:
#   python -m benchmarks.run Airbench_CPU_CrossMax_Gauss025 --version rand --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run Airbench_CPU_CrossMax_Gauss025 --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive Airbench_CPU_CrossMax_Gauss025 --n-examples 500 --seed 0 --autoattack-runs --state-dir benchmarks/state --write-card --no-leaderboard
# The two CIFAR-100 self-ensembles at n = 500 (issue 9), from a worktree at 62d27de (2026-12-02, session 16; logs
# zoo_evaluation_<name>_{rand,standard}_n500.log): AutoAttack rand and standard-det (the FGSM twin: 21 + 12 min; the clean one: 16 + 8 min),
# then the worst case with --autoattack-runs from those two runs (batches in benchmarks/state, log
# adaptive_<name>_n500_aa-run.log; the FGSM twin's: batches 0-200 in session 16, 300-400 resumed at 4f18d0f in
# session 17, 40 min; the clean one's: all five batches at 4f18d0f in session 17, 94 min); cards and leaderboard
# from the results files:
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100_FGSM --dataset cifar100 --version rand --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100_FGSM --dataset cifar100 --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive ResNet18w16_CPU_CrossMax_C100_FGSM --dataset cifar100 --n-examples 500 --seed 0 --autoattack-runs --state-dir benchmarks/state --write-card --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100 --dataset cifar100 --version rand --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run ResNet18w16_CPU_CrossMax_C100 --dataset cifar100 --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive ResNet18w16_CPU_CrossMax_C100 --dataset cifar100 --n-examples 500 --seed 0 --autoattack-runs --state-dir benchmarks/state --write-card --no-leaderboard
# Airbench_CPU_CrossMax_FGSM at n = 500 (issues 8 and 9). Its rand and standard-det runs (2026-11-23, the commands at
# the top) kept no examples; re-run in session 17 to keep them (worktree at 4f18d0f; logs
# zoo_evaluation_Airbench_CPU_CrossMax_FGSM_{rand,standard}_n500_rerun.log), they did not reproduce the stored
# files on this session's CPU (rand 215 vs 206 robust, standard-det 25 vs 24; the stored files kept): the CPU's
# arithmetic, benchmarks/reproducibility/README.md. The worst case then took its AutoAttack examples from those
# reruns (worktree at c308b17, session 18, 66 min; log adaptive_Airbench_CPU_CrossMax_FGSM_n500_aa-run.log, which
# names each run's figure); card and leaderboard from its results file:
#   python -m benchmarks.run Airbench_CPU_CrossMax_FGSM --version rand --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.run Airbench_CPU_CrossMax_FGSM --version standard --deterministic --n-examples 500 --seed 0 --write-card --no-progress --no-leaderboard
#   python -m benchmarks.adaptive Airbench_CPU_CrossMax_FGSM --n-examples 500 --seed 0 --autoattack-runs --state-dir benchmarks/state --write-card --no-leaderboard
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/Airbench_CPU_CrossMax_FGSM/adaptive/zoo_eps8-255_n500_seed0_aa-run_53cb314ab3d0.json
# ResNet18_GPU_CrossMax_FGSM: AutoAttack standard on the deterministic mode at n = 100 on the 2-core CPU (the GPU
# queue's standard-det at n = 1000 waits for a GPU; worktree at 5eeb33b, session 18, 27 min; log
# zoo_evaluation_ResNet18_GPU_CrossMax_FGSM_standard_n100.log); card and leaderboard from its results file:
#   python -m benchmarks.run ResNet18_GPU_CrossMax_FGSM --version standard --deterministic --n-examples 100 --seed 0 --write-card --no-leaderboard
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/ResNet18_GPU_CrossMax_FGSM/standard_det_eps8-255_n100_seed0_5054b78bafd8.json
# ResNet18_GPU_CrossMax_FGSM: AutoAttack rand at n = 100 on the 2-core CPU (session 19, worktree at cd4d563, 63 min;
# log zoo_evaluation_ResNet18_GPU_CrossMax_FGSM_rand_n100.log), then recard: a second rand measurement beside the
# GPU's n = 1000 run (another n is another draw of the attack's randomness, so the lower of the two counts for the
# best-known figure, on the card and the leaderboard alike). Its state and standard-det's are committed in
# benchmarks/state/autoattack/ for the worst case below:
#   python -m benchmarks.run ResNet18_GPU_CrossMax_FGSM --version rand --n-examples 100 --seed 0 --write-card --no-leaderboard
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/ResNet18_GPU_CrossMax_FGSM/rand_sto_eps8-255_n100_seed0_5054b78bafd8.json
# ResNet18_GPU_CrossMax_FGSM: the zoo preset's worst case at n = 100 on the CPU with those two runs' examples, in
# batches of 50 (state benchmarks/state/adaptive_51742b0bbc03ebd6/: batch 0 in session 19, 82 min; batch 1 resumed
# from the committed state in session 21, worktree at ba6d463 on a new machine of the same kind, 77 min; log
# adaptive_ResNet18_GPU_CrossMax_FGSM_n100_aa-run.log); then recard from its results file:
#   python -m benchmarks.adaptive ResNet18_GPU_CrossMax_FGSM --n-examples 100 --seed 0 --batch-size 50 \
#       --autoattack-runs benchmarks/state/autoattack --state-dir benchmarks/state --write-card --no-leaderboard
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/ResNet18_GPU_CrossMax_FGSM/adaptive/zoo_eps8-255_n100_seed0_batchsize50_aa-run_5054b78bafd8.json
# ResNet18_GPU_CrossMax (the clean twin): AutoAttack standard on the deterministic mode at n = 100 on the 2-core CPU
# (session 21, worktree at ba6d463, 12.6 min; log zoo_evaluation_ResNet18_GPU_CrossMax_standard_n100.log), its state
# committed in benchmarks/state/autoattack/ for the twin's worst case at n = 100; card and leaderboard from its
# results file:
#   python -m benchmarks.run ResNet18_GPU_CrossMax --version standard --deterministic --n-examples 100 --seed 0 \
#       --state-dir benchmarks/state/autoattack --write-card --no-leaderboard
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/ResNet18_GPU_CrossMax/standard_det_eps8-255_n100_seed0_43a622be461c.json
# ResNet18_GPU_CrossMax: AutoAttack rand at n = 100 on the 2-core CPU (session 22, worktree at fd9253d, 58 min, the
# full test suite running beside it for 22 of them; log zoo_evaluation_ResNet18_GPU_CrossMax_rand_n100.log): a second
# rand measurement beside the GPU's n = 1000 run, its state committed for the twin's worst case:
#   python -m benchmarks.run ResNet18_GPU_CrossMax --version rand --n-examples 100 --seed 0 \
#       --state-dir benchmarks/state/autoattack --write-card --no-leaderboard
#   python -m benchmarks.recard benchmarks/results/cifar10/Linf/ResNet18_GPU_CrossMax/rand_sto_eps8-255_n100_seed0_43a622be461c.json
# ResNet18_GPU_CrossMax: the zoo preset's worst case at n = 100 on the CPU with those two runs' examples, in batches of
# 50 (state benchmarks/state/adaptive_870e374f93f5e4d4/: both batches in session 24, worktree at ab31aa4, on an AMD
# EPYC, AVX-512, 2 threads; log adaptive_ResNet18_GPU_CrossMax_n100_aa-run.log; earlier attempts in sessions 22-23
# died with their machines); card from the run, then the leaderboard:
#   python -m benchmarks.adaptive ResNet18_GPU_CrossMax --n-examples 100 --seed 0 --batch-size 50 \
#       --autoattack-runs benchmarks/state/autoattack --state-dir benchmarks/state --write-card --no-leaderboard
#   python -m benchmarks.leaderboard
# The ResNet18_GPU_* checkpoints at n = 500 (issues 8 and 9), on the CPU and, when one is lent, on the GPU: the GPU
# queue's evaluations are these same commands with --device cuda (training/gpu/queue.yaml), sharing the committed
# chunks and batches; the lease of 2026-12-04 made the clean twin's rand and most of its standard-det:
# AutoAttack standard-det and rand in chunks of 100 images, then the worst case with their examples in batches of 50,
# each piece resumable and committed as it finishes (benchmarks/state/README.md says which are done). Started in
# session 29 (2026-12-04) for the FGSM twin from a worktree at 4ce17f8 (log cpu_n500_ResNet18_GPU_CrossMax_FGSM.log);
# a later session continues with the same command:
# (the FGSM twin's rand and worst case, begun after its standard-det finished in session 31, in the channels_last
# layout: each evaluation in the layout it was begun in)
#   bash benchmarks/cpu_n500.sh ResNet18_GPU_CrossMax_FGSM --channels-last >> benchmarks/cpu_n500_ResNet18_GPU_CrossMax_FGSM.log 2>&1
#   bash benchmarks/cpu_n500.sh ResNet18_GPU_CrossMax >> benchmarks/cpu_n500_ResNet18_GPU_CrossMax.log 2>&1
