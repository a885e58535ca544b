#!/usr/bin/env bash
# The side-by-side harness (../shared/bench-peers/) with one more target, "ours-base": our gateway from a
# second checkout (PROJECT_BASE, its .venv built by `make install`), run exactly as the "ours" target runs
# PROJECT. Both versions in one sitting, so their ratio means something on a machine whose speed moves
# 2-3x over the day. A suffix repeats a target (ours-2, ours-base-2, ...): alternate them to see the
# run-to-run spread of the same build.
#
#   git worktree add /tmp/base <older commit> && make -C /tmp/base install
#   PROJECT=$PWD PROJECT_BASE=/tmp/base PEERS_ROOT=/tmp/peers TARGETS="direct ours-base ours" \
#     OUT=/tmp/peers/results/versions bash bench/peers_versions.sh
#
# The shared harness is read-only, so it is copied to a temporary directory and the target added there.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$(cd "$HERE/../../shared/bench-peers" 2>/dev/null && pwd || true)}
[ -f "$SHARED/bench_peers.sh" ] || { echo "peers_versions: no shared harness at $SHARED (set SHARED=...)" >&2; exit 2; }
[ -x "${PROJECT_BASE:-}/.venv/bin/gateway" ] || { echo "peers_versions: PROJECT_BASE=${PROJECT_BASE:-} has no .venv/bin/gateway (make install there)" >&2; exit 2; }
COPY=$(mktemp -d /tmp/bench-peers-versions.XXXX)
trap 'rm -rf "$COPY"' EXIT
cp -r "$SHARED"/. "$COPY"/
chmod -R u+w "$COPY"
script="$COPY/bench_peers.sh"
grep -q '^    ours)$' "$script" || { echo "peers_versions: the shared harness changed (no 'ours)' case)" >&2; exit 2; }
# In the "ours" case, PROJECT becomes P: PROJECT_BASE for the ours-base target.
start=$(grep -n '^    ours)$' "$script" | cut -d: -f1)
end=$(awk -v s="$start" 'NR > s && /;;[[:space:]]*$/ { print NR; exit }' "$script")
sed -i -e "${start}s/^    ours)\$/    ours|ours-[0-9]*|ours-base|ours-base-[0-9]*)\n      local P=\$PROJECT; [ \"\${t#ours-base}\" != \"\$t\" ] \&\& P=\$PROJECT_BASE/" "$script"
sed -i -e "$((start + 2)),$((end + 1))s/\\\$PROJECT\\b/\$P/g" "$script"
grep -q 'ours|ours-\[0-9\]\*|ours-base|' "$script" || { echo "peers_versions: could not add the ours-base target" >&2; exit 2; }
export PROJECT_BASE
bash "$script" "$@"
