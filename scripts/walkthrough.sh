#!/usr/bin/env bash
# Runs the README's journey against the real release binary on a fresh SQLite file: start the
# service, simulate an experiment, analyse it, request a recommendation, approve it as a
# reviewer, and download OpenSLO YAML and Prometheus rules, which promtool must accept; then
# push a day of production data, read the SLO's live status, and see a new recommendation
# anchored on production and replayed on it.
# Usage: bash scripts/walkthrough.sh   (CI runs it after the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/sloproof
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SLOPROOF_ADMIN_TOKEN="walkthrough-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
API="http://127.0.0.1:$port/api/v1"
SLOPROOF_DATABASE_URL="$dir/sloproof.db" SLOPROOF_BIND="127.0.0.1:$port" SLOPROOF_LOG=warn "$bin" serve &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
call() { # method path token [body]
  local out status
  out=$(curl -s -w '\n%{http_code}' -X "$1" "$API$2" -H "Authorization: Bearer $3" \
        -H 'content-type: application/json' ${4:+-d "$4"})
  status=${out##*$'\n'}
  if [ "${status:0:1}" != 2 ]; then echo "FAILED: $1 $2 → $status: ${out%$'\n'*}" >&2; exit 1; fi
  printf '%s' "${out%$'\n'*}"
}

"$bin" simulate --api "http://127.0.0.1:$port" --token "$SLOPROOF_ADMIN_TOKEN" --units 100000 \
  --effect-per-100ms -0.1 >/dev/null
analysis=$(call POST /experiments/checkout-latency-sim/analyses "$SLOPROOF_ADMIN_TOKEN" '{"bootstrap": {"seed": 42}}')
echo "analysis: $(echo "$analysis" | json '["summary"]')"
id=$(echo "$analysis" | json '["id"]')
reviewer=$(call POST /tokens "$SLOPROOF_ADMIN_TOKEN" '{"name": "pm-alice", "role": "reviewer"}' | json '["token"]')
rec=$(call POST "/analyses/$id/recommendations" "$SLOPROOF_ADMIN_TOKEN" \
  '{"max_relative_kpi_loss": 0.05, "value_per_kpi_unit": 50, "units_per_day": 100000}')
echo "recommendation: $(echo "$rec" | json '["slo"]["statement"]')"
rid=$(echo "$rec" | json '["id"]')
slo=$(call POST "/recommendations/$rid/decision" "$reviewer" '{"decision": "approve", "comment": "walkthrough"}' | json '["slo_id"]')
call GET "/recommendations/$rid/history" "$reviewer" | json '["items"][1]["actor"]' | grep -qx pm-alice
call GET "/slos/$slo/openslo" "$reviewer" > "$dir/slo.yaml"
call GET "/slos/$slo/prometheus-rules" "$reviewer" > "$dir/rules.yaml"
grep -q 'kind: SLO' "$dir/slo.yaml"
promtool check rules "$dir/rules.yaml"
echo "SLO $slo published and exported"

# Past publication: a day of production latency (1-minute histogram windows) ending at the
# last whole minute, the SLO's live status, and a recommendation replayed on production.
start=$(python3 -c 'import time, datetime as d; t = int(time.time()) // 60 * 60 - 86400; print(d.datetime.fromtimestamp(t, d.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))')
# Bucket bounds every 10 ms up to 2 s: the threshold snaps to one of them.
"$bin" simulate-series --start "$start" --windows 1440 --bounds "$(seq -s, 10 10 2000)" > "$dir/series.ndjson"
curl -sf -X POST "$API/metrics/checkout-latency/series" -H "Authorization: Bearer $SLOPROOF_ADMIN_TOKEN" \
  -H 'content-type: application/x-ndjson' --data-binary @"$dir/series.ndjson" | json '["inserted"]' | grep -qx 1440
status=$(call GET "/slos/$slo/status" "$reviewer")
echo "status: attainment $(echo "$status" | json '["attainment"]'), budget remaining $(echo "$status" | json '["error_budget"]["remaining"]'), alert $(echo "$status" | json '["alert"]'), coverage $(echo "$status" | json '["coverage"]')"
echo "$status" | json '["data_windows"]' | grep -qx 1440
rec2=$(call POST "/analyses/$id/recommendations" "$SLOPROOF_ADMIN_TOKEN" \
  '{"max_relative_kpi_loss": 0.05, "window_days": 1, "value_per_kpi_unit": 50, "units_per_day": 100000}')
echo "$rec2" | json '["derivation"]["baseline_source"]["kind"]' | grep -qx production
echo "replayed: $(echo "$rec2" | json '["slo"]["statement"]') → $(echo "$rec2" | json '["replay"]["summary"]')"
echo "walkthrough passed: SLO $slo published, exported, live; recommendation replayed on production"
