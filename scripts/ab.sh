#!/usr/bin/env bash
# Interleaved A/B of two gpt-load release binaries on one of the benchmark's lanes: the same
# mock upstream, one SQLite database each, request logging on (written as it goes), wrk at
# BENCH_CONNECTIONS (32) for BENCH_SECONDS (10) per run, ROUNDS (3) rounds of A then B. Prints,
# per run, requests per second and the proxy's CPU time per request (user + system, from
# /proc/PID/stat), then each side's range.
#
# Usage: scripts/ab.sh [--lane plain|https|https-h1] A_BINARY B_BINARY
#   plain     the mock over plain HTTP (the default)
#   https     the mock behind TLS (self-signed, trusted through SSL_CERT_FILE), offering h2 and
#             http/1.1 by ALPN: gpt-load speaks h2 to it, as to the vendors
#   https-h1  the same mock offering http/1.1 only
# The mock upstream is target/release/mock-upstream (scripts/bench.sh builds it), or MOCK_UPSTREAM.
set -euo pipefail
cd "$(dirname "$0")/.."
LANE=plain
if [ "${1:-}" = --lane ]; then LANE=${2:-}; shift 2; fi
case $LANE in plain|https|https-h1) ;; *) echo "ab.sh: --lane plain, https or https-h1 (got '$LANE')" >&2; exit 2 ;; esac
[ $# -eq 2 ] || { echo "usage: scripts/ab.sh [--lane plain|https|https-h1] A_BINARY B_BINARY" >&2; exit 2; }
A=$1
B=$2
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
MOCK=${MOCK_UPSTREAM:-target/release/mock-upstream}
command -v wrk >/dev/null || { echo "ab.sh: install wrk (apt-get install wrk)" >&2; exit 2; }
OUT=$(mktemp -d /tmp/gpt-load-ab.XXXXXX)
. scripts/bench-lib.sh
trap kill_started EXIT

ENV=()
case $LANE in
  plain)
    start_mock plain "$MOCK"
    UPSTREAM="http://127.0.0.1:${MOCK_PORTS[plain]}"
    ;;
  https|https-h1)
    start_tls_mocks "$MOCK"
    if [ "$LANE" = https ]; then UPSTREAM="https://127.0.0.1:${MOCK_PORTS[tls]}"; else UPSTREAM="https://127.0.0.1:${MOCK_PORTS[tls-h1]}"; fi
    ENV=(SSL_CERT_FILE="$TLS_CA")
    ;;
esac
for side in A B; do
  if [ $side = A ]; then bin=$A; else bin=$B; fi
  start_gpt_load $side "$bin" "${ENV[@]}"
  add_group $side bench "$UPSTREAM"
done

write_post_lua "$OUT/post.lua" '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'

run() {
  local side=$1 before after out reqs rps url
  url=$(proxy_url "$side" bench)
  # Warm-up, then the measured run.
  wrk -t2 -c"$CONNS" -d2s -s "$OUT/post.lua" "$url" >/dev/null
  before=$(cpu_ticks "${GL_PIDS[$side]}")
  out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" -s "$OUT/post.lua" "$url")
  after=$(cpu_ticks "${GL_PIDS[$side]}")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "ab.sh: $side answered non-2xx" >&2; echo "$out" >&2; exit 1; fi
  awk -v s="$side" -v r="$rps" -v t=$((after - before)) -v n="$reqs" -v hz="$TICK" \
    'BEGIN { printf "%s %.0f %.1f\n", s, r, t / hz / n * 1e6 }'
}
echo "lane $LANE: side req/s cpu_us_per_request" >&2
echo "side req/s cpu_us_per_request" | tee "$OUT/results"
for _ in $(seq 1 "$ROUNDS"); do
  run A | tee -a "$OUT/results"
  run B | tee -a "$OUT/results"
done
awk 'NR > 1 { s=$1; if (!(s in lo) || $2 < lo[s]) lo[s]=$2; if ($2 > hi[s]) hi[s]=$2;
  if (!(s in clo) || $3 < clo[s]) clo[s]=$3; if ($3 > chi[s]) chi[s]=$3 }
  END { for (s in lo) printf "%s: %s-%s req/s, %s-%s us CPU per request\n", s, lo[s], hi[s], clo[s], chi[s] }' "$OUT/results" | sort
