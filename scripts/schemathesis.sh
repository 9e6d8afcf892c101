#!/usr/bin/env bash
# Property-based API tests: schemathesis generates requests for every operation in
# openapi/openapi.json and checks the release binary's answers (no 5xx; status code, content type
# and body as declared).
# Usage: bash scripts/schemathesis.sh [BINARY]   (default target/release/sloproof)
#   python3 -m pip install -r scripts/requirements-schemathesis.txt first.
# Environment: SCHEMATHESIS_MAX_EXAMPLES (100), SCHEMATHESIS_SEED (20261129), SCHEMATHESIS_TIMEOUT
# (seconds for the whole schemathesis run, 600), SCHEMATHESIS_CHECKS (the four above; `all` for
# every check schemathesis has), SCHEMATHESIS_REPORT_DIR (target/schemathesis: the JUnit report,
# the NDJSON event log and the server log).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/sloproof}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
seed=${SCHEMATHESIS_SEED:-20261129}
budget=${SCHEMATHESIS_TIMEOUT:-600}
checks=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}
[ -x "$bin" ] || { echo "schemathesis.sh: no executable at $bin (cargo build --release first)" >&2; exit 2; }
command -v schemathesis >/dev/null || {
  echo "schemathesis.sh: schemathesis is not installed:" \
       "python3 -m pip install -r scripts/requirements-schemathesis.txt" >&2; exit 2; }

dir=$(mktemp -d)
reports=${SCHEMATHESIS_REPORT_DIR:-target/schemathesis}
mkdir -p "$reports"
rm -f "$reports/junit.xml" "$reports/events.ndjson" "$reports/server.log"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
origin="http://127.0.0.1:$port"
API="$origin/api/v1"
# No write rate limit and no job-queue limit: schemathesis writes as fast as it can and queues
# analysis jobs faster than they run (both limits have their own tests).
SLOPROOF_MAX_QUEUED_JOBS=1000000 SLOPROOF_WRITE_RATE=0 SLOPROOF_ADMIN_TOKEN="$token" SLOPROOF_DATABASE_URL="$dir/sloproof.db" SLOPROOF_BIND="127.0.0.1:$port" \
  SLOPROOF_LOG=warn "$bin" serve >"$reports/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "$origin/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$origin/readyz" >/dev/null || { echo "sloproof did not become ready" >&2; cat "$reports/server.log" >&2; exit 1; }

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
call() { # method path [body] [token]: the body of a 2xx answer, or exit
  local out status
  out=$(curl -s -w '\n%{http_code}' -X "$1" "$API$2" -H "Authorization: Bearer ${4:-$token}" \
        -H 'content-type: application/json' ${3:+-d "$3"})
  status=${out##*$'\n'}
  if [ "${status:0:1}" != 2 ]; then echo "seeding failed: $1 $2 → $status: ${out%$'\n'*}" >&2; exit 1; fi
  printf '%s' "${out%$'\n'*}"
}

# Seed real resources for the path parameters: a small simulated experiment (metrics, experiment,
# assignments, observations), an analysis that validates, two recommendations (one approved into
# SLO 1, one left proposed), a reviewer token and a sacrificial viewer token.
"$bin" simulate --api "$origin" --token "$token" --key schemathesis-sim --units 4000 \
  --conversion 0.1 --effect-per-100ms -0.5 --seed 7 >/dev/null
analysis=$(call POST /experiments/schemathesis-sim/analyses '{"bootstrap": {"seed": 42}}' | json '["id"]')
reviewer=$(call POST /tokens '{"name": "seed-reviewer", "role": "reviewer"}' | json '["token"]')
rec=$(call POST "/analyses/$analysis/recommendations" '{"max_relative_kpi_loss": 0.2}' | json '["id"]')
call POST "/recommendations/$rec/decision" '{"decision": "approve", "comment": "seed"}' "$reviewer" >/dev/null
call POST "/analyses/$analysis/recommendations" '{"max_relative_kpi_loss": 0.3}' >/dev/null
sacrificial=$(call POST /tokens '{"name": "seed-sacrificial", "role": "viewer"}' | json '["id"]')
own=$(call GET '/tokens?limit=500' | python3 -c \
  'import json,sys; print(next(t["id"] for t in json.load(sys.stdin)["items"] if t["name"] == "bootstrap-admin"))')

export SCHEMATHESIS_HOOKS="$PWD/scripts/schemathesis_hooks.py"
export SCHEMATHESIS_PROTECTED_TOKEN_ID=$own SCHEMATHESIS_SACRIFICIAL_TOKEN_ID=$sacrificial
# No state kept between runs (schemathesis otherwise caches failures in ./.schemathesis and replays
# them next time), so a seed gives the same cases on every machine.
printf '[cache]\nenabled = false\n' >"$dir/schemathesis.toml"
start=$(date +%s)
set +e
timeout --kill-after=10 "$budget" schemathesis --config-file "$dir/schemathesis.toml" run openapi/openapi.json \
  --url "$origin" \
  --header "Authorization: Bearer $token" \
  --checks "$checks" \
  --max-examples "$max_examples" --seed "$seed" --generation-database none \
  --workers 1 --request-timeout 30 --no-color --continue-on-failure \
  --report junit --report-junit-path "$reports/junit.xml" \
  --report ndjson --report-ndjson-path "$reports/events.ndjson" \
  2>&1 | tee "$dir/output.txt"
rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))

# The bootstrap token must have survived the run (see scripts/schemathesis_hooks.py).
alive=$(curl -s -o /dev/null -w '%{http_code}' "$API/tokens?limit=1" -H "Authorization: Bearer $token")
echo
echo "=== schemathesis summary: seed $seed, $max_examples examples per operation, ${elapsed}s ==="
python3 - "$dir/output.txt" "$reports/junit.xml" <<'PY'
import re, sys, xml.etree.ElementTree as ET
text = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1], encoding="utf-8", errors="replace").read())
summary = text.rsplit("= SUMMARY =", 1)[-1].splitlines()
keep, block = [], None
for line in summary:
    if line.rstrip().endswith(":") and not line.startswith(" "):
        block = line.strip()
    elif not line.strip():
        block = None
    if block in ("Test cases:", "Failures:", "Errors:") and line.strip():
        keep.append(line.rstrip())
    elif re.match(r"^=+ .* =+$", line):
        keep.append(line.strip("= ").strip())
print("\n".join(keep))
try:
    suites = ET.parse(sys.argv[2]).getroot()
except (OSError, ET.ParseError):
    sys.exit(0)
bad = [(c.get("name"), k.tag) for c in suites.iter("testcase") for k in c if k.tag in ("failure", "error")]
if bad:
    print("Operations with failures or errors:")
    for name, kind in bad:
        print(f"  {kind:7} {name}")
PY
[ "$alive" = 200 ] || { echo "the run's admin token stopped working (GET /tokens → $alive)" >&2; rc=1; }
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "schemathesis did not finish within ${budget}s" >&2; fi
if [ "$rc" != 0 ]; then echo "schemathesis: FAILED (exit $rc); reports in $reports" >&2; exit 1; fi
echo "schemathesis: passed"
