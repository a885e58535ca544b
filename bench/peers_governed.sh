#!/usr/bin/env bash
# The side-by-side harness (../shared/bench-peers/) with one more target, "ours-limits": our gateway as
# the "ours" target runs it, plus a budget, an RPM and a TPM limit on the bench key (generous: nothing is
# refused, but every request reserves on the shared ledger and is settled). Run both in one sitting:
#
#   PROJECT=$PWD PEERS_ROOT=/tmp/peers TARGETS="direct ours ours-limits portkey-hono2" \
#     OUT=/tmp/peers/results/governed bash bench/peers_governed.sh
#
# The shared harness is read-only, so it is copied to a temporary directory and the target added there:
# the "ours" case also answers "ours-limits", and its config step passes OURS_LIMITS to a wrapper of
# ours_config.py that adds the limits (and a price on the mock models, which a budget needs). Everything else (load, phases, report) is the shared harness's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$(cd "$HERE/../../shared/bench-peers" 2>/dev/null && pwd || true)}
[ -f "$SHARED/bench_peers.sh" ] || { echo "peers_governed: no shared harness at $SHARED (set SHARED=...)" >&2; exit 2; }
COPY=$(mktemp -d /tmp/bench-peers-governed.XXXX)
trap 'rm -rf "$COPY"' EXIT
cp -r "$SHARED"/. "$COPY"/
chmod -R u+w "$COPY"
mv "$COPY/ours_config.py" "$COPY/ours_config_shared.py"
cat > "$COPY/ours_config.py" <<'PY'
"""The shared ours_config.py, plus limits on the bench key when OURS_LIMITS is "-limits"."""
import os
import runpy
import sys
from io import StringIO

import yaml

out, sys.stdout = sys.stdout, StringIO()
runpy.run_path(os.path.join(os.path.dirname(__file__), "ours_config_shared.py"), run_name="__main__")
cfg, sys.stdout = yaml.safe_load(sys.stdout.getvalue()), out
if os.environ.get("OURS_LIMITS") == "-limits":
    cfg["keys"][0]["limits"] = {"budget_usd": "1000000", "budget_period": "day", "rpm": 10000000, "tpm": 10000000000}
    for route in cfg["models"].values():  # a budget counts only priced models: gpt-4o-mini's price
        for target in route["targets"]:
            target["price"] = {"input_per_mtok": "0.15", "output_per_mtok": "0.60"}
yaml.safe_dump(cfg, sys.stdout, sort_keys=False)
PY
script="$COPY/bench_peers.sh"
grep -q '^    ours)$' "$script" || { echo "peers_governed: the shared harness changed (no 'ours)' case)" >&2; exit 2; }
sed -i -e 's/^    ours)$/    ours|ours-limits)/' \
       -e 's|"\$PROJECT/.venv/bin/python" "\$HERE/ours_config.py"|env OURS_LIMITS="${t#ours}" "$PROJECT/.venv/bin/python" "$HERE/ours_config.py"|' \
       "$script"
grep -q 'OURS_LIMITS=' "$script" || { echo "peers_governed: could not add the ours-limits target" >&2; exit 2; }
bash "$script"
