#!/usr/bin/env bash
# What travels to the GPU machine is the checkout's tracked files plus the carried paths, 64 MiB in all; the zoo's
# committed weights, examples and figures are far more. `slim` untracks them in the index only (the files stay, and
# a block at the end of .gitignore ignores them until `restore`: .git/info/exclude cannot, as .gitignore's own
# `!` lines outrank it), so a call carries just the checkpoints it evaluates (their shards named in `carry`).
# Chunked AutoAttack runs' states (`*.chunks/`) and the worst case's headline examples (`*.kept.safetensors`) stay
# tracked: a call resumes them.
#   bash training/gpu/travel.sh slim      # before the device calls (commit first)
#   bash training/gpu/travel.sh size      # MiB that travel without the carried paths
#   bash training/gpu/travel.sh restore   # after them: the index back to HEAD, the exclusions removed
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude=.gitignore
begin="# >>> training/gpu/travel.sh slim"
end="# <<< training/gpu/travel.sh slim"
size() {
    git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "%.1f MiB travel\n", $1 / 2^20}'
}
case "${1:-}" in
slim)
    git diff --quiet HEAD -- || { echo "travel.sh: commit first (restore resets the index to HEAD)" >&2; exit 1; }
    grep -qxF "$begin" "$exclude" 2>/dev/null && { echo "travel.sh: already slim" >&2; exit 1; }
    git ls-files -z -- '*.safetensors' '*.png' benchmarks/figures | grep -zv -e '\.chunks/' -e '\.kept\.safetensors$' | xargs -0 git rm -q --cached --
    printf '%s\n' "$begin" '*.safetensors' '*.png' '/benchmarks/figures/' "$end" >> "$exclude"
    size
    ;;
size) size ;;
restore)
    git reset -q
    git checkout -- "$exclude"
    git status --short | head
    ;;
*) echo "usage: bash training/gpu/travel.sh slim|size|restore" >&2; exit 2 ;;
esac
