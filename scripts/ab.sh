#!/usr/bin/env bash
# Interleaved A/B of two gpt-load release binaries on the benchmark's plain-HTTP lane: the same
# mock upstream, one SQLite database each, request logging on (written as it goes), wrk at
# BENCH_CONNECTIONS (32) for BENCH_SECONDS (10) per run, ROUNDS (3) rounds of A then B. Prints,
# per run, requests per second and the proxy's CPU time per request (user + system, from
# /proc/PID/stat), then each side's range. Usage: scripts/ab.sh A_BINARY B_BINARY.
# The mock upstream is target/release/mock-upstream (scripts/bench.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1
B=$2
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
MOCK=${MOCK_UPSTREAM:-target/release/mock-upstream}
command -v wrk >/dev/null || { echo "ab.sh: install wrk (apt-get install wrk)" >&2; exit 2; }
OUT=$(mktemp -d /tmp/gpt-load-ab.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

MOCK_PORT=$(free_port)
"$MOCK" --port "$MOCK_PORT" >"$OUT/mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$OUT/mock.log" && break; sleep 0.1; done

AUTH=ab-admin-key-0123456789abcdef
api() { curl -sf -H "Authorization: Bearer $AUTH" -H 'Content-Type: application/json' "$@"; }
declare -A PORT PID
start() {
  local side=$1 bin=$2 port
  port=$(free_port)
  env AUTH_KEY=$AUTH DATABASE_DSN="$OUT/$side.db" HOST=127.0.0.1 PORT=$port LOG_LEVEL=warn \
    MAX_CONCURRENT_REQUESTS=100000 "$bin" >"$OUT/$side.log" 2>&1 &
  PID[$side]=$!
  PIDS+=($!)
  PORT[$side]=$port
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local gid
  gid=$(api -X POST "http://127.0.0.1:$port/api/groups" -d "{\"name\":\"bench\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"http://127.0.0.1:$MOCK_PORT\",\"weight\":1}],\"proxy_keys\":\"sk-bench-proxy\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["data"]["id"])')
  api -X POST "http://127.0.0.1:$port/api/keys/add-multiple" -d "{\"group_id\":$gid,\"keys_text\":\"sk-bench-1,sk-bench-2,sk-bench-3\"}" >/dev/null
  api -X PUT "http://127.0.0.1:$port/api/settings" -d '{"request_log_write_interval_minutes":0}' >/dev/null
}
start A "$A"
start B "$B"

cat >"$OUT/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-proxy"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
EOF

run() {
  local side=$1 before after out reqs rps
  # Warm-up, then the measured run.
  wrk -t2 -c"$CONNS" -d2s -s "$OUT/post.lua" "http://127.0.0.1:${PORT[$side]}/proxy/bench/v1/chat/completions" >/dev/null
  before=$(ticks "${PID[$side]}")
  out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" -s "$OUT/post.lua" "http://127.0.0.1:${PORT[$side]}/proxy/bench/v1/chat/completions")
  after=$(ticks "${PID[$side]}")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "ab.sh: $side answered non-2xx" >&2; echo "$out" >&2; exit 1; fi
  awk -v s="$side" -v r="$rps" -v t=$((after - before)) -v n="$reqs" -v hz="$HZ" \
    'BEGIN { printf "%s %.0f %.1f\n", s, r, t / hz / n * 1e6 }'
}
echo "side req/s cpu_us_per_request" | tee "$OUT/results"
for _ in $(seq 1 "$ROUNDS"); do
  run A | tee -a "$OUT/results"
  run B | tee -a "$OUT/results"
done
awk 'NR > 1 { s=$1; if (!(s in lo) || $2 < lo[s]) lo[s]=$2; if ($2 > hi[s]) hi[s]=$2;
  if (!(s in clo) || $3 < clo[s]) clo[s]=$3; if ($3 > chi[s]) chi[s]=$3 }
  END { for (s in lo) printf "%s: %s-%s req/s, %s-%s us CPU per request\n", s, lo[s], hi[s], clo[s], chi[s] }' "$OUT/results" | sort
